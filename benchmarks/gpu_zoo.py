"""Bench the whole zoo on a CUDA GPU and cross-check the CUDA-event figures.

    python benchmarks/gpu_zoo.py                 # batch 1 and 32; fp32, fp16, bf16
    python benchmarks/gpu_zoo.py --batch 32 --dtype bf16 --iters 100

Writes reports/bench/<device>.md and reports/bench/<device>.json (<device>: the GPU's name,
lowercased, e.g. nvidia-h100-80gb-hbm3). After `archcalc bench`'s own run, every measured
configuration is timed twice more, independently of archcalc's timer:
- torch.utils.benchmark.Timer.blocked_autorange (host clock, synchronizes per block): its
  median should be close to the CUDA-event median (above it where launches dominate);
- torch.profiler: the sum of the GPU kernel durations of one forward pass, averaged over
  several; it cannot exceed the event-timed latency by more than noise (the events also
  count the gaps between kernels).
Needs a GPU; exits 2 without one.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROFILED_PASSES = 10


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", default="1,32", type=lambda text: tuple(int(b) for b in text.split(",")))
    parser.add_argument("--dtype", default="fp32,fp16,bf16", type=lambda text: tuple(text.split(",")))
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--out-dir", default=str(ROOT / "reports" / "bench"))
    args = parser.parse_args(argv)

    import torch

    from archcalc import analyze, load, zoo_index
    from archcalc.files import write_atomic
    from archcalc.torch.bench import Settings, run
    from archcalc.torch.bench_render import ProgressBar, render, to_json

    if not torch.cuda.is_available():
        print(f"gpu_zoo.py: torch {torch.__version__} sees no CUDA GPU; this script needs one", file=sys.stderr)
        return 2
    slug = re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(0).lower()).strip("-")
    settings = Settings(device="cuda", iters=args.iters)
    analyses = [analyze(load(name)) for name in zoo_index()]
    result = run(analyses, args.batch, args.dtype, settings, progress=ProgressBar(sys.stderr))
    checks = [] if result.interrupted else crosscheck(torch, {a.network.name: a for a in analyses}, result)
    report = to_json(result)
    report["crosscheck"] = checks
    out = Path(args.out_dir)
    write_atomic(out / f"{slug}.json", json.dumps(report, indent=2) + "\n")
    write_atomic(out / f"{slug}.md", render(result, "markdown") + "\n" + crosscheck_markdown(checks))
    print(f"wrote {out / slug}.md and .json", file=sys.stderr)
    return 130 if result.interrupted else 0


def crosscheck(torch, analyses: dict, result) -> list[dict]:
    from torch.utils.benchmark import Timer

    from archcalc.torch.bench import torch_dtype
    from archcalc.torch.build import build_torch

    rows = []
    for r in result.results:
        dtype = torch_dtype(torch, r.dtype)
        model = build_torch(analyses[r.network]).eval().to(device="cuda", dtype=dtype)
        x = torch.randn((r.batch, *r.input_shape), device="cuda", dtype=dtype)
        with torch.inference_mode():
            timer_ms = Timer("model(x)", globals={"model": model, "x": x}).blocked_autorange(min_run_time=1.0).median * 1e3
            kernels_ms = kernel_total_ms(torch, lambda model=model, x=x: model(x))
        rows.append({
            "network": r.network, "batch": r.batch, "dtype": r.dtype, "events_median_ms": r.latency.median_ms,
            "benchmark_timer_median_ms": timer_ms, "profiler_kernel_total_ms": kernels_ms,
        })
        del model, x
        torch.cuda.empty_cache()
    return rows


def kernel_total_ms(torch, fn) -> float:
    """Sum of GPU kernel (and memcpy/memset) durations per call, from torch.profiler."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(PROFILED_PASSES):
            fn()
        torch.cuda.synchronize()
    device_us = sum(e.time_range.elapsed_us() for e in prof.events() if e.device_type == DeviceType.CUDA)
    return device_us / PROFILED_PASSES / 1e3


def crosscheck_markdown(rows: list[dict]) -> str:
    if not rows:
        return "Cross-check not run (the run was interrupted).\n"
    lines = [
        "#### Cross-check: CUDA events vs torch.utils.benchmark vs profiler kernel totals", "",
        "| Network | Batch | Dtype | Events median ms | Timer median ms | Kernel total ms | Kernels / events |",
        "|---|--:|---|--:|--:|--:|--:|",
    ]
    for c in rows:
        share = c["profiler_kernel_total_ms"] / c["events_median_ms"]
        flag = " (kernels exceed events!)" if share > 1.05 else ""
        lines.append(f"| {c['network']} | {c['batch']} | {c['dtype']} | {c['events_median_ms']:,.3f} | "
                     f"{c['benchmark_timer_median_ms']:,.3f} | {c['profiler_kernel_total_ms']:,.3f} | {share:.2f}{flag} |")
    lines += ["", "Kernels / events near 1: the GPU is busy for the whole timed region; well below 1: "
              "launch overhead and gaps between kernels dominate (small batches), where CUDA graphs help."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
