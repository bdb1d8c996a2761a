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
import math
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
from limits_worker import address_space

from archcalc.cli import main

ZOO = Path(__file__).parent.parent / "specs"
COUNT = int(os.environ.get("ARCHCALC_FUZZ_N", "2000"))
# a fixed default, so that a CI run is reproducible; ARCHCALC_FUZZ_SEED=random draws a fresh one
_SEED_TEXT = os.environ.get("ARCHCALC_FUZZ_SEED") or "20261201"
SEED = random.SystemRandom().randrange(2**32) if _SEED_TEXT == "random" else int(_SEED_TEXT)
CPU_SECONDS = 2.0
MEMORY_MB = 1024  # the child's address space beyond its own size: what one mutant may take
CHILD_MUTANTS = 2000  # mutants one forked child runs before a fresh one goes on

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
    """Mutants first.. of the seed's sequence (those before `first` are drawn, not run), CHILD_MUTANTS
    at most; the counts go to `progress` as JSON after each mutant, so that a parent sees where a crash
    happened and where to go on."""
    rng = random.Random(seed)
    zoo = zoo_documents()
    runner = CliRunner()
    state = json.loads(progress.read_text()) if progress.exists() else {}
    outcomes: Counter = Counter(state.get("outcomes", {}))
    failures, slow = state.get("failures", []), state.get("over_2s", [])
    slowest, slowest_spec = state.get("slowest_cpu_s", 0.0), state.get("slowest_spec", "")
    grown = state.get("most_memory_mb", 0.0)
    for n in range(min(count, first + CHILD_MUTANTS)):
        text, variant = mutant_text(rng, zoo)
        command = rng.choice(COMMANDS)
        if n < first:
            continue
        if seconds is not None and time.monotonic() - began > seconds:
            state["stopped"] = True
            break
        path = folder / f"mutant{n % 10}.json"
        path.write_bytes(text)
        target = f"{path}:{variant}" if variant and ":" not in variant else str(path)
        args = ["check", target] if command == "check" else ["table", target, "--format", command]
        state.update(running=n, running_spec=text.decode(errors="replace")[:2000], running_args=args[:1] + args[2:])
        _save(progress, state)
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
    _save(progress, state)


def _save(progress: Path, state: dict) -> None:
    """Whole or not at all: a child that dies while writing leaves the last state."""
    temporary = progress.with_suffix(".tmp")
    temporary.write_text(json.dumps(state))
    os.replace(temporary, progress)


def _summary(state: dict) -> dict:
    kept = {k: v for k, v in state.items() if k not in ("outcomes", "running", "running_spec", "running_args", "stopped")}
    return {**kept, **state.get("outcomes", {})}


def run_mutants(count: int, seed: int, folder: Path, seconds: float | None = None, report: Path | None = None) -> dict:
    """Run `count` mutants (fewer when `seconds` of wall time run out); `report` gets the counts as they grow.

    The mutants run in a forked child whose address space is limited to its own size plus MEMORY_MB, so
    that a mutant wanting more fails (a MemoryError, or the child's death) instead of taking the machine;
    a child that dies is recorded as a failure of the mutant it was running, and a new child goes on
    after it. A child runs CHILD_MUTANTS at most, so that what a long run accumulates (the test runner's
    captured output) never eats into one mutant's bound. Each mutant's growth of the peak resident
    memory is recorded too.
    """
    began = time.monotonic()
    progress = folder / "progress.json"
    first = 0
    while True:
        pid = os.fork()
        if pid == 0:  # the child
            code = 0
            try:
                limit = address_space() + MEMORY_MB * 2**20
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
            if state.get("stopped") or state.get("mutants", 0) >= count:
                break
            first = state.get("mutants", 0)
            continue
        n = state.get("running", first)
        state.setdefault("failures", []).append(
            {"mutant": n, "args": state.get("running_args"), "exit": os.waitstatus_to_exitcode(status),
             "exception": "the fuzzer's child process died", "spec": state.get("running_spec", "")})
        state.setdefault("outcomes", {})["failed"] = state.get("outcomes", {}).get("failed", 0) + 1
        state.update(mutants=n + 1)
        state.pop("running", None)
        _save(progress, state)
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
    monkeypatch.setattr(sys.modules[__name__], "CHILD_MUTANTS", 3)  # fresh children go on, every 3 mutants
    summary = run_mutants(8, 1, tmp_path)
    failed = {f["mutant"]: f for f in summary["failures"]}
    assert sorted(failed) == [2, 4], summary["failures"]
    assert "MemoryError" in failed[2]["exception"]
    assert failed[4]["exception"] == "the fuzzer's child process died" and failed[4]["exit"] == -signal.SIGKILL
    assert summary["mutants"] == 8 and summary["accepted"] == 6


# ---- ONNX files mutated with onnx.helper, through `archcalc import onnx` ------------------------
#
# A few small valid graphs (convolution, batch norm, relu, residual add, pooling, concat, flatten,
# gemm, a pad computed from constants) are mutated by editing their protobuf: dimensions made 0, -1
# or huge, inputs dropped or renamed, initializer data cut, lengthened or retyped, attributes changed,
# nodes duplicated or made into a cycle, op types and opsets changed, constant-only nodes that ask
# for huge values added, external data pointed anywhere, or the serialized bytes cut. `archcalc
# import onnx FILE -o OUT` must then write a spec (exit 0) or refuse in one line (exit 2, no file),
# within ONNX_CPU_SECONDS of CPU and without the process's peak memory growing by ONNX_MEMORY.
# ARCHCALC_FUZZ_ONNX_N sets the number of mutants (default 1,000); the seed is ARCHCALC_FUZZ_SEED's.

ONNX_COUNT = int(os.environ.get("ARCHCALC_FUZZ_ONNX_N", "1000"))
ONNX_CPU_SECONDS = 3.0
ONNX_MEMORY = 2**30  # bytes the process's peak resident memory may grow by over the whole run


def onnx_bases(onnx) -> list:
    """Small valid models, each a different mix of the ops the importer reads."""
    import numpy as np

    helper, numpy_helper, T = onnx.helper, onnx.numpy_helper, onnx.TensorProto

    def w(name, *shape):
        return numpy_helper.from_array(np.full(shape, 0.5, np.float32), name)

    def i64(name, *values):
        return numpy_helper.from_array(np.array(values, np.int64), name)

    def model(nodes, inits, shape, opset=17):
        graph = helper.make_graph(nodes, "fuzz", [helper.make_tensor_value_info("x", T.FLOAT, [1, *shape])],
                                  [helper.make_tensor_value_info("y", T.FLOAT, None)], inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])

    n = helper.make_node
    residual = model([
        n("Conv", ["x", "w1", "b1"], ["c1"], name="/stem/conv/Conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        n("BatchNormalization", ["c1", "g", "be", "m", "v"], ["n1"], name="/stem/bn/BatchNormalization"),
        n("Relu", ["n1"], ["r1"], name="/stem/relu/Relu"),
        n("MaxPool", ["r1"], ["p1"], name="/pool/MaxPool", kernel_shape=[2, 2], strides=[2, 2]),
        n("Conv", ["p1", "w2"], ["c2"], name="/block/conv/Conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        n("Add", ["c2", "p1"], ["a"], name="/block/Add"),
        n("Relu", ["a"], ["r2"], name="/block/relu/Relu"),
        n("GlobalAveragePool", ["r2"], ["g2"], name="/avgpool/GlobalAveragePool"),
        n("Flatten", ["g2"], ["f"], name="/flatten/Flatten", axis=1),
        n("Gemm", ["f", "w3", "b3"], ["y"], name="/fc/Gemm", transB=1),
    ], [w("w1", 8, 3, 3, 3), w("b1", 8), w("g", 8), w("be", 8), w("m", 8), w("v", 8), w("w2", 8, 8, 3, 3),
        w("w3", 10, 8), w("b3", 10)], (3, 16, 16))
    inception = model([
        n("Conv", ["x", "w1"], ["a"], name="/mix/b1/Conv", kernel_shape=[1, 1]),
        n("Conv", ["x", "w2"], ["b"], name="/mix/b2/Conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        n("AveragePool", ["x"], ["c"], name="/mix/b3/AveragePool", kernel_shape=[3, 3], strides=[1, 1],
          pads=[1, 1, 1, 1]),
        n("Concat", ["a", "b", "c"], ["k"], name="/mix/Concat", axis=1),
        n("Relu", ["k"], ["r"], name="/relu/Relu"),
        n("Reshape", ["r", "flat"], ["f"], name="/Reshape"),
        n("MatMul", ["f", "w3"], ["mm"], name="/fc/MatMul"),
        n("Add", ["mm", "b3"], ["y"], name="/fc/Add"),
    ], [w("w1", 4, 3, 1, 1), w("w2", 5, 3, 3, 3), i64("flat", 1, -1), w("w3", 12 * 8 * 8, 6), w("b3", 6)], (3, 8, 8))
    padded = model([
        n("Constant", [], ["pads0"], name="/pad/Constant", value=numpy_helper.from_array(np.array([0, 1, 0, 1], np.int64))),
        n("ConstantOfShape", ["four"], ["zeros"], name="/pad/ConstantOfShape",
          value=numpy_helper.from_array(np.array([0], np.int64))),
        n("Concat", ["pads0", "zeros"], ["pads8"], name="/pad/Concat", axis=0),
        n("Reshape", ["pads8", "shape2"], ["pads2"], name="/pad/Reshape"),
        n("Slice", ["pads2", "st", "en", "ax", "step"], ["sliced"], name="/pad/Slice"),
        n("Transpose", ["sliced"], ["tr"], name="/pad/Transpose", perm=[1, 0]),
        n("Reshape", ["tr", "minus1"], ["pads"], name="/pad/Reshape_1"),
        n("Pad", ["x", "pads"], ["p"], name="/pad/Pad"),
        n("Conv", ["p", "w1"], ["c"], name="/conv/Conv", kernel_shape=[3, 3], strides=[2, 2]),
        n("Sigmoid", ["c"], ["s"], name="/act/Sigmoid"),
        n("Mul", ["c", "s"], ["silu"], name="/act/Mul"),
        n("Clip", ["silu", "lo", "hi"], ["y"], name="/clip/Clip"),
    ], [i64("four", 4), i64("shape2", -1, 2), i64("st", -1), i64("en", -9999), i64("ax", 0), i64("step", -1),
        i64("minus1", -1), w("w1", 6, 3, 3, 3), numpy_helper.from_array(np.array(0, np.float32), "lo"),
        numpy_helper.from_array(np.array(6, np.float32), "hi")], (3, 8, 8))
    channels_last = model([
        n("Transpose", ["x"], ["t"], name="/block/Transpose", perm=[0, 2, 3, 1]),
        n("LayerNormalization", ["t", "g", "b"], ["ln"], name="/block/norm/LayerNormalization", axis=-1),
        n("MatMul", ["ln", "w1"], ["m"], name="/block/fc/MatMul"),
        n("Add", ["m", "b1"], ["a"], name="/block/fc/Add"),
        n("Gelu", ["a"], ["e"], name="/block/act/Gelu"),
        n("Transpose", ["e"], ["y"], name="/block/Transpose_1", perm=[0, 3, 1, 2]),
    ], [w("g", 6), w("b", 6), w("w1", 6, 12), w("b1", 12)], (6, 5, 7), opset=20)
    return [residual, inception, padded, channels_last]


ONNX_AWKWARD_INTS = [0, -1, 1, 2, 3, 7, 99, 2**31, 10**12, 2**62, -(2**62)]
ONNX_OPS = ["Conv", "Relu", "Add", "Concat", "Gemm", "MatMul", "Flatten", "Reshape", "Range", "ConstantOfShape",
            "Expand", "Tile", "Loop", "If", "Identity", "Shape", "Gather", "Pad", "Transpose", "Resize", "Foo", ""]


def _onnx_bomb(onnx, rng: random.Random) -> tuple[list, list]:
    """A constant-only node that asks for a huge value from a few bytes (and its initializers)."""
    import numpy as np

    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    big = rng.choice([10**5, 10**9, 2**40, 30000])
    def ints(name, *values):
        return numpy_helper.from_array(np.array(values if len(values) > 1 else values[0], np.int64), name)

    one = numpy_helper.from_array(np.ones((1,), np.float32), "bomb_one")
    return rng.choice([
        ([helper.make_node("Range", ["bomb_s", "bomb_l", "bomb_d"], ["bomb"], name="bomb")],
         [ints("bomb_s", 0), ints("bomb_l", big), ints("bomb_d", 1)]),
        ([helper.make_node("ConstantOfShape", ["bomb_shape"], ["bomb"], name="bomb")], [ints("bomb_shape", big, big)]),
        ([helper.make_node("Expand", ["bomb_one", "bomb_shape"], ["bomb"], name="bomb")], [one, ints("bomb_shape", big, 3)]),
        ([helper.make_node("Tile", ["bomb_one", "bomb_shape"], ["bomb"], name="bomb")], [one, numpy_helper.from_array(np.array([big], np.int64), "bomb_shape")]),
    ])


def _onnx_mutation(onnx, model, rng: random.Random) -> str:
    """One random edit of `model` in place; what it did, for the failure report."""
    graph, T = model.graph, onnx.TensorProto
    nodes, inits = graph.node, graph.initializer
    node = rng.choice(nodes) if len(nodes) else None
    action = rng.randrange(19)
    if action == 0 and len(inits):  # a dimension of an initializer
        t = rng.choice(inits)
        if len(t.dims):
            k = rng.randrange(len(t.dims))
            t.dims[k] = rng.choice(ONNX_AWKWARD_INTS)
            return f"initializer {t.name} dims[{k}] = {t.dims[k]}"
    if action == 1:  # a dimension of the declared input
        dims = graph.input[0].type.tensor_type.shape.dim
        k = rng.randrange(len(dims))
        if rng.random() < 0.2:
            dims[k].dim_param = "n"
            return f"input dim {k} symbolic"
        dims[k].dim_value = rng.choice(ONNX_AWKWARD_INTS)
        return f"input dim {k} = {dims[k].dim_value}"
    if action == 2 and node is not None and len(node.input):  # an input dropped or renamed
        k = rng.randrange(len(node.input))
        if rng.random() < 0.5:
            del node.input[k]
            return f"node {node.name} input {k} dropped"
        node.input[k] = rng.choice(["", "nowhere", "x", "y", *(o for n in nodes for o in n.output)])
        return f"node {node.name} input {k} = {node.input[k]!r}"
    if action == 3 and node is not None and len(node.output):  # an output renamed
        node.output[0] = rng.choice(["y", "x", "c", "dup", *(i.name for i in inits)])
        return f"node {node.name} output = {node.output[0]!r}"
    if action == 4 and len(inits):  # the data of an initializer
        t = rng.choice(inits)
        size = min(max(math.prod(t.dims), 0), 10**4)  # its values, as its (maybe already mutated) dims say
        how = rng.randrange(5)
        if how == 0 and t.raw_data:
            t.raw_data = t.raw_data[:rng.randrange(len(t.raw_data) + 1)]
        elif how == 1:
            t.raw_data = t.raw_data + bytes(rng.choice([1, 3, 4, 8]))
        elif how == 2:
            t.ClearField("raw_data")
            t.float_data.extend([0.0] * max(size + rng.choice([-1, 1, 0]), 0))
        elif how == 3:
            t.ClearField("raw_data")
            t.int64_data.extend([0] * size)
        else:
            t.data_type = rng.choice([0, T.INT64, T.FLOAT16, T.STRING, T.BOOL, T.DOUBLE, T.COMPLEX128, T.INT4, 999])
        return f"initializer {t.name} data edit {how}"
    if action == 5 and node is not None and len(node.attribute):  # an attribute's value
        a = rng.choice(node.attribute)
        if a.type == onnx.AttributeProto.INTS:
            del a.ints[:]
            a.ints.extend(rng.choice([[], [0], [-1], [0, 0], [10**9, 10**9], [1] * 9, [2**62, 1]]))
        elif a.type == onnx.AttributeProto.INT:
            a.i = rng.choice(ONNX_AWKWARD_INTS)
        elif a.type == onnx.AttributeProto.FLOAT:
            a.f = rng.choice([0.0, -1.0, float("nan"), float("inf"), 1e30])
        else:
            node.attribute.remove(a)
        return f"node {node.name} attribute {a.name} edited"
    if action == 6 and node is not None:  # an attribute added, of a wrong type or unknown
        node.attribute.append(onnx.helper.make_attribute(rng.choice(["group", "axis", "kernel_shape", "perm", "foo"]),
                                                         rng.choice([0, -3, 2.5, "text", [3, 3], [0, 1, 2, 3]])))
        return f"node {node.name} attribute {node.attribute[-1].name} added"
    if action == 7 and node is not None:  # a node duplicated
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        nodes.insert(rng.randrange(len(nodes) + 1), copy)
        return f"node {node.name} duplicated"
    if action == 8 and len(nodes) > 1:  # a cycle: a node reads a value made after it
        k = rng.randrange(len(nodes) - 1)
        later = nodes[rng.randrange(k + 1, len(nodes))]
        if len(nodes[k].input) and len(later.output):
            nodes[k].input[0] = later.output[0]
            return f"node {nodes[k].name} reads {later.output[0]}"
    if action == 9 and node is not None:  # another op type
        node.op_type = rng.choice(ONNX_OPS)
        return f"node {node.name} op = {node.op_type!r}"
    if action == 10:  # a constant-only bomb beside the graph
        extra_nodes, extra_inits = _onnx_bomb(onnx, rng)
        nodes.extend(extra_nodes)
        inits.extend(extra_inits)
        return f"bomb {extra_nodes[0].op_type}"
    if action == 11:  # the operator set
        model.opset_import[0].version = rng.choice([-1, 0, 1, 7, 11, 13, 18, 21, 999, 2**40])
        if rng.random() < 0.2:
            model.opset_import[0].domain = rng.choice(["com.microsoft", "ai.onnx.ml"])
        return f"opset {model.opset_import[0].domain!r} {model.opset_import[0].version}"
    if action == 12 and len(inits):  # external data, anywhere
        t = rng.choice(inits)
        t.ClearField("raw_data")
        t.data_location = T.EXTERNAL
        location = rng.choice(["weights.bin", "../weights.bin", "/etc/passwd", "/dev/zero", "", "a/../../b", "\x00"])
        t.external_data.add(key="location", value=location)
        if rng.random() < 0.5:
            t.external_data.add(key=rng.choice(["offset", "length"]), value=rng.choice(["0", "-5", "x", str(2**70)]))
        return f"initializer {t.name} external {location!r}"
    if action == 13 and node is not None:  # a node's domain
        node.domain = rng.choice(["com.microsoft", "ai.onnx", "x"])
        return f"node {node.name} domain {node.domain!r}"
    if action == 14:  # the graph's inputs and outputs
        what = rng.randrange(3)
        if what == 0:
            graph.input.append(onnx.helper.make_tensor_value_info("x2", T.FLOAT, [1, 3, 4, 4]))
        elif what == 1 and len(graph.output):
            graph.output[0].name = rng.choice(["x", "nowhere", "c1"])
        else:
            graph.input[0].type.tensor_type.elem_type = rng.choice([0, T.INT64, T.STRING])
        return f"graph inputs/outputs edit {what}"
    if action == 16:  # a valid input size, another than the base's
        dims = graph.input[0].type.tensor_type.shape.dim
        dims[2].dim_value, dims[3].dim_value = rng.randint(4, 40), rng.randint(4, 40)
        return f"input size {dims[2].dim_value}x{dims[3].dim_value}"
    if action == 17 and node is not None and node.op_type in ("Conv", "MaxPool", "AveragePool"):  # a valid window
        for a in list(node.attribute):
            if a.name in ("strides", "pads", "dilations"):
                node.attribute.remove(a)
        step, pad = rng.randint(1, 3), rng.randint(0, 1)
        node.attribute.extend([onnx.helper.make_attribute("strides", [step, step]),
                               onnx.helper.make_attribute("pads", [pad] * 4)])
        return f"node {node.name} strides {step} pads {pad}"
    if action == 18 and node is not None and len(node.output):  # an op that keeps the shape, after a node
        name = node.output[0]
        for other in nodes:
            other.input[:] = [f"{name}_kept" if i == name else i for i in other.input]
        if graph.output[0].name == name:
            graph.output[0].name = f"{name}_kept"
        op = rng.choice(["Relu", "Identity", "Dropout", "Sigmoid", "Tanh"])
        nodes.insert(list(nodes).index(node) + 1, onnx.helper.make_node(op, [name], [f"{name}_kept"], name=f"{name}/{op}"))
        return f"{op} after {node.name}"
    if action == 15 and len(nodes):  # a node removed
        k = rng.randrange(len(nodes))
        name = nodes[k].name
        del nodes[k]
        return f"node {name} removed"
    return "none"


def onnx_mutant(onnx, bases: list, rng: random.Random) -> tuple[bytes, list[str]]:
    """The bytes of a mutated model and the edits made."""
    model = onnx.ModelProto()
    model.CopyFrom(rng.choice(bases))
    edits = [_onnx_mutation(onnx, model, rng) for _ in range(rng.choice([1, 1, 2, 3]))]
    data = model.SerializeToString()
    if rng.random() < 0.05:
        cut = rng.randrange(len(data) + 1)
        data = rng.choice([data[:cut], data[:cut] + bytes([rng.randrange(256)]) + data[cut + 1:]])
        edits.append(f"bytes cut or changed at {cut}")
    return data, edits


def run_onnx_mutants(count: int, seed: int, folder: Path) -> dict:
    """Import `count` mutants; the failures, those over the CPU bound and the peak memory's growth."""
    import resource

    import onnx
    import onnx.reference  # noqa: F401  (imported once here, not inside the first mutant's CPU time)

    rng = random.Random(seed)
    bases = onnx_bases(onnx)
    runner = CliRunner()
    (folder / "model").mkdir()
    (folder / "model" / "weights.bin").write_bytes(bytes(64))
    runner.invoke(main, ["import", "onnx", str(_write(folder, bases[0].SerializeToString())), "-o",
                         str(folder / "warm.json")])  # the first import pays for loading the importer
    start_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    outcomes: Counter = Counter()
    failures, slow, memory = [], [], []
    for n in range(count):
        data, edits = onnx_mutant(onnx, bases, rng)
        path, out = _write(folder, data), folder / "out" / "spec.json"
        args = ["import", "onnx", str(path), "-o", str(out)]
        if rng.random() < 0.1:
            args += ["--input", rng.choice(["3x16x16", "8", "3x100000x100000", "0x4x4", "6x5x7"])]
        started = time.process_time()
        result = runner.invoke(main, args)
        spent = time.process_time() - started
        ok = judged(result, "import") and out.is_file() == (result.exit_code == 0)  # a spec, or no file at all
        outcomes["accepted" if result.exit_code == 0 and ok else "refused" if ok else "failed"] += 1
        if not ok:
            where = traceback.format_exception(*result.exc_info)[-4:] if result.exc_info else []
            failures.append({"mutant": n, "edits": edits, "exit": result.exit_code, "exception": repr(result.exception),
                             "traceback": "".join(where)[-1500:], "stderr": result.stderr[-500:]})
        if spent > ONNX_CPU_SECONDS:
            slow.append({"mutant": n, "edits": edits, "cpu_s": round(spent, 2)})
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - start_rss
        if grown > ONNX_MEMORY and not memory:
            memory.append({"mutant": n, "edits": edits, "peak_growth_mib": grown // 2**20})
        if out.exists():
            out.unlink()
    return {"seed": seed, "mutants": count, **outcomes, "failures": failures, "slow": slow, "memory": memory}


def _write(folder: Path, data: bytes) -> Path:
    path = folder / "model" / "mutant.onnx"
    path.write_bytes(data)
    return path


def test_onnx_mutants_never_crash_hang_or_blow_up(tmp_path):
    import pytest

    pytest.importorskip("onnx")
    summary = run_onnx_mutants(ONNX_COUNT, SEED, tmp_path)
    rerun = f"ARCHCALC_FUZZ_SEED={SEED} ARCHCALC_FUZZ_ONNX_N={ONNX_COUNT}"
    assert summary["failures"] == [], (rerun, summary["failures"][:3])
    assert summary["slow"] == [], (rerun, summary["slow"][:3])
    assert summary["memory"] == [], (rerun, summary["memory"])
    assert summary.get("accepted", 0) > summary["mutants"] // 10, summary  # the mutants reach the calculator too
