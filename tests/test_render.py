"""One meaning in every format: JSON, CSV, the DataFrame and the text table agree on every field;
the public API (`load` of a dict, HxW inputs, `render`, `to_json`); per-image and per-batch names."""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hostile_text import (
    BLOCK,
    BLOCK_SHOWN,
    HOSTILE,
    NAME,
    TITLE_SHOWN,
    assert_plain_markdown,
    controls,
    pipe_cells,
    tables,
)

import archcalc
from archcalc.render import layer_keys, render_text, shorten_path

FIXTURES = Path(__file__).parent / "fixtures"
BRANCHING = str(FIXTURES / "branching.json")

TINY = {  # by hand: conv 3->16, 3x3 pad 1: 3*16*9 + 16 = 448 params; at 32x32: 16*32*32*27 = 442,368 MACs
    "name": "tiny", "input": [3, 32, 32],
    "layers": [{"name": "conv", "type": "conv2d", "out": 16, "kernel": 3, "padding": 1}, {"type": "relu"},
               {"name": "pool", "type": "max_pool2d", "kernel": 2}, {"type": "flatten"},
               {"name": "fc", "type": "linear", "out": 10}],
}


def csv_rows(analysis, **kwargs) -> list[dict]:
    return list(csv.DictReader(io.StringIO(archcalc.render(analysis, "csv", **kwargs))))


def as_csv(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "x".join(map(str, value))
    return str(value)


@pytest.mark.parametrize("target, depth", [(BRANCHING, None), (BRANCHING, 1), ("lenet5", None), ("resnet18", 2)])
def test_json_csv_and_dataframe_agree_on_every_field(target, depth):
    pandas = pytest.importorskip("pandas")
    analysis = archcalc.analyze(archcalc.load(target), batch=4, dtype="fp16")
    layers = archcalc.to_json(analysis, depth)["layers"]
    rows = csv_rows(analysis, depth=depth)
    frame = analysis.to_dataframe(depth)
    assert list(rows[0]) == list(frame.columns) == list(layers[0]) == list(layer_keys())
    assert len(layers) == len(rows) == len(frame)
    for record, row, (_, framed) in zip(layers, rows, frame.iterrows()):
        for key in layer_keys():
            assert row[key] == as_csv(record[key]), (record["path"], key)
            value = framed[key]
            expected = as_csv(record[key]) if key == "output_shape" else record[key]
            if expected is None:
                assert value is pandas.NA, (record["path"], key)
            else:
                assert value == expected, (record["path"], key)


def test_dataframe_columns_are_typed():
    pandas = pytest.importorskip("pandas")
    frame = archcalc.analyze(archcalc.load("lenet5")).to_dataframe()
    assert str(frame["params"].dtype) == "int64" and str(frame["macs_per_image"].dtype) == "int64"
    assert str(frame["channels"].dtype) == "Int64" and str(frame["rf_height"].dtype) == "Int64"
    assert str(frame["rf_global"].dtype) == "bool" and str(frame["output_shape"].dtype) == "string"
    c1 = frame.set_index("path").loc["features.C1"]  # LeCun 1998: C1 6@28x28, 5x5 kernels
    assert (c1["channels"], c1["height"], c1["width"], c1["rf_height"], c1["rf_global"]) == (6, 28, 28, 5, False)
    assert c1["macs_per_image"] == 6 * 28 * 28 * 25 and c1["params"] == 6 * 26
    f6 = frame.set_index("path").loc["classifier.F6"]
    assert bool(f6["rf_global"]) and f6["rf_height"] is pandas.NA and f6["height"] is pandas.NA


def test_per_image_and_per_batch_figures_are_named_apart():
    analysis = archcalc.analyze(archcalc.load(TINY), batch=8, dtype="bf16")
    doc = archcalc.to_json(analysis)
    conv_macs = 16 * 32 * 32 * 27
    fc_macs = 16 * 16 * 16 * 10
    assert doc["totals"]["macs_per_image"] == conv_macs + fc_macs
    activations = 3 * 32 * 32 + 16 * 32 * 32 + 16 * 16 * 16 + 10  # input, conv, pool, fc (relu in place, flatten a view)
    assert doc["totals"]["activations_per_image"] == activations
    [config] = doc["configurations"]
    assert config["macs_per_batch"] == 8 * (conv_macs + fc_macs)
    assert config["activations_per_batch"] == 8 * activations
    assert config["activation_bytes_per_batch"] == 8 * activations * 2
    assert not {key for key in doc["totals"] if key.endswith("_per_batch")}
    assert all(not key.endswith("_per_batch") for key in doc["layers"][0])
    text = archcalc.render(analysis)
    assert "Per image (shapes without the batch dimension)" in text
    assert f"{conv_macs + fc_macs:,}" in text  # per image in the totals, exact


def test_load_takes_a_dict_and_analyze_takes_hxw():
    network = archcalc.load(TINY)
    analysis = archcalc.analyze(network, input_shape=(64, 64))
    assert analysis.input_shape == (3, 64, 64)
    assert analysis.row("conv").macs == 16 * 64 * 64 * 27
    assert analysis.totals.params == 448 + 16 * 32 * 32 * 10 + 10
    family = {"params": {"width": 4}, "input": [3, 8, 8],
              "layers": [{"type": "conv2d", "out": "width", "kernel": 3}],
              "variants": {"small": {}, "big": {"params": {"width": 8}}}}
    assert archcalc.analyze(archcalc.load(family, "big")).totals.params == 8 * 27 + 8
    with pytest.raises(archcalc.SpecError, match=r"name one as load\(document, VARIANT\) \(small, big\)"):
        archcalc.load(family)
    with pytest.raises(archcalc.SpecError, match=r"<dict>: \$.layers\[0\]: conv2d has no field 'kernl'"):
        archcalc.load({"input": [3, 8, 8], "layers": [{"type": "conv2d", "out": 4, "kernl": 3}]})


def test_render_and_to_json_are_public():
    analysis = archcalc.analyze(archcalc.load("vgg16"))
    assert json.loads(archcalc.render(analysis, format="json")) == archcalc.to_json(analysis)
    assert archcalc.render(analysis, format="markdown").startswith("### vgg16: ")
    assert "15,470,264,320 (15.47 G)" in archcalc.render(analysis)  # torchvision's 15.47 GFLOPS
    with pytest.raises(archcalc.errors.UsageError, match="unknown format 'yaml'"):
        archcalc.render(analysis, format="yaml")
    for item in (archcalc.analyze, archcalc.load, archcalc.render, archcalc.to_json, archcalc.Analysis,
                 archcalc.Row, archcalc.Totals, archcalc.Network):
        assert item.__doc__ and len(item.__doc__) > 30, item


def test_to_dataframe_without_pandas_names_the_install_line():
    script = ("import sys; sys.modules['pandas'] = None\n"
              "import archcalc\n"
              "try:\n"
              "    archcalc.analyze(archcalc.load('lenet5')).to_dataframe()\n"
              "except archcalc.errors.MissingDependency as exc:\n"
              "    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == 'to_dataframe() needs pandas: pip install "archcalc[dataframe]"'


@pytest.mark.parametrize("path, limit, short", [
    ("features.stage3.block2.conv1", 20, "featur….block2.conv1"),
    ("features.stage1.conv1.conv", 24, "features.sta….conv1.conv"),
    ("a.very_long_leaf_name_indeed", 12, "…name_indeed"),
    ("short.path", 20, "short.path"),
])
def test_shorten_path_keeps_the_leaf(path, limit, short):
    assert shorten_path(path, limit) == short and len(short) <= limit


def test_layer_keys_are_the_records_keys():
    from archcalc.render import layer_record

    analysis = archcalc.analyze(archcalc.load(TINY))
    assert all(tuple(layer_record(row)) == layer_keys() for row in analysis.rows)


# ---- a spec's text is shown as text in every format --------------------------------------------

def hostile_analysis():
    return archcalc.analyze(archcalc.load(str(HOSTILE)))


@pytest.mark.parametrize("width", [None, 80])
def test_text_shows_a_hostile_title_on_one_line_with_its_escapes_visible(width):
    text = render_text(hostile_analysis(), depth=1, width=width).text
    assert controls(text) == []
    lines = text.split("\n")
    head = lines[:next(i for i, line in enumerate(lines) if line.startswith("Per image"))]
    assert len(head) == 1 or width  # one line, or wrapped to the terminal at spaces
    assert " ".join(line.strip() for line in head) == f"{NAME}: {TITLE_SHOWN}"
    if width is None:  # on a terminal of 80 columns the Type column is hidden
        assert BLOCK_SHOWN in next(line for line in lines if line.startswith("stem "))


def test_markdown_of_a_hostile_spec_has_no_markup_of_its_own():
    text = archcalc.render(hostile_analysis(), "markdown", depth=1)
    assert_plain_markdown(text)
    heading, blank = text.split("\n")[:2]
    assert heading.startswith("### hostile&lt;img src=x") and blank == ""  # the title's newline is a space
    layers = tables(text)[0]
    stem = next(pipe_cells(line) for line in layers if line.startswith("| stem "))
    assert len(stem) == 7 and stem[1].startswith('=HYPERLINK("http://x") \\x1b[31mred')


def test_csv_of_a_hostile_spec_keeps_its_columns_and_guards_formulas():
    analysis = hostile_analysis()
    text = archcalc.render(analysis, "csv", depth=1)
    assert controls(text) == []
    rows = list(csv.reader(io.StringIO(text)))
    assert len(rows) == 1 + len(analysis.at_depth(1)) and {len(r) for r in rows} == {len(layer_keys())}
    stem = next(r for r in rows if r[0] == "stem")
    assert stem[1] == "'" + BLOCK.replace("\x1b", "\\x1b").replace("\n", "\\n")  # read as text by a spreadsheet


def test_json_keeps_a_hostile_block_name_exact_and_escaped():
    text = archcalc.render(hostile_analysis(), "json", depth=1)
    assert controls(text) == [] and "\\u001b" in text
    document = json.loads(text)
    assert document["name"] == NAME and document["layers"][1]["type"] == BLOCK  # the data whole


# ---- the tree table and the shares -------------------------------------------------------------------

def _tree_lines(*options: str) -> list[list[str]]:
    """The table's rows of `archcalc table resnet18 ...`, split at two spaces or more."""
    import re

    result = subprocess.run([sys.executable, "-m", "archcalc.cli", "table", "resnet18", *options],
                            capture_output=True, text=True, check=True)
    body = result.stdout.split("\n\n")[1].splitlines()
    return [re.split(r"\s{2,}", line.strip()) for line in body[2:]]


def test_tree_table_puts_each_group_subtotal_above_its_children():
    rows = _tree_lines("--tree", "--depth", "2")
    names = [r[0] for r in rows]
    # by hand, torchvision's BasicBlock at 64 channels: two 3x3 convs 64->64 (36,864 each) and two BNs (128 each)
    block = 2 * 64 * 64 * 9 + 2 * 2 * 64
    at = names.index("layer1")
    assert rows[at][1] == "sequence" and rows[at][3] == f"{2 * block:,}"
    assert rows[at + 1][:2] == ["· 0", "basic"] and rows[at + 1][3] == f"{block:,}"
    assert rows[at + 2][:2] == ["· 1", "basic"]
    assert names[:5] == ["input", "conv1", "bn1", "relu", "maxpool"]
    assert names[-3:] == ["avgpool", "flatten", "fc"]


def test_share_columns_give_each_rows_percent_of_params_and_macs():
    rows = _tree_lines("--share")
    header = subprocess.run([sys.executable, "-m", "archcalc.cli", "table", "resnet18", "--share"],
                            capture_output=True, text=True, check=True).stdout.split("\n\n")[1].splitlines()[0]
    assert "% Params" in header and "% MACs" in header
    fc = next(r for r in rows if r[0] == "fc")
    # fc 512->1000: 513,000 of torchvision's 11,689,512 params (4.39%), 512,000 of its 1,814,073,344 MACs (0.03%)
    assert fc[3:7] == ["513,000", "4.4%", "512,000", "0.0%"]
    conv1 = next(r for r in rows if r[0] == "conv1")  # 64 x 112 x 112 x 3*7*7 = 118,013,952 MACs: 6.5%
    assert conv1[5:7] == ["118,013,952", "6.5%"]


def test_an_add_gets_a_row_of_its_own_and_the_leaves_still_add_up():
    analysis = archcalc.analyze(archcalc.load("resnet18"))
    merges = [r for r in analysis.leaves() if r.kind == "merge"]
    assert len(merges) == 8  # one residual add per BasicBlock: 2 blocks x 4 stages
    first = merges[0]
    assert (first.path, first.label, first.output_shape) == ("layer1.0.add", "add", (64, 56, 56))
    assert (first.params, first.macs, first.activations) == (0, 0, 0)  # torchvision adds in place: out += identity
    leaves = analysis.leaves()
    assert sum(r.params for r in leaves) == 11_689_512  # torchvision ResNet18_Weights num_params
    assert sum(r.activations for r in leaves) == analysis.totals.activations
