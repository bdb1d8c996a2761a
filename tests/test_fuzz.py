"""A seeded mutator over the zoo specs and random specs, through the CLI in-process.

Each mutant is a spec file that one to four mutations made from a zoo spec or a random stack:
a value replaced by an awkward one (0, -1, 2**63, 1e300, "", "../x", "(-8) ** (1/3)", a list of a
million, ...), a key dropped, renamed or doubled, an item repeated or removed, a value wrapped in a
list, or (sometimes) the JSON text itself cut, doubled or given a stray byte. `archcalc table` must
then either print a table (exit 0, UTF-8 output) or refuse it in one line on stderr (exit 2): never a
traceback or an unhandled exception, and never more than 2 s of CPU for one mutant.

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
import time
import traceback
from collections import Counter
from pathlib import Path

from click.testing import CliRunner

from archcalc.cli import main

ZOO = Path(__file__).parent.parent / "specs"
COUNT = int(os.environ.get("ARCHCALC_FUZZ_N", "2000"))
# a fixed default, so that a CI run is reproducible; ARCHCALC_FUZZ_SEED=random draws a fresh one
_SEED_TEXT = os.environ.get("ARCHCALC_FUZZ_SEED") or "20261201"
SEED = random.SystemRandom().randrange(2**32) if _SEED_TEXT == "random" else int(_SEED_TEXT)
CPU_SECONDS = 2.0

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
    document = copy.deepcopy(document)
    for _ in range(rng.randint(1, 4)):
        spots = places(document)
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


def run_mutants(count: int, seed: int, folder: Path, seconds: float | None = None, report: Path | None = None) -> dict:
    """Run `count` mutants (fewer when `seconds` of wall time run out); `report` gets the counts as they grow."""
    rng = random.Random(seed)
    began = time.monotonic()
    zoo = zoo_documents()
    runner = CliRunner()
    outcomes: Counter = Counter()
    failures, slow = [], []
    slowest, slowest_spec = 0.0, ""
    summary: dict = {}
    for n in range(count):
        if seconds is not None and time.monotonic() - began > seconds:
            break
        text, variant = mutant_text(rng, zoo)
        path = folder / f"mutant{n % 10}.json"
        path.write_bytes(text)
        target = f"{path}:{variant}" if variant and ":" not in variant else str(path)
        args = ["table", target, "--format", rng.choice(["text", "json", "csv", "markdown"])]
        started = time.process_time()
        result = runner.invoke(main, args)
        spent = time.process_time() - started
        if spent > slowest:
            slowest, slowest_spec = spent, text.decode(errors="replace")[:300]
        lines = result.stderr.splitlines()
        ok = (result.exit_code == 0 and not isinstance(result.exception, Exception)) or (
            result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("archcalc: ") and result.stdout == "")
        if result.exit_code == 0:
            try:
                result.stdout_bytes.decode("utf-8")
            except UnicodeDecodeError:
                ok = False
        outcomes["accepted" if result.exit_code == 0 else "refused" if ok else "failed"] += 1
        if not ok:
            where = traceback.format_exception(*result.exc_info)[-4:] if result.exc_info else []
            failures.append({"mutant": n, "exit": result.exit_code, "exception": repr(result.exception),
                             "traceback": "".join(where)[-1500:],
                             "stderr": result.stderr[-500:], "spec": text.decode(errors="replace")[:2000]})
        if spent > CPU_SECONDS:
            slow.append({"mutant": n, "cpu_s": round(spent, 2), "spec": text.decode(errors="replace")[:2000]})
        if report is not None and (n + 1) % 500 == 0 or n + 1 == count:
            summary = {"seed": seed, "asked": count, "mutants": n + 1, **outcomes, "failures": failures,
                       "over_2s": slow, "slowest_cpu_s": round(slowest, 3), "slowest_spec": slowest_spec, "wall_s": round(time.monotonic() - began, 1)}
            if report is not None:
                report.write_text(json.dumps(summary, indent=2) + "\n")
    return summary or {"seed": seed, "asked": count, "mutants": 0}


def test_mutants_never_crash_or_hang(tmp_path):
    seconds = float(os.environ["ARCHCALC_FUZZ_SECONDS"]) if os.environ.get("ARCHCALC_FUZZ_SECONDS") else None
    report = Path(os.environ["ARCHCALC_FUZZ_REPORT"]) if os.environ.get("ARCHCALC_FUZZ_REPORT") else None
    summary = run_mutants(COUNT, SEED, tmp_path, seconds, report)
    rerun = f"ARCHCALC_FUZZ_SEED={SEED} ARCHCALC_FUZZ_N={COUNT}"
    assert summary["failures"] == [], (rerun, summary["failures"][:3])
    assert summary["over_2s"] == [], (rerun, summary["over_2s"][:3])
    assert summary.get("accepted", 0) > summary["mutants"] // 10, summary  # the mutants reach the calculator too
