"""The calculator: walks a resolved network and computes every row. Pure Python.

Conventions (the README spells them out):
- MACs count multiplications of convolutions and linear layers only, bias excluded;
  FLOPs = 2 x MACs. This is torchvision's published `_ops`.
- fvcore_flops is what fvcore's default handles report: conv/linear MACs plus batch
  norm (2 per element), layer norm (5 per element) and adaptive average pooling (1 per
  input element).
- Activation memory is the sum of the outputs of the layers that allocate a tensor
  (activations, dropout and flatten work in place; add accumulates into its first
  branch), plus the input: the cs231n convention.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .. import fmt
from ..errors import SpecError
from ..layers import REGISTRY, RF, Shape, is_weight_layer, merge_rf
from .spec import Group, Layer, Network, Node

DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1}


@dataclass(frozen=True)
class Row:
    """One layer, or one group with the totals of what it holds."""

    path: str
    type: str
    depth: int
    leaf: bool
    input_shape: Shape
    output_shape: Shape
    params: int
    non_trainable: int
    macs: int
    fvcore_flops: int
    activations: int  # elements this node allocates, per image
    rf: RF

    @property
    def params_keras(self) -> int:
        return self.params + self.non_trainable


@dataclass(frozen=True)
class Note:
    path: str
    message: str


@dataclass(frozen=True)
class Totals:
    """The network's sums over its layers; counts per image (see Analysis for bytes at a batch and dtype)."""

    params: int
    non_trainable: int
    macs: int
    fvcore_flops: int
    activations: int  # elements per image, input included
    peak_activations: int  # most elements alive at once in an inference pass, per image
    layers: int  # weight layers (conv, linear)

    @property
    def params_keras(self) -> int:
        return self.params + self.non_trainable

    @property
    def flops(self) -> int:
        return 2 * self.macs


@dataclass(frozen=True)
class Analysis:
    """What `analyze` returns: the network at one input shape, batch and dtype.

    `rows` holds every layer and group (pre-order), `totals` the sums per image; `weights_bytes`,
    `activation_bytes` and `peak_activation_bytes` are the memory at `batch` and `dtype`;
    `scaled(batch, dtype)` is the same analysis at another configuration.
    """

    network: Network
    input_shape: Shape
    batch: int
    dtype: str
    rows: tuple[Row, ...]  # pre-order: a group comes before what it holds
    totals: Totals
    warnings: tuple[Note, ...]

    @property
    def output_shape(self) -> Shape:
        return self.rows[-1].output_shape if len(self.rows) > 1 else self.input_shape

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
        return self.totals.peak_activations * self.batch * self.bytes_per_value

    def scaled(self, batch: int | None = None, dtype: str | None = None) -> "Analysis":
        """The same analysis at another batch or dtype (counts are per image; nothing is recomputed)."""
        batch, dtype = batch or self.batch, dtype or self.dtype
        _check_batch_dtype(batch, dtype)
        return replace(self, batch=batch, dtype=dtype)

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


def row_record(row: Row) -> dict:
    return {
        "path": row.path, "type": row.type, "output_shape": list(row.output_shape),
        "params": row.params, "non_trainable": row.non_trainable, "macs": row.macs,
        "fvcore_flops": row.fvcore_flops, "activations": row.activations,
        "receptive_field": None if row.rf.size is None else list(row.rf.size),
    }


def analyze(network: Network, input_shape: Shape | None = None, batch: int = 1, dtype: str = "fp32") -> Analysis:
    """Every row of `network` at `input_shape` (CxHxW, HxW or N, completed by `Network.with_input`).

    Counts are per image; `batch` and `dtype` scale the memory figures (`activation_bytes`,
    `peak_activation_bytes`, `weights_bytes`). Raises SpecError when a layer cannot take its input.
    """
    _check_batch_dtype(batch, dtype)
    shape = network.with_input(input_shape)
    walker = _Walker(network)
    rows = [Row("input", "input", 0, True, shape, shape, 0, 0, 0, 0, math.prod(shape), RF())]
    try:
        flow = walker.node(network.root, shape, RF(), rows)
    except SpecError as exc:
        raise exc.located(file=network.file) from None
    body = rows[2:]  # the root group row (index 1) is the network itself
    leaves = [r for r in body if r.leaf]
    totals = Totals(
        params=sum(r.params for r in leaves),
        non_trainable=sum(r.non_trainable for r in leaves),
        macs=sum(r.macs for r in leaves),
        fvcore_flops=sum(r.fvcore_flops for r in leaves),
        activations=rows[0].activations + sum(r.activations for r in leaves),
        peak_activations=flow.peak,
        layers=sum(1 for r in leaves if is_weight_layer(r.type)),
    )
    return Analysis(network, shape, batch, dtype, (rows[0], *body), totals, tuple(walker.warnings))


def _check_batch_dtype(batch: int, dtype: str) -> None:
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise SpecError(f"batch must be at least 1, got {batch!r} (a whole number)")
    if dtype not in DTYPE_BYTES:
        raise SpecError(f"unknown dtype {dtype!r} (one of {', '.join(DTYPE_BYTES)})")


class _Walker:
    def __init__(self, network: Network):
        self.network = network
        self.warnings: list[Note] = []

    def node(self, node: Node, shape: Shape, rf: RF, rows: list[Row]) -> "_Flow":
        if isinstance(node, Layer):
            return self.layer(node, shape, rf, rows)
        at = len(rows)
        rows.append(None)  # type: ignore[arg-type]  # the group's row, filled in below
        size = math.prod(shape)
        if node.kind == "sequence":
            flow = _Flow(shape, rf, size, True)
            for child in node.children:
                step = self.node(child, flow.shape, flow.rf, rows)
                flow = _Flow(step.shape, step.rf, max(flow.peak, step.peak), flow.alias and step.alias)
            out, out_rf, peak = flow.shape, flow.rf, flow.peak
        else:
            # The input stays alive until every branch has run; finished branch outputs are held.
            flows, held, peak = [], 0, size
            for child in node.children:
                step = self.node(child, shape, rf, rows)
                peak = max(peak, held + step.peak)
                held += 0 if step.alias else math.prod(step.shape)
                flows.append(step)
            out = _merge_shape(node, [f.shape for f in flows])
            out_rf = merge_rf([f.rf for f in flows])
        inner = [r for r in rows[at + 1:] if r.leaf]
        allocated = math.prod(out) if node.kind in ("concat", "mul") else 0
        if node.kind != "sequence":
            peak = max(peak, size + held + allocated)
        rows[at] = Row(
            node.path, node.label, _depth(node.path), False, shape, out,
            sum(r.params for r in inner), sum(r.non_trainable for r in inner), sum(r.macs for r in inner),
            sum(r.fvcore_flops for r in inner), sum(r.activations for r in inner) + allocated, out_rf,
        )
        if allocated:  # the merged tensor itself, as a row of its own so that leaves add up
            rows.append(Row(f"{node.path}.{node.kind}" if node.path else node.kind, node.kind, _depth(node.path) + 1,
                            True, out, out, 0, 0, 0, 0, allocated, out_rf))
        return _Flow(out, out_rf, peak, node.kind == "sequence" and flow.alias)

    def layer(self, node: Layer, shape: Shape, rf: RF, rows: list[Row]) -> "_Flow":
        layer = REGISTRY[node.type]
        a = node.attrs

        messages: list[str] = []
        try:
            out = layer.output_shape(a, shape, messages.append)
        except SpecError as exc:
            raise SpecError(f"{exc.message} (input {fmt.shape(shape)})", path=f"{node.path} ({node.type}, {node.where})") from None
        self.warnings.extend(Note(node.path, f"{node.type}: {m}") for m in _merge_axes(messages))
        out_rf = layer.receptive_field(a, rf, shape)
        allocated = math.prod(out) if layer.allocates else 0
        rows.append(Row(
            node.path, node.type, _depth(node.path), True, shape, out, layer.params(a, shape),
            layer.buffers(a, shape), layer.macs(a, shape, out), layer.fvcore_flops(a, shape, out),
            allocated, out_rf,
        ))
        return _Flow(out, out_rf, math.prod(shape) + allocated, not layer.allocates)


@dataclass(frozen=True)
class _Flow:
    """What a node hands on: its output, receptive field, peak live elements (input included),
    and whether its output is the input's own memory (in-place layers, identity branches)."""

    shape: Shape
    rf: RF
    peak: int
    alias: bool


def _depth(path: str) -> int:
    return path.count(".") + 1 if path else 0


def _merge_shape(node: Group, shapes: list[Shape]) -> Shape:
    listed = ", ".join(fmt.shape(s) for s in shapes)
    where = f"{node.path or 'network'} ({node.kind}, {node.where})"
    if node.kind == "concat":
        if len({len(s) for s in shapes}) != 1 or len({s[1:] for s in shapes}) != 1:
            raise SpecError(f"concat needs equal sizes apart from the channels, got {listed}", path=where)
        return (sum(s[0] for s in shapes), *shapes[0][1:])
    if node.kind == "add":
        if len(set(shapes)) != 1:
            raise SpecError(f"add needs equal shapes, got {listed}", path=where)
        return shapes[0]
    return _broadcast(shapes, listed, where)


def _broadcast(shapes: list[Shape], listed: str, where: str) -> Shape:
    rank = max(len(s) for s in shapes)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    out = []
    for dims in zip(*padded):
        sizes = {d for d in dims if d != 1}
        if len(sizes) > 1:
            raise SpecError(f"mul cannot broadcast {listed}", path=where)
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def _merge_axes(messages: list[str]) -> list[str]:
    """'H: x' and 'W: x' with the same x (a square input) read as one 'H and W: x'."""
    if len(messages) == 2 and messages[0].startswith("H: ") and messages[1] == "W: " + messages[0][3:]:
        return ["H and W: " + messages[0][3:]]
    return messages
