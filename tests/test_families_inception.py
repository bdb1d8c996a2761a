"""Inception v3 and the auxiliary classifiers of Inception v3 and GoogLeNet: published figures, hand calculations."""
from __future__ import annotations

import pytest

from archcalc.core.calc import analyze, check_network
from archcalc.core.spec import load

# torchvision 0.28 Inception_V3_Weights.IMAGENET1K_V1.meta: num_params (AuxLogits included), _ops, crop 299
INCEPTION_V3_NUM_PARAMS, INCEPTION_V3_GMACS = 27_161_264, 5.713
GOOGLENET_NUM_PARAMS = 6_624_904  # GoogLeNet_Weights.IMAGENET1K_V1.meta num_params: aux1 and aux2 left out


def bn(channels: int) -> int:
    return 2 * channels  # gamma and beta


def basic_conv(cin: int, cout: int, kh: int, kw: int | None = None) -> int:
    """torchvision's BasicConv2d: convolution without bias, then batch norm."""
    return cin * cout * kh * (kh if kw is None else kw) + bn(cout)


@pytest.fixture(scope="module")
def v3():
    return analyze(load("inception_v3"))


def test_torchvision_figures(v3):
    assert v3.input_shape == (3, 299, 299) and v3.output_shape == (1000,)
    assert round(v3.totals.macs / 1e9, 3) == INCEPTION_V3_GMACS  # measured in evaluation: no aux head
    head = analyze(load("inception_v3_aux"))
    assert v3.totals.params + head.totals.params == INCEPTION_V3_NUM_PARAMS
    for name in ("inception_v3", "inception_v3_aux", "googlenet_aux1", "googlenet_aux2", "googlenet"):
        verdicts = check_network(load(name))
        assert verdicts and all(v.ok and v.expect.source for v in verdicts), name


def test_inception_v3_aux_head_by_hand():
    """AuxLogits on 768x17x17: 5x5/3 average pool to 5x5, 1x1 conv to 128, 5x5 conv to 768 (1x1), fc to 1000."""
    params = basic_conv(768, 128, 1) + basic_conv(128, 768, 5) + 768 * 1000 + 1000
    assert params == 3_326_696 == INCEPTION_V3_NUM_PARAMS - 23_834_568
    head = analyze(load("inception_v3_aux"))
    assert head.totals.params == params
    assert head.totals.macs == 5 * 5 * 768 * 128 + 128 * 768 * 25 + 768 * 1000
    assert head.row("AuxLogits.conv1").output_shape == (768, 1, 1)


def test_googlenet_aux_heads_by_hand():
    """InceptionAux(512 or 528): pool to 4x4, 1x1 conv to 128, fc 2048 -> 1024, fc 1024 -> 1000."""
    def head(cin: int) -> int:
        return basic_conv(cin, 128, 1) + (2048 * 1024 + 1024) + (1024 * 1000 + 1000)

    aux1, aux2 = analyze(load("googlenet_aux1")), analyze(load("googlenet_aux2"))
    assert (aux1.totals.params, aux2.totals.params) == (head(512), head(528)) == (3_188_968, 3_191_016)
    assert GOOGLENET_NUM_PARAMS + head(512) + head(528) == 13_004_888
    assert aux1.input_shape == (512, 14, 14) and aux2.input_shape == (528, 14, 14)
    assert aux2.row("aux2.flatten").output_shape == (2048,)
    # the heads' inputs are what googlenet makes at those points
    googlenet = analyze(load("googlenet"))
    assert googlenet.row("inception4a").output_shape == aux1.input_shape
    assert googlenet.row("inception4d").output_shape == aux2.input_shape
    assert "googlenet_aux1" in " ".join(load("googlenet").meta["notes"])
    assert "inception_v3_aux" in " ".join(load("inception_v3").meta["notes"])


def test_inception_a_by_hand(v3):
    """Mixed_5b on 192x35x35 with pool_features 32: 64 + 64 + 96 + 32 = 256 channels."""
    params = (basic_conv(192, 64, 1)
              + basic_conv(192, 48, 1) + basic_conv(48, 64, 5)
              + basic_conv(192, 64, 1) + basic_conv(64, 96, 3) + basic_conv(96, 96, 3)
              + basic_conv(192, 32, 1))
    assert params == 255_904
    row = v3.row("Mixed_5b")
    assert (row.params, row.output_shape) == (params, (256, 35, 35))
    macs = 35 * 35 * (192 * 64 + 192 * 48 + 48 * 64 * 25 + 192 * 64 + 64 * 96 * 9 + 96 * 96 * 9 + 192 * 32)
    assert row.macs == macs


def test_inception_c_factorises_7x7(v3):
    """Mixed_6b (c7 = 128): the 7x7 is a 1x7 then a 7x1 convolution, padded (0, 3) and (3, 0)."""
    one_by_seven = v3.row("Mixed_6b.branch7x7_2.conv")
    assert (one_by_seven.params, one_by_seven.output_shape) == (128 * 128 * 7, (128, 17, 17))
    seven_by_one = v3.row("Mixed_6b.branch7x7_3.conv")
    assert (seven_by_one.params, seven_by_one.macs) == (128 * 192 * 7, 17 * 17 * 128 * 192 * 7)
    widths = [v3.row(f"Mixed_6{m}.branch7x7_1.conv").output_shape[0] for m in "bcde"]
    assert widths == [128, 160, 160, 192]


def test_inception_e_concatenates_inside_its_branches(v3):
    """Mixed_7b: 320 + (384 + 384) + (384 + 384) + 192 = 2048 channels at 8x8."""
    cats = [r.output_shape for r in v3.leaves() if r.path == "Mixed_7b.cat"]  # torch.cat called three times
    assert cats == [(768, 8, 8), (768, 8, 8), (2048, 8, 8)]
    assert v3.row("Mixed_7b").output_shape == (2048, 8, 8)
    assert v3.row("Mixed_7c").params == (basic_conv(2048, 320, 1) + basic_conv(2048, 384, 1) + 2 * basic_conv(384, 384, 1, 3)
                                         + basic_conv(2048, 448, 1) + basic_conv(448, 384, 3) + 2 * basic_conv(384, 384, 1, 3)
                                         + basic_conv(2048, 192, 1))


def test_stem_sizes(v3):
    """299 -> 149 (3x3/2) -> 147 (3x3) -> 147 (3x3 pad 1) -> 73 (pool 3/2) -> 73 (1x1) -> 71 (3x3) -> 35 (pool 3/2)."""
    names = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3", "maxpool2"]
    assert [v3.row(n).output_shape[1] for n in names] == [149, 147, 147, 73, 73, 71, 35]
    assert [v3.row(n).output_shape[0] for n in ("Mixed_5d", "Mixed_6a", "Mixed_6e", "Mixed_7a")] == [288, 768, 768, 1280]


@pytest.mark.parametrize("name, size, receptive_field", [
    ("inception_v3", 75, False),  # its smallest input (torchvision's min_size); its field needs 1441x1441
    ("inception_v3_aux", None, True),
    ("googlenet_aux1", None, True),  # a field after adaptive pooling to 4x4, measured on its inner units
])
def test_verify(name, size, receptive_field):
    pytest.importorskip("torch")
    pytest.importorskip("fvcore")
    from archcalc.torch.verify import verify_network

    network = load(name)
    analysis = analyze(network, input_shape=(3, size, size)) if size else analyze(network)
    report = verify_network(analysis, receptive_field=receptive_field)
    assert report.ok, [f"{c.path}: {c.problems()}" for c in report.disagreeing]
    if receptive_field:
        assert report.rf is not None and report.rf.measured_ok and report.rf.positions >= 2
