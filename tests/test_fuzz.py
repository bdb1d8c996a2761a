"""A seeded mutator over the zoo specs and random specs, through the CLI in-process.

Each mutant is a spec file that one to four mutations made from a zoo spec or a random stack:
a value replaced by an awkward one (0, -1, 2**63, 1e300, "", "../x", "(-8) ** (1/3)", a list of a
million, ...), a key dropped, renamed or doubled, an item repeated or removed, a value wrapped in a
list, or (sometimes) the JSON text itself cut, doubled or given a stray byte. Each goes through
`archcalc table` (in one of the four formats) or `archcalc check`, which must print its table
(exit 0, UTF-8 output) or its verdicts (`check`: exit 0 or 1), or refuse the spec in one line on
stderr (exit 2): never a traceback or an unhandled exception, never more than 2 s of CPU and never
more than 1 GiB of memory for one mutant (the mutants run in a forked child whose address space is
limited; a child that dies is a failure of the mutant it was running).

ARCHCALC_FUZZ_N sets the number of mutants (default 2,000), ARCHCALC_FUZZ_SEED the seed (default
20261201, so that CI is reproducible; `random` draws a fresh one, printed on failure). A release run: `ARCHCALC_FUZZ_N=100000 pytest tests/test_fuzz.py`.
ARCHCALC_FUZZ_REPORT=path.json writes the run's counts there (every 500 mutants), and
ARCHCALC_FUZZ_SECONDS stops a long run after that much wall time, counting what it ran.
"""
from __future__ import annotations

import copy
import json
import os
import random
import resource
import signal
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

import click
from click.testing import CliRunner

from archcalc.cli import main

ZOO = Path(__file__).parent.parent / "specs"
COUNT = int(os.environ.get("ARCHCALC_FUZZ_N", "2000"))
# a fixed default, so that a CI run is reproducible; ARCHCALC_FUZZ_SEED=random draws a fresh one
_SEED_TEXT = os.environ.get("ARCHCALC_FUZZ_SEED") or "20261201"
SEED = random.SystemRandom().randrange(2**32) if _SEED_TEXT == "random" else int(_SEED_TEXT)
CPU_SECONDS = 2.0
MEMORY_MB = 1024  # the child's address space beyond its own size: what one mutant may take

AWKWARD = [
    0, -1, 1, 2, 3, 7, 64, 1000, 10**6, 10**9, 2**31, 2**63 - 1, 2**63, -(2**63), 2**64,
    0.0, 0.5, -0.5, 1.0, 1.5, 1e-300, 1e300, 2.0,
    "", "x", "i", "relu", "same", "valid", "full", "true", "false", "../x", "a/b", ".hidden", "n" * 200,
    "i + 1", "10**9", "2**63", "[0] * 10**6", "[0] * 10**12", "(-8) ** (1/3)", "'%.1000000f' % 1", "1/0",
    "4if 1 else 2", "+".join(["1"] * 3000), "-" * 1000 + "1", "__import__('os')", "'\\ud800'", "min([])",
    "round(1, -10**6)", "int('9' * 5000)", "1e308 * 10", "[[0] * 1000] * 1000",
    None, True, False, [], [0], [1, 2], [3, 3, 3], [[1]], {}, {"type": "relu"}, {"a": 1},
]
KEYS = ["type", "name", "names", "repeat", "as", "index", "when", "block", "args", "layers", "branches", "out",
        "kernel", "stride", "padding", "dilation", "groups", "bias", "p", "eps", "output", "size", "input",
        "params", "variants", "blocks", "expect", "meta", "what", "value", "unit", "significant", "wrong"]
TYPES = ["conv2d", "conv_transpose2d", "linear", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "batch_norm2d",
         "relu", "dropout", "flatten", "lrn", "concat", "add", "softmax"]


def zoo_documents() -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(ZOO.glob("*.json")) if p.name != "schema.json"]


def random_spec(rng: random.Random) -> dict:
    """A small stack: convolutions, pooling, norms, activations, sometimes a repeat, a block, a head."""
    layers: list = []
    for _ in range(rng.randint(1, 6)):
        kind = rng.choice(["conv2d", "max_pool2d", "avg_pool2d", "batch_norm2d", "relu", "dropout", "repeat", "block"])
        if kind == "conv2d":
            layers.append({"type": "conv2d", "out": rng.randint(1, 16), "kernel": rng.choice([1, 3, [1, 3]]),
                           "padding": rng.choice([0, 1, "same", "valid"]), "stride": rng.randint(1, 2)})
        elif kind in ("max_pool2d", "avg_pool2d"):
            layers.append({"type": kind, "kernel": rng.choice([1, 2, 3]), "stride": rng.randint(1, 2)})
        elif kind == "repeat":
            layers.append({"repeat": rng.randint(0, 3), "type": "conv2d", "out": "4 * (i + 1)", "kernel": 1})
        elif kind == "block":
            layers.append({"block": "unit", "args": {"c": rng.randint(1, 8)}})
        else:
            layers.append({"type": kind})
    if rng.random() < 0.5:
        layers += [{"type": "adaptive_avg_pool2d"}, {"type": "flatten"}, {"type": "linear", "out": rng.randint(1, 10)}]
    return {"name": "random", "input": [rng.randint(1, 4), rng.randint(4, 32), rng.randint(4, 32)],
            "params": {"width": rng.randint(1, 8)},
            "blocks": {"unit": {"args": {"c": None}, "layers": [{"type": "conv2d", "out": "c", "kernel": 3, "padding": 1},
                                                                {"type": "relu"}]}},
            "layers": layers}


def places(document) -> list[tuple]:
    """(container, key) of every value in the document."""
    found, stack = [], [document]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            found.append((node, key))
            if isinstance(value, (dict, list)):
                stack.append(value)
    return found


def mutate(document: dict, rng: random.Random) -> dict:
    """One to four mutations; a third of the documents have theirs inside `expect` figures, which few
    places of a whole spec are, so that `check`'s reading of figures is reached often."""
    document = copy.deepcopy(document)
    figures_only = rng.random() < 0.3
    for _ in range(rng.randint(1, 4)):
        spots = places(document)
        if figures_only:
            spots = [spot for spot in spots if isinstance(spot[0], dict) and "what" in spot[0]] or spots
        if not spots:
            break
        container, key = rng.choice(spots)
        action = rng.random()
        if action < 0.45:
            container[key] = copy.deepcopy(rng.choice(AWKWARD))
        elif action < 0.55:
            if isinstance(container, dict):
                container[rng.choice(KEYS)] = container.pop(key)
            else:
                container[key] = {"type": rng.choice(TYPES)}
        elif action < 0.65:
            del container[key]
        elif action < 0.75 and isinstance(container, list):
            container.insert(key, copy.deepcopy(container[key]))
        elif action < 0.85:
            container[key] = [container[key]]
        elif isinstance(container, dict):
            container[rng.choice(KEYS)] = copy.deepcopy(rng.choice(AWKWARD))
        else:
            container[key] = {"type": rng.choice(TYPES), "out": rng.choice([1, 4, "width"]), "kernel": 1}
    return document


def mutant_text(rng: random.Random, zoo: list[dict]) -> tuple[bytes, str]:
    base = rng.choice(zoo) if rng.random() < 0.7 else random_spec(rng)
    document = mutate(base, rng)
    text = json.dumps(document).encode()
    if rng.random() < 0.05:  # the text itself
        cut = rng.randrange(len(text) + 1)
        text = rng.choice([text[:cut], text[:cut] + text[cut:] * 2, text[:cut] + bytes([rng.randrange(256)]) + text[cut:],
                           text.replace(b'{"', b'{"input": [1], "', 1)])
    variants = document.get("variants")
    variant = rng.choice(list(variants)) if isinstance(variants, dict) and variants and rng.random() < 0.95 else None
    return text, variant


COMMANDS = ["text", "json", "csv", "markdown", "check"]


def judged(result, command: str) -> bool:
    """Whether a CLI result is one of the allowed outcomes: a table (exit 0, UTF-8), `check`'s verdict
    (exit 0 or 1, no exception), or a refusal in one line on stderr with nothing on stdout (exit 2)."""
    lines = result.stderr.splitlines()
    if result.exit_code == 2:
        return len(lines) == 1 and lines[0].startswith("archcalc: ") and result.stdout == ""
    if isinstance(result.exception, Exception) or result.exit_code not in ((0, 1) if command == "check" else (0,)):
        return False
    try:
        result.stdout_bytes.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_range(first: int, count: int, seed: int, folder: Path, seconds: float | None, began: float,
               progress: Path, report: Path | None) -> None:
    """Mutants first..count-1 of the seed's sequence (those before `first` are drawn, not run); the
    counts go to `progress` as JSON after each mutant, so that a parent sees where a crash happened."""
    rng = random.Random(seed)
    zoo = zoo_documents()
    runner = CliRunner()
    state = json.loads(progress.read_text()) if progress.exists() else {}
    outcomes: Counter = Counter(state.get("outcomes", {}))
    failures, slow = state.get("failures", []), state.get("over_2s", [])
    slowest, slowest_spec = state.get("slowest_cpu_s", 0.0), state.get("slowest_spec", "")
    grown = state.get("most_memory_mb", 0.0)
    for n in range(count):
        text, variant = mutant_text(rng, zoo)
        command = rng.choice(COMMANDS)
        if n < first:
            continue
        if seconds is not None and time.monotonic() - began > seconds:
            break
        path = folder / f"mutant{n % 10}.json"
        path.write_bytes(text)
        target = f"{path}:{variant}" if variant and ":" not in variant else str(path)
        args = ["check", target] if command == "check" else ["table", target, "--format", command]
        state.update(running=n, running_spec=text.decode(errors="replace")[:2000], running_args=args[:1] + args[2:])
        progress.write_text(json.dumps(state))
        rss_before, started = _max_rss_mb(), time.process_time()
        result = runner.invoke(main, args)
        spent, rss_grown = time.process_time() - started, _max_rss_mb() - rss_before
        if spent > slowest:
            slowest, slowest_spec = spent, text.decode(errors="replace")[:300]
        grown = max(grown, rss_grown)
        ok = judged(result, command)
        outcomes["accepted" if result.exit_code in (0, 1) and ok else "refused" if ok else "failed"] += 1
        if not ok:
            where = traceback.format_exception(*result.exc_info)[-4:] if result.exc_info else []
            failures.append({"mutant": n, "args": args[:1] + args[2:], "exit": result.exit_code,
                             "exception": repr(result.exception), "traceback": "".join(where)[-1500:],
                             "stderr": result.stderr[-500:], "spec": text.decode(errors="replace")[:2000]})
        if spent > CPU_SECONDS:
            slow.append({"mutant": n, "cpu_s": round(spent, 2), "spec": text.decode(errors="replace")[:2000]})
        state = {"seed": seed, "asked": count, "mutants": n + 1, "outcomes": dict(outcomes), "failures": failures,
                 "over_2s": slow, "slowest_cpu_s": round(slowest, 3), "slowest_spec": slowest_spec,
                 "most_memory_mb": round(grown, 1), "wall_s": round(time.monotonic() - began, 1)}
        if report is not None and ((n + 1) % 500 == 0 or n + 1 == count):
            report.write_text(json.dumps(_summary(state), indent=2) + "\n")
    state.pop("running", None)
    progress.write_text(json.dumps(state))


def _summary(state: dict) -> dict:
    kept = {k: v for k, v in state.items() if k not in ("outcomes", "running", "running_spec", "running_args")}
    return {**kept, **state.get("outcomes", {})}


def _address_space() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def run_mutants(count: int, seed: int, folder: Path, seconds: float | None = None, report: Path | None = None) -> dict:
    """Run `count` mutants (fewer when `seconds` of wall time run out); `report` gets the counts as they grow.

    The mutants run in a forked child whose address space is limited to its own size plus MEMORY_MB, so
    that a mutant wanting more fails (a MemoryError, or the child's death) instead of taking the machine;
    a child that dies is recorded as a failure of the mutant it was running, and a new child goes on
    after it. Each mutant's growth of the peak resident memory is recorded too.
    """
    began = time.monotonic()
    progress = folder / "progress.json"
    first = 0
    while True:
        pid = os.fork()
        if pid == 0:  # the child
            code = 0
            try:
                limit = _address_space() + MEMORY_MB * 2**20
                resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
                _run_range(first, count, seed, folder, seconds, began, progress, report)
            except BaseException:  # the parent records the mutant in flight
                traceback.print_exc()
                code = 70
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        state = json.loads(progress.read_text()) if progress.exists() else {}
        if os.waitstatus_to_exitcode(status) == 0 and "running" not in state:
            break
        n = state.get("running", first)
        state.setdefault("failures", []).append(
            {"mutant": n, "args": state.get("running_args"), "exit": os.waitstatus_to_exitcode(status),
             "exception": "the fuzzer's child process died", "spec": state.get("running_spec", "")})
        state.setdefault("outcomes", {})["failed"] = state.get("outcomes", {}).get("failed", 0) + 1
        state.update(mutants=n + 1)
        state.pop("running", None)
        progress.write_text(json.dumps(state))
        first = n + 1
        if first >= count:
            break
    state = json.loads(progress.read_text()) if progress.exists() else {}
    summary = _summary(state) if state else {"seed": seed, "asked": count, "mutants": 0}
    if report is not None:
        report.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def test_mutants_never_crash_or_hang(tmp_path):
    seconds = float(os.environ["ARCHCALC_FUZZ_SECONDS"]) if os.environ.get("ARCHCALC_FUZZ_SECONDS") else None
    report = Path(os.environ["ARCHCALC_FUZZ_REPORT"]) if os.environ.get("ARCHCALC_FUZZ_REPORT") else None
    summary = run_mutants(COUNT, SEED, tmp_path, seconds, report)
    rerun = f"ARCHCALC_FUZZ_SEED={SEED} ARCHCALC_FUZZ_N={COUNT}"
    assert summary["failures"] == [], (rerun, summary["failures"][:3])
    assert summary["over_2s"] == [], (rerun, summary["over_2s"][:3])
    assert summary.get("accepted", 0) > summary["mutants"] // 10, summary  # the mutants reach the calculator too


_CALLS: dict[str, Path] = {}


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def _hostile(args) -> None:
    """Stands in for archcalc: the 3rd call wants 2 GiB, the 5th kills its process, the others print.
    The calls are counted in a file, since a new child process goes on after the 5th."""
    counter = _CALLS["file"]
    calls = int(counter.read_text() or 0) + 1 if counter.exists() else 1
    counter.write_text(str(calls))
    if calls == 3:
        bytearray(2 * 2**30)
    if calls == 5:
        os.kill(os.getpid(), signal.SIGKILL)
    click.echo("a table")


def test_the_fuzzer_catches_memory_hogs_and_deaths(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "main", _hostile)
    monkeypatch.setitem(_CALLS, "file", tmp_path / "calls")
    summary = run_mutants(8, 1, tmp_path)
    failed = {f["mutant"]: f for f in summary["failures"]}
    assert sorted(failed) == [2, 4], summary["failures"]
    assert "MemoryError" in failed[2]["exception"]
    assert failed[4]["exception"] == "the fuzzer's child process died" and failed[4]["exit"] == -signal.SIGKILL
    assert summary["mutants"] == 8 and summary["accepted"] == 6
