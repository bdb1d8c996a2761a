"""Peak live activation memory of one inference pass, in bytes per image. Pure Python.

The figure follows the torch builder's forward discipline (archcalc.torch.build), which
torch's own allocations confirm (archcalc.torch.memory): a layer's input stays alive while
it runs, and the layer holds what its layer type says (`LayerType.live_bytes`: its output,
plus the indices of max pooling, the padded copy of an asymmetric 'same' convolution, the
statistics of layer norm, the temporaries of LRN); layers that return their input's memory
(`returns_input`: flatten, dropout, identity) hold nothing. A sequence drops a tensor when
the next layer has returned, and its own input is held by its caller until it ends. A merge
holds its input while every branch runs, then the branch outputs while it combines them
into a new tensor (`MergeType.combining_values`: an add of k branches keeps two partial sums
from the third on; an attention merge its scores).
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

from ..layers import MERGES, REGISTRY, MergeType
from .spec import Layer, Node


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
    if node.kind == "sequence":
        return sequence_peak(held_input, [_peak(child, sums, size) for child in node.children])
    branches = [(*_peak(child, sums, size), math.prod(sums[child.path].output_shape) * size) for child in node.children]
    merge = MERGES[node.kind]
    shapes = [sums[child.path].output_shape for child in node.children]
    return merge_peak(merge, held_input, branches, merge.combining_values(shapes, own.output_shape) * size)


# The rules: each gives a node's peak (its input included) and whether its output is its input's own memory.

def layer_peak(layer, attrs, shape, out, value_bytes: int) -> tuple[int, bool]:
    held_input = math.prod(shape) * value_bytes
    if layer.returns_input:
        return held_input, True
    return held_input + layer.live_bytes(attrs, shape, out, value_bytes), False


def sequence_peak(held_input: int, parts: Iterable[tuple[int, bool]]) -> tuple[int, bool]:
    """`parts`: each child's (peak, returns its input)."""
    top, alias = held_input, True
    for peak, child_alias in parts:
        # the sequence's input stays alive (its caller holds it) beside a child working on a later tensor
        top = max(top, peak if alias else peak + held_input)
        alias = alias and child_alias
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
