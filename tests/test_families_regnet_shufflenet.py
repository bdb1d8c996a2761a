"""RegNet X/Y and ShuffleNet v2 against published figures, torchvision's width formula and hand calculations."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from archcalc.core.calc import analyze, check_network
from archcalc.core.spec import load

SPECS = Path(__file__).parent.parent / "specs"

# torchvision 0.28 weights meta of the first weights each builder lists: num_params, _ops (GMACs at 3
# decimals) and the evaluation crop (regnet_y_128gf has only SWAG weights, IMAGENET1K_SWAG_E2E_V1 at 384).
PUBLISHED = {
    "regnet_x_400mf": (5_495_976, 0.414, 224),
    "regnet_x_800mf": (7_259_656, 0.8, 224),
    "regnet_x_1_6gf": (9_190_136, 1.603, 224),
    "regnet_x_3_2gf": (15_296_552, 3.177, 224),
    "regnet_x_8gf": (39_572_648, 7.995, 224),
    "regnet_x_16gf": (54_278_536, 15.941, 224),
    "regnet_x_32gf": (107_811_560, 31.736, 224),
    "regnet_y_400mf": (4_344_144, 0.402, 224),
    "regnet_y_800mf": (6_432_512, 0.834, 224),
    "regnet_y_1_6gf": (11_202_430, 1.612, 224),
    "regnet_y_3_2gf": (19_436_338, 3.176, 224),
    "regnet_y_8gf": (39_381_472, 8.473, 224),
    "regnet_y_16gf": (83_590_140, 15.912, 224),
    "regnet_y_32gf": (145_046_770, 32.28, 224),
    "regnet_y_128gf": (644_812_894, 374.57, 384),
    "shufflenet_v2_x0_5": (1_366_792, 0.04, 224),
    "shufflenet_v2_x1_0": (2_278_604, 0.145, 224),
    "shufflenet_v2_x1_5": (3_503_624, 0.296, 224),
    "shufflenet_v2_x2_0": (7_393_996, 0.583, 224),
}

# torchvision's regnet.py: BlockParams.from_init_params(depth, w_0, w_a, w_m, group_width, se_ratio)
REGNET_CONFIG = {
    "regnet_x_400mf": (22, 24, 24.48, 2.54, 16, 0),
    "regnet_x_800mf": (16, 56, 35.73, 2.28, 16, 0),
    "regnet_x_1_6gf": (18, 80, 34.01, 2.25, 24, 0),
    "regnet_x_3_2gf": (25, 88, 26.31, 2.25, 48, 0),
    "regnet_x_8gf": (23, 80, 49.56, 2.88, 120, 0),
    "regnet_x_16gf": (22, 216, 55.59, 2.1, 128, 0),
    "regnet_x_32gf": (23, 320, 69.86, 2.0, 168, 0),
    "regnet_y_400mf": (16, 48, 27.89, 2.09, 8, 0.25),
    "regnet_y_800mf": (14, 56, 38.84, 2.4, 16, 0.25),
    "regnet_y_1_6gf": (27, 48, 20.71, 2.65, 24, 0.25),
    "regnet_y_3_2gf": (21, 80, 42.63, 2.66, 24, 0.25),
    "regnet_y_8gf": (17, 192, 76.82, 2.19, 56, 0.25),
    "regnet_y_16gf": (18, 200, 106.23, 2.48, 112, 0.25),
    "regnet_y_32gf": (20, 232, 115.89, 2.53, 232, 0.25),
    "regnet_y_128gf": (27, 456, 160.83, 2.52, 264, 0.25),
}
REGNETS = list(REGNET_CONFIG)
SHUFFLENETS = [name for name in PUBLISHED if name.startswith("shufflenet")]


@pytest.fixture(scope="module")
def analyses():
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            cache[name] = analyze(load(name))
        return cache[name]

    return get


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_torchvision_figures(name, analyses):
    params, gmacs, crop = PUBLISHED[name]
    analysis = analyses(name)
    assert analysis.input_shape == (3, crop, crop)
    assert analysis.totals.params == params
    assert round(analysis.totals.macs / 1e9, 3) == gmacs
    assert analysis.output_shape == (1000,)


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_every_claim_in_the_spec_holds(name):
    verdicts = check_network(load(name))
    assert len(verdicts) >= 2 and all(v.ok for v in verdicts), [v for v in verdicts if not v.ok]
    assert all("torchvision" in v.expect.source for v in verdicts)


def test_meta_has_year_paper_and_accuracy():
    for name, year, top1 in (("regnet_y_128gf", 2020, 88.228), ("shufflenet_v2_x1_0", 2018, 69.362)):
        meta = load(name).meta
        assert meta["year"] == year and "arXiv" in meta["paper"]
        assert meta["top1"] == top1 and "torchvision" in meta["accuracy_source"]


# ---- RegNet: the stages from (depth, w_0, w_a, w_m, group_width) -----------------------------

def regnet_stages(depth: int, w_0: int, w_a: float, w_m: float, group_width: int) -> tuple[list[int], list[int]]:
    """torchvision's BlockParams.from_init_params, written out: each block's width quantised in log space to
    w_0 * w_m^k and to a multiple of 8; runs of equal widths are stages; each width is then made divisible by
    its group width min(group_width, width) (torchvision's _make_divisible, never more than 10% down)."""
    widths = [round(w_0 * w_m ** round(math.log((w_0 + w_a * j) / w_0) / math.log(w_m)) / 8) * 8 for j in range(depth)]
    stage_widths = [w for j, w in enumerate(widths) if j == 0 or w != widths[j - 1]]
    stage_depths = [widths.count(w) for w in stage_widths]
    adjusted = []
    for w in stage_widths:
        g = min(group_width, w)
        v = max(g, int(w + g / 2) // g * g)
        adjusted.append(v + g if v < 0.9 * w else v)
    return stage_depths, adjusted


@pytest.mark.parametrize("name", REGNETS)
def test_regnet_stages_follow_the_width_formula(name, analyses):
    depth, w_0, w_a, w_m, group_width, se_ratio = REGNET_CONFIG[name]
    depths, widths = regnet_stages(depth, w_0, w_a, w_m, group_width)
    params = json.loads((SPECS / "regnet.json").read_text())["variants"][name]["params"]
    assert params["regnet"] == [depth, w_0, w_a, w_m, group_width, se_ratio]
    assert (params["stage_depths"], params["stage_widths"]) == (depths, widths)
    analysis = analyses(name)  # the network built from them: blocks per stage and their channels
    for s, (count, width) in enumerate(zip(depths, widths), start=1):
        blocks = [r for r in analysis.rows if r.depth == 3 and r.path.startswith(f"trunk_output.block{s}.")]
        assert [r.path.rsplit(".", 1)[-1] for r in blocks] == [f"block{s}-{b}" for b in range(count)]
        assert analysis.row(f"trunk_output.block{s}").output_shape[0] == width


def test_regnet_widths_by_hand():
    # regnet_y_400mf, block 1: u = 48 + 27.89 = 75.89; log(75.89/48)/log(2.09) = 0.458/0.737 = 0.62 -> 1;
    # 48 * 2.09 = 100.32, /8 = 12.54 -> 13, x8 = 104: stage 2 is 104 wide (8 divides it: no adjustment).
    assert regnet_stages(16, 48, 27.89, 2.09, 8) == ([1, 3, 6, 6], [48, 104, 208, 440])
    # regnet_y_800mf: stage 2 quantises to 136, which groups of 16 do not divide: 136 + 8 = 144, //16*16 = 144.
    assert regnet_stages(14, 56, 38.84, 2.4, 16)[1][1] == 144
    # regnet_x_8gf: stage 1 is 80 wide, under its group width 120: one group of 80 (a plain 3x3 convolution)
    assert regnet_stages(23, 80, 49.56, 2.88, 120)[1][0] == 80
    conv = analyze(load("regnet_x_8gf")).row("trunk_output.block1.block1-0.f.b.0")
    assert conv.params == 80 * 80 * 9  # groups = 80 // min(120, 80) = 1


def test_regnet_y_block_params_written_out(analyses):
    # regnet_y_400mf's first block: 32 -> 48 channels, stride 2, groups of 8 (48 // 8 = 6 groups),
    # squeeze-and-excitation to round(0.25 * 32) = 8 channels of the block's input.
    block = analyses("regnet_y_400mf").row("trunk_output.block1.block1-0")
    proj = 32 * 48 + 2 * 48  # 1x1/2 + BN
    a = 32 * 48 + 2 * 48  # 1x1 + BN
    b = 48 * (48 // 6) * 9 + 2 * 48  # grouped 3x3/2 + BN
    se = (48 * 8 + 8) + (8 * 48 + 48)  # fc1, fc2 (1x1 convolutions with bias)
    c = 48 * 48 + 2 * 48  # 1x1 + BN
    assert block.params == proj + a + b + se + c == 10_040
    assert block.output_shape == (48, 56, 56)
    # and as torchvision names its modules (block1-0)
    assert analyses("regnet_y_400mf").row("trunk_output.block1.block1-0.f.se.fc1").output_shape == (8, 1, 1)


# ---- ShuffleNet v2 -------------------------------------------------------------------------

def test_shufflenet_strided_unit_params_written_out(analyses):
    # shufflenet_v2_x1_0 stage2.0: 24 -> 116 channels, 56 -> 28; each branch gives 58 channels.
    unit = analyses("shufflenet_v2_x1_0").row("stage2.0")
    branch1 = 24 * 9 + 2 * 24 + 24 * 58 + 2 * 58  # depthwise 3x3/2 + BN, 1x1 + BN
    branch2 = 24 * 58 + 2 * 58 + 58 * 9 + 2 * 58 + 58 * 58 + 2 * 58  # 1x1 + BN, depthwise 3x3/2 + BN, 1x1 + BN
    assert unit.params == branch1 + branch2 == 7_398
    assert unit.macs == 28 * 28 * (24 * 9 + 24 * 58) + 56 * 56 * 24 * 58 + 28 * 28 * (58 * 9 + 58 * 58)
    assert unit.output_shape == (116, 28, 28)


def test_shufflenet_stages_and_names(analyses):
    analysis = analyses("shufflenet_v2_x2_0")
    for stage, (units, channels, size) in {2: (4, 244, 28), 3: (8, 488, 14), 4: (4, 976, 7)}.items():
        rows = [r for r in analysis.rows if r.depth == 2 and r.path.startswith(f"stage{stage}.")]
        assert [r.path for r in rows] == [f"stage{stage}.{u}" for u in range(units)]
        assert analysis.row(f"stage{stage}").output_shape == (channels, size, size)
    # torchvision's module names: a merge's branches add no part to a path
    assert analysis.row("stage3.1.chunk_1").output_shape == (244, 14, 14)  # x.chunk(2, dim=1)[1]
    assert analysis.row("stage3.1.branch2.3").params == 244 * 9  # the depthwise 3x3
    assert analysis.row("conv5.0").output_shape == (2048, 7, 7)
    assert analysis.row("fc").params == 2048 * 1000 + 1000


# ---- against torch and fvcore: one small variant of each family -----------------------------

@pytest.mark.parametrize("name", ["regnet_y_400mf", "shufflenet_v2_x0_5"])
def test_verify_at_a_small_input(name):
    pytest.importorskip("torch")
    pytest.importorskip("fvcore")
    from archcalc.torch.verify import verify_network

    report = verify_network(analyze(load(name), (3, 64, 64)))
    assert report.ok, [f"{c.path}: {c.problems()}" for c in report.disagreeing]
    assert report.peak_live == (report.analysis.peak_activation_bytes,) * 2
    assert report.totals[0].torch_params == PUBLISHED[name][0]
