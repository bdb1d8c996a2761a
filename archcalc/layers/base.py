"""What a layer type is: its fields, and the arithmetic it owns.

A layer type is one class registered under its spec name. It declares its fields (these
also generate the JSON Schema) and answers, from its attributes and input shape: the
output shape, trainable parameters, non-trainable values, MACs (archcalc's convention),
the count fvcore would report, the receptive-field step, and the torch module.
Shapes never include the batch: (C, H, W) or (F,).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping

from .. import fmt
from ..errors import SpecError
from .notes import InexactSize
from .rf import GLOBAL_RF, RF, merge_rf  # noqa: F401  (the layer modules import them from here)

Shape = tuple[int, ...]
Attrs = Mapping[str, Any]
Warn = Callable[[InexactSize], None]

REQUIRED = object()


@dataclass(frozen=True)
class Field:
    """One attribute of a layer in a spec. kind: int, pair, padding, bool, number."""

    kind: str
    default: Any = REQUIRED
    doc: str = ""
    minimum: int = 0


class LayerType:
    """Base class: a layer with no parameters, no cost and the input's shape."""

    name: ClassVar[str]
    doc: ClassVar[str] = ""
    fields: ClassVar[dict[str, Field]] = {}
    allocates: ClassVar[bool] = True  # False: in place or a view, adds no activation memory
    weight_layer: ClassVar[bool] = False  # counted among the weight layers (conv, linear)
    field_depends_on_size: ClassVar[bool] = False  # its receptive-field step changes with the input size
    returns_input: ClassVar[bool] = False  # its torch module returns the input's own memory (a view, the identity)

    def output_shape(self, a: Attrs, shape: Shape, warn: Warn) -> Shape:
        return shape

    def params(self, a: Attrs, shape: Shape) -> int:
        return 0

    def buffers(self, a: Attrs, shape: Shape) -> int:
        """Non-trainable stored values (BN running statistics)."""
        return 0

    def macs(self, a: Attrs, shape: Shape, out: Shape) -> int:
        """Multiply-accumulates of convolutions and matrix products only (torchvision's _ops)."""
        return 0

    def fvcore_flops(self, a: Attrs, shape: Shape, out: Shape) -> int:
        """What fvcore's default handles count for this op, per image."""
        return self.macs(a, shape, out)

    def receptive_field(self, a: Attrs, rf: RF, shape: Shape) -> RF:
        return rf

    def live_bytes(self, a: Attrs, shape: Shape, out: Shape, value_bytes: int) -> int:
        """Bytes its torch module holds at its peak in an inference pass, its input left out."""
        return 0 if self.returns_input else numel(out) * value_bytes

    def torch_module(self, a: Attrs, shape: Shape):  # pragma: no cover - overridden
        raise NotImplementedError(self.name)

    def probe_module(self, module):
        """The receptive-field probe's stand-in for this layer's torch module (archcalc.layers.probe):
        by default the identity, right for every layer that works position by position."""
        from . import probe

        return probe.identity(module)


REGISTRY: dict[str, LayerType] = {}


def register(cls: type[LayerType]) -> type[LayerType]:
    REGISTRY[cls.name] = cls()
    return cls


def torch_nn():
    """torch.nn, imported only when a torch module is actually built."""
    from ..deps import require_torch

    return require_torch().nn


# ---- shared arithmetic ---------------------------------------------------------------

def numel(shape: Shape) -> int:
    return math.prod(shape)


def need_image(name: str, shape: Shape) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise SpecError(f"{name} needs a CxHxW input, got {fmt.shape(shape)}")
    return shape  # type: ignore[return-value]


def sliding_size(
    size: int, kernel: int, stride: int, pad_before: int, pad_after: int, dilation: int,
    ceil_mode: bool, axis: str, warn: Warn,
) -> int:
    """floor((N + 2P - D(F-1) - 1)/S + 1), with torch's ceil_mode rule; warns when inexact."""
    span = dilation * (kernel - 1) + 1
    padded = size + pad_before + pad_after
    numerator = padded - span
    out = (-(-numerator // stride) if ceil_mode else numerator // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad_before:
        out -= 1  # the last window must start inside the input or its left padding
    if out < 1:  # ceil_mode keeps a first window that overhangs the padded input by less than a stride
        raise SpecError(
            f"kernel {kernel} (span {span} with dilation {dilation}) is larger than the padded "
            f"input {size}+{pad_before + pad_after}={padded} along {axis}"
        )
    if numerator % stride:
        dropped = unread_by_rounding(size, kernel, stride, pad_before, dilation, out)
        warn(InexactSize(axis, size, pad_before + pad_after, span, stride, ceil_mode, out, dropped))
    return out


def unread_by_rounding(size: int, kernel: int, stride: int, pad_before: int, dilation: int, out: int) -> tuple[int, ...]:
    """Input indices no window reads that one more window would read: what the rounding drops
    (a pixel that the stride skips anyway, as a 1x1 stride-2 convolution does, is not dropped)."""
    read = {i * stride + j * dilation for i in range(out) for j in range(kernel)}
    following = (out * stride + j * dilation for j in range(kernel))
    return tuple(sorted({p - pad_before for p in following if pad_before <= p < pad_before + size and p not in read}))


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow/Keras 'same': output ceil(N/S), extra padding on the bottom/right."""
    span = dilation * (kernel - 1) + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


def pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)  # type: ignore[return-value]


def resolve_padding(a: Attrs, shape: Shape, stride: tuple[int, int], dilation: tuple[int, int]):
    """((top, bottom), (left, right)) from an int, [h, w], 'valid' or 'same'."""
    padding = a["padding"]
    kernel = pair(a["kernel"])
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        return tuple(same_padding(n, k, s, d) for n, k, s, d in zip(shape[1:], kernel, stride, dilation))
    ph, pw = pair(padding)
    return (ph, ph), (pw, pw)


def window_output(name: str, a: Attrs, shape: Shape, warn: Warn, ceil_mode: bool = False) -> tuple[int, int]:
    need_image(name, shape)
    kernel, stride, dilation = pair(a["kernel"]), pair(a["stride"] or a["kernel"]), pair(a.get("dilation", 1))
    pads = resolve_padding(a, shape, stride, dilation)
    return tuple(  # type: ignore[return-value]
        sliding_size(n, k, s, p[0], p[1], d, ceil_mode, axis, warn)
        for n, k, s, p, d, axis in zip(shape[1:], kernel, stride, pads, dilation, ("H", "W"))
    )


def window_rf(a: Attrs, rf: RF, shape: Shape) -> RF:
    kernel, stride, dilation = pair(a["kernel"]), pair(a["stride"] or a["kernel"]), pair(a.get("dilation", 1))
    (top, _), (left, _) = resolve_padding(a, shape, stride, dilation)
    return rf.window(kernel, stride, dilation, (top, left))
