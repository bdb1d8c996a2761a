"""Pooling: no parameters, no MACs. fvcore counts only adaptive average pooling."""
from __future__ import annotations

import math

from ..errors import SpecError
from .base import (
    GLOBAL_RF,
    RF,
    Attrs,
    Field,
    LayerType,
    Shape,
    Warn,
    need_image,
    numel,
    pair,
    register,
    resolve_padding,
    torch_nn,
    window_output,
    window_rf,
)

_WINDOW = {
    "kernel": Field("pair", minimum=1),
    "stride": Field("pair", None, doc="defaults to the kernel", minimum=1, default_from="kernel"),
    "padding": Field("padding", 0),
    "ceil_mode": Field("bool", False),
}


def _torch_padding(layer: LayerType, a: Attrs, shape: Shape) -> tuple[int, int]:
    kernel = pair(a["kernel"])
    stride, dilation = pair(a["stride"] or a["kernel"]), pair(a.get("dilation", 1))
    (top, bottom), (left, right) = resolve_padding(a, shape, stride, dilation)
    if top != bottom or left != right:
        raise SpecError(f"{layer.name}: asymmetric 'same' padding has no torch equivalent")
    for p, k in zip((top, left), kernel):
        if p > k // 2:
            raise SpecError(f"{layer.name}: padding {p} must be at most half the kernel {k}")
    return top, left


class _Window(LayerType):
    def output_shape(self, a: Attrs, shape: Shape, warn: Warn) -> Shape:
        if a["padding"] not in ("same", "valid"):
            _torch_padding(self, a, shape)  # torch refuses padding wider than half the kernel
        return (shape[0], *window_output(self.name, a, shape, warn, a["ceil_mode"]))

    def receptive_field(self, a: Attrs, rf: RF, shape: Shape) -> RF:
        return window_rf(a, rf)


@register
class MaxPool2d(_Window):
    name = "max_pool2d"
    doc = "Max pooling (comparisons are not counted as MACs; fvcore counts 0)."
    fields = {**_WINDOW, "dilation": Field("pair", 1, minimum=1)}

    def torch_module(self, a: Attrs, shape: Shape):
        return torch_nn().MaxPool2d(
            pair(a["kernel"]), pair(a["stride"] or a["kernel"]), _torch_padding(self, a, shape),
            pair(a["dilation"]), ceil_mode=a["ceil_mode"],
        )


@register
class AvgPool2d(_Window):
    name = "avg_pool2d"
    doc = "Average pooling (additions are not counted as MACs; fvcore counts 0)."
    fields = {**_WINDOW, "count_include_pad": Field("bool", True)}

    def torch_module(self, a: Attrs, shape: Shape):
        return torch_nn().AvgPool2d(
            pair(a["kernel"]), pair(a["stride"] or a["kernel"]), _torch_padding(self, a, shape),
            a["ceil_mode"], a["count_include_pad"],
        )


def _adaptive_window(size: int, out: int) -> tuple[int, int]:
    """Largest window and the step between windows of torch's adaptive pooling.

    Window i spans [floor(i*N/O), ceil((i+1)*N/O)). With N = q*O + r its width is q + ceil((a + r)/O)
    for a = i*r mod O, which runs over the multiples of gcd(r, O): the widest is q when r = 0,
    q + 2 when gcd(r, O) < r (some a exceeds O - r), else q + 1. Closed form: O may be 10**9.
    """
    q, r = divmod(size, out)
    widest = q if r == 0 else q + (2 if math.gcd(r, out) < r else 1)
    return widest, max(q, 1)


class _Adaptive(LayerType):
    fields = {"output": Field("pair", 1, doc="output size, int or [h, w]", minimum=1)}

    def output_shape(self, a: Attrs, shape: Shape, warn: Warn) -> Shape:
        need_image(self.name, shape)
        return (shape[0], *pair(a["output"]))

    def receptive_field(self, a: Attrs, rf: RF, shape: Shape) -> RF:
        out = pair(a["output"])
        if out == (1, 1) and shape[1:] != (1, 1):
            return GLOBAL_RF
        windows = [_adaptive_window(n, o) for n, o in zip(shape[1:], out)]
        return rf.grow(tuple(w for w, _ in windows), tuple(s for _, s in windows))  # type: ignore[arg-type]


@register
class AdaptiveAvgPool2d(_Adaptive):
    name = "adaptive_avg_pool2d"
    doc = "Adaptive average pooling to a fixed output size. fvcore counts one flop per input element."

    def fvcore_flops(self, a: Attrs, shape: Shape, out: Shape) -> int:
        return numel(shape)

    def torch_module(self, a: Attrs, shape: Shape):
        return torch_nn().AdaptiveAvgPool2d(pair(a["output"]))


@register
class AdaptiveMaxPool2d(_Adaptive):
    name = "adaptive_max_pool2d"
    doc = "Adaptive max pooling to a fixed output size (fvcore counts 0)."

    def torch_module(self, a: Attrs, shape: Shape):
        return torch_nn().AdaptiveMaxPool2d(pair(a["output"]))
