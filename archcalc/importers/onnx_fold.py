"""Values an ONNX graph computes from constants only (an exported pad's amounts, a Constant node's
value), computed once so that shape inference and the importer see them as initializers.

A few bytes of a file can ask for a huge value (`Range(0, 1e9)`, `ConstantOfShape([30000, 30000])`),
so a node is computed only when the size of what it makes follows from its inputs' shapes and values
(SIZES below: elementwise ops, Range, ConstantOfShape, Expand, Tile, ...); that size is checked
against Budget.fold_elements and Budget.fold_bytes, for all the values of the file together, before
the node is computed. Any other node stays in the graph, its value unknown.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from fractions import Fraction
from typing import Any, NamedTuple

import numpy as np

from .. import fmt
from ..budget import current
from ..errors import SpecError

INPUT_VALUES = 4096  # the inputs of a node computed here, all together (a weight is not transformed)


class Size(NamedTuple):
    """What a node's outputs will take at most: values, and bytes per value."""

    elements: int
    itemsize: int


def _broadcast(shapes: list) -> int | None:
    """The number of values of numpy's broadcast of `shapes` (None when they do not broadcast)."""
    rank = max((len(s) for s in shapes), default=0)
    total = 1
    for axis in range(rank):
        sizes = {int(s[axis - rank + len(s)]) for s in shapes if axis - rank + len(s) >= 0}
        if any(d < 0 for d in sizes) or len(sizes - {1}) > 1:
            return None
        total *= max(sizes - {1}, default=1)
    return total


def _ints(value) -> list[int] | None:
    if value is None or value.dtype.kind not in "iu" or value.ndim > 1:
        return None
    return [int(v) for v in value.reshape(-1)]


def _elementwise(node, feeds, attrs) -> int | None:
    return _broadcast([v.shape for v in feeds if v is not None])


def _first(node, feeds, attrs) -> int | None:
    """Ops whose output has at most the values of their first input (reshapes, slices, reductions)."""
    return int(feeds[0].size) if feeds and feeds[0] is not None else None


def _all_inputs(node, feeds, attrs) -> int | None:
    return sum(int(v.size) for v in feeds if v is not None)


def _rank(node, feeds, attrs) -> int | None:
    return feeds[0].ndim if feeds and feeds[0] is not None else None


def _nonzero(node, feeds, attrs) -> int | None:
    return feeds[0].ndim * int(feeds[0].size) if feeds and feeds[0] is not None else None


def _range(node, feeds, attrs) -> int | None:
    if len(feeds) != 3 or any(v is None or v.size != 1 for v in feeds):
        return None
    try:
        start, limit, delta = (Fraction(v.reshape(-1)[0].item()) for v in feeds)
    except (ValueError, OverflowError, TypeError):  # NaN, infinity, not a number
        return None
    return max(math.ceil((limit - start) / delta), 0) if delta else None


def _constant_of_shape(node, feeds, attrs) -> int | None:
    dims = _ints(feeds[0]) if feeds else None
    return None if dims is None or any(d < 0 for d in dims) else math.prod(dims)


def _expand(node, feeds, attrs) -> int | None:
    dims = _ints(feeds[1]) if len(feeds) == 2 and feeds[0] is not None else None
    return None if dims is None else _broadcast([tuple(feeds[0].shape), tuple(dims)])


def _tile(node, feeds, attrs) -> int | None:
    repeats = _ints(feeds[1]) if len(feeds) == 2 and feeds[0] is not None else None
    if repeats is None or len(repeats) != feeds[0].ndim or any(r < 0 for r in repeats):
        return None
    return math.prod(d * r for d, r in zip(feeds[0].shape, repeats))


def _pad(node, feeds, attrs) -> int | None:
    pads = _ints(feeds[1]) if 2 <= len(feeds) <= 3 and feeds[0] is not None else None
    if pads is None or len(pads) != 2 * feeds[0].ndim:
        return None
    sides = [d + a + b for d, a, b in zip(feeds[0].shape, pads, pads[feeds[0].ndim:])]
    return None if any(d < 0 for d in sides) else math.prod(sides)


def _gather(node, feeds, attrs) -> int | None:
    if len(feeds) != 2 or any(v is None for v in feeds) or feeds[0].ndim == 0:
        return None
    data, indices = feeds
    axis = int(attrs.get("axis", 0))
    if not -data.ndim <= axis < data.ndim:
        return None
    rest = [d for k, d in enumerate(data.shape) if k != axis % data.ndim]
    return int(indices.size) * math.prod(rest)


ELEMENTWISE = ("Add Sub Mul Div Pow Mod Neg Abs Sqrt Exp Log Ceil Floor Round Reciprocal Sign Not And Or Xor "
               "Equal Less Greater LessOrEqual GreaterOrEqual Where Max Min Sum Mean Clip Relu Sigmoid Tanh Erf "
               "IsNaN IsInf BitwiseAnd BitwiseOr BitwiseXor BitwiseNot Cast CastLike").split()
AT_MOST_FIRST = ("Reshape Flatten Squeeze Unsqueeze Transpose Identity Slice Trilu CumSum ReduceSum "
                 "ReduceMean ReduceMax ReduceMin ReduceProd ArgMax ArgMin ScatterElements ScatterND").split()
SIZES: dict[str, Callable[[Any, list, dict], int | None]] = {
    **{op: _elementwise for op in ELEMENTWISE}, **{op: _first for op in AT_MOST_FIRST},
    "Concat": _all_inputs, "Split": _all_inputs, "Shape": _rank, "Size": lambda *_: 1, "NonZero": _nonzero,
    "Range": _range, "ConstantOfShape": _constant_of_shape, "Expand": _expand, "Tile": _tile, "Pad": _pad,
    "Gather": _gather, "GatherElements": lambda node, feeds, attrs: _first(node, feeds[1:], attrs),  # indices' shape
    "Dropout": lambda *args: 2 * (_first(*args) or 0),  # the output and its mask
}
""" op type -> the most values its outputs can have, from its inputs (None: not known beforehand)"""
INT64_OUT = {"Shape", "Size", "NonZero", "ArgMax", "ArgMin"}


def _itemsize(onnx, node, feeds: list, attrs: dict) -> int | None:
    """The most bytes per value of the node's outputs (None for text, whose size is not known)."""
    dtypes = [v.dtype for v in feeds if v is not None]
    try:
        if node.op_type == "Cast":
            dtypes.append(onnx.helper.tensor_dtype_to_np_dtype(int(attrs["to"])))
        elif node.op_type == "ConstantOfShape":
            value = attrs.get("value")
            dtypes = [np.dtype(np.float32) if value is None else onnx.helper.tensor_dtype_to_np_dtype(value.data_type)]
    except (KeyError, TypeError, ValueError):
        return None
    if node.op_type in INT64_OUT:
        dtypes.append(np.dtype(np.int64))
    if any(d.kind in "OSUV" for d in dtypes):
        return None
    return max((d.itemsize for d in dtypes), default=8)


def node_attributes(onnx, node) -> dict[str, Any]:
    """A node's attributes by name, as onnx's helper reads them."""
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class Folder:
    """Computes the constant nodes of one graph, within the budget for all of them together."""

    def __init__(self, onnx, opsets):
        self.onnx, self.opsets = onnx, opsets
        self.budget = current()
        self.elements = self.bytes = 0

    def fold(self, node, values: dict[str, Any], where: str) -> list | None:
        """The outputs of `node`, whose inputs are all in `values`, when what it makes is known beforehand
        (and within the budget, else a SpecError naming it as `where`); None when it is not computed here."""
        feeds = [values[i] if i else None for i in node.input]  # "": an optional input left out
        bound = SIZES.get(node.op_type)
        if bound is None or node.domain not in ("", "ai.onnx") \
                or sum(int(v.size) for v in feeds if v is not None) > INPUT_VALUES:
            return None
        attrs = node_attributes(self.onnx, node)
        elements = bound(node, feeds, attrs)
        itemsize = None if elements is None else _itemsize(self.onnx, node, feeds, attrs)
        if elements is None or itemsize is None:
            return None
        self.spend(node, feeds, Size(elements, itemsize), where)
        return self.run(node, {i: values[i] for i in node.input if i})

    def spend(self, node, feeds: list, size: Size, where: str) -> None:
        elements, nbytes = self.elements + size.elements, self.bytes + size.elements * size.itemsize
        over = "fold_elements" if elements > self.budget.fold_elements else \
            "fold_bytes" if nbytes > self.budget.fold_bytes else None
        if over is not None:
            inputs = ", ".join(f"{name} = {_shown(v)}" for name, v in zip(node.input, feeds) if name)
            raise SpecError(f"{where}: its value, computed from constants ({inputs}), would have {size.elements:,} "
                            f"elements of {size.itemsize} bytes; the values computed from constants go past "
                            f"{self.budget.describe(over)}")
        self.elements, self.bytes = elements, nbytes

    def run(self, node, feeds: dict[str, Any]) -> list | None:
        """The node's outputs computed by ONNX's reference evaluator (None when it cannot)."""
        from onnx.reference import ReferenceEvaluator

        helper = self.onnx.helper
        try:
            graph = helper.make_graph(
                [node], "fold", [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
                                 for k, v in feeds.items()],
                [helper.make_tensor_value_info(o, self.onnx.TensorProto.UNDEFINED, None) for o in node.output])
            with warnings.catch_warnings():  # numpy's overflow in a constant (exp of a huge value) is not ours to print
                warnings.simplefilter("ignore")
                outputs = ReferenceEvaluator(helper.make_model(graph, opset_imports=self.opsets)).run(None, feeds)
            return outputs if isinstance(outputs, list) else None  # a dict only when asked for intermediate values
        except Exception:  # not computable (a wrong attribute, an unknown op): the node stays, its value unknown
            return None


def _shown(value) -> str:
    if value.size <= 8:
        return str(value.tolist())
    return f"a {fmt.shape(value.shape)} {value.dtype} tensor"
