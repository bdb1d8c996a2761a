"""archcalc: what a convolutional network costs before you run it.

    >>> import archcalc
    >>> result = archcalc.analyze(archcalc.load("vgg16"), input_shape=(224, 224), batch=8)
    >>> result.totals.params
    138357544
    >>> print(archcalc.render(result, format="markdown"))     # what `archcalc table` prints
    >>> archcalc.to_json(result)["totals"]["macs_per_image"]  # the dict of --format json
    15470264320

For a torch model, as torchinfo's `summary`: `archcalc.summary(model, input_size=(3, 224, 224), batch=8)`
(the model is traced at that size, as `archcalc import torch` does; torch is loaded only then).

`load` takes a zoo name, a spec file, a dict or an `nn.Module` (with `input_size`); `analyze` returns an `Analysis` (rows, totals,
memory at its batch and dtype); `render`, `to_json` and `Analysis.to_dataframe()` give the
formats of the CLI; `build_torch` (torch needed) returns the network as an `nn.Module`.
"""
from .core.alloc import pause_collector, resume_collector

_collecting = pause_collector()  # until the end of the module (core.alloc)
from . import notebook  # noqa: F401  (how an Analysis shows itself in a notebook)
from .budget import Budget
from .core import spec as _spec
from .core.calc import Analysis, Row, Totals, analyze
from .core.spec import Network, zoo_index
from .errors import SpecError, UsageError
from .render import (  # the functions: they take the name archcalc.render from the module
    render,
    to_json,
)

__all__ = ["Analysis", "Budget", "Network", "Row", "SpecError", "Totals", "analyze", "build_torch", "load", "render",
           "summary", "to_json", "zoo_index"]
__version__ = "0.1.0"
resume_collector(_collecting)


def load(target, variant: str | None = None, *, budget: Budget | None = None, input_size=None) -> Network:
    """A network from a zoo name, a spec file, FILE:VARIANT, a spec document given as a dict
    (archcalc.core.spec.load), or a torch `nn.Module` traced at `input_size` ((C, H, W))."""
    from .importers.objects import is_module

    if is_module(target):
        from .importers.objects import import_module

        return import_module(target, input_size)
    if input_size is not None:
        raise UsageError("input_size is for a torch module; a spec's input is given to analyze(network, input_shape=...)")
    return _spec.load(target, variant, budget=budget)


def summary(model, input_size=None, batch: int = 1, dtype: str = "fp32") -> Analysis:
    """The Analysis of `model` (an `nn.Module`, traced at `input_size`: (C, H, W), or torchinfo's (N, C, H, W),
    whose N is the batch) or of anything `load` takes, at `batch` and `dtype`.

        >>> archcalc.summary(torchvision.models.resnet50(), input_size=(3, 224, 224), batch=8)
    """
    from .importers.objects import image_size, is_module

    if is_module(model):
        dims, given_batch = image_size(input_size)
        return analyze(load(model, input_size=dims), batch=given_batch or batch, dtype=dtype)
    return analyze(load(model), None if input_size is None else tuple(input_size), batch=batch, dtype=dtype)


def __getattr__(name: str):
    # build_torch needs torch: imported on first use so that `import archcalc` stays light.
    if name == "build_torch":
        from .torch.build import build_torch

        return build_torch
    raise AttributeError(f"module 'archcalc' has no attribute {name!r}")
