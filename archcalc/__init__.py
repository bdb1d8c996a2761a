"""archcalc: what a convolutional network costs before you run it.

    >>> import archcalc
    >>> result = archcalc.analyze(archcalc.load("vgg16"), input_shape=(224, 224), batch=8)
    >>> result.totals.params
    138357544
    >>> print(archcalc.render(result, format="markdown"))     # what `archcalc table` prints
    >>> archcalc.to_json(result)["totals"]["macs_per_image"]  # the dict of --format json
    15470264320

`load` takes a zoo name, a spec file or a dict; `analyze` returns an `Analysis` (rows, totals,
memory at its batch and dtype); `render`, `to_json` and `Analysis.to_dataframe()` give the
formats of the CLI; `build_torch` (torch needed) returns the network as an `nn.Module`.
"""
from .budget import Budget
from .core.calc import Analysis, Row, Totals, analyze
from .core.spec import Network, load, zoo_index
from .errors import SpecError
from .render import (  # the functions: they take the name archcalc.render from the module
    render,
    to_json,
)

__all__ = ["Analysis", "Budget", "Network", "Row", "SpecError", "Totals", "analyze", "build_torch", "load", "render",
           "to_json", "zoo_index"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # build_torch needs torch: imported on first use so that `import archcalc` stays light.
    if name == "build_torch":
        from .torch.build import build_torch

        return build_torch
    raise AttributeError(f"module 'archcalc' has no attribute {name!r}")
