"""Every command takes every kind of target (archcalc.targets): a zoo name, a spec file, FILE:VARIANT, a torch
callable imported on the fly (with --kwargs) and an ONNX file; bad targets are one line; `check --strict`."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from conftest import cli_runner

from archcalc.cli import main

TESTS = Path(__file__).parent
MODELS = str(TESTS / "handwritten_models.py")
COMMANDS = ["table", "check", "report", "html", "diagram", "verify", "bench", "fit"]

# 3x8x8 -> conv 4, 3x3, pad 1 (3*4*9 + 4 = 112) -> relu -> flatten (256) -> linear 2 (256*2 + 2 = 514): 626
SPEC = {"name": "tiny", "input": [3, 8, 8],
        "layers": [{"name": "conv", "type": "conv2d", "out": 4, "kernel": 3, "padding": 1}, {"type": "relu"},
                   {"type": "flatten"}, {"name": "fc", "type": "linear", "out": 2}],
        "expect": [{"what": "params", "value": 626, "source": "by hand: 112 + 514"}]}
# the variant `wide`: conv 3*8*9 + 8 = 224, global pool, linear 8*2 + 2 = 18: 242 (narrow: 112 + 10 = 122)
FAMILY = {"name": "tinyfam", "input": [3, 8, 8], "params": {"width": 4},
          "layers": [{"name": "conv", "type": "conv2d", "out": "width", "kernel": 3, "padding": 1},
                     {"type": "relu"}, {"name": "pool", "type": "adaptive_avg_pool2d"}, {"type": "flatten"},
                     {"name": "fc", "type": "linear", "out": 2}],
          "variants": {"narrow": {"expect": [{"what": "params", "value": 122, "source": "by hand"}]},
                       "wide": {"params": {"width": 8}, "expect": [{"what": "params", "value": 242, "source": "by hand"}]}}}
# TinyResNet(classes=3) by hand: stem 3*16*9+16 = 448, block 1: 2 x (16*16*9 + 32) = 4,672, block 2:
# 16*32*9 + 64 + 32*32*9 + 64 + (16*32 + 64) = 14,528, fc 32*3 + 3 = 99
TINY_RESNET = 448 + 4_672 + 14_528 + 99


class Kind:
    """One kind of target: the arguments naming it, its network's name, parameters and input."""

    def __init__(self, args: list[str], name: str, params: int, input_shape: list[int]):
        self.args, self.name, self.params, self.input = args, name, params, input_shape


@pytest.fixture(scope="module")
def kinds(tmp_path_factory) -> dict[str, Kind]:
    folder = tmp_path_factory.mktemp("targets")
    (folder / "tiny.json").write_text(json.dumps(SPEC))
    (folder / "tinyfam.json").write_text(json.dumps(FAMILY))
    # LeNet-5 with full C3 and an FC output: 156 + 2,416 + 48,120 (C5) + 10,164 (F6) + 850 = 61,706
    found = {"zoo name": Kind(["lenet5"], "lenet5", 61_706, [1, 32, 32]),
             "spec file": Kind([str(folder / "tiny.json")], "tiny", 626, [3, 8, 8]),
             "FILE:VARIANT": Kind([f"{folder / 'tinyfam.json'}:wide"], "wide", 242, [3, 8, 8])}
    try:
        import onnx  # noqa: F401  (torch's exporter writes with it)
        import torch
    except ImportError:
        return found
    found["torch:"] = Kind([f"torch:{MODELS}:TinyResNet", "--input", "3x16x16", "--kwargs", '{"classes": 3}'],
                           "TinyResNet", TINY_RESNET, [3, 16, 16])
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 8 * 8, 2)).eval()  # SPEC as a torch model: 626 parameters
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.randn(1, 3, 8, 8), str(folder / "small.onnx"), dynamo=False)
    found[".onnx"] = Kind([str(folder / "small.onnx")], "small", 626, [3, 8, 8])
    return found


KINDS = ["zoo name", "spec file", "FILE:VARIANT", "torch:", ".onnx"]


def run(args: list[str]):
    return cli_runner().invoke(main, args)


def needs_torch(kind: str) -> None:
    if kind in ("torch:", ".onnx"):
        pytest.importorskip("torch")
        pytest.importorskip("onnx")


def command_args(command: str, target: list[str], folder: Path) -> list[str]:
    """The command line of `command` on `target`, with what the command needs besides and kept cheap."""
    extra = {"report": ["--out", str(folder / "report")], "html": ["-o", str(folder / "page.html")],
             "diagram": ["-o", "-"], "verify": ["--no-rf"], "fit": ["--memory", "1GiB"],
             "bench": ["--device", "cpu", "--iters", "1", "--warmup-iters", "0", "--warmup-seconds", "0",
                       "--matmul-size", "16", "--format", "json"],
             "table": ["--format", "json"]}.get(command, [])
    return [command, *target, *extra]


@pytest.mark.parametrize("kind", KINDS)
def test_every_command_takes_every_kind_of_target(kind, kinds, tmp_path):
    needs_torch(kind)
    target = kinds[kind]
    for command in COMMANDS:
        if command in ("verify", "bench"):
            pytest.importorskip("torch")
            pytest.importorskip("fvcore")
        result = run(command_args(command, target.args, tmp_path))
        assert result.exit_code == 0, (command, result.output)
        out = result.stdout
        if command == "table":
            table = json.loads(out)
            assert (table["name"], table["input"], table["totals"]["params"]) == (target.name, target.input, target.params)
        elif command == "check":  # its published or imported parameter count
            assert f"{target.params:,}" in run([*command_args(command, target.args, tmp_path), "-v"]).stdout
        elif command == "report":
            assert f"{target.params:,}" in (tmp_path / "report" / "networks" / f"{target.name}.md").read_text()
        elif command == "html":
            assert target.name in (tmp_path / "page.html").read_text()
        elif command == "diagram":
            assert "<svg" in out and out.rstrip().endswith("</svg>")
        elif command == "verify":
            assert f"{target.params:,}" in out or f"{target.params}" in out
        elif command == "bench":
            (measured,) = json.loads(out)["results"]
            assert (measured["network"], measured["input"]) == (target.name, target.input)
        elif command == "fit":
            assert out.split()[0] != "" and target.name in out


@pytest.mark.parametrize("command", COMMANDS)
def test_the_help_of_every_command_describes_every_target(command):
    result = run([command, "--help"])
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    for form in ("TARGET, in every command that takes one:", "NAME a network of the zoo", "FILE.json a spec file",
                 "FILE.json:VARIANT one network of a family file", "torch:MODULE:CALLABLE", "torch:FILE.py:CALLABLE",
                 "FILE.onnx an ONNX model", "--kwargs JSON"):
        assert form in text, (command, form)


# ---- bad targets: one line, exit 2, "did you mean" where it applies -----------------------------------------

@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("target, message", [
    ("resnet5", "unknown network 'resnet5' (did you mean 'resnet50'?)"),
    (str(TESTS / "fixtures" / "mpl.json"), f"no such file (did you mean {str(TESTS / 'fixtures' / 'mlp.json')!r}?)"),
    (str(TESTS / "fixtures" / "features.json") + ":tiny_aa", "no variant 'tiny_aa' (did you mean 'tiny_a'?)"),
    (f"{MODELS}:TinyResNet", f"a Python file is a model through torch: (did you mean 'torch:{MODELS}:TinyResNet'?)"),
    (f"torch:{MODELS}", f"'torch:{MODELS}': expected torch:MODULE:CALLABLE or torch:path/to/file.py:CALLABLE"),
])
def test_a_bad_target_is_one_line_exit_2_in_every_command(command, target, message, tmp_path):
    result = run(command_args(command, [target], tmp_path))
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert result.stdout == ""


@pytest.mark.parametrize("args, message", [
    ([f"torch:{MODELS}:TinyResNett", "--input", "3x8x8"], f"{MODELS} has no 'TinyResNett' (did you mean 'TinyResNet'?)"),
    ([f"torch:{TESTS / 'handwritten_model.py'}:TinyResNet", "--input", "3x8x8"],
     f"no such file {TESTS / 'handwritten_model.py'} (did you mean {MODELS!r}?)"),
    ([str(TESTS / "fixtures" / "mlp.onnx")], "no such file"),
    ([str(TESTS / "fixtures" / "mlp.json"), "--kwargs", '{"classes": 3}'],
     "--kwargs gives the callable of a torch:MODULE:CALLABLE target its keyword arguments: no target here is one"),
    ([f"torch:{MODELS}:TinyResNet", "--input", "3x8x8", "--kwargs", "[3]"], "expected a JSON object"),
])
def test_bad_torch_and_onnx_targets_are_one_line(args, message):
    pytest.importorskip("torch")
    result = run(["table", *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and message in lines[0], lines


def test_check_and_report_take_input_only_for_an_import():
    for command in (["check", "lenet5"], ["report", "lenet5"]):
        result = run([*command, "--input", "1x28x28"])
        assert result.exit_code == 2 and "--input is the size a torch: or .onnx" in result.stderr, result.output


# ---- check --strict: rows an import measured --------------------------------------------------------------

UNSUPPORTED = f"torch:{MODELS}:Unsupported"  # conv 3->4, 3x3 on 3x8x8, then an InstanceNorm2d on its 4x6x6


def test_check_lists_measured_rows_and_passes_them_without_strict():
    pytest.importorskip("torch")
    result = run(["check", UNSUPPORTED, "--input", "3x8x8"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.stdout.splitlines() if line.startswith("measured "))
    assert "1 row measured by the import at 3x8x8" in line and "norm (InstanceNorm2d)" in line
    assert "--strict fails them" in line
    record = json.loads(run(["check", UNSUPPORTED, "--input", "3x8x8", "--format", "json"]).stdout)
    # the norm's input: (8 - 3 + 1) = 6 pixels a side, 4 channels
    assert record["measured"] == [{"network": "Unsupported", "path": "norm", "op": "InstanceNorm2d", "at": [4, 6, 6]}]
    assert record["failed"] == 0


def test_check_strict_fails_measured_rows_of_an_import_and_of_a_spec_naming_them(tmp_path):
    pytest.importorskip("torch")
    strict = run(["check", UNSUPPORTED, "--input", "3x8x8", "--strict"])
    assert strict.exit_code == 1, strict.output
    assert strict.stdout.startswith("MEASURED") and "norm (InstanceNorm2d)" in strict.stdout.splitlines()[0]
    spec = tmp_path / "unsupported.json"
    assert run(["import", "torch", UNSUPPORTED[len("torch:"):], "--input", "3x8x8", "-o", str(spec)]).exit_code == 0
    assert run(["check", str(spec)]).exit_code == 0
    checked = run(["check", str(spec), "--strict", "--format", "json"])
    assert checked.exit_code == 1
    (failed,) = [f for f in json.loads(checked.stdout)["figures"] if not f["ok"]]
    assert failed["verdict"] == "MEASURED" and [row["path"] for row in failed["rows"]] == ["norm"]
    # the import refuses the same op under --strict
    refused = run(["import", "torch", UNSUPPORTED[len("torch:"):], "--input", "3x8x8", "--strict"])
    assert refused.exit_code == 2 and "InstanceNorm2d has no archcalc layer type" in refused.stderr


def test_check_strict_passes_a_spec_without_measured_rows(kinds):
    result = run(["check", *kinds["spec file"].args, "--strict"])
    assert result.exit_code == 0 and "measured" not in result.stdout.lower(), result.output


# ---- a re-import keeps the budgets the user added ------------------------------------------------------------

def test_a_reimport_of_an_onnx_file_keeps_the_budgets(kinds, tmp_path):
    needs_torch(".onnx")
    onnx_file = kinds[".onnx"].args[0]
    spec = tmp_path / "small.json"
    assert run(["import", "onnx", onnx_file, "-o", str(spec)]).exit_code == 0
    document = json.loads(spec.read_text())
    budget = {"what": "params", "max": 700, "reason": "the user's budget"}
    document["expect"].append(budget)
    spec.write_text(json.dumps(document))
    again = run(["import", "onnx", onnx_file, "-o", str(spec)])
    assert again.exit_code == 0 and "kept the 1 budget(s)" in again.stderr and "params max 700" in again.stderr
    assert budget in json.loads(spec.read_text())["expect"]
    checked = run(["check", "-v", str(spec)])
    assert checked.exit_code == 0 and "params budget max 700, computed 626" in checked.stdout, checked.output
