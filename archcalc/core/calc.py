"""The calculator: walks a resolved network for its shapes and totals, and for its rows when they are
read. Pure Python.

Conventions (the README spells them out):
- MACs count multiplications of convolutions and linear layers only, bias excluded;
  FLOPs = 2 x MACs. This is torchvision's published `_ops`.
- fvcore_flops is what fvcore's default handles report: conv/linear MACs plus batch
  norm (2 per element), layer norm (5 per element) and adaptive average pooling (1 per
  input element).
- Activation memory is the sum of the outputs of the layers that allocate a tensor
  (activations, dropout and flatten work in place; add accumulates into its first
  branch), plus the input: the cs231n convention.
- Peak live activations follow the torch builder's forward discipline (`liveness`).
"""
from __future__ import annotations

import math
from typing import NamedTuple

from .. import fmt
from ..errors import SpecError
from ..layers import REGISTRY, RF, Shape, merge_rf
from ..layers.notes import SizeNote, notes_for
from . import liveness
from .alloc import paused_gc
from .kinds import quoted
from .spec import Group, Layer, Network, Node, suggest

DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1}
FP32_BYTES = DTYPE_BYTES["fp32"]  # the size peak_activations is counted in

Note = SizeNote  # a warning or a note about one layer (archcalc.layers.notes)


class Row(NamedTuple):
    """One layer, a group with the totals of what it holds, the input, or a merged tensor.

    kind: "input", "layer", "group" or "merge" (the tensor a concat or mul allocates, a row of
    its own so that the leaves add up). label: what a table shows as the type: the layer type,
    the block name or the group's kind.

    A named tuple, as the nodes are (archcalc.core.spec): a network has a row per node.
    """

    path: str
    kind: str
    label: str
    depth: int
    leaf: bool
    input_shape: Shape
    output_shape: Shape
    params: int
    non_trainable: int
    macs: int
    fvcore_flops: int
    allocated: int  # elements this node allocates, per image (the cs231n convention)
    weight_layers: int  # conv and linear layers in this node
    rf: RF

    @property
    def layer_type(self) -> str | None:
        """The registry name of a layer row; None for the input, groups and merged tensors."""
        return self.label if self.kind == "layer" else None

    @property
    def params_keras(self) -> int:
        return self.params + self.non_trainable


class Totals(NamedTuple):
    """The network's sums over its layers; counts per image (see Analysis for bytes at a batch and dtype)."""

    params: int
    non_trainable: int
    macs: int
    fvcore_flops: int
    activations: int  # elements per image, input included
    peak_activations: int  # most fp32 values alive at once in an inference pass, per image (liveness)
    weight_layers: int  # conv and linear layers

    @property
    def params_keras(self) -> int:
        return self.params + self.non_trainable

    @property
    def flops(self) -> int:
        return 2 * self.macs


class Analysis(NamedTuple):
    """What `analyze` returns: the network at one input shape, batch and dtype.

    `rows` holds every layer and group (pre-order; made when first read), `totals` the sums per image;
    `weights_bytes`, `activation_bytes` and `peak_activation_bytes` are the memory at `batch` and
    `dtype`; `scaled(batch, dtype)` is the same analysis at another configuration.
    """

    network: Network
    input_shape: Shape
    output_shape: Shape
    batch: int
    dtype: str
    totals: Totals
    warnings: tuple[Note, ...]
    walked: "_Walked"  # what is made when first asked (shared by `scaled`); not compared

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Analysis) and self[:-1] == other[:-1]

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None  # type: ignore[assignment]  # its network's meta is a mapping

    @property
    def rows(self) -> tuple[Row, ...]:
        """Pre-order: the input, then a group before what it holds (the root is the totals).

        Made when first read: the receptive fields are most of their cost, and totals do not need them.
        Raises SpecError (located in the spec's file) for a receptive field archcalc cannot tabulate."""
        return self.walked.rows()

    @property
    def bytes_per_value(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @property
    def weights_bytes(self) -> int:
        return (self.totals.params + self.totals.non_trainable) * self.bytes_per_value

    @property
    def activation_bytes(self) -> int:
        return self.totals.activations * self.batch * self.bytes_per_value

    @property
    def peak_activation_bytes(self) -> int:
        """Not peak_activations x bytes per value: int64 indices and the like keep their size in every dtype."""
        size = self.bytes_per_value
        if size == FP32_BYTES:
            return self.totals.peak_activations * FP32_BYTES * self.batch
        return self.walked.peak_bytes(size) * self.batch

    def scaled(self, batch: int | None = None, dtype: str | None = None) -> "Analysis":
        """The same analysis at another batch or dtype (counts are per image; nothing is recomputed)."""
        batch, dtype = batch or self.batch, dtype or self.dtype
        _check_batch_dtype(batch, dtype)
        return self._replace(batch=batch, dtype=dtype)

    def leaves(self) -> list[Row]:
        return [row for row in self.rows if row.leaf]

    def at_depth(self, depth: int | None) -> list[Row]:
        """Rows to show: leaves, with everything below `depth` folded into its group."""
        if depth is None:
            return self.leaves()
        return [r for r in self.rows if (r.leaf and r.depth <= depth) or (not r.leaf and r.depth == depth)]

    def row(self, path: str) -> Row:
        for row in self.rows:
            if row.path == path:
                return row
        raise KeyError(path)

    def to_dataframe(self, depth: int | None = None):
        """The rows as a typed pandas DataFrame, the columns of `--format csv` (archcalc.render.dataframe)."""
        from ..render import dataframe

        return dataframe(self, depth)


@paused_gc
def analyze(network: Network, input_shape: Shape | None = None, batch: int = 1, dtype: str = "fp32") -> Analysis:
    """The analysis of `network` at `input_shape` (CxHxW, HxW or N, completed by `Network.with_input`).

    Counts are per image; `batch` and `dtype` scale the memory figures (`activation_bytes`,
    `peak_activation_bytes`, `weights_bytes`). Raises SpecError when a layer cannot take its input.
    The totals are worked out here; the rows when first read (`Analysis.rows`).
    """
    _check_batch_dtype(batch, dtype)
    shape = network.with_input(input_shape)
    walk = _Sums()
    try:
        root = walk.node(network.root, shape)
    except SpecError as exc:
        raise exc.located(file=network.file) from None
    _, out, params, non_trainable, macs, fvcore_flops, allocated, weight_layers, peak, _ = root
    totals = Totals(
        params=params, non_trainable=non_trainable, macs=macs, fvcore_flops=fvcore_flops,
        activations=math.prod(shape) + allocated, peak_activations=peak // FP32_BYTES, weight_layers=weight_layers,
    )
    return Analysis(network, shape, out, batch, dtype, totals, tuple(walk.warnings), _Walked(network, shape, walk.sums))


def _check_batch_dtype(batch: int, dtype: str) -> None:
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise SpecError(f"batch must be at least 1, got {batch!r} (a whole number)")
    if dtype not in DTYPE_BYTES:
        raise SpecError(f"unknown dtype {dtype!r} (one of {', '.join(DTYPE_BYTES)})")


# (input shape, output shape, params, non_trainable, macs, fvcore_flops, allocated, weight_layers, then the
# fp32 peak of live activations and whether the output is the input's own memory: archcalc.core.liveness)
Sums = tuple


class _Sums:
    """The walk every figure but the receptive field comes from: each node's shapes and the sums of what
    it holds, by path (a group's include the tensor its merge allocates); warnings in pre-order."""

    def __init__(self):
        self.warnings: list[Note] = []
        self.counts: dict[tuple, tuple] = {}  # (fields, sums, warnings) by (fields, type, input shape)
        self.sums: dict[str, Sums] = {}
        self.layers: dict[str, Layer] = {}  # the layers walked so far, by path

    def sharing(self, node: Layer, sums: Sums) -> Sums:
        """The sums of a layer that uses the parameters of an earlier one: its parameters count there."""
        where = f"{node.path} ({node.type}, {node.where})"
        shared = self.layers.get(node.shares)  # type: ignore[arg-type]
        if shared is None:
            raise SpecError(f"shares {quoted(node.shares)}: no layer before this one has that path"
                            f"{suggest(node.shares, list(self.layers))}", path=where)  # type: ignore[arg-type]
        theirs = self.sums[shared.path]
        if (shared.type, shared.attrs, theirs[0][0], theirs[2:4]) != (node.type, node.attrs, sums[0][0], sums[2:4]):
            raise SpecError(f"shares {quoted(node.shares)}: not the same layer (type, fields and input channels): "
                            f"{REGISTRY[shared.type].label(shared.attrs)} on {fmt.shape(theirs[0])}, here "
                            f"{REGISTRY[node.type].label(node.attrs)} on {fmt.shape(sums[0])}", path=where)
        return (*sums[:2], 0, 0, *sums[4:])

    def node(self, node: Node, shape: Shape) -> Sums:
        if isinstance(node, Layer):
            key = (id(node.attrs), node.type, shape)  # equal fields are one mapping (archcalc.core.spec)
            known = self.counts.get(key)
            if known is None:  # the entry holds attrs: its id stays its own
                *counts, records = self.count(node, shape)
                known = self.counts[key] = (node.attrs, (shape, *counts), records)
            _, sums, records = known
            if node.shares is not None:
                sums = self.sharing(node, sums)
            self.layers[node.path] = node
            self.sums[node.path] = sums
            if records:
                self.warnings.extend(notes_for(node.path, node.type, records))
            return sums
        params = non_trainable = macs = fvcore_flops = allocated = weight_layers = 0
        parts = []
        out, chained = shape, node.kind == "sequence"
        for child in node.children:
            part = self.node(child, out if chained else shape)
            parts.append(part)
            if chained:
                out = part[1]
            params += part[2]
            non_trainable += part[3]
            macs += part[4]
            fvcore_flops += part[5]
            allocated += part[6]
            weight_layers += part[7]
        held_input = math.prod(shape) * FP32_BYTES
        if chained:
            peak = liveness.sequence_peak(held_input, [(p[8], p[9]) for p in parts])
        else:
            out = _merge_shape(node, [p[1] for p in parts])
            allocated += _merged_values(node, parts[0][1], out) or 0
            peak = liveness.merge_peak(node.kind, held_input, [(p[8], p[9], math.prod(p[1]) * FP32_BYTES) for p in parts],
                                       math.prod(out) * FP32_BYTES)
        sums = self.sums[node.path] = (shape, out, params, non_trainable, macs, fvcore_flops, allocated, weight_layers,
                                       *peak)
        return sums

    @staticmethod
    def count(node: Layer, shape: Shape) -> tuple:
        """What a layer's row holds apart from its receptive field: the same for equal fields and input."""
        layer, a = REGISTRY[node.type], node.attrs
        records: list = []
        try:
            out = layer.output_shape(a, shape, records.append)
        except SpecError as exc:
            raise SpecError(f"{exc.message} (input {fmt.shape(shape)})", path=f"{node.path} ({node.type}, {node.where})") from None
        return (out, layer.params(a, shape), layer.buffers(a, shape), layer.macs(a, shape, out),
                layer.fvcore_flops(a, shape, out), math.prod(out) if layer.allocates else 0, int(layer.weight_layer),
                *liveness.layer_peak(layer, a, shape, out, FP32_BYTES), tuple(records))


def _merged_values(node: Group, first: Shape, out: Shape) -> int | None:
    """The values of the tensor a concat or mul allocates (a row of its own, so that the leaves add up);
    None for an add, which accumulates into its first branch, unless broadcasting makes the sum larger."""
    return None if node.kind == "add" and tuple(first) == tuple(out) else math.prod(out)


class _Walked:
    """What an analysis makes from its sums when first asked: the rows, and the peak at another dtype."""

    def __init__(self, network: Network, shape: Shape, sums: dict[str, Sums]):
        self.network, self.shape, self.sums = network, shape, sums
        self.made: tuple[Row, ...] | None = None
        self.peaks: dict[int, int] = {}  # by bytes per value

    def __repr__(self) -> str:
        return "<rows made when first read>" if self.made is None else f"<{len(self.made)} rows>"

    def rows(self) -> tuple[Row, ...]:
        if self.made is None:
            self.made = _made_rows(self.network, self.shape, self.sums)
        return self.made

    def peak_bytes(self, value_bytes: int) -> int:
        if value_bytes not in self.peaks:
            self.peaks[value_bytes] = liveness.peak_bytes(self.network.root, self.sums, self.shape, value_bytes)
        return self.peaks[value_bytes]


@paused_gc
def _made_rows(network: Network, shape: Shape, sums: dict[str, Sums]) -> tuple[Row, ...]:
    walk = _RowWalk(sums)
    try:
        walk.node(network.root, RF())
    except SpecError as exc:
        raise exc.located(file=network.file) from None
    first = Row("input", "input", "input", 0, True, shape, shape, 0, 0, 0, 0, math.prod(shape), 0, RF())
    return (first, *walk.rows[1:])  # walk.rows[0] is the root: the network itself, whose row is the totals


class _RowWalk:
    """The rows in pre-order: each node's sums (_Sums) with its receptive field."""

    def __init__(self, sums: dict[str, Sums]):
        self.sums = sums
        self.rows: list[Row] = []

    def node(self, node: Node, rf: RF) -> Row:
        path = node.path
        sums = self.sums[path]
        if isinstance(node, Layer):
            try:
                field = REGISTRY[node.type].receptive_field(node.attrs, rf, sums[0])
            except SpecError as exc:
                raise exc.located(path=f"{path} ({node.type}, {node.where})") from None
            row = Row(path, "layer", node.type, _depth(path), True, *sums[:8], field)
            self.rows.append(row)
            return row
        at = len(self.rows)
        self.rows.append(None)  # type: ignore[arg-type]  # the group's row, once its children are known
        merged = None
        if node.kind == "sequence":
            out_rf = rf
            for child in node.children:
                out_rf = self.node(child, out_rf).rf
        else:
            children = [self.node(child, rf) for child in node.children]
            out = sums[1]
            try:
                out_rf = merge_rf([c.rf for c in children], [_broadcast_gate(node, c.output_shape, out) for c in children],
                                  path)
            except SpecError as exc:
                raise exc.located(path=f"{path or 'network'} ({node.kind}, {node.where})") from None
            values = _merged_values(node, children[0].output_shape, out)
            if values is not None:
                merged = Row(f"{path}.{node.kind}" if path else node.kind, "merge", node.kind, _depth(path) + 1, True,
                             out, out, 0, 0, 0, 0, values, 0, out_rf)
        self.rows[at] = Row(path, "group", node.label, _depth(path), False, *sums[:8], out_rf)
        if merged:
            self.rows.append(merged)
        return self.rows[at]


def _broadcast_gate(node: Group, shape: Shape, out: Shape) -> bool:
    """A branch of a mul or add whose output is broadcast over the positions (a squeeze-and-excitation gate,
    a global context added to every position)."""
    padded = (1,) * (len(out) - len(shape)) + tuple(shape)
    return node.kind in ("mul", "add") and len(out) == 3 and padded[1:] != out[1:]


def _depth(path: str) -> int:
    return path.count(".") + 1 if path else 0


def _merge_shape(node: Group, shapes: list[Shape]) -> Shape:
    listed = ", ".join(fmt.shape(s) for s in shapes)
    where = f"{node.path or 'network'} ({node.kind}, {node.where})"
    if node.kind == "concat":
        if len({len(s) for s in shapes}) != 1 or len({s[1:] for s in shapes}) != 1:
            raise SpecError(f"concat needs equal sizes apart from the channels, got {listed}", path=where)
        return (sum(s[0] for s in shapes), *shapes[0][1:])
    return _broadcast(node.kind, shapes, listed, where)


def _broadcast(kind: str, shapes: list[Shape], listed: str, where: str) -> Shape:
    """torch's broadcasting of per-image shapes (each padded with ones on the left, after the batch)."""
    rank = max(len(s) for s in shapes)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    out = []
    for dims in zip(*padded):
        sizes = {d for d in dims if d != 1}
        if len(sizes) > 1:
            raise SpecError(f"{kind} cannot broadcast {listed}", path=where)
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)
