"""Peak live activation memory of one inference pass, in bytes per image. Pure Python.

The figure follows the torch builder's forward discipline (archcalc.torch.build), which
torch's own allocations confirm (archcalc.torch.memory): a layer's input stays alive while
it runs, and the layer holds what its layer type says (`LayerType.live_bytes`: its output,
plus the indices of max pooling, the padded copy of an asymmetric 'same' convolution, the
statistics of layer norm, the temporaries of LRN); layers that return their input's memory
(`returns_input`: flatten, dropout, identity) hold nothing. A sequence drops a tensor when
the next layer has returned, and its own input is held by its caller until it ends. A merge
holds its input while every branch runs, then the branch outputs while it combines them
into a new tensor (an add of k branches keeps two partial sums from the third on).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..layers import REGISTRY
from .spec import Group, Layer, Node


@dataclass(frozen=True)
class _Flow:
    peak: int  # most bytes alive at once while the node runs, its input included
    alias: bool  # the output is the input's own memory


def peak_bytes(root: Node, rows: dict, input_shape, value_bytes: int) -> int:
    """Most activation bytes alive at once, per image, in an inference pass of `root`."""
    return _flow(root, rows, math.prod(input_shape) * value_bytes, value_bytes).peak


def _flow(node: Node, rows: dict, held_input: int, value_bytes: int) -> _Flow:
    row = rows[node.path]
    if isinstance(node, Layer):
        layer = REGISTRY[node.type]
        return _Flow(held_input + layer.live_bytes(node.attrs, row.input_shape, row.output_shape, value_bytes),
                     layer.returns_input)
    if node.kind == "sequence":
        return _sequence(node, rows, held_input, value_bytes)
    return _merge(node, rows, held_input, value_bytes)


def _sequence(node: Group, rows: dict, held_input: int, value_bytes: int) -> _Flow:
    top, alias = held_input, True
    for child in node.children:
        size = math.prod(rows[child.path].input_shape) * value_bytes
        step = _flow(child, rows, size, value_bytes)
        # the sequence's input stays alive (its caller holds it) beside a child working on a later tensor
        top = max(top, step.peak + (0 if alias else held_input))
        alias = alias and step.alias
    return _Flow(top, alias)


def _merge(node: Group, rows: dict, held_input: int, value_bytes: int) -> _Flow:
    top, held = held_input, 0
    for child in node.children:
        step = _flow(child, rows, held_input, value_bytes)
        top = max(top, held + step.peak)
        held += 0 if step.alias else math.prod(rows[child.path].output_shape) * value_bytes
    out = math.prod(rows[node.path].output_shape) * value_bytes
    partial_sums = 1 if node.kind == "concat" or len(node.children) < 3 else 2
    return _Flow(max(top, held_input + held + partial_sums * out), False)
