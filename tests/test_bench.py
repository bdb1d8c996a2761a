"""`archcalc bench` on CPU: the whole path on a tiny network, outputs, errors and Ctrl-C.

No test depends on how fast this machine is: figures are checked against each other and
against hand counts (MACs, bytes) and torch's own FLOP counter, never against a time.
"""
from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")

from archcalc import analyze, load  # noqa: E402
from archcalc.cli import main  # noqa: E402
from archcalc.torch import bench  # noqa: E402
from archcalc.torch.bench import Settings, Stats, percentile  # noqa: E402
from archcalc.torch.bench_render import render  # noqa: E402

TINY = str(Path(__file__).parent / "fixtures" / "bench_tiny.json")
FAST = Settings(device="cpu", warmup_iters=2, warmup_seconds=0.0, iters=7, matmul_size=64)
FAST_FLAGS = ["--device", "cpu", "--warmup-iters", "1", "--warmup-seconds", "0", "--iters", "5", "--matmul-size", "64"]

# bench_tiny, by hand: 3x16x16 -> conv 8, 3x3, pad 1 -> 8x16x16 -> relu -> pool 2 -> 8x8x8 -> flatten -> linear 10
CONV_MACS = 8 * 16 * 16 * (3 * 3 * 3)
FC_MACS = 8 * 8 * 8 * 10
PARAMS = (8 * 27 + 8) + (512 * 10 + 10)
ACTIVATIONS = 3 * 16 * 16 + 8 * 16 * 16 + 8 * 8 * 8 + 10  # input, conv, pool, linear (relu in place, flatten a view)


def peak_live_bytes(size: int) -> int:
    """Per image: the relu holds its input and output (8x16x16 each) while the network's input is held;
    the max pool its input, output (8x8x8) and the output's int64 indices."""
    x, conv, pool = 3 * 16 * 16, 8 * 16 * 16, 8 * 8 * 8
    return max((x + 2 * conv) * size, (x + conv + pool) * size + pool * 8)


@pytest.fixture(scope="module")
def tiny_run():
    return bench.run([analyze(load(TINY))], (1, 3), ("fp32", "bf16"), FAST)


def test_one_result_per_configuration_in_order(tiny_run):
    assert not tiny_run.interrupted and not tiny_run.failures
    assert [(r.network, r.dtype, r.batch) for r in tiny_run.results] == [
        ("bench_tiny", "fp32", 1), ("bench_tiny", "fp32", 3), ("bench_tiny", "bf16", 1), ("bench_tiny", "bf16", 3),
    ]
    assert tiny_run.planned == 4
    assert tiny_run.environment["device"] == "cpu" and "perf_counter_ns" in tiny_run.environment["timer"]
    assert tiny_run.environment["torch"] == torch.__version__


def test_percentiles_are_ordered(tiny_run):
    for stats in [tiny_run.overhead, *(p.latency for p in tiny_run.peaks), *(r.latency for r in tiny_run.results)]:
        assert stats.samples == FAST.iters
        assert 0 <= stats.min_ms <= stats.p10_ms <= stats.median_ms <= stats.p90_ms <= stats.max_ms


def test_throughput_follows_latency_and_batch(tiny_run):
    for r in tiny_run.results:
        assert r.images_per_s == pytest.approx(r.batch / (r.latency.median_ms / 1000))


def test_achieved_flops_use_the_hand_count_of_macs(tiny_run):
    for r in tiny_run.results:
        assert r.macs_per_image == CONV_MACS + FC_MACS
        assert r.flops == 2 * (CONV_MACS + FC_MACS) * r.batch
        assert r.achieved_tflops == pytest.approx(r.flops / (r.latency.median_ms / 1000) / 1e12)


def test_flops_agree_with_torch_flop_counter(tiny_run):
    from torch.utils.flop_counter import FlopCounterMode

    from archcalc.torch.build import build_torch

    model = build_torch(load(TINY)).eval()
    for r in tiny_run.results:
        counter = FlopCounterMode(display=False)
        with counter, torch.inference_mode():
            model(torch.randn(r.batch, 3, 16, 16))
        assert counter.get_total_flops() == r.flops


def test_percent_of_peak_uses_the_matmul_measured_in_the_run(tiny_run):
    assert [p.dtype for p in tiny_run.peaks] == ["fp32", "bf16"]
    for p in tiny_run.peaks:
        assert p.size == 64
        assert p.tflops == pytest.approx(2 * 64**3 / (p.latency.median_ms / 1000) / 1e12)
    for r in tiny_run.results:
        peak = tiny_run.peak(r.dtype)
        assert r.peak_tflops == peak.tflops
        assert r.percent_of_peak == pytest.approx(100 * r.achieved_tflops / peak.tflops)


def test_memory_estimate_by_hand_and_not_measured_on_cpu(tiny_run):
    for r in tiny_run.results:
        size = 4 if r.dtype == "fp32" else 2
        assert r.peak_allocated_bytes is None and r.resident_bytes is None
        assert r.weights_bytes == PARAMS * size
        assert r.activation_bytes == ACTIVATIONS * r.batch * size
        assert r.estimate_bytes == (PARAMS + ACTIVATIONS * r.batch) * size
        assert r.peak_activation_bytes == peak_live_bytes(size) * r.batch
    assert "Memory: not measured on CPU" in render(tiny_run, "text")


def test_percentile_interpolates_between_ranks():
    eleven = [float(v) for v in range(1, 12)]
    assert (percentile(eleven, 10), percentile(eleven, 50), percentile(eleven, 90)) == (2.0, 6.0, 10.0)
    assert percentile([0.0, 10.0], 10) == pytest.approx(1.0)
    stats = Stats.of([5.0, 1.0, 3.0])
    assert (stats.min_ms, stats.median_ms, stats.max_ms, stats.samples) == (1.0, 3.0, 5.0, 3)


def test_a_median_near_the_empty_region_is_flagged(tiny_run):
    r = tiny_run.results[0]
    near = replace(r, overhead_ms=r.latency.median_ms / 4)
    far = replace(r, overhead_ms=r.latency.median_ms / 6)
    assert near.noisy and not far.noisy
    text = render(replace(tiny_run, results=(near,)), "text")
    assert " !" in text and "mostly timer overhead" in text


def test_a_configuration_that_fails_is_reported_and_the_rest_measured():
    from archcalc.torch.build import build_torch

    def build(analysis):
        if analysis.network.name == "bench_tiny" and not hasattr(build, "failed"):
            build.failed = True
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail")
        return build_torch(analysis)

    result = bench.run([analyze(load(TINY))], (1, 2), ("fp32",), FAST, build=build)
    assert [(f.batch, f.message) for f in result.failures] == [(1, "CUDA out of memory. Tried to allocate 2.00 GiB")]
    assert [r.batch for r in result.results] == [2]
    assert "failed: bench_tiny batch 1 fp32: CUDA out of memory" in render(result, "markdown")


# ---- the command -----------------------------------------------------------------------

def invoke(*args: str):
    return CliRunner().invoke(main, ["bench", *args])


def test_json_output_and_out_files_written_whole(tmp_path):
    out_json, out_md = tmp_path / "run.json", tmp_path / "deep" / "run.md"
    result = invoke(TINY, "--batch", "2", *FAST_FLAGS, "--format", "json", "--out", str(out_json), "--out", str(out_md))
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    written = json.loads(out_json.read_text())
    assert set(printed) == set(written) == {
        "environment", "settings", "interrupted", "planned", "overhead", "matmul_peak", "results", "failures"}
    assert written["environment"]["device"] == "cpu" and written["settings"]["iters"] == 5
    (row,) = written["results"]
    assert (row["network"], row["batch"], row["dtype"], row["input"]) == ("bench_tiny", 2, "fp32", [3, 16, 16])
    assert row["flops"] == 2 * (CONV_MACS + FC_MACS) * 2 and isinstance(row["flops"], int)
    assert row["peak_allocated_bytes"] is None
    assert row["latency"]["p10_ms"] <= row["latency"]["median_ms"] <= row["latency"]["p90_ms"]
    markdown = out_md.read_text()
    assert markdown.startswith("### Time per inference step, batch 2, fp32\n")
    assert "| bench_tiny " in markdown and markdown.endswith("\n")
    assert not [p for p in tmp_path.rglob(".*")]  # no temporary files left beside the outputs


def test_text_and_markdown_tables():
    text = invoke(TINY, "--batch", "1", "--dtype", "bf16", *FAST_FLAGS)
    assert text.exit_code == 0, text.output
    assert text.stdout.startswith("Time per inference step, batch 1, bf16\n")
    assert "perf_counter_ns" in text.stdout and "Empty timed region" in text.stdout
    assert "1/1" in text.stderr or "done" in text.stderr  # progress on stderr, not in the table
    markdown = invoke(TINY, "--batch", "1,4", *FAST_FLAGS, "--format", "markdown")
    assert markdown.exit_code == 0, markdown.output
    lines = [line for line in markdown.stdout.splitlines() if line.startswith("| bench_tiny")]
    assert len(lines) == 2 and markdown.stdout.startswith("### Time per inference step, fp32\n")


@pytest.mark.parametrize("args, words", [
    (["--device", "cuda"], ["--device cuda", "no CUDA GPU"]),
    (["--dtype", "fp32,fp64"], ["'fp64'", "fp32, fp16, bf16"]),
    (["--dtype", "int8"], ["'int8'"]),
    (["--batch", "1,x"], ["'--batch': '1,x'"]),
    (["--batch", "0"], ["at least 1"]),
    (["--device", "cpu", "--cuda-graph"], ["--cuda-graph needs --device cuda"]),
    (["--device", "cpu", "--l2-flush"], ["--l2-flush needs --device cuda"]),
    (["--all"], ["not both"]),
])
def test_bad_options_are_one_line_and_exit_2(monkeypatch, args, words):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = invoke(TINY, *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    for word in words:
        assert word in result.stderr


def test_unknown_network_and_no_network():
    unknown = invoke("no_such_net", *FAST_FLAGS)
    assert unknown.exit_code == 2 and "unknown network 'no_such_net'" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1
    neither = invoke(*FAST_FLAGS)
    assert neither.exit_code == 2 and "--all" in neither.stderr


def _unwritable_outs(tmp_path: Path) -> list[tuple[str, str]]:
    """(--out, the start of the one line): a file in the way of the folder, a system folder no one
    writes to, and (not as root) a read-only folder."""
    (tmp_path / "file").write_text("x")
    outs = [(str(tmp_path / "file" / "run.md"), f"{tmp_path / 'file'}: cannot create the folder: a file is in the way"),
            ("/sys/archcalc-run.md", "/sys/archcalc-run.md: cannot write: ")]
    if os.geteuid() != 0:  # root writes into a read-only folder
        (tmp_path / "locked").mkdir(mode=0o555)
        outs.append((str(tmp_path / "locked" / "run.md"), f"{tmp_path / 'locked' / 'run.md'}: cannot write: Permission denied"))
    return outs


def test_an_unwritable_out_is_refused_before_measuring(monkeypatch, tmp_path):
    measured = []
    monkeypatch.setattr(bench, "measure_config", lambda *args, **kwargs: measured.append(args))
    for out, line in _unwritable_outs(tmp_path):
        before = sorted(tmp_path.rglob("*"))
        result = invoke(TINY, *FAST_FLAGS, "--out", str(tmp_path / "fine.json"), "--out", out)
        assert result.exit_code == 2 and result.stdout == "", (out, result.output)
        assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith(f"archcalc: {line}"), result.stderr
        assert measured == [] and sorted(tmp_path.rglob("*")) == before  # nothing measured, nothing written


def _interrupt_after(monkeypatch, count: int) -> None:
    original = bench.measure_config
    calls = []

    def measure(*args, **kwargs):
        calls.append(1)
        if len(calls) > count:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(bench, "measure_config", measure)


def test_ctrl_c_keeps_what_was_measured(monkeypatch):
    _interrupt_after(monkeypatch, 2)
    result = bench.run([analyze(load(TINY))], (1, 2, 3), ("fp32",), FAST)
    assert result.interrupted and result.planned == 3
    assert [r.batch for r in result.results] == [1, 2]
    assert "INTERRUPTED: 2 of 3 configurations measured" in render(result, "text")


def test_ctrl_c_in_the_command_prints_and_writes_then_exits_130(monkeypatch, tmp_path):
    _interrupt_after(monkeypatch, 1)
    out = tmp_path / "partial.json"
    result = invoke(TINY, "--batch", "1,2,4", *FAST_FLAGS, "--out", str(out))
    assert result.exit_code == 130
    assert "INTERRUPTED: 1 of 3" in result.stdout and "bench_tiny" in result.stdout
    assert "interrupted; 1 of 3 configurations measured" in result.stderr
    written = json.loads(out.read_text())
    assert written["interrupted"] is True and [r["batch"] for r in written["results"]] == [1]


def test_csv_output_one_line_per_configuration(tmp_path):
    import csv
    import io

    out = tmp_path / "run.csv"
    result = invoke(TINY, "--batch", "1,2", *FAST_FLAGS, "--format", "csv", "--out", str(out))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["network"], r["batch"]) for r in rows] == [("bench_tiny", "1"), ("bench_tiny", "2")]
    assert int(rows[1]["flops"]) == 2 * (CONV_MACS + FC_MACS) * 2  # 2 FLOPs per MAC, batch 2
    assert float(rows[0]["latency_p10_ms"]) <= float(rows[0]["latency_median_ms"])
    assert out.read_text() == result.stdout  # the file's format from its suffix


def test_threads_are_set_and_stated():
    result = invoke(TINY, *FAST_FLAGS, "--threads", "1")
    assert result.exit_code == 0, result.output
    assert "; 1 CPU threads (--threads; default the physical cores)" in result.stdout
    assert torch.get_num_threads() == 1
    default = invoke(TINY, *FAST_FLAGS, "--format", "json")
    assert json.loads(default.stdout)["settings"]["threads"] == bench.physical_cores()
    assert json.loads(default.stdout)["environment"]["threads"] == bench.physical_cores()


def test_physical_cores_count_cores_not_hyperthreads():
    import os

    assert 1 <= bench.physical_cores() <= (os.cpu_count() or 1)


def test_a_network_s_name_and_a_failure_s_message_are_shown_as_text(tiny_run):
    import csv
    import io

    from hostile_text import assert_plain_markdown, controls, pipe_cells, tables

    name = "=cmd|' /C calc'!A0 <b>`x`</b> [l](javascript:alert(1))"  # what a spec's name may hold
    failure = bench.Failure(name, 4, "fp32", "torch said \x1b]0;pwned\x07 \x9b31m\nnext")
    run = replace(tiny_run, results=(replace(tiny_run.results[0], network=name),), failures=(failure,))
    text = render(run, "text")
    assert controls(text) == [] and "torch said \\x1b]0;pwned\\x07 \\x9b31m\\nnext" in text
    markdown = render(run, "markdown")
    assert_plain_markdown(markdown)
    (table,) = tables(markdown)
    assert len(pipe_cells(table[2])) == len(pipe_cells(table[0])) == 12
    (row,) = csv.DictReader(io.StringIO(render(run, "csv")))
    assert row["network"] == "'" + name  # a spreadsheet shows it as text, not as a formula
