"""Peak live activation memory of one inference pass, in bytes per image. Pure Python.

The figure follows the torch builder's forward discipline (archcalc.torch.build), which
torch's own allocations confirm (archcalc.torch.memory): a layer's input stays alive while
it runs, and the layer holds what its layer type says (`LayerType.live_bytes`: its output,
plus the indices of max pooling, the padded copy of an asymmetric 'same' convolution, the
statistics of layer norm, the temporaries of LRN); layers that return their input's memory
(`returns_input`: flatten, dropout, identity, a channel slice) hold nothing; a view keeps the
tensor it views alive, whatever its own size (a slice of half the channels holds all of them,
within the sequence that made that tensor). A sequence drops a tensor when the next layer has
returned, and its own input is held by its caller until it ends. A merge holds its input while
every branch runs, then the branch outputs while it combines them into a new tensor
(`MergeType.combining_values`: an add of k branches keeps two partial sums from the third on;
an attention merge its scores).

A sequence whose nodes name what they take (`from`: a graph) keeps each tensor from the node
that makes it until its last reader has returned, in the spec's order (`graph_peak`); its input
is held by its caller, and its output returned, as a sequence's are. On a chain that is the rule
above: each tensor's last reader is the next node.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

from ..layers import MERGES, REGISTRY, MergeType
from .spec import Group, Layer, Node, joins, source_positions


def peak_bytes(root: Node, sums: Mapping[str, Any], value_bytes: int) -> int:
    """Most activation bytes alive at once, per image, in an inference pass of `root` at another size of
    value than fp32's; `sums` holds each node's shapes (archcalc.core.calc.NodeSums) by path. (The walk of
    analyze works the fp32 figure out as it goes, with the rules below.)"""
    return _peak(root, sums, value_bytes)[0]


def _peak(node: Node, sums: Mapping[str, Any], size: int) -> tuple[int, bool]:
    own = sums[node.path]
    if isinstance(node, Layer):
        return layer_peak(REGISTRY[node.type], node.attrs, own.input_shape, own.output_shape, size)
    held_input = math.prod(own.input_shape) * size
    if node.kind == "sequence" and node.graph:
        return _graph_peak(node, sums, size)
    if node.kind == "sequence":
        return sequence_peak(held_input, [(*_peak(child, sums, size), math.prod(sums[child.path].input_shape) * size)
                                          for child in node.children])
    branches = [(*_peak(child, sums, size), math.prod(sums[child.path].output_shape) * size) for child in node.children]
    merge = MERGES[node.kind]
    shapes = [sums[child.path].output_shape for child in node.children]
    return merge_peak(merge, held_input, branches, merge.combining_values(shapes, own.output_shape) * size)


def _graph_peak(node: Group, sums: Mapping[str, Any], size: int) -> tuple[int, bool]:
    own = sums[node.path]
    outputs = [math.prod(sums[child.path].output_shape) * size for child in node.children]
    held_input = math.prod(own.input_shape) * size
    steps = []
    for child, sources in zip(node.children, source_positions(node.children)):
        taken = sum(outputs[s] if s >= 0 else held_input for s in sources)
        if joins(child):
            merged = sums[child.path]
            shapes = [sums[node.children[s].path].output_shape if s >= 0 else own.input_shape for s in sources]
            peak = join_peak(taken, MERGES[child.kind].combining_values(shapes, merged.output_shape) * size)
        else:
            peak = _peak(child, sums, size)
        steps.append((*peak, sources, taken))
    return graph_peak(held_input, steps, outputs)


# The rules: each gives a node's peak (its input included) and whether its output is its input's own memory.

def layer_peak(layer, attrs, shape, out, value_bytes: int) -> tuple[int, bool]:
    held_input = math.prod(shape) * value_bytes
    if layer.returns_input:
        return held_input, True
    return held_input + layer.live_bytes(attrs, shape, out, value_bytes), False


def sequence_peak(held_input: int, parts: Iterable[tuple[int, bool, int]]) -> tuple[int, bool]:
    """`parts`: each child's (peak, returns its input, input bytes)."""
    top, alias = held_input, True
    viewed, fresh = held_input, False  # the bytes of the tensor the current one is (a view of)
    for peak, child_alias, child_input in parts:
        if fresh:
            viewed = child_input
        # a child's peak holds its input; a view of a larger tensor holds that tensor, and the
        # sequence's input stays alive (its caller holds it) beside a child working on a later tensor
        top = max(top, viewed - child_input + peak + (0 if alias else held_input))
        alias, fresh = alias and child_alias, not child_alias
    return top, alias


def merge_peak(merge: MergeType, held_input: int, parts: list[tuple[int, bool, int]], combining: int) -> tuple[int, bool]:
    """`parts`: each branch's (peak, returns its input, output bytes); `combining`: the bytes the merge holds at
    once while it combines them (`MergeType.combining_values`: `partial_results` tensors of the output's size, or
    an attention's scores)."""
    top, held = held_input, 0
    for peak, alias, branch_out in parts:
        top = max(top, held + peak)
        held += 0 if alias else branch_out
    return max(top, held_input + held + combining), False


def join_peak(taken: int, combining: int) -> tuple[int, bool]:
    """A merge of named nodes' outputs (`taken` bytes, held by its sequence), holding `combining` bytes at once
    while it combines them (`MergeType.combining_values`)."""
    return taken + combining, False


def graph_peak(held_input: int, steps: list[tuple[int, bool, tuple[int, ...], int]],
               outputs: list[int]) -> tuple[int, bool]:
    """The peak of a sequence whose nodes name what they take. `steps`: each node's (peak, returns its input,
    the positions of the nodes it takes (-1: the sequence's input), the bytes of what it takes);
    `outputs`: each node's output bytes. A tensor lives from the node that makes it until its last reader
    has returned; a node that returns its input makes none (its output is that tensor)."""
    tensor: list[int] = []  # what each node's output is: a tensor of its own (its position), or its input's (-1: the input)
    last: dict[int, int] = {}  # each tensor's last reader
    for k, (_, alias, sources, _) in enumerate(steps):
        taken = [tensor[s] if s >= 0 else -1 for s in sources]
        for t in taken:
            last[t] = k
        tensor.append(taken[0] if alias else k)
        last.setdefault(tensor[-1], k)
    if steps:
        last[tensor[-1]] = len(steps)  # the output is returned
    last[-1] = len(steps)  # the input is held by the caller to the end
    dying: dict[int, list[int]] = {}
    for t, k in last.items():
        dying.setdefault(k, []).append(t)
    live = top = held_input
    for k, (peak, alias, _, taken_bytes) in enumerate(steps):
        # what is alive besides the node's inputs, which its peak includes
        top = max(top, live + peak - taken_bytes)
        if tensor[k] == k and last[k] > k:
            live += outputs[k]
        for t in dying.get(k, ()):
            if 0 <= t < k:
                live -= outputs[t]
    return top, not steps or tensor[-1] == -1
