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

from ..layers import REGISTRY
from .spec import Group, Layer, Node

Peaks = tuple[int, ...]  # bytes, one figure per value size


def peak_bytes(root: Node, rows: dict, input_shape, value_sizes: tuple[int, ...]) -> Peaks:
    """Most activation bytes alive at once, per image, in an inference pass of `root`, for each value size
    (one walk serves every dtype: a layer's live bytes are not proportional to the value size)."""
    return _Walk(rows, value_sizes).flow(root, _sized(math.prod(input_shape), value_sizes))[0]


def _sized(values: int, sizes: tuple[int, ...]) -> Peaks:
    return tuple(values * size for size in sizes)


class _Walk:
    def __init__(self, rows: dict, sizes: tuple[int, ...]):
        self.rows, self.sizes = rows, sizes

    def flow(self, node: Node, held_input: Peaks) -> tuple[Peaks, bool]:
        """The node's peak (its input included) and whether its output is its input's own memory."""
        row = self.rows[node.path]
        if isinstance(node, Layer):
            layer = REGISTRY[node.type]
            if layer.returns_input:
                return held_input, True
            a, shape, out = node.attrs, row.input_shape, row.output_shape
            return tuple(h + layer.live_bytes(a, shape, out, size) for h, size in zip(held_input, self.sizes)), False
        if node.kind == "sequence":
            return self.sequence(node, held_input)
        return self.merge(node, held_input)

    def sequence(self, node: Group, held_input: Peaks) -> tuple[Peaks, bool]:
        top, alias = held_input, True
        for child in node.children:
            peak, child_alias = self.flow(child, _sized(math.prod(self.rows[child.path].input_shape), self.sizes))
            # the sequence's input stays alive (its caller holds it) beside a child working on a later tensor
            top = tuple(max(t, p) for t, p in zip(top, peak)) if alias else \
                tuple(max(t, p + h) for t, p, h in zip(top, peak, held_input))
            alias = alias and child_alias
        return top, alias

    def merge(self, node: Group, held_input: Peaks) -> tuple[Peaks, bool]:
        top, held = held_input, 0
        for child in node.children:
            peak, alias = self.flow(child, held_input)
            top = tuple(max(t, held * size + p) for t, p, size in zip(top, peak, self.sizes))
            held += 0 if alias else math.prod(self.rows[child.path].output_shape)
        out = math.prod(self.rows[node.path].output_shape)
        partial_sums = 1 if node.kind == "concat" or len(node.children) < 3 else 2
        return tuple(max(t, h + (held + partial_sums * out) * size)
                     for t, h, size in zip(top, held_input, self.sizes)), False
