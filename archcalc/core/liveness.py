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
from typing import Mapping

from ..layers import REGISTRY
from .spec import Group, Layer, Node


def peak_bytes(root: Node, shapes: Mapping[str, tuple], input_shape, value_bytes: int) -> int:
    """Most activation bytes alive at once, per image, in an inference pass of `root`; `shapes` holds each
    node's (input shape, output shape, ...) by path."""
    return _Walk(shapes, value_bytes).flow(root, math.prod(input_shape) * value_bytes)[0]


class _Walk:
    def __init__(self, shapes: Mapping[str, tuple], value_bytes: int):
        self.shapes, self.size = shapes, value_bytes

    def flow(self, node: Node, held_input: int) -> tuple[int, bool]:
        """The node's peak (its input included) and whether its output is its input's own memory."""
        if isinstance(node, Layer):
            layer = REGISTRY[node.type]
            if layer.returns_input:
                return held_input, True
            shapes = self.shapes[node.path]
            return held_input + layer.live_bytes(node.attrs, shapes[0], shapes[1], self.size), False
        if node.kind == "sequence":
            return self.sequence(node, held_input)
        return self.merge(node, held_input)

    def sequence(self, node: Group, held_input: int) -> tuple[int, bool]:
        top, alias, shapes, size = held_input, True, self.shapes, self.size
        for child in node.children:
            peak, child_alias = self.flow(child, math.prod(shapes[child.path][0]) * size)
            # the sequence's input stays alive (its caller holds it) beside a child working on a later tensor
            top = max(top, peak if alias else peak + held_input)
            alias = alias and child_alias
        return top, alias

    def merge(self, node: Group, held_input: int) -> tuple[int, bool]:
        top, held = held_input, 0
        for child in node.children:
            peak, alias = self.flow(child, held_input)
            top = max(top, held + peak)
            held += 0 if alias else math.prod(self.shapes[child.path][1]) * self.size
        out = math.prod(self.shapes[node.path][1]) * self.size
        partial_sums = 1 if node.kind == "concat" or len(node.children) < 3 else 2
        return max(top, held_input + held + partial_sums * out), False
