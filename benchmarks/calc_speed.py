"""How fast the calculator answers, next to the interpreter, torch, fvcore and torchinfo; one run.

    python benchmarks/calc_speed.py              # writes reports/measured/calc_speed.md and .json
    python benchmarks/calc_speed.py --quick --out-dir /tmp/speed   # a smoke run: small sizes, 1 pair each

What runs: archcalc as a user installs it, not this source tree. The tree is copied to a temporary
folder, built into a wheel (`pip wheel --no-deps --no-build-isolation`), and the wheel installed with
`pip --python VENV install --no-deps` into a fresh virtual environment created by this interpreter
with `venv --without-pip`. That environment sees this interpreter's site-packages (click, tabulate,
torch, fvcore, torchinfo) through one `.pth` line, so nothing is downloaded, and none of the `.pth`
files found there (an editable install's finder among them) runs. Every command is timed with that
environment's python, `python -c pass` included.

How it is timed:
- commands are fresh processes, run as pairs alternated A B A B ... (after one untimed run of each),
  so that a machine that gets busier or quieter moves both; a ratio is the median of the per-pair
  ratios B/A, with its min and max. Wall clock; peak RSS of each child from os.wait4's rusage
  (the per-child form of resource.getrusage(RUSAGE_CHILDREN));
- in-process figures (the whole zoo, generated specs, resolution and batch) run in a fresh child of
  the same environment for each repetition, timed there around the calls only.
- where valgrind is installed (not with --quick), the instructions of the start-up commands and of
  each generated spec's load + analyze + render, counted by callgrind: what a loaded machine (or a
  larger heap missing the caches) does not change, beside the wall clock that it does.
Medians are reported with min and max; nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve()
REFERENCE = HERE.with_name("reference.py")
REFERENCE_INPUT = "3x240x320"
# The standard modules `archcalc table` cannot do without: a floor under its start-up.
STANDARD = "import re, json, ast, typing"
# The zoo's figures and the lecture claims: the gate timed since the first record (`check` alone skips the claims).
CHECK = "archcalc check --claims"


# ---- the installed archcalc ------------------------------------------------------------------

def install(workdir: Path) -> Path:
    """A virtual environment with archcalc installed from a wheel of this tree; returns its bin folder."""
    source = workdir / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", ".venv", "reports", "tests", "benchmarks"))
    wheels = workdir / "wheels"
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)],
                   check=True, stdout=subprocess.DEVNULL)
    venv = workdir / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    import sysconfig

    Path(purelib, "_shared_site.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = next(wheels.glob("archcalc-*.whl"))
    # --ignore-installed: the shared site-packages may already hold an archcalc (a non-editable
    # install of this tree), which pip would otherwise take as satisfying the wheel.
    subprocess.run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", "--ignore-installed",
                    str(wheel)], check=True)
    if not (venv / "bin" / "archcalc").exists():
        raise SystemExit(f"the wheel {wheel.name} installed no archcalc command into {venv}")
    return venv / "bin"


# ---- timing ---------------------------------------------------------------------------------

LAUNCHER = """
import json, os, sys, time
null = os.open(os.devnull, os.O_WRONLY)
for line in sys.stdin:
    command, out, log = json.loads(line)
    out = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600) if out else null
    err = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    start = time.perf_counter()
    pid = os.posix_spawn(command[0], command, os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, out, 1), (os.POSIX_SPAWN_DUP2, err, 2)])
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    os.close(err)
    if out != null:
        os.close(out)
    print(json.dumps([wall, usage.ru_maxrss, os.waitstatus_to_exitcode(status)]), flush=True)
"""


class Launcher:
    """Starts each command from a small, long-lived process and times it there.

    A child's peak RSS (ru_maxrss) starts at what its parent held when it forked, so the commands
    are spawned by a bare `python -S` (a few MiB) rather than by this process.
    """

    def __init__(self, python: Path, workdir: Path):
        self.log, self.out = workdir / "stderr.log", workdir / "stdout.log"
        self.process = subprocess.Popen([str(python), "-S", "-u", "-c", LAUNCHER], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)

    def timed(self, command: list[str], keep_output: bool = False) -> tuple[float, int]:
        """Wall seconds and peak RSS (KiB) of one fresh process; raises on a failed run."""
        self.process.stdin.write(json.dumps([command, str(self.out) if keep_output else "", str(self.log)]) + "\n")
        self.process.stdin.flush()
        wall, rss, code = json.loads(self.process.stdout.readline())
        if code != 0 and not (code == 1 and "check" in command):  # `check` exits 1 on a miss: still a complete run
            raise RuntimeError(f"{' '.join(command)} exited {code}: {self.log.read_text()[-500:]}")
        return wall, rss

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def pair(launcher: Launcher, name: str, a: tuple[str, list[str]], b: tuple[str, list[str]], repeat: int,
         warmup: bool) -> dict:
    """A and B run alternately `repeat` times each; the ratio is B/A per pair. B's last output stays in launcher.out."""
    if warmup:
        launcher.timed(a[1]), launcher.timed(b[1])
    runs: dict[str, list[tuple[float, int]]] = {"a": [], "b": []}
    for i in range(repeat):
        runs["a"].append(launcher.timed(a[1]))
        runs["b"].append(launcher.timed(b[1], keep_output=i == repeat - 1))
    side = {}
    for key, (label, command) in (("a", a), ("b", b)):
        walls = [w for w, _ in runs[key]]
        side[key] = {"label": label, "command": " ".join(_short(c) for c in command), "wall_s": spread(walls),
                     "peak_rss_mib": max(r for _, r in runs[key]) / 1024}
    ratios = [wb / wa for (wa, _), (wb, _) in zip(runs["a"], runs["b"])]
    return {"name": name, **side, "ratio": spread(ratios)}


def _short(part: str) -> str:
    return Path(part).name if os.sep in part else part


def inner(launcher: Launcher, python: Path, task: str, *args: str) -> dict:
    """Run one in-process measurement in a fresh child of the installed environment; adds its peak RSS."""
    _, rss = launcher.timed([str(python), str(HERE), "--inner", task, *args], keep_output=True)
    return {**json.loads(launcher.out.read_text().strip().splitlines()[-1]), "peak_rss_mib": rss / 1024}


def repeated(launcher: Launcher, python: Path, repeat: int, task: str, *args: str) -> dict:
    runs = [inner(launcher, python, task, *args) for _ in range(repeat)]
    keys = [k for k, v in runs[0].items() if isinstance(v, float)]
    out = {k: v for k, v in runs[0].items() if not isinstance(v, float)}
    out.update({k: spread([r[k] for r in runs]) for k in keys})
    return out


# ---- what the children measure (run with --inner, in the installed environment) -------------

def inner_zoo() -> dict:
    start = time.perf_counter()
    from archcalc import analyze, load

    imported = time.perf_counter()
    names = load_analyze_zoo()
    done = time.perf_counter()
    vit = load("vit_h_14")  # the largest transformer of the zoo: 32 blocks of 1370 tokens at 518x518
    before = time.perf_counter()
    analyze(vit).rows  # noqa: B018  (the rows, receptive fields included: what a table shows)
    after = time.perf_counter()
    return {"networks": len(names), "import_s": imported - start, "load_analyze_s": done - imported,
            "vit_h_14_analyze_s": after - before, **slowest_fit(names)}


def inner_zoo_work(part: str) -> dict:
    """`import archcalc`, then (`part` "work") the zoo's load + analyze: callgrind counts the two apart."""
    import archcalc  # noqa: F401

    if part == "work":
        load_analyze_zoo()
    return {}


def load_analyze_zoo() -> list[str]:
    """Every zoo network loaded and analyzed, in one process: the work the zoo's target times; their names."""
    from archcalc import analyze, load, zoo_index

    names = list(zoo_index())
    for name in names:
        analyze(load(name))
    return names


def slowest_fit(names: list[str]) -> dict:
    """What `archcalc fit NAME --memory 24GiB` computes, per zoo network after its load: the analysis with
    the training figures counted, and the bisection over the batch. The slowest network's."""
    from archcalc import analyze, load
    from archcalc.core import training

    times = {}
    for name in names:
        network = load(name)
        before = time.perf_counter()
        with training.counting(training.check_setup("adamw", "fp32"), "bf16"):
            training.fit(analyze(network, dtype="bf16"), 24 * 2**30)
        times[name] = time.perf_counter() - before
    slowest = max(times, key=times.__getitem__)
    return {"fit_slowest_s": times[slowest], "fit_slowest_network": slowest}


def inner_generated(path: str) -> dict:
    from archcalc import Budget, analyze, load
    from archcalc.render import render

    t0 = time.perf_counter()
    network = load(path, budget=Budget(nodes=1_000_000, items=1_000_000))  # past the default budget
    t1 = time.perf_counter()
    analysis = analyze(network)
    t2 = time.perf_counter()
    text = render(analysis, "text")
    t3 = time.perf_counter()
    return {"rows": len(analysis.rows), "chars": len(text), "load_s": t1 - t0, "analyze_s": t2 - t1,
            "render_s": t3 - t2, "total_s": t3 - t0}


def inner_scale(repeat: str) -> dict:
    """vgg16's analyze at 224 vs 4096 and batch 1 vs 4096, alternated in one process."""
    from archcalc import analyze, load

    network = load("vgg16")
    cases = {"224": ((3, 224, 224), 1), "4096": ((3, 4096, 4096), 1), "batch 4096": ((3, 224, 224), 4096)}
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(int(repeat)):
        for key, (dims, batch) in cases.items():
            start = time.perf_counter()
            analyze(network, dims, batch)
            times[key].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()} | {
        "ratio 4096/224": statistics.median(b / a for a, b in zip(times["224"], times["4096"])),
        "ratio batch 4096/1": statistics.median(b / a for a, b in zip(times["224"], times["batch 4096"]))}


INNER = {"zoo": inner_zoo, "zoo_work": inner_zoo_work, "generated": inner_generated, "scale": inner_scale}


# ---- generated specs ------------------------------------------------------------------------

def sequential_spec(pairs: int) -> dict:
    conv = {"type": "conv2d", "out": 8, "kernel": 3, "padding": 1}
    layers = [item for _ in range(pairs) for item in (conv, {"type": "relu"})]
    return {"name": f"sequential_{pairs}", "input": [8, 16, 16], "layers": layers}


def residual_spec(blocks: int) -> dict:
    body = [{"type": "conv2d", "out": 8, "kernel": 3, "padding": 1}, {"type": "relu"}]
    return {"name": f"residual_{blocks}", "input": [8, 16, 16],
            "blocks": {"residual": {"layers": [{"type": "add", "branches": [body, []]}]}},
            "layers": [{"block": "residual"} for _ in range(blocks)]}


# ---- the run ---------------------------------------------------------------------------------

def versions(python: Path) -> dict:
    probe = ("import importlib.metadata as m, json, platform\n"
             "out = {'python': platform.python_version()}\n"
             "for name in ('archcalc', 'click', 'tabulate', 'torch', 'fvcore', 'torchinfo'):\n"
             "    try: out[name] = m.version(name)\n"
             "    except m.PackageNotFoundError: out[name] = None\n"
             "print(json.dumps(out))")
    return json.loads(subprocess.run([str(python), "-c", probe], check=True, capture_output=True, text=True).stdout)


def agreement(archcalc: str, counted: dict[str, dict]) -> dict:
    """The reference network counts what the calculator counts: parameters (both tools) and fvcore's flops."""
    out = subprocess.run([archcalc, "table", "resnet18", "--input", REFERENCE_INPUT, "--format", "json"],
                         check=True, capture_output=True, text=True).stdout
    totals = json.loads(out)["totals"]
    found = {"archcalc": {"params": totals["params"], "fvcore_flops": totals["fvcore_flops_per_image"]}, **counted}
    found["params_agree"] = found["fvcore"]["params"] == found["torchinfo"]["params"] == totals["params"]
    found["fvcore_flops_agree"] = found["fvcore"]["flops"] == totals["fvcore_flops_per_image"]
    return found


def command_pairs(launcher: Launcher, python: Path, archcalc: str, args: argparse.Namespace) -> tuple[list[dict], dict]:
    """The pairs of fresh processes, and what the reference tools counted (their last run's output)."""
    repeat, heavy, warm = args.repeat, args.repeat_heavy, not args.quick
    py = ("python -c pass", [str(python), "-c", "pass"])
    table = [archcalc, "table", args.network]
    pairs = [
        pair(launcher, f"archcalc table {args.network} vs start-up", py, (f"archcalc table {args.network}", table), repeat, warm),
        pair(launcher, f"{CHECK} vs start-up", py, (CHECK, [archcalc, *CHECK.split()[1:]]), repeat, warm),
        pair(launcher, "archcalc list vs start-up", py, ("archcalc list", [archcalc, "list"]), repeat, warm),
        pair(launcher, "import click vs start-up", py, ('python -c "import click"', [str(python), "-c", "import click"]), repeat, warm),
        pair(launcher, "standard modules vs start-up", py, (f'python -c "{STANDARD}"', [str(python), "-c", STANDARD]), repeat, warm),
        pair(launcher, "import torch vs start-up", py, ('python -c "import torch"', [str(python), "-c", "import torch"]), heavy, warm),
    ]
    counted: dict[str, dict] = {}
    calc = (f"archcalc table resnet18 --input {REFERENCE_INPUT}", [archcalc, "table", "resnet18", "--input", REFERENCE_INPUT])
    for tool in ("fvcore", "torchinfo"):
        reference = (f"reference.py {tool} (import torch, build, count)", [str(python), str(REFERENCE), tool, "--input", REFERENCE_INPUT])
        pairs.append(pair(launcher, f"{tool} vs archcalc, resnet18 {REFERENCE_INPUT}", calc, reference, heavy, warm))
        counted[tool] = json.loads(launcher.out.read_text().strip().splitlines()[-1])
    pairs.append(pair(launcher, f"archcalc table {args.network}: input 4096 vs 224", (f"archcalc table {args.network}", table),
                      ("... --input 4096", [*table, "--input", "4096"]), repeat, warm))
    pairs.append(pair(launcher, f"archcalc table {args.network}: batch 4096 vs 1", (f"archcalc table {args.network}", table),
                      ("... --batch 4096", [*table, "--batch", "4096"]), repeat, warm))
    return pairs, counted


def instructions(python: Path, archcalc: str, network: str) -> dict | None:
    """Instructions each command executes, counted by valgrind's callgrind: the same count however busy
    the machine is (wall clock is not). None where valgrind is missing."""
    if shutil.which("valgrind") is None:
        return None
    commands = [("python -c pass", [str(python), "-c", "pass"]),
                ('python -c "import click"', [str(python), "-c", "import click"]),
                (f'python -c "{STANDARD}"', [str(python), "-c", STANDARD]),
                (f"archcalc table {network}", [archcalc, "table", network]),
                ("archcalc list", [archcalc, "list"]), (CHECK, [archcalc, *CHECK.split()[1:]])]
    return {label: callgrind(command) for label, command in commands}


def callgrind(command: list[str]) -> int:
    done = subprocess.run([shutil.which("valgrind"), "--tool=callgrind", "--callgrind-out-file=/dev/null", *command],
                          capture_output=True, text=True, check=False)
    found = [line for line in done.stderr.splitlines() if "Collected :" in line]
    if done.returncode not in (0, 1) or not found:
        raise RuntimeError(f"valgrind {' '.join(command)} exited {done.returncode}: {done.stderr[-500:]}")
    return int(found[-1].split(":")[-1])


def measure(args: argparse.Namespace, workdir: Path) -> dict:
    started_on = machine()
    bin_dir = install(workdir)
    python, archcalc = bin_dir / "python", str(bin_dir / "archcalc")
    launcher = Launcher(python, workdir)
    try:
        pairs, counted = command_pairs(launcher, python, archcalc, args)
        result = {
            "machine": started_on,
            "versions": versions(python),
            "install": "wheel of this tree in a fresh venv (see the script's docstring)",
            "settings": {"quick": args.quick, "repeat": args.repeat, "repeat_heavy": args.repeat_heavy,
                         "repeat_large": args.repeat_large, "network": args.network},
            "pairs": pairs,
            "agreement": agreement(archcalc, counted),
            "zoo": repeated(launcher, python, args.repeat, "zoo"),
            "generated": generated(launcher, python, workdir, args),
            "scale": repeated(launcher, python, 1, "scale", str(20 if args.quick else 200)),
            "instructions": None if args.quick else instructions(python, archcalc, args.network),
        }
        if not args.quick and shutil.which("valgrind"):  # the zoo's work, which the machine's phase does not move
            work = [str(python), str(HERE), "--inner", "zoo_work"]
            result["zoo"]["instructions"] = callgrind([*work, "work"]) - callgrind([*work, "import"])
        result["targets"] = targets(result)
        return result
    finally:
        launcher.close()


def generated(launcher: Launcher, python: Path, workdir: Path, args: argparse.Namespace) -> list[dict]:
    small, large = (100, 1000) if args.quick else (10_000, 100_000)
    out = []
    for label, spec, runs in ((f"sequential, {small:,} conv+relu pairs", sequential_spec(small), args.repeat),
                              (f"sequential, {large:,} conv+relu pairs", sequential_spec(large), args.repeat_large),
                              (f"residual, {small:,} add blocks (conv+relu | identity)", residual_spec(small), args.repeat)):
        path = workdir / f"{spec['name']}.json"
        path.write_text(json.dumps(spec))
        out.append({"spec": label, **repeated(launcher, python, runs, "generated", str(path))})
        if not args.quick and shutil.which("valgrind"):  # the work, which a busy machine or its caches do not move
            out[-1]["instructions"] = callgrind([str(python), str(HERE), "--inner", "generated", str(path)])
    return out


def targets(result: dict) -> list[dict]:
    """The figures the calculator aims at, next to what this run measured (a record, not a test)."""
    pairs = {p["name"].split(" vs ")[0] if " vs start-up" in p["name"] else p["name"]: p for p in result["pairs"]}
    network = result["settings"]["network"]
    table, seq, big, res = pairs[f"archcalc table {network}"], *result["generated"]
    per_row = lambda g: g["total_s"]["median"] / g["rows"]  # noqa: E731
    x, mib, sec = "x", "MiB", "s"
    rows = [
        (f"`archcalc table {network}` / `python -c pass`", "<=", 5, x, table["ratio"]["median"]),
        (f"`archcalc table {network}` peak RSS", "<=", 30, mib, table["b"]["peak_rss_mib"]),
        (f"`{CHECK}`", "<=", 0.5, sec, pairs[CHECK]["b"]["wall_s"]["median"]),
        ("`archcalc list`", "<=", 0.5, sec, pairs["archcalc list"]["b"]["wall_s"]["median"]),
        ("load + analyze the whole zoo, one process", "<=", 0.3, sec, result["zoo"]["load_analyze_s"]["median"]),
        ("analyze ViT-H/14 at 518, rows included", "<=", 0.05, sec, result["zoo"]["vit_h_14_analyze_s"]["median"]),
        ("`archcalc fit NAME --memory 24GiB`, slowest zoo network, after its load", "<=", 0.1, sec,
         result["zoo"]["fit_slowest_s"]["median"]),
        (f"{seq['spec']}: load + analyze + render text", "<=", 1, sec, seq["total_s"]["median"]),
        (f"{big['spec']} / {seq['spec']}, time", "<=", 11, x, big["total_s"]["median"] / seq["total_s"]["median"]),
        *([(f"{big['spec']} / {seq['spec']}, instructions", "<=", 11, x, big["instructions"] / seq["instructions"])]
          if "instructions" in big and "instructions" in seq else []),
        (f"{big['spec']}: peak RSS", "<=", 300, mib, big["peak_rss_mib"]["median"]),
        ("residual / sequential, time per row", "<=", 2, x, per_row(res) / per_row(seq)),
        ("vgg16 analyze at 4096 / at 224", "~", 1, x, result["scale"]["ratio 4096/224"]["median"]),
        ("vgg16 analyze at batch 4096 / batch 1", "~", 1, x, result["scale"]["ratio batch 4096/1"]["median"]),
    ]
    rows += [(f"{tool} / archcalc, resnet18 {REFERENCE_INPUT}, end to end", ">=", 50, x,
              pairs[f"{tool} vs archcalc, resnet18 {REFERENCE_INPUT}"]["ratio"]["median"]) for tool in ("fvcore", "torchinfo")]
    met = {"<=": lambda v, b: v <= b, ">=": lambda v, b: v >= b, "~": lambda v, b: abs(v - b) <= 0.25 * b}  # ~: within noise
    return [{"what": what, "target": f"{op} {bound}{'' if unit == x else ' '}{unit}", "measured": value, "unit": unit,
             "met": met[op](value, bound)} for what, op, bound, unit, value in rows]


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "load_average": list(os.getloadavg())}


# ---- the report -----------------------------------------------------------------------------

def ms(s: float) -> str:
    return f"{s * 1e3:,.1f}"


def markdown(result: dict) -> str:
    from archcalc.fmt import markdown_table

    m, v, s = result["machine"], result["versions"], result["settings"]
    goals = [[t["what"], t["target"], f"{t['measured']:,.3g}{'' if t['unit'] == 'x' else ' '}{t['unit']}",
              "yes" if t["met"] else "no"] for t in result["targets"]]
    lines = [
        "# How fast the calculator answers",
        "",
        f"Measured by `benchmarks/calc_speed.py`{' --quick' if s['quick'] else ''} on {m['processor']} "
        f"({m['cpus']} CPUs, load average {m['load_average'][0]:.1f} at the start), {m['platform']}; "
        + ", ".join(f"{k} {val}" for k, val in v.items() if val) + ". "
        "archcalc installed from a wheel; commands are fresh processes run in alternated pairs "
        f"(A B A B ..., {s['repeat']} pairs, {s['repeat_heavy']} for torch), ratios are medians of the per-pair ratios.",
        "",
        markdown_table(goals, ["Target", "aim", "measured", "met"], numeric=(2,)),
        "## Commands, pairwise",
        "",
    ]
    rows = []
    pairs = {p["name"].split(" vs ")[0]: p for p in result["pairs"]}
    for p in result["pairs"]:
        a, b, r = p["a"], p["b"], p["ratio"]
        rows.append([f"`{a['label']}`", f"`{b['label']}`", f"{r['median']:.2f}x", f"{r['min']:.2f}-{r['max']:.2f}",
                     ms(a["wall_s"]["median"]), ms(b["wall_s"]["median"]), f"{a['peak_rss_mib']:.1f}", f"{b['peak_rss_mib']:.1f}"])
    lines.append(markdown_table(rows, ["A", "B", "B / A (median)", "min-max", "A ms", "B ms", "A MiB", "B MiB"],
                                numeric=range(2, 8)))
    if "import click" in pairs:  # records from before it was timed have no such pair
        click_ratio, table_ratio = pairs["import click"]["ratio"]["median"], pairs[f"archcalc table {s['network']}"]["ratio"]["median"]
        lines += [f"The floor under any click command: `import click` alone is {click_ratio:.2f}x `python -c pass`."]
        if "standard modules" in pairs:
            standard = pairs["standard modules"]["ratio"]["median"]
            lines += [f"The standard modules a table cannot do without (`{STANDARD}`: re for the launcher pip writes, "
                      f"json for the spec, ast for its expressions, typing for the records) are {standard:.2f}x."]
        lines += [f"`archcalc table {s['network']}` is {table_ratio:.2f}x.", ""]
    agree = result["agreement"]
    lines += [f"Same network, same counts: resnet18 at {REFERENCE_INPUT} has {agree['archcalc']['params']:,} parameters "
              f"in archcalc, fvcore and torchinfo ({'agree' if agree['params_agree'] else 'DISAGREE'}); fvcore's "
              f"{agree['fvcore']['flops']:,} flops {'equal' if agree['fvcore_flops_agree'] else 'DIFFER FROM'} archcalc's "
              "fvcore count.", ""]
    z = result["zoo"]
    lines += ["## In one process", "",
              f"Load + analyze of the whole zoo ({z['networks']} networks), after `import archcalc` "
              f"({ms(z['import_s']['median'])} ms): median {ms(z['load_analyze_s']['median'])} ms "
              f"(min {ms(z['load_analyze_s']['min'])}, max {ms(z['load_analyze_s']['max'])}; {z['load_analyze_s']['n']} fresh processes)"
              + (f"; callgrind counts it at {z['instructions']:,} instructions." if "instructions" in z else "."), ""]
    if "vit_h_14_analyze_s" in z:  # records from before it was timed have no such figure
        lines += [f"ViT-H/14 at 518x518 (32 blocks of 1370 tokens), analyze with its rows: median "
                  f"{ms(z['vit_h_14_analyze_s']['median'])} ms.", ""]
    if "fit_slowest_s" in z:
        lines += [f"`archcalc fit NAME --memory 24GiB --dtype bf16 --master fp32` after the load (the analysis with "
                  f"the training figures, the bisection over the batch), slowest zoo network ({z['fit_slowest_network']}): "
                  f"median {ms(z['fit_slowest_s']['median'])} ms.", ""]
    rows = []
    for g in result["generated"]:
        total = g["total_s"]["median"]
        rows.append([g["spec"], f"{g['rows']:,}", ms(g["load_s"]["median"]), ms(g["analyze_s"]["median"]),
                     ms(g["render_s"]["median"]), f"{ms(total)} ({ms(g['total_s']['min'])}-{ms(g['total_s']['max'])})",
                     f"{total / g['rows'] * 1e6:,.1f}", f"{g['peak_rss_mib']['median']:.0f}",
                     f"{g['instructions']:,}" if "instructions" in g else "-"])
    lines.append(markdown_table(rows, ["Generated spec", "rows", "load ms", "analyze ms", "render text ms",
                                       "total ms (min-max)", "µs per row", "peak RSS MiB", "instructions"],
                                numeric=range(1, 9)))
    seq = result["generated"]
    lines += [f"{seq[1]['spec']} / {seq[0]['spec']}: {seq[1]['total_s']['median'] / seq[0]['total_s']['median']:.1f}x the time "
              + (f"and {seq[1]['instructions'] / seq[0]['instructions']:.1f}x the instructions (the process's, start-up "
                 "included) " if "instructions" in seq[0] and "instructions" in seq[1] else "")
              + f"for {seq[1]['rows'] / seq[0]['rows']:.1f}x the rows; residual / sequential per row: "
              f"{(seq[2]['total_s']['median'] / seq[2]['rows']) / (seq[0]['total_s']['median'] / seq[0]['rows']):.2f}x.", ""]
    counts = result.get("instructions")
    if counts:
        base = counts["python -c pass"]
        lines += ["## Instructions", "",
                  "Counted by valgrind's callgrind (`--tool=callgrind`), one run each: a count that a busy machine does "
                  "not move, unlike the wall clock above.", "",
                  markdown_table([[f"`{label}`", f"{n:,}", f"{n / base:.2f}x"] for label, n in counts.items()],
                                 ["command", "instructions", "/ `python -c pass`"], numeric=(1, 2))]
    sc = result["scale"]
    lines += [f"vgg16's `analyze()` alternated in one process: {ms(sc['224']['median'])} ms at 224, "
              f"{ms(sc['4096']['median'])} ms at 4096 (ratio {sc['ratio 4096/224']['median']:.2f}), "
              f"{ms(sc['batch 4096']['median'])} ms at batch 4096 (ratio {sc['ratio batch 4096/1']['median']:.2f}).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="A smoke run: small specs, one pair each, no warm-up.")
    parser.add_argument("--repeat", type=int, default=None, help="Pairs per light command (default 15; 1 with --quick).")
    parser.add_argument("--repeat-heavy", type=int, default=None, help="Pairs with torch (default 5; 1 with --quick).")
    parser.add_argument("--repeat-large", type=int, default=None, help="Runs of the largest spec (default 3; 1 with --quick).")
    parser.add_argument("--network", default="vgg16", help="The zoo network of the start-up pairs.")
    parser.add_argument("--out-dir", default=str(ROOT / "reports" / "measured"))
    parser.add_argument("--render", metavar="JSON", help="Only rewrite the Markdown of a recorded calc_speed.json.")
    parser.add_argument("--inner", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inner:
        print(json.dumps(INNER[args.inner[0]](*args.inner[1:])))
        return 0
    for key, default in (("repeat", 15), ("repeat_heavy", 5), ("repeat_large", 3)):
        if getattr(args, key) is None:
            setattr(args, key, 1 if args.quick else default)
    sys.path.insert(0, str(ROOT))
    from archcalc.files import write_atomic

    if args.render:
        result = json.loads(Path(args.render).read_text())
        result["targets"] = targets(result)
    else:
        with tempfile.TemporaryDirectory(prefix="calc_speed.") as workdir:
            result = measure(args, Path(workdir))
    out = Path(args.out_dir)
    text = markdown(result)
    write_atomic(out / "calc_speed.json", json.dumps(result, indent=2) + "\n")
    write_atomic(out / "calc_speed.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
