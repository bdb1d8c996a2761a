"""Every torchvision 0.28 classification model is a zoo name pinned to the figures torchvision publishes.

The table below is copied from torchvision 0.28's weights enums (`<Model>_Weights.<entry>.meta`: `num_params`,
`_ops` in GFLOPS counted as MACs, the eval crop of `transforms`), the default weights of each name: an
independent record of the published figures, against which the specs' own `expect` entries and the
calculator are both held.
"""
from __future__ import annotations

import pytest

from archcalc.core.calc import analyze, check_network
from archcalc.core.spec import load, zoo_index

# Inception v3's num_params counts its auxiliary classifier, which `inception_v3(weights=...)` keeps and evaluation
# does not run: the zoo's network is the evaluated one, and the head a spec of its own (written out in
# tests/test_families_inception.py: 768 -> 1x1 conv 128 -> 5x5 conv 768 -> linear 1000, with BN).
AUX_HEADS = {"inception_v3": 128 * 768 + 2 * 128 + 768 * 128 * 25 + 2 * 768 + 768 * 1000 + 1000}

# name: (weights entry, num_params, _ops GMACs, eval crop)
PUBLISHED = {
    "alexnet": ("IMAGENET1K_V1", 61_100_840, 0.714, 224),
    "convnext_base": ("IMAGENET1K_V1", 88_591_464, 15.355, 224),
    "convnext_large": ("IMAGENET1K_V1", 197_767_336, 34.361, 224),
    "convnext_small": ("IMAGENET1K_V1", 50_223_688, 8.684, 224),
    "convnext_tiny": ("IMAGENET1K_V1", 28_589_128, 4.456, 224),
    "densenet121": ("IMAGENET1K_V1", 7_978_856, 2.834, 224),
    "densenet161": ("IMAGENET1K_V1", 28_681_000, 7.728, 224),
    "densenet169": ("IMAGENET1K_V1", 14_149_480, 3.36, 224),
    "densenet201": ("IMAGENET1K_V1", 20_013_928, 4.291, 224),
    "efficientnet_b0": ("IMAGENET1K_V1", 5_288_548, 0.386, 224),
    "efficientnet_b1": ("IMAGENET1K_V2", 7_794_184, 0.687, 240),
    "efficientnet_b2": ("IMAGENET1K_V1", 9_109_994, 1.088, 288),
    "efficientnet_b3": ("IMAGENET1K_V1", 12_233_232, 1.827, 300),
    "efficientnet_b4": ("IMAGENET1K_V1", 19_341_616, 4.394, 380),
    "efficientnet_b5": ("IMAGENET1K_V1", 30_389_784, 10.266, 456),
    "efficientnet_b6": ("IMAGENET1K_V1", 43_040_704, 19.068, 528),
    "efficientnet_b7": ("IMAGENET1K_V1", 66_347_960, 37.746, 600),
    "efficientnet_v2_l": ("IMAGENET1K_V1", 118_515_272, 56.08, 480),
    "efficientnet_v2_m": ("IMAGENET1K_V1", 54_139_356, 24.582, 480),
    "efficientnet_v2_s": ("IMAGENET1K_V1", 21_458_488, 8.366, 384),
    "googlenet": ("IMAGENET1K_V1", 6_624_904, 1.498, 224),
    "inception_v3": ("IMAGENET1K_V1", 27_161_264, 5.713, 299),
    "maxvit_t": ("IMAGENET1K_V1", 30_919_624, 5.558, 224),
    "mnasnet0_5": ("IMAGENET1K_V1", 2_218_512, 0.104, 224),
    "mnasnet0_75": ("IMAGENET1K_V1", 3_170_208, 0.215, 224),
    "mnasnet1_0": ("IMAGENET1K_V1", 4_383_312, 0.314, 224),
    "mnasnet1_3": ("IMAGENET1K_V1", 6_282_256, 0.526, 224),
    "mobilenet_v2": ("IMAGENET1K_V2", 3_504_872, 0.301, 224),
    "mobilenet_v3_large": ("IMAGENET1K_V2", 5_483_032, 0.217, 224),
    "mobilenet_v3_small": ("IMAGENET1K_V1", 2_542_856, 0.057, 224),
    "regnet_x_16gf": ("IMAGENET1K_V2", 54_278_536, 15.941, 224),
    "regnet_x_1_6gf": ("IMAGENET1K_V2", 9_190_136, 1.603, 224),
    "regnet_x_32gf": ("IMAGENET1K_V2", 107_811_560, 31.736, 224),
    "regnet_x_3_2gf": ("IMAGENET1K_V2", 15_296_552, 3.177, 224),
    "regnet_x_400mf": ("IMAGENET1K_V2", 5_495_976, 0.414, 224),
    "regnet_x_800mf": ("IMAGENET1K_V2", 7_259_656, 0.8, 224),
    "regnet_x_8gf": ("IMAGENET1K_V2", 39_572_648, 7.995, 224),
    "regnet_y_128gf": ("IMAGENET1K_SWAG_E2E_V1", 644_812_894, 374.57, 384),
    "regnet_y_16gf": ("IMAGENET1K_V2", 83_590_140, 15.912, 224),
    "regnet_y_1_6gf": ("IMAGENET1K_V2", 11_202_430, 1.612, 224),
    "regnet_y_32gf": ("IMAGENET1K_V2", 145_046_770, 32.28, 224),
    "regnet_y_3_2gf": ("IMAGENET1K_V2", 19_436_338, 3.176, 224),
    "regnet_y_400mf": ("IMAGENET1K_V2", 4_344_144, 0.402, 224),
    "regnet_y_800mf": ("IMAGENET1K_V2", 6_432_512, 0.834, 224),
    "regnet_y_8gf": ("IMAGENET1K_V2", 39_381_472, 8.473, 224),
    "resnet101": ("IMAGENET1K_V2", 44_549_160, 7.801, 224),
    "resnet152": ("IMAGENET1K_V2", 60_192_808, 11.514, 224),
    "resnet18": ("IMAGENET1K_V1", 11_689_512, 1.814, 224),
    "resnet34": ("IMAGENET1K_V1", 21_797_672, 3.664, 224),
    "resnet50": ("IMAGENET1K_V2", 25_557_032, 4.089, 224),
    "resnext101_32x8d": ("IMAGENET1K_V2", 88_791_336, 16.414, 224),
    "resnext101_64x4d": ("IMAGENET1K_V1", 83_455_272, 15.46, 224),
    "resnext50_32x4d": ("IMAGENET1K_V2", 25_028_904, 4.23, 224),
    "shufflenet_v2_x0_5": ("IMAGENET1K_V1", 1_366_792, 0.04, 224),
    "shufflenet_v2_x1_0": ("IMAGENET1K_V1", 2_278_604, 0.145, 224),
    "shufflenet_v2_x1_5": ("IMAGENET1K_V1", 3_503_624, 0.296, 224),
    "shufflenet_v2_x2_0": ("IMAGENET1K_V1", 7_393_996, 0.583, 224),
    "squeezenet1_0": ("IMAGENET1K_V1", 1_248_424, 0.819, 224),
    "squeezenet1_1": ("IMAGENET1K_V1", 1_235_496, 0.349, 224),
    "swin_b": ("IMAGENET1K_V1", 87_768_224, 15.431, 224),
    "swin_s": ("IMAGENET1K_V1", 49_606_258, 8.741, 224),
    "swin_t": ("IMAGENET1K_V1", 28_288_354, 4.491, 224),
    "swin_v2_b": ("IMAGENET1K_V1", 87_930_848, 20.325, 256),
    "swin_v2_s": ("IMAGENET1K_V1", 49_737_442, 11.546, 256),
    "swin_v2_t": ("IMAGENET1K_V1", 28_351_570, 5.94, 256),
    "vgg11": ("IMAGENET1K_V1", 132_863_336, 7.609, 224),
    "vgg11_bn": ("IMAGENET1K_V1", 132_868_840, 7.609, 224),
    "vgg13": ("IMAGENET1K_V1", 133_047_848, 11.308, 224),
    "vgg13_bn": ("IMAGENET1K_V1", 133_053_736, 11.308, 224),
    "vgg16": ("IMAGENET1K_V1", 138_357_544, 15.47, 224),
    "vgg16_bn": ("IMAGENET1K_V1", 138_365_992, 15.47, 224),
    "vgg19": ("IMAGENET1K_V1", 143_667_240, 19.632, 224),
    "vgg19_bn": ("IMAGENET1K_V1", 143_678_248, 19.632, 224),
    "vit_b_16": ("IMAGENET1K_V1", 86_567_656, 17.564, 224),
    "vit_b_32": ("IMAGENET1K_V1", 88_224_232, 4.409, 224),
    "vit_h_14": ("IMAGENET1K_SWAG_E2E_V1", 633_470_440, 1016.717, 518),
    "vit_l_16": ("IMAGENET1K_V1", 304_326_632, 61.555, 224),
    "vit_l_32": ("IMAGENET1K_V1", 306_535_400, 15.378, 224),
    "wide_resnet101_2": ("IMAGENET1K_V2", 126_886_696, 22.753, 224),
    "wide_resnet50_2": ("IMAGENET1K_V2", 68_883_240, 11.398, 224),
}


def test_the_table_lists_torchvisions_80_classification_models():
    assert len(PUBLISHED) == 80


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_figures(name):
    _, params, gmacs, crop = PUBLISHED[name]
    assert name in zoo_index(), f"{name} is not a zoo name"
    analysis = analyze(load(name))
    assert analysis.input_shape == (3, crop, crop)
    assert analysis.totals.params + AUX_HEADS.get(name, 0) == params
    assert round(analysis.totals.macs / 1e9, 3) == gmacs
    assert analysis.output_shape == (1000,)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_the_spec_pins_and_sources_them(name):
    entry, params, gmacs, _ = PUBLISHED[name]
    verdicts = check_network(load(name))
    assert all(v.ok for v in verdicts), [v for v in verdicts if not v.ok]
    pinned = {(v.expect.what, v.expect.value) for v in verdicts if "torchvision" in (v.expect.source or "")}
    assert ("params", params - AUX_HEADS.get(name, 0)) in pinned
    assert ("macs", gmacs) in pinned
