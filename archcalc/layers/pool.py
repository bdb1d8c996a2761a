"""Pooling, means and upsampling: no parameters, no MACs. fvcore counts adaptive average pooling and upsampling."""
from __future__ import annotations

import functools
import math
from typing import Any

from ..errors import SpecError
from . import layout
from .base import (
    GLOBAL_RF,
    RF,
    Attrs,
    Field,
    LayerType,
    Shape,
    Warn,
    axes_lines,
    compact_pair,
    need_image,
    numel,
    pair,
    register,
    resolve_padding,
    rf_working,
    same_shape_working,
    spec_padding,
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

    def import_fields(self, op: Any) -> dict | None:
        """Kernel, stride, padding and ceil_mode of a torch module, a functional call or an ONNX pool."""
        a = op.attrs
        if op.origin == "onnx":
            from .conv import _onnx_padding

            kernel, stride, padding = a["kernel_shape"], a.get("strides", 1), _onnx_padding(a)
            ceil_mode, dilation = bool(a.get("ceil_mode", 0)), a.get("dilations", 1)
        else:
            kernel, stride, padding = a["kernel_size"], a["stride"] or a["kernel_size"], a["padding"]
            ceil_mode, dilation = a["ceil_mode"], a.get("dilation", 1)
        if isinstance(padding, str):
            if any(op.pad):
                return None
        else:
            top, left = (padding, padding) if isinstance(padding, int) else padding[:2]
            bottom, right = (top, left) if isinstance(padding, int) or len(padding) == 2 else padding[2:]
            padding = spec_padding((top, bottom, left, right), op, kernel, stride, dilation)
        fields = {"kernel": compact_pair(kernel), "stride": compact_pair(stride), "padding": padding, "ceil_mode": ceil_mode}
        if "dilation" in self.fields:
            fields["dilation"] = compact_pair(dilation)
        elif compact_pair(dilation) != 1:
            return None
        return fields


@register
class MaxPool2d(_Window):
    name = "max_pool2d"
    saves_input = True

    def saved_fixed_bytes(self, a: Attrs, shape: Shape, out: Shape) -> int:
        return 8 * numel(out)  # the int64 index of each maximum

    also_known_as = ("MaxPooling2D", "maxpool")
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

    torch_modules = ("MaxPool2d",)
    torch_functions = ("max_pool2d",)
    onnx_ops = ("MaxPool",)

    def import_fields(self, op: Any) -> dict | None:
        if op.attrs.get("return_indices") or op.attrs.get("storage_order", 0):
            return None
        return super().import_fields(op)


@register
class AvgPool2d(_Window):
    name = "avg_pool2d"
    saves_input = True
    also_known_as = ("AveragePooling2D", "avgpool", "avg_pool")
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

    torch_modules = ("AvgPool2d",)
    torch_functions = ("avg_pool2d",)
    onnx_ops = ("AveragePool",)

    def import_fields(self, op: Any) -> dict | None:
        if op.attrs.get("divisor_override") is not None:
            return None
        fields = super().import_fields(op)
        if fields is not None:
            default = 0 if op.origin == "onnx" else True
            fields["count_include_pad"] = bool(op.attrs.get("count_include_pad", default))
        return fields


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

    def import_fields(self, op: Any) -> dict | None:
        if op.origin == "onnx":
            return {"output": 1}  # GlobalAveragePool, GlobalMaxPool
        size = op.attrs["output_size"]
        if size is None or (not isinstance(size, int) and None in tuple(size)):
            return None
        return {"output": compact_pair(size)}


@register
class AdaptiveAvgPool2d(_Adaptive):
    name = "adaptive_avg_pool2d"
    saves_input = True

    def keeps_input(self, a: Attrs, shape: Shape, out: Shape) -> bool:
        return tuple(out[1:]) != (1, 1)  # to 1x1 torch takes the mean, which keeps only the input's size
    also_known_as = ("GlobalAveragePooling2D", "global_avg_pool")
    word = "avgpool"
    doc = "Adaptive average pooling to a fixed output size. fvcore counts one flop per input element."

    def fvcore_flops(self, a: Attrs, shape: Shape, out: Shape) -> int:
        return numel(shape)

    def probe_module(self, module):
        from . import probe

        return probe.keep(module)

    def torch_module(self, a: Attrs, shape: Shape):
        return torch_nn().AdaptiveAvgPool2d(pair(a["output"]))

    torch_modules = ("AdaptiveAvgPool2d",)
    torch_functions = ("adaptive_avg_pool2d",)
    onnx_ops = ("GlobalAveragePool",)


@register
class AdaptiveMaxPool2d(_Adaptive):
    name = "adaptive_max_pool2d"
    saves_input = True

    def saved_fixed_bytes(self, a: Attrs, shape: Shape, out: Shape) -> int:
        return 8 * numel(out)  # the int64 index of each maximum

    also_known_as = ("GlobalMaxPooling2D", "global_max_pool")
    word = "maxpool"
    doc = "Adaptive max pooling to a fixed output size (fvcore counts 0)."

    def live_bytes(self, a: Attrs, shape: Shape, out: Shape, value_bytes: int) -> int:
        return numel(out) * (value_bytes + 8)  # and the int64 indices of the maxima

    def probe_module(self, module):
        from . import probe

        return probe.adaptive_average(module)

    def torch_module(self, a: Attrs, shape: Shape):
        return torch_nn().AdaptiveMaxPool2d(pair(a["output"]))

    torch_modules = ("AdaptiveMaxPool2d",)
    torch_functions = ("adaptive_max_pool2d",)
    onnx_ops = ("GlobalMaxPool",)

    def import_fields(self, op: Any) -> dict | None:
        return None if op.attrs.get("return_indices") else super().import_fields(op)


@functools.cache
def _torch_classes():
    """Modules torch.nn lacks: the mean over some axes."""
    nn = torch_nn()

    class Mean(nn.Module):
        def __init__(self, keepdim: bool, dims: tuple[int, ...] = (2, 3)):
            super().__init__()
            self.keepdim, self.dims = keepdim, dims

        def forward(self, x):
            return x.mean(self.dims, keepdim=self.keepdim)

    return (Mean,)


_POSITIONS = {layout.IMAGE: (1, 2), layout.GRID: (0, 1), layout.TOKENS: (0,)}  # the axes Mean averages


@register
class Mean(LayerType):
    name = "mean"
    doc = (
        "Mean over the positions: H and W of an image (x.mean((2, 3))) or of a channels-last grid (x.mean((1, 2))), "
        "the tokens of a sequence (x.mean(1)); output the features (with keepdim, ones in place of the positions). "
        "Every output sees the whole input. fvcore counts 0 (it has no handle for aten::mean)."
    )
    fields = {"keepdim": Field("bool", False)}

    def output_shape(self, a: Attrs, shape: Shape, warn: Warn) -> Shape:
        layout.need(self.name, shape, layout.IMAGE, layout.GRID, layout.TOKENS)
        axes = _POSITIONS[layout.layout_of(shape)]
        if a["keepdim"]:
            return layout.like(shape, (1 if i in axes else n for i, n in enumerate(shape)))
        return tuple(n for i, n in enumerate(shape) if i not in axes)

    def probe_module(self, module):
        from . import probe

        return probe.keep(module)

    def receptive_field(self, a: Attrs, rf: RF, shape: Shape) -> RF:
        axes = _POSITIONS[layout.layout_of(shape)]
        return rf if all(shape[i] == 1 for i in axes) else GLOBAL_RF

    def torch_module(self, a: Attrs, shape: Shape):
        return _torch_classes()[0](a["keepdim"], tuple(i + 1 for i in _POSITIONS[layout.layout_of(shape)]))

    torch_modules = ("Mean",)
    torch_functions = ("mean",)
    onnx_ops = ("ReduceMean",)

    def import_fields(self, op: Any) -> dict | None:
        a = op.attrs
        if op.origin == "module":
            return {"keepdim": a["keepdim"]}
        if op.origin == "call":
            dims, keepdim = a.get("dim"), a.get("keepdim", False)
        else:
            dims, keepdim = a.get("axes", op.values[0] if op.values else None), a.get("keepdims", 1)
        if dims is None or sorted(d % 4 for d in dims) != [2, 3]:
            return None
        return {"keepdim": bool(keepdim)}


@register
class Upsample(LayerType):
    name = "upsample"
    doc = (
        "Upsampling by an integer `scale` (or to `size`), nearest neighbour or bilinear. No parameters, no MACs; "
        "fvcore counts 1 flop per output element for nearest, 4 for bilinear."
    )
    fields = {
        "scale": Field("pair", 2, doc="factor along H and W, int or [h, w]", minimum=1),
        "size": Field("pair", None, doc="output size [h, w] instead of the scale", minimum=1),
        "bilinear": Field("bool", False, doc="bilinear interpolation (else nearest neighbour)"),
        "align_corners": Field("bool", False, doc="torch's align_corners (bilinear only)"),
    }

    def output_shape(self, a: Attrs, shape: Shape, warn: Warn) -> Shape:
        channels, height, width = need_image(self.name, shape)
        if a["size"] is not None:
            return (channels, *pair(a["size"]))
        sh, sw = pair(a["scale"])
        return (channels, height * sh, width * sw)

    def fvcore_flops(self, a: Attrs, shape: Shape, out: Shape) -> int:
        return numel(out) * (4 if a["bilinear"] else 1)

    def receptive_field(self, a: Attrs, rf: RF, shape: Shape) -> RF:
        # An output pixel reads one input pixel (nearest) or two neighbours per axis (bilinear); the grid gets finer.
        out = self.output_shape(a, shape, lambda _: None)
        return rf.resampled(shape[1:], out[1:], a["bilinear"], a["align_corners"])

    def probe_module(self, module):
        from . import probe

        return probe.keep(module)

    def torch_module(self, a: Attrs, shape: Shape):
        size = None if a["size"] is None else pair(a["size"])
        scale = None if size else tuple(float(s) for s in pair(a["scale"]))
        mode = "bilinear" if a["bilinear"] else "nearest"
        return torch_nn().Upsample(size, scale, mode, a["align_corners"] if a["bilinear"] else None)

    torch_modules = ("Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d")
    torch_functions = ("interpolate", "upsample")
    onnx_ops = ("Resize", "Upsample")

    def import_fields(self, op: Any) -> dict | None:
        a = op.attrs
        if op.origin == "onnx":
            mode = a.get("mode", "nearest")
            if mode not in ("nearest", "linear") or op.output is None:
                return None
            bilinear, align = mode == "linear", a.get("coordinate_transformation_mode") == "align_corners"
        else:
            mode = a.get("mode", "nearest")
            if mode not in ("nearest", "bilinear"):
                return None
            bilinear, align = mode == "bilinear", bool(a.get("align_corners"))
        if op.output is None or len(op.input) != 3:
            return None
        fields: dict = {"bilinear": bilinear, "align_corners": align}
        if all(o % n == 0 for n, o in zip(op.input[1:], op.output[1:])):
            fields["scale"] = compact_pair([o // n for n, o in zip(op.input[1:], op.output[1:])])
        else:
            fields["size"] = list(op.output[1:])
        return fields
