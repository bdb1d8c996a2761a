"""How fast `archcalc.summary` imports a torch model, beside fvcore's FlopCountAnalysis and torchinfo's summary.

    python benchmarks/import_speed.py           # writes reports/measured/import_speed.md and .json
    python benchmarks/import_speed.py --repeat 1 --models resnet50 --out-dir /tmp/speed

Needs torchvision (its models; installed with --no-deps, imported with an empty
`torchvision._meta_registrations`) and fvcore; torchinfo is no dependency of archcalc: where it is not
installed its column says so. In one run, for each model (ResNet-50, ViT-B/16 built for the input size,
EfficientNet-B0) at 3x224x224 and 3x896x896, batch 1 and 64, each tool runs in a fresh process (memory
capped by --memory-gib, time by --timeout) that imports torch, builds the model and then calls the tool
once: the times of the three steps are taken apart. archcalc runs --repeat times (medians), fvcore and
torchinfo once (each runs the model on real data). Targets: archcalc's call at 896 or batch 64 within 1.2x
of its call at 224 and batch 1, and a ResNet-50 imported in at most `import torch` plus building the model
plus 1 s.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from import_torchvision import torchvision  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("resnet50", "vit_b_16", "efficientnet_b0")
SETTINGS = ((224, 1), (896, 1), (224, 64), (896, 64))
TOOLS = ("archcalc", "fvcore", "torchinfo")


def build(name: str, size: int):
    kwargs = {"image_size": size} if name.startswith("vit_") else {}  # a ViT is built for one image size
    return torchvision().models.get_model(name, **kwargs).eval()


def call(tool: str, model, size: int, batch: int):
    import torch

    if tool == "archcalc":
        import archcalc

        return archcalc.summary(model, input_size=(3, size, size), batch=batch).totals.params
    x = torch.randn(batch, 3, size, size)
    if tool == "fvcore":
        import warnings

        from fvcore.nn import FlopCountAnalysis

        warnings.simplefilter("ignore")
        with torch.no_grad():
            return (FlopCountAnalysis(model, x).unsupported_ops_warnings(False)
                    .uncalled_modules_warnings(False).tracer_warnings("none").total())
    from torchinfo import summary

    return summary(model, input_data=x, verbose=0).total_params


def one(tool: str, name: str, size: int, batch: int) -> dict:
    """In this fresh process: import torch (and torchvision, for its models), build the model, call the tool;
    each step's seconds."""
    start = time.perf_counter()
    import torch  # noqa: F401

    torchvision()
    imported = time.perf_counter()
    model = build(name, size)
    built = time.perf_counter()
    result = call(tool, model, size, batch)
    done = time.perf_counter()
    return {"import_s": imported - start, "build_s": built - imported, "call_s": done - built,
            "result": int(result)}


def alternating(name: str, rounds: int) -> dict:
    """In this one process: archcalc.summary at every setting, the settings alternated for `rounds` rounds (a
    slow spell of a shared machine hits them all); each setting's median seconds, after one untimed round."""
    import torch  # noqa: F401

    import archcalc

    models = {size: build(name, size) for size in dict.fromkeys(size for size, _ in SETTINGS)}
    times: dict[str, list[float]] = {f"{size}x{batch}": [] for size, batch in SETTINGS}
    for k in range(rounds + 1):
        for size, batch in SETTINGS:
            start = time.perf_counter()
            archcalc.summary(models[size], input_size=(3, size, size), batch=batch)
            if k:
                times[f"{size}x{batch}"].append(time.perf_counter() - start)
    return {key: statistics.median(values) for key, values in times.items()}


def run_one(tool: str, name: str, size: int, batch: int, timeout: int, memory_gib: float) -> dict:
    limit = int(memory_gib * 2**30)

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    command = [sys.executable, str(Path(__file__).resolve()), "--one", tool, name, str(size), str(batch)]
    if tool == "alternating":
        command = [sys.executable, str(Path(__file__).resolve()), "--alternating", name, str(size)]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, preexec_fn=cap, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    except subprocess.TimeoutExpired:
        return {"skipped": f"over {timeout} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        memory = any(m in done.stderr for m in ("MemoryError", "bad_alloc", "DefaultCPUAllocator")) or done.returncode < 0
        tail = " ".join(done.stderr.strip().splitlines()[-1:])[:200]
        return {"skipped": f"over {memory_gib:g} GiB" if memory else f"failed: {tail}"}
    return {**json.loads(lines[-1]), "process_s": time.perf_counter() - start}


def has_torchinfo() -> bool:
    import importlib.util

    return importlib.util.find_spec("torchinfo") is not None


def median_run(runs: list[dict]) -> dict:
    done = [r for r in runs if "skipped" not in r]
    if not done:
        return runs[0]
    return {k: statistics.median(r[k] for r in done) if k.endswith("_s") else done[0][k] for k in done[0]}


def measure(models: list[str], repeat: int, timeout: int, memory_gib: float, out: Path) -> dict:
    """Every setting of every model, the record rewritten after each (so that a run cut short leaves one)."""
    tools = [t for t in TOOLS if t != "torchinfo" or has_torchinfo()]
    load_before = os.getloadavg()[0]
    result: dict = {"repeat": repeat, "timeout_s": timeout, "memory_gib": memory_gib, "torchinfo": "torchinfo" in tools,
                    "rows": []}
    for name in models:
        for size, batch in SETTINGS:
            row: dict = {"model": name, "size": size, "batch": batch}
            for tool in tools:
                runs = [run_one(tool, name, size, batch, timeout, memory_gib) for _ in range(repeat if tool == "archcalc" else 1)]
                row[tool] = median_run(runs)
                print(name, size, batch, tool, row[tool], flush=True)
            result["rows"].append(row)
            stamp(result, load_before)
            write(result, out)
        result.setdefault("alternating_s", {})[name] = run_one("alternating", name, 5, 0, 20 * timeout, memory_gib)
        print(name, "alternating", result["alternating_s"][name], flush=True)
        stamp(result, load_before)
        write(result, out)
    return result


def stamp(result: dict, load_before: float) -> None:
    result["machine"] = {"python": platform.python_version(), "platform": platform.platform(),
                         "processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                         "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


def write(result: dict, out: Path) -> None:
    from archcalc.files import write_atomic

    write_atomic(out / "import_speed.json", json.dumps(result, indent=2) + "\n")
    write_atomic(out / "import_speed.md", markdown(result))


def cell(run: dict) -> str:
    return run["skipped"] if "skipped" in run else f"{run['call_s']:.2f}"


def verdicts(result: dict) -> list[str]:
    lines = []
    for name, medians in result.get("alternating_s", {}).items():
        if "skipped" in medians:
            continue
        base = medians["224x1"]
        shown = ", ".join(f"{key.replace('x', ' batch ', 1)} {seconds:.3f} s" for key, seconds in medians.items()
                          if key != "process_s")
        worst = max(v / base for k, v in medians.items() if k != "process_s")
        lines.append(f"- {name}, in one process, the settings alternated (medians of 5 rounds after one untimed): "
                     f"{shown}; the slowest {worst:.2f}x the call at 224 and batch 1 "
                     f"({'within' if worst <= 1.2 else 'NOT within'} 1.2x).")
    for name in dict.fromkeys(r["model"] for r in result["rows"]):
        rows = {(r["size"], r["batch"]): r["archcalc"] for r in result["rows"] if r["model"] == name}
        base = rows.get((224, 1), {})
        if "call_s" not in base:
            continue
        worst = max((r["call_s"] / base["call_s"] for r in rows.values() if "call_s" in r), default=1.0)
        overhead = base["call_s"]  # `import archcalc` included
        lines.append(f"- {name}, fresh processes: the slowest setting's call takes {worst:.2f}x the call at 224 and "
                     f"batch 1 ({'within' if worst <= 1.2 else 'NOT within'} 1.2x); at 224 and batch 1, `import archcalc` and "
                     f"the call take {overhead:.2f} s after `import torch` and torchvision ({base['import_s']:.2f} s) and "
                     f"building the model ({base['build_s']:.2f} s): {'within' if overhead <= 1 else 'NOT within'} "
                     "the 1 s target.")
    return lines


def markdown(result: dict) -> str:
    from archcalc.fmt import markdown_table as table

    m = result["machine"]
    tools = [t for t in TOOLS if t != "torchinfo" or result["torchinfo"]]
    header = ["model", "input", "batch", *[f"{t} s" for t in tools]]
    rows = [[r["model"], f"3x{r['size']}x{r['size']}", str(r["batch"]), *[cell(r[t]) for t in tools]]
            for r in result["rows"]]
    missing = [] if result["torchinfo"] else ["torchinfo is not installed (it is no dependency of archcalc): its "
                                              "column is left out.", ""]
    return "\n".join([
        "# How fast `archcalc.summary` imports a torch model, beside fvcore and torchinfo",
        "",
        f"Measured by `benchmarks/import_speed.py` on {m['processor']} ({m['cpus']} CPUs, load average "
        f"{m['load_average_1min'][0]} at the start and {m['load_average_1min'][1]} at the end), {m['platform']}, "
        f"Python {m['python']}, all in one run. Each cell is the seconds of one call (`import archcalc`, fvcore or "
        "torchinfo included) in a fresh process that has "
        f"imported torch and built the model (torchvision's, random weights; the ViT built for the input size): "
        f"`archcalc.summary(model, input_size=(3, H, W), batch=N)` (median of {result['repeat']}), fvcore's "
        "`FlopCountAnalysis(model, x).total()` and torchinfo's `summary(model, input_data=x)` (once each: both run "
        f"the model on real data), each process capped at {result['memory_gib']:g} GiB and {result['timeout_s']} s.",
        "",
        *missing,
        table(rows, header, numeric=tuple(range(3, 3 + len(tools)))),
        "archcalc traces the model on meta tensors: its cost is the same at any input size and batch, while "
        "fvcore and torchinfo run the model.",
        "",
        *verdicts(result),
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--alternating", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--repeat", type=int, default=3, help="runs of archcalc per setting (medians)")
    parser.add_argument("--timeout", type=int, default=180, help="seconds per process")
    parser.add_argument("--memory-gib", type=float, default=6.0, help="address space per process")
    parser.add_argument("--out-dir", default=str(ROOT / "reports" / "measured"))
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    if args.alternating:
        print(json.dumps(alternating(args.alternating[0], int(args.alternating[1]))))
        return 0
    if args.one:
        tool, name, size, batch = args.one
        print(json.dumps(one(tool, name, int(size), int(batch))))
        return 0
    result = measure(args.models, args.repeat, args.timeout, args.memory_gib, Path(args.out_dir))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
