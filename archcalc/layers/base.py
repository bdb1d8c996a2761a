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
from fractions import Fraction
from typing import Any, Callable, ClassVar, Mapping

from .. import fmt
from ..errors import SpecError

Shape = tuple[int, ...]
Attrs = Mapping[str, Any]
Warn = Callable[[str], None]

REQUIRED = object()


@dataclass(frozen=True)
class Field:
    """One attribute of a layer in a spec. kind: int, pair, padding, bool, number."""

    kind: str
    default: Any = REQUIRED
    doc: str = ""
    minimum: int = 0


@dataclass(frozen=True)
class RF:
    """Receptive field of one output unit, in input pixels: size and jump (stride product).

    size is None once every output depends on the whole input (global pooling, linear).
    """

    size: tuple[int, int] | None = (1, 1)
    jump: tuple[Fraction, Fraction] = (Fraction(1), Fraction(1))

    def grow(self, kernel: tuple[int, int], stride: tuple[int, int] | tuple[Fraction, Fraction]) -> "RF":
        if self.size is None:
            return self
        size = tuple(s + (k - 1) * j for s, k, j in zip(self.size, kernel, self.jump))
        jump = tuple(j * Fraction(st) for j, st in zip(self.jump, stride))
        return RF(tuple(int(math.ceil(s)) for s in size), jump)  # type: ignore[arg-type]

    def label(self) -> str:
        if self.size is None:
            return "global"
        h, w = self.size
        return f"{h}" if h == w else f"{h}x{w}"


GLOBAL_RF = RF(None)


def merge_rf(fields: list[RF]) -> RF:
    """Receptive field after branches meet: the widest branch decides."""
    if any(f.size is None for f in fields):
        return GLOBAL_RF
    size = tuple(max(f.size[i] for f in fields) for i in range(2))  # type: ignore[index]
    jump = tuple(max(f.jump[i] for f in fields) for i in range(2))
    return RF(size, jump)  # type: ignore[arg-type]


class LayerType:
    """Base class: a layer with no parameters, no cost and the input's shape."""

    name: ClassVar[str]
    doc: ClassVar[str] = ""
    fields: ClassVar[dict[str, Field]] = {}
    allocates: ClassVar[bool] = True  # False: in place or a view, adds no activation memory

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

    def torch_module(self, a: Attrs, shape: Shape):  # pragma: no cover - overridden
        raise NotImplementedError(self.name)

    # What an imported graph op this type stands for (archcalc.importers): names of torch module
    # classes, of torch functions and tensor methods, and of ONNX op types.
    torch_modules: ClassVar[tuple[str, ...]] = ()
    torch_functions: ClassVar[tuple[str, ...]] = ()
    onnx_ops: ClassVar[tuple[str, ...]] = ()

    def import_fields(self, op: Any) -> dict | list[dict] | None:
        """Spec fields of this type for an imported op (archcalc.importers.graph.Op), a list of
        spec nodes when the op stands for several layers, or None when the type does not fit it."""
        return {}


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
        exact = Fraction(numerator, stride) + 1
        warn(
            f"{axis}: ({size} + {pad_before + pad_after} - {span})/{stride} + 1 = {float(exact):g} is not whole; "
            f"{'ceil' if ceil_mode else 'floor'} gives {out}"
        )
    return out


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


def window_rf(a: Attrs, rf: RF) -> RF:
    kernel, dilation = pair(a["kernel"]), pair(a.get("dilation", 1))
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    return rf.grow(span, pair(a["stride"] or a["kernel"]))  # type: ignore[arg-type]


# ---- reading imported ops (archcalc.importers) -------------------------------------

def compact_pair(value: Any) -> int | list[int]:
    """A spec pair from an int or a sequence of two: an int when both agree."""
    h, w = pair(value) if isinstance(value, int) else tuple(int(v) for v in value)
    return h if h == w else [h, w]


def spec_padding(sides: tuple[int, int, int, int], op: Any, kernel: Any, stride: Any, dilation: Any = 1) -> Any:
    """A spec padding field from (top, bottom, left, right), an explicit pad before the op added.

    Unequal sides are accepted only as the TensorFlow 'same' rule for this input size.
    """
    top, bottom, left, right = (s + e for s, e in zip(sides, op.pad))
    if top == bottom and left == right:
        return compact_pair((top, left))
    shape = need_image(op.target, op.input)
    same = tuple(same_padding(n, k, s, d) for n, k, s, d in zip(shape[1:], pair(kernel), pair(stride), pair(dilation)))
    if same == ((top, bottom), (left, right)):
        return "same"
    raise SpecError(f"padding top {top}, bottom {bottom}, left {left}, right {right} is neither symmetric "
                    f"nor the 'same' rule for input {fmt.shape(shape)}")
