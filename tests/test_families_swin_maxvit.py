"""Swin v1/v2 T/S/B and MaxViT-T against published figures, hand calculations and torch.

The small configurations at the end run the families' own specs (their parameters made small)
through `verify`: shapes, parameters, fvcore's count, peak live memory and the receptive field
measured by the gradient probe.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from archcalc.core.calc import analyze, check_network
from archcalc.core.spec import load, resolve

SPECS = Path(__file__).parent.parent / "specs"
SWINS = ["swin_t", "swin_s", "swin_b", "swin_v2_t", "swin_v2_s", "swin_v2_b"]

# torchvision 0.28 weights meta: num_params, _ops (GMACs at 3 decimals) and the evaluation crop.
PUBLISHED = {
    "swin_t": (28_288_354, 4.491, 224),
    "swin_s": (49_606_258, 8.741, 224),
    "swin_b": (87_768_224, 15.431, 224),
    "swin_v2_t": (28_351_570, 5.94, 256),
    "swin_v2_s": (49_737_442, 11.546, 256),
    "swin_v2_b": (87_930_848, 20.325, 256),
    "maxvit_t": (30_919_624, 5.558, 224),
}


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
    assert verdicts and all(v.ok for v in verdicts), [v for v in verdicts if not v.ok]
    assert all(v.expect.source for v in verdicts)


def test_paper_figures(analyses):
    """Swin paper Table 1(a): T 28M / 4.5G, S 50M / 8.7G, B 88M / 15.4G; MaxViT paper Table 2: T 31M / 5.6G."""
    for name, millions, gmacs in (("swin_t", 28, 4.5), ("swin_s", 50, 8.7), ("swin_b", 88, 15.4), ("maxvit_t", 31, 5.6)):
        totals = analyses(name).totals
        assert (round(totals.params / 1e6), round(totals.macs / 1e9, 1)) == (millions, gmacs), name


def test_meta_has_year_paper_and_accuracy():
    for name, year, top1 in (("swin_t", 2021, 81.474), ("swin_v2_b", 2022, 84.112), ("maxvit_t", 2022, 83.7)):
        meta = load(name).meta
        assert meta["year"] == year and "arXiv" in meta["paper"]
        assert meta["top1"] == top1 and "torchvision" in meta["accuracy_source"]


def test_swin_t_shifted_block_by_hand(analyses):
    # Stage 1 of Swin-T: 96 channels on 56x56, 3 heads, 7x7 windows (8x8 = 64 windows of 49), shifted by 3.
    rows = {r.path: r for r in analyses("swin_t").rows}
    attn = rows["features.1.1.attn"]
    assert attn.params == 4 * 96 * 96 + 4 * 96 + 13 * 13 * 3 == 37_755  # q/k/v, output, bias table
    assert attn.macs == 56 * 56 * 4 * 96 * 96 + 2 * 64 * 49 * 49 * 96 == 145_108_992
    mlp = rows["features.1.1.mlp"]  # torchvision's MLP module: fc1 (0), GELU, fc2 (3); norm2 before it
    assert mlp.params == 96 * 384 + 384 + 384 * 96 + 96 == 74_208 and rows["features.1.1.norm2"].params == 192
    assert mlp.macs == 56 * 56 * 2 * 96 * 384 == 231_211_008
    merging = rows["features.2"]  # the patch merging after stage 1
    assert merging.output_shape == (28, 28, 192)  # channels last, as torchvision
    assert merging.params == 384 * 192 + 2 * 384 == 74_496
    assert merging.macs == 28 * 28 * 384 * 192 == 57_802_752


def test_swin_t_attention_matmuls_add_up(analyses):
    # q.kT and attn.v: 2 x positions x 49 x C per block (FlopCounterMode's aten.bmm on torchvision's swin_t:
    # 280,283,136 flops = 140,141,568 MACs)
    depths, widths, sizes = (2, 2, 6, 2), (96, 192, 384, 768), (56, 28, 14, 7)
    matmuls = sum(d * 2 * s * s * 49 * c for d, c, s in zip(depths, widths, sizes))
    assert matmuls == 140_141_568
    projections = sum(r.macs - 2 * r.input_shape[0] * r.input_shape[1] * 49 * r.input_shape[2]
                      for r in analyses("swin_t").rows if r.label == "window_attention")  # HxWxC
    assert projections == sum(d * s * s * 4 * c * c for d, c, s in zip(depths, widths, sizes))


def test_swin_t_last_stage_drops_the_shift(analyses):
    # 7x7 map, 7x7 window: one window, so the odd block's shift of 3 is dropped (torchvision's rule)
    rows = {r.path: r for r in analyses("swin_t").rows}
    shifted = rows["features.7.1.attn"]
    assert shifted.macs == 49 * 4 * 768 * 768 + 2 * 1 * 49 * 49 * 768
    assert shifted.allocated == 768 * 49 + 24 * 49 * 49  # the output and one window's 24 attention matrices


def test_swin_v2_block_by_hand(analyses):
    # Swin-V2-T stage 1: 96 channels on 64x64, 3 heads, 8x8 windows (64 of 64 positions): no bias table;
    # a logit scale per head and the MLP 2 -> 512 -> 3 on the 15x15 offsets.
    rows = {r.path: r for r in analyses("swin_v2_t").rows}
    attn = rows["features.1.0.attn"]
    assert attn.params == 4 * 96 * 96 + 4 * 96 + 3 + (2 * 512 + 512) + 512 * 3 == 40_323
    assert attn.macs == 64 * 64 * 4 * 96 * 96 + 2 * 64 * 64 * 64 * 96 + 15 * 15 * (2 * 512 + 512 * 3) == 201_902_592
    merging = rows["features.2"]  # the patch merging after stage 1
    assert merging.params == 384 * 192 + 2 * 192 == 74_112  # norm after the reduction: over 2C


def test_maxvit_layer_by_hand(analyses):
    # MaxViT-T's first layer of the second stage: 64 -> 128 channels, stride 2 to 28x28; 4 heads of 32.
    rows = {r.path: r for r in analyses("maxvit_t").rows}
    layer = "blocks.1.layers.0.layers"
    mbconv = rows[f"{layer}.MBconv"]
    # pre-norm BN 2x64; 1x1 64->512 + BN; dw 3x3 512 + BN; SE 512->32->512 with biases; 1x1 512->128 + bias;
    # shortcut 3x3/2 average pooling and 1x1 64->128 + bias
    assert mbconv.params == (128 + 64 * 512 + 1024 + 9 * 512 + 1024 + 512 * 32 + 32 + 32 * 512 + 512
                             + 512 * 128 + 128 + 64 * 128 + 128) == 146_848
    window = rows[f"{layer}.window_attention.attn_layer.1"]
    grid = rows[f"{layer}.grid_attention.attn_layer.1"]
    # 28x28: 16 windows of 7x7 (block) or 16 groups of 49 positions 4 apart (grid): the same counts
    assert window.params == grid.params == 4 * 128 * 128 + 4 * 128 + 13 * 13 * 4 == 66_724
    assert window.macs == grid.macs == 784 * 4 * 128 * 128 + 2 * 16 * 49 * 49 * 128 == 61_214_720
    # in the first stage, the block attention's spatial field is bounded (the SE gate makes the strict one
    # global); the grid's spans the map: global
    first = "blocks.0.layers.0.layers"
    assert rows[f"{first}.window_attention.attn_layer.1"].rf.spatial_size is not None
    assert rows[f"{first}.grid_attention.attn_layer.1"].rf.spatial_size is None


def small(family: str, params: dict, size: int):
    """The family's own spec (its builder and blocks), with small parameters, at a small input."""
    document = copy.deepcopy(json.loads((SPECS / f"{family}.json").read_text()))
    document["params"].update(params)
    document["input"] = [3, size, size]
    del document["variants"]
    return resolve(document, family, f"{family}.json")


TINY_SWIN = {"embed": 8, "depths": [2, 2], "heads": [2, 4], "window": 3, "num_classes": 10}


@pytest.mark.parametrize("v2", [False, True])
def test_small_swin_verifies_against_torch(v2):
    from archcalc.torch.verify import verify_network

    pytest.importorskip("fvcore")
    # 28x28: 7x7 after the 4x4/4 stem, padded to 9x9 for 3x3 windows shifted by 1; patch merging pads 7 to 8
    # (4x4), padded again to 6x6 for the windows
    network = small("swin", {**TINY_SWIN, "v2": v2}, 28)
    report = verify_network(analyze(network))
    assert report.ok, [c.path for c in report.disagreeing]
    assert report.peak_live is not None and report.peak_live[0] == report.peak_live[1]
    rf = report.rf
    assert rf is not None and rf.measured_ok and rf.measured == rf.expected
    # two blocks of 3x3 windows, the second shifted by 1, on the stem's 4-pixel grid: 6 positions, 24 pixels
    rows = {r.path: r for r in analyze(network).rows}
    assert rows["features.1.1"].rf.size == (24, 24)


def test_small_maxvit_verifies_against_torch():
    from archcalc.torch.verify import verify_network

    pytest.importorskip("fvcore")
    # 64x64: stem 32x32, stages at 16x16 and 8x8, blocks and grids of 2x2 (the field before the first grid fits
    # the input: the probe need not grow it, which grid attention could not take)
    network = small("maxvit", {"stem": 8, "widths": [8, 16], "depths": [1, 1], "head_dim": 4, "partition": 2,
                               "num_classes": 10}, 64)
    report = verify_network(analyze(network))
    assert report.ok, [c.path for c in report.disagreeing]
