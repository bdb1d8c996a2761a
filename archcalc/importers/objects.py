"""An `nn.Module` handed over in Python (`archcalc.load(model, input_size=...)`, `archcalc.summary`):
imported as `archcalc import torch` imports a callable's module, without writing a file."""
from __future__ import annotations

from typing import Any, Sequence

from .. import fmt
from ..errors import UsageError


def is_module(target: Any) -> bool:
    """Whether `target` is a torch module (checked without importing torch when torch is not loaded)."""
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(target, torch.nn.Module)


def image_size(input_size: Sequence[int] | None) -> tuple[tuple[int, int, int], int | None]:
    """(C, H, W) and the batch of torchinfo's (N, C, H, W) form (None for the three-axis form)."""
    if input_size is None:
        raise UsageError("a torch module needs input_size=(C, H, W), e.g. (3, 224, 224): archcalc traces it at that size")
    dims = tuple(input_size)
    if len(dims) not in (3, 4) or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
        raise UsageError(f"input_size {dims!r}: expected (C, H, W) or (N, C, H, W) of positive integers")
    if len(dims) == 4:
        return (dims[1], dims[2], dims[3]), dims[0]
    return (dims[0], dims[1], dims[2]), None


def import_module(model: Any, input_size: Sequence[int] | None, name: str | None = None):
    """The Network of `model` traced at `input_size`; the model is left in the mode it was in."""
    from ..core.spec import resolve
    from .loading import running
    from .torch_fx import import_torch

    dims, _ = image_size(input_size)
    kind = type(model).__name__
    name = name or kind.lower()
    source = f"{type(model).__module__}.{type(model).__qualname__} object"
    training = model.training
    try:
        with running(source):
            document = import_torch(model.eval(), dims, name, source)
    finally:
        model.train(training)
    return resolve(document, document["name"], f"{name} at {fmt.shape(dims)}")
