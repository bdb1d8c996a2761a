"""Convolutions and fully connected layers: the only layers that count MACs."""
from __future__ import annotations

from typing import Any

from ..errors import SpecError
from .base import (
    RF,
    Attrs,
    Field,
    LayerType,
    Shape,
    Warn,
    compact_pair,
    need_image,
    pair,
    register,
    resolve_padding,
    spec_padding,
    torch_nn,
    window_output,
    window_rf,
)

_CONV_FIELDS = {
    "out": Field("int", doc="output channels", minimum=1),
    "kernel": Field("pair", doc="kernel size, int or [h, w]", minimum=1),
    "stride": Field("pair", 1, minimum=1),
    "padding": Field("padding", 0, doc="int, [h, w], 'valid' or 'same' (TensorFlow rule: output ceil(N/S))"),
    "dilation": Field("pair", 1, minimum=1),
    "groups": Field("int", 1, minimum=1),
    "bias": Field("bool", True),
}


def _check_groups(a: Attrs, in_channels: int) -> None:
    groups, out = a["groups"], a["out"]
    if groups < 1 or in_channels % groups or out % groups:
        raise SpecError(
            f"groups={groups} must divide both the input channels ({in_channels}) "
            f"and the output channels ({out})"
        )


def _kernel_volume(a: Attrs, in_channels: int) -> int:
    kh, kw = pair(a["kernel"])
    return in_channels // a["groups"] * kh * kw


@register
class Conv2d(LayerType):
    name = "conv2d"
    doc = "2-D convolution. MACs = Cout*Hout*Wout*(Cin/groups)*Kh*Kw; bias not counted."
    fields = _CONV_FIELDS

    def output_shape(self, a: Attrs, shape: Shape, warn: Warn) -> Shape:
        channels, _, _ = need_image(self.name, shape)
        _check_groups(a, channels)
        return (a["out"], *window_output(self.name, a, shape, warn))

    def params(self, a: Attrs, shape: Shape) -> int:
        return a["out"] * _kernel_volume(a, shape[0]) + (a["out"] if a["bias"] else 0)

    def macs(self, a: Attrs, shape: Shape, out: Shape) -> int:
        return out[0] * out[1] * out[2] * _kernel_volume(a, shape[0])

    def receptive_field(self, a: Attrs, rf: RF, shape: Shape) -> RF:
        return window_rf(a, rf)

    def torch_module(self, a: Attrs, shape: Shape):
        nn = torch_nn()
        stride, dilation = pair(a["stride"]), pair(a["dilation"])
        (top, bottom), (left, right) = resolve_padding(a, shape, stride, dilation)
        symmetric = top == bottom and left == right
        conv = nn.Conv2d(
            shape[0], a["out"], pair(a["kernel"]), stride, (top, left) if symmetric else 0,
            dilation, a["groups"], a["bias"],
        )
        if symmetric:
            return conv
        return nn.Sequential(nn.ZeroPad2d((left, right, top, bottom)), conv)

    torch_modules = ("Conv2d",)
    torch_functions = ("conv2d",)
    onnx_ops = ("Conv",)

    def import_fields(self, op: Any) -> dict | None:
        if op.origin == "module":
            m = op.attrs
            if m["padding_mode"] != "zeros":
                return None
            kernel, stride, dilation, padding = m["kernel_size"], m["stride"], m["dilation"], m["padding"]
            out, groups, bias = m["out_channels"], m["groups"], m["bias"] is not None
        elif op.origin == "call" and op.weights:  # F.conv2d(x, self.weight, self.bias, ...)
            a, weight = op.attrs, op.weights[0]
            kernel, stride, dilation, padding = weight[2:], a.get("stride", 1), a.get("dilation", 1), a.get("padding", 0)
            out, groups, bias = weight[0], a.get("groups", 1), len(op.weights) > 1
        elif op.origin == "onnx":
            a, weight = op.attrs, op.weights[0]
            kernel, stride, dilation = a.get("kernel_shape", weight[2:]), a.get("strides", 1), a.get("dilations", 1)
            padding = _onnx_padding(a)
            out, groups, bias = weight[0], a.get("group", 1), len(op.weights) > 1
        else:
            return None
        if isinstance(padding, str) and any(op.pad):
            return None
        if not isinstance(padding, str):
            top, left = (padding, padding) if isinstance(padding, int) else padding[:2]
            bottom, right = (top, left) if isinstance(padding, int) or len(padding) == 2 else padding[2:]
            padding = spec_padding((top, bottom, left, right), op, kernel, stride, dilation)
        return {"out": out, "kernel": compact_pair(kernel), "stride": compact_pair(stride), "padding": padding,
                "dilation": compact_pair(dilation), "groups": groups, "bias": bias}


@register
class ConvTranspose2d(LayerType):
    name = "conv_transpose2d"
    doc = (
        "2-D transposed convolution. Output (N-1)*S - 2P + D(K-1) + output_padding + 1. "
        "MACs = Cin*Hin*Win*(Cout/groups)*Kh*Kw (each input pixel scatters one kernel)."
    )
    fields = {
        **{k: v for k, v in _CONV_FIELDS.items() if k != "padding"},
        "padding": Field("pair", 0),
        "output_padding": Field("pair", 0),
    }

    def output_shape(self, a: Attrs, shape: Shape, warn: Warn) -> Shape:
        channels, height, width = need_image(self.name, shape)
        _check_groups(a, channels)
        sizes = []
        for axis, n, k, s, p, op, d in zip(
            "HW", (height, width), pair(a["kernel"]), pair(a["stride"]), pair(a["padding"]),
            pair(a["output_padding"]), pair(a["dilation"]),
        ):
            if op >= s and op >= d:
                raise SpecError(f"output_padding {op} must be smaller than stride {s} or dilation {d} along {axis}")
            size = (n - 1) * s - 2 * p + d * (k - 1) + op + 1
            if size < 1:
                raise SpecError(
                    f"output size ({n} - 1)*{s} - 2*{p} + {d}*({k} - 1) + {op} + 1 = {size} is below 1 along {axis}"
                )
            sizes.append(size)
        return (a["out"], *sizes)

    def params(self, a: Attrs, shape: Shape) -> int:
        kh, kw = pair(a["kernel"])
        return shape[0] * (a["out"] // a["groups"]) * kh * kw + (a["out"] if a["bias"] else 0)

    def macs(self, a: Attrs, shape: Shape, out: Shape) -> int:
        kh, kw = pair(a["kernel"])
        return shape[0] * shape[1] * shape[2] * (a["out"] // a["groups"]) * kh * kw

    def receptive_field(self, a: Attrs, rf: RF, shape: Shape) -> RF:
        # An output pixel gathers at most ceil(span/S) input pixels per axis; the grid gets S times finer.
        stride, dilation = pair(a["stride"]), pair(a["dilation"])
        spans = tuple(-(-(d * (k - 1) + 1) // s) for k, s, d in zip(pair(a["kernel"]), stride, dilation))
        grown = rf.grow(spans, (1, 1))
        if grown.size is None:
            return grown
        return RF(grown.size, tuple(j / s for j, s in zip(grown.jump, stride)))  # type: ignore[arg-type]

    def torch_module(self, a: Attrs, shape: Shape):
        return torch_nn().ConvTranspose2d(
            shape[0], a["out"], pair(a["kernel"]), pair(a["stride"]), pair(a["padding"]),
            pair(a["output_padding"]), a["groups"], a["bias"], pair(a["dilation"]),
        )

    torch_modules = ("ConvTranspose2d",)
    onnx_ops = ("ConvTranspose",)

    def import_fields(self, op: Any) -> dict | None:
        if op.origin == "module":
            m = op.attrs
            if m["padding_mode"] != "zeros" or any(op.pad):
                return None
            return {"out": m["out_channels"], "kernel": compact_pair(m["kernel_size"]), "stride": compact_pair(m["stride"]),
                    "padding": compact_pair(m["padding"]), "output_padding": compact_pair(m["output_padding"]),
                    "dilation": compact_pair(m["dilation"]), "groups": m["groups"], "bias": m["bias"] is not None}
        if op.origin != "onnx" or any(op.pad) or "output_shape" in op.attrs:
            return None
        a, weight = op.attrs, op.weights[0]
        pads = a.get("pads", [0, 0, 0, 0])
        if pads[:2] != pads[2:]:
            return None
        groups = a.get("group", 1)
        return {"out": weight[1] * groups, "kernel": compact_pair(a.get("kernel_shape", weight[2:])),
                "stride": compact_pair(a.get("strides", 1)), "padding": compact_pair(pads[:2]),
                "output_padding": compact_pair(a.get("output_padding", 0)), "dilation": compact_pair(a.get("dilations", 1)),
                "groups": groups, "bias": len(op.weights) > 1}


@register
class Linear(LayerType):
    name = "linear"
    doc = "Fully connected layer on a flat input. MACs = in*out; bias not counted."
    fields = {"out": Field("int", doc="output features", minimum=1), "bias": Field("bool", True)}

    def output_shape(self, a: Attrs, shape: Shape, warn: Warn) -> Shape:
        if len(shape) != 1:
            raise SpecError("linear needs a flat input (add a flatten before it)")
        return (a["out"],)

    def params(self, a: Attrs, shape: Shape) -> int:
        return shape[0] * a["out"] + (a["out"] if a["bias"] else 0)

    def macs(self, a: Attrs, shape: Shape, out: Shape) -> int:
        return shape[0] * a["out"]

    def receptive_field(self, a: Attrs, rf: RF, shape: Shape) -> RF:
        return RF(None)

    def torch_module(self, a: Attrs, shape: Shape):
        return torch_nn().Linear(shape[0], a["out"], a["bias"])

    torch_modules = ("Linear",)
    torch_functions = ("linear",)
    onnx_ops = ("Gemm", "MatMul")

    def import_fields(self, op: Any) -> dict | None:
        if op.origin == "module":
            return {"out": op.attrs["out_features"], "bias": op.attrs["bias"] is not None}
        if op.origin == "call" and op.weights and len(op.weights[0]) == 2:  # F.linear(x, self.weight, self.bias)
            return {"out": op.weights[0][0], "bias": len(op.weights) > 1}
        if op.origin != "onnx" or not op.weights or len(op.weights[0]) != 2:
            return None
        a = op.attrs
        if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
            return None
        out = op.weights[0][0] if a.get("transB", 0) else op.weights[0][1]
        return {"out": out, "bias": len(op.weights) > 1}


def _onnx_padding(a: Any) -> Any:
    """Padding of an ONNX Conv or pool: (top, left, bottom, right), or 'same' from auto_pad."""
    auto = a.get("auto_pad", "NOTSET")
    if auto == "SAME_UPPER":
        return "same"
    if auto == "VALID":
        return 0
    if auto != "NOTSET":
        raise SpecError(f"auto_pad {auto} (extra padding at the top/left) has no archcalc form")
    return list(a.get("pads", [0, 0, 0, 0]))
