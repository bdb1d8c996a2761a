"""The calculator: one walk of a resolved network gives each node its shapes, the counted quantities it
holds and its liveness (a NodeSums); the totals are read from the root's, the rows from each node's
when they are first read. Pure Python.

What is counted, and how a layer and a merge count it, is declared in archcalc.core.quantities
(MACs: convolutions and linear layers, bias excluded, torchvision's `_ops`; activations: the
outputs of the layers and merges that allocate a tensor, plus the input, the cs231n convention);
peak live activations follow the torch builder's forward discipline (archcalc.core.liveness).
"""
import math
import os
import sys
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Sequence

from .. import fmt
from ..errors import SpecError, suggest
from ..kinds import quoted
from ..layers import MERGES, REGISTRY, RF, Shape
from . import liveness, quantities, records
from .alloc import paused_gc, record
from .figures import Checked, judge
from .spec import Group, Layer, Network, Node, joins, shown, source_positions

if TYPE_CHECKING:
    from ..layers.notes import SizeNote as Note  # a warning or a note about one layer: loaded when one is made

DTYPE_BYTES = quantities.DTYPE_BYTES
FP32_BYTES = DTYPE_BYTES["fp32"]  # the size peak_activations is counted in

# How a notebook shows an Analysis ("markdown", "html"): the formats sit above the calculator, so
# archcalc.notebook fills this in when `import archcalc` loads it.
DISPLAY: dict[str, Callable[["Analysis"], str]] = {}


def _step_figure(name: str) -> Callable[[Any, Any], int]:
    def figure(analysis: Any, row: Any) -> int:
        from . import training

        return training.at(analysis, getattr(training, name))
    return figure


# A spec's `expect` may name a training step's figures (at the default setup: AdamW, no master weights);
# archcalc.core.training works them out, imported when one is asked for.
for _name in ("training_peak_bytes", "gradient_bytes", "optimizer_state_bytes", "saved_activation_bytes"):
    quantities.declare(quantities.Quantity(
        _name, f"{_name.replace('_', ' ')} of a training step (AdamW)", figure=_step_figure(_name), unit="bytes",
        expect=_name, memory=True, batched=_name in ("training_peak_bytes", "saved_activation_bytes"),
        whole_network=True))


@quantities.expose
class Row(NamedTuple):
    """One layer, a group with the totals of what it holds, the input, or a merged tensor.

    kind: "input", "layer", "group" or "merge" (what a merge does after its branches: the tensor a
    concat allocates, an add in place; a row of its own so that the leaves add up). label: what a table shows as the type: the layer type,
    the block name or the group's kind. `counts` holds the counted quantities
    (archcalc.core.quantities), each also an attribute: `row.params`, `row.macs`, `row.activations`
    (the values the node allocates, per image: the cs231n convention), `row.weight_layers` ...;
    so are the quantities derived from them (`row.params_keras`, `row.flops`).

    A named tuple, as the nodes are (archcalc.core.spec): a network has a row per node.
    """

    path: str
    kind: str
    label: str
    depth: int
    leaf: bool
    input_shape: Shape
    output_shape: Shape
    counts: tuple[int, ...]  # per image, in the order of archcalc.core.quantities.counted()
    rf: RF

    @property
    def layer_type(self) -> str | None:
        """The registry name of a layer row; None for the input, groups and merged tensors."""
        return self.label if self.kind == "layer" else None

    @property
    def allocated(self) -> int:
        """The values this node allocates, per image: its activations."""
        return self.activations

    def __getattr__(self, name: str) -> Any:  # typed: the quantities quantities.expose gives the class
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


@quantities.expose
class Totals(NamedTuple):
    """The network's sums over its layers, its input included; counts per image (see Analysis for
    bytes at a batch and dtype). Each counted quantity (archcalc.core.quantities) is an attribute:
    `totals.params`, `totals.macs`, `totals.activations` (values, the input's included) ..., as are
    those derived from them (`totals.params_keras`, `totals.flops`)."""

    counts: tuple[int, ...]  # in the order of archcalc.core.quantities.counted()
    peak_activations: int  # most fp32 values alive at once in an inference pass, per image (liveness)

    def __getattr__(self, name: str) -> Any:  # typed: the quantities quantities.expose gives the class
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


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
    warnings: "tuple[Note, ...]"
    walked: "_Walked"  # what is made when first asked (shared by `scaled`); not compared

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Analysis) and self[:-1] == other[:-1]

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:  # unhashable, as with `__hash__ = None`: its network's meta is a mapping
        raise TypeError(f"unhashable type: {type(self).__name__!r}")

    def __repr__(self) -> str:
        """One line: the network, its input and output, the configuration and the two headline totals."""
        t = self.totals
        return (f"<Analysis {self.network.name}: {fmt.shape(self.input_shape)} -> {fmt.shape(self.output_shape)}, "
                f"{t.params:,} params, {t.macs:,} MACs per image, batch {self.batch} {self.dtype}>")

    def _repr_markdown_(self) -> str:
        return DISPLAY["markdown"](self)

    def _repr_html_(self) -> str:
        return DISPLAY["html"](self)

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
        return quantities.figure(quantities.QUANTITIES["weights_bytes"], self)

    @property
    def activation_bytes(self) -> int:
        return quantities.figure(quantities.QUANTITIES["activation_bytes"], self)

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

    def analyzed_again(self) -> "Analysis":
        """The same network, input, batch and dtype analysed anew (with the quantities declared now)."""
        return analyze(self.network, self.input_shape, self.batch, self.dtype)

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
        """The rows as a typed pandas DataFrame, the columns of `--format csv` (archcalc.core.records)."""
        return records.dataframe(self, depth)


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
    finally:
        if len(walk.counts) > _LAYER_SUMS_KEPT:  # not held past the analysis that made them
            walk.counts.clear()
    walk.found.complete = True
    training = _training_step()
    if training is not None:
        root = training.settle(network.root, walk.found.by_path())
    totals = Totals(walk.add(root.counts, quantities.input_counts(shape)), root.peak // FP32_BYTES)
    return Analysis(network, shape, root.output_shape, batch, dtype, totals, tuple(walk.warnings),
                    _Walked(network, shape, walk.found))


def _training_step() -> Any:
    """archcalc.core.training while it counts a training step (`training.counting`), else None. Only an
    imported module can count one: the calculator does not load it."""
    training = sys.modules.get(f"{__package__}.training")
    return training if training is not None and training.counted() else None


def check_network(network: Network, analysis: Analysis | None = None) -> list[Checked]:
    """The verdict on each `expect` of `network` (archcalc.core.figures), on `analysis` or on its own."""
    analysis = analysis or analyze(network)
    return [judge(analysis, expect) for expect in network.expect]


def _check_batch_dtype(batch: int, dtype: str) -> None:
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise SpecError(f"batch must be at least 1, got {batch!r} (a whole number)")
    if dtype not in DTYPE_BYTES:
        raise SpecError(f"unknown dtype {dtype!r} (one of {', '.join(DTYPE_BYTES)})")


class NodeSums(NamedTuple):
    """What the walk finds for one node: its shapes, the counted quantities it holds (a group's include
    what its merge adds: the tensor a concat allocates), and its liveness (archcalc.core.liveness)."""

    input_shape: Shape
    output_shape: Shape
    counts: tuple[int, ...]  # in the order of archcalc.core.quantities.counted()
    peak: int  # fp32 bytes alive at once at its most while it runs, its input included
    returns_input: bool  # its output is its input's own memory


def _notes_for(path: str, layer_type: str, records: Sequence) -> "list[Note]":
    """The notes of a layer whose output size is not whole (archcalc.layers.notes, loaded for the first)."""
    from ..layers.notes import notes_for

    return notes_for(path, layer_type, records)


def _moved_prefixes(walked_at: str, path: str) -> tuple[str, str]:
    """The prefixes a copy's paths replace (archcalc.core.spec._moved): a copy's paths and the original's end
    alike. Not the group's own path: a merge's branch is keyed apart from the nodes it holds."""
    same = len(os.path.commonprefix([walked_at[::-1], path[::-1]]))
    return walked_at[:len(walked_at) - same], path[:len(path) - same]


# A layer's sums depend on its fields, type and input shape alone: kept from one analysis to the next (the variants
# of a family share most of their layers), for the quantities declared now; an analysis that leaves more than the
# bound clears them (analyze).
_LAYER_SUMS_KEPT = 20_000
_layer_sums_of: list = [None, {}]  # the quantities' layer counter, and the sums made with it


def _layer_sums(counter: Callable) -> dict[tuple, tuple]:
    if _layer_sums_of[0] is not counter:
        _layer_sums_of[:] = [counter, {}]
    return _layer_sums_of[1]


def forget_layer_sums() -> None:
    """Drops the layer sums kept between analyses: for a caller that has replaced a layer type's rule in place."""
    _layer_sums_of[:] = [None, {}]


class _Copied:
    """The entries of an earlier walk of a group, from `first` to before `end` (the group's own), moved to a copy:
    each entry's path with its first `cut` characters replaced by `prefix`."""

    __slots__ = ("cut", "prefix", "first", "end")

    def __init__(self, cut: int, prefix: str, first: int, end: int):
        self.cut, self.prefix, self.first, self.end = cut, prefix, first, end


_NEAR = 32  # the entries a layer that shares another's parameters looks back through first (_Found.layer)


class _Found:
    """What the walk found, in walk order: (path, sums, layer or None) for each node; for a copy of a group walked
    before, (path, sums, _Copied): that walk's entries, given their paths when the sums are first read by path."""

    __slots__ = ("entries", "sums", "layers", "indexed", "complete")

    def __init__(self):
        self.entries: list[tuple[str, NodeSums, Any]] = []
        self.sums: dict[str, NodeSums] = {}  # by path: what `by_path` has read of the entries so far
        self.layers: dict[str, Layer] = {}
        self.indexed = 0
        self.complete = False  # the walk has ended: once read by path, the entries are let go

    def by_path(self) -> dict[str, NodeSums]:
        """Each node's sums by its path (the layers' in `layers`): every entry so far, copies' moved."""
        if self.indexed < len(self.entries):
            start, self.indexed = self.indexed, len(self.entries)
            self._read(start, self.indexed, ())
            if self.complete:
                self.entries = []
        return self.sums

    def layer(self, path: str) -> tuple[Layer, NodeSums] | None:
        """The layer walked at `path`, and its sums: looked for among the last entries (a module called again is
        close to its first call), else among all (every entry read by path)."""
        entries = self.entries
        for k in range(len(entries) - 1, max(len(entries) - _NEAR, 0) - 1, -1):
            at, sums, what = entries[k]
            if at == path and isinstance(what, Layer):  # not a copy's entries
                return what, sums
        self.by_path()
        return (self.layers[path], self.sums[path]) if path in self.layers else None

    def _read(self, start: int, end: int, moves: tuple[tuple[int, str], ...]) -> None:
        for at, sums, what in self.entries[start:end]:
            for cut, prefix in moves:
                at = prefix + at[cut:]
            if type(what) is _Copied:
                self._read(what.first, what.end, ((what.cut, what.prefix), *moves))
            elif what is not None:
                self.layers[at] = what
            self.sums[at] = sums


class _Sums:
    """The one walk every figure but the receptive field comes from: a NodeSums per node (`found`, read by path
    when first needed); warnings in pre-order.

    A group equal to one walked before at the same input (the copies of a block: Group.origin) takes
    that one's sums, those of what it holds and its notes, moved to its path, without counting them again."""

    def __init__(self):
        self.groups: dict[tuple, tuple] = {}  # (path, where its walk's entries in found and noted start and end)
        self.found = _Found()
        self.entries = self.found.entries  # appended to at each node
        self.noted: list[tuple[str, str, tuple]] = []  # (path, layer type, records) of each layer's notes
        self.warnings: list[Note] = []
        self.layer_counts = quantities.layer_counter()
        self.counts = _layer_sums(self.layer_counts)  # (fields, sums, notes) by (fields, type, input shape)
        self.add = quantities.adder()
        self.zeros = quantities.zero_counts()
        self.unshared = quantities.unshared()

    def sharing(self, node: Layer, sums: NodeSums) -> NodeSums:
        """The sums of a layer that uses the parameters of an earlier one: its parameters count there."""
        where = f"{node.path} ({node.type}, {node.where})"
        shares = node.shares or ""
        found = self.found.layer(shares)
        if found is None:
            raise SpecError(f"shares {quoted(shares)}: no layer before this one has that path"
                            f"{suggest(shares, list(self.found.layers))}", path=where)
        shared, theirs = found
        unshared = self.unshared(sums.counts)
        channels = (theirs.input_shape[0], sums.input_shape[0]) if unshared != sums.counts else (0, 0)  # weights' size
        if (shared.type, shared.attrs, channels[0]) != (node.type, node.attrs, channels[1]):
            raise SpecError(f"shares {quoted(shares)}: not the same layer (type, fields and input channels): "
                            f"{REGISTRY[shared.type].label(shared.attrs)} on {fmt.shape(theirs.input_shape)}, here "
                            f"{REGISTRY[node.type].label(node.attrs)} on {fmt.shape(sums.input_shape)}", path=where)
        return sums._replace(counts=unshared)


    def node(self, node: Node, shape: Shape) -> NodeSums:
        if isinstance(node, Layer):
            # equal fields are one mapping (archcalc.core.spec); a shape's class tells its layout apart
            key = (id(node.attrs), node.type, shape, type(shape))
            known = self.counts.get(key)
            if known is None:  # the entry holds attrs: its id stays its own
                known = self.counts[key] = (node.attrs, *self.count(node, shape))
            _, sums, records = known
            if node.shares is not None:
                sums = self.sharing(node, sums)
            self.entries.append((node.path, sums, node))
            if records:
                self.noted.append((node.path, node.type, records))
                self.warnings.extend(_notes_for(shown(node.path), node.type, records))
            return sums
        origin = node if node.origin is None else node.origin
        group_key = (id(origin), shape, type(shape))
        known = self.groups.get(group_key)
        if known is not None:
            return self.copy(node, known)
        entries = self.entries
        first, first_note = len(entries), len(self.noted)  # both only grow
        sums = self.group(node, shape)
        entries.append((node.path, sums, None))
        self.groups[group_key] = (node.path, first, len(entries), first_note, len(self.noted))
        return sums

    def copy(self, node: Group, known: tuple) -> NodeSums:
        """A group equal to one walked before at the same input: what that walk found, moved to its path (when
        first read by path: _Found), and its notes."""
        walked_at, first, end, first_note, end_note = known
        old, path = _moved_prefixes(walked_at, node.path)
        cut = len(old)
        sums = self.entries[end - 1][1]  # the group's own, after what it holds
        self.entries.append((node.path, sums, _Copied(cut, path, first, end - 1)))
        for at, layer_type, sizes in self.noted[first_note:end_note]:
            moved = path + at[cut:]
            self.noted.append((moved, layer_type, sizes))
            self.warnings.extend(_notes_for(shown(moved), layer_type, sizes))
        return sums

    def group(self, node: Group, shape: Shape) -> NodeSums:
        if node.kind == "sequence":
            return self.graph(node, shape) if node.graph else self.chain(node, shape)
        parts = [self.node(child, shape) for child in node.children]
        counts = self.zeros
        for part in parts:
            counts = self.add(counts, part.counts)
        merge = MERGES[node.kind]
        shapes = [p.output_shape for p in parts]
        out = _merge_shape(node, shapes)
        counts = self.add(counts, quantities.merge_counts(merge, shapes, out))
        peak = liveness.merge_peak(merge, math.prod(shape) * FP32_BYTES,
                                   [(p.peak, p.returns_input, math.prod(p.output_shape) * FP32_BYTES) for p in parts],
                                   merge.combining_values(shapes, out) * FP32_BYTES)
        return record(NodeSums, (shape, out, counts, *peak))

    def chain(self, node: Group, shape: Shape) -> NodeSums:
        """A sequence: each node on the output of the one before."""
        counts, out, steps = self.zeros, shape, []
        for child in node.children:
            part = self.node(child, out)
            counts = self.add(counts, part.counts)
            steps.append((part.peak, part.returns_input, math.prod(out) * FP32_BYTES))  # its input: `out`
            out = part.output_shape
        return record(NodeSums, (shape, out, counts, *liveness.sequence_peak(math.prod(shape) * FP32_BYTES, steps)))

    def graph(self, node: Group, shape: Shape) -> NodeSums:
        """A sequence whose nodes name what they take (`from`): each runs on the outputs it names."""
        counts = self.zeros
        outputs: list[Shape] = []
        steps = []
        for child, sources in zip(node.children, source_positions(node.children)):
            shapes = [outputs[s] if s >= 0 else shape for s in sources]
            part = self.join(child, shapes) if joins(child) else self.node(child, shapes[0])
            outputs.append(part.output_shape)
            counts = self.add(counts, part.counts)
            steps.append((part.peak, part.returns_input, sources, sum(math.prod(s) for s in shapes) * FP32_BYTES))
        held_input = math.prod(shape) * FP32_BYTES
        peak = liveness.graph_peak(held_input, steps, [math.prod(out) * FP32_BYTES for out in outputs])
        return record(NodeSums, (shape, outputs[-1] if outputs else shape, counts, *peak))

    def join(self, node: Group, shapes: list[Shape]) -> NodeSums:
        """A merge of named nodes' outputs: its input is the first of them."""
        merge = MERGES[node.kind]
        out = _merge_shape(node, shapes)
        taken = sum(math.prod(s) for s in shapes) * FP32_BYTES
        peak = liveness.join_peak(taken, merge.combining_values(shapes, out) * FP32_BYTES)
        counts = self.add(self.zeros, quantities.merge_counts(merge, shapes, out))
        sums = record(NodeSums, (shapes[0], out, counts, *peak))
        self.entries.append((node.path, sums, None))
        return sums

    def count(self, node: Layer, shape: Shape) -> tuple[NodeSums, tuple]:
        """A layer's sums, the same for equal fields and input, and the notes on its size."""
        layer, a = REGISTRY[node.type], node.attrs
        records: list = []
        try:
            out = layer.output_shape(a, shape, records.append)
        except SpecError as exc:
            raise SpecError(f"{exc.message} (input {fmt.shape(shape)})", path=f"{node.path} ({node.type}, {node.where})") from None
        counts = self.layer_counts(layer, a, shape, out)
        sums = record(NodeSums, (shape, out, counts, *liveness.layer_peak(layer, a, shape, out, FP32_BYTES)))
        return sums, tuple(records)


class _Walked:
    """What an analysis makes from its sums when first asked: the rows, and the peak at another dtype."""

    def __init__(self, network: Network, shape: Shape, found: _Found):
        self.network, self.shape, self.found = network, shape, found
        self.made: tuple[Row, ...] | None = None
        self.keys: tuple[str, ...] = ()  # each row's node key (Node.path), the input's first ("")
        self.peaks: dict[int, int] = {}  # by bytes per value

    def __repr__(self) -> str:
        return "<rows made when first read>" if self.made is None else f"<{len(self.made)} rows>"

    @property
    def sums(self) -> dict[str, NodeSums]:
        """Each node's sums by its key (Node.path)."""
        return self.found.by_path()

    def rows(self) -> tuple[Row, ...]:
        if self.made is None:
            self.made, self.keys = _made_rows(self.network, self.shape, self.sums)
        return self.made

    def peak_bytes(self, value_bytes: int) -> int:
        if value_bytes not in self.peaks:
            self.peaks[value_bytes] = liveness.peak_bytes(self.network.root, self.sums, value_bytes)
        return self.peaks[value_bytes]


@paused_gc
def _made_rows(network: Network, shape: Shape, sums: dict[str, NodeSums]) -> tuple[tuple[Row, ...], tuple[str, ...]]:
    """The rows, and the key of the node each row is of."""
    walk = _RowWalk(sums)
    try:
        walk.node(network.root, RF())
    except SpecError as exc:
        raise exc.located(file=network.file) from None
    first = Row("input", "input", "input", 0, True, shape, shape, quantities.input_counts(shape), RF())
    # walk.rows[0] is the root: the network itself, whose row is the totals
    return (first, *walk.rows[1:]), ("", *walk.keys[1:])


class _RowWalk:
    """The rows in pre-order: each node's sums (_Sums) with its receptive field, and the node's key."""

    def __init__(self, sums: dict[str, NodeSums]):
        self.sums = sums
        self.rows: list[Row] = []
        self.keys: list[str] = []

    def add(self, row: Row, key: str) -> Row:
        self.rows.append(row)
        self.keys.append(key)
        return row

    def node(self, node: Node, rf: RF) -> Row:
        path = node.path
        sums = self.sums[path]
        if isinstance(node, Layer):
            try:
                field = REGISTRY[node.type].receptive_field(node.attrs, rf, sums.input_shape)
            except SpecError as exc:
                raise exc.located(path=f"{path} ({node.type}, {node.where})") from None
            return self.add(_row(path, "layer", node.type, True, sums, field), path)
        if node.kind != "sequence":
            return self.merge(node, rf)
        at = len(self.rows)
        self.add(None, path)  # type: ignore[arg-type]  # the group's row, once its children are known
        out_rf = self.sequence(node, rf)
        self.rows[at] = _row(path, "group", node.label, False, sums, out_rf)
        return self.rows[at]

    def sequence(self, node: Group, rf: RF) -> RF:
        """The rows of a sequence's nodes (a graph's, or a chain's); the field of its output."""
        if node.graph:
            return self.graph(node, rf)
        for child in node.children:
            rf = self.node(child, rf).rf
        return rf

    def _settled_merge(self, path: str) -> tuple[int, ...] | None:
        """What a training step's second walk left as a merge's own counts (archcalc.core.training.settle)."""
        training = _training_step()
        if training is None:
            return None
        settled = self.sums.get(training.merged_key(path))
        return settled.counts if settled else None

    def merge(self, node: Group, rf: RF) -> Row:
        """A merge's branches, which have no rows of their own (they add no part to a path), then the merge's
        row: what it adds of its own (the tensor a concat allocates, an attention's MACs, what it keeps for
        backward), so that the leaves add up; an in-place add allocates nothing and has a row all the same."""
        path = node.path
        merge = MERGES[node.kind]
        fields, shapes = [], []
        for branch in node.children:
            assert isinstance(branch, Group)  # a merge's children are its branches, sequences
            fields.append(self.sequence(branch, rf))
            shapes.append(self.sums[branch.path].output_shape)
        out = self.sums[path].output_shape
        try:
            out_rf = merge.receptive_field(fields, shapes, out, path)
        except SpecError as exc:
            raise exc.located(path=f"{path or 'network'} ({node.kind}, {node.where})") from None
        own = self._settled_merge(path) or quantities.merge_counts(merge, shapes, out)
        return self.add(Row(shown(path) or node.kind, "merge", node.kind, _depth(path), True, out, out, own, out_rf),
                        path)

    def graph(self, node: Group, rf: RF) -> RF:
        """The children of a sequence whose nodes name what they take; the field of its output."""
        fields: list[RF] = []
        rows: list[Row] = []
        shape = self.sums[node.path].input_shape
        for child, sources in zip(node.children, source_positions(node.children)):
            taken = [fields[s] if s >= 0 else rf for s in sources]
            if joins(child):
                row = self.join(child, taken, [rows[s].output_shape if s >= 0 else shape for s in sources])
            else:
                row = self.node(child, taken[0])
            rows.append(row)
            fields.append(row.rf)
        return fields[-1] if fields else rf

    def join(self, node: Group, fields: list[RF], shapes: list[Shape]) -> Row:
        """A merge of named nodes' outputs: one row, the tensor it makes, with the fields met."""
        sums = self.sums[node.path]
        try:
            rf = MERGES[node.kind].receptive_field(fields, shapes, sums.output_shape, node.path)
        except SpecError as exc:
            raise exc.located(path=f"{node.path} ({node.kind}, {node.where})") from None
        return self.add(_row(node.path, "merge", node.kind, True, sums, rf), node.path)


def rows_by_key(analysis: Analysis) -> dict[str, Row]:
    """Each node's row by the node's key (`Node.path`: a module called again has a key of its own, which its row's
    path leaves out; a merge's branches have no row), in the order of `analysis.rows`."""
    rows = analysis.rows
    return dict(zip(analysis.walked.keys[1:], rows[1:]))


def _row(path: str, kind: str, label: str, leaf: bool, sums: NodeSums, rf: RF) -> Row:
    return Row(shown(path), kind, label, _depth(path), leaf, sums.input_shape, sums.output_shape, sums.counts, rf)


def _depth(path: str) -> int:
    return path.count(".") + 1 if path else 0


def _merge_shape(node: Group, shapes: list[Shape]) -> Shape:
    try:
        return MERGES[node.kind].output_shape(shapes)
    except SpecError as exc:
        raise SpecError(exc.message, path=f"{node.path or 'network'} ({node.kind}, {node.where})") from None
