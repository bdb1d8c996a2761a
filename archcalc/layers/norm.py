"""Normalisation and per-channel scaling. No MACs (torchvision's _ops convention)."""
from __future__ import annotations

import functools
from typing import Any

from ..errors import SpecError
from ..kinds import Number
from . import layout
from .base import (
    RF,
    Attrs,
    Field,
    LayerType,
    Shape,
    Warn,
    need_image,
    numel,
    register,
    rf_working,
    same_shape_working,
    torch_nn,
)


class _Norm(LayerType):
    kind = "norm"
    word = ""

    def counted(self, a: Attrs, shape: Shape) -> str:
        """How the parameters come about, e.g. `2C (gamma, beta) = 2×64`."""
        return f"2C = 2×{shape[0]}"

    def label(self, a: Attrs) -> str:
        return self.word

    def working(self, a: Attrs, shape: Shape, out: Shape, rf: RF = RF()) -> list[str]:
        lines = [same_shape_working(shape, out)]
        params, buffers = self.params(a, shape), self.buffers(a, shape)
        lines.append(f"params = {self.counted(a, shape)} = {params:,}" if params else "params = 0")
        if buffers:
            lines.append(f"non-trainable = 2C (running mean, variance) = 2×{shape[0]} = {buffers:,}")
        lines.append("MACs = 0 (not counted)")
        return [*lines, rf_working(rf, self.receptive_field(a, rf, shape))]


@functools.cache
def _torch_classes():
    """The two modules torch.nn lacks: LayerNorm over NCHW channels, and a learned per-channel scale."""
    from ..deps import require_torch

    torch = require_torch()
    nn = torch.nn

    class LayerNorm2d(nn.LayerNorm):
        """LayerNorm over the channels of an NCHW tensor (as torchvision's ConvNeXt)."""

        def forward(self, x):
            x = x.permute(0, 2, 3, 1)
            x = nn.functional.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
            return x.permute(0, 3, 1, 2)

    class LayerScale(nn.Module):
        def __init__(self, channels: int, init: float):
            super().__init__()
            self.gamma = nn.Parameter(torch.full((channels, 1, 1), float(init)))

        def forward(self, x):
            return x * self.gamma

    return LayerNorm2d, LayerScale


@register
class BatchNorm2d(_Norm):
    name = "batch_norm2d"
    saves_input = True

    def saved_batch_bytes(self, a: Attrs, shape: Shape) -> int:
        return 2 * shape[0] * 4  # the batch's mean and inverse deviation per channel, fp32

    def param_tensors(self, a: Attrs, shape: Shape) -> int:
        return 2 if a["affine"] else 0

    also_known_as = ("BatchNormalization", "batchnorm", "bn")
    kind = "norm"
    word = "batchnorm"

    def counted(self, a: Attrs, shape: Shape) -> str:
        return f"2C (gamma, beta) = 2×{shape[0]}"
    doc = (
        "Batch normalisation. Trainable: gamma, beta (2C); non-trainable: running mean and "
        "variance (2C). fvcore counts 2 flops per element at inference (1 without affine)."
    )
    fields = {"eps": Field(Number(above=0), 1e-5, "added to the variance; > 0"), "affine": Field("bool", True)}

    def output_shape(self, a: Attrs, shape: Shape, warn: Warn) -> Shape:
        return need_image(self.name, shape)  # torch's BatchNorm2d refuses a flat input

    def params(self, a: Attrs, shape: Shape) -> int:
        return 2 * shape[0] if a["affine"] else 0

    def buffers(self, a: Attrs, shape: Shape) -> int:
        return 2 * shape[0]

    def fvcore_flops(self, a: Attrs, shape: Shape, out: Shape) -> int:
        return numel(shape) * (2 if a["affine"] else 1)

    def torch_module(self, a: Attrs, shape: Shape):
        return torch_nn().BatchNorm2d(shape[0], eps=a["eps"], affine=a["affine"])

    torch_modules = ("BatchNorm2d",)
    onnx_ops = ("BatchNormalization",)

    def import_fields(self, op: Any) -> dict | None:
        if op.origin == "module":
            if not op.attrs["track_running_stats"]:
                return None
            return {"eps": op.attrs["eps"], "affine": op.attrs["affine"]}
        if op.origin == "onnx":
            return {"eps": _rounded(op.attrs.get("epsilon", 1e-5))}
        return None


@register
class LayerNorm2d(_Norm):
    name = "layer_norm2d"
    saves_input = True

    def saved_fixed_bytes(self, a: Attrs, shape: Shape, out: Shape) -> int:
        return 2 * numel(shape[1:]) * 4  # mean and inverse deviation per position, fp32

    def param_tensors(self, a: Attrs, shape: Shape) -> int:
        return 2

    kind = "norm"
    word = "layernorm"
    doc = (
        "LayerNorm over the channels at every position (ConvNeXt). 2C parameters. "
        "fvcore counts 5 flops per element."
    )
    fields = {"eps": Field(Number(above=0), 1e-6, "added to the variance; > 0")}

    def output_shape(self, a: Attrs, shape: Shape, warn: Warn) -> Shape:
        return need_image(self.name, shape)

    def params(self, a: Attrs, shape: Shape) -> int:
        return 2 * shape[0]

    def fvcore_flops(self, a: Attrs, shape: Shape, out: Shape) -> int:
        return numel(shape) * 5

    def live_bytes(self, a: Attrs, shape: Shape, out: Shape, value_bytes: int) -> int:
        return (numel(out) + 2 * shape[1] * shape[2]) * value_bytes  # and the mean and 1/std of each position

    def torch_module(self, a: Attrs, shape: Shape):
        return _torch_classes()[0](shape[0], eps=a["eps"])

    # archcalc's and torchvision's (ConvNeXt) LayerNorm2d; LayerNorm over the channels of a permuted tensor
    torch_modules = ("LayerNorm2d", "LayerNorm")
    torch_functions = ("layer_norm",)
    onnx_ops = ("LayerNormalization",)
    reads_channels_last = True

    def import_fields(self, op: Any) -> dict | None:
        if op.target == "LayerNorm2d":
            return {"eps": op.attrs["eps"]} if not op.channels_last and op.attrs["elementwise_affine"] else None
        if not op.channels_last:
            return None
        channels, a = op.input[0], op.attrs
        if op.origin == "module":
            affine = a["elementwise_affine"] and a["bias"] is not None
            return {"eps": a["eps"]} if tuple(a["normalized_shape"]) == (channels,) and affine else None
        if op.weights != ((channels,), (channels,)):  # weight and bias: 2C parameters
            return None
        if op.origin == "call":  # F.layer_norm(x, (C,), weight, bias, eps)
            return {"eps": a.get("eps", 1e-5)} if tuple(a.get("normalized_shape") or ()) == (channels,) else None
        return {"eps": _rounded(a.get("epsilon", 1e-5))} if a.get("axis", -1) in (-1, 3) else None


@register
class LayerNorm(_Norm):
    name = "layer_norm"
    saves_input = True

    def saved_fixed_bytes(self, a: Attrs, shape: Shape, out: Shape) -> int:
        return 2 * numel(shape[:-1]) * 4  # mean and inverse deviation per token, fp32

    def param_tensors(self, a: Attrs, shape: Shape) -> int:
        return 2 if a["affine"] else 0

    word = "layernorm"
    doc = (
        "LayerNorm over the last axis (torch's nn.LayerNorm(D)): each token, each position of a channels-last "
        "grid, a flat vector. 2D parameters with affine. fvcore counts 5 flops per element (4 without affine)."
    )
    fields = {"eps": Field(Number(above=0), 1e-5, "added to the variance; > 0"),
              "affine": Field("bool", True, "a learned scale and shift per feature (elementwise_affine, bias)")}

    def counted(self, a: Attrs, shape: Shape) -> str:
        return f"2D = 2×{shape[-1]}"

    def output_shape(self, a: Attrs, shape: Shape, warn: Warn) -> Shape:
        return layout.need(self.name, shape, layout.TOKENS, layout.GRID, layout.FLAT, layout.TENSOR,
                           hint=" (layer_norm2d normalises the channels of an image)")

    def params(self, a: Attrs, shape: Shape) -> int:
        return 2 * shape[-1] if a["affine"] else 0

    def fvcore_flops(self, a: Attrs, shape: Shape, out: Shape) -> int:
        return numel(shape) * (5 if a["affine"] else 4)

    def live_bytes(self, a: Attrs, shape: Shape, out: Shape, value_bytes: int) -> int:
        return (numel(out) + 2 * numel(shape[:-1])) * value_bytes  # and the mean and 1/std of each position

    def torch_module(self, a: Attrs, shape: Shape):
        return torch_nn().LayerNorm(shape[-1], eps=a["eps"], elementwise_affine=a["affine"], bias=a["affine"])

    torch_modules = ("LayerNorm",)  # asked after layer_norm2d, which takes LayerNorm on a channels-last image
    onnx_ops = ("LayerNormalization",)  # over the last axis of tokens or of a grid a transpose made

    def import_fields(self, op: Any) -> dict | None:
        a = op.attrs
        if op.origin == "onnx" and not op.channels_last and layout.layout_of(op.input) != layout.IMAGE:
            last = (op.input[-1],) if op.input else ()
            fits = a.get("axis", -1) in (-1, len(op.input)) and op.weights == (last, last)
            return {"eps": _rounded(a.get("epsilon", 1e-5))} if fits else None
        if op.origin != "module" or op.channels_last or layout.layout_of(op.input) == layout.IMAGE:
            return None
        affine = a["elementwise_affine"] and a["bias"] is not None
        if tuple(a["normalized_shape"]) != (op.input[-1],) or a["elementwise_affine"] != affine:
            return None
        return {"eps": a["eps"], **({} if affine else {"affine": False})}


@register
class GroupNorm(LayerType):
    name = "group_norm"
    saves_input = True

    def saved_fixed_bytes(self, a: Attrs, shape: Shape, out: Shape) -> int:
        return 2 * a["groups"] * 4  # mean and inverse deviation per group, fp32

    def param_tensors(self, a: Attrs, shape: Shape) -> int:
        return 2 if a["affine"] else 0

    doc = (
        "Group normalisation: the channels in `groups` groups, each normalised over its channels and "
        "positions. 2C parameters (C without affine); fvcore counts 5 flops per element (4 without affine)."
    )
    fields = {"groups": Field("int", doc="number of groups; divides the channels", minimum=1),
              "eps": Field("number", 1e-5), "affine": Field("bool", True)}

    def output_shape(self, a: Attrs, shape: Shape, warn: Warn) -> Shape:
        channels, height, width = need_image(self.name, shape)
        if channels % a["groups"]:
            raise SpecError(f"groups={a['groups']} must divide the channels ({channels})")
        if channels // a["groups"] * height * width == 1:  # torch refuses it for one image
            raise SpecError(f"the {a['groups']} groups hold one value each ({channels}/{a['groups']} channels x "
                            f"{height}x{width}): nothing to normalise over")
        return shape

    def params(self, a: Attrs, shape: Shape) -> int:
        return 2 * shape[0] if a["affine"] else 0

    def fvcore_flops(self, a: Attrs, shape: Shape, out: Shape) -> int:
        return numel(shape) * (5 if a["affine"] else 4)

    def torch_module(self, a: Attrs, shape: Shape):
        return torch_nn().GroupNorm(a["groups"], shape[0], eps=a["eps"], affine=a["affine"])

    torch_modules = ("GroupNorm",)
    onnx_ops = ("GroupNormalization",)

    def import_fields(self, op: Any) -> dict | None:
        if op.origin == "module":
            return {"groups": op.attrs["num_groups"], "eps": op.attrs["eps"], "affine": op.attrs["affine"]}
        if op.origin != "onnx" or len(op.weights) not in (0, 2):
            return None
        # a scale and a bias of one value per channel (opset 21; opset 18's one per group only where G = C)
        if any(numel(w) != op.input[0] for w in op.weights):
            return None
        return {"groups": op.attrs["num_groups"], "eps": _rounded(op.attrs.get("epsilon", 1e-5)),
                "affine": bool(op.weights)}


@register
class LocalResponseNorm(_Norm):
    name = "lrn"
    kind = "norm"
    word = "LRN"

    def label(self, a: Attrs) -> str:
        return f"LRN {a['size']}"
    doc = "Local response normalisation across channels (AlexNet). No parameters; fvcore counts 0."
    fields = {
        "size": Field("int", 5, "channels in the window", minimum=1), "alpha": Field("number", 1e-4),
        "beta": Field("number", 0.75), "k": Field("number", 1.0),
    }

    def output_shape(self, a: Attrs, shape: Shape, warn: Warn) -> Shape:
        return need_image(self.name, shape)

    saves_input = True  # x*x and the final x / div keep it

    def saved_values(self, a: Attrs, shape: Shape, out: Shape) -> int:
        # torch's local_response_norm keeps, beside its input: the padded square (avg_pool3d's input), the
        # scaled sum before the power (pow's input), and the divisor (the division's other factor)
        return super().saved_values(a, shape, out) + self._padded(a, shape) + 2 * numel(out)

    @staticmethod
    def _padded(a: Attrs, shape: Shape) -> int:
        return (shape[0] + a["size"] - 1) * shape[1] * shape[2]

    def live_bytes(self, a: Attrs, shape: Shape, out: Shape, value_bytes: int) -> int:
        # torch's local_response_norm: x*x, padded over the channels, pooled, scaled, divided; at most
        # three tensors of the output's size, or the square and its padded copy, alive at once
        return max(3 * numel(out), numel(out) + self._padded(a, shape)) * value_bytes

    def torch_module(self, a: Attrs, shape: Shape):
        return torch_nn().LocalResponseNorm(a["size"], a["alpha"], a["beta"], a["k"])

    torch_modules = ("LocalResponseNorm",)
    onnx_ops = ("LRN",)

    def import_fields(self, op: Any) -> dict | None:
        a = op.attrs
        if op.origin == "module":
            return {"size": a["size"], "alpha": a["alpha"], "beta": a["beta"], "k": a["k"]}
        if op.origin == "onnx":
            return {"size": a["size"], "alpha": _rounded(a.get("alpha", 1e-4)), "beta": _rounded(a.get("beta", 0.75)),
                    "k": _rounded(a.get("bias", 1.0))}
        return None


@register
class LayerScale(_Norm):
    name = "layer_scale"
    saves_input = True  # the gradient of the scale
    kind = "norm"
    word = "layer scale"

    def counted(self, a: Attrs, shape: Shape) -> str:
        return f"C = {shape[0]}"
    doc = "Learned per-channel scale (ConvNeXt). C parameters; the multiply is not counted."
    fields = {"init": Field("number", 1e-6)}

    def output_shape(self, a: Attrs, shape: Shape, warn: Warn) -> Shape:
        return need_image(self.name, shape)

    def params(self, a: Attrs, shape: Shape) -> int:
        return shape[0]

    def torch_module(self, a: Attrs, shape: Shape):
        return _torch_classes()[1](shape[0], a["init"])

    torch_modules = ("LayerScale",)
    # x * self.gamma with a (C, 1, 1) parameter, as torchvision's ConvNeXt; (C,) on a channels-last tensor
    torch_functions = ("mul",)
    onnx_ops = ("Mul",)
    reads_channels_last = True

    def import_fields(self, op: Any) -> dict | None:
        if op.origin == "module":
            gamma = op.attrs["gamma"]
            return {} if gamma.is_meta else {"init": float(gamma.detach().flatten()[0])}
        shape = (op.input[0],) if op.channels_last else (op.input[0], 1, 1)
        return {} if len(op.weights) == 1 and tuple(op.weights[0]) == shape else None


def _rounded(value: float) -> float:
    """An ONNX float attribute (float32) as the decimal it was written as."""
    return float(f"{value:.6g}")
