"""archcalc: what a convolutional network costs before you run it.

    >>> import archcalc
    >>> result = archcalc.analyze(archcalc.load("vgg16"))
    >>> result.totals.params
    138357544
"""
from .core.budget import Budget
from .core.calc import Analysis, Row, Totals, analyze
from .core.spec import Network, load, zoo_index
from .errors import SpecError

__all__ = ["Analysis", "Budget", "Network", "Row", "SpecError", "Totals", "analyze", "load", "zoo_index"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # build_torch needs torch: imported on first use so that `import archcalc` stays light.
    if name == "build_torch":
        from .torch.build import build_torch

        return build_torch
    raise AttributeError(f"module 'archcalc' has no attribute {name!r}")
