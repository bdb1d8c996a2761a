"""EfficientNet B0-B7 and V2-S/M/L and ConvNeXt T/S/B/L against published figures and hand calculations."""
from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from archcalc.cli import main
from archcalc.core.calc import analyze, check_network
from archcalc.core.spec import load
from archcalc.render import render

EFFICIENTNETS = [f"efficientnet_b{i}" for i in range(8)] + ["efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l"]
CONVNEXTS = ["convnext_tiny", "convnext_small", "convnext_base", "convnext_large"]

# torchvision 0.28 weights meta: num_params, _ops (GMACs at 3 decimals) and the evaluation crop.
PUBLISHED = {
    "efficientnet_b0": (5_288_548, 0.386, 224),
    "efficientnet_b1": (7_794_184, 0.687, 240),
    "efficientnet_b2": (9_109_994, 1.088, 288),
    "efficientnet_b3": (12_233_232, 1.827, 300),
    "efficientnet_b4": (19_341_616, 4.394, 380),
    "efficientnet_b5": (30_389_784, 10.266, 456),
    "efficientnet_b6": (43_040_704, 19.068, 528),
    "efficientnet_b7": (66_347_960, 37.746, 600),
    "efficientnet_v2_s": (21_458_488, 8.366, 384),
    "efficientnet_v2_m": (54_139_356, 24.582, 480),
    "efficientnet_v2_l": (118_515_272, 56.08, 480),
    "convnext_tiny": (28_589_128, 4.456, 224),
    "convnext_small": (50_223_688, 8.684, 224),
    "convnext_base": (88_591_464, 15.355, 224),
    "convnext_large": (197_767_336, 34.361, 224),
}


@pytest.fixture(scope="module")
def analyses():
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            cache[name] = analyze(load(name))
        return cache[name]

    return get


@pytest.mark.parametrize("name", EFFICIENTNETS + CONVNEXTS)
def test_torchvision_figures(name, analyses):
    params, gmacs, crop = PUBLISHED[name]
    analysis = analyses(name)
    assert analysis.input_shape == (3, crop, crop)
    assert analysis.totals.params == params
    assert round(analysis.totals.macs / 1e9, 3) == gmacs
    assert analysis.output_shape == (1000,)


@pytest.mark.parametrize("name", EFFICIENTNETS + CONVNEXTS)
def test_every_claim_in_the_spec_holds(name):
    verdicts = check_network(load(name))
    assert verdicts and all(v.ok for v in verdicts), [v for v in verdicts if not v.ok]
    assert all(v.expect.source for v in verdicts)


def test_paper_figures():
    """EfficientNet paper Table 2: B0 0.39B, B7 37B multiply-adds; ConvNeXt paper: 4.5/8.7/15.4/34.4 G."""
    assert round(analyze(load("efficientnet_b0")).totals.macs / 1e9, 2) == 0.39
    b7 = analyze(load("efficientnet_b7")).totals.macs
    assert round(b7 / 1e9) == 38 and b7 // 10**9 == 37  # the paper's 37B is cut, not rounded: recorded as such
    (claim,) = [v for v in check_network(load("efficientnet_b7")) if v.expect.value == 37]
    assert claim.status == "truncates" and claim.expect.rounding == "down" and "600" in claim.expect.note
    for name, paper in zip(CONVNEXTS, (4.5, 8.7, 15.4, 34.4)):
        assert round(analyze(load(name)).totals.macs / 1e9, 1) == paper


def test_meta_has_year_paper_and_accuracy():
    for name, year, top1 in (("efficientnet_b0", 2019, 77.692), ("convnext_large", 2022, 84.414)):
        meta = load(name).meta
        assert meta["year"] == year and "arXiv" in meta["paper"]
        assert meta["top1"] == top1 and "torchvision" in meta["accuracy_source"]


# ---- hand calculations ----------------------------------------------------------------

def test_mbconv_residual_block_by_hand(analyses):
    """B0 stage 2, second block: 24 -> 24 channels at 56x56, expand 6 (144), 3x3 depthwise, SE to 24//4 = 6."""
    hw = 56 * 56
    expand = 24 * 144, 2 * 144  # 1x1 conv without bias, BN gamma/beta
    depthwise = 144 * 3 * 3, 2 * 144
    se = (144 * 6 + 6) + (6 * 144 + 144)  # two 1x1 convs with bias on a 1x1 map
    project = 144 * 24, 2 * 24
    params = sum(expand) + sum(depthwise) + se + sum(project)
    assert params == 10_710
    macs = hw * 24 * 144 + hw * 144 * 9 + (144 * 6 + 6 * 144) + hw * 144 * 24
    assert macs == 25_742_016
    row = analyses("efficientnet_b0").row("features.2.1")
    assert (row.params, row.macs) == (params, macs)
    assert row.non_trainable == 2 * (144 + 144 + 24)  # BN running mean and variance
    assert row.output_shape == (24, 56, 56)


def test_mbconv_strided_block_squeezes_from_its_input(analyses):
    """B0 stage 2, first block: 16 -> 24, stride 2 (112 -> 56), expand to 96; SE squeezes to 16//4 = 4, not 96//4."""
    params = (16 * 96 + 2 * 96) + (96 * 9 + 2 * 96) + (96 * 4 + 4) + (4 * 96 + 96) + (96 * 24 + 2 * 24)
    macs = 112 * 112 * 16 * 96 + 56 * 56 * 96 * 9 + 2 * 96 * 4 + 56 * 56 * 96 * 24
    row = analyses("efficientnet_b0").row("features.2.0")
    assert (row.params, row.macs) == (params, macs) == (6_004, 29_203_200)
    assert row.output_shape == (24, 56, 56)
    paths = [r.path for r in analyses("efficientnet_b0").rows if r.path.startswith("features.2.0.")]
    assert not any(p.endswith(".add") for p in paths)  # stride 2: no skip connection


def test_mbconv_with_expand_ratio_one_has_no_expansion(analyses):
    """B0 stage 1: 32 -> 16, expand ratio 1: depthwise 3x3 on 32 channels, SE to 8, project."""
    params = (32 * 9 + 64) + (32 * 8 + 8) + (8 * 32 + 32) + (32 * 16 + 32)
    row = analyses("efficientnet_b0").row("features.1.0")
    assert row.params == params == 1_448
    paths = [r.path for r in analyses("efficientnet_b0").rows if r.leaf and r.path.startswith("features.1.0.")]
    # torchvision's MBConv without expansion: block.0 the depthwise Conv2dNormActivation, block.1 the SE, block.2 the projection
    assert paths == ["features.1.0.block.0.0", "features.1.0.block.0.1", "features.1.0.block.0.2",
                     "features.1.0.block.1.avgpool", "features.1.0.block.1.fc1", "features.1.0.block.1.activation",
                     "features.1.0.block.1.fc2", "features.1.0.block.1.scale_activation", "features.1.0.block.1.mul",
                     "features.1.0.block.2.0", "features.1.0.block.2.1"]


def test_fused_mbconv_blocks_by_hand(analyses):
    """EfficientNetV2-S at 384: stem 24 channels at 192x192; stage 1 fused blocks with expand ratio 1 (a 3x3
    convolution 24 -> 24 + BN + SiLU, residual); stage 2's first block expands 4x: 3x3/2 24 -> 96, then 1x1 -> 48."""
    hw = 192 * 192
    row = analyses("efficientnet_v2_s").row("features.1.0")
    assert (row.params, row.macs) == (24 * 24 * 9 + 2 * 24, hw * 24 * 24 * 9) == (5_232, 191_102_976)
    assert [r.path for r in analyses("efficientnet_v2_s").rows if r.leaf and r.path.startswith("features.1.0.")] == [
        "features.1.0.block.0.0", "features.1.0.block.0.1",
        "features.1.0.block.0.2", "features.1.0.stochastic_depth",
        "features.1.0.add"]  # torchvision's FusedMBConv: block.0 a Conv2dNormActivation; the residual sum a row
    row = analyses("efficientnet_v2_s").row("features.2.0")
    params = (24 * 96 * 9 + 2 * 96) + (96 * 48 + 2 * 48)  # fused 3x3/2 + BN, project 1x1 + BN; no SE
    macs = 96 * 96 * (24 * 96 * 9 + 96 * 48)
    assert (row.params, row.macs, row.output_shape) == (params, macs, (48, 96, 96))
    # stage 4 is an MBConv stage: 64 -> 128, expand 4 (256), SE from the input's 64 // 4 = 16
    row = analyses("efficientnet_v2_s").row("features.4.0")
    assert row.params == (64 * 256 + 512) + (256 * 9 + 512) + (256 * 16 + 16) + (16 * 256 + 256) + (256 * 128 + 256)
    assert analyses("efficientnet_v2_s").row("features.7.0").output_shape == (1280, 12, 12)


def test_efficientnet_v2_s_against_torch_at_a_small_input():
    pytest.importorskip("torch")
    pytest.importorskip("fvcore")
    from archcalc.torch.verify import verify_network

    report = verify_network(analyze(load("efficientnet_v2_s"), (3, 64, 64)), receptive_field=False)
    assert report.ok, [f"{c.path}: {c.problems()}" for c in report.disagreeing]
    assert report.peak_live == (report.analysis.peak_activation_bytes,) * 2
    assert report.totals[0].torch_params == 21_458_488


def test_convnext_block_by_hand(analyses):
    """ConvNeXt-T stage 1 block: C = 96 at 56x56."""
    c, hw = 96, 56 * 56
    params = (c * 49 + c) + 2 * c + (c * 4 * c + 4 * c) + (4 * c * c + c) + c  # dw, LN, MLP, layer scale
    macs = hw * c * 49 + hw * c * 4 * c + hw * 4 * c * c
    assert (params, macs) == (79_296, 245_962_752)
    row = analyses("convnext_tiny").row("features.1.1")
    assert (row.params, row.macs, row.non_trainable) == (params, macs, 0)
    down = analyses("convnext_tiny").row("features.2")  # the downsampling after stage 1
    assert (down.params, down.output_shape) == (2 * 96 + 96 * 192 * 4 + 192, (192, 28, 28))


# ---- compound scaling -------------------------------------------------------------------

def _stage_layout(analysis):
    """(blocks, output channels) of each EfficientNet stage, read from the table."""
    layout = []
    for s in range(1, 8):
        stage = analysis.row(f"features.{s}")
        blocks = [r for r in analysis.rows if r.depth == 3 and r.path.startswith(f"features.{s}.")]
        layout.append((len(blocks), stage.output_shape[0]))
    return layout


@pytest.mark.parametrize("name, stem, layout, head", [
    # B3: width 1.2, depth 1.4. 16 * 1.2 = 19.2 rounds to 16, more than 10% down, so 24;
    # 112 * 1.2 = 134.4 -> 136; 192 * 1.2 = 230.4 -> 232. Repeats 1.4, 2.8, 2.8, 4.2, 4.2, 5.6, 1.4 rounded up.
    ("efficientnet_b3", 40, [(2, 24), (3, 32), (3, 48), (5, 96), (5, 136), (6, 232), (2, 384)], 1536),
    # B7: width 2.0, depth 3.1. Repeats 3.1, 6.2, 6.2, 9.3, 9.3, 12.4, 3.1 rounded up.
    ("efficientnet_b7", 64, [(4, 32), (7, 48), (7, 80), (10, 160), (10, 224), (13, 384), (4, 640)], 2560),
])
def test_compound_scaling_by_hand(name, stem, layout, head, analyses):
    analysis = analyses(name)
    assert analysis.row("features.0.0").output_shape[0] == stem
    assert _stage_layout(analysis) == layout
    assert analysis.row("features.8.0").output_shape[0] == head
    for row in analysis.leaves():
        if row.label == "conv2d" and not row.path.endswith((".fc1", ".fc2")):  # the SE convs are not rounded
            assert row.output_shape[0] % 8 == 0, row.path


def test_b7_spatial_sizes(analyses):
    """600 -> 300 (stem) -> 150 -> 75 -> 38 -> 19: floor((n + 2p - k)/2) + 1 for k = 3 or 5, p = k // 2."""
    analysis = analyses("efficientnet_b7")
    sizes = [analysis.row(f"features.{s}").output_shape[1] for s in range(1, 8)]
    assert sizes == [300, 150, 75, 38, 38, 19, 19]


# ---- folding and speed --------------------------------------------------------------------

@pytest.mark.parametrize("name", ["efficientnet_b0", "efficientnet_b3", "convnext_tiny"])
def test_folded_tables_add_up_to_the_full_table(name):
    runner = CliRunner()
    sums = {}
    for depth in (None, 1, 2):
        args = ["table", name, "--format", "json"] + ([] if depth is None else ["--depth", str(depth)])
        result = runner.invoke(main, args)
        assert result.exit_code == 0, result.output
        rows = json.loads(result.stdout)["layers"]
        sums[depth] = tuple(sum(r[key] for r in rows) for key in ("params", "macs_per_image", "activations_per_image"))
    assert sums[1] == sums[2] == sums[None]
    assert sums[None][0] == PUBLISHED[name][0]
    assert round(sums[None][1] / 1e9, 3) == PUBLISHED[name][1]


def test_b7_table_is_fast():
    start = time.perf_counter()
    text = render(analyze(load("efficientnet_b7")))
    elapsed = time.perf_counter() - start
    assert "66,347,960" in text
    assert elapsed < 1.0, f"efficientnet_b7 table took {elapsed:.2f} s"


def test_b5_to_b7_use_the_larger_batch_norm_eps():
    for name, eps in (("efficientnet_b4", 1e-5), ("efficientnet_b5", 1e-3), ("efficientnet_b7", 1e-3)):
        stem_bn = [n for n in load(name).root.children[0].children[0].children if n.type == "batch_norm2d"]
        assert [n.attrs["eps"] for n in stem_bn] == [eps]
