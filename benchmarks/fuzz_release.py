"""A release run of the fuzzers of tests/test_fuzz.py: many mutants, a fresh seed, the counts recorded.

    python benchmarks/fuzz_release.py                       # 100,000 spec mutants, 20,000 ONNX mutants
    python benchmarks/fuzz_release.py --specs 2000 --onnx 300 --seed 20261201 --out-dir /tmp/fuzz

The spec mutants go through `archcalc table` (four formats) and `archcalc check`, in a forked child
whose address space is bounded; the ONNX mutants through `archcalc import onnx`. Both use the test
suite's own mutators and judges (tests/test_fuzz.py), so that the release run and CI's fixed-seed run
ask the same of each mutant. Writes fuzz.json (every count, every failing mutant) and fuzz.md.
"""
from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _fuzz_module():
    sys.path.insert(0, str(ROOT / "tests"))
    import test_fuzz

    return test_fuzz


def _commit() -> str:
    import subprocess

    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def render(result: dict) -> str:
    specs, onnx = result["specs"], result["onnx"]
    lines = [
        "# Fuzzer: a release run", "",
        "Written by `python benchmarks/fuzz_release.py` (the mutators and judges of `tests/test_fuzz.py`, whose",
        "fixed-seed run of 2,000 spec mutants and 1,000 ONNX mutants is part of the test suite).", "",
        f"Seed {result['seed']}{' (drawn at random)' if result['random_seed'] else ''}, commit {result['commit']}, "
        f"Python {result['python']}, "
        f"{result['machine']}.", "",
        "**Specs.** Each mutant of a zoo spec or a random stack goes through `archcalc table` (text, JSON, CSV",
        "or Markdown) or `archcalc check`: it must print its table or verdicts (exit 0, or 1 for `check`), or",
        "refuse the spec in one line on stderr (exit 2); never a traceback, never over 2 s of CPU, and never",
        "over 1 GiB of memory (the mutants run in a forked child whose address space is bounded).", "",
        "| Outcome | Mutants |", "| --- | ---: |",
        f"| table or verdicts printed (exit 0 or 1) | {specs.get('accepted', 0):,} |",
        f"| refused in one line (exit 2) | {specs.get('refused', 0):,} |",
        f"| traceback, unhandled exception, a child that died, or a run that is neither | {specs.get('failed', 0):,} |",
        f"| over 2 s of CPU | {len(specs.get('over_2s', [])):,} |", "",
        f"{specs['mutants']:,} of {specs['asked']:,} mutants ran in {specs['wall_s']:,} s; the slowest took "
        f"{specs['slowest_cpu_s']} s of CPU, and the largest growth of the peak resident memory was "
        f"{specs['most_memory_mb']} MB.", "",
        "**ONNX files.** Small valid graphs mutated with `onnx.helper` (dimensions, inputs, initializer data,",
        "attributes, cycles, op types, opsets, constant bombs, external data, cut bytes) go through `archcalc",
        "import onnx FILE -o OUT`: a spec written (exit 0) or one line and no file (exit 2), within 3 s of CPU,",
        "the process's peak memory growing by at most 1 GiB over the run.", "",
        "| Outcome | Mutants |", "| --- | ---: |",
        f"| spec written (exit 0) | {onnx.get('accepted', 0):,} |",
        f"| refused in one line (exit 2) | {onnx.get('refused', 0):,} |",
        f"| traceback, unhandled exception or a run that is neither | {onnx.get('failed', 0):,} |",
        f"| over 3 s of CPU | {len(onnx.get('slow', [])):,} |",
        f"| over the memory bound | {len(onnx.get('memory', [])):,} |", "",
        f"{onnx['mutants']:,} mutants in {onnx['wall_s']:,} s.", "",
        "The counts, with any failing mutant, are in [`fuzz.json`](fuzz.json).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", type=int, default=100_000, help="spec mutants (default 100,000)")
    parser.add_argument("--onnx", type=int, default=20_000, help="ONNX mutants (default 20,000)")
    parser.add_argument("--seed", default="random", help="a number, or `random` (default)")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "reports" / "measured")
    args = parser.parse_args(argv)
    seed = random.SystemRandom().randrange(2**32) if args.seed == "random" else int(args.seed)
    fuzz = _fuzz_module()
    from archcalc.files import write_atomic

    with tempfile.TemporaryDirectory(prefix="archcalc-fuzz-") as folder:
        specs_dir, onnx_dir = Path(folder) / "specs", Path(folder) / "onnx"
        specs_dir.mkdir()
        onnx_dir.mkdir()
        specs = fuzz.run_mutants(args.specs, seed, specs_dir)
        began = time.monotonic()
        onnx = fuzz.run_onnx_mutants(args.onnx, seed, onnx_dir)
        onnx["wall_s"] = round(time.monotonic() - began, 1)
    result = {"seed": seed, "random_seed": args.seed == "random", "commit": _commit(), "python": platform.python_version(),
              "machine": f"{platform.machine()}, {platform.system()}", "specs": specs, "onnx": onnx}
    write_atomic(args.out_dir / "fuzz.json", json.dumps(result, indent=2) + "\n")
    write_atomic(args.out_dir / "fuzz.md", render(result))
    failed = specs.get("failed", 0) + onnx.get("failed", 0) + len(specs.get("over_2s", [])) + len(onnx.get("slow", []))
    print(f"seed {seed}: {specs['mutants']:,} spec mutants, {onnx['mutants']:,} ONNX mutants, {failed} failures")
    return 1 if failed or onnx.get("memory") else 0


if __name__ == "__main__":
    sys.exit(main())
