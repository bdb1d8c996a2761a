"""MobileNet v2 and v3, MNASNet and SqueezeNet against published figures and hand calculations."""
from __future__ import annotations

import pytest

from archcalc.core.calc import analyze, check_network
from archcalc.core.spec import load

# torchvision 0.28 weights meta (IMAGENET1K_V1): num_params, _ops (GMACs at 3 decimals), all at crop 224.
PUBLISHED = {
    "mobilenet_v2": (3_504_872, 0.301),
    "mobilenet_v3_large": (5_483_032, 0.217),
    "mobilenet_v3_small": (2_542_856, 0.057),
    "mnasnet0_5": (2_218_512, 0.104),
    "mnasnet0_75": (3_170_208, 0.215),
    "mnasnet1_0": (4_383_312, 0.314),
    "mnasnet1_3": (6_282_256, 0.526),
    "squeezenet1_0": (1_248_424, 0.819),
    "squeezenet1_1": (1_235_496, 0.349),
}


@pytest.fixture(scope="module")
def analyses():
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            cache[name] = analyze(load(name))
        return cache[name]

    return get


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_torchvision_figures(name, analyses):
    params, gmacs = PUBLISHED[name]
    analysis = analyses(name)
    assert analysis.input_shape == (3, 224, 224)
    assert analysis.totals.params == params
    assert round(analysis.totals.macs / 1e9, 3) == gmacs
    assert analysis.output_shape == (1000,)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_every_figure_in_the_spec_holds_and_has_a_source(name):
    verdicts = check_network(load(name))
    assert verdicts and all(v.ok for v in verdicts), [v for v in verdicts if not v.ok]
    assert all(v.expect.source for v in verdicts)
    meta = load(name).meta
    assert meta["year"] and "arXiv" in meta["paper"] and "torchvision" in meta["accuracy_source"]
    assert 50 < meta["top1"] < meta["top5"] < 100


# ---- hand calculations ----------------------------------------------------------------

def test_mobilenet_v2_inverted_residual_by_hand(analyses):
    """features.3: 24 -> 24 at 56x56, expansion 6 (144), stride 1: residual. Every conv without bias, then BN."""
    expand = 24 * 144 + 2 * 144
    depthwise = 144 * 3 * 3 + 2 * 144
    project = 144 * 24 + 2 * 24
    assert expand + depthwise + project == 8_832
    macs = 56 * 56 * (24 * 144 + 144 * 9 + 144 * 24)
    assert macs == 25_740_288
    row = analyses("mobilenet_v2").row("features.3")
    assert (row.params, row.macs, row.output_shape) == (8_832, macs, (24, 56, 56))
    assert analyses("mobilenet_v2").row("features.3.add").label == "add"


def test_mobilenet_v2_rows_carry_torchvision_module_names(analyses):
    paths = {r.path for r in analyses("mobilenet_v2").rows}
    # features.1 (expansion 1: no 1x1 expansion), features.2 (stride 2: no residual), features.18 the last conv
    assert {"features.0.0", "features.1.conv.0.0", "features.1.conv.1", "features.2.conv.0.0",
            "features.2.conv.3", "features.17.conv.2", "features.18.0", "classifier.1"} <= paths
    assert "features.19" not in paths and "features.2.residual" not in paths
    assert analyses("mobilenet_v2").row("features.17").output_shape == (320, 7, 7)
    assert analyses("mobilenet_v2").row("features.18").output_shape == (1280, 7, 7)


def test_mobilenet_v3_block_with_squeeze_excitation_by_hand(analyses):
    """Large features.4: 24 -> 40, 5x5 depthwise stride 2 (56 -> 28), expanded 72, SE, ReLU.
    SE squeezes to make_divisible(72 // 4 = 18, 8): 16 is more than 10% below 18, so 24."""
    expand = 24 * 72 + 2 * 72
    depthwise = 72 * 25 + 2 * 72
    se = (72 * 24 + 24) + (24 * 72 + 72)  # two 1x1 convs with bias on the pooled 1x1 map
    project = 72 * 40 + 2 * 40
    params = expand + depthwise + se + project
    assert params == 10_328
    macs = 56 * 56 * 24 * 72 + 28 * 28 * 72 * 25 + 2 * 72 * 24 + 28 * 28 * 72 * 40
    assert macs == 9_091_584
    analysis = analyses("mobilenet_v3_large")
    row = analysis.row("features.4")
    assert (row.params, row.macs, row.output_shape) == (params, macs, (40, 28, 28))
    assert analysis.row("features.4.block.2.fc1").output_shape == (24, 1, 1)
    assert analysis.row("features.4.block.2.scale_activation").label == "hardsigmoid"


def test_mobilenet_v3_activations_follow_the_table(analyses):
    analysis = analyses("mobilenet_v3_large")
    assert analysis.row("features.0.2").label == "hardswish"  # the stem
    assert analysis.row("features.2.block.0.2").label == "relu"  # "RE" rows
    assert analysis.row("features.7.block.0.2").label == "hardswish"  # "HS" rows from the 7th on
    # features.1: 16 -> 16, stride 1, expanded 16: no expansion, residual; the depthwise conv comes first
    assert analysis.row("features.1.block.0.0").output_shape == (16, 112, 112)
    head = analysis.row("features.16.0")
    assert head.output_shape == (960, 7, 7) and head.params == 160 * 960  # 6 x the last block's 160
    assert analyses("mobilenet_v3_small").row("classifier.0").params == 576 * 1024 + 1024


def test_mnasnet_residual_block_by_hand(analyses):
    """mnasnet1_0 layers.8.1: 24 -> 24 at 56x56, expansion 3 (72), 3x3 depthwise: residual."""
    params = (24 * 72 + 2 * 72) + (72 * 9 + 2 * 72) + (72 * 24 + 2 * 24)
    macs = 56 * 56 * (24 * 72 + 72 * 9 + 72 * 24)
    assert (params, macs) == (4_440, 12_870_144)
    row = analyses("mnasnet1_0").row("layers.8.1")
    assert (row.params, row.macs, row.output_shape) == (params, macs, (24, 56, 56))
    assert analyses("mnasnet1_0").row("layers.8.1.add").label == "add"


def test_mnasnet_depths_are_rounded_to_multiples_of_8(analyses):
    """alpha 0.5: [32, 16, 24, 40, 80, 96, 192, 320] / 2 = [16, 8, 12, 20, 40, 48, 96, 160]; 12 -> 16, 20 -> 24."""
    analysis = analyses("mnasnet0_5")
    assert analysis.row("layers.0").output_shape[0] == 16
    assert analysis.row("layers.6").output_shape[0] == 8
    assert [analysis.row(f"layers.{8 + s}").output_shape[0] for s in range(6)] == [16, 24, 40, 48, 96, 160]
    assert analysis.row("layers.14").output_shape == (1280, 7, 7)  # 1280 whatever alpha
    assert analysis.row("mean").output_shape == (1280,)


def test_squeezenet_fire_by_hand(analyses):
    """1.0 features.3: Fire(96, 16, 64, 64) at 54x54 (224 -> 7x7/2 conv 109 -> 3x3/2 ceil pool 54)."""
    params = (96 * 16 + 16) + (16 * 64 + 64) + (16 * 64 * 9 + 64)  # convolutions with bias, no BN
    macs = 54 * 54 * (96 * 16 + 16 * 64 + 16 * 64 * 9)
    assert (params, macs) == (11_920, 34_338_816)
    row = analyses("squeezenet1_0").row("features.3")
    assert (row.params, row.macs, row.output_shape) == (params, macs, (128, 54, 54))
    one_one = analyses("squeezenet1_1").row("features.3")  # 3x3/2 stem of 64: 111, pooled to 55
    assert (one_one.params, one_one.output_shape) == ((64 * 16 + 16) + 1_088 + 9_280, (128, 55, 55))


def test_squeezenet_has_no_fully_connected_layer(analyses):
    for name in ("squeezenet1_0", "squeezenet1_1"):
        analysis = analyses(name)
        assert not [r for r in analysis.leaves() if r.label == "linear"]
        classifier = analysis.row("classifier.1")
        assert (classifier.label, classifier.params, classifier.output_shape) == ("conv2d", 512 * 1000 + 1000, (1000, 13, 13))
    # 1.1 pools after the 2nd and 4th Fire (features.5, features.8), 1.0 after the 3rd and 7th (6, 11)
    assert analyses("squeezenet1_1").row("features.5").label == "max_pool2d"
    assert analyses("squeezenet1_0").row("features.11").label == "max_pool2d"


# ---- against torch and fvcore: one small variant of each family -----------------------

# the receptive field is measured where it adds a case: through squeeze-and-excitation gates (the spatial
# field) and ceil-mode pooling; the plain convolution stacks of the other two cost seconds and add none
@pytest.mark.parametrize("name, receptive_field", [
    ("mobilenet_v2", False), ("mobilenet_v3_small", True), ("mnasnet0_5", False), ("squeezenet1_1", True)])
def test_verify_at_a_small_input(name, receptive_field):
    pytest.importorskip("torch")
    pytest.importorskip("fvcore")
    from archcalc.torch.verify import verify_network

    report = verify_network(analyze(load(name), input_shape=(3, 32, 32)), receptive_field=receptive_field)
    assert report.ok, [f"{c.path}: {c.problems()}" for c in report.disagreeing]
    if receptive_field:
        assert report.rf is not None and report.rf.measured_ok and report.rf.ok
    total, _ = report.totals
    assert total.torch_params == PUBLISHED[name][0]
