"""What a training step costs: backward MACs, the activations autograd keeps, gradients, optimizer state
and the step's peak, at a batch, a dtype and an optimizer. Pure Python.

The per-layer quantities (archcalc.core.quantities) are declared for the length of `counting(setup)`:
the walk of analyze counts them layer by layer (each layer type's `backward_macs`, `saved_values`, ...),
then `settle` walks the network once more in order, so that a tensor two ops keep (a ReLU's output, the
next convolution's input) counts once, and no input gradient is counted where no parameter lies before.
The conventions are in docs/conventions.md ("Training").
"""
import contextlib
import math
from typing import Any, Iterator, NamedTuple

from ..errors import SpecError
from ..layers import MERGES, REGISTRY
from . import quantities
from .quantities import DTYPE_BYTES, MASTER_DTYPES, OPTIMIZER_SLOTS, Quantity
from .spec import Group, Layer, Node, joins, source_positions

# The bytes of a step counter per parameter tensor (torch's Adam keeps `step` as a float32 scalar tensor).
STEP_BYTES = {"adam": 4, "adamw": 4}
FP32 = DTYPE_BYTES["fp32"]


class Setup(NamedTuple):
    """How the network is trained: the optimizer and where its fp32 master weights are (None: none)."""

    optimizer: str = "adamw"
    master: str | None = None


_active: list[Setup] = [Setup()]


def setup() -> Setup:
    return _active[-1]


def check_setup(optimizer: str, master: str | None) -> Setup:
    if optimizer not in OPTIMIZER_SLOTS:
        raise SpecError(f"unknown optimizer {optimizer!r} (one of {', '.join(OPTIMIZER_SLOTS)})")
    if master is not None and master not in MASTER_DTYPES:
        raise SpecError(f"unknown master dtype {master!r} (one of {', '.join(MASTER_DTYPES)})")
    return Setup(optimizer, master)


# ---- the figures of a configuration (an Analysis at a batch and dtype, counted under `counting`) ------

def saved_bytes(row: Any, value_bytes: int) -> int:
    """Bytes autograd keeps of a row per image: its values in the activations' dtype and those of a fixed size."""
    return row.saved_values * value_bytes + row.saved_fixed_bytes


def saved_activation_bytes(analysis: Any) -> int:
    t = analysis.totals
    return analysis.batch * saved_bytes(t, analysis.bytes_per_value) + t.saved_batch_bytes


def gradient_bytes(analysis: Any) -> int:
    """One gradient per trainable parameter, in the parameters' dtype."""
    return analysis.totals.params * analysis.bytes_per_value


def optimizer_state_bytes(analysis: Any) -> int:
    """The optimizer's state (in fp32 under master weights), its step counters, and the fp32 master copy."""
    s, t = setup(), analysis.totals
    state_bytes = FP32 if s.master else analysis.bytes_per_value
    master = t.params * FP32 if s.master else 0
    return OPTIMIZER_SLOTS[s.optimizer] * t.params * state_bytes + STEP_BYTES.get(s.optimizer, 0) * t.param_tensors + master


def transient_bytes(analysis: Any) -> int:
    """The backward's largest transient: the gradients of one layer's output and input at once."""
    return analysis.batch * analysis.totals.transient_values * analysis.bytes_per_value


class Breakdown(NamedTuple):
    """The bytes of a training step at one batch. Its peak is weights + optimizer state + the backward at
    its fullest: the activations still kept, the gradients made so far, and one layer's transient."""

    weights: int
    gradients: int
    optimizer: int
    saved: int  # all that autograd keeps, at the end of the forward
    transient: int  # the largest transient of the backward
    backward: int  # kept activations + gradients + transient at the backward's fullest moment

    @property
    def peak(self) -> int:
        return self.weights + self.optimizer + self.backward


def breakdown(analysis: Any) -> Breakdown:
    return Breakdown(analysis.weights_bytes, gradient_bytes(analysis), optimizer_state_bytes(analysis),
                     saved_activation_bytes(analysis), transient_bytes(analysis), _Backward(analysis).fullest(analysis.batch))


def training_peak_bytes(analysis: Any) -> int:
    """Weights + optimizer state + the backward at its fullest (Breakdown)."""
    return breakdown(analysis).peak


class _Backward:
    """The backward runs the layers in reverse: each frees what autograd kept for it, once run, and makes
    the gradients of its parameters; while it runs it holds the gradients of its output and input."""

    def __init__(self, analysis: Any):
        v = analysis.bytes_per_value
        rows = [r for r in analysis.leaves() if r.kind != "input"]
        self.kept = [(saved_bytes(r, v), r.saved_batch_bytes) for r in rows]
        self.grads = [r.params * v for r in rows]
        self.transient = [r.transient_values * v if r.kind == "layer" else 0 for r in rows]

    def fullest(self, batch: int) -> int:
        kept = sum(batch * per_image + once for per_image, once in self.kept)
        made = top = 0
        for (per_image, once), grads, transient in zip(reversed(self.kept), reversed(self.grads), reversed(self.transient)):
            top = max(top, kept + made + grads + batch * transient)
            kept -= batch * per_image + once
            made += grads
        return top


class Fit(NamedTuple):
    """The largest batch whose step fits `memory` bytes (0: not even one), and its breakdown."""

    batch: int
    memory: int
    fixed: int  # bytes whatever the batch: weights, optimizer state (the peak at batch 0)
    per_image: int  # what the image after `batch` adds to the peak
    at_batch: Breakdown | None


MAX_FIT_BATCH = 2**31 - 1


def fit(analysis: Any, memory: int) -> Fit:
    """A bisection over the batch on the per-image figures (the peak grows with the batch; nothing is
    analysed again)."""
    backward = _Backward(analysis)
    fixed = analysis.weights_bytes + optimizer_state_bytes(analysis)

    def peak(batch: int) -> int:
        return fixed + backward.fullest(batch)

    low, high = 0, 1
    while high < MAX_FIT_BATCH and peak(high) <= memory:
        low, high = high, min(2 * high, MAX_FIT_BATCH)
    if peak(high) <= memory:
        low = high
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if peak(middle) <= memory else (low, middle)
    return Fit(low, memory, fixed, peak(low + 1) - peak(low), breakdown(analysis.scaled(batch=low)) if low else None)


# ---- the quantities ---------------------------------------------------------------------------------

def _figure(rule):
    return lambda analysis, row: rule(analysis)


def _per_image_saved(row: Any) -> int:
    return saved_bytes(row, _value_bytes[-1])


_value_bytes: list[int] = [FP32]  # the bytes per value of a `counting` block's analyses

COUNTED = (
    Quantity("backward_macs", "multiply-accumulates of the backward: the gradients of the input and of the weights",
             layer=lambda t, a, shape, out: t.backward_macs(a, shape, out),
             merge=lambda merge, shapes, out: merge.backward_macs(shapes, out), batched=True,
             per_image="backward_macs_per_image", per_batch="backward_macs_per_batch", header="Backward MACs",
             batch_header="Backward MACs", topic="compute", explorer_total="Backward MACs per image",
             page_total="Backward MACs per image"),
    Quantity("saved_values", "values autograd keeps for the backward, per image, in the activations' dtype",
             layer=lambda t, a, shape, out: t.saved_values(a, shape, out),
             merge=lambda merge, shapes, out: merge.saved_values(shapes, out), batched=True, in_layers=False),
    Quantity("saved_fixed_bytes", "bytes autograd keeps per image whose size no dtype changes (indices, masks)",
             layer=lambda t, a, shape, out: t.saved_fixed_bytes(a, shape, out), in_layers=False),
    Quantity("saved_batch_bytes", "bytes autograd keeps once per batch (batch norm's fp32 statistics)",
             layer=lambda t, a, shape, out: t.saved_batch_bytes(a, shape), in_layers=False),
    Quantity("param_tensors", "parameter tensors", layer=lambda t, a, shape, out: t.param_tensors(a, shape),
             per_parameter=True, in_layers=False),
    Quantity("transient_values", "the gradients of a layer's output and input, held at once in its backward",
             layer=lambda t, a, shape, out: math.prod(shape) + math.prod(out), in_layers=False),
    Quantity("saved_bytes", "bytes autograd keeps for the backward, per image", derive=_per_image_saved,
             unit="bytes", per_image="saved_bytes_per_image", header="Saved", topic="memory",
             explorer_total="Kept for the backward per image (bytes)"),
)

FIGURES = (
    Quantity("train_saved_bytes", "bytes autograd keeps for the backward at the batch", figure=_figure(saved_activation_bytes),
             unit="bytes", per_batch="saved_activation_bytes_per_batch", batch_header="Saved", topic="memory",
             page_total="Kept for the backward at the batch (MiB)"),
    Quantity("train_gradient_bytes", "bytes of the gradients", figure=_figure(gradient_bytes), unit="bytes",
             per_batch="gradient_bytes", batch_header="Gradients", topic="memory", page_total="Gradients (MiB)"),
    Quantity("train_optimizer_bytes", "bytes of the optimizer's state and the master weights",
             figure=_figure(optimizer_state_bytes), unit="bytes", per_batch="optimizer_state_bytes",
             batch_header="Optimizer", topic="memory", page_total="Optimizer state (MiB)"),
    Quantity("train_peak_bytes", "the peak of a training step", figure=_figure(training_peak_bytes), unit="bytes",
             per_batch="training_peak_bytes", batch_header="Train peak", topic="memory",
             page_total="Training-step peak (MiB)"),
)


@contextlib.contextmanager
def counting(train: Setup = Setup(), dtype: str = "fp32") -> Iterator[None]:
    """The training quantities declared (analyze counts them, every format shows them) for the block."""
    _active.append(train)
    _value_bytes.append(DTYPE_BYTES[dtype])
    try:
        with quantities.declared(*COUNTED, *FIGURES):
            yield
    finally:
        _active.pop()
        _value_bytes.pop()


def counted() -> bool:
    """Whether a training step is counted now: its quantities are declared (`counting`)."""
    return quantities.QUANTITIES.get(COUNTED[0].key) is COUNTED[0]


def at(analysis: Any, rule: Any) -> Any:
    """`rule(analysis)` with the training quantities counted (analysed again where they were not)."""
    if counted():
        return rule(analysis)
    with counting(setup(), analysis.dtype):
        return rule(analysis.analyzed_again())


# ---- the second walk: a tensor kept twice counts once; no input gradient before the first parameter --

class _Flow(NamedTuple):
    counts: list[int]
    out_saved: bool  # the node's output is kept already (the next op that keeps it counts nothing)
    out_grad: bool  # its output needs a gradient (a parameter lies before it)
    took_input: bool  # its input is kept after it ran
    out_storage: int  # values of the storage its output lies in (a view's is its input's: a slice keeps it whole)


class _Index(NamedTuple):
    saved: int
    fixed: int
    batch: int
    backward: int
    transient: int


def settle(root: Node, sums: dict[str, Any]) -> Any:
    """Rewrites each node's training counts in `sums` (archcalc.core.calc.NodeSums by path); the root's."""
    keys = [q.key for q in quantities.counted()]
    index = _Index(*(keys.index(k) for k in ("saved_values", "saved_fixed_bytes", "saved_batch_bytes",
                                             "backward_macs", "transient_values")))
    _Settle(sums, index).node(root, False, False, math.prod(sums[root.path].input_shape))
    return sums[root.path]


def merged_key(path: str) -> str:
    """Where `settle` leaves what a merge counts of its own (the row of the tensor it allocates)."""
    return path + "\0merged"


class _Settle:
    def __init__(self, sums: dict[str, Any], index: _Index):
        self.sums, self.i = sums, index

    def store(self, node: Node, counts: list[int]) -> None:
        self.sums[node.path] = self.sums[node.path]._replace(counts=tuple(counts))

    def node(self, node: Node, in_saved: bool, in_grad: bool, storage: int) -> _Flow:
        if isinstance(node, Layer):
            return self.layer(node, in_saved, in_grad, storage)
        if node.kind == "sequence" and node.graph:
            return self.graph(node, in_saved, in_grad, storage)
        if node.kind == "sequence":
            return self.sequence(node, in_saved, in_grad, storage)
        return self.merge(node, in_saved, in_grad, storage)

    def layer(self, node: Layer, in_saved: bool, in_grad: bool, storage: int) -> _Flow:
        own, t, a, i = self.sums[node.path], REGISTRY[node.type], node.attrs, self.i
        shape, out = own.input_shape, own.output_shape
        counts = list(own.counts)
        trains = t.params(a, shape) > 0
        recorded = in_grad or trains  # autograd records it: its input or its weights need a gradient
        if not recorded:
            counts[i.saved] = counts[i.fixed] = counts[i.batch] = counts[i.backward] = counts[i.transient] = 0
        else:
            if t.keeps_input(a, shape, out):  # the whole storage its input is a view of, unless kept already
                counts[i.saved] += -math.prod(shape) if in_saved else storage - math.prod(shape)
            if not in_grad:
                counts[i.backward] -= t.input_grad_macs(a, shape, out)
        self.store(node, counts)
        keeps_input = recorded and t.keeps_input(a, shape, out)
        if t.returns_input_in_training(a):
            out_saved, out_storage = in_saved or keeps_input, storage
        else:
            out_saved, out_storage = recorded and t.saves_output, math.prod(out)
        return _Flow(counts, out_saved, recorded, in_saved or keeps_input, out_storage)

    def total(self, node: Node, parts: list[list[int]], own: list[int] | None = None) -> list[int]:
        counts = [sum(c) for c in zip(*parts, *([own] if own else []))] if parts or own else \
            list(self.sums[node.path].counts)
        t = self.i.transient
        counts[t] = max([p[t] for p in parts] or [0])
        self.store(node, counts)
        return counts

    def sequence(self, node: Group, saved: bool, grad: bool, storage: int) -> _Flow:
        parts, took = [], saved
        for n, child in enumerate(node.children):
            flow = self.node(child, saved, grad, storage)
            parts.append(flow.counts)
            took = flow.took_input if n == 0 else took
            saved, grad, storage = flow.out_saved, flow.out_grad, flow.out_storage
        if not parts:
            counts = [0] * len(self.sums[node.path].counts)
            self.store(node, counts)
            return _Flow(counts, saved, grad, took, storage)
        return _Flow(self.total(node, parts), saved, grad, took, storage)

    def merge(self, node: Group, saved: bool, grad: bool, storage: int) -> _Flow:
        flows = []
        for child in node.children:
            flow = self.node(child, saved, grad, storage)
            flows.append(flow)
            saved = saved or flow.took_input
        shapes = [self.sums[c.path].output_shape for c in node.children]
        own = self.joined(MERGES[node.kind], shapes, self.sums[node.path].output_shape, flows)
        self.sums[merged_key(node.path)] = self.sums[node.path]._replace(counts=tuple(own))
        counts = self.total(node, [f.counts for f in flows], own)
        return _Flow(counts, False, any(f.out_grad for f in flows), saved, math.prod(self.sums[node.path].output_shape))

    def joined(self, merge: Any, shapes: list, out: Any, flows: list[_Flow]) -> list[int]:
        """What a merge counts of its own: the factors it keeps that a branch kept already count there."""
        own = list(quantities.merge_counts(merge, shapes, out))
        if not any(f.out_grad for f in flows):
            own[self.i.saved] = own[self.i.backward] = 0
        elif merge.saves_inputs:
            own[self.i.saved] -= sum(math.prod(s) for s, f in zip(shapes, flows) if f.out_saved)
        return own

    def graph(self, node: Group, saved: bool, grad: bool, storage: int) -> _Flow:
        """Nodes that name what they take: a kept output counts once, whoever takes it."""
        outputs: list[list] = []  # per output: [kept, needs a gradient, values of its storage]
        source_in: list[Any] = [saved, grad, storage]
        parts = []
        for child, sources in zip(node.children, source_positions(node.children)):
            taken = [outputs[s] if s >= 0 else source_in for s in sources]
            if joins(child):
                own = self.sums[child.path]
                shapes = [self.sums[node.children[s].path].output_shape if s >= 0 else own.input_shape for s in sources]
                flows = [_Flow([], kept, needs, kept, size) for kept, needs, size in taken]
                counts = self.joined(MERGES[child.kind], shapes, own.output_shape, flows)
                counts[self.i.transient] = 0
                self.store(child, counts)
                if MERGES[child.kind].saves_inputs:
                    for t in taken:
                        t[0] = True
                flow = _Flow(counts, False, any(t[1] for t in taken), True, math.prod(own.output_shape))
            else:
                flow = self.node(child, *taken[0])
                taken[0][0] = taken[0][0] or flow.took_input
            parts.append(flow.counts)
            outputs.append([flow.out_saved, flow.out_grad, flow.out_storage])
        if not parts:
            return _Flow(self.total(node, []), saved, grad, saved, storage)
        last = outputs[-1]
        return _Flow(self.total(node, parts), last[0], last[1], source_in[0], last[2])
