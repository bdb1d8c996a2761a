"""What a merge is: branches run on the same input, their outputs combined into one tensor.

A merge type is one class registered under its spec name, as a layer type is (archcalc.layers.base).
It answers, from its branches' output shapes: the merged shape (or why there is none), the values it
allocates (a tensor of its own, a row of the table; none where it accumulates into its first
branch), the branches it broadcasts over the positions (a gate, which the spatial receptive field
holds constant), the partial results it holds while combining (liveness), the receptive field, the
torch code that combines the outputs (the built model, the receptive-field probe), and what an
imported graph calls it (torch functions and tensor methods, ONNX op types).
Shapes never include the batch: (C, H, W), (F,) or another layout (archcalc.layers.layout).
`matmul` and `scaled_dot_product_attention` take their operands from their branches, in order.
"""
from __future__ import annotations

import math
from typing import Any, ClassVar, Sequence

from .. import fmt
from ..errors import SpecError
from . import layout
from .rf import GLOBAL_RF, RF, merge_rf

Shape = tuple[int, ...]


class MergeType:
    """Base class: a merge of branches of one shape into a tensor of its own."""

    name: ClassVar[str]
    doc: ClassVar[str] = ""
    symbol: ClassVar[str] = ""  # what a figure writes at the join (archcalc.report.diagram)
    allocates: ClassVar[bool] = True  # False: accumulates into its first branch (where it can), no tensor of its own
    # What an imported graph op it stands for (archcalc.importers): torch functions and tensor methods,
    # and ONNX op types.
    torch_functions: ClassVar[tuple[str, ...]] = ()
    onnx_ops: ClassVar[tuple[str, ...]] = ()
    flattens: ClassVar[bool] = False  # an import reads (a + b) + c as one merge of three branches

    def output_shape(self, shapes: Sequence[Shape]) -> Shape:
        """The merged shape; SpecError (unlocated) when the branches' shapes do not fit together."""
        return equal_shapes(self.name, shapes)

    def allocated_values(self, shapes: Sequence[Shape], out: Shape) -> int:
        """Values of the tensor it allocates, per image (the cs231n convention), from its branches' shapes."""
        return math.prod(out) if self.allocates else 0

    def gates(self, shapes: Sequence[Shape], out: Shape) -> list[bool]:
        """Which branches are broadcast over the output's positions (a squeeze-and-excitation gate)."""
        return [False] * len(shapes)

    def receptive_field(self, fields: list[RF], shapes: Sequence[Shape], out: Shape, path: str) -> RF:
        """The field after the branches meet: each output sees what any branch's output sees."""
        return merge_rf(fields, self.gates(shapes, out), path)

    def partial_results(self, branches: int) -> int:
        """Tensors of the output's size it holds at once while combining `branches` outputs (liveness)."""
        return 1

    def combining_values(self, shapes: Sequence[Shape], out: Shape) -> int:
        """Values it holds at once while combining its branches' outputs, per image (liveness): by default
        `partial_results` tensors of the output's size."""
        return self.partial_results(len(shapes)) * math.prod(out)

    def macs(self, shapes: Sequence[Shape], out: Shape) -> int:
        """Multiply-accumulates of its own (a matrix product of activations), per image."""
        return 0

    def fvcore_flops(self, shapes: Sequence[Shape], out: Shape) -> int:
        """What fvcore's handles count for it, per image."""
        return self.macs(shapes, out)

    saves_inputs: ClassVar[bool] = False  # autograd keeps every branch's output (a product's factors)

    def backward_macs(self, shapes: Sequence[Shape], out: Shape) -> int:
        """MACs of its backward: a product of activations gives the gradient of each factor."""
        return 2 * self.macs(shapes, out)

    def saved_values(self, shapes: Sequence[Shape], out: Shape) -> int:
        """Values autograd keeps for its backward, per image (the walk counts a tensor kept twice once)."""
        return sum(math.prod(s) for s in shapes) if self.saves_inputs else 0

    # What verify compares its count with: "fvcore", or "torch" (FlopCounterMode), as a layer type says.
    counted_by: ClassVar[str] = "fvcore"

    def combine(self, torch: Any, outputs: Sequence[Any]) -> Any:  # pragma: no cover - overridden
        """The branch outputs (batched torch tensors) combined, as the built model computes them."""
        raise NotImplementedError(self.name)

    def probe_combine(self, torch: Any, outputs: Sequence[Any], hold_gates: bool) -> Any:
        """The receptive-field probe's combination (archcalc.torch.rf_probe): one channel each, summed."""
        return sum(outputs[1:], outputs[0])

    def working(self, shapes: Sequence[Shape], out: Shape) -> str:
        """The shape arithmetic with its numbers filled in (archcalc.report.html)."""
        return f"{self.name}: {' + '.join(fmt.shape(s) for s in shapes)} -> {fmt.shape(out)}"


MERGES: dict[str, MergeType] = {}


def register(cls: type[MergeType]) -> type[MergeType]:
    MERGES[cls.name] = cls()
    return cls


def merge_type(name: str) -> MergeType | None:
    """The merge type registered under `name`, None for anything else."""
    return MERGES.get(name)


# ---- shape rules -------------------------------------------------------------------------------

def equal_shapes(name: str, shapes: Sequence[Shape]) -> Shape:
    if len(set(shapes)) != 1:
        raise SpecError(f"{name} needs equal shapes, got {_listed(shapes)}")
    return shapes[0]


def broadcast(name: str, shapes: Sequence[Shape]) -> Shape:
    """The shape `shapes` broadcast to, a shorter one padded with ones on the left (numpy's rule)."""
    rank = max(len(s) for s in shapes)
    out = []
    for dims in zip(*(_padded(s, rank) for s in shapes)):
        sizes = {d for d in dims if d != 1}
        if len(sizes) > 1:
            raise SpecError(f"{name} cannot broadcast {_listed(shapes)}")
        out.append(sizes.pop() if sizes else 1)
    return layout.like(max(shapes, key=len), out)  # the layout of the widest branch


def _padded(shape: Shape, rank: int) -> Shape:
    return (1,) * (rank - len(shape)) + tuple(shape)


def _listed(shapes: Sequence[Shape]) -> str:
    return ", ".join(fmt.shape(s) for s in shapes)


def _broadcast_over_positions(outputs: Sequence[Any]) -> list[Any]:
    """Batched tensors padded with ones after the batch dimension to the largest rank."""
    rank = max(x.dim() for x in outputs)
    return [x.reshape(x.shape[0], *([1] * (rank - x.dim())), *x.shape[1:]) for x in outputs]


# ---- the merges --------------------------------------------------------------------------------

@register
class Concat(MergeType):
    name = "concat"
    doc = "joins the branches along the channels"
    symbol = "concat"
    torch_functions = ("cat", "concat")
    onnx_ops = ("Concat",)
    flattens = True

    def output_shape(self, shapes: Sequence[Shape]) -> Shape:
        if len({len(s) for s in shapes}) != 1 or len({s[1:] for s in shapes}) != 1:
            raise SpecError(f"concat needs equal sizes apart from the channels, got {_listed(shapes)}")
        return (sum(s[0] for s in shapes), *shapes[0][1:])

    def combine(self, torch: Any, outputs: Sequence[Any]) -> Any:
        return torch.cat(outputs, dim=1)

    def working(self, shapes: Sequence[Shape], out: Shape) -> str:
        return f"concat channels: C = {' + '.join(str(s[0]) for s in shapes)} = {out[0]}, {fmt.shape(out)}"


class Elementwise(MergeType):
    """Combines the branches value by value: from the third branch on, the running result and the next
    one are alive at once."""

    def gates(self, shapes: Sequence[Shape], out: Shape) -> list[bool]:
        return [len(out) == 3 and _padded(s, len(out))[1:] != out[1:] for s in shapes]

    def partial_results(self, branches: int) -> int:
        return 1 if branches < 3 else 2

    def pair(self, left: Any, right: Any) -> Any:  # pragma: no cover - overridden
        """Two batched tensors combined."""
        raise NotImplementedError(self.name)

    def probe_gate(self, torch: Any, gate: Any, hold_gates: bool) -> Any:
        """What the probe makes of a branch broadcast over the positions (a gate)."""
        return gate

    def combine(self, torch: Any, outputs: Sequence[Any]) -> Any:
        out = None
        for x in _broadcast_over_positions(outputs):
            out = x if out is None else self.pair(out, x)
        return out

    def probe_combine(self, torch: Any, outputs: Sequence[Any], hold_gates: bool) -> Any:
        images = [x for x in outputs if x.dim() == 4]
        size = max(x.shape[-2:] for x in images) if images else None
        out = None
        for x in outputs:
            x = x.reshape(x.shape[0], *([1] * (4 - x.dim())), *x.shape[1:])
            if size is not None and x.shape[-2:] != size:
                x = self.probe_gate(torch, x, hold_gates)
            out = x if out is None else self.pair(out, x)
        return out


@register
class Add(Elementwise):
    name = "add"
    doc = "the sum of the branches, accumulated into the first (broadcast as torch does)"
    symbol = "add"
    allocates = False
    torch_functions = ("add", "iadd")
    onnx_ops = ("Add", "Sum")
    flattens = True

    def output_shape(self, shapes: Sequence[Shape]) -> Shape:
        return broadcast(self.name, shapes)

    def allocated_values(self, shapes: Sequence[Shape], out: Shape) -> int:
        """None where the sum accumulates into the first branch; its output where broadcasting makes the
        sum larger than that branch."""
        return 0 if tuple(shapes[0]) == tuple(out) else math.prod(out)

    def pair(self, left: Any, right: Any) -> Any:
        return left + right

    def probe_gate(self, torch: Any, gate: Any, hold_gates: bool) -> Any:
        """A global context added to every position: held at 0 when measuring the spatial field."""
        return torch.zeros_like(gate) if hold_gates else gate

    def working(self, shapes: Sequence[Shape], out: Shape) -> str:
        return f"add: {' + '.join(fmt.shape(s) for s in shapes)} -> {fmt.shape(out)}, elementwise"


@register
class Mul(Elementwise):
    saves_inputs = True
    name = "mul"
    doc = "the elementwise product of the branches; a per-image shape of lower rank is padded with ones on the left"
    symbol = "×"
    torch_functions = ("mul", "imul")
    onnx_ops = ("Mul",)

    def output_shape(self, shapes: Sequence[Shape]) -> Shape:
        return broadcast(self.name, shapes)

    def pair(self, left: Any, right: Any) -> Any:
        return left * right

    def probe_gate(self, torch: Any, gate: Any, hold_gates: bool) -> Any:
        """A gate scaled to at most 1, or held at 1 when measuring the spatial field."""
        return torch.ones_like(gate) if hold_gates else gate / gate.detach().amax()

    def working(self, shapes: Sequence[Shape], out: Shape) -> str:
        return f"multiply, broadcast: {' × '.join(fmt.shape(s) for s in shapes)} -> {fmt.shape(out)}"


# ---- products of activations: hand-written attention -------------------------------------------

def _product_layout(dims: Sequence[int]) -> Shape:
    """Tokens for two axes, a tensor for more."""
    return layout.laid(layout.TOKENS if len(dims) == 2 else layout.TENSOR, dims)


def _leading(name: str, shapes: Sequence[Shape]) -> Shape:
    """The leading axes (heads, windows) of operands of rank 2 or more, broadcast as torch.matmul does."""
    if any(len(s) < 2 for s in shapes):
        raise SpecError(f"{name} needs operands of two axes or more, got {_listed(shapes)}")
    return broadcast(name, [s[:-2] for s in shapes]) if any(len(s) > 2 for s in shapes) else ()


@register
class Matmul(MergeType):
    saves_inputs = True
    name = "matmul"
    doc = ("the matrix product of two branches, as torch.matmul: (..., n, k) by (..., k, m) to (..., n, m), the leading "
           "axes broadcast; MACs n·k·m for each leading index (a product of activations: Q·Kᵀ, A·V); every output "
           "reads a whole row and a whole column: the field is global")
    symbol = "@"
    torch_functions = ("matmul", "bmm")
    onnx_ops = ("MatMul",)

    def output_shape(self, shapes: Sequence[Shape]) -> Shape:
        if len(shapes) != 2:
            raise SpecError(f"matmul multiplies two branches, got {len(shapes)}")
        a, b = shapes
        leading = _leading(self.name, shapes)
        if len(a) < 2 or a[-1] != b[-2]:
            raise SpecError(f"matmul needs the last axis of the first ({fmt.shape(a)}) to be the second-last of the "
                            f"second ({fmt.shape(b)})")
        return _product_layout((*leading, a[-2], b[-1]))

    def macs(self, shapes: Sequence[Shape], out: Shape) -> int:
        return math.prod(out) * shapes[0][-1]

    def fvcore_flops(self, shapes: Sequence[Shape], out: Shape) -> int:
        """fvcore's matmul handle: the first operand's values times the second's last axis."""
        return math.prod(shapes[0]) * shapes[1][-1]

    def receptive_field(self, fields: list[RF], shapes: Sequence[Shape], out: Shape, path: str) -> RF:
        return GLOBAL_RF

    def combine(self, torch: Any, outputs: Sequence[Any]) -> Any:
        return torch.matmul(*outputs)

    def probe_combine(self, torch: Any, outputs: Sequence[Any], hold_gates: bool) -> Any:
        return torch.matmul(*outputs)  # positive values: an output depends on what its row and column hold

    def working(self, shapes: Sequence[Shape], out: Shape) -> str:
        a, b = shapes
        return (f"matmul: {fmt.shape(a)} @ {fmt.shape(b)} -> {fmt.shape(out)}, MACs = {math.prod(out[:-2])}×"
                f"{a[-2]}×{a[-1]}×{b[-1]} = {self.macs(shapes, out):,}")


@register
class ScaledDotProductAttention(MergeType):
    name = "scaled_dot_product_attention"
    doc = ("softmax(Q·Kᵀ/√d)·V of three branches, q (..., L, d), k (..., S, d) and v (..., S, dv), as torch's "
           "scaled_dot_product_attention (no mask, no dropout): MACs h·L·S·d + h·L·S·dv for the two products, softmax "
           "not counted; the scores (..., L, S) are held while it runs. fvcore has no handle for it (0); verify compares "
           "the MACs with FlopCounterMode. The field is global")
    symbol = "attention"
    torch_functions = ("scaled_dot_product_attention",)
    counted_by = "torch"

    def output_shape(self, shapes: Sequence[Shape]) -> Shape:
        if len(shapes) != 3:
            raise SpecError(f"scaled_dot_product_attention takes three branches (q, k, v), got {len(shapes)}")
        q, k, v = shapes
        leading = _leading(self.name, shapes)
        if q[-1] != k[-1] or k[-2] != v[-2]:
            raise SpecError(f"scaled_dot_product_attention needs q and k of one width and k and v of one length, got "
                            f"q {fmt.shape(q)}, k {fmt.shape(k)}, v {fmt.shape(v)}")
        return _product_layout((*leading, q[-2], v[-1]))

    def macs(self, shapes: Sequence[Shape], out: Shape) -> int:
        q, k, v = shapes
        scores = math.prod(out[:-1]) * k[-2]  # (..., L, S)
        return scores * q[-1] + scores * v[-1]

    def fvcore_flops(self, shapes: Sequence[Shape], out: Shape) -> int:
        return 0

    def combining_values(self, shapes: Sequence[Shape], out: Shape) -> int:
        """torch's math kernel, beside the three operands: the scaled q and k and the scores; then the scaled k, the
        scores and their softmax; then the scaled k, the softmax and the output."""
        q, k, _ = shapes
        scores = math.prod(out[:-1]) * k[-2]
        scaled_q, scaled_k = math.prod(q), math.prod(k)
        return max(scaled_q + scaled_k + scores, scaled_k + 2 * scores, scaled_k + scores + math.prod(out))

    def receptive_field(self, fields: list[RF], shapes: Sequence[Shape], out: Shape, path: str) -> RF:
        return GLOBAL_RF

    def combine(self, torch: Any, outputs: Sequence[Any]) -> Any:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel(SDPBackend.MATH):  # the same products and tensors on every device
            return torch.nn.functional.scaled_dot_product_attention(*outputs)

    def probe_combine(self, torch: Any, outputs: Sequence[Any], hold_gates: bool) -> Any:
        return self.combine(torch, outputs)

    def working(self, shapes: Sequence[Shape], out: Shape) -> str:
        q, k, v = shapes
        return (f"attention: q {fmt.shape(q)}, k {fmt.shape(k)}, v {fmt.shape(v)} -> {fmt.shape(out)}, "
                f"MACs = {self.macs(shapes, out):,}")
