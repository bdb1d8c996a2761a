"""Cross-checking the calculator against a real torch model and fvcore's counts.

`verify_network` builds the spec as torch modules (archcalc.torch.build), runs it once
under fvcore's tracer (archcalc.torch.record) and compares, layer by layer, matched by path:
the output shape (forward hooks), the parameters (counted on the module) and the operations
(fvcore's `by_module`) against the calculator's `output_shape`, `params` and `fvcore_flops`
x batch. `compare_modules` and `compared` are the comparison; `verify --model`
(archcalc.importers.verify_model) uses them with the user's module and its own matching.

fvcore's convention (its default handles): one multiply-add is one flop for
convolutions, linear layers and matrix products (bias not counted; a transposed
convolution is counted over its input grid); batch norm in eval mode 2 per element (1
without affine), layer and group norm 5 per element, adaptive average pooling 1 per input
element, nearest upsampling 1 and bilinear 4 per output element. Max and average
pooling, activations, additions and products count 0 (fvcore lists them as unsupported).

A layer or merge type whose ops fvcore has no handle for (attention's scaled_dot_product_attention)
declares `counted_by = "torch"`: its MACs are compared with torch's FlopCounterMode, halved (a multiply-add
is 2 FLOPs there), on the same model (archcalc.torch.record.flop_counter_macs).

The receptive field is measured by archcalc.torch.rf_probe; the report is rendered by
archcalc.torch.verify_render.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..core.calc import Analysis, Row
from ..deps import require_torch
from ..errors import SpecError, UsageError
from ..layers import MERGES, REGISTRY, Shape
from .memory import check_allocation, peak_live_bytes
from .record import Call, Recording, buffer_count, parameter_count, record
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
    counter: str = "fvcore"  # what `torch_flops` is: fvcore's count, or "torch": FlopCounterMode's MACs (`flops` MACs)

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


# ---- the comparison -------------------------------------------------------------------

def compare_modules(matched: Mapping[str, list[Row]], modules: Mapping[str, Any], recording: Recording, batch: int,
                    read: Callable[[Row, Call], Shape] = lambda row, call: call.output) -> list[LayerCheck]:
    """Each module against the rows it computes, in order: the k-th row's output against the module's k-th call
    (as `read` gives it); the module's parameters (a tensor met in an earlier module counts there, as a shared
    layer's do in the rows) and fvcore's count for it against the first row, with the counts of all its rows.
    A row whose module is missing (None) has nothing measured."""
    checks = []
    counted: set[int] = set()
    for name, rows in matched.items():
        module = modules.get(name)
        calls = recording.calls.get(name, [])
        params = None if module is None else parameter_count(module, counted)
        counter = counted_by(rows[0])
        by_torch = counter == "torch"
        flops = None if module is None else (recording.torch_macs if by_torch else recording.flops).get(name, 0)
        for k, row in enumerate(rows):
            first = k == 0
            checks.append(LayerCheck(
                row.path if row.path == name else f"{row.path} = {name}", row.label, row.output_shape,
                read(row, calls[k]) if k < len(calls) else None,
                row.params, params if first else 0,
                sum(r.macs if by_torch else r.fvcore_flops for r in rows) * batch if first else 0, flops if first else 0,
                counter=counter,
            ))
    return checks


def counted_by(row: Row) -> str:
    """What verify compares a row's count with: "fvcore", or "torch" (FlopCounterMode, for ops fvcore cannot count:
    the row's MACs against its halved count), as the row's layer or merge type declares."""
    kind = REGISTRY.get(row.label) if row.kind == "layer" else MERGES.get(row.label) if row.kind == "merge" else None
    return getattr(kind, "counted_by", "fvcore")


def compared(analysis: Analysis, model, recording: Recording, checks: list[LayerCheck], rf: RFCheck | None = None,
             peak_live: tuple[int, int] | None = None) -> Report:
    """The Report of `checks` and the whole network's: parameters, buffers, fvcore's total and the output."""
    t, out = analysis.totals, analysis.output_shape
    totals = (
        LayerCheck("(total)", "params", out, recording.output(""), t.params, parameter_count(model),
                   t.fvcore_flops * analysis.batch, recording.flops[""]),
        LayerCheck("(total)", "buffers", out, out, t.non_trainable, buffer_count(model), 0, 0),
    )
    return Report(analysis, tuple(checks), totals, recording.unsupported, rf, peak_live)


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
        recording = record(model, x, torch_counted=any(counted_by(row) == "torch" for row in analysis.leaves()))
    except (MemoryError, RuntimeError) as exc:
        if not isinstance(exc, MemoryError) and "alloc" not in str(exc):
            raise
        raise SpecError(f"torch could not allocate the network: {str(exc).splitlines()[0][:120]}",
                        file=network.file) from None
    leaves: dict[str, list[Row]] = {}
    for row in analysis.leaves()[1:]:  # the first is the input; a module called again has a row per call
        leaves.setdefault(row.path, []).append(row)
    checks = compare_modules(leaves, dict(model.named_modules()), recording, batch)
    rf = receptive_field_check(network, analysis.input_shape) if receptive_field else None  # grown to fit
    return compared(analysis, model, recording, checks, rf, (analysis.peak_activation_bytes, peak_live_bytes(analysis)))
