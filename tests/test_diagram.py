"""Architecture figures: golden SVGs of small specs, what their boxes say by hand, and the structure of the zoo's."""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner
from hostile_text import BLOCK_SHOWN, HOSTILE, NAME, controls

from archcalc import analyze, load
from archcalc.cli import main
from archcalc.core.spec import Group, Node, printable, zoo_index
from archcalc.report.diagram import PALETTE, Options, layout, svg

FIXTURES = Path(__file__).parent / "fixtures"
NS = "{http://www.w3.org/2000/svg}"
GOLDEN = ["sequence", "concat", "residual", "se", "dense"]


def figure(name: str, options: Options = Options()) -> str:
    return svg(layout(analyze(load(str(FIXTURES / f"diagram_{name}.json"))), options))


def parsed(text: str) -> list[ET.Element]:
    return list(ET.fromstring(text).iter(f"{NS}g"))


def boxes(text: str) -> dict[str, list[str]]:
    """path -> the texts of its box (label, shape, annotations)."""
    return {g.get("data-path"): [t.text for t in g.iter(f"{NS}text")]
            for g in parsed(text) if g.get("class") in ("box", "merge")}


def rect(g: ET.Element) -> tuple[int, int, int, int]:
    r = g.find(f"{NS}rect")
    return int(r.get("x")), int(r.get("y")), int(r.get("width")), int(r.get("height"))


# ---- golden figures ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", GOLDEN)
def test_golden_svg(name):
    """The figures were drawn once, looked at, and kept; a change of layout shows up here.

    Regenerate with ARCHCALC_GOLDEN=write after looking at the new figures."""
    golden = FIXTURES / f"diagram_{name}.svg"
    text = figure(name)
    if os.environ.get("ARCHCALC_GOLDEN") == "write":
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


def test_sequence_boxes_by_hand():
    # conv 3x3/2 with padding 1 on 32: (32 + 2 - 3)/2 + 1 = 16; maxpool 2x2/2: 8; flatten 16*8*8 = 1024
    assert boxes(figure("sequence")) == {
        "input": ["input", "3x32x32"],
        "conv1": ["conv 3x3/2, 16", "16x16x16"],
        "bn1": ["batchnorm", "16x16x16"],
        "relu1": ["relu", "16x16x16"],
        "pool": ["maxpool 2x2/2", "16x8x8"],
        "flatten": ["flatten", "1024"],
        "drop": ["dropout 0.5", "1024"],
        "fc": ["fc 10", "10"],
    }


def test_sequence_annotations_by_hand():
    text = figure("sequence", Options(annotate=("params", "macs", "rf")))
    # conv: 16*3*3*3 + 16 = 448 params, 16*16*16*27 = 110,592 MACs, RF 3; fc: 1024*10 + 10 = 10,250 params
    assert boxes(text)["conv1"][2] == "448 params · 110.6 K MACs · RF 3"
    assert boxes(text)["fc"][2] == "10.25 K params · 10.24 K MACs · RF global"


def test_concat_meets_its_three_branches():
    text = figure("concat")
    merge = next(g for g in parsed(text) if g.get("class") == "merge")
    assert merge.get("data-merge") == "concat" and merge.get("data-inputs") == "3"
    assert [t.text for t in merge.iter(f"{NS}text")] == ["concat", "32x16x16"]  # 8 + 16 + 8 channels
    assert sum(1 for g in parsed(text) if g.get("data-to") == "mixed") == 3
    tops = {p: rect(g)[1] for g in parsed(text) if (p := g.get("data-path")) in ("b1x1", "reduce", "pool")}
    assert len(set(tops.values())) == 1  # branches start side by side


def test_residual_skip_projection_and_folded_repeats():
    text = figure("residual")
    groups = parsed(text)
    skips = [g for g in groups if g.get("data-skip") == "identity"]
    assert [g.get("data-to") for g in skips] == ["block1.residual"]  # the add, named `residual` in the block  # block0 projects, block1 (and 2) skip
    folded = [g for g in groups if g.get("data-covers")]
    assert [(g.get("data-path"), g.get("data-covers")) for g in folded] == [("block1", "block2")]
    title = next(g for g in folded).find(f"{NS}text").text
    assert title == "block1…block2: basic ×2"
    assert boxes(text)["block0.conv1"] == ["conv 3x3/2, 32", "32x8x8"]  # (16 + 2 - 3)/2 + 1 = 8: no path part per branch
    assert boxes(text)["block0.downsample.0"] == ["conv 1x1/2, 32", "32x8x8"]


def test_se_multiplies_the_input_by_its_gate():
    text = figure("se")
    b = boxes(text)
    assert b["se"] == ["×", "64x8x8"] and b["squeeze"] == ["global avgpool", "64x1x1"]
    assert b["fc1"] == ["conv 1x1, 16", "16x1x1"]
    assert sum(1 for g in parsed(text) if g.get("data-to") == "se") == 2


def test_dense_layers_grow_and_do_not_fold():
    b = boxes(figure("dense"))
    assert [b[f"layer{i}.grow"][1] for i in range(3)] == ["24x8x8", "32x8x8", "40x8x8"]  # 16 + 8 per layer


def test_depth_folds_groups_and_names_them_by_their_weight_layer():
    b = boxes(figure("residual", Options(depth=1)))
    assert b["block0"] == ["block0: basic", "32x8x8"]
    b = boxes(svg(layout(analyze(load("mobilenet_v2")), Options(depth=2))))
    assert b["features.0"] == ["conv 3x3/2, 32", "32x112x112"]  # torchvision's stem: conv, BN, ReLU6


def test_focus_draws_one_block_from_its_input():
    b = boxes(svg(layout(analyze(load("googlenet")), Options(focus="inception3a"))))
    assert b["input"] == ["input of inception3a", "192x28x28"]
    assert b["inception3a.cat"] == ["concat", "256x28x28"]  # 64 + 128 + 32 + 32
    assert all(p == "input" or p.startswith("inception3a") for p in b)


def test_horizontal_flows_left_to_right():
    groups = parsed(figure("sequence", Options(horizontal=True)))
    xs = [rect(g)[0] for g in groups if g.get("class") == "box"]
    ys = {rect(g)[1] + rect(g)[3] // 2 for g in groups if g.get("class") == "box"}
    assert xs == sorted(xs) and len(set(xs)) == len(xs) and len(ys) == 1


def test_scale_widens_larger_feature_maps():
    groups = {g.get("data-path"): rect(g) for g in parsed(figure("sequence", Options(scale=True))) if g.get("class") == "box"}
    assert groups["conv1"][2] > groups["pool"][2]  # 16x16 is wider than 8x8


def test_boxes_have_titles_and_colours_of_their_kind():
    text = figure("sequence")
    conv = next(g for g in parsed(text) if g.get("data-path") == "conv1")
    assert conv.find(f"{NS}title").text.startswith("conv1: conv2d, 3x32x32 -> 16x16x16, 448 params")
    assert conv.find(f"{NS}rect").get("stroke") == PALETTE["conv"] == "#0072B2"  # Okabe-Ito blue


def test_svg_is_the_same_bytes_every_time():
    assert figure("residual") == figure("residual")


# ---- the zoo -------------------------------------------------------------------------------------

def merges(node: Node) -> dict[str, int]:
    """Merge path -> number of branches, from the spec tree."""
    found = {}
    if isinstance(node, Group):
        if node.kind != "sequence":
            found[printable(node.path)] = len(node.children)
        for child in node.children:
            found.update(merges(child))
    return found


def check_structure(analysis, options: Options) -> int:
    text = svg(layout(analysis, options))
    groups = parsed(text)
    drawn = [g for g in groups if g.get("class") in ("box", "merge")]
    paths = {g.get("data-path") for g in drawn}
    folded = {g.get("data-path") for g in drawn if g.get("data-kind")} | {
        p for g in groups for p in (g.get("data-covers") or "").split()}
    # every layer has a box: its own, its merge's, or that of the group that holds it (folded or repeated)
    for row in analysis.leaves():
        holders = [row.path] + [row.path.rsplit(".", k)[0] for k in range(1, row.path.count(".") + 1)]
        assert row.path in paths or any(h in folded or (h != row.path and h in paths) for h in holders[1:]), row.path
    # every merge drawn meets as many edges as the spec gives it branches
    branches = merges(analysis.network.root)
    incoming: dict[str, int] = {}
    for g in groups:
        if g.get("class") == "edge" and g.get("data-to"):
            incoming[g.get("data-to")] = incoming.get(g.get("data-to"), 0) + 1
    for g in drawn:
        if g.get("class") == "merge":
            path = g.get("data-path")
            assert int(g.get("data-inputs")) == branches[path] == incoming.get(path), path
    # no two boxes overlap (sweep along y)
    rects = sorted(rect(g) for g in drawn)
    rects.sort(key=lambda r: r[1])
    for i, (x, y, w, h) in enumerate(rects):
        for x2, y2, w2, h2 in rects[i + 1:]:
            if y2 >= y + h:
                break
            assert x + w <= x2 or x2 + w2 <= x, ((x, y, w, h), (x2, y2, w2, h2))
    return len(drawn)


@pytest.mark.parametrize("options", [Options(), Options(depth=2), Options(horizontal=True, annotate=("params", "macs", "rf"))],
                         ids=["full", "depth2", "horizontal"])
def test_zoo_figures_are_well_formed(options):
    drawn = {name: check_structure(analyze(load(name)), options) for name in zoo_index()}
    assert min(drawn.values()) >= 5


def test_cli_writes_svg_and_png(tmp_path):
    runner = CliRunner()
    spec = str(FIXTURES / "diagram_residual.json")
    result = runner.invoke(main, ["diagram", spec, "-o", str(tmp_path / "r.svg"), "--depth", "2"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.svg").read_text().startswith("<svg ")
    result = runner.invoke(main, ["diagram", spec, "-o", str(tmp_path / "r.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _size(path: Path) -> tuple[int, int]:
    root = ET.fromstring(path.read_text())
    return int(root.get("width", "0")), int(root.get("height", "0"))


def test_cli_folds_a_large_figure_to_fit_and_says_how_to_unfold(tmp_path):
    # EfficientNet-B0 has 16 MBConv blocks in 7 stages, ~80 layers drawn in a column when every layer is
    runner = CliRunner()  # click 8.2: result.stderr apart from result.output
    folded, full = tmp_path / "folded.svg", tmp_path / "full.svg"
    result = runner.invoke(main, ["diagram", "efficientnet_b0", "-o", str(folded)])
    assert result.exit_code == 0, result.output
    assert max(_size(folded)) <= 2000
    assert "folded to depth" in result.stderr and "--full" in result.stderr and "--depth N" in result.stderr
    assert "depth" in ET.fromstring(folded.read_text()).find(f"{NS}title").text
    result = runner.invoke(main, ["diagram", "efficientnet_b0", "-o", str(full), "--full"])
    assert result.exit_code == 0 and "folded" not in result.stderr
    assert max(_size(full)) > 2000


def test_cli_leaves_a_figure_that_fits_and_a_focus_whole(tmp_path):
    runner = CliRunner()  # click 8.2: result.stderr apart from result.output
    for args in (["lenet5"], ["googlenet", "--focus", "inception3a"]):
        out = tmp_path / "f.svg"
        result = runner.invoke(main, ["diagram", *args, "-o", str(out)])
        assert result.exit_code == 0 and result.stderr == ""
        assert "depth" not in ET.fromstring(out.read_text()).find(f"{NS}title").text


@pytest.mark.parametrize("args, message", [
    (["vgg16", "-o", "x.svg", "--full", "--depth", "2"], "give one of them"),
    (["vgg16", "-o", "x.pdf"], "written as .svg or .png"),
    (["vgg16", "-o", "x.svg", "--annotate", "parms"], "did you mean 'params'"),
    (["googlenet", "-o", "x.svg", "--focus", "inception9z"], "no such layer or block"),
    (["googlenet", "-o", "x.svg", "--focus", "conv"], "give the whole path"),
    (["vgg61", "-o", "x.svg"], "unknown network 'vgg61'"),
])
def test_cli_bad_input_is_one_line(tmp_path, args, message):
    result = CliRunner().invoke(main, ["diagram", *args])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1


# ---- a spec's text is drawn as text ---------------------------------------------------------------

@pytest.mark.parametrize("options", [Options(), Options(depth=1), Options(horizontal=True, annotate=("params",))])
def test_svg_of_a_hostile_spec_is_well_formed_xml_and_shows_its_names_escaped(options):
    text = svg(layout(analyze(load(str(HOSTILE))), options))
    assert controls(text) == []
    root = ET.fromstring(text)  # XML 1.0 holds no control character, not even as a reference
    shown = [t.text for t in root.iter(f"{NS}text")] + [t.text for t in root.iter(f"{NS}title")]
    assert any(NAME in s for s in shown)  # `<` and `&` come back from the entities
    block = [s for s in shown if BLOCK_SHOWN in s]
    assert block and all(s.startswith("stem") for s in block)  # the frame or the folded box of `stem`
    assert not root.findall(f".//{NS}script") and not root.findall(f".//{NS}b")


def test_png_draws_a_dollar_sign_as_text():
    pytest.importorskip("matplotlib")
    from archcalc.report.diagram import png

    spec = {"name": "money", "input": [3, 8, 8],
            "blocks": {"a$\\nosuch{$b": {"layers": [{"type": "conv2d", "out": 4, "kernel": 3},
                                                    {"type": "conv2d", "out": 4, "kernel": 1}]}},
            "layers": [{"name": "stem", "block": "a$\\nosuch{$b"}]}
    drawn = png(layout(analyze(load(spec)), Options(depth=1)))  # matplotlib's mathtext would refuse it
    assert drawn[:8] == b"\x89PNG\r\n\x1a\n"
