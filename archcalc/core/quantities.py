"""The quantities archcalc counts and shows, each declared once. Pure Python.

A `Quantity` says what it is (its key: the attribute of rows and totals, `row.macs`), how it is
worked out, and how it is shown:

- counted per node: a rule over a layer's type (`layer`), what a merge adds of its own (`merge`),
  what the network's input counts (`network_input`); a group holds the sum of its children's
  (`combine` "sum"). The peak of live activations combines by the liveness rules instead ("peak",
  archcalc.core.liveness). Or `derive`d from a row's or the totals' counted quantities (FLOPs = 2 x
  MACs), or the bytes of another quantity (`bytes_of`), or a `figure` of an analysis of its own;
- whether it grows with the batch (`batched`) and with the bytes per value (`bytes_of`);
- its keys in JSON and CSV: `per_image` in the layer records (`in_layers`) and the totals,
  `per_batch` in each configuration (batch, dtype); `header`, its column in the layer tables (text,
  Markdown, a network's report page, the HTML explorer), `batch_header` in the text and Markdown table
  of configurations; `keras`, the quantity shown in its place in Keras' convention; `unit`, how a value
  is written (count, bytes, shape, field);
- in the reports: its row in the totals of the HTML explorer (`explorer_total`) and of a network's
  page (`page_total`), each the row's label (followed by what `names` says its values are in that
  network, where it says), listed `topic` by topic (TOPICS); `short`, its name after
  a value in an architecture figure, whose `--annotate` takes its key; `share`, the header of its column of
  shares (a row's % of the network's total) in the text and Markdown tables with `--share`;
- its name in a spec's `expect`, and whether such a figure takes a `batch` (`memory` figures that
  grow with it), a `dtype` (bytes) or a `layer` (not `whole_network`).

The calculator (archcalc.core.calc), the formats (archcalc.render, archcalc.core.records), the
reports (archcalc.report: the HTML explorer, the pages, the figures) and a spec's figures
(archcalc.core.keys, archcalc.core.figures) read this table: a new quantity is its declaration
here and its per-layer rule. `declared(...)` adds quantities for the length of a `with` block.
"""

import contextlib
import functools
import math
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Sequence, TypeVar

# Bytes per value of each dtype a memory figure can be counted in (the table, expect, --dtype, training).
DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1}

# A training step's setup (archcalc.core.training counts it): values of optimizer state per trainable
# parameter, and the dtypes master weights may be kept in.
OPTIMIZER_SLOTS = {"none": 0, "sgd": 0, "momentum": 1, "adam": 2, "adamw": 2}
MASTER_DTYPES = ("fp32",)

Shape = tuple[int, ...]


Rule = Callable[..., Any]  # one type for the rules below: typing would build each signature at every start-up


class Quantity(NamedTuple):
    """One quantity: how it is worked out, shown and named (the module's docstring says each field)."""

    key: str
    doc: str
    layer: Rule | None = None  # (layer type, fields, input shape, output shape) -> its count
    merge: Rule | None = None  # (merge type, branch shapes, output shape) -> what the merge counts of its own
    network_input: Rule | None = None  # (input shape) -> what the network's input counts (the input row)
    derive: Rule | None = None  # (a row or the totals) -> its value, from their counted quantities
    bytes_of: str | None = None  # the bytes of that quantity's values, at the analysis' dtype
    figure: Rule | None = None  # (analysis, row or None for the network) -> its value
    combine: str = "sum"  # a group's: the sum of what it holds; "peak": archcalc.core.liveness
    batched: bool = False  # grows with the batch: per_batch is per_image times the batch
    per_image: str | None = None  # JSON/CSV key of a layer record (in_layers) and of the totals
    per_batch: str | None = None  # JSON key of a configuration (one batch and dtype)
    in_layers: bool = True  # the JSON/CSV layer records hold it
    header: str | None = None  # its column in the layer tables: text, Markdown, report pages, the HTML explorer
    drop: int = 0  # that column's turn to be hidden when a text table does not fit (0: never hidden)
    batch_header: str | None = None  # its column in the text and Markdown table of configurations
    unit: str = "count"  # how it is written: count, bytes, shape or field (a receptive field)
    keras: str | None = None  # the quantity shown in its place in Keras' convention
    expect: str | None = None  # its name in a spec's `expect`; None: not a figure a spec can state
    memory: bool = False  # a memory figure: an `expect` of it takes a `batch` when it grows with one
    whole_network: bool = False  # an `expect` of it is about the network, never one layer
    per_parameter: bool = False  # counted once per parameter tensor: 0 on a layer that `shares` another's
    topic: str = ""  # one of TOPICS: the report's totals list their quantities topic by topic
    explorer_total: str | None = None  # its row in the HTML explorer's totals, with this label (needs `per_image`)
    page_total: str | None = None  # its row in the totals of a network's report page, with this label
    names: Rule | None = None  # (analysis) -> what its values are in that network, bracketed after either label
    short: str | None = None  # its name after a value in a figure (`12.3M params`); its key names it in --annotate
    share: str | None = None  # the header of its column of shares (% of the network's total) in the layer tables

    @property
    def counted(self) -> bool:
        """Worked out node by node in the walk of analyze, a group's the sum of what it holds (each row holds it)."""
        return self.layer is not None and self.combine == "sum"


# What a quantity is about, in the order the report's totals (the HTML explorer's, a network page's) list them.
TOPICS = ("parameters", "compute", "structure", "memory")

QUANTITIES: dict[str, Quantity] = {}
_made: list[list] = []  # what per_table functions made from the table (emptied when it changes)
_exposed: dict[type, set[str]] = {}  # classes that read quantities as attributes, and the names given them

T = TypeVar("T")


def per_table(make: Callable[[], T]) -> Callable[[], T]:
    """`make()` worked out once, and again after the table changes."""
    made: list = []
    _made.append(made)

    @functools.wraps(make)
    def read() -> T:
        if not made:
            made.append(make())
        return made[0]

    return read


def declare(quantity: Quantity) -> Quantity:
    """Adds a quantity to the table (after those declared before it)."""
    if quantity.key in QUANTITIES:
        raise ValueError(f"quantity {quantity.key!r} is declared already")
    for cls, given in _exposed.items():
        if quantity.key not in given and hasattr(cls, quantity.key):
            raise ValueError(f"quantity {quantity.key!r} would hide {cls.__name__}.{quantity.key}")
    QUANTITIES[quantity.key] = quantity
    _changed()
    return quantity


def withdraw(key: str) -> None:
    del QUANTITIES[key]
    _changed()


@contextlib.contextmanager
def declared(*quantities: Quantity) -> Iterator[None]:
    """The table with `quantities` added for the length of the block, then as it was."""
    try:
        for quantity in quantities:
            declare(quantity)
        yield
    finally:
        for quantity in quantities:
            if QUANTITIES.get(quantity.key) is quantity:
                withdraw(quantity.key)


@per_table
def counted() -> tuple[Quantity, ...]:
    """The quantities a node's `counts` hold, in this order."""
    return tuple(q for q in QUANTITIES.values() if q.counted)


def expose(cls: type) -> type:
    """Gives `cls` (a record with `counts`) each counted and derived quantity as a read-only attribute."""
    hidden = [q.key for q in QUANTITIES.values() if (q.counted or q.derive) and hasattr(cls, q.key)]
    if hidden:
        raise ValueError(f"quantities {', '.join(hidden)} would hide attributes of {cls.__name__}")
    _exposed[cls] = set()
    _give(cls)
    return cls


def _changed() -> None:
    for made in _made:
        made.clear()
    for cls in _exposed:
        _give(cls)


def _count_at(i: int, doc: str) -> property:
    """The property that reads the i-th of a record's counts."""
    def count(self: Any) -> int:
        return self.counts[i]
    return property(count, doc=doc)


def _give(cls: type) -> None:
    given = _exposed[cls]
    for name in given:
        delattr(cls, name)
    given.clear()
    for i, q in enumerate(counted()):
        setattr(cls, q.key, _count_at(i, q.doc))
        given.add(q.key)
    for q in QUANTITIES.values():
        if q.derive is not None:
            setattr(cls, q.key, property(q.derive, doc=q.doc))
            given.add(q.key)


# ---- reading a quantity ----------------------------------------------------------------------------

def layer_columns() -> list[Quantity]:
    """The quantities with a column in the layer tables (`header`), in their order."""
    return [q for q in QUANTITIES.values() if q.header]


def with_share() -> list[Quantity]:
    """The quantities with a column of shares (`share`: % of the network's total), in their order."""
    return [q for q in QUANTITIES.values() if q.share]


def in_figures() -> list[Quantity]:
    """The quantities an architecture figure can write in a box (`short`), in their order."""
    return [q for q in QUANTITIES.values() if q.short]


def by_topic(quantities: Iterable[Quantity]) -> list[Quantity]:
    """`quantities` topic by topic (TOPICS; those of none last), in their order within a topic."""
    return sorted(quantities, key=lambda q: topic_rank(q.topic))


def topic_rank(topic: str) -> int:
    """Where a topic's quantities come in the report's totals (TOPICS; after them, those of none)."""
    return TOPICS.index(topic) if topic in TOPICS else len(TOPICS)


def shown(quantity: Quantity, record: Any, convention: str = "torchvision") -> Any:
    """The value of a row or the totals in a table or a record, in the parameter convention asked for."""
    return getattr(record, quantity.keras if quantity.keras and convention == "keras" else quantity.key)


def figure(quantity: Quantity, analysis: Any, row: Any = None) -> Any:
    """The value of `row` (None: the network) at the analysis' batch and dtype (archcalc.core.calc.Analysis)."""
    if quantity.figure is not None:
        return quantity.figure(analysis, row)
    value = getattr(analysis.totals if row is None else row, quantity.bytes_of or quantity.key)
    if quantity.batched:
        value *= analysis.batch
    if quantity.bytes_of:
        value *= analysis.bytes_per_value
    return value


@per_table
def layer_counter() -> Callable[[Any, Any, Shape, Shape], tuple[int, ...]]:
    """(layer type, fields, input shape, output shape) -> the counts of a layer: each quantity's rule."""
    rules = [q.layer for q in counted() if q.layer]  # every counted quantity has one
    return lambda t, a, shape, out: tuple([rule(t, a, shape, out) for rule in rules])


# The walk of analyze adds the counts of each node to its group's: written out for the quantities of the
# table (as collections.namedtuple writes its __new__), since a loop over them takes twice as long.
@per_table
def adder() -> Callable[[tuple[int, ...], tuple[int, ...]], tuple[int, ...]]:
    """(counts, counts) -> their sum, quantity by quantity."""
    return eval("lambda x, y: (" + "".join(f"x[{i}] + y[{i}], " for i in range(len(counted()))) + ")")


def zero_counts() -> tuple[int, ...]:
    return (0,) * len(counted())


def merge_counts(merge: Any, shapes: Sequence[Shape], out: Shape) -> tuple[int, ...]:
    """What a merge of branches of `shapes` adds of its own to each counted quantity (a row of its own
    where it allocates a tensor)."""
    return tuple(q.merge(merge, shapes, out) if q.merge else 0 for q in counted())


@per_table
def unshared() -> Callable[[tuple[int, ...]], tuple[int, ...]]:
    """A layer's counts -> those of the same layer using an earlier one's parameters (`shares`): the
    quantities counted per parameter tensor are 0 there."""
    zeroed = [q.per_parameter for q in counted()]
    return lambda counts: tuple(0 if z else c for z, c in zip(zeroed, counts))


def input_counts(shape: Shape) -> tuple[int, ...]:
    return tuple(q.network_input(shape) if q.network_input else 0 for q in counted())


# ---- what a spec's `expect` may name ---------------------------------------------------------------

# The order specs/schema.json has always listed the names in; a name declared later follows them.
_FIRST_EXPECT_NAMES = ("params", "params_keras", "non_trainable", "macs", "flops", "fvcore_flops", "output_shape",
                       "activations", "peak_activations", "weights_bytes", "activation_bytes", "peak_activation_bytes",
                       "layers", "receptive_field")


@per_table
def by_expect() -> dict[str, Quantity]:
    """The quantities a spec's `expect` may name, by that name, in the order the schema lists them."""
    named = {q.expect: q for q in QUANTITIES.values() if q.expect}
    order = {name: i for i, name in enumerate(_FIRST_EXPECT_NAMES)}
    return {name: named[name] for name in sorted(named, key=lambda n: order.get(n, len(order)))}


def expect_names(test: Callable[[Quantity], bool] | None = None) -> tuple[str, ...]:
    """The names a spec's `expect` may give (those whose quantity passes `test`), in the schema's order."""
    return tuple(name for name, q in by_expect().items() if test is None or test(q))


def takes_batch(q: Quantity) -> bool:
    return q.memory and q.batched


def takes_dtype(q: Quantity) -> bool:
    return q.bytes_of is not None


# ---- the quantities ----------------------------------------------------------------------------------

def _receptive_field(analysis: Any, row: Any) -> float:
    """The side of the receptive field (the larger of H and W) of `row`, or of the last row whose field is
    not yet the whole input (the feature extractor's); infinite once it is global."""
    rows = [row] if row is not None else [r for r in analysis.leaves() if r.rf.size is not None]
    size = rows[-1].rf.size if rows else None
    return math.inf if size is None else max(size)


declare(Quantity(
    "params", "trainable parameters", layer=lambda t, a, shape, out: t.params(a, shape), per_parameter=True,
    per_image="params", header="Params", keras="params_keras", expect="params", topic="parameters",
    explorer_total="Parameters", page_total="Parameters (trainable)", short="params", share="% Params"))
declare(Quantity(
    "trainable_params", "trainable parameters, in either convention", derive=lambda r: r.params,
    per_image="trainable_params", in_layers=False, topic="parameters", explorer_total="Trainable parameters"))
declare(Quantity(
    "params_keras", "parameters as Keras counts them: trainable and BN moving statistics",
    derive=lambda r: r.params + r.non_trainable, expect="params_keras", topic="parameters"))
def fixed_values(analysis: Any) -> str:
    """What a network's non-trainable values are: BN running statistics, or the fixed values of another layer type."""
    types = sorted({r.layer_type for r in analysis.leaves() if r.non_trainable and r.layer_type})
    kinds = ["BN running statistics" if "norm" in t else f"fixed values of `{t}`" for t in types]
    return ", ".join(dict.fromkeys(kinds)) or "BN running statistics"  # none: the usual kind, 0 of them


def total_label(quantity: Quantity, label: str, analysis: Any) -> str:
    """A quantity's label in the totals of a report about `analysis`: `label`, and what `names` says its values are."""
    return f"{label} ({quantity.names(analysis)})" if quantity.names else label


declare(Quantity(
    "non_trainable", "non-trainable stored values (BN running statistics, or a layer's fixed values)",
    layer=lambda t, a, shape, out: t.buffers(a, shape), per_parameter=True, per_image="non_trainable", expect="non_trainable",
    topic="parameters", explorer_total="Non-trainable values", page_total="Non-trainable values", names=fixed_values))
declare(Quantity(
    "weight_layers", "convolution and linear layers", layer=lambda t, a, shape, out: int(t.weight_layer),
    per_image="weight_layers", in_layers=False, expect="layers", whole_network=True, topic="structure",
    explorer_total="Weight layers (conv, linear)", page_total="Weight layers (conv, linear)"))
declare(Quantity(
    "macs", "multiply-accumulates of convolutions, linear layers and products of activations (attention), bias "
    "excluded (torchvision's _ops)",
    layer=lambda t, a, shape, out: t.macs(a, shape, out), merge=lambda merge, shapes, out: merge.macs(shapes, out),
    batched=True, per_image="macs_per_image",
    per_batch="macs_per_batch", header="MACs", batch_header="MACs", expect="macs", topic="compute",
    explorer_total="MACs per image (conv, linear, matmul)", page_total="MACs per image (conv, linear, matmul)",
    short="MACs", share="% MACs"))
declare(Quantity(
    "flops", "2 x MACs", derive=lambda r: 2 * r.macs, batched=True, per_image="flops_per_image",
    per_batch="flops_per_batch", in_layers=False, expect="flops", topic="compute",
    explorer_total="FLOPs per image (2 x MACs)", page_total="FLOPs per image (2 x MACs)"))
declare(Quantity(
    "fvcore_flops", "what fvcore's default handles count (one multiply-add = 1)",
    layer=lambda t, a, shape, out: t.fvcore_flops(a, shape, out),
    merge=lambda merge, shapes, out: merge.fvcore_flops(shapes, out), per_image="fvcore_flops_per_image",
    expect="fvcore_flops", topic="compute", explorer_total="fvcore's count per image"))
declare(Quantity(
    "output_shape", "the output shape, without the batch", unit="shape", expect="output_shape",
    figure=lambda analysis, row: list(analysis.output_shape if row is None else row.output_shape), topic="structure",
    page_total="Output"))
declare(Quantity(
    "weights_bytes", "bytes of the parameters and running statistics", bytes_of="params_keras", unit="bytes",
    per_batch="weights_bytes", batch_header="Weights", expect="weights_bytes", memory=True, topic="memory",
    page_total="Weights, fp32 (MiB)"))
declare(Quantity(
    "activations", "values a node allocates (the cs231n convention; the totals count the input too)",
    layer=lambda t, a, shape, out: t.activations(a, shape, out),
    merge=lambda merge, shapes, out: merge.allocated_values(shapes, out), network_input=math.prod, batched=True,
    per_image="activations_per_image", per_batch="activations_per_batch", header="Activations", drop=3,
    expect="activations", memory=True, topic="memory",
    explorer_total="Activations per image (values, input included)",
    page_total="Activations per image (values, input included)"))
declare(Quantity(
    "activation_bytes", "bytes of the activations", bytes_of="activations", batched=True, unit="bytes",
    per_batch="activation_bytes_per_batch", batch_header="Activations", expect="activation_bytes", memory=True,
    whole_network=True, topic="memory", page_total="Activations per image, fp32 (MiB)"))
declare(Quantity(
    "peak_activations", "most fp32 values alive at once in an inference pass", combine="peak", batched=True,
    per_image="peak_activations_per_image", per_batch="peak_activations_per_batch", in_layers=False,
    expect="peak_activations", memory=True, whole_network=True, topic="memory",
    explorer_total="Peak live activations per image (values)"))
declare(Quantity(
    "peak_activation_bytes", "most activation bytes alive at once (int64 indices keep their size in every dtype)",
    bytes_of="peak_activations", batched=True, unit="bytes", figure=lambda analysis, row: analysis.peak_activation_bytes,
    per_batch="peak_activation_bytes_per_batch", batch_header="Peak live", expect="peak_activation_bytes",
    memory=True, whole_network=True, topic="memory", page_total="Peak live activations at inference, fp32 (MiB)"))
declare(Quantity(
    "receptive_field", "the side of the receptive field, in input pixels", unit="field", figure=_receptive_field,
    expect="receptive_field", topic="structure"))
