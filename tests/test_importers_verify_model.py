"""`archcalc verify SPEC --model MODULE:CALLABLE`: a spec against the user's own module (the CI check)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("fvcore")

from archcalc.cli import main  # noqa: E402

MODELS = str(Path(__file__).parent / "handwritten_models.py")


def run(args: list[str]):
    try:
        runner = CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        runner = CliRunner()
    return runner.invoke(main, args)


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    out = tmp_path_factory.mktemp("spec") / "mobile.json"
    result = run(["import", "torch", f"{MODELS}:MobileSE", "--input", "3x48x40", "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_an_imported_spec_agrees_with_its_model(imported):
    result = run(["verify", str(imported), "--model", f"{MODELS}:MobileSE"])
    assert result.exit_code == 0, result.stdout
    assert result.stdout.rstrip().endswith("all agree")
    # the depthwise conv of the second block: module blocks.1.depthwise, under the residual-free block
    assert "blocks.1.depthwise" in result.stdout


def test_a_spec_edited_out_of_step_exits_1_naming_the_layer(imported, tmp_path):
    document = json.loads(imported.read_text())
    text = json.dumps(document).replace('"name": "grouped", "type": "conv2d", "out": 48, "kernel": 3, "padding": 1, "groups": 4',
                                        '"name": "grouped", "type": "conv2d", "out": 48, "kernel": 3, "padding": 1, "groups": 2')
    assert text != json.dumps(document)
    edited = tmp_path / "edited.json"
    edited.write_text(text)
    result = run(["verify", str(edited), "--model", f"{MODELS}:MobileSE"])
    assert result.exit_code == 1
    # groups 2 instead of 4: twice the weights (48 * 12 * 9 + 48 against 48 * 6 * 9 + 48)
    assert "disagrees: grouped (conv2d): params, flops" in result.stdout
    assert "params: calculator 16,115, torch 13,523: DIFF" in result.stdout


def test_names_that_differ_need_match_order():
    # the zoo's lenet5 names its layers features.C1, ...; the hand-written module c1, ...
    by_name = run(["verify", "lenet5", "--model", f"{MODELS}:LeNet5"])
    assert by_name.exit_code == 1
    assert "disagrees: features.C1 (conv2d)" in by_name.stdout
    by_order = run(["verify", "lenet5", "--model", f"{MODELS}:LeNet5", "--match", "order"])
    assert by_order.exit_code == 0, by_order.stdout
    assert "features.C1 = c1" in by_order.stdout and "classifier.output = out" in by_order.stdout


def test_a_callable_that_raises_is_one_line_exit_2():
    result = run(["verify", "lenet5", "--model", f"{MODELS}:broken"])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"archcalc: {MODELS}:broken: calling it raised RuntimeError: no weights here"
