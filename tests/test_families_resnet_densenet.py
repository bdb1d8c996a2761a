"""ResNet and DenseNet specs: single blocks worked out by hand, folding, and the Keras convention."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import archcalc
from archcalc.cli import main
from archcalc.core.calc import check_network


def analysis(name: str) -> archcalc.Analysis:
    return archcalc.analyze(archcalc.load(name))


def bn(channels: int) -> int:
    return 2 * channels  # gamma and beta


# ---- ResNet ------------------------------------------------------------------------------

def test_bottleneck_256_64_256_at_56x56_by_hand():
    row = analysis("resnet50").row("layer1.1")  # identity shortcut
    weights = 256 * 64 + 64 * 64 * 3 * 3 + 64 * 256
    assert row.params == weights + bn(64) + bn(64) + bn(256) == 70_400
    assert row.macs == 56 * 56 * weights == 218_365_952
    assert row.output_shape == (256, 56, 56)
    assert row.non_trainable == 2 * (64 + 64 + 256)


def test_first_bottleneck_projects_its_input():
    row = analysis("resnet50").row("layer1.0")  # 64 -> 256 channels: 1x1 projection + BN
    main_branch = 64 * 64 + 64 * 64 * 9 + 64 * 256
    projection = 64 * 256
    assert row.params == main_branch + projection + bn(64) + bn(64) + bn(256) + bn(256)
    assert row.macs == 56 * 56 * (main_branch + projection)


def test_basic_block_with_stride_and_projection_by_hand():
    row = analysis("resnet18").row("layer2.0")  # 64x56x56 -> 128x28x28
    weights = 64 * 128 * 9 + 128 * 128 * 9 + 64 * 128
    assert row.params == weights + 3 * bn(128) == 230_144
    assert row.macs == 28 * 28 * weights
    assert row.output_shape == (128, 28, 28)


def test_v1_strides_the_first_1x1_convolution():
    v15, v1 = analysis("resnet50"), analysis("resnet50_v1")
    assert v15.row("layer2.0.conv1").output_shape == (128, 56, 56)
    assert v1.row("layer2.0.conv1").output_shape == (128, 28, 28)
    # v1.5 runs that 1x1 convolution on 4x the pixels in the first block of stages 2-4
    extra = sum((h * h - (h // 2) ** 2) * cin * planes for h, cin, planes in ((56, 256, 128), (28, 512, 256), (14, 1024, 512)))
    assert v15.totals.macs - v1.totals.macs == extra == 231_211_008
    assert v15.totals.params == v1.totals.params == 25_557_032



# ---- ResNeXt and Wide ResNet: the bottleneck's 3x3 in groups, or wider ---------------------

# torchvision 0.28 weights meta (IMAGENET1K_V1): num_params, _ops (GMACs as written), crop 224.
GROUPED = {
    "resnext50_32x4d": (25_028_904, 4.23),
    "resnext101_32x8d": (88_791_336, 16.414),
    "resnext101_64x4d": (83_455_272, 15.46),
    "wide_resnet50_2": (68_883_240, 11.398),
    "wide_resnet101_2": (126_886_696, 22.753),
}


@pytest.mark.parametrize("name", sorted(GROUPED))
def test_resnext_and_wide_resnet_torchvision_figures(name):
    params, gmacs = GROUPED[name]
    a = analysis(name)
    assert a.totals.params == params
    assert round(a.totals.macs / 1e9, 3) == gmacs
    verdicts = check_network(archcalc.load(name))
    assert verdicts and all(v.ok and v.expect.source for v in verdicts)
    meta = archcalc.load(name).meta
    assert meta["year"] == 2016 and "arXiv:16" in meta["paper"] and "torchvision" in meta["accuracy_source"]


def test_resnext_bottleneck_by_hand():
    """resnext50_32x4d layer1.0: width = int(64 * 4 / 64) * 32 = 128; the 3x3 in 32 groups of 4 channels."""
    row = analysis("resnext50_32x4d").row("layer1.0")
    weights = 64 * 128 + 128 * (128 // 32) * 9 + 128 * 256
    projection = 64 * 256
    assert row.params == weights + projection + bn(128) + bn(128) + bn(256) + bn(256) == 63_488
    assert row.macs == 56 * 56 * (weights + projection)
    conv2 = analysis("resnext101_64x4d").row("layer4.0.conv2")  # width int(512 * 4 / 64) * 64 = 2048
    assert (conv2.params, conv2.output_shape) == (2048 * (2048 // 64) * 9, (2048, 7, 7))


def test_wide_resnet_doubles_the_bottleneck_width():
    """wide_resnet50_2 layer1.0: width_per_group 128 gives a 128-channel 3x3 (64 in resnet50); the output stays 256."""
    row = analysis("wide_resnet50_2").row("layer1.0")
    weights = 64 * 128 + 128 * 128 * 9 + 128 * 256
    assert row.params == weights + 64 * 256 + bn(128) + bn(128) + bn(256) + bn(256) == 206_336
    assert row.output_shape == (256, 56, 56)
    wide, plain = analysis("wide_resnet101_2"), analysis("resnet101")
    assert wide.row("layer4.2.conv2").output_shape == (1024, 7, 7)
    assert plain.row("layer4.2.conv2").output_shape == (512, 7, 7)
    assert wide.output_shape == plain.output_shape == (1000,)


def test_resnext_verifies_against_torch_at_a_small_input():
    pytest.importorskip("torch")
    pytest.importorskip("fvcore")
    from archcalc.torch.verify import verify_network

    report = verify_network(archcalc.analyze(archcalc.load("resnext50_32x4d"), input_shape=(3, 32, 32)),
                            receptive_field=False)
    assert report.ok, [f"{c.path}: {c.problems()}" for c in report.disagreeing]
    assert report.totals[0].torch_params == GROUPED["resnext50_32x4d"][0]

def test_paper_50_layer_figure_is_cut_not_rounded():
    """He et al. Table 1: 3.8 x 10^9 multiply-adds for the 50-layer (v1) network."""
    v15, v1 = analysis("resnet50").totals.macs, analysis("resnet50_v1").totals.macs
    assert round(v15 / 1e9, 3) == 4.089  # torchvision's _ops for v1.5
    assert 3.8575e9 < v15 - 231_211_008 < 3.8585e9  # minus the hand-counted v1.5 extra (above): 3.858 G
    assert v1 // 10**8 == 38 and round(v1 / 1e8) == 39
    (claim,) = [v for v in check_network(archcalc.load("resnet50_v1")) if v.expect.what == "macs" and v.expect.value == 3.8]
    assert claim.status == "truncates" and claim.ok


def test_plain34_drops_exactly_the_three_projections():
    projections = 64 * 128 * 28 * 28 + 128 * 256 * 14 * 14 + 256 * 512 * 7 * 7
    assert analysis("resnet34").totals.macs - analysis("plain34").totals.macs == projections
    assert analysis("resnet34").totals.params - analysis("plain34").totals.params == (
        64 * 128 + 128 * 256 + 256 * 512 + bn(128) + bn(256) + bn(512)
    )


@pytest.mark.parametrize("name, blocks, kind", [
    ("resnet18", [2, 2, 2, 2], "basic"),
    ("resnet34", [3, 4, 6, 3], "basic"),
    ("resnet50", [3, 4, 6, 3], "bottleneck"),
    ("resnet152", [3, 8, 36, 3], "bottleneck"),
])
def test_resnet_folds_into_stages_and_blocks(name, blocks, kind):
    result = analysis(name)
    stages = [r.path for r in result.at_depth(1)]
    assert stages == ["input", "conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "flatten", "fc"]
    block_rows = [r for r in result.at_depth(2) if r.path.startswith("layer")]
    assert [r.path for r in block_rows] == [f"layer{s + 1}.{b}" for s, n in enumerate(blocks) for b in range(n)]
    assert {r.label for r in block_rows} == {kind}
    for depth in (1, 2):
        rows = result.at_depth(depth)
        assert sum(r.params for r in rows) == result.totals.params
        assert sum(r.macs for r in rows) == result.totals.macs
        assert sum(r.allocated for r in rows) == result.totals.activations


def test_resnet50_stage_outputs():
    result = analysis("resnet50")
    assert [result.row(f"layer{s}").output_shape for s in (1, 2, 3, 4)] == [
        (256, 56, 56), (512, 28, 28), (1024, 14, 14), (2048, 7, 7)]


# ---- DenseNet ----------------------------------------------------------------------------

def test_dense_layer_by_hand():
    row = analysis("densenet121").row("features.denseblock1.denselayer1")  # 64 channels in, k=32
    assert row.params == bn(64) + 64 * 128 + bn(128) + 128 * 32 * 9 == 45_440
    assert row.macs == 56 * 56 * (64 * 128 + 128 * 32 * 9)
    assert row.output_shape == (64 + 32, 56, 56)  # its input, concatenated with 32 new channels


def test_dense_block_by_hand():
    row = analysis("densenet121").row("features.denseblock1")
    inputs = [64 + 32 * j for j in range(6)]
    assert row.params == sum(bn(c) + c * 128 + bn(128) + 128 * 32 * 9 for c in inputs)
    assert row.output_shape == (64 + 6 * 32, 56, 56)


def test_transition_by_hand():
    row = analysis("densenet121").row("features.transition1")
    assert row.params == bn(256) + 256 * 128 == 33_280
    assert row.macs == 56 * 56 * 256 * 128  # the 1x1 convolution runs before the pooling
    assert row.output_shape == (128, 28, 28)


@pytest.mark.parametrize("name, growth, config, init", [
    ("densenet121", 32, (6, 12, 24, 16), 64),
    ("densenet161", 48, (6, 12, 36, 24), 96),
    ("densenet169", 32, (6, 12, 32, 32), 64),
    ("densenet201", 32, (6, 12, 48, 32), 64),
])
def test_densenet_channels_and_folding(name, growth, config, init):
    result = analysis(name)
    channels = init
    for s, layers in enumerate(config, start=1):
        channels += layers * growth
        assert result.row(f"features.denseblock{s}").output_shape[0] == channels
        if s < 4:
            channels //= 2
            assert result.row(f"features.transition{s}").output_shape[0] == channels
    assert result.row("classifier").params == channels * 1000 + 1000
    names = [r.path for r in result.at_depth(2)]
    assert names[:5] == ["input", "features.conv0", "features.norm0", "features.relu0", "features.pool0"]
    assert names[5:12] == ["features.denseblock1", "features.transition1", "features.denseblock2", "features.transition2",
                           "features.denseblock3", "features.transition3", "features.denseblock4"]
    for depth in (1, 2):
        rows = result.at_depth(depth)
        assert sum(r.params for r in rows) == result.totals.params
        assert sum(r.macs for r in rows) == result.totals.macs
        assert sum(r.allocated for r in rows) == result.totals.activations


# ---- Keras convention through the CLI ----------------------------------------------------

def cli_totals(*args: str) -> dict:
    outcome = CliRunner().invoke(main, ["table", *args, "--format", "json"])
    assert outcome.exit_code == 0, outcome.output
    return json.loads(outcome.stdout)["totals"]


def test_keras_resnet50_counts_biases_and_moving_statistics():
    # Every convolution of ResNet50 (stem, 3 per bottleneck, 4 projections) has a bias and a BN of its width.
    widths = 64 + sum(6 * planes * blocks for planes, blocks in ((64, 3), (128, 4), (256, 6), (512, 3))) + (256 + 512 + 1024 + 2048)
    assert widths == 26_560
    keras = cli_totals("resnet50_keras", "--convention", "keras")
    assert keras["trainable_params"] == 25_557_032 + widths  # torchvision's count + biases
    assert keras["non_trainable"] == 2 * widths  # moving mean and variance
    assert keras["params"] == 25_636_712  # Keras' published total
    assert cli_totals("resnet50_keras")["params"] == 25_557_032 + widths


def test_keras_densenet121_adds_only_moving_statistics():
    bn_channels = 64 + 1024  # norm0, norm5
    channels = 64
    for s, layers in enumerate((6, 12, 24, 16)):
        bn_channels += sum(channels + 32 * j + 128 for j in range(layers))  # norm1, norm2 of each dense layer
        channels += 32 * layers
        if s < 3:
            bn_channels += channels  # the transition's norm
            channels //= 2
    keras = cli_totals("densenet121", "--convention", "keras")
    assert keras["non_trainable"] == 2 * bn_channels
    assert keras["trainable_params"] == 7_978_856
    assert keras["params"] == 8_062_504


def test_keras_convention_in_the_text_table():
    outcome = CliRunner().invoke(main, ["table", "resnet50_keras", "--convention", "keras", "--depth", "1"])
    assert outcome.exit_code == 0
    assert "Total params (Keras: trainable + BN moving statistics): 25,636,712" in outcome.output
