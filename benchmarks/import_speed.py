"""How fast `archcalc import torch` is on a ResNet-50, next to `import torch` plus one fvcore trace.

    python benchmarks/import_speed.py           # writes reports/measured/import_speed.md and .json
    python benchmarks/import_speed.py --repeat 3 --out-dir /tmp/speed

In one run, alternating, each a fresh process timed by wall clock (medians of --repeat):
- `archcalc import torch benchmarks/import_speed.py:resnet50 --input 3x224x224 -o FILE`;
- `python -c "import torch"`;
- one fvcore trace of the same model (`FlopCountAnalysis(model, x).total()`), timed inside a
  process that has built the model, so that only the trace counts.
The target: the import within 2x of `import torch` plus the trace.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve()
TRACE = f"""
import sys, time, warnings
sys.path.insert(0, {str(ROOT)!r})
sys.path.insert(0, {str(HERE.parent)!r})
import torch
from fvcore.nn import FlopCountAnalysis
from import_speed import resnet50
model = resnet50()
x = torch.randn(1, 3, 224, 224)
warnings.simplefilter("ignore")
start = time.perf_counter()
with torch.no_grad():
    FlopCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False).total()
print(time.perf_counter() - start)
"""


def resnet50():
    """ResNet-50 as a plain torch module (archcalc's build of the zoo spec), in eval mode."""
    from archcalc import build_torch, load

    return build_torch(load("resnet50")).eval()


def wall(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - start


def trace_seconds(python: str) -> float:
    result = subprocess.run([python, "-c", TRACE], check=True, capture_output=True, text=True, cwd=ROOT)
    return float(result.stdout.strip().splitlines()[-1])


def measure(repeat: int) -> dict:
    python = sys.executable
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        out = str(Path(folder) / "resnet50.json")
        command = [python, "-m", "archcalc.cli", "import", "torch", f"{HERE.relative_to(ROOT)}:resnet50",
                   "--input", "3x224x224", "-o", out]
        wall(command)  # one untimed run of each: caches warm alike
        wall([python, "-c", "import torch"])
        runs: dict[str, list[float]] = {"import": [], "import_torch": [], "fvcore_trace": []}
        for _ in range(repeat):  # alternating, so that a slow spell of the machine hits all three
            runs["import"].append(wall(command))
            runs["import_torch"].append(wall([python, "-c", "import torch"]))
            runs["fvcore_trace"].append(trace_seconds(python))
        document = json.loads(Path(out).read_text())
    medians = {k: statistics.median(v) for k, v in runs.items()}
    baseline = medians["import_torch"] + medians["fvcore_trace"]
    return {
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                    "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]},
        "repeat": repeat,
        "runs_s": runs,
        "median_s": medians,
        "baseline_s": baseline,
        "ratio": medians["import"] / baseline,
        "imported_params": next(e["value"] for e in document["expect"] if e["what"] == "params"),
    }


def markdown(result: dict) -> str:
    from archcalc.fmt import markdown_table as table

    m, s = result["machine"], result["median_s"]
    rows = [
        ["`archcalc import torch` (ResNet-50, 3x224x224)", f"{s['import']:.2f}"],
        ['`python -c "import torch"`', f"{s['import_torch']:.2f}"],
        ["one fvcore trace of the same model", f"{s['fvcore_trace']:.2f}"],
        ["`import torch` + the trace", f"{result['baseline_s']:.2f}"],
    ]
    verdict = "within" if result["ratio"] <= 2 else "NOT within"
    return "\n".join([
        "# How fast `archcalc import torch` is",
        "",
        f"Measured by `benchmarks/import_speed.py` on {m['processor']} ({m['cpus']} CPUs, load average "
        f"{m['load_average_1min'][0]} at the start and {m['load_average_1min'][1]} at the end), {m['platform']}, "
        f"Python {m['python']}: medians of {result['repeat']} alternating runs of fresh processes (wall clock), "
        "all in one run.",
        "",
        table(rows, ["What", "s"], numeric=(1,)),
        f"The import takes {result['ratio']:.2f}x `import torch` plus one fvcore trace: {verdict} the 2x target. "
        f"It imports torch, builds the model, traces it with torch.fx, runs it once for the shapes and once "
        f"under fvcore for the total it records ({result['imported_params']:,} parameters).",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out-dir", default=str(ROOT / "reports" / "measured"))
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from archcalc.files import write_atomic

    result = measure(args.repeat)
    out = Path(args.out_dir)
    write_atomic(out / "import_speed.json", json.dumps(result, indent=2) + "\n")
    write_atomic(out / "import_speed.md", markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
