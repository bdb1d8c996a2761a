"""Peak live activation memory of one inference pass, measured on the tensors torch allocates.

`peak_live_bytes` runs the built module once under a TorchDispatchMode that sees every
tensor each aten op returns; a storage is live from the op that creates it until torch frees
it (a weak reference's callback). The input counts from the start; parameters and buffers
never count. On the CPU (`device="cpu"`) the module is built on the meta device and given
uninitialised memory: its values do not matter, only what is allocated and when. On the meta
device nothing is computed at all, so the whole zoo is measured in seconds; its kernels
allocate what the CPU's do, except that its batch norm at inference also returns the saved
mean and 1/std the CPU kernel leaves empty: those are not counted.
"""
from __future__ import annotations

import logging
import math
import weakref

from .. import fmt
from ..core.calc import Analysis
from ..deps import require_torch
from ..errors import SpecError

TORCH_BYTES = 8 * 2**30  # what verify and import may ask torch for


def check_allocation(needed: int, command: str, of_what: str, file: str | None = None) -> None:
    """Refuse, before torch allocates anything, a run that would need more than TORCH_BYTES."""
    if needed > TORCH_BYTES:
        raise SpecError(f"{command} would allocate {fmt.scaled_bytes(needed)} ({of_what}), "
                        f"over the {fmt.scaled_bytes(TORCH_BYTES)} it allows", file=file)


def fake_values_bytes(run, input_shape: tuple[int, ...]) -> int | None:
    """The bytes of every tensor `run(x)` makes (the input included) on an input of `input_shape`, all
    counted as if kept alive at once, measured on fake tensors: nothing is allocated or computed.
    None when the code cannot run on fake tensors (it reads tensor values, as `.item()` does)."""
    torch = require_torch()
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    storages: dict[int, object] = {}  # by address: a view adds nothing; kept, so that no address is reused

    class Outputs(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor):
                    storage = t.untyped_storage()
                    storages[storage._cdata] = storage
            return out

    log = logging.getLogger("torch._subclasses.fake_tensor")  # which logs an op it cannot run on stderr
    quiet, log.disabled = log.disabled, True
    try:
        with FakeTensorMode(allow_non_fake_inputs=True), torch.no_grad():
            x = torch.empty(input_shape)
            with Outputs():
                run(x)
    except Exception:  # data-dependent code, an op without a fake kernel: the real run says what is wrong
        return None
    finally:
        log.disabled = quiet
    return math.prod(input_shape) * 4 + sum(storage.nbytes() for storage in storages.values())  # type: ignore[attr-defined]


def _tracker_class():
    torch = require_torch()
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class LiveStorages(TorchDispatchMode):
        def __init__(self, excluded: set[int]):
            super().__init__()
            self.excluded, self.current, self.peak = excluded, 0, 0
            self.live: dict[int, int] = {}  # storage -> its bytes

        def track(self, tensor) -> None:
            storage = tensor.untyped_storage()
            key = storage._cdata
            if key in self.excluded or key in self.live:
                return
            self.live[key] = storage.nbytes()
            self.current += self.live[key]
            self.peak = max(self.peak, self.current)
            weakref.finalize(storage, self.free, key)

        def free(self, key: int) -> None:
            self.current -= self.live.pop(key, 0)

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func is torch.ops.aten.native_batch_norm.default and not args[5]:  # inference: the output only
                out_items = [out[0]]
            else:
                out_items = tree_flatten(out)[0]
            for item in out_items:
                if isinstance(item, torch.Tensor):
                    self.track(item)
            return out

    return LiveStorages


def peak_live_bytes(analysis: Analysis, device: str = "meta") -> int:
    """The most bytes of activation storage alive at once in one inference pass at the analysis'
    input, batch and dtype (input included, weights excluded), on the meta device or the CPU."""
    torch = require_torch()
    from .build import build_torch

    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[analysis.dtype]
    with torch.device("meta"):
        model = build_torch(analysis)
    if device != "meta":
        model = model.to_empty(device=device)
    model = model.to(dtype).eval()
    x = torch.zeros(analysis.batch, *analysis.input_shape, dtype=dtype, device=device)
    return module_peak_bytes(model, x)


def module_peak_bytes(model, x) -> int:
    """The most bytes of activation storage alive at once while `model(x)` runs without gradients, `x`
    included, `model`'s parameters and buffers excluded: any module, a built one or the user's."""
    torch = require_torch()
    excluded = {t.untyped_storage()._cdata for t in (*model.parameters(), *model.buffers())}
    tracker = _tracker_class()(excluded)
    with torch.no_grad(), tracker:
        tracker.track(x)
        out = model(x)
        del out
    return tracker.peak
