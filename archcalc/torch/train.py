"""What torch spends on one training step of a built network, measured on the CPU, beside archcalc's
figures (archcalc.core.training): the bytes autograd keeps (a saved_tensors_hooks pair, each storage once,
parameters left out), the backward's MACs (FlopCounterMode over `loss.backward()`, halved), the bytes of
`p.grad` and of `optimizer.state` after a step, and the step's peak (the storages alive at once, as
archcalc.torch.memory counts an inference pass, parameters included).
"""
from __future__ import annotations

import weakref
from typing import Any, NamedTuple

from ..core import training
from ..core.calc import Analysis
from ..deps import require_torch
from .memory import check_allocation


class Measured(NamedTuple):
    saved_bytes: int
    backward_macs: int
    gradient_bytes: int
    optimizer_state_bytes: int
    peak_bytes: int


class TrainCheck(NamedTuple):
    """One training figure: archcalc's and torch's, and whether they agree (exactly, or within `tolerance`)."""

    what: str
    archcalc: int
    torch: int
    tolerance: float = 0.0

    @property
    def ok(self) -> bool:
        return abs(self.archcalc - self.torch) <= self.tolerance * max(self.torch, 1)


PEAK_TOLERANCE = 0.05

_OPTIMIZERS = {"sgd": ("SGD", {"lr": 0.1}), "momentum": ("SGD", {"lr": 0.1, "momentum": 0.9}),
               "adam": ("Adam", {}), "adamw": ("AdamW", {})}


def built(analysis: Analysis):
    """The network built in fp32 on the CPU, in training mode, and an input of the analysis' batch."""
    torch = require_torch()
    from .build import build_torch

    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[analysis.dtype]
    torch.manual_seed(0)
    model = build_torch(analysis).train().to(dtype)
    x = torch.randn(analysis.batch, *analysis.input_shape, dtype=dtype)
    return model, x


def measure(analysis: Analysis, optimizer: str = "adamw", autocast: bool = False) -> Measured:
    """One step of `optimizer` on the built network, each figure measured as the module docstring says; with
    `autocast`, the forward under CPU autocast to bf16 (the model and its input in fp32)."""
    torch = require_torch()
    from torch.utils.flop_counter import FlopCounterMode

    model, x = built(analysis)
    params = list(model.parameters())
    param_storages = {t.untyped_storage()._cdata for t in (*params, *model.buffers())}  # weights, counted apart
    kept: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage._cdata not in param_storages:
            kept[storage._cdata] = storage.nbytes()
        return tensor

    tracker = _StepPeak(torch, param_storages)
    with tracker:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
                torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = model(x).float().sum()
        saved = sum(kept.values())
        counter = FlopCounterMode(display=False)
        with counter:
            loss.backward()
        del loss
    backward_macs = counter.get_total_flops() // 2
    gradient_bytes = sum(p.grad.nbytes for p in params if p.grad is not None)
    state_bytes = 0
    if optimizer in _OPTIMIZERS:
        name, options = _OPTIMIZERS[optimizer]
        step = getattr(torch.optim, name)(params, **options)
        step.step()
        state_bytes = sum(v.nbytes for s in step.state.values() for v in s.values() if isinstance(v, torch.Tensor))
    return Measured(saved, backward_macs, gradient_bytes, state_bytes, tracker.peak)


class _StepPeak:
    """The most bytes of storage alive at once in the forward and backward: what the ops make (their
    outputs, the gradients), the input, and the weights; the optimizer's state is added apart."""

    def __init__(self, torch: Any, params: set[int]):
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils._pytree import tree_flatten

        owner = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                for item in tree_flatten(out)[0]:
                    if isinstance(item, torch.Tensor):
                        owner.track(item)
                return out

        self.mode, self.params = Mode(), params
        self.live: dict[int, int] = {}
        self.current = self.peak = 0

    def track(self, tensor: Any) -> None:
        storage = tensor.untyped_storage()
        key = storage._cdata
        if key in self.params or key in self.live:
            return
        self.live[key] = storage.nbytes()
        self.current += self.live[key]
        self.peak = max(self.peak, self.current)
        weakref.finalize(storage, self.free, key)

    def free(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def __enter__(self):
        self.mode.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.mode.__exit__(*exc)


def _counter_difference(analysis: Analysis) -> int:
    """What FlopCounterMode counts of the backward beyond archcalc, per image: a grouped convolution's weight
    gradient counted as an ungrouped convolution, `groups` times its MACs (torch.utils.flop_counter's
    conv_backward_flop reads the input's channels whole), and nothing of an RBF layer's backward (a
    difference, a square and a sum: no op the counter has a formula for)."""
    from ..core.spec import Layer, Node

    layers: dict[str, Layer] = {}
    stack: list[Node] = [analysis.network.root]
    while stack:
        node = stack.pop()
        if isinstance(node, Layer):
            layers[node.path] = node
        else:
            stack.extend(node.children)

    def beyond(row: Any) -> int:
        layer = layers.get(row.path)
        if layer is None:
            return 0
        if layer.type == "rbf":
            return -row.backward_macs
        groups = layer.attrs.get("groups", 1) if layer.type in ("conv2d", "conv_transpose2d") else 1
        return (groups - 1) * row.macs if row.params else 0

    return sum(beyond(r) for r in analysis.leaves())


# The layer types whose fixed or per-batch kept bytes are a norm's fp32 mean and inverse deviation.
_NORM_STATISTICS = ("batch_norm2d", "layer_norm", "layer_norm2d", "group_norm", "patch_merging")


def _cpu_statistics(analysis: Analysis) -> int:
    """What torch's CPU norm kernels keep less than archcalc in a bf16 or fp16 model, at the batch: they keep
    the mean and inverse deviation in the model's dtype, where archcalc (as torch's CUDA kernels) counts fp32."""
    value_bytes = analysis.bytes_per_value
    if value_bytes == training.FP32:
        return 0
    kept = sum(analysis.batch * r.saved_fixed_bytes + r.saved_batch_bytes
               for r in analysis.leaves() if r.layer_type in _NORM_STATISTICS)
    return kept - kept * value_bytes // training.FP32


def checks(analysis: Analysis, optimizer: str = "adamw") -> list[TrainCheck]:
    """archcalc's training figures at the analysis' batch and dtype beside torch's, measured on the CPU (the
    whole model in that dtype: no master weights)."""
    with training.counting(training.check_setup(optimizer, None), analysis.dtype):
        from ..core.calc import analyze
        counted = analyze(analysis.network, analysis.input_shape, analysis.batch, analysis.dtype)
        ours = training.breakdown(counted)
        backward = (counted.totals.backward_macs + _counter_difference(counted)) * counted.batch
        cpu_saved = ours.saved - _cpu_statistics(counted)
    check_allocation(ours.peak, "verify --train", f"a training step at batch {analysis.batch}", analysis.network.file)
    measured = measure(analysis, optimizer)
    step_peak = measured.peak_bytes + ours.weights + measured.optimizer_state_bytes
    return [
        TrainCheck("saved activations (bytes" + (", the norms' statistics in the model's dtype, as on the CPU)"
                                                 if cpu_saved != ours.saved else ")"), cpu_saved, measured.saved_bytes),
        TrainCheck("backward MACs", backward, measured.backward_macs),
        TrainCheck("gradients (bytes)", ours.gradients, measured.gradient_bytes),
        TrainCheck("optimizer state (bytes)", ours.optimizer, measured.optimizer_state_bytes),
        TrainCheck("training-step peak (bytes)", ours.peak, step_peak, PEAK_TOLERANCE),
    ]


def render_checks(name: str, batch: int | str, found: list[TrainCheck]) -> str:
    """One line per figure: agree or DIFFERS, archcalc's and torch's."""
    lines = [f"{name}: one training step at batch {batch}, on the CPU"]
    for c in found:
        within = f" (within {c.tolerance:.0%})" if c.tolerance else " (exactly)"
        lines.append(f"  {'agree' if c.ok else 'DIFFERS':<8} {c.what}: archcalc {c.archcalc:,}, torch {c.torch:,}"
                     + (within if c.ok else f", {c.archcalc - c.torch:+,}"))
    return "\n".join(lines)


def summary(name: str, batch: int | str, found: list[TrainCheck], seconds: float | None = None) -> str:
    """One line: ok or BAD, the network, and each figure's verdict (`agree`/`DIFFERS`), in `seconds`."""
    bad = [c for c in found if not c.ok]
    terms = ", ".join(f"{c.what.split(' (')[0]} {'agree' if c.ok else 'DIFFERS'}" for c in found)
    took = "" if seconds is None else f" ({seconds:.1f} s)"
    return f"{'ok ' if not bad else 'BAD'} {name} batch {batch}: {terms}{took}"


SMALL_SIDES = (32, 64, 96, 128, 160, 192, 224)


def small_input(network: Any) -> tuple[int, ...]:
    """The smallest square input from SMALL_SIDES (the channels kept) the network takes: `verify --all --train`
    runs each network there; a network that takes none of them, or whose input is not an image, keeps its own."""
    from ..core.calc import analyze
    from ..errors import SpecError

    own = tuple(network.input)
    if len(own) != 3 or min(own[1:]) <= SMALL_SIDES[0]:
        return own
    for side in SMALL_SIDES:
        if side >= min(own[1:]):
            break
        try:
            analyze(network, (own[0], side, side))
        except SpecError:
            continue
        return (own[0], side, side)
    return own
