"""Output of `archcalc bench`: a text or Markdown table with its context, or JSON (exact integers)."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from typing import Any

from .. import fmt
from ..errors import one_line
from ..fmt import cell, csv_text, markdown_table, text_table
from ..progress import ProgressBar  # noqa: F401  (benchmarks/gpu_zoo.py takes it from here)
from .bench import NOISE_FACTOR, Result, Run

HEADERS = ["Network", "Batch", "Dtype", "Median ms", "p10 ms", "p90 ms", "Images/s", "TFLOP/s",
           "% of matmul peak", "Peak alloc. MiB", "Estimate MiB (W + A)", "Peak live act. MiB"]
NUMERIC = (1, *range(3, 12))  # right-aligned columns: all but the network and the dtype


def _tflops(x: float) -> str:
    return f"{x:,.3f}" if x >= 0.01 else f"{x:.2e}"


def _row(r: Result, shown=one_line) -> list[str]:
    """The cells of a result; the network's name `shown` as the format wants it (fmt.cell for Markdown)."""
    percent = "n/a" if r.percent_of_peak is None else f"{r.percent_of_peak:,.1f}"
    return [
        shown(r.network), f"{r.batch:,}", r.dtype, f"{r.latency.median_ms:,.3f}" + (" !" if r.noisy else ""),
        f"{r.latency.p10_ms:,.3f}", f"{r.latency.p90_ms:,.3f}", f"{r.images_per_s:,.1f}",
        _tflops(r.achieved_tflops), percent, fmt.mib(r.peak_allocated_bytes, unit=False, decimals=1), fmt.mib(r.estimate_bytes, unit=False, decimals=1),
        fmt.mib(r.peak_activation_bytes, unit=False, decimals=1),
    ]


def title(run: Run) -> str:
    batches = sorted({r.batch for r in run.results})
    dtypes = sorted({r.dtype for r in run.results})
    text = "Time per inference step"
    if len(batches) == 1:
        text += f", batch {batches[0]}"
    if len(dtypes) == 1:
        text += f", {dtypes[0]}"
    return text


def context_lines(run: Run) -> list[str]:
    env, s = run.environment, run.settings
    device = f"{env.get('device_name')} ({s.device})"
    if s.device == "cuda":
        device += f"; driver {env.get('driver') or 'unknown'}, CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')}"
    lines = [
        f"Device: {device}; torch {env.get('torch')}; {env.get('threads')} CPU threads"
        + (" (--threads; default the physical cores)" if s.device == "cpu" else ""),
        f"Timer: {s.timer}",
        f"Settings: warm-up at least {s.warmup_iters} iterations and {s.warmup_seconds:g} s, {s.iters} timed repetitions; "
        f"channels_last {_yes(s.channels_last)}, torch.compile {_yes(s.compile)}, CUDA graph {_yes(s.cuda_graph)}, "
        f"L2 flush {_yes(s.l2_flush)}; inference mode, eval()",
    ]
    if run.overhead:
        o = run.overhead
        lines.append(f"Empty timed region (the timer's own overhead): median {o.median_ms:.4f} ms "
                     f"(p10 {o.p10_ms:.4f}, p90 {o.p90_ms:.4f})")
    for p in run.peaks:
        lines.append(f"Dense matmul peak, {p.dtype}: {_tflops(p.tflops)} TFLOP/s ({p.size}x{p.size} @ {p.size}x{p.size}, "
                     f"median {p.latency.median_ms:,.3f} ms, timed the same way)")
    if s.device == "cpu":
        lines.append("Memory: not measured on CPU (peak allocated is a CUDA allocator figure)")
    else:
        lines.append("Memory: torch.cuda.max_memory_allocated over one forward pass after reset_peak_memory_stats "
                     "(weights and input included)")
    if s.device == "cuda" and env.get("tf32_cudnn") and not env.get("tf32_matmul"):
        lines.append("Note: fp32 convolutions may run in TF32 (cuDNN default) while the fp32 matmul peak does not")
    return lines


def _yes(flag: bool) -> str:
    return "on" if flag else "off"


def footer_lines(run: Run, shown=one_line) -> list[str]:
    """The notes under the table; a failure's network and message `shown` as the format wants them."""
    lines = [
        "TFLOP/s: archcalc's MACs (conv + linear, per image) x 2 x batch / median latency. "
        "Estimate: archcalc's weights + activations (sum of layer outputs) at that batch and dtype.",
    ]
    if any(r.noisy for r in run.results):
        lines.append(f"! median within {NOISE_FACTOR}x of the empty timed region: the figure is mostly timer overhead")
    for f in run.failures:
        lines.append(f"failed: {shown(f.network)} batch {f.batch} {f.dtype}: {shown(f.message)}")
    if run.interrupted:
        lines.append(f"INTERRUPTED: {len(run.results) + len(run.failures)} of {run.planned} configurations measured")
    return lines


def render(run: Run, fmt: str = "text") -> str:
    if fmt == "json":
        return json.dumps(to_json(run), indent=2) + "\n"
    if fmt == "csv":
        return to_csv(run)
    if fmt == "markdown":
        rows = [_row(r, cell) for r in run.results]
        table = markdown_table(rows, HEADERS, NUMERIC).rstrip("\n")
        bullets = "\n".join(f"- {line}" for line in context_lines(run))
        notes = "\n".join(f"- {line}" for line in footer_lines(run, cell))
        return f"### {title(run)}\n\n{bullets}\n\n{table}\n\n{notes}\n"
    table = text_table([_row(r) for r in run.results], HEADERS, NUMERIC)
    return "\n".join([title(run), "", *context_lines(run), "", table, "", *footer_lines(run)]) + "\n"


def to_json(run: Run) -> dict[str, Any]:
    return {
        "environment": run.environment,
        "settings": asdict(run.settings),
        "interrupted": run.interrupted,
        "planned": run.planned,
        "overhead": asdict(run.overhead) if run.overhead else None,
        "matmul_peak": [{"dtype": p.dtype, "size": p.size, "tflops": p.tflops, "latency": asdict(p.latency)}
                        for p in run.peaks],
        "results": [_result_json(r) for r in run.results],
        "failures": [asdict(f) for f in run.failures],
    }


def _result_json(r: Result) -> dict[str, Any]:
    return {
        "network": r.network, "batch": r.batch, "dtype": r.dtype, "input": list(r.input_shape),
        "latency": asdict(r.latency), "images_per_s": r.images_per_s,
        "macs_per_image": r.macs_per_image, "flops": r.flops, "achieved_tflops": r.achieved_tflops,
        "matmul_peak_tflops": r.peak_tflops, "percent_of_peak": r.percent_of_peak,
        "peak_allocated_bytes": r.peak_allocated_bytes, "resident_bytes": r.resident_bytes,
        "weights_bytes": r.weights_bytes, "activation_bytes": r.activation_bytes,
        "estimate_bytes": r.estimate_bytes, "peak_activation_bytes": r.peak_activation_bytes,
        "noisy": r.noisy,
    }


def to_csv(run: Run) -> str:
    """One line per measured configuration: the keys of the JSON results, latency as latency_<stat>."""
    records = []
    for r in run.results:
        record = _result_json(r)
        latency = record.pop("latency")
        record["input"] = "x".join(str(d) for d in record["input"])
        record["network"] = csv_text(record["network"])
        records.append({**record, **{f"latency_{key}": value for key, value in latency.items()}})
    buffer = io.StringIO()
    if records:
        writer = csv.DictWriter(buffer, fieldnames=list(records[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
    return buffer.getvalue()
