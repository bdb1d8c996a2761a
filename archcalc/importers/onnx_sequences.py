"""Sequences torch's exporter writes for one layer, rewritten as the one ONNX op that stands for it.

torch.onnx.export (opsets 13 to 21) writes GroupNorm as Reshape, InstanceNormalization, Reshape, Mul,
Add; LocalResponseNorm as x*x, Reshape, Pad, AveragePool, Squeeze (in an If), Reshape, Mul, Add, Pow,
Div; below opset 17, LayerNorm as ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul, Add; and
below opset 20, GELU as Div, Erf, Add, Mul, Mul. Each is replaced by GroupNormalization, LRN,
LayerNormalization or Gelu with the same input, output and weights, so the layer types read one op,
as they would from a file that holds it. A sequence is rewritten only when none of its intermediate
values is used outside it; anything else is read node by node.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

SHAPE_ONLY = {"Reshape", "Squeeze", "Unsqueeze", "Identity", "If"}
METADATA = {"Shape", "Size"}


class _View:
    """Who produces and who reads each value of the graph, and the constants' values."""

    def __init__(self, onnx, nodes: list, constants: dict[str, Any], shapes: dict, computed: frozenset[str]):
        self.onnx, self.constants, self.shapes, self.computed = onnx, constants, shapes, computed
        self.producer = {o: n for n in nodes for o in n.output}
        self.readers: dict[str, list] = {}
        for n in nodes:
            for i in (*n.input, *outer_inputs(n)):
                self.readers.setdefault(i, []).append(n)

    def made_by(self, name: str, op_type: str):
        node = self.producer.get(name)
        return node if node is not None and node.op_type == op_type else None

    def scalar(self, name: str) -> float | None:
        value = self.constants.get(name)
        return float(value.reshape(-1)[0]) if value is not None and value.size == 1 else None

    def attr(self, node, name: str, default: Any = None) -> Any:
        for a in node.attribute:
            if a.name == name:
                return self.onnx.helper.get_attribute_value(a)
        return default

    def other(self, node, name: str) -> str | None:
        """The input of a two-input node that is not `name`."""
        rest = [i for i in node.input if i != name]
        return rest[0] if len(rest) == 1 and len(node.input) == 2 else None

    def closed(self, inner: list, last) -> bool:
        """Whether only the sequence (and shape reads) uses the values of its nodes before `last`."""
        ids = {id(n) for n in (*inner, last)}
        return all(id(r) in ids or r.op_type in METADATA for n in inner for o in n.output for r in self.readers.get(o, []))


def outer_inputs(node) -> list[str]:
    """The values an If, Loop or Scan reads from the graph around it, inside its branches."""
    found: list[str] = []
    for a in node.attribute:
        for graph in ([a.g] if a.HasField("g") else []) + list(a.graphs):
            made = {o for n in graph.node for o in n.output} | {i.name for i in graph.input} \
                | {i.name for i in graph.initializer}
            for n in graph.node:
                found += [i for i in (*n.input, *outer_inputs(n)) if i and i not in made and i not in found]
    return found


def _through_shapes(view: _View, name: str) -> tuple[str, list]:
    """Back from `name` past reshapes, squeezes and an If whose branches only reshape one value."""
    passed: list = []
    while True:
        node = view.producer.get(name)
        if node is None or node.op_type not in SHAPE_ONLY:
            return name, passed
        reads = outer_inputs(node) if node.op_type == "If" else [i for i in node.input[:1]]
        if len(reads) != 1:
            return name, passed
        passed.append(node)
        name = reads[0]


def _lrn(view: _View, div) -> tuple[list, Any, Any] | None:
    """x / (k + alpha * avg_pool3d(pad(x*x)))^beta: torch's local_response_norm."""
    if div.op_type != "Div" or len(div.input) != 2:
        return None
    x = div.input[0]
    power = view.made_by(div.input[1], "Pow")
    if power is None or view.scalar(power.input[1]) is None:
        return None
    add = view.made_by(power.input[0], "Add")
    muls = [] if add is None else [view.made_by(i, "Mul") for i in add.input]
    mul = next((m for m in muls if m is not None), None)
    bias = None if mul is None else view.scalar(view.other(add, mul.output[0]) or "")
    if mul is None or bias is None:
        return None
    alpha = next((i for i in mul.input if view.scalar(i) is not None), None)
    averaged = None if alpha is None else view.other(mul, alpha)
    if alpha is None or averaged is None:
        return None
    pooled, passed = _through_shapes(view, averaged)
    before = _before(view, pooled, ["AveragePool", "Pad", "Reshape", "Mul"])
    if before is None:
        return None
    pool, pad, reshape, square = before
    if list(square.input) != [x, x]:
        return None
    size = view.attr(pool, "kernel_shape", [0])[0]
    pads = view.constants.get(pad.input[1]) if len(pad.input) > 1 else None
    if view.attr(pool, "kernel_shape") != [size, 1, 1] or view.attr(pool, "strides", [1, 1, 1]) != [1, 1, 1] \
            or pads is None or pads.tolist() != [0, 0, size // 2, 0, 0, 0, 0, (size - 1) // 2, 0, 0]:
        return None
    # torch's window is channels c - size//2 to c + (size-1)//2, ONNX's c - (size-1)//2 to c + size//2:
    # the same for an odd size; neither changes a count
    node = view.onnx.helper.make_node(
        "LRN", [x], [div.output[0]], name=_scoped(div.name, "LRN"), size=size, alpha=view.scalar(alpha),
        beta=view.scalar(power.input[1]), bias=bias)
    return [square, reshape, pad, pool, *passed, mul, add, power], node, div


def _group_norm(view: _View, norm) -> tuple[list, Any, Any] | None:
    """Reshape to (N, G, -1), InstanceNormalization with unit scale and zero bias, Reshape back, Mul, Add
    (a GroupNormalization with scale and bias), or without them (none)."""
    if norm.op_type != "InstanceNormalization" or len(norm.input) != 3:
        return None
    first = view.made_by(norm.input[0], "Reshape")
    scale, bias = (view.constants.get(i) for i in norm.input[1:])
    users = view.readers.get(norm.output[0], [])
    if first is None or scale is None or bias is None or len(users) != 1 or users[0].op_type != "Reshape":
        return None
    x, back = first.input[0], users[0]
    shape, grouped = view.shapes.get(x), view.shapes.get(first.output[0])
    if shape is None or len(shape) != 3 or view.shapes.get(back.output[0]) != shape or grouped is None \
            or len(grouped) != 2 or grouped[0] * grouped[1] != shape[0] * shape[1] * shape[2] \
            or (scale != 1).any() or bias.any():
        return None
    inner, last, inputs = [first, norm], back, [x]
    mul = _per_channel(view, back, "Mul", shape[0])
    add = None if mul is None else _per_channel(view, mul, "Add", shape[0])
    if add is not None:
        inner, last = [first, norm, back, mul], add
        weights = [view.other(mul, back.output[0]) or "", view.other(add, mul.output[0]) or ""]
        # without affine, torch's exporter still multiplies by ones and adds zeros, from Constant nodes
        if not (set(weights) <= view.computed and (view.constants[weights[0]] == 1).all()
                and not view.constants[weights[1]].any()):
            if any(view.constants[w].shape != (shape[0], 1, 1) for w in weights):
                return None
            inputs += weights
    node = view.onnx.helper.make_node("GroupNormalization", inputs, [last.output[0]],
                                      name=_scoped(norm.name, "GroupNormalization"), num_groups=int(grouped[0]),
                                      epsilon=view.attr(norm, "epsilon", 1e-5))
    return inner, node, last


def _per_channel(view: _View, before, op_type: str, channels: int):
    """The one Mul (Add) after `before`, by a constant of shape (C, 1, 1) or one computed value."""
    users = view.readers.get(before.output[0], [])
    if len(users) != 1 or users[0].op_type != op_type:
        return None
    name = view.other(users[0], before.output[0]) or ""
    value = view.constants.get(name)
    if value is None or not (value.shape == (channels, 1, 1) or (name in view.computed and value.size == 1)):
        return None
    return users[0]


def _layer_norm(view: _View, mean) -> tuple[list, Any, Any] | None:
    """(x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps) * weight + bias over the last axis: LayerNorm."""
    if mean.op_type != "ReduceMean" or view.attr(mean, "axes", [-1]) not in ([-1], [3]):
        return None
    x = mean.input[0]
    sub = next((r for r in view.readers.get(mean.output[0], [])
                if r.op_type == "Sub" and list(r.input) == [x, mean.output[0]]), None)
    if sub is None:
        return None
    chain = _follow(view, sub, ["Pow", "ReduceMean", "Add", "Sqrt", "Div", "Mul", "Add"])
    if chain is None:
        return None
    power, mean2, plus, root, div, mul, add = chain
    eps = view.scalar(view.other(plus, mean2.output[0]) or "")
    weight, bias = view.other(mul, div.output[0]), view.other(add, mul.output[0])
    if view.scalar(power.input[1]) != 2 or eps is None or list(div.input) != [sub.output[0], root.output[0]] \
            or view.attr(mean2, "axes", [-1]) not in ([-1], [3]) or weight not in view.constants \
            or bias not in view.constants:
        return None
    node = view.onnx.helper.make_node("LayerNormalization", [x, weight, bias], [add.output[0]],
                                      name=_scoped(mean.name, "LayerNormalization"), axis=-1, epsilon=eps)
    return [mean, sub, *chain[:-1]], node, add


def _follow(view: _View, start, op_types: list[str]) -> list | None:
    """The nodes of `op_types` after `start`, each the one reader of its kind of the node before."""
    chain, cur = [], start
    for op_type in op_types:
        users = [r for r in view.readers.get(cur.output[0], []) if r.op_type == op_type]
        if len(users) != 1:
            return None
        chain.append(users[0])
        cur = users[0]
    return chain


def _before(view: _View, name: str, op_types: list[str]) -> list | None:
    """The nodes of `op_types` before `name`, each the maker of the first input of the node after."""
    chain = []
    for op_type in op_types:
        node = view.made_by(name, op_type)
        if node is None:
            return None
        chain.append(node)
        name = node.input[0]
    return chain


def _gelu(view: _View, erf) -> tuple[list, Any, Any] | None:
    """x * (erf(x / sqrt(2)) + 1) * 0.5: GELU below opset 20."""
    div = view.made_by(erf.input[0], "Div") if erf.op_type == "Erf" else None
    if div is None or abs((view.scalar(div.input[1]) or 0) - 2 ** 0.5) > 1e-6:
        return None
    x = div.input[0]
    chain = _follow(view, erf, ["Add", "Mul", "Mul"])
    if chain is None:
        return None
    add, mul, half = chain
    if view.scalar(view.other(add, erf.output[0]) or "") != 1 or sorted(mul.input) != sorted([x, add.output[0]]) \
            or view.scalar(view.other(half, mul.output[0]) or "") != 0.5:
        return None
    node = view.onnx.helper.make_node("Gelu", [x], [half.output[0]], name=_scoped(erf.name, "Gelu"))
    return [div, erf, add, mul], node, half


def _as_strided(view: _View, gather) -> tuple[list, Any, Any] | None:
    """Reshape to [-1], then Gather of the indices 0, 1, ..., n-1 in the input's shape (batch 1): the dynamo
    exporter's `as_strided` of a tensor as it is (ConvNeXt's head), an Identity."""
    flat = view.made_by(gather.input[0], "Reshape") if gather.op_type == "Gather" and len(gather.input) == 2 else None
    if flat is None or view.attr(gather, "axis", 0) != 0 or len(flat.input) < 2:
        return None
    target, indices, shape = view.constants.get(flat.input[1]), view.constants.get(gather.input[1]), view.shapes.get(
        flat.input[0])
    if target is None or indices is None or shape is None or target.reshape(-1).tolist() != [-1] \
            or tuple(indices.shape) != (1, *shape) or indices.dtype.kind not in "iu" \
            or not np.array_equal(indices.reshape(-1), np.arange(indices.size)):
        return None
    node = view.onnx.helper.make_node("Identity", [flat.input[0]], [gather.output[0]], name=gather.name)
    return [flat], node, gather


def _scoped(name: str, op_type: str) -> str:
    """The name of a node in the scope of `name`: /layer1/norm/Div -> /layer1/norm/LRN."""
    head, sep, _ = (name or "").rpartition("/")
    return f"{head}{sep}{op_type}" if sep else op_type


RECOGNISERS: tuple[Callable, ...] = (_lrn, _group_norm, _layer_norm, _gelu, _as_strided)


def rewrite(onnx, nodes: list, constants: dict[str, Any], shapes: dict, computed: frozenset[str]) -> list:
    """`nodes` with each recognised sequence replaced by its one op (in the place of its last node).

    computed: the constants that are not the file's initializers (Constant nodes, values folded)."""
    view = _View(onnx, nodes, constants, shapes, computed)
    replaced: dict[int, Any] = {}  # id of a sequence's last node -> the op standing for it
    dropped: set[int] = set()
    for node in nodes:
        if id(node) in dropped:
            continue
        for recognise in RECOGNISERS:
            found = recognise(view, node)
            if found is None:
                continue
            inner, op, last = found
            if view.closed(inner, last) and not any(id(n) in dropped for n in (*inner, last)):
                dropped.update(id(n) for n in inner)
                op.metadata_props.extend(last.metadata_props)  # where the dynamo exporter names its module
                replaced[id(last)] = op
                break
    return [replaced.get(id(n), n) for n in nodes if id(n) not in dropped]
