"""Convolutions and fully connected layers: the only layers that count MACs."""
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
    need_image,
    numel,
    pair,
    register,
    resolve_padding,
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
    weight_layer = True
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
        return window_rf(a, rf, shape)

    def live_bytes(self, a: Attrs, shape: Shape, out: Shape, value_bytes: int) -> int:
        (top, bottom), (left, right) = resolve_padding(a, shape, pair(a["stride"]), pair(a["dilation"]))
        padded = 0 if top == bottom and left == right else shape[0] * (shape[1] + top + bottom) * (shape[2] + left + right)
        return (numel(out) + padded) * value_bytes  # an asymmetric padding is a padded copy (ZeroPad2d)

    def probe_module(self, module):
        from . import probe

        return probe.window_sum(module)

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


@register
class ConvTranspose2d(LayerType):
    name = "conv_transpose2d"
    weight_layer = True
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
        return rf.transposed(pair(a["kernel"]), pair(a["stride"]), pair(a["dilation"]), pair(a["padding"]))

    def probe_module(self, module):
        from . import probe

        return probe.window_sum(module)

    def torch_module(self, a: Attrs, shape: Shape):
        return torch_nn().ConvTranspose2d(
            shape[0], a["out"], pair(a["kernel"]), pair(a["stride"]), pair(a["padding"]),
            pair(a["output_padding"]), a["groups"], a["bias"], pair(a["dilation"]),
        )


@register
class Linear(LayerType):
    name = "linear"
    weight_layer = True
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
        return GLOBAL_RF

    def torch_module(self, a: Attrs, shape: Shape):
        return torch_nn().Linear(shape[0], a["out"], a["bias"])
