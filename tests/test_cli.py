"""The `archcalc` command: table formats, options, list, check, schema, and the installed script."""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from conftest import cli_runner
from hostile_text import HOSTILE, controls

from archcalc.cli import main

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
BRANCHING = str(FIXTURES / "branching.json")

VGG16_PARAMS = 138_357_544  # torchvision VGG16_Weights.IMAGENET1K_V1.meta["num_params"]


def vgg16_macs(size: int = 224) -> int:
    """Conv MACs Cout*H*W*Cin*9 per 3x3 conv at padding 1, then the three fully connected layers."""
    stages = [[64, 64], [128, 128], [256] * 3, [512] * 3, [512] * 3]
    macs, cin = 0, 3
    for k, widths in enumerate(stages):
        side = size >> k
        for cout in widths:
            macs += cout * side * side * cin * 9
            cin = cout
    return macs + 512 * 7 * 7 * 4096 + 4096 * 4096 + 4096 * 1000


def ok(args: list[str]) -> str:
    result = cli_runner().invoke(main, args)
    assert result.exit_code == 0, (result.output, result.exception)
    assert result.stderr == ""
    return result.stdout


def table_json(*args: str) -> dict:
    return json.loads(ok(["table", *args, "--format", "json"]))


def test_vgg16_macs_by_hand_is_the_published_figure():
    assert round(vgg16_macs() / 1e9, 2) == 15.47  # torchvision _ops


def test_json():
    doc = table_json("vgg16")
    assert doc["name"] == "vgg16"
    assert doc["input"] == [3, 224, 224]
    assert doc["output_shape"] == [1000]
    assert doc["totals"]["params"] == VGG16_PARAMS
    assert doc["totals"]["macs_per_image"] == vgg16_macs()
    assert isinstance(doc["totals"]["params"], int)
    first = doc["layers"][1]
    assert first["path"].startswith("features.") and first["type"] == "conv2d"
    assert first["output_shape"] == [64, 224, 224]
    assert first["params"] == 3 * 64 * 9 + 64
    assert first["macs_per_image"] == 64 * 224 * 224 * 27
    fc6 = next(layer for layer in doc["layers"] if layer["type"] == "linear")
    assert fc6["params"] == 25_088 * 4096 + 4096
    assert sum(layer["params"] for layer in doc["layers"]) == VGG16_PARAMS


def test_text_has_thousands_separators():
    out = ok(["table", "vgg16"])
    assert "Total params: 138,357,544" in out
    assert "102,764,545" not in out and "102,764,544" in out  # fc6
    assert "MACs (conv, linear, matmul; per image): 15,470,264,320" in out


def test_markdown():
    out = ok(["table", "vgg16", "--format", "markdown"])
    assert out.startswith("### vgg16: ")
    assert "| Layer" in out and "|--" in out.replace(":", "-").replace(" ", "")
    assert "102,764,544" in out
    assert "- Total params: 138,357,544" in out


def test_csv_keeps_exact_integers():
    rows = list(csv.DictReader(io.StringIO(ok(["table", "vgg16", "--format", "csv"]))))
    assert next(row for row in rows if row["type"] == "linear")["params"] == "102764544"
    assert next(row for row in rows if row["type"] == "conv2d")["output_shape"] == "64x224x224"
    assert sum(int(row["params"]) for row in rows) == VGG16_PARAMS


def test_input_forms():
    # At 32x32 the features end at 1x1 and the adaptive pool copies it up to 7x7.
    for text in ("3x32x32", "32x32", "32"):
        doc = table_json("vgg16", "--input", text)
        assert doc["input"] == [3, 32, 32]
        assert doc["totals"]["macs_per_image"] == vgg16_macs(32)
    one_channel = cli_runner().invoke(main, ["table", "vgg16", "--input", "1x64x64", "--format", "json"])
    assert json.loads(one_channel.stdout)["layers"][1]["params"] == 1 * 64 * 9 + 64
    assert table_json("vgg16", "--input", "3×32×32")["input"] == [3, 32, 32]


def test_batch_and_dtype():
    one = table_json(BRANCHING)
    doc = table_json(BRANCHING, "--batch", "4", "--dtype", "fp16")
    assert doc["totals"]["activations_per_image"] == 2_842
    [config] = doc["configurations"]
    assert (config["batch"], config["dtype"]) == (4, "fp16")
    assert config["activations_per_batch"] == 2_842 * 4
    assert config["activation_bytes_per_batch"] == 2_842 * 4 * 2
    assert config["weights_bytes"] == (554 + 16) * 2
    assert config["macs_per_batch"] == 4 * doc["totals"]["macs_per_image"]
    assert doc["totals"]["params"] == one["totals"]["params"] == 554
    assert one["configurations"][0]["activation_bytes_per_batch"] == 2_842 * 4


def test_bad_option_values_exit_2():
    assert cli_runner().invoke(main, ["table", "vgg16", "--batch", "0"]).exit_code == 2
    assert cli_runner().invoke(main, ["table", "vgg16", "--dtype", "fp64"]).exit_code == 2
    assert cli_runner().invoke(main, ["table", "vgg16", "--depth", "0"]).exit_code == 2


def test_depth():
    doc = table_json(BRANCHING, "--depth", "1")
    # a merge's branches have no group: its nodes (3, 4, 5) sit beside the concat, whose row is its own
    assert [layer["path"] for layer in doc["layers"]] == ["input", "0", "1", "2", "3", "4", "5", "mix", "7", "8", "fc"]
    mix = doc["layers"][7]
    assert mix["type"] == "concat" and mix["params"] == 0 and doc["layers"][5]["params"] == 292  # `4`, the 3x3 conv
    text = ok(["table", "efficientnet_b0", "--depth", "2"])
    paths = [line.split()[0] for line in text.splitlines() if line.startswith("features.")]
    assert "features.7" in paths and not [p for p in paths if p.startswith("features.7.")]


def test_keras_convention_counts_running_statistics():
    doc = table_json(BRANCHING, "--convention", "keras")
    assert doc["totals"]["params"] == 554 + 16
    assert doc["totals"]["trainable_params"] == 554


def test_warnings_go_to_stderr_and_json_keeps_them():
    result = cli_runner().invoke(main, ["table", str(FIXTURES / "alexnet_conv1.json")])
    assert result.exit_code == 0
    assert result.stderr.startswith("warning: conv1: conv2d: H and W: (224 + 0 - 11)/4 + 1 = 54.25")
    assert "warning" not in result.stdout
    doc = json.loads(cli_runner().invoke(main, ["table", str(FIXTURES / "alexnet_conv1.json"), "--format", "json"]).stdout)
    assert doc["warnings"][0]["path"] == "conv1"


def test_list():
    out = ok(["list"])
    line = next(line for line in out.splitlines() if line.startswith("vgg16 "))
    assert "138,357,544" in line and "15.47" in line and "3x224x224" in line


def test_check_zoo_passes():
    result = cli_runner().invoke(main, ["check"])
    assert result.exit_code == 0, result.stdout
    assert " 0 failed" in result.stdout


def zoo_figures() -> int:
    """The `expect` entries of the zoo's files: a family's own hold for each of its variants, then each variant's."""
    count = 0
    for path in (ROOT / "specs").glob("*.json"):
        if path.name == "schema.json":
            continue
        document = json.loads(path.read_text(encoding="utf-8"))
        family = len(document.get("expect", []))
        variants = document.get("variants")
        count += sum(family + len(v.get("expect", [])) for v in variants.values()) if variants else family
    return count


def lecture_claim_ids() -> list[str]:
    """The claims of archcalc/report/claims.json, a claim its sources word differently once per wording."""
    document = json.loads((ROOT / "archcalc" / "report" / "claims.json").read_text(encoding="utf-8"))
    return [w["id"] for raw in document["claims"] for w in raw.get("wordings", [raw])]


def test_check_without_claims_checks_the_zoo_figures_only():
    result = cli_runner().invoke(main, ["check", "--format", "json"])
    assert result.exit_code == 0, result.stdout
    figures = json.loads(result.stdout)["figures"]
    assert len(figures) == zoo_figures() > 100
    assert all("network" in f and "claim" not in f for f in figures)
    lines = cli_runner().invoke(main, ["check", "-v"]).stdout.splitlines()
    assert not [line for line in lines if line.split()[1] == "claim"]
    assert lines[-1].startswith(f"{zoo_figures()} checked: ")


def test_check_of_the_specs_reads_nothing_of_the_lecture_claims():
    code = ("import sys\nfrom archcalc.cli import main\ntry:\n    main(['check'], standalone_mode=False)\n"
            "except SystemExit as done:\n    assert done.code == 0\nprint('archcalc.report.claims' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "False"


def test_check_claims_adds_exactly_the_lecture_claims():
    result = cli_runner().invoke(main, ["check", "--claims", "--format", "json"])
    assert result.exit_code == 0, result.stdout
    figures = json.loads(result.stdout)["figures"]
    assert len([f for f in figures if "network" in f]) == zoo_figures()
    assert sorted(f["claim"] for f in figures if "claim" in f) == sorted(lecture_claim_ids())
    assert len(figures) == zoo_figures() + len(lecture_claim_ids())
    lines = cli_runner().invoke(main, ["check", "--claims", "-v"]).stdout.splitlines()
    assert len([line for line in lines if line.split()[1] == "claim"]) == len(lecture_claim_ids())
    assert lines[-1].startswith(f"{zoo_figures() + len(lecture_claim_ids())} checked: ")


def write(tmp_path: Path, expect: list[dict], out: int = 4) -> str:
    spec = tmp_path / "net.json"
    spec.write_text(json.dumps({
        "input": [3, 8, 8],
        "layers": [{"name": "conv", "type": "conv2d", "out": out, "kernel": 3}],
        "expect": expect,
    }))
    return str(spec)


def test_check_miss_exits_1_with_claim_computed_and_source(tmp_path):
    # 4*3*9 + 4 = 112 parameters; the claim says 113.
    spec = write(tmp_path, [{"what": "params", "value": 113, "source": "Made-up paper, Table 1"}])
    result = cli_runner().invoke(main, ["check", spec])
    assert result.exit_code == 1
    assert "MISS" in result.stdout
    assert "params claimed 113, computed 112 [Made-up paper, Table 1]" in result.stdout
    assert "1 checked: 0 ok, 0 known-wrong, 1 failed" in result.stdout


def test_check_rounded_claims(tmp_path):
    # MACs 4*6*6*27 = 3,888 = 3.9 K when written with one decimal
    spec = write(tmp_path, [{"what": "macs", "value": 3.9, "unit": "K", "source": "rounded"},
                            {"what": "output_shape", "value": [4, 6, 6], "source": "by hand"}])
    result = cli_runner().invoke(main, ["check", spec])
    assert result.exit_code == 0, result.stdout
    assert "2 checked: 2 ok, 0 known-wrong, 0 failed" in result.stdout


def test_check_claims_written_to_significant_digits(tmp_path):
    # conv 3x3, 3 -> 40 channels on 8x8: 40*6*6*27 = 38,880 MACs, 40*27 + 40 = 1,120 params
    spec = write(tmp_path, [{"what": "macs", "value": 40, "unit": "K", "significant": 1, "source": "round"},
                            {"what": "params", "value": 1.1, "unit": "K", "significant": 2, "source": "round"},
                            {"what": "macs", "value": 39, "unit": "K", "significant": 1, "source": "too fine"}], out=40)
    result = cli_runner().invoke(main, ["check", spec])
    assert result.exit_code == 1, result.stdout
    assert "macs claimed 39 K, computed 40 K (38,880)" in result.stdout
    assert "3 checked: 2 ok, 0 known-wrong, 1 failed" in result.stdout


def test_check_known_wrong_figure_passes(tmp_path):
    spec = write(tmp_path, [{"what": "params", "value": 120, "source": "A slide", "wrong": True,
                             "note": "counts the bias twice"}])
    result = cli_runner().invoke(main, ["check", spec, "-v"])
    assert result.exit_code == 0
    assert result.stdout.startswith("known-wrong ") and "claimed 120, computed 112" in result.stdout


def test_check_wrong_mark_on_a_correct_figure_fails(tmp_path):
    spec = write(tmp_path, [{"what": "params", "value": 112, "source": "by hand", "wrong": True}])
    result = cli_runner().invoke(main, ["check", spec])
    assert result.exit_code == 1
    assert result.stdout.startswith("MATCHES ")


def test_schema_command_prints_json():
    doc = json.loads(ok(["schema"]))
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "layer_conv2d" in doc["$defs"]


def test_installed_console_script_from_another_directory(tmp_path):
    script = shutil.which("archcalc") or str(Path(sys.executable).parent / "archcalc")
    assert os.path.exists(script), "the archcalc console script is not installed"
    result = subprocess.run([script, "table", "vgg16", "--format", "json"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["totals"]["params"] == VGG16_PARAMS
    bad = subprocess.run([script, "table", "vgg16x"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == ["archcalc: unknown network 'vgg16x' (did you mean 'vgg16'?); `archcalc list` shows the zoo"]


def test_the_program_ends_at_once_with_its_whole_output_and_exit_code(tmp_path):
    """`entry` ends the process without the interpreter's teardown: what was written, and the code, still arrive."""
    def program(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", "from archcalc.cli import entry; entry()", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)

    listed = program("list")
    assert listed.returncode == 0 and listed.stdout == ok(["list"])
    csv_text = program("table", "densenet201", "--format", "csv")  # ~80 KB: many buffers' worth
    assert csv_text.returncode == 0 and csv_text.stdout == ok(["table", "densenet201", "--format", "csv"])
    missed = program("check", write(tmp_path, [{"what": "params", "value": 113, "source": "Made-up"}]))
    assert missed.returncode == 1 and "MISS" in missed.stdout
    bad = program("table", "vgg16x")
    assert bad.returncode == 2 and bad.stdout == "" and bad.stderr.startswith("archcalc: unknown network 'vgg16x'")


def test_input_n_on_a_flat_spec():
    doc = table_json(str(FIXTURES / "mlp.json"), "--input", "100")
    assert doc["input"] == [100]
    assert doc["totals"]["params"] == 100 * 100 + 100 + 100 * 10 + 10  # by hand
    bad = cli_runner().invoke(main, ["table", str(FIXTURES / "mlp.json"), "--input", "3x28x28"])
    assert bad.exit_code == 2 and "does not fit the spec's input 784" in bad.stderr


# ---- the terminal: fitting, units, stdout and stderr --------------------------------------------

def on_terminal(monkeypatch, columns: int, *args: str):
    """`archcalc table ...` as a terminal of `columns` columns would show it (COLUMNS, stdout a TTY)."""
    import archcalc.commands.common

    monkeypatch.setattr(archcalc.commands.common, "stdout_isatty", lambda: True)
    result = cli_runner().invoke(main, ["table", *args], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def numbers_whole(line: str, figures: list[int]) -> bool:
    return all(f"{n:,}" in line for n in figures)


@pytest.mark.parametrize("name, columns", [("vgg16", 80), ("efficientnet_b0", 80), ("efficientnet_b0", 100),
                                           ("resnet50", 72)])
def test_table_fits_the_terminal(monkeypatch, name, columns):
    result = on_terminal(monkeypatch, columns, name)
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= columns, max(lines, key=len)
    assert "--wide" in result.stderr and "--wide" not in result.stdout
    assert len(result.stderr.splitlines()[0]) <= 100  # one line


def test_vgg16_at_80_columns_keeps_every_number_whole(monkeypatch):
    # features.0, the first convolution: 3*64*9 + 64 = 1,792 params, 64*224*224*27 = 86,704,128 MACs
    result = on_terminal(monkeypatch, 80, "vgg16")
    conv1 = next(line for line in result.stdout.splitlines() if line.startswith("features.0 "))
    assert numbers_whole(conv1, [1_792, 86_704_128])
    fc6 = next(line for line in result.stdout.splitlines() if "102,764,544" in line)
    assert numbers_whole(fc6, [102_764_544, 25_088 * 4096])


def test_paths_keep_their_leaf(monkeypatch):
    result = on_terminal(monkeypatch, 80, "efficientnet_b0")
    assert "paths shortened" in result.stderr
    shortened = [line.split()[0] for line in result.stdout.splitlines() if "…" in line]
    assert shortened and all(not path.endswith("…") for path in shortened)
    assert any(path.endswith(".scale_activation") for path in shortened)


def test_wide_and_piped_output_keep_every_column(monkeypatch):
    piped = cli_runner().invoke(main, ["table", "efficientnet_b0"], env={"COLUMNS": "80"})
    wide = on_terminal(monkeypatch, 80, "efficientnet_b0", "--wide")
    for result in (wide, piped):
        header = next(line for line in result.stdout.splitlines() if line.startswith("Layer"))
        assert header.split() == ["Layer", "Type", "Output", "Params", "MACs", "Activations", "RF"]
        assert "features.1.0.block.0.0" in result.stdout
        assert "--wide" not in result.stderr
    assert max(len(line) for line in piped.stdout.splitlines()) > 80


def test_scaled_units_in_the_totals():
    out = ok(["table", "lenet5"])
    assert "416,520 (416.5 K)" in out and "0.000 G" not in out  # 416,520 MACs by LeCun's layer sizes
    assert "241.0 KiB" in out  # 61,706 fp32 weights = 246,824 bytes
    big = ok(["table", "vgg16", "--batch", "32"])
    # VGG16's activations, input included: 15,262,696 values x 32 x 4 bytes = 1.82 GiB
    assert "1.82 GiB" in big and "1,862" not in big


def test_markdown_right_aligns_numbers():
    out = ok(["table", "lenet5", "--format", "markdown"])
    separator = next(line for line in out.splitlines() if line.startswith("|:--"))
    cells = separator.strip("|").split("|")
    assert cells[0].startswith(":") and not cells[0].endswith(":")  # Layer
    assert all(cell.endswith(":") for cell in cells[2:])  # Output, Params, MACs, Activations, RF


def test_stdout_holds_the_table_alone(tmp_path):
    # five stride-2 3x3/5x5 halvings of an even size: (N + 2P - K)/2 + 1 is not whole, but only padding goes unused
    result = cli_runner().invoke(main, ["table", "efficientnet_b0"])
    assert result.exit_code == 0 and result.stderr == ""
    noted = cli_runner().invoke(main, ["table", "efficientnet_b0", "--all-warnings"])
    assert "note" not in noted.stdout and noted.stderr.count("note:") == 5
    doc = json.loads(cli_runner().invoke(main, ["table", "efficientnet_b0", "--format", "json"]).stdout)
    assert [w["kind"] for w in doc["warnings"]] == ["padding_unused"] * 5


# ---- one vocabulary: --out, lists, help --------------------------------------------------------

def test_table_out_writes_whole_files_in_the_suffix_format(tmp_path):
    outs = {kind: tmp_path / f"lenet.{kind}" for kind in ("json", "md", "csv", "txt")}
    args = ["table", "lenet5"] + [arg for path in outs.values() for arg in ("--out", str(path))]
    result = cli_runner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert json.loads(outs["json"].read_text())["totals"]["params"] == 61_706  # LeCun et al. 1998
    assert outs["md"].read_text().startswith("### lenet5: ")
    assert next(csv.DictReader(io.StringIO(outs["csv"].read_text())))["path"] == "input"
    assert outs["txt"].read_text() == result.stdout  # the text table, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in outs.values())  # nothing left beside


def test_table_out_into_an_unwritable_place_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = cli_runner().invoke(main, ["table", "lenet5", "--out", str(blocker / "x.json")])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith(f"archcalc: {blocker}: ") and "a file is in the way" in result.stderr
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("batch", ["1" + "0" * 400, "2147483648", "1," + "9" * 5000])
def test_a_batch_beyond_its_bound_is_one_short_line_exit_2(batch):
    result = cli_runner().invoke(main, ["table", "vgg16", "--batch", batch])
    assert result.exit_code == 2 and "Traceback" not in result.output
    (line,) = result.stderr.splitlines()
    assert "is not a whole number of at least 1 and at most 2,147,483,647" in line and len(line) < 300


def test_the_largest_batch_scales_exactly():
    doc = table_json(BRANCHING, "--batch", "2147483647")
    (config,) = doc["configurations"]
    assert config["macs_per_batch"] == doc["totals"]["macs_per_image"] * 2147483647


def test_table_one_configuration_line_per_batch_and_dtype():
    doc = table_json(BRANCHING, "--batch", "1,8", "--dtype", "fp32,int8")
    configs = [(c["batch"], c["dtype"], c["activation_bytes_per_batch"], c["weights_bytes"]) for c in doc["configurations"]]
    # 2,842 activation values per image and 554 + 16 weights (by hand in tests/test_calc.py)
    assert configs == [(1, "fp32", 2_842 * 4, 570 * 4), (8, "fp32", 2_842 * 8 * 4, 570 * 4),
                       (1, "int8", 2_842, 570), (8, "int8", 2_842 * 8, 570)]
    text = ok(["table", BRANCHING, "--batch", "1,8", "--dtype", "fp32,int8"])
    block = text.split("Whole batch:")[1].splitlines()
    assert [line.split()[:2] for line in block[3:]] == [["1", "fp32"], ["8", "fp32"], ["1", "int8"], ["8", "int8"]]


def test_every_option_has_help_and_the_command_list_is_whole():
    from archcalc.cli import main as group

    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"archcalc {name} {param.opts[0]} has no help text"
    result = cli_runner().invoke(main, ["--help"], env={"COLUMNS": "80"})
    commands = result.stdout.split("Commands:")[1]
    assert "..." not in commands
    assert "next to archcalc's figures." in " ".join(commands.split())


# ---- check as a CI gate: budgets, verdict words, -v, --format json ------------------------------

# The one-conv spec of write(): conv 3 -> 4, 3x3, no padding, on 3x8x8, by hand:
CONV_PARAMS = 4 * 3 * 9 + 4  # 112
CONV_MACS = 4 * 6 * 6 * 27  # 3,888
LIVE = 3 * 8 * 8 + 4 * 6 * 6  # the conv's input and output: 192 + 144 = 336 values, also the sum


def test_budgets_pass_and_fail_with_one_word_each(tmp_path):
    spec = write(tmp_path, [
        {"what": "params", "max": 30_000_000, "reason": "fits the edge device"},
        {"what": "params", "max": 100, "reason": "too tight"},
        {"what": "macs", "min": 4_000, "reason": "enough capacity"},
        {"what": "peak_activation_bytes", "max": LIVE * 32 * 2, "batch": 32, "dtype": "fp16", "reason": "16 GB card"},
        {"what": "peak_activation_bytes", "max": LIVE * 32 * 2 - 1, "batch": 32, "dtype": "fp16", "reason": "one short"},
        {"what": "activation_bytes", "max": LIVE * 4, "reason": "fp32, batch 1 by default"},
        {"what": "receptive_field", "min": 3, "max": 3, "reason": "a 3x3 field"},
        {"what": "params", "value": CONV_PARAMS, "source": "by hand"},
    ])
    result = cli_runner().invoke(main, ["check", spec])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == ["OVER", "UNDER", "OVER"]
    assert lines[0] == f"OVER        net: params budget max 100, computed {CONV_PARAMS} [too tight]"
    assert "macs budget min 4,000, computed 3,888" in lines[1]
    assert f"peak_activation_bytes (batch 32, fp16) budget max {LIVE * 64 - 1:,}, computed {LIVE * 64:,}" in lines[2]
    assert lines[-1] == "8 checked: 5 ok, 0 known-wrong, 3 failed"
    every = cli_runner().invoke(main, ["check", spec, "-v"]).stdout.splitlines()
    assert len(every) == 9 and all(line.split()[0] in ("ok", "OVER", "UNDER") for line in every[:-1])


def test_check_json_for_machines(tmp_path):
    spec = write(tmp_path, [{"what": "params", "max": 100, "reason": "too tight"},
                            {"what": "macs", "value": 3.9, "unit": "K", "source": "rounded"}])
    result = cli_runner().invoke(main, ["check", spec, "--format", "json"])
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert (doc["passed"], doc["failed"]) == (1, 1)
    budget, published = doc["figures"]
    assert (budget["verdict"], budget["max"], budget["computed"], budget["reason"]) == ("OVER", 100, CONV_PARAMS, "too tight")
    assert (published["verdict"], published["status"], published["computed"]) == ("ok", "rounds", CONV_MACS)


def test_every_line_of_the_zoo_check_has_one_verdict():
    from archcalc.core.figures import WORDS

    result = cli_runner().invoke(main, ["check", "--claims", "-v"])
    assert result.exit_code == 0
    for line in result.stdout.splitlines()[:-1]:
        word = line.split()[0]
        assert word in WORDS, line
        assert not any(f"({status})" in line for status in ("off", "exact", "rounds", "truncates", "differs")), line


@pytest.mark.parametrize("item, message", [
    ({"what": "params", "max": 10}, "$.expect[0]: a budget needs a 'reason'"),
    ({"what": "params", "value": 112}, "$.expect[0]: every published figure needs a source"),
    ({"what": "params", "value": 112, "max": 200, "reason": "r"}, "a 'value' (published) or 'min'/'max' (a budget), not both"),
    ({"what": "params", "max": 10, "batch": 2, "reason": "r"}, "$.expect[0].batch: goes with a memory figure"),
    ({"what": "params", "max": 10, "dtype": "fp16", "reason": "r"}, "$.expect[0].dtype: goes with a memory figure"),
    ({"what": "params", "min": 10, "max": 5, "reason": "r"}, "$.expect[0]: min 10 is above max 5"),
    ({"what": "params", "max": 10, "unit": "M", "reason": "r"}, "$.expect[0].unit: goes with a published value"),
    ({"what": "peak_activations", "layer": "conv", "max": 10, "reason": "r"}, "peak_activations is a figure of the whole network"),
    ({"what": "params"}, "$.expect[0]: a published figure needs a 'value' (or 'min'/'max' for a budget)"),
])
def test_bad_budgets_are_one_line(tmp_path, item, message):
    result = cli_runner().invoke(main, ["check", write(tmp_path, [item])])
    assert result.exit_code == 2 and result.stdout == ""
    assert message in result.stderr and len(result.stderr.splitlines()) == 1


def test_list_by_family_and_year_variants_in_natural_order():
    names = [line.split()[0] for line in ok(["list"]).splitlines()[2:]]
    families = ["lenet5", "alexnet", "vgg16", "resnet50", "densenet121", "efficientnet_b0", "convnext_tiny"]
    assert [names.index(n) for n in families] == sorted(names.index(n) for n in families)  # 1998, 2012, ..., 2022
    vgg = [n for n in names if n.startswith("vgg")]
    assert vgg.index("vgg16") < vgg.index("vgg16_c") < vgg.index("vgg19") and vgg.index("vgg11") == 0
    resnet = [n for n in names if n.startswith("resnet")]
    assert resnet[resnet.index("resnet50") + 1] == "resnet50_v1"
    assert resnet.index("resnet50_keras") < resnet.index("resnet101") < resnet.index("resnet152")
    assert [n for n in names if n.startswith("convnext")] == ["convnext_tiny", "convnext_small", "convnext_base",
                                                              "convnext_large"]
    assert [n for n in names if n.startswith("efficientnet")] == [f"efficientnet_b{i}" for i in range(8)] + [
        "efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l"]  # V1 (2019), then V2 (2021)


def test_in_a_real_terminal_the_table_fits_it():
    """Under `script` (a pseudo-terminal of 80 columns set with stty, no COLUMNS), as a person sees it."""
    tool = shutil.which("script")
    if tool is None:
        pytest.skip("util-linux `script` is not installed: no pseudo-terminal to run the CLI in")
    command = f"stty cols 80 rows 40; {sys.executable} -m archcalc.cli table vgg16"  # 111 columns wide in full
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["PYTHONPATH"] = str(Path(__file__).parent.parent) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([tool, "-qec", command, "/dev/null"], capture_output=True, timeout=120, env=env)
    assert done.returncode == 0, done.stdout[-2000:]
    screen = done.stdout.decode("utf-8").replace("\r\n", "\n").splitlines()
    assert "Layer" in "\n".join(screen) and any("--wide shows all" in line for line in screen)
    assert max(len(line) for line in screen) <= 80, max(screen, key=len)
    assert any("1,849,688,064" in line for line in screen)  # conv1_2: 64*224*224*(64*9), whole


# ---- a spec's text reaches the terminal as text -------------------------------------------------

@pytest.mark.parametrize("args", [[], ["--depth", "1"], ["--format", "markdown"], ["--format", "csv", "--depth", "1"],
                                  ["--format", "json"], ["--all-warnings"]])
def test_table_sends_a_terminal_no_control_character_of_a_spec(args):
    result = cli_runner().invoke(main, ["table", str(HOSTILE), *args])
    assert result.exit_code == 0, (result.output, result.exception)
    assert controls(result.stdout) == [] and controls(result.stderr) == []
    assert "pwned" in result.stdout or {"csv", "json"} & set(args)  # the title is shown, escaped


def test_table_on_a_terminal_sends_no_control_character_of_a_spec(monkeypatch):
    result = on_terminal(monkeypatch, 60, str(HOSTILE), "--depth", "1")
    assert controls(result.stdout) == [] and controls(result.stderr) == []


def test_check_shows_a_spec_s_sources_and_reasons_escaped_one_line_each():
    result = cli_runner().invoke(main, ["check", str(HOSTILE), "-v"])
    assert result.exit_code == 1, (result.output, result.exception)
    assert controls(result.stdout) == []
    miss, over, summary = result.stdout.rstrip("\n").split("\n")
    assert miss.startswith("MISS") and miss.endswith("[source \\x1b]0;pwned\\x07 <script>alert(5)</script> | `x`\\nline]")
    assert over.startswith("OVER") and over.endswith("[reason \\x1b]0;pwned\\x07 \\x9b31m <b>x</b>\\nline]")
    assert summary == "2 checked: 0 ok, 0 known-wrong, 2 failed"


# ---- first steps: help, the order of the input's axes ------------------------------------------------

def test_archcalc_alone_prints_its_help_on_lines():
    result = cli_runner().invoke(main, [])
    assert result.exit_code == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Usage: ") and "COMMAND" in lines[0] and "\\n" not in result.stdout
    assert any(line.strip().startswith("table ") for line in lines)  # one command a line


def test_import_alone_prints_its_help_and_a_missing_argument_lists_choices_on_one_line():
    result = cli_runner().invoke(main, ["import"])
    assert result.exit_code == 0 and result.stdout.startswith("Usage: ") and " import " in result.stdout.splitlines()[0]
    result = cli_runner().invoke(main, ["verify", "vgg16", "--dtype", "fp64"])
    assert result.exit_code == 2 and "\\n" not in result.stderr and "\\t" not in result.stderr


@pytest.mark.parametrize("name", ["resnet18", "vgg16"])
def test_an_input_in_keras_order_is_refused_with_the_likely_order(name):
    result = cli_runner().invoke(main, ["table", name, "--input", "224x224x3"])
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert "channels first" in line and line.endswith("--input 3x224x224?")


def test_a_spec_whose_own_input_is_channels_last_keeps_its_order(tmp_path):
    spec = tmp_path / "hwc.json"
    spec.write_text(json.dumps({"name": "hwc", "input": [32, 32, 3], "layers": [{"type": "flatten"}]}))
    out = table_json(str(spec), "--input", "28x28x3")
    assert out["output_shape"] == [28 * 28 * 3]


def test_an_input_with_a_batch_axis_names_the_batch():
    result = cli_runner().invoke(main, ["table", "vgg16", "--input", "1x3x224x224"])
    assert result.exit_code == 2
    assert "give one image, CxHxW (3x224x224), and the batch with --batch 1" in result.stderr


def test_another_channel_count_says_so_on_stderr():
    result = cli_runner().invoke(main, ["table", "resnet18", "--input", "1x28x28", "--format", "json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["layers"][1]["params"] == 1 * 64 * 7 * 7  # conv1, built for one channel
    assert result.stderr.startswith("note: --input 1x28x28 gives resnet18 1 input channel where its spec has 3")


def test_the_input_metavar_reads_as_written():
    assert "--input CxHxW" in ok(["table", "--help"])


# ---- check as a CI gate ---------------------------------------------------------------------------

def test_check_reports_the_readable_specs_when_one_cannot_be_read(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "y"')
    result = cli_runner().invoke(main, ["check", str(broken), str(FIXTURES / "budget_over.json"), "alexnet"])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0].startswith(f"archcalc: {broken}: invalid JSON")
    assert "OVER" in result.stdout and "1 failed, 1 not read" in result.stdout  # the others were checked


def test_check_of_a_spec_with_nothing_to_check_fails(tmp_path):
    spec = tmp_path / "bare.json"
    spec.write_text(json.dumps({"name": "bare", "input": [3, 8, 8], "layers": [{"type": "relu"}]}))
    result = cli_runner().invoke(main, ["check", str(spec)])
    assert result.exit_code == 1
    assert result.stdout.startswith("NOTHING") and "no `expect`" in result.stdout


def test_a_json_note_names_the_padding_it_holds_both_sides():
    (note, *_) = table_json("resnet18")["warnings"]
    assert note["path"] == "conv1" and "padding" not in note
    assert note["padding_total"] == 3 + 3  # torchvision's conv1: padding=3 on each side
    assert (note["size"] + note["padding_total"] - note["span"]) // note["stride"] + 1 == note["output"] == 112


def test_an_unknown_out_suffix_is_refused_before_any_work(tmp_path):
    result = cli_runner().invoke(main, ["table", "vgg16", "--out", str(tmp_path / "vgg16.xlsx")])
    assert result.exit_code == 2 and list(tmp_path.iterdir()) == []
    assert "archcalc writes no '.xlsx' file" in result.stderr


def test_a_missing_path_is_a_missing_file_not_an_unknown_network(tmp_path):
    result = cli_runner().invoke(main, ["table", str(tmp_path / "my_net")])
    assert result.exit_code == 2 and "no such file" in result.stderr and "unknown network" not in result.stderr


@pytest.mark.parametrize("word, meant", [("dense", "linear"), ("Dense", "linear"), ("BatchNorm2d", "batch_norm2d"),
                                         ("MaxPooling2D", "max_pool2d"), ("GlobalAveragePooling2D", "adaptive_avg_pool2d")])
def test_another_tools_layer_name_gets_the_archcalc_name(tmp_path, word, meant):
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps({"name": "s", "input": [8], "layers": [{"type": word}]}))
    result = cli_runner().invoke(main, ["table", str(spec)])
    assert result.exit_code == 2 and result.stderr.rstrip().endswith(f"unknown layer type {word!r} (did you mean {meant!r}?)")


def test_diagram_writes_svg_to_stdout_with_a_dash():
    import xml.etree.ElementTree as ET

    svg = ok(["diagram", "lenet5", "-o", "-"])
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg") and "conv" in svg


def test_check_of_a_family_file_checks_each_of_its_variants():
    out = ok(["check", "-v", str(ROOT / "specs" / "vgg.json")])
    named = {line.split()[1].rstrip(":") for line in out.splitlines()[:-1]}
    assert named == {"vgg11", "vgg11_lrn", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_c", "vgg16_bn", "vgg19",
                     "vgg19_bn"}


def test_fit_prints_the_largest_batch_and_fails_a_batch_over_the_budget():
    from archcalc.core import training
    from archcalc.core.calc import analyze
    from archcalc.core.spec import load

    with training.counting():
        analysis = analyze(load("lenet5"))
        memory = training.training_peak_bytes(analysis.scaled(batch=10))  # batch 10 fits exactly, 11 does not
    found = cli_runner().invoke(main, ["fit", "lenet5", "--memory", str(memory)])
    assert found.exit_code == 0 and "largest batch that fits in" in found.output and " is 10\n" in found.output
    assert cli_runner().invoke(main, ["fit", "lenet5", "--memory", str(memory), "--batch", "10"]).exit_code == 0
    over = cli_runner().invoke(main, ["fit", "lenet5", "--memory", str(memory), "--batch", "11"])
    assert over.exit_code == 1 and over.output.startswith("does not fit: lenet5 at batch 11")
    assert cli_runner().invoke(main, ["fit", "lenet5", "--memory", "24Gx"]).exit_code == 2


def test_table_train_adds_the_training_columns_and_keys():
    import json

    plain = json.loads(cli_runner().invoke(main, ["table", "lenet5", "--format", "json"]).output)
    trained = json.loads(cli_runner().invoke(main, ["table", "lenet5", "--format", "json", "--train", "--batch", "2"]).output)
    assert "backward_macs_per_image" not in plain["totals"] and "training_peak_bytes" not in plain["configurations"][0]
    config = trained["configurations"][0]
    assert {"saved_activation_bytes_per_batch", "gradient_bytes", "optimizer_state_bytes", "training_peak_bytes"} <= set(config)
    assert config["gradient_bytes"] == 61_706 * 4  # LeNet-5's parameters, one fp32 gradient each
    assert config["optimizer_state_bytes"] == 2 * 61_706 * 4 + 10 * 4  # AdamW: two moments and a step per tensor
    assert {"backward_macs_per_image", "saved_bytes_per_image"} <= set(trained["layers"][1])
    assert "Backward MACs" in cli_runner().invoke(main, ["table", "lenet5", "--train"]).output


def test_csv_train_has_the_training_columns_of_the_layers():
    plain = next(csv.reader(io.StringIO(cli_runner().invoke(main, ["table", "lenet5", "--format", "csv"]).output)))
    rows = list(csv.DictReader(io.StringIO(
        cli_runner().invoke(main, ["table", "lenet5", "--format", "csv", "--train"]).output)))
    assert "saved_bytes_per_image" not in plain
    by_path = {r["path"]: r for r in rows}
    # C1 keeps its input (1x32x32, fp32) and computes no input gradient; tanh keeps its output (6x28x28)
    assert by_path["features.C1"]["saved_bytes_per_image"] == str(32 * 32 * 4)
    assert by_path["features.C1"]["backward_macs_per_image"] == str(6 * 28 * 28 * 25)
    assert by_path["features.act1"]["saved_bytes_per_image"] == str(6 * 28 * 28 * 4)


def test_an_unknown_command_is_one_line_naming_the_nearest_command():
    result = cli_runner().invoke(main, ["tabel", "vgg16"], prog_name="archcalc")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == ["archcalc: no such command 'tabel' (did you mean 'table'?) (see 'archcalc --help')"]
    result = cli_runner().invoke(main, ["zzz"], prog_name="archcalc")
    assert result.stderr.splitlines() == ["archcalc: no such command 'zzz' (see 'archcalc --help')"]
