"""Pooling: no parameters, no MACs. fvcore counts only adaptive average pooling."""
from __future__ import annotations

from ..errors import SpecError
from .base import (
    GLOBAL_RF,
    RF,
    Attrs,
    Field,
    LayerType,
    Shape,
    Warn,
    axes_lines,
    need_image,
    numel,
    pair,
    register,
    resolve_padding,
    rf_working,
    same_shape_working,
    torch_nn,
    window_label,
    window_output,
    window_rf,
    window_spans,
    window_working,
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
    kind = "pool"
    word = ""

    def label(self, a: Attrs) -> str:
        return window_label(self.word, a)

    def working(self, a: Attrs, shape: Shape, out: Shape, rf: RF = RF()) -> list[str]:
        return [*window_working(a, shape, out, a["ceil_mode"]), f"channels kept: {shape[0]}; params = 0, MACs = 0",
                rf_working(rf, self.receptive_field(a, rf, shape), *window_spans(a))]

    def output_shape(self, a: Attrs, shape: Shape, warn: Warn) -> Shape:
        if a["padding"] not in ("same", "valid"):
            _torch_padding(self, a, shape)  # torch refuses padding wider than half the kernel
        return (shape[0], *window_output(self.name, a, shape, warn, a["ceil_mode"]))

    def receptive_field(self, a: Attrs, rf: RF, shape: Shape) -> RF:
        return window_rf(a, rf, shape)


@register
class MaxPool2d(_Window):
    name = "max_pool2d"
    word = "maxpool"
    doc = "Max pooling (comparisons are not counted as MACs; fvcore counts 0)."
    fields = {**_WINDOW, "dilation": Field("pair", 1, minimum=1)}

    def live_bytes(self, a: Attrs, shape: Shape, out: Shape, value_bytes: int) -> int:
        return numel(out) * (value_bytes + 8)  # torch computes the int64 indices of the maxima too

    def probe_module(self, module):
        from . import probe

        return probe.window_sum(module)  # max pooling passes a gradient to one input per window

    def torch_module(self, a: Attrs, shape: Shape):
        return torch_nn().MaxPool2d(
            pair(a["kernel"]), pair(a["stride"] or a["kernel"]), _torch_padding(self, a, shape),
            pair(a["dilation"]), ceil_mode=a["ceil_mode"],
        )


@register
class AvgPool2d(_Window):
    name = "avg_pool2d"
    word = "avgpool"
    doc = "Average pooling (additions are not counted as MACs; fvcore counts 0)."
    fields = {**_WINDOW, "count_include_pad": Field("bool", True)}

    def probe_module(self, module):
        from . import probe

        return probe.keep(module)

    def torch_module(self, a: Attrs, shape: Shape):
        return torch_nn().AvgPool2d(
            pair(a["kernel"]), pair(a["stride"] or a["kernel"]), _torch_padding(self, a, shape),
            a["ceil_mode"], a["count_include_pad"],
        )


def _adaptive_window(size: int, out: int) -> tuple[int, int]:
    """Largest window and the step between windows of torch's adaptive pooling (for the working)."""
    widest = max(-(-(i + 1) * size // out) - i * size // out for i in range(out))
    return widest, max(size // out, 1)


class _Adaptive(LayerType):
    field_depends_on_size = True
    fields = {"output": Field("pair", 1, doc="output size, int or [h, w]", minimum=1)}
    kind = "pool"
    word = ""

    def label(self, a: Attrs) -> str:
        h, w = pair(a["output"])
        return f"global {self.word}" if (h, w) == (1, 1) else f"{self.word} -> {h}x{w}"

    def working(self, a: Attrs, shape: Shape, out: Shape, rf: RF = RF()) -> list[str]:
        windows = [f"{axis}: {n} -> {o}, windows up to {w} wide, {s} apart"
                   for axis, n, o, (w, s) in zip("HW", shape[1:], out[1:],
                                                 (_adaptive_window(n, o) for n, o in zip(shape[1:], out[1:])))]
        return [same_shape_working(shape, out), *axes_lines(windows), "params = 0, MACs = 0",
                rf_working(rf, self.receptive_field(a, rf, shape))]

    def output_shape(self, a: Attrs, shape: Shape, warn: Warn) -> Shape:
        need_image(self.name, shape)
        return (shape[0], *pair(a["output"]))

    def receptive_field(self, a: Attrs, rf: RF, shape: Shape) -> RF:
        out = pair(a["output"])
        if out == (1, 1) and shape[1:] != (1, 1):
            return GLOBAL_RF
        return rf.adaptive(shape[1:], out)


@register
class AdaptiveAvgPool2d(_Adaptive):
    name = "adaptive_avg_pool2d"
    word = "avgpool"
    doc = "Adaptive average pooling to a fixed output size. fvcore counts one flop per input element."

    def fvcore_flops(self, a: Attrs, shape: Shape, out: Shape) -> int:
        return numel(shape)

    def probe_module(self, module):
        from . import probe

        return probe.keep(module)

    def torch_module(self, a: Attrs, shape: Shape):
        return torch_nn().AdaptiveAvgPool2d(pair(a["output"]))


@register
class AdaptiveMaxPool2d(_Adaptive):
    name = "adaptive_max_pool2d"
    word = "maxpool"
    doc = "Adaptive max pooling to a fixed output size (fvcore counts 0)."

    def live_bytes(self, a: Attrs, shape: Shape, out: Shape, value_bytes: int) -> int:
        return numel(out) * (value_bytes + 8)  # and the int64 indices of the maxima

    def probe_module(self, module):
        from . import probe

        return probe.adaptive_average(module)

    def torch_module(self, a: Attrs, shape: Shape):
        return torch_nn().AdaptiveMaxPool2d(pair(a["output"]))
