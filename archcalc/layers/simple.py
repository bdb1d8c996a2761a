"""Shape-only and elementwise layers: activations, dropout, flatten, softmax, identity."""
from __future__ import annotations

from typing import Any

from ..kinds import Number
from .base import (
    GLOBAL_RF,
    RF,
    Attrs,
    Field,
    LayerType,
    Shape,
    Warn,
    numel,
    register,
    rf_working,
    torch_nn,
)


class _Elementwise(LayerType):
    """Activations run in place (as torchvision's inplace=True): no new activation memory."""

    allocates = False
    torch_class = ""
    kind = "activation"
    also_modules: tuple[str, ...] = ()
    reads_channels_last = True  # value by value: the layout does not matter

    def torch_module(self, a: Attrs, shape: Shape):
        return getattr(torch_nn(), self.torch_class)()


def _activation(spec_name: str, torch_class: str, description: str, functions: tuple[str, ...], onnx: tuple[str, ...],
                base: type[_Elementwise] = _Elementwise) -> None:
    register(type(torch_class, (base,), {
        "name": spec_name, "torch_class": torch_class,
        "doc": f"{description}, elementwise; no MACs, fvcore counts 0.",
        "torch_modules": (torch_class, *base.also_modules), "torch_functions": functions, "onnx_ops": onnx,
    }))


class _ReLU6(_Elementwise):
    """Also torch's hardtanh and clamp, and ONNX's Clip, between 0 and 6."""

    also_modules = ("Hardtanh",)

    def import_fields(self, op: Any) -> dict | None:
        if op.target in (self.torch_class, "relu6"):
            return {}
        a = op.attrs
        low, high = a.get("min", a.get("min_val")), a.get("max", a.get("max_val"))
        if op.origin == "onnx" and len(op.values) == 2:
            low, high = op.values
        return {} if (low, high) == (0, 6) or _flat(low, high) == [0.0, 6.0] else None


def _flat(*values: Any) -> list | None:
    try:
        return [float(v[0] if isinstance(v, list) else v) for v in values]
    except (TypeError, ValueError, IndexError):
        return None


class _HardSigmoid(_Elementwise):
    def import_fields(self, op: Any) -> dict | None:
        if op.origin != "onnx":
            return {}
        return {} if abs(op.attrs.get("alpha", 0.2) - 1 / 6) < 1e-6 and abs(op.attrs.get("beta", 0.5) - 0.5) < 1e-6 else None


class _GELU(_Elementwise):
    def import_fields(self, op: Any) -> dict | None:
        return {} if op.attrs.get("approximate", "none") == "none" else None


class _Identity(_Elementwise):
    """Its torch module hands on the input itself: a shape-keeping layer, not an activation."""

    kind = "shape"
    returns_input = True


for _spec, _torch, _text, _functions, _onnx, _base in [
    ("relu", "ReLU", "max(0, x)", ("relu", "relu_"), ("Relu",), _Elementwise),
    ("relu6", "ReLU6", "min(max(0, x), 6)", ("relu6", "hardtanh", "clamp", "clip"), ("Clip",), _ReLU6),
    ("tanh", "Tanh", "tanh", ("tanh",), ("Tanh",), _Elementwise),
    ("sigmoid", "Sigmoid", "logistic sigmoid", ("sigmoid",), ("Sigmoid",), _Elementwise),
    ("gelu", "GELU", "Gaussian error linear unit", ("gelu",), ("Gelu",), _GELU),
    ("silu", "SiLU", "x*sigmoid(x) (swish)", ("silu",), ("Swish",), _Elementwise),
    ("hardswish", "Hardswish", "hard swish", ("hardswish",), ("HardSwish",), _Elementwise),
    ("hardsigmoid", "Hardsigmoid", "hard sigmoid, relu6(x + 3)/6", ("hardsigmoid",), ("HardSigmoid",), _HardSigmoid),
    ("identity", "Identity", "the identity", (), ("Identity",), _Identity),
]:
    _activation(_spec, _torch, _text, _functions, _onnx, _base)



@register
class Dropout(_Elementwise):
    name = "dropout"
    returns_input = True
    doc = "Dropout: the identity at inference; no memory, no cost."
    fields = {"p": Field(Number(minimum=0, below=1), 0.5, "probability of dropping a value, in [0, 1)")}
    kind = "regularisation"

    def label(self, a: Attrs) -> str:
        return f"dropout {a['p']:g}"

    def torch_module(self, a: Attrs, shape: Shape):
        return torch_nn().Dropout(a["p"])

    torch_modules = ("Dropout", "Dropout2d")
    torch_functions = ("dropout", "dropout2d")
    onnx_ops = ("Dropout",)

    def import_fields(self, op: Any) -> dict | None:
        p = op.attrs.get("p", op.attrs.get("ratio", op.values[0] if op.values else 0.5))
        return {"p": float(p[0] if isinstance(p, list) else p)}


@register
class StochasticDepth(_Elementwise):
    name = "stochastic_depth"
    returns_input = True
    doc = "Drops a residual branch per sample in training; the identity at inference."
    fields = {"p": Field(Number(minimum=0, maximum=1), 0.0, "probability of dropping the branch, in [0, 1]")}
    torch_class = "Identity"
    kind = "regularisation"


@register
class Flatten(LayerType):
    name = "flatten"
    returns_input = True
    doc = "CxHxW to C*H*W (a view: no new memory). Each element keeps the field of its position."
    allocates = False

    def output_shape(self, a: Attrs, shape: Shape, warn: Warn) -> Shape:
        return (numel(shape),)

    def working(self, a: Attrs, shape: Shape, out: Shape, rf: RF = RF()) -> list[str]:
        product = "×".join(str(d) for d in shape)
        return [f"output = {product} = {out[0]:,} features", "params = 0, MACs = 0 (a view)",
                rf_working(rf, self.receptive_field(a, rf, shape))]

    def probe_module(self, module):
        from . import probe

        return probe.keep(module)

    def torch_module(self, a: Attrs, shape: Shape):
        return torch_nn().Flatten()

    torch_modules = ("Flatten",)
    torch_functions = ("flatten", "view", "reshape")
    onnx_ops = ("Flatten", "Reshape")

    def import_fields(self, op: Any) -> dict | None:
        """Flatten from dimension 1 on, or a view / reshape to one flat dimension per image."""
        if op.target in ("Flatten", "flatten") and op.origin != "onnx":
            return {} if op.attrs.get("start_dim", 0 if op.origin == "call" else 1) == 1 and op.attrs.get("end_dim", -1) == -1 else None
        if op.target == "Flatten":
            return {} if op.attrs.get("axis", 1) == 1 else None
        return {} if op.output is not None and len(op.output) == 1 else None


@register
class Softmax(LayerType):
    name = "softmax"
    kind = "activation"
    doc = "Softmax over the channels/features (a new tensor; no MACs, fvcore counts 0)."

    def receptive_field(self, a: Attrs, rf: RF, shape: Shape) -> RF:
        return GLOBAL_RF if len(shape) == 1 else rf

    def torch_module(self, a: Attrs, shape: Shape):
        return torch_nn().Softmax(dim=1)

    torch_modules = ("Softmax",)
    torch_functions = ("softmax",)
    onnx_ops = ("Softmax",)

    def import_fields(self, op: Any) -> dict | None:
        dim = op.attrs.get("axis", -1) if op.origin == "onnx" else op.attrs.get("dim")
        return {} if dim is not None and dim % (len(op.input) + 1) == 1 else None
