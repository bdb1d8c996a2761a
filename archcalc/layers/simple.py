"""Shape-only and elementwise layers: activations, dropout, flatten, softmax, identity."""
from __future__ import annotations

from ..core.kinds import Number
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

    def torch_module(self, a: Attrs, shape: Shape):
        return getattr(torch_nn(), self.torch_class)()


def _activation(spec_name: str, torch_class: str, description: str) -> None:
    register(type(torch_class, (_Elementwise,), {
        "name": spec_name, "torch_class": torch_class, "kind": "shape" if spec_name == "identity" else "activation",
        "returns_input": torch_class == "Identity",
        "doc": f"{description}, elementwise; no MACs, fvcore counts 0.",
    }))


for _spec, _torch, _text in [
    ("relu", "ReLU", "max(0, x)"),
    ("relu6", "ReLU6", "min(max(0, x), 6)"),
    ("tanh", "Tanh", "tanh"),
    ("sigmoid", "Sigmoid", "logistic sigmoid"),
    ("gelu", "GELU", "Gaussian error linear unit"),
    ("silu", "SiLU", "x*sigmoid(x) (swish)"),
    ("hardswish", "Hardswish", "hard swish"),
    ("identity", "Identity", "the identity"),
]:
    _activation(_spec, _torch, _text)



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


@register
class Softmax(LayerType):
    name = "softmax"
    kind = "activation"
    doc = "Softmax over the channels/features (a new tensor; no MACs, fvcore counts 0)."

    def receptive_field(self, a: Attrs, rf: RF, shape: Shape) -> RF:
        return GLOBAL_RF if len(shape) == 1 else rf

    def torch_module(self, a: Attrs, shape: Shape):
        return torch_nn().Softmax(dim=1)
