"""An op archcalc has no layer type for, as an import measured it: opaque, valid at one input shape only."""
from __future__ import annotations

import functools
from typing import Any

from .. import fmt
from ..errors import SpecError
from ..kinds import Integer, Ints, Text
from . import layout
from .base import GLOBAL_RF, RF, Attrs, Field, LayerType, Shape, Warn, register, rf_working
from .simple import reshaped


@register
class Measured(LayerType):
    name = "measured"
    kind = "linear"
    counted_by = "torch"
    several_inputs = True
    doc = ("An op archcalc has no layer type for (`op`: the torch module class or function), as `archcalc import torch` "
           "measured it on the input `at`: its output shape, its own parameters and the MACs torch's FlopCounterMode "
           "counted for it (half its FLOPs). Opaque: at any other input it is refused, since its cost there is unknown. "
           "An op of several tensors (an `einsum` of two activations) names them in `from` (a list, in a sequence "
           "whose nodes name what they take); `at` is the shape of the first. "
           "Its field is taken as global (nothing is known of what it reads).")
    fields = {"op": Field(Text(non_empty=True), doc="what was measured: the torch module class or function"),
              "at": Field(Ints(1, "sizes"), doc="the input shape it was measured on (of several: the first's), the batch left out"),
              "output": Field(Ints(1, "sizes"), doc="its output shape there, the batch left out"),
              "params": Field(Integer(0), 0, "its own parameters (trainable)"),
              "macs": Field(Integer(0), 0, "MACs per image: torch's FlopCounterMode's count, halved"),
              "fvcore_flops": Field(Integer(0), None, "fvcore's count of it, where fvcore counted the module "
                                                      "(default: the MACs)")}

    def output_shape(self, a: Attrs, shape: Shape, warn: Warn) -> Shape:
        if tuple(shape) != tuple(a["at"]):
            raise SpecError(f"measured op {a['op']} was measured on an input {fmt.shape(a['at'])}, not "
                            f"{fmt.shape(shape)}: its cost there is unknown; import the model again at that size")
        out = tuple(a["output"])
        return layout.laid(layout.layout_of(shape), out) if len(out) == len(shape) else reshaped(out)

    def label(self, a: Attrs) -> str:
        return f"{a['op']} (measured)"

    def params(self, a: Attrs, shape: Shape) -> int:
        return a["params"]

    def macs(self, a: Attrs, shape: Shape, out: Shape) -> int:
        return a["macs"]

    def fvcore_flops(self, a: Attrs, shape: Shape, out: Shape) -> int:
        return a["macs"] if a["fvcore_flops"] is None else a["fvcore_flops"]

    def receptive_field(self, a: Attrs, rf: RF, shape: Shape) -> RF:
        return GLOBAL_RF

    def working(self, a: Attrs, shape: Shape, out: Shape, rf: RF = RF()) -> list[str]:
        return [f"output {fmt.shape(out)}, measured on {fmt.shape(shape)} by the import",
                f"params = {a['params']:,} (the model's), MACs = {a['macs']:,} (FlopCounterMode / 2)",
                rf_working(rf, GLOBAL_RF)]

    def torch_module(self, a: Attrs, shape: Shape):
        return _torch_class()(a["params"], tuple(a["output"]), a["op"])

    torch_functions = ("<measured>",)  # what the importers make of an op no other type claims
    onnx_ops = ("<measured>",)

    def import_fields(self, op: Any) -> dict | None:
        return {k: v for k, v in op.attrs.items() if v is not None}


@functools.cache
def _torch_class():
    from .base import torch_nn

    nn = torch_nn()

    class Measured(nn.Module):
        """A stand-in with the op's parameters and output shape (zeros): what archcalc knows of it."""

        def __init__(self, params: int, output: tuple[int, ...], op: str):
            super().__init__()
            import torch

            self.weight = nn.Parameter(torch.zeros(params)) if params else None
            self.output, self.op = output, op

        def forward(self, x, *others):  # an op of several tensors takes them all (a graph spec's `from`)
            return x.new_zeros((x.shape[0], *self.output))

    return Measured

