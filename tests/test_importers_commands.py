"""The import commands: `archcalc import torch|onnx`, `table model.onnx`, `table torch:...`, and their errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import cli_runner
from jsonschema import Draft202012Validator

torch = pytest.importorskip("torch")
pytest.importorskip("fvcore")

from archcalc.cli import main  # noqa: E402
from archcalc.core.spec import load  # noqa: E402

TESTS = Path(__file__).parent
MODELS = str(TESTS / "handwritten_models.py")
SCHEMA = json.loads((TESTS.parent / "specs" / "schema.json").read_text())


def run(args: list[str]):
    return cli_runner().invoke(main, args)


def test_import_torch_writes_a_spec_that_loads_validates_and_checks(tmp_path):
    out = tmp_path / "tiny.json"
    result = run(["import", "torch", f"{MODELS}:TinyResNet", "--input", "3x32x32", "--kwargs", '{"classes": 7}',
                  "-o", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert list(Draft202012Validator(SCHEMA).iter_errors(document)) == []
    network = load(str(out))
    assert network.input == (3, 32, 32)
    # 7 classes: the fc layer is 32 * 7 + 7; the whole model by hand:
    # stem 3*16*9+16, block 1: 2 x (16*16*9 + 32), block 2: 16*32*9 + 64 + 32*32*9 + 64 + (16*32 + 64), fc 231
    params = 448 + 2 * (2304 + 32) + (4608 + 64 + 9216 + 64 + 512 + 64) + 231
    assert {"what": "params", "value": params, "source": f"imported from {MODELS}:TinyResNet at 3x32x32"} \
        in document["expect"]
    assert run(["check", str(out)]).exit_code == 0
    # the spec edited out of step with the model: check fails
    edited = out.read_text().replace('"out": 7', '"out": 8')
    out.write_text(edited)
    checked = run(["check", str(out)])
    assert checked.exit_code == 1 and "MISS" in checked.stdout


def test_import_torch_by_module_name(tmp_path, monkeypatch):
    monkeypatch.chdir(TESTS)  # `handwritten_models` is importable from the current folder
    result = run(["import", "torch", "handwritten_models:tiny_resnet", "--input", "3x16x16"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["input"] == [3, 16, 16]


def test_table_of_a_torch_target():
    result = run(["table", f"torch:{MODELS}:UNet", "--input", "3x32x32", "--format", "json"])
    assert result.exit_code == 0, result.output
    table = json.loads(result.stdout)
    # UNet(width 8): enc1 840 + ... as fvcore's model.parameters() counts them
    assert table["totals"]["params"] == sum(p.numel() for p in __import__("handwritten_models").UNet().parameters())


def test_import_onnx_and_table_of_the_file(tmp_path):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 8 * 8, 2)).eval()
    path = tmp_path / "small.onnx"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.randn(1, 3, 8, 8), str(path), dynamo=False)
    out = tmp_path / "small.json"
    assert run(["import", "onnx", str(path), "-o", str(out)]).exit_code == 0
    assert load(str(out)).input == (3, 8, 8)
    table = run(["table", str(path), "--format", "json"])
    assert json.loads(table.stdout)["totals"]["params"] == 3 * 4 * 9 + 4 + 256 * 2 + 2


ERRORS = [
    (["import", "torch", f"{MODELS}:broken", "--input", "3x8x8"],
     f"{MODELS}:broken: calling it raised RuntimeError: no weights here"),
    (["import", "torch", f"{MODELS}:Unsupported", "--input", "3x8x8", "--strict"],
     "module norm (InstanceNorm2d): torch module InstanceNorm2d has no archcalc layer type"),
    (["import", "torch", f"{MODELS}:StrayPermute", "--input", "3x8x8"],
     "fc (linear, $.layers[2]): linear needs a flat vector, a token sequence LxD, a channels-last grid"),
    (["import", "torch", f"{MODELS}:NormOverTheImage", "--input", "3x8x8", "--strict"],
     "module norm (LayerNorm): torch module LayerNorm with these attributes has no archcalc layer type"),
    (["import", "torch", f"{MODELS}:TinyResNet", "--input", "3x32"], "import torch needs the input size as --input CxHxW"),
    (["import", "torch", f"{MODELS}:TinyResNet", "--input", "three"], "'--input': 'three': expected CxHxW"),
    (["import", "torch", f"{MODELS}:TinyResNet", "--input", "1x32x32"], "the model fails on one image of 1x32x32"),
    (["import", "torch", f"{MODELS}:NoSuchThing", "--input", "3x8x8"], f"{MODELS} has no 'NoSuchThing'"),
    (["import", "torch", f"{MODELS}:TinyResNett", "--input", "3x8x8"],
     f"{MODELS} has no 'TinyResNett' (did you mean 'TinyResNet'?)"),
    (["import", "torch", "no_such_package.models:net", "--input", "3x8x8"], "cannot load it: ModuleNotFoundError"),
    (["import", "torch", f"{MODELS}:TinyResNet", "--input", "3x8x8", "--kwargs", "[1]"], "expected a JSON object"),
    (["import", "onnx", str(TESTS / "fixtures" / "branching.json")], "not an ONNX model"),
    # code that reads values runs on real data: the input alone is 3 x 10^10 values (120 GB), refused before
    # torch allocates it (a model that runs on meta tensors imports at any size: test_importers_torch_values)
    (["import", "torch", f"{MODELS}:ReadsValues", "--input", "3x100000x100000"],
     "import would allocate 111.8 GiB (the input of one image of 3x100000x100000), over the 8.00 GiB it allows"),
    (["import", "torch", f"{MODELS}:TinyResNet", "--input", "3x8x8", "--kwargs", '{"a": ' + "[" * 30000 + "]" * 30000 + "}"],
     "JSON nests deeper than the budget of 100 levels (Budget.depth)"),
    (["import", "torch", f"{MODELS}:TinyResNet", "--input", "3x8x8", "--kwargs", '{"classes": NaN}'],
     "$.classes: NaN is not a number JSON allows"),
    (["import", "torch", f"{MODELS}:exits", "--input", "3x8x8"], f"{MODELS}:exits: the model's code called sys.exit(3)"),
    (["import", "torch", f"{MODELS}:ExitsInForward", "--input", "3x8x8"],
     f"{MODELS}:ExitsInForward: the model's code called sys.exit(4)"),
    (["table", f"torch:{MODELS}:ExitsInForward", "--input", "3x8x8"],
     f"{MODELS}:ExitsInForward: the model's code called sys.exit(4)"),
    (["import", "torch", f"{MODELS}:TiedConvs", "--input", "4x8x8", "--kwargs", '{"tie_bias": false}'],
     "module b (Conv2d): shares some of its parameters with a; archcalc shares a layer's parameters whole"),
]


@pytest.mark.parametrize("args, message", ERRORS, ids=[e[1][:40] for e in ERRORS])
def test_bad_input_is_one_line_exit_2_and_no_file(args, message, tmp_path):
    out = tmp_path / "out.json"
    result = run([*args, "-o", str(out)] if args[0] == "import" else args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("model, shape, shares", [
    # a module called again keeps its name (torch's one name for it), with `shares` of its own path
    ("shared_conv", "3x8x8", {"0": "0"}),  # Sequential(conv, ReLU(), conv): one module called twice
    ("TiedConvs", "4x8x8", {"b": "a", "bn": "bn"}),  # b's weight and bias are a's; one batch norm used twice
    ("FunctionalTwice", "4x8x8", {"conv2d": "conv2d"}),  # F.conv2d(x, self.w, self.b) twice
])
def test_shared_weights_count_once_and_the_spec_checks(model, shape, shares, tmp_path):
    import handwritten_models

    out = tmp_path / "shared.json"
    assert run(["import", "torch", f"{MODELS}:{model}", "--input", shape, "-o", str(out)]).exit_code == 0
    document = json.loads(out.read_text())
    assert {layer["name"]: layer["shares"] for layer in document["layers"] if "shares" in layer} == shares
    assert list(Draft202012Validator(SCHEMA).iter_errors(document)) == []
    checked = run(["check", str(out)])
    assert checked.exit_code == 0, checked.output
    torch_params = sum(p.numel() for p in getattr(handwritten_models, model)().parameters())  # shared ones once
    assert torch_params == {"shared_conv": 3 * 3 * 9 + 3, "TiedConvs": 4 * 4 * 9 + 4 + 2 * 4,
                            "FunctionalTwice": 4 * 4 * 9 + 4}[model]
    table = json.loads(run(["table", str(out), "--format", "json"]).stdout)
    assert table["totals"]["params"] == torch_params
    # the spec built by archcalc ties the modules as the model does: verify agrees row by row, and with the model
    assert run(["verify", str(out), "--no-rf"]).exit_code == 0
    assert run(["verify", str(out), "--no-rf", "--model", f"{MODELS}:{model}"]).exit_code == 0


# ---- an imported spec in CI: its model changing, its budgets kept ---------------------------------------

def test_check_fails_an_imported_spec_whose_model_changed_and_a_reimport_keeps_the_budgets(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = tmp_path / "tiny.py"
    model.write_text("import torch.nn as nn\n\ndef net():\n    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())\n")
    assert run(["import", "torch", "tiny.py:net", "--input", "3x16x16", "-o", "spec.json"]).exit_code == 0
    spec = json.loads((tmp_path / "spec.json").read_text())
    spec["expect"].append({"what": "params", "max": 1_000, "reason": "a budget of the user's"})
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert run(["check", "spec.json"]).exit_code == 0
    # the model gains a layer: the spec's figures are the old model's, and check says so
    model.write_text("import torch.nn as nn\n\ndef net():\n    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), "
                     "nn.Conv2d(8, 8, 3))\n")
    changed = run(["check", "spec.json"])
    assert changed.exit_code == 1
    assert changed.stdout.startswith("CHANGED") and "archcalc import torch tiny.py:net --input 3x16x16 -o spec.json" \
        in changed.stdout
    again = run(["import", "torch", "tiny.py:net", "--input", "3x16x16", "-o", "spec.json"])
    assert again.exit_code == 0 and "kept the 1 budget(s)" in again.stderr
    expect = json.loads((tmp_path / "spec.json").read_text())["expect"]
    assert {"what": "params", "max": 1_000, "reason": "a budget of the user's"} in expect
    budget = run(["check", "-v", "spec.json"])
    assert budget.exit_code == 0  # 3*8*9+8 + 8*8*9+8 = 808 parameters, within the 1,000 kept
    assert "params budget max 1,000, computed 808" in budget.stdout
