"""Peak live activations of one inference pass. Pure Python.

A sequence frees a tensor once the next layer has run; a merge keeps its input until all
branches have run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..layers import REGISTRY
from .spec import Layer, Node


@dataclass(frozen=True)
class _Flow:
    peak: int  # most elements alive at once while the node runs, its input included
    alias: bool  # the output is the input's own memory (in-place layers, identity branches)


def peak(root: Node, rows: dict, input_shape) -> int:
    """Most activation elements alive at once, per image, in an inference pass of `root`."""
    return _flow(root, rows, math.prod(input_shape)).peak


def _flow(node: Node, rows: dict, size: int) -> _Flow:
    row = rows[node.path]
    if isinstance(node, Layer):
        allocates = REGISTRY[node.type].allocates
        return _Flow(size + (math.prod(row.output_shape) if allocates else 0), not allocates)
    if node.kind == "sequence":
        top, alias = size, True
        for child in node.children:
            step = _flow(child, rows, math.prod(rows[child.path].input_shape))
            top, alias = max(top, step.peak), alias and step.alias
        return _Flow(top, alias)
    top, held = size, 0
    for child in node.children:
        step = _flow(child, rows, size)
        top = max(top, held + step.peak)
        held += 0 if step.alias else math.prod(rows[child.path].output_shape)
    allocated = math.prod(row.output_shape) if node.kind in ("concat", "mul") else 0
    return _Flow(max(top, size + held + allocated), False)
