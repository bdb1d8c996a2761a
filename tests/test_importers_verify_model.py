"""`archcalc verify SPEC --model MODULE:CALLABLE`: a spec against the user's own module (the CI check)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import cli_runner

torch = pytest.importorskip("torch")
pytest.importorskip("fvcore")

from archcalc.cli import main  # noqa: E402

MODELS = str(Path(__file__).parent / "handwritten_models.py")


def run(args: list[str]):
    return cli_runner().invoke(main, args)


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


def test_a_module_no_row_matches_shows_its_output_shape():
    # c1, Conv2d(1, 6, 5) on 1x32x32: 6x28x28; 6 x 25 + 6 = 156 parameters; 6 x 28 x 28 x 25 = 117,600 multiply-adds
    result = run(["verify", "lenet5", "--model", f"{MODELS}:LeNet5"])
    assert re.search(r"\(model\) c1 +Conv2d +6x28x28 +DIFF +0 +156 +DIFF +0 +117,600 +DIFF\n", result.stdout), result.stdout


def test_a_callable_that_raises_is_one_line_exit_2():
    result = run(["verify", "lenet5", "--model", f"{MODELS}:broken"])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"archcalc: {MODELS}:broken: calling it raised RuntimeError: no weights here"


def test_a_forward_that_raises_is_one_line_exit_2():
    # TinyResNet's stem wants 3 channels; lenet5's input has 1
    result = run(["verify", "lenet5", "--model", f"{MODELS}:TinyResNet"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"archcalc: {MODELS}:TinyResNet: the model fails on a batch of 1 at 1x32x32: "
                                    "RuntimeError: Given groups=1, weight of size [16, 3, 3, 3]")
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--model", f"{MODELS}:exits"], f"archcalc: {MODELS}:exits: the model's code called sys.exit(3)"),
    (["--model", f"{MODELS}:LeNet5", "--input", "1x100000x100000"], "verify --model would allocate"),
])
def test_a_callable_that_exits_or_an_input_too_big_is_one_line_exit_2(args, message):
    result = run(["verify", "lenet5", *args])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1 and message in result.stderr and "Traceback" not in result.stderr


def _imported(tmp_path, model: str, shape: str) -> Path:
    out = tmp_path / f"{model}.json"
    result = run(["import", "torch", f"{MODELS}:{model}", "--input", shape, "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_channels_last_modules_and_a_parameter_of_the_block_are_checked(tmp_path):
    """ConvNeXt as its authors write it: LayerNorm and Linear on a permuted (N, H, W, C) tensor are compared
    in (C, H, W) order; gamma * x, a parameter of the block itself, against the block's own parameters."""
    result = run(["verify", str(_imported(tmp_path, "TinyConvNeXt", "3x64x64")), "--model", f"{MODELS}:TinyConvNeXt"])
    assert result.exit_code == 0, result.stdout
    assert result.stdout.rstrip().endswith("all agree")
    # the first stage-1 block: LayerNorm(16) after the permute, 2 x 16 values; gamma, 16 values of the block
    assert re.search(r"\nstage1\.0\.norm +layer_norm2d +16x16x16 +16x16x16 +ok +32 +32 +ok", result.stdout)  # torch's name
    # with the residual add (a row of its own, computed by no module: `x + ...` in the block's forward)
    assert re.search(r"stage1\.0\.mul \.\.\. \(in stage1\.0\) +layer_scale\+add +16x16x16 +- +- +16 +16 +ok",
                     result.stdout)


def test_functional_calls_are_checked_against_the_parameters_of_their_module(tmp_path):
    """TinyResNet's stem and classifier are F.conv2d and F.linear on parameters of the model itself:
    (16 x 3 x 3 x 3 + 16) + (10 x 32 + 10) = 778 values; a stem without its bias is 16 short."""
    spec = _imported(tmp_path, "TinyResNet", "3x32x32")
    result = run(["verify", str(spec), "--model", f"{MODELS}:TinyResNet"])
    assert result.exit_code == 0, result.stdout
    assert re.search(r"conv2d \.\.\. \(in the model\) .* 778 +778 +ok", result.stdout)
    document = json.loads(spec.read_text())
    assert document["layers"][0] == {"name": "conv2d", "type": "conv2d", "out": 16, "kernel": 3, "padding": 1}
    document["layers"][0]["bias"] = False
    spec.write_text(json.dumps(document))
    result = run(["verify", str(spec), "--model", f"{MODELS}:TinyResNet"])
    assert result.exit_code == 1
    assert re.search(r"conv2d \.\.\. \(in the model\) .* 762 +778 +DIFF", result.stdout)
    # fvcore counts no bias: only the parameters differ
    assert "disagrees: conv2d ... (in the model) (conv2d+relu+max_pool2d+adaptive_avg_pool2d+flatten+linear): params\n" \
        in result.stdout


def test_a_spec_built_in_torch_and_given_back_as_the_model_measures_as_verify_does(tmp_path):
    """One recorder and one comparison: archcalc's own build of a spec, given as --model, shows what `verify` of
    the spec shows, line by line (verify adds the peak live activations); both agree with the calculator."""
    spec = Path(__file__).parent / "fixtures" / "branching.json"
    maker = tmp_path / "built.py"
    maker.write_text("from archcalc.core.calc import analyze\nfrom archcalc.core.spec import load\n"
                     "from archcalc.torch.build import build_torch\n\n\n"
                     f"def built():\n    return build_torch(analyze(load({str(spec)!r}), batch=2))\n")
    own = run(["verify", str(spec), "--batch", "2", "--no-rf"])
    given = run(["verify", str(spec), "--batch", "2", "--model", f"{maker}:built"])
    assert own.exit_code == given.exit_code == 0, own.stdout + given.stdout
    assert [line for line in own.stdout.splitlines() if not line.startswith("peak live")] == given.stdout.splitlines()
    # the branch's 3x3 convolution: 4 x (8 x 9) + 4 weights, 4 x 8 x 8 x 72 multiply-adds per image
    assert re.search(r"\n4 +conv2d +4x8x8 +4x8x8 +ok +292 +292 +ok +36,864 +36,864 +ok", given.stdout)  # in a branch of mix
