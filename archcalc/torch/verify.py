"""Cross-checking the calculator against a real torch model and fvcore's counts.

`verify_network` builds the spec as torch modules (archcalc.torch_build), runs it once
under fvcore's tracer and compares, layer by layer, matched by path: the output shape
(forward hooks), the parameters (counted on the module) and the operations (fvcore's
`by_module`) against the calculator's `output_shape`, `params` and `fvcore_flops` x batch.

fvcore's convention (its default handles): one multiply-add is one flop for
convolutions, linear layers and matrix products (bias not counted; a transposed
convolution is counted over its input grid); batch norm in eval mode 2 per element (1
without affine), layer and group norm 5 per element, adaptive average pooling 1 per input
element, nearest upsampling 1 and bilinear 4 per output element. Max and average
pooling, activations, additions and products count 0 (fvcore lists them as unsupported).

The receptive field is measured by archcalc.torch.rf_probe; the report is rendered by
archcalc.torch.verify_render.
"""
from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field

from ..core.calc import Analysis
from ..deps import require_fvcore, require_torch
from ..errors import SpecError, UsageError
from ..layers import Shape
from .memory import check_allocation, peak_live_bytes
from .rf_probe import RFCheck, receptive_field_check


@dataclass(frozen=True)
class LayerCheck:
    """One calculator row beside what the torch module at the same path did."""

    path: str
    type: str
    shape: Shape
    torch_shape: Shape | None  # None: no module ran under this path
    params: int
    torch_params: int | None
    flops: int  # the calculator's fvcore_flops for the whole batch
    torch_flops: int | None
    shape_measured: bool = True  # False: functional calls, which no hook sees

    @property
    def shape_ok(self) -> bool:
        return not self.shape_measured or self.shape == self.torch_shape

    @property
    def params_ok(self) -> bool:
        return self.params == self.torch_params

    @property
    def flops_ok(self) -> bool:
        return self.flops == self.torch_flops

    @property
    def ok(self) -> bool:
        return self.shape_ok and self.params_ok and self.flops_ok

    def problems(self) -> list[str]:
        return [what for what, ok in (("output", self.shape_ok), ("params", self.params_ok),
                                      ("flops", self.flops_ok)) if not ok]


@dataclass(frozen=True)
class Report:
    analysis: Analysis
    layers: tuple[LayerCheck, ...]
    totals: tuple[LayerCheck, ...]  # the whole network: params, buffers and flops
    unsupported: Counter = field(default_factory=Counter)
    rf: RFCheck | None = None
    peak_live: tuple[int, int] | None = None  # peak live activation bytes: (calculator, measured)

    @property
    def disagreeing(self) -> list[LayerCheck]:
        return [c for c in (*self.layers, *self.totals) if not c.ok]

    @property
    def ok(self) -> bool:
        return not self.disagreeing and (self.rf is None or self.rf.ok) and self.peak_live_ok

    @property
    def peak_live_ok(self) -> bool:
        return self.peak_live is None or self.peak_live[0] == self.peak_live[1]


# ---- layer by layer ---------------------------------------------------------------------

def _count(module, buffers: bool = False, counted: set[int] | None = None) -> int:
    """Parameter (or buffer) values of `module`, each tensor once; with `counted`, those not in it, added to it."""
    if buffers:
        return sum(b.numel() for name, b in module.named_buffers() if not name.endswith("num_batches_tracked"))
    if counted is None:
        return sum(p.numel() for p in module.parameters())
    new = [p for p in module.parameters() if id(p) not in counted]
    counted.update(id(p) for p in new)
    return sum(p.numel() for p in new)


def trace(model, x) -> tuple[dict[str, Shape], Counter, Counter]:
    """Output shapes per module path (batch left out), fvcore's by_module counts, unsupported ops."""
    torch = require_torch()
    fvnn = require_fvcore()
    shapes: dict[str, Shape] = {}

    def hook(name):
        def record(module, inputs, output):
            if isinstance(output, torch.Tensor):
                shapes[name] = tuple(int(d) for d in output.shape[1:])  # ints, also while tracing
        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in model.named_modules()]
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
    return shapes, Counter({k: int(v) for k, v in by_module.items()}), Counter(unsupported)


_TORCH_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def verify_network(analysis: Analysis, receptive_field: bool = True, seed: int = 0) -> Report:
    """Build, run and trace the analysed network at its input and batch; compare every leaf row and the totals."""
    torch = require_torch()
    from .build import build_torch

    network, batch = analysis.network, analysis.batch
    check_allocation(analysis.weights_bytes + analysis.peak_activation_bytes, "verify", "weights and peak activations",
                     network.file)
    torch.manual_seed(seed)
    dtype = _TORCH_DTYPES.get(analysis.dtype)
    if dtype is None:
        raise UsageError(f"verify runs a model in {', '.join(_TORCH_DTYPES)}, not {analysis.dtype}")
    try:
        model = build_torch(analysis).eval().to(getattr(torch, dtype))
        x = torch.randn(batch, *analysis.input_shape).to(getattr(torch, dtype))
        shapes, flops, unsupported = trace(model, x)
    except (MemoryError, RuntimeError) as exc:
        if not isinstance(exc, MemoryError) and "alloc" not in str(exc):
            raise
        raise SpecError(f"torch could not allocate the network: {str(exc).splitlines()[0][:120]}",
                        file=network.file) from None
    modules = dict(model.named_modules())
    checks = []
    counted: set[int] = set()  # parameters met in an earlier row's module: a shared one counts there
    for row in analysis.leaves()[1:]:  # the first is the input
        module = modules.get(row.path)
        checks.append(LayerCheck(
            row.path, row.label, row.output_shape, shapes.get(row.path),
            row.params, None if module is None else _count(module, counted=counted),
            row.fvcore_flops * batch, flops.get(row.path) if module is not None else None,
        ))
    t = analysis.totals
    out = analysis.output_shape
    totals = (
        LayerCheck("(total)", "params", out, shapes.get(""), t.params, _count(model), t.fvcore_flops * batch, flops[""]),
        LayerCheck("(total)", "buffers", out, out, t.non_trainable, _count(model, buffers=True), 0, 0),
    )
    rf = receptive_field_check(network, analysis.input_shape) if receptive_field else None  # grown to fit
    peak = (analysis.peak_activation_bytes, peak_live_bytes(analysis))
    return Report(analysis, tuple(checks), totals, unsupported, rf, peak)
