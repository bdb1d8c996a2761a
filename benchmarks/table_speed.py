"""How fast `archcalc table` answers, next to what it avoids loading; one run, side by side.

    python benchmarks/table_speed.py            # writes reports/measured/table_speed.md and .json
    python benchmarks/table_speed.py --repeat 5 --out-dir /tmp/speed

Measured in the same run, each a median of --repeat fresh processes (wall clock):
- `python -c pass`: the interpreter's own start-up, the floor of any command;
- `archcalc table NAME` for a few zoo networks (the target: well under a second);
- `python -c "import torch"`: what the command would add if the calculator imported torch.
Then, in this process, `analyze()` of every zoo network (median of --repeat), the calculator
without the start-up. Ratios are to the interpreter's start-up of the same run.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NETWORKS = ("lenet5", "vgg16", "resnet152", "densenet201", "efficientnet_b7")


def wall(command: list[str], repeat: int) -> float:
    """Median seconds of `command` run `repeat` times as a fresh process, after one untimed run."""
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def in_process(repeat: int) -> dict[str, float]:
    from archcalc import analyze, load, zoo_index

    out = {}
    for name in zoo_index():
        network = load(name)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            analyze(network)
            times.append(time.perf_counter() - start)
        out[name] = statistics.median(times)
    return out


def measure(repeat: int) -> dict:
    python = sys.executable
    script = Path(python).with_name("archcalc")  # the console script a user runs, when installed
    archcalc = [str(script)] if script.exists() else [python, "-m", "archcalc.cli"]
    startup = wall([python, "-c", "pass"], repeat)
    commands = {"python -c pass": startup}
    for name in NETWORKS:
        commands[f"archcalc table {name}"] = wall([*archcalc, "table", name], repeat)
    try:
        commands['python -c "import torch"'] = wall([python, "-c", "import torch"], repeat)
    except subprocess.CalledProcessError:
        pass  # torch not installed: nothing to compare with
    return {
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine()},
        "repeat": repeat,
        "commands_s": commands,
        "analyze_s": in_process(repeat),
    }


def markdown(result: dict) -> str:
    from archcalc.fmt import markdown_table as table

    startup = result["commands_s"]["python -c pass"]
    commands = [[f"`{c}`", f"{s * 1e3:,.0f}", f"{s / startup:.1f}x"] for c, s in result["commands_s"].items()]
    analyze = [[name, f"{s * 1e3:,.2f}"] for name, s in sorted(result["analyze_s"].items(), key=lambda kv: -kv[1])]
    m = result["machine"]
    return "\n".join([
        "# How fast `archcalc table` answers",
        "",
        f"Measured by `benchmarks/table_speed.py` on {m['processor']}, {m['platform']}, Python {m['python']}: "
        f"medians of {result['repeat']} fresh processes (wall clock), all in one run.",
        "",
        table(commands, ["Command", "ms", "vs start-up"], numeric=(1, 2)),
        "`analyze()` in one process (no start-up), slowest first:",
        "",
        table(analyze, ["Network", "ms"], numeric=(1,)),
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--out-dir", default=str(ROOT / "reports" / "measured"))
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from archcalc.files import write_atomic

    result = measure(args.repeat)
    out = Path(args.out_dir)
    write_atomic(out / "table_speed.json", (json.dumps(result, indent=2) + "\n").encode())
    write_atomic(out / "table_speed.md", markdown(result).encode())
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
