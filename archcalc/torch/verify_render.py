"""Text of a verify report: the per-layer table, the totals, the receptive field, one summary line."""
from __future__ import annotations

from .. import fmt
from ..core import quantities
from ..errors import one_line
from .rf_probe import hw
from .verify import Report


def _mark(ok: bool) -> str:
    return "ok" if ok else "DIFF"


TORCH_MARK = "†"


def _counted(check, value) -> str:
    """A count, marked where it is MACs against FlopCounterMode rather than fvcore's flops."""
    return fmt.count(value) + (f" {TORCH_MARK}" if check.counter == "torch" and value is not None else "")


def render_report(report: Report) -> str:
    a = report.analysis
    headers = ["Layer", "Type", "Output", "torch", "", "Params", "torch", "", "fvcore flops", "fvcore", ""]
    rows = [
        [one_line(c.path), one_line(c.type), fmt.shape(c.shape), fmt.shape(c.torch_shape), _mark(c.shape_ok) if c.shape_measured else "-",
         fmt.count(c.params), fmt.count(c.torch_params), _mark(c.params_ok),
         _counted(c, c.flops), _counted(c, c.torch_flops), _mark(c.flops_ok)]
        for c in report.layers
    ]
    table = fmt.text_table(rows, headers, numeric=(2, 3, 5, 6, 8, 9))
    total, buffers = report.totals
    lines = [
        f"{one_line(a.network.name)}: calculator vs torch + fvcore, input {fmt.shape(a.input_shape)}, batch {a.batch}, {a.dtype}",
        "",
        table,
        "",
        f"params: calculator {total.params:,}, torch {fmt.count(total.torch_params)}: {_mark(total.params_ok)}",
        f"{quantities.total_label(quantities.QUANTITIES['non_trainable'], 'non-trainable', a)}: calculator "
        f"{buffers.params:,}, torch {fmt.count(buffers.torch_params)}: "
        f"{_mark(buffers.params_ok)}",
        f"fvcore flops (one multiply-add = 1; batch {a.batch}): calculator {total.flops:,}, fvcore "
        f"{fmt.count(total.torch_flops)}: {_mark(total.flops_ok)}",
        f"output: calculator {fmt.shape(total.shape)}, torch {fmt.shape(total.torch_shape)}: {_mark(total.shape_ok)}",
        "ops fvcore does not count (0 flops): "
        + (", ".join(f"{op} x{n}" for op, n in sorted(report.unsupported.items())) or "none"),
    ]
    if any(c.counter == "torch" for c in report.layers):
        lines.append(f"{TORCH_MARK}: MACs against torch's FlopCounterMode (halved), for ops fvcore does not count")
    if report.peak_live is not None:
        computed, measured = report.peak_live
        lines.append(f"peak live activations (one inference pass, batch {a.batch}, {a.dtype}): calculator "
                     f"{computed:,} bytes, torch's allocations {measured:,} bytes: {_mark(report.peak_live_ok)}")
    if report.rf is not None:
        lines.append(one_line(report.rf.describe()))
    if report.ok:
        lines.append("all agree")
    else:
        for check in report.disagreeing:
            lines.append(one_line(f"disagrees: {check.path} ({check.type}): {', '.join(check.problems())}"))
        if report.rf is not None and not report.rf.ok:
            lines.append(f"disagrees: {one_line(report.rf.path)}: receptive field")
        if not report.peak_live_ok:
            lines.append("disagrees: peak live activations")
    return "\n".join(lines) + "\n"


def summary_line(report: Report) -> str:
    a, (total, _) = report.analysis, report.totals
    rf = "" if report.rf is None else (
        f", RF {hw(report.rf.expected)} " + ("not measured" if not report.rf.measured_ok else _mark(report.rf.ok)))
    verdict = "ok" if report.ok else "DIFF " + ", ".join(
        c.path for c in report.disagreeing) + ("" if report.rf is None or report.rf.ok else " receptive field") + (
        "" if report.peak_live_ok else " peak live")
    return one_line(f"{a.network.name}: {verdict} (input {fmt.shape(a.input_shape)}, batch {a.batch}, {a.dtype}, "
                    f"params {total.params:,}, fvcore flops {total.flops:,}{rf})")
