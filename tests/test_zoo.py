"""The zoo against its published figures; the lecture-era networks (LeNet, AlexNet, VGG,
Inception, GoogLeNet) also against the Keras tables of lecture 001 and hand calculations."""
from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from pathlib import Path

import pytest
from click.testing import CliRunner

import archcalc
from archcalc.cli import main
from archcalc.core.calc import Analysis, analyze, check_network
from archcalc.core.figures import describe
from archcalc.core.spec import load

LECTURE_ZOO = [
    "lenet5", "lenet5_keras", "alexnet", "alexnet_paper", "alexnet_keras",
    "vgg11", "vgg11_lrn", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_c", "vgg16_bn", "vgg19", "vgg19_bn",
    "inception_naive", "inception_bottleneck", "googlenet",
]
TABLES = json.loads((Path(__file__).parent / "fixtures" / "seed001_tables.json").read_text(encoding="utf-8"))["tables"]
KERAS_TYPES = {"Conv2D": "conv2d", "MaxPooling2D": "max_pool2d", "Flatten": "flatten", "Dense": "linear"}


@lru_cache(maxsize=None)
def analysis(name: str) -> Analysis:
    return analyze(load(name))


# ---- (1) every published figure of every zoo network -----------------------------------

@pytest.mark.parametrize("name", sorted(archcalc.zoo_index()))
def test_every_published_figure_holds(name):
    verdicts = check_network(load(name))
    failures = [describe(v) for v in verdicts if not v.ok]
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("name", LECTURE_ZOO)
def test_lecture_networks_carry_sourced_figures(name):
    network = load(name)
    assert network.expect, f"{name} has no published figures"
    assert all(e.source.strip() for e in network.expect)
    assert any(e.what in ("params", "macs") and e.unit is None and e.layer is None for e in network.expect), \
        f"{name}: no exact parameter or MAC count"
    assert network.meta.get("year")


def test_wrong_claims_are_flagged_not_failed():
    verdicts = {(v.expect.value, v.expect.unit): v for v in check_network(load("inception_bottleneck"))
                if v.expect.what == "macs"}
    for claimed in ((353, "M"), (358, "M")):  # seed 000, cs231n
        verdict = verdicts[claimed].verdict
        assert verdict.status == "off" and verdict.figure.wrong and verdict.ok and verdict.label == "known wrong"
    assert verdicts[(271351808, None)].status == "exact"
    assert "271,351,808" in describe(verdicts[(353, "M")])


def test_archcalc_check_passes_on_the_lecture_zoo():
    result = CliRunner().invoke(main, ["check", *LECTURE_ZOO])
    assert result.exit_code == 0, result.output
    assert " 0 failed" in result.output


def test_googlenet_table_folds_into_its_modules():
    result = CliRunner().invoke(main, ["table", "googlenet", "--depth", "1"])
    assert result.exit_code == 0, result.output
    names = [line.split()[0] for line in result.output.splitlines() if line.startswith("inception")]
    assert names == ["inception3a", "inception3b", "inception4a", "inception4b", "inception4c",
                     "inception4d", "inception4e", "inception5a", "inception5b"]
    assert "Total params: 6,624,904" in result.output


# ---- (2) lecture 001's Keras tables, row by row ------------------------------------------

def keras_shape(printed: str) -> tuple[int, ...]:
    """(None, H, W, C) -> (C, H, W); (None, F) -> (F,)."""
    dims = [int(d) for d in re.findall(r"\d+", printed)]
    return tuple(dims) if len(dims) == 1 else (dims[2], dims[0], dims[1])


@pytest.mark.parametrize("name", sorted(TABLES))
def test_fixture_param_column_reads_as_printed(name):
    # The printed column with its separators removed is the value typed next to it
    # (this also covers the seed's misplaced '118.0160').
    for _, _, printed, value in TABLES[name]["rows"]:
        assert int(re.sub(r"[.,]", "", printed)) == value
    assert sum(row[3] for row in TABLES[name]["rows"]) == TABLES[name]["total"]


@pytest.mark.parametrize("name", sorted(TABLES))
def test_seed001_keras_table_row_by_row(name):
    table = TABLES[name]["rows"]
    # torchvision's VGG adds an adaptive 7x7 average pool (the identity at 224x224) that Keras has not.
    rows = [r for r in analysis(name).leaves() if r.label in KERAS_TYPES.values()]
    assert [r.label for r in rows] == [KERAS_TYPES[kind] for kind, *_ in table]
    for row, (kind, shape, _, params) in zip(rows, table):
        assert row.output_shape == keras_shape(shape), (row.path, kind, shape)
        assert row.params == params, (row.path, kind, shape)
    weight_rows = [r for r in rows if r.label in ("conv2d", "linear")]
    assert len(weight_rows) == analysis(name).totals.weight_layers
    assert analysis(name).totals.params == TABLES[name]["total"]


# ---- (3) hand calculations ---------------------------------------------------------------

def test_lenet5_by_hand():
    a = analysis("lenet5")
    assert (32 - 5) // 1 + 1 == 28 and 28 // 2 == 14 and 14 - 5 + 1 == 10 and 10 // 2 == 5
    assert a.row("features.C5").output_shape == (120, 1, 1)
    per_layer = [(5 * 5 * 1 + 1) * 6, (5 * 5 * 6 + 1) * 16, (5 * 5 * 16 + 1) * 120, (120 + 1) * 84, (84 + 1) * 10]
    assert per_layer == [156, 2416, 48120, 10164, 850]
    assert a.totals.params == sum(per_layer) == 61_706
    # lenet5_keras: 'same' keeps 28x28, so the first dense layer sees 7*7*16 = 784 values.
    assert analysis("lenet5_keras").row("classifier.F5").params == 7 * 7 * 16 * 120 + 120 == 94_200


def test_alexnet_conv1_by_hand():
    assert (227 - 11) % 4 == 0 and (227 - 11) // 4 + 1 == 55
    for name in ("alexnet_paper", "alexnet_keras"):
        row = analysis(name).row("features.0")  # conv1
        assert row.output_shape == (96, 55, 55)
        assert row.allocated == 55 * 55 * 96 == 290_400
        assert row.params == 11 * 11 * 3 * 96 + 96 == 34_944
        assert row.macs == 55 * 55 * 96 * 11 * 11 * 3 == 105_415_200


def test_alexnet_paper_groups_by_hand():
    a = analysis("alexnet_paper")
    # groups=2: each kernel sees half the input maps (the maps of its own GPU).
    # one nn.Sequential as lecture 003 writes it: conv, ReLU, LRN, pool; conv, ReLU, LRN, pool; conv, ReLU x 3; pool
    assert a.row("features.4").params == 5 * 5 * 48 * 256 + 256 == 307_456  # conv2
    assert a.row("features.8").params == 3 * 3 * 256 * 384 + 384  # conv3 connects across GPUs
    assert a.row("features.10").params == 3 * 3 * 192 * 384 + 384 == 663_936  # conv4
    assert a.row("features.12").params == 3 * 3 * 192 * 256 + 256 == 442_624  # conv5
    assert (a.row("features.2").label, a.row("features.2").params) == ("lrn", 0)
    saved = (5 * 5 * 48 * 256) + (3 * 3 * 192 * 384) + (3 * 3 * 192 * 256)  # the halves that groups drop
    assert analysis("alexnet_keras").totals.params - a.totals.params == saved == 62_378_344 - 60_965_224


def test_alexnet_torchvision_classifier_by_hand():
    a = analysis("alexnet")
    assert a.row("avgpool").output_shape == (256, 6, 6)
    # torchvision's classifier: Dropout, Linear, ReLU, Dropout, Linear, ReLU, Linear
    assert a.row("classifier.1").params == 256 * 6 * 6 * 4096 + 4096
    conv = [(64, 3 * 11 * 11, 55), (192, 64 * 25, 27), (384, 192 * 9, 13), (256, 384 * 9, 13), (256, 256 * 9, 13)]
    fc = 9216 * 4096 + 4096 * 4096 + 4096 * 1000
    assert a.totals.macs == sum(c * k * s * s for c, k, s in conv) + fc == 714_188_480


def test_vgg16_first_fully_connected_by_hand():
    row = analysis("vgg16").row("classifier.0")
    assert row.params == 7 * 7 * 512 * 4096 + 4096 == 102_764_544
    assert row.macs == 7 * 7 * 512 * 4096 == 102_760_448  # seed 000 lists this weights-only figure


def test_vgg16_conv_weights_match_the_cs231n_table_of_seed_000():
    # Seed 000 (cs231n VGG16 table) counts weights only: params: (3*3*3)*64 = 1,728 ...
    weights = [1_728, 36_864, 73_728, 147_456, 294_912, 589_824, 589_824,
               1_179_648, 2_359_296, 2_359_296, 2_359_296, 2_359_296, 2_359_296]
    convs = [r for r in analysis("vgg16").leaves() if r.label == "conv2d"]
    assert [r.params - r.output_shape[0] for r in convs] == weights


CONFIGS = {
    "vgg11": [64, 128, 256, 256, 512, 512, 512, 512],
    "vgg13": [64, 64, 128, 128, 256, 256, 512, 512, 512, 512],
    "vgg16": [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512],
    "vgg19": [64, 64, 128, 128] + [256] * 4 + [512] * 8,
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_vgg_batch_norm_adds_two_parameters_and_two_statistics_per_channel(name):
    plain, bn = analysis(name), analysis(f"{name}_bn")
    channels = sum(CONFIGS[name])
    assert bn.totals.params - plain.totals.params == 2 * channels
    assert bn.totals.non_trainable == 2 * channels and plain.totals.non_trainable == 0
    assert bn.totals.macs == plain.totals.macs


def test_vgg16_c_by_hand():
    # Config C: the last convolution of stages 3-5 is 1x1, saving 8 of 9 weights per connection.
    saved = 8 * (256 * 256 + 512 * 512 + 512 * 512)
    assert saved == 4_718_592
    assert analysis("vgg16").totals.params - analysis("vgg16_c").totals.params == saved
    assert analysis("vgg16_c").totals.params == 133_638_952
    # torchvision's numbering: stage 3 is features.10 (conv), .12, .14, .16 (pool)
    assert analysis("vgg16_c").row("features.14").output_shape == (256, 56, 56)
    assert analysis("vgg16_c").row("features.14").params == 256 * 256 + 256


def test_vgg11_lrn_costs_what_vgg11_costs():
    lrn, plain = analysis("vgg11_lrn"), analysis("vgg11")
    assert lrn.totals.params == plain.totals.params == 132_863_336
    assert lrn.totals.macs == plain.totals.macs
    assert [r.path for r in lrn.leaves() if r.label == "lrn"] == ["features.2"]  # after conv1 and its ReLU


def test_inception_module_ops_by_hand():
    naive = [28 * 28 * 128 * 1 * 1 * 256, 28 * 28 * 192 * 3 * 3 * 256, 28 * 28 * 96 * 5 * 5 * 256]
    bottleneck = [28 * 28 * 64 * 1 * 1 * 256, 28 * 28 * 64 * 1 * 1 * 256, 28 * 28 * 128 * 1 * 1 * 256,
                  28 * 28 * 192 * 3 * 3 * 64, 28 * 28 * 96 * 5 * 5 * 64, 28 * 28 * 64 * 1 * 1 * 256]
    assert analysis("inception_naive").totals.macs == sum(naive) == 854_196_224
    assert analysis("inception_bottleneck").totals.macs == sum(bottleneck) == 271_351_808
    assert analysis("inception_naive").output_shape == (128 + 192 + 96 + 256, 28, 28)
    assert analysis("inception_bottleneck").output_shape == (128 + 192 + 96 + 64, 28, 28)


def test_googlenet_inception3a_by_hand():
    row = analysis("googlenet").row("inception3a")
    weights = 192 * 64 + 192 * 96 + 96 * 128 * 9 + 192 * 16 + 16 * 32 * 3 * 3 + 192 * 32  # no conv bias
    channels = 64 + 96 + 128 + 16 + 32 + 32
    assert row.params == weights + 2 * channels == 155_872
    assert row.non_trainable == 2 * channels
    assert row.output_shape == (64 + 128 + 32 + 32, 28, 28)


def test_googlenet_sizes_with_ceil_mode():
    sizes = [112]
    for kernel in (3, 3, 3, 2):  # maxpool1-4, stride 2, ceil_mode
        sizes.append(math.ceil((sizes[-1] - kernel) / 2) + 1)
    assert sizes == [112, 56, 28, 14, 7]
    a = analysis("googlenet")
    got = [a.row(p).output_shape[1] for p in ("conv1", "maxpool1", "maxpool2", "maxpool3", "maxpool4")]
    assert got == sizes
    assert a.row("fc").params == 1024 * 1000 + 1000


def test_every_zoo_name_is_defined_by_one_file_and_found_there():
    """A name in two files would make `load(name)` depend on the order files are looked in."""
    from archcalc.core.spec import _zoo_files, variant_names, zoo_document, zoo_file

    seen: dict[str, list[str]] = {}
    for path in map(Path, _zoo_files()):
        for name in variant_names(json.loads(path.read_text()), path):
            seen.setdefault(name, []).append(path.name)
    assert {name: files for name, files in seen.items() if len(files) > 1} == {}
    for name, (file,) in seen.items():
        assert zoo_file(name).name == file
    assert zoo_document(_zoo_files()[0]) is zoo_document(_zoo_files()[0])  # read once per process


def test_the_torch_sample_covers_every_family_layer_type_merge_and_layout():
    """tests/conftest.py's zoo_sample (what the suite runs in torch) against every spec of the zoo, read here."""
    from conftest import zoo_sample

    from archcalc.core.spec import Group, zoo_index

    def kinds(node) -> set:
        if isinstance(node, Group):
            return {node.kind}.union(*(kinds(child) for child in node.children))
        return {node.type}

    sample = zoo_sample()
    everywhere = {name: kinds(load(name).root) | {load(name).family} for name in zoo_index()}
    assert set().union(*everywhere.values()) == set().union(*(everywhere[name] for name in sample))
    assert {"lenet5", "alexnet", "vgg16", "googlenet", "resnet18", "vit_b_32", "swin_t"} <= set(sample)
