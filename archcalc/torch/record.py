"""What one run of a torch module shows, read the same way for `verify` (archcalc's build of a spec)
and `verify --model` (the user's own module).

`record` runs the module once, under fvcore's tracer with a forward hook on every submodule: the
input and output shape of each call of each module, the modules with weights in the order they
first ran (`holds_weights`), fvcore's count per module and the ops it does not count. `parameter_count` and
`buffer_count` are what a module holds, each tensor once.
"""
from __future__ import annotations

import warnings
from collections import Counter
from typing import NamedTuple

from ..deps import require_fvcore, require_torch
from ..layers import Shape


class Call(NamedTuple):
    """One call of a module that returned a tensor; shapes leave the batch axis out."""

    input: Shape | None  # None: its first argument is not a tensor
    output: Shape


class Recording(NamedTuple):
    calls: dict[str, list[Call]]  # module path ('' is the model) -> each of its calls, in order
    weighted: list[str]  # modules without children that hold parameters, in the order of their first call
    flops: Counter  # fvcore's count per module path ('' is the model)
    unsupported: Counter  # the ops fvcore does not count, and how often each ran
    torch_macs: Counter = Counter()  # torch's FlopCounterMode per module path, halved (asked for: `torch_counted`)

    def output(self, name: str) -> Shape | None:
        """The output shape of the last call of module `name`; None when it returned no tensor."""
        calls = self.calls.get(name)
        return calls[-1].output if calls else None


def _shape(tensor) -> Shape:
    return tuple(int(d) for d in tensor.shape[1:])  # ints, also while tracing


def record(model, x, torch_counted: bool = False) -> Recording:
    """Run `model` on `x` once, under fvcore's tracer and forward hooks on all its modules; with `torch_counted`,
    once more under torch's FlopCounterMode (for the ops fvcore has no handle for)."""
    torch = require_torch()
    fvnn = require_fvcore()
    calls: dict[str, list[Call]] = {}
    weighted: dict[str, None] = {}  # ordered: first call first

    def hook(name: str, module):
        weights = bool(name) and holds_weights(module)  # the model itself is not one of its layers

        def record_call(module, inputs, output):
            if isinstance(output, torch.Tensor):
                given = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
                calls.setdefault(name, []).append(Call(None if given is None else _shape(given), _shape(output)))
            if weights:
                weighted.setdefault(name)
        return record_call

    handles = [m.register_forward_hook(hook(name, m)) for name, m in model.named_modules()]
    analysis = (fvnn.FlopCountAnalysis(model, x).unsupported_ops_warnings(False)
                .uncalled_modules_warnings(False).tracer_warnings("none"))
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            by_module = analysis.by_module()
            unsupported = analysis.unsupported_ops()
    finally:
        for handle in handles:
            handle.remove()
    return Recording(calls, list(weighted), Counter({k: int(v) for k, v in by_module.items()}), Counter(unsupported),
                     flop_counter_macs(model, x) if torch_counted else Counter())


def flop_counter_macs(model, x) -> Counter:
    """torch's FlopCounterMode per module path ('' is the model), halved: it counts a multiply-add of a
    convolution or a matrix product as 2 FLOPs (the products of attention included, where they run as
    matrix products: archcalc's attention modules use the math kernel)."""
    torch = require_torch()
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    counts: Counter = Counter()
    for key, ops in counter.get_flop_counts().items():
        if key == "Global":
            continue
        _, _, path = key.partition(".")  # keys are "<model class>.<module path>"
        counts[path] = sum(ops.values()) // 2
    return counts


def holds_weights(module) -> bool:
    """A module without children that holds parameters of its own: a layer with weights."""
    return not list(module.children()) and any(True for _ in module.parameters(recurse=False))


def parameter_count(module, counted: set[int] | None = None, recurse: bool = True) -> int:
    """The values of `module`'s parameters, each tensor once (recurse=False: its own, not its children's).
    With `counted`: only the tensors not in it, which are then added to it (a shared tensor counts where it
    was met first)."""
    tensors = list(module.parameters(recurse=recurse))
    if counted is not None:
        tensors = [p for p in tensors if id(p) not in counted]
        counted.update(id(p) for p in tensors)
    return sum(p.numel() for p in tensors)


def buffer_count(module) -> int:
    """The values of `module`'s stored buffers (batch norm's running statistics), its step counter and the
    non-persistent constants derived from the layout (window attention's position index and mask) left out."""
    stored = {id(b): b for m in module.modules() for name, b in m._buffers.items()
              if b is not None and name not in m._non_persistent_buffers_set and name != "num_batches_tracked"}
    return sum(b.numel() for b in stored.values())
