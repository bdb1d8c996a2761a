"""`archcalc report`: golden page, lecture claims against hand calculations, tables, determinism, staleness."""
from __future__ import annotations

import ast
import dataclasses
import json
import posixpath
import re
import shutil
import subprocess
import sys
from fractions import Fraction
from html import unescape
from pathlib import Path
from urllib.parse import unquote

import pytest
from click.testing import CliRunner
from hostile_text import HOSTILE, NAME, controls, pipe_cells, tables, unescaped

import archcalc
from archcalc import load
from archcalc.cli import main
from archcalc.core import spec
from archcalc.core.calc import check_network
from archcalc.core.figures import Figure
from archcalc.core.spec import resolve
from archcalc.errors import SpecError
from archcalc.fmt import cell
from archcalc.fmt import markdown_table as table
from archcalc.report import claims as claimslib
from archcalc.report import pages
from archcalc.report.pages import build, generate, network_page, stale

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"


# ---- golden page ---------------------------------------------------------------------------

def test_golden_page_of_a_small_network():
    page = network_page(load(str(FIXTURES / "report_tiny.json")))
    assert page == (FIXTURES / "report_tiny.md").read_text(encoding="utf-8")


def test_golden_page_training_step_by_hand():
    """One AdamW step at batch 1, fp32 (docs/conventions.md, Training), on the tiny network."""
    page = network_page(load(str(FIXTURES / "report_tiny.json")))
    section = page[page.index("## Training step"):page.index("## Published figures")]
    params = (3 * 3 * 3 * 16 + 16) + (16 * 16 * 16 * 10 + 10)
    # the first conv computes no gradient of the network's input; the linear layer both of its products
    assert f"| {16 * 32 * 32 * 27 + 2 * 4096 * 10:,} |" in section
    # kept: the conv's input, the ReLU's output (the pooling's input too, once), the pooling's int64 indices,
    # the linear layer's input
    kept = (3 * 32 * 32 + 16 * 32 * 32 + 16 * 16 * 16) * 4 + 8 * 16 * 16 * 16
    rows = {c[0]: c[1] for c in (_cells(line) for line in section.splitlines() if line.startswith("| "))}
    assert rows["Kept for the backward at the batch (MiB)"] == f"{kept / 2**20:.2f}"
    assert rows["Gradients (MiB)"] == f"{params * 4 / 2**20:.2f}"
    assert rows["Optimizer state (MiB)"] == f"{(2 * params * 4 + 4 * 4) / 2**20:.2f}"  # two moments, 4 step counters


def test_the_explorer_of_the_reports_shows_the_training_step():
    from archcalc.report.pages import network_files

    network = load(str(FIXTURES / "report_tiny.json"))
    explorer = network_files(network, archcalc.analyze(network))["html/report_tiny.html"].decode()
    backward = 16 * 32 * 32 * 27 + 2 * 4096 * 10  # no gradient of the network's input
    assert "Backward MACs per image" in explorer and f">{backward:,}<" in explorer


def test_golden_page_numbers_by_hand():
    page = network_page(load(str(FIXTURES / "report_tiny.json")))
    conv_params, fc_params = 3 * 3 * 3 * 16 + 16, 16 * 16 * 16 * 10 + 10
    conv_macs, fc_macs = 16 * 32 * 32 * 3 * 3 * 3, 4096 * 10
    activations = 3 * 32 * 32 + 16 * 32 * 32 + 16 * 16 * 16 + 10
    assert re.search(rf"\|\s+{conv_params + fc_params:,}\s+\|", page)
    assert f"{conv_macs + fc_macs:,}" in page and f"{2 * (conv_macs + fc_macs):,}" in page
    assert f"{activations:,}" in page
    assert f"{(conv_params + fc_params) * 4 / 2**20:.2f}" in page  # 0.16 MiB
    conv_row = next(line for line in page.splitlines() if line.startswith("| conv "))
    assert [c.strip() for c in conv_row.strip("|").split("|")] == ["conv", "conv2d", "16x32x32", f"{conv_params:,}", f"{conv_macs:,}", "16,384", "3"]
    pool_row = next(line for line in page.splitlines() if line.startswith("| pool "))
    assert pool_row.strip("|").split("|")[-1].strip() == "4"  # 3 + (2 - 1) * 1
    separator = page.splitlines()[page.splitlines().index(next(line for line in page.splitlines() if line.startswith("| Layer "))) + 1]
    assert _cells(separator) == [":--------", ":-----------", "---------:", "---------:", "--------:", "--------------:", "-------:"]


# ---- GitHub-flavoured tables ------------------------------------------------------------------

def _cells(line: str) -> list[str]:
    """The cells of a pipe-table row; an escaped pipe stays inside its cell."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def _tables(text: str) -> list[list[str]]:
    blocks, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    return blocks


def test_markdown_table_aligns_numbers_right():
    text = table([["vgg16", "138,357,544"]], ["Network", "Params"], numeric=[1])
    header, separator, row = text.splitlines()
    assert re.fullmatch(r"\|:-+\|-+:\|", separator)
    assert _cells(row) == ["vgg16", "138,357,544"]


@pytest.mark.parametrize("text, escaped", [
    ("memory: 224*224*64=3.2M", "memory: 224\\*224\\*64=3.2M"),  # two stars would be emphasis
    ("24M * 4 bytes ~= 96MB", "24M * 4 bytes ~= 96MB"),  # a lone star or tilde is literal
    ("a | b", "a \\| b"),  # a pipe would split the cell
    ("VGG16_Weights.IMAGENET1K_V1 meta _metrics", "VGG16_Weights.IMAGENET1K_V1 meta _metrics"),
    ("a _b_ c", "a \\_b\\_ c"),
    ("line\nbreak", "line break"),
])
def test_cell_escapes_what_markdown_would_interpret(text, escaped):
    assert cell(text) == escaped


def test_every_report_table_is_a_well_formed_pipe_table(fresh):
    for path, data in fresh.items():
        if not path.endswith(".md"):
            continue
        for block in _tables(data.decode()):
            widths = {len(_cells(line)) for line in block}
            assert len(widths) == 1, f"{path}: rows of different widths in {block[0]}"
            assert all(re.fullmatch(r":-+|-+:", c) for c in _cells(block[1])), f"{path}: {block[1]}"


def _zoo_row(zoo: str, name: str) -> dict[str, str]:
    header = next(line for line in zoo.splitlines() if line.startswith("| Network ") and "Year" in line)
    row = next(line for line in zoo.splitlines() if line.startswith(f"| [{name}]("))
    return dict(zip(_cells(header), _cells(row)))


def test_zoo_rows_by_hand(fresh):
    zoo = fresh["zoo.md"].decode()
    convs = [(3, 64, 224), (64, 64, 224), (64, 128, 112), (128, 128, 112), (128, 256, 56), (256, 256, 56), (256, 256, 56),
             (256, 512, 28), (512, 512, 28), (512, 512, 28), (512, 512, 14), (512, 512, 14), (512, 512, 14)]
    fcs = [(25088, 4096), (4096, 4096), (4096, 1000)]
    params = sum(9 * i * o + o for i, o, _ in convs) + sum(i * o + o for i, o in fcs)
    macs = sum(s * s * o * 9 * i for i, o, s in convs) + sum(i * o for i, o in fcs)
    row = _zoo_row(zoo, "vgg16")
    assert row["Year"] == "2014" and row["Depth"] == "16" and row["Weight layers"] == "16"
    assert row["Params"] == f"{params / 1e6:.1f} M" and row["MACs"] == f"{macs / 1e9:.2f} G"  # 138.4 M, 15.47 G
    assert row["Weights fp32 (MiB)"] == f"{4 * params / 2**20:.2f}"  # 527.79: Keras' 528 MB
    assert (row["torchvision top-1 %"], row["torchvision top-5 %"]) == ("71.592", "90.382")  # VGG16_Weights.IMAGENET1K_V1
    assert (row["Published top-1 %"], row["Published top-5 %"]) == (f"{100 - 27.0:.1f}", f"{100 - 8.8:.1f}")  # paper, Table 3
    lrn = _zoo_row(zoo, "vgg11_lrn")  # only the paper's figure: never in torchvision's column
    assert (lrn["torchvision top-1 %"], lrn["Published top-1 %"]) == ("", f"{100 - 29.7:.1f}")
    assert float(_zoo_row(zoo, "vgg11")["Published top-1 %"]) > float(lrn["Published top-1 %"])  # LRN does not help
    googlenet = _zoo_row(zoo, "googlenet")  # 3 stem convs, 9 modules of 6 convs two deep, 1 FC
    assert (googlenet["Depth"], googlenet["Weight layers"]) == (f"{3 + 9 * 2 + 1}", f"{3 + 9 * 6 + 1}")
    resnet50 = _zoo_row(zoo, "resnet50")  # 16 bottlenecks of 3 convs; 4 projection shortcuts beside them
    assert (resnet50["Depth"], resnet50["Weight layers"]) == (f"{1 + 16 * 3 + 1}", f"{1 + 16 * 3 + 4 + 1}")
    sections = [line[3:] for line in zoo.splitlines() if line.startswith("## ")]
    assert sections[:3] == ["lenet", "alexnet", "googlenet"] and sections[-2:] == ["Building blocks", "Accuracy figures the lectures quote"]
    assert "inception" not in sections and "| [inception_naive]" in zoo[zoo.index("## Building blocks"):]
    assert f"{15_237_608 + 7 * 7 * 512:,}" in zoo and "15,237,608" in zoo  # the two VGG16 activation totals


def test_lecture_accuracy_figures_are_sourced_and_shown(fresh):
    zoo = fresh["zoo.md"].decode()
    names = set(spec.zoo_index())
    quoted = claimslib.accuracy()
    assert {q.label for q in quoted} >= {"ZFNet", "VGGNet", "GoogLeNet", "ResNet", "VGG16 (Keras)", "VGG19 (Keras)"}
    for q in quoted:
        assert q.sources and all(s.endswith(".txt") for s in q.sources) and set(q.networks) <= names
        assert q.top5_error is not None or (q.top1 is not None and q.top5 is not None)
    keras = next(line for line in zoo.splitlines() if line.startswith("| VGG16 (Keras)"))
    assert _cells(keras)[2:4] == ["71.3", "90.1"]  # lecture 001, Keras Applications table


def test_depth_is_the_longest_path_of_weight_layers():
    conv = {"type": "conv2d", "out": 8, "kernel": 3, "padding": 1}
    document = {"input": [8, 8, 8], "layers": [
        conv,
        {"type": "add", "branches": [[conv, conv], []]},  # residual: two deep beside the identity
        {"type": "concat", "branches": [[conv], [conv, conv, conv], [{"type": "max_pool2d", "kernel": 3, "stride": 1, "padding": 1}]]},
        {"type": "flatten"}, {"type": "linear", "out": 10},
    ]}
    network = resolve(document, "paths", "test")
    assert claimslib.depth(network.root) == 1 + 2 + 3 + 1


# ---- claims against hand calculations -------------------------------------------------------

# AlexNet as in the paper: conv2, conv4, conv5 see half their input (groups=2); FC 9216-4096-4096-1000
ALEXNET_PAPER = ((11 * 11 * 3 + 1) * 96 + (5 * 5 * 48 + 1) * 256 + (9 * 256 + 1) * 384 + (9 * 192 + 1) * 384
                 + (9 * 192 + 1) * 256 + (9216 + 1) * 4096 + (4096 + 1) * 4096 + (4096 + 1) * 1000)
# GoogLeNet as in the paper (Table 1 widths, 5x5 branches, biases, no batch norm, no auxiliary classifiers)
INCEPTIONS = [(192, 64, 96, 128, 16, 32, 32), (256, 128, 128, 192, 32, 96, 64), (480, 192, 96, 208, 16, 48, 64),
              (512, 160, 112, 224, 24, 64, 64), (512, 128, 128, 256, 24, 64, 64), (512, 112, 144, 288, 32, 64, 64),
              (528, 256, 160, 320, 32, 128, 128), (832, 256, 160, 320, 32, 128, 128), (832, 384, 192, 384, 48, 128, 128)]
GOOGLENET_PAPER = ((49 * 3 + 1) * 64 + (64 + 1) * 64 + (9 * 64 + 1) * 192 + (1024 + 1) * 1000 + sum(
    (cin + 1) * c1 + (cin + 1) * r3 + (9 * r3 + 1) * c3 + (cin + 1) * r5 + (25 * r5 + 1) * c5 + (cin + 1) * pp
    for cin, c1, r3, c3, r5, c5, pp in INCEPTIONS))


def _hand() -> dict[str, object]:
    """What each claim should compute to, by hand (the claims file never holds these)."""
    h: dict[str, object] = {
        "out7_s1": [(7 - 3) // 1 + 1] * 2, "out7_s2": [(7 - 3) // 2 + 1] * 2, "out7_p1": [(7 + 2 - 3) // 1 + 1] * 2,
        "alexnet_224_conv1": [(224 - 11) // 4 + 1] * 2,  # 54.25 floors to 54: the slide's 55 needs 227
        "conv_matmul_size": [3 - 2 + 1] * 2, "conv_matmul_macs": 4 * 4,  # 4 outputs of 4 products each
        "same_pad_f3": [(32 + 2 * 1 - 3) // 1 + 1] * 2, "same_pad_f5": [(32 + 2 * 2 - 5) // 1 + 1] * 2,
        "lenet5_F5_units": 120, "lenet5_F6_units": 84, "lenet5_output_units": 10,
        "flat_200": 200 * 200 * 3, "flat_100": 100 * 100 * 3,
        # 3x3 with padding 1 assumed (the slide gives no filter size): (32 + 2 - 3) + 1 = 32
        "cifar_conv": [32, 32, 12], "cifar_relu": [32, 32, 12], "cifar_pool": [32 // 2, 32 // 2, 12], "cifar_fc": [10],
        # H x W x C, as lecture 000 writes them: 32 - 5 + 1 = 28, /2 = 14, 14 - 5 + 1 = 10, /2 = 5
        "lenet5_C1_shape": [28, 28, 6], "lenet5_S2_shape": [14, 14, 6], "lenet5_C3_shape": [10, 10, 16], "lenet5_S4_shape": [5, 5, 16],
        "alexnet_conv1_outputs": 55 * 55 * 96, "alexnet_conv1_filter": 11 * 11 * 3, "alexnet_conv1_weights": 96 * 11 * 11 * 3,
        "alexnet_conv1_biases": 96, "alexnet_conv1_keras": 96 * 11 * 11 * 3 + 96,
        "alexnet_conv1_unshared": 55 * 55 * 96 * (11 * 11 * 3 + 1),  # every output with its own filter and bias
        "alexnet_paper_flatten": [256, 6, 6],
        # LeCun et al. 1998: C1, S2 (coefficient + bias per map), C3 (60 connections of Table I), S4, C5, F6; RBF fixed
        "lenet5_60k": (25 + 1) * 6 + 2 * 6 + (60 * 25 + 16) + 2 * 16 + (400 + 1) * 120 + (120 + 1) * 84,
        "lenet_keras_total": (25 + 1) * 6 + (150 + 1) * 16 + (784 + 1) * 120 + (120 + 1) * 84 + (84 + 1) * 10,
        "googlenet_5m": GOOGLENET_PAPER, "googlenet_4m": GOOGLENET_PAPER,
        "googlenet_12x": Fraction(ALEXNET_PAPER, GOOGLENET_PAPER),  # 8.71x; torchvision's layouts: 9.22x
        "inception_naive_854m": 28 * 28 * 256 * (128 + 192 * 9 + 96 * 25),
        "inception_bottleneck_353m": 28 * 28 * (64 * 256 * 3 + 128 * 256 + 192 * 9 * 64 + 96 * 25 * 64),
        "inception_bottleneck_358m": 271_351_808,
        "inception_naive_1x1": 28 * 28 * 128 * 256, "inception_naive_3x3": 28 * 28 * 192 * 3 * 3 * 256,
        "inception_naive_5x5": 28 * 28 * 96 * 5 * 5 * 256,
        "inception_bottleneck_reduce3x3": 28 * 28 * 64 * 256, "inception_bottleneck_reduce5x5": 28 * 28 * 64 * 256,
        "inception_bottleneck_1x1": 28 * 28 * 128 * 256, "inception_bottleneck_3x3": 28 * 28 * 192 * 3 * 3 * 64,
        "inception_bottleneck_5x5": 28 * 28 * 96 * 5 * 5 * 64,  # the slide's x264 is a typo
        "inception_bottleneck_proj": 28 * 28 * 64 * 256,
        "fcconv_224_out": [1, 1, 1000], "fcconv_384_features": [12, 12, 512],
        "fcconv_384_out": [(12 - 7) // 1 + 1, (12 - 7) // 1 + 1, 1000],
        "fcconv_fc6_224": [(7 - 7) // 1 + 1, (7 - 7) // 1 + 1, 4096], "fcconv_fc7_224": [1, 1, 4096],
        "fcconv_stride32": 2 ** 5,  # five 2x2 pools of stride 2
        "fcconv_alexnet_label": [6, 6, 256],
        "stack7_27c2": 27, "one7_49c2": 49, "stack5_18": 18, "one5_25": 25,
        "saving5_28": 100 * (1 - Fraction(18, 25)), "saving7_44": 100 * (1 - Fraction(27, 49)),
        "rf_3x3_x2": [1 + 2 * 2] * 2, "rf_3x3_x3": [1 + 3 * 2] * 2,
        # layer counts: convolutions per VGG stage (configurations A, B, D, E) + 3 FC layers
        "lenet_keras_depth": 2 + 3, "lenet_keras_convs": 2, "lenet_keras_fcs": 3,
        "alexnet_depth": 5 + 3, "alexnet_convs": 5, "alexnet_fcs": 3,
        "vgg_A_convs": sum((1, 1, 2, 2, 2)), "vgg_A_depth": sum((1, 1, 2, 2, 2)) + 3, "vgg_A_LRN_depth": sum((1, 1, 2, 2, 2)) + 3,
        "vgg_B_convs": sum((2, 2, 2, 2, 2)), "vgg_B_depth": sum((2, 2, 2, 2, 2)) + 3, "vgg_C_depth": sum((2, 2, 3, 3, 3)) + 3,
        "vgg_D_convs": sum((2, 2, 3, 3, 3)), "vgg16_depth": sum((2, 2, 3, 3, 3)) + 3,
        "vgg_E_convs": sum((2, 2, 4, 4, 4)), "vgg19_depth": sum((2, 2, 4, 4, 4)) + 3,
        # GoogLeNet: 3 stem convolutions, 9 modules two deep (1x1 reduce then 3x3 or 5x5), 1 FC
        # hidden FC layers (the 1024 -> 1000 classifier not counted, as lecture 000 reads its own ResNet slide)
        "googlenet_depth": 3 + 9 * 2 + 1, "googlenet_modules": 9, "googlenet_no_fc": 0, "googlenet_avgpool_fc": 0,
        "resnet_no_hidden_fc": 0, "resnet_100plus": 1 + 3 * (3 + 8 + 36 + 3) + 1,
        # VGG experiment steps (001): convolutions of A, B, C, D, E are 8, 10, 13, 13, 16
        "vgg_step3_b": 10 - 8, "vgg_step4_c": 13 - 10, "vgg_step5_d": 13 - 10, "vgg_step6_e": 16 - 13,
        "vgg16_list_000_stage3": 3, "vgg_filters_double": Fraction(512, 512),
        "rf_3x3_x3_004": [1 + 3 * 2] * 2, "conv1x1_96_32": 96 * 32 + 32,
        "fcconv_crops_384": [(384 - 224) // 32 + 1] * 2, "fcconv_strides_32": 2 ** 5,
        "fcconv_shift16": (32 // 16) ** 2,  # offsets 0/16 on both axes
        # ResNet: stem conv + blocks x convolutions per block + FC (projection shortcuts run in parallel)
        "resnet34_depth": 1 + 2 * (3 + 4 + 6 + 3) + 1, "resnet50_depth": 1 + 3 * (3 + 4 + 6 + 3) + 1,
        "resnet101_depth": 1 + 3 * (3 + 4 + 23 + 3) + 1, "resnet152_depth": 1 + 3 * (3 + 8 + 36 + 3) + 1,
        "resnet34_block_convs": 2, "resnet_one_fc": 0,
        # ResNet-34 (He et al. Table 1): stages of 64, 128, 256, 512 filters at 56, 28, 14, 7 (stride 4, 8, 16, 32)
        "resnet_filters_double": Fraction(128, 64), "resnet_resolution_halves": Fraction(8, 4), "resnet_downsample_stride": 2,
        "resnet50_bottlenecks": 3 + 4 + 6 + 3,
        # VGG16: 3x3 convolutions of stride 1 and padding 1, 2x2 max pools of stride 2; no weights in the input or a pool
        "vgg_conv_3x3_000": 3, "vgg_conv_3x3_004": 3, "vgg_conv_stride1": 1, "vgg_conv_pad1": 1,
        "vgg_pool_2x2_000": 2, "vgg_pool_2x2_004": 2, "vgg_pool_stride2": 2, "vgg16_weights_input": 0,
        # three 3x3 against one 7x7, C = 64: 27 C^2 against 49 C^2 weights, and the same ratio of MACs at one size
        "cascade_fewer_params_002": 100 * (1 - Fraction(27, 49)), "cascade_faster_002": 100 * (1 - Fraction(27, 49)),
        # LeNet of lecture 001's table: 5x5 filters, pools of stride 2
        "lenet_table_C1_kernel": 5, "lenet_table_C3_kernel": 5, "lenet_table_pool_stride": 2,
    }
    alexnet_keras = [(11 * 11 * 3 + 1) * 96, (5 * 5 * 96 + 1) * 256, (9 * 256 + 1) * 384, (9 * 384 + 1) * 384,
                     (9 * 384 + 1) * 256, (9216 + 1) * 4096, (4096 + 1) * 4096, (4096 + 1) * 1000]
    h["alexnet_keras_total"] = sum(alexnet_keras)
    for name, value in zip(["conv2.conv", "conv3.conv", "conv4.conv", "conv5.conv", "fc6.linear", "fc7.linear", "fc8"], alexnet_keras[1:]):
        prefix = "features." if name.startswith("conv") else "classifier."
        h[f"alexnet_keras_{prefix}{name}"] = value
    for path, value in {"features.C1": 156, "features.C3": 16 * (5 * 5 * 6 + 1), "classifier.F5": 120 * 785,
                        "classifier.F6": 84 * 121, "classifier.output": 10 * 85}.items():
        h[f"lenet_keras_{path}"] = value
    # LeNet of lecture 001: 'same' 5x5 convolutions keep 28x28, 2x2 pools halve it (H x W x C, as Keras prints)
    for path, value in {"features.C1": [28, 28, 6], "features.S2": [14, 14, 6], "features.C3": [14, 14, 16],
                        "features.S4": [7, 7, 16], "flatten": [7 * 7 * 16], "classifier.F5": [120], "classifier.F6": [84],
                        "classifier.output": [10]}.items():
        h[f"lenet_keras_shape_{path}"] = value
        h[f"lenet_table_{path}"] = value
    h["lenet_table_input"] = [28, 28, 1]
    # AlexNet at 227: conv 11/4 -> 55, pool 3/2 -> 27, conv 5 pad 2 -> 27, pool -> 13, three conv 3 pad 1 -> 13, pool -> 6
    conv1 = (227 - 11) // 4 + 1
    pool1 = (conv1 - 3) // 2 + 1
    pool2 = (pool1 + 4 - 5 + 1 - 3) // 2 + 1
    pool5 = (pool2 - 3) // 2 + 1
    for path, value in {"features.conv1.conv": [conv1, conv1, 96], "features.pool1": [pool1, pool1, 96],
                        "features.conv2.conv": [pool1, pool1, 256], "features.pool2": [pool2, pool2, 256],
                        "features.conv3.conv": [pool2, pool2, 384], "features.conv4.conv": [pool2, pool2, 384],
                        "features.conv5.conv": [pool2, pool2, 256], "features.pool5": [pool5, pool5, 256],
                        "flatten": [pool5 * pool5 * 256], "classifier.fc6.linear": [4096], "classifier.fc7.linear": [4096],
                        "classifier.fc8": [1000]}.items():
        h[f"alexnet_shape_{path}"] = value
    # VGG16: 13 convolutions (Cin, Cout, size), then FC 25088->4096->4096->1000
    convs = [(3, 64, 224), (64, 64, 224), (64, 128, 112), (128, 128, 112), (128, 256, 56), (256, 256, 56), (256, 256, 56),
             (256, 512, 28), (512, 512, 28), (512, 512, 28), (512, 512, 14), (512, 512, 14), (512, 512, 14)]
    paths = [f"features.stage{s}.conv{j}.conv" for s, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)) for j in range(1, n + 1)]
    fcs = [(25088, 4096), (4096, 4096), (4096, 1000)]
    h["vgg16_memory_input"] = 224 * 224 * 3
    for path, (cin, cout, size) in zip(paths, convs):
        h[f"vgg16_memory_{path}"] = size * size * cout
        h[f"vgg16_weights_{path}"] = 9 * cin * cout
        h[f"vgg16_keras_{path}"] = 9 * cin * cout + cout
    for path, (cin, cout, size) in zip(paths, convs):
        h[f"vgg16_keras_shape_{path}"] = [size, size, cout]
    for s, (c, size) in enumerate(((64, 112), (128, 56), (256, 28), (512, 14), (512, 7)), start=1):
        h[f"vgg16_memory_features.stage{s}.pool"] = c * size * size
        h[f"vgg16_weights_features.stage{s}.pool"] = 0
        h[f"vgg16_keras_shape_features.stage{s}.pool"] = [size, size, c]
        h[f"vgg16_block{s}"] = [2 * size, 2 * size, c]
    h["vgg16_keras_shape_flatten"] = [7 * 7 * 512]
    for path, (i, o) in zip(("classifier.0", "classifier.3", "classifier.6"), fcs):
        h[f"vgg16_memory_{path}"] = o
        h[f"vgg16_weights_{path}"] = i * o
        h[f"vgg16_keras_{path}"] = i * o + o
        h[f"vgg16_keras_shape_{path}"] = [o]
    vgg16 = sum(9 * cin * cout + cout for cin, cout, _ in convs) + sum(i * o + o for i, o in fcs)
    assert vgg16 == 138_357_544  # the Keras summary of lecture 001
    conv_macs = sum(size * size * cout * 9 * cin for cin, cout, size in convs)
    table_rows = 224 * 224 * 3 + sum(size * size * cout for _, cout, size in convs) + sum(
        c * size * size for c, size in ((64, 112), (128, 56), (256, 28), (512, 14), (512, 7))) + 4096 + 4096 + 1000
    h.update({
        "alexnet_60m": ALEXNET_PAPER,
        "vgg16_keras_total": vgg16, "vgg16_140m": vgg16, "vgg16_138_4m": vgg16, "vgg16_total_weights": vgg16,
        "fcconv_params": vgg16, "vgg16_528mb": 4 * vgg16,
        "vgg19_143_7m": 143_667_240, "vgg19_549mb": 4 * 143_667_240,
        "vgg16_fc1_share": 100 * Fraction(25088 * 4096 + 4096, vgg16),
        "vgg16_fc_params_share": 100 * Fraction(sum(i * o + o for i, o in fcs), vgg16),
        "vgg16_conv_macs_share": 100 * Fraction(conv_macs, conv_macs + sum(i * o for i, o in fcs)),
        "vgg16_total_memory": table_rows, "vgg16_total_memory_bytes": 4 * table_rows,
    })
    assert table_rows == 15_237_608
    return h


HAND = _hand()


@pytest.mark.parametrize("claim", claimslib.claims(), ids=lambda c: c.id)
def test_claim_matches_hand_calculation(claim):
    result = claimslib.judge(claim)
    if result.error is not None:
        pytest.skip("the lecture's code does not build: test_printed_vgg_block_cannot_give_its_summary")
    assert claim.id in HAND, f"no hand calculation for {claim.id}"
    assert result.computed == HAND[claim.id]
    assert result.ok, f"{claim.id}: {result.status}, marked wrong: {claim.wrong}"


SEEDS = {"000_12de7eca9a6f8a84.txt", "001_f722223972e2077b.txt", "002_7bcb16c13aee3109.txt",
         "003_814164eb272a992a.txt", "004_5313b15ce488b0b1.txt"}
# cs231n 2017 lecture 9 lines that lecture 000 does not contain (the texts were searched for them)
OUTSIDE = {"vgg16_total_memory", "vgg16_total_memory_bytes", "vgg16_total_weights", "inception_bottleneck_358m"}


def test_claims_have_sources_quotes_and_conventions():
    for claim in claimslib.claims():
        assert claim.quote and claim.convention and claim.sources
        assert claim.in_lectures == all(source in SEEDS for source in claim.sources), claim.id
        assert claim.in_lectures or "cs231n" in claim.sources[0], claim.id
    assert {c.id for c in claimslib.claims() if not c.in_lectures} == OUTSIDE


def test_outside_figures_are_not_in_the_seed_texts():
    seeds = ROOT.parent / "shared" / "seeds"
    if not seeds.is_dir():
        pytest.skip("the lecture texts are not next to this checkout")
    text = " ".join((seeds / name).read_text(encoding="utf-8") for name in SEEDS)
    for phrase in ("24M", "96MB", "138M", "358M"):
        assert phrase not in text


def _raw_claims() -> list[dict]:
    """The claims of claims.json read straight from the file, one per wording."""
    raw = json.loads((ROOT / "archcalc" / "report" / "claims.json").read_text(encoding="utf-8"))
    return [{**c, **w} for c in raw["claims"] for w in c.get("wordings", [{}])]


def test_headline_counts_come_from_the_data(fresh):
    """Every number of the headline is counted here from claims.json itself: the computed claims the texts write
    and those they only imply, the lectures' errors and the authors' own figures apart, and the other statements."""
    raw = json.loads((ROOT / "archcalc" / "report" / "claims.json").read_text(encoding="utf-8"))
    lecture = [c for c in _raw_claims() if all(s in SEEDS for s in c["sources"])]
    written = [c for c in lecture if not c.get("implied")]
    implied = [c for c in lecture if c.get("implied")]
    errors = sum(1 for c in written if c.get("wrong") and not c.get("authors"))
    authors = sum(1 for c in written if c.get("authors"))
    status = {r.claim.id: r.status for r in claimslib.results()}
    exact = sum(1 for c in written if not c.get("wrong") and status[c["id"]] == "exact")
    other = raw["not_computed"] + raw["accuracy"]
    other_wrong = sum(1 for o in other if o.get("verdict") == "wrong")
    imprecise = sum(1 for o in other if o.get("verdict") == "imprecise")
    assert len(lecture) == len(written) + len(implied) and implied and authors == 2
    page, index = fresh["claims.md"].decode(), fresh["README.md"].decode()
    head = f"{len(lecture)} computed claims of the lecture texts: {len(written)} figures they write ({exact} exact, "
    for text in (page, index):
        assert head in text
        assert f"{errors} errors of the lectures, {authors} the authors' own figures they repeat) and {len(implied)} numbers" in text
        assert f"besides, {len(other)} other numeric statements checked against the papers" in text
        assert f"{other_wrong} wrong, {imprecise} imprecise" in text
    assert f"[{errors} errors of the lectures]" in index
    zoo = " ".join((ROOT / "docs" / "zoo.md").read_text(encoding="utf-8").split())  # the paragraph on the claims
    for figure in (f"the {len(lecture)} computed claims", f"{len(written)} figures they write", f"{errors} of them errors",
                   f"{authors} the authors' own figures", f"{len(implied)} numbers they imply", f"{len(other)} other numeric",
                   f"{other_wrong} wrong and {imprecise} imprecise"):
        assert figure in zoo, figure


def _claim_rows(page: str) -> dict[str, list[str]]:
    """Claim number -> the cells of its rows (claims.md: one per table the claim is in; a network page: one)."""
    rows: dict[str, list[str]] = {}
    for block in _tables(page):
        header = _cells(block[0])
        if header[0] != "#" or "Verdict" not in header:
            continue
        for line in block[2:]:
            cells = _cells(line)
            rows.setdefault(cells[0], []).append(cells[header.index("Verdict")])
    return rows


def test_a_claim_has_one_verdict_on_every_page(fresh):
    """claims.md and every network page show a claim under one number with one verdict, and each lecture claim is on
    the page of every zoo network it is computed on (a layout of the claims file counting as the network it extends)."""
    numbers = pages.claim_numbers(claimslib.results())
    verdicts = {number: set(cells) for number, cells in _claim_rows(fresh["claims.md"].decode()).items()}
    assert len(verdicts) == len(numbers)
    assert all(len(shown) == 1 for shown in verdicts.values()), {n: v for n, v in verdicts.items() if len(v) > 1}
    for path, content in fresh.items():
        if path.startswith("networks/"):
            for number, cells in _claim_rows(content.decode()).items():
                assert not number.startswith("X."), f"{path}: {number} is not a lecture claim"
                assert set(cells) == verdicts[number], (path, number, cells, verdicts[number])
    googlenet = _claim_rows(fresh["networks/googlenet.md"].decode())
    for name in ("googlenet_5m", "googlenet_4m", "googlenet_12x", "googlenet_no_fc"):
        assert numbers[name] in googlenet, name
    assert numbers["lenet5_60k"] in _claim_rows(fresh["networks/lenet5_paper.md"].decode())
    assert not any(numbers[n] in _claim_rows(fresh["networks/vgg16.md"].decode()) for n in OUTSIDE)


def test_a_lecture_figure_in_a_spec_is_judged_as_its_claim():
    """A zoo spec's published figure taken from a lecture text has the verdict of the claim on that figure:
    GoogLeNet's 4 M and 5 M or LeNet-5's 60k are judged once, in claims.json, on the layout they are about."""
    claims = {(r.claim.ref.network, json.dumps(r.claim.value), r.claim.unit): r for r in claimslib.results()}
    cited = 0
    for name in archcalc.zoo_index():
        for verdict in check_network(load(name)):
            e = verdict.expect
            if not re.match(r"lecture \d{3}_[0-9a-f]{16}\.txt", e.source):
                continue  # a paper's or torchvision's figure (which may name the lecture whose code it follows)
            value = list(e.value) if isinstance(e.value, (list, tuple)) else e.value
            keys = [(name, json.dumps(v), e.unit) for v in (value, value[1:] + value[:1] if isinstance(value, list) else value)]
            claim = next((claims[k] for k in keys if k in claims), None)
            assert claim is not None, f"{name}: {e.source} is a lecture figure no claim judges"
            assert (claim.claim.wrong, claim.ok) == (e.wrong, verdict.verdict.ok), (name, e.source)
            cited += 1
    assert cited >= 20


def test_no_page_says_seed(fresh):
    """What teachers read names the lecture texts, never the word the repository uses for them."""
    for path, content in fresh.items():
        if path.endswith((".md", ".html")):
            assert "seed" not in content.decode().lower(), path


def test_a_claimed_shape_keeps_the_axis_order_of_its_source():
    """The Claimed column of a shape is the source's numbers in the source's order: H x W x C where the text writes
    28x28x6, C x H x W where the code writes 256 * 6 * 6."""
    for claim in claimslib.claims():
        if isinstance(claim.value, list) and len(claim.value) == 3:
            written = [int(n) for n in re.findall(r"\d+", claim.quote)]
            windows = [written[i:i + 3] for i in range(len(written) - 2)]
            assert claim.value in windows, (claim.id, claim.value, claim.quote)
            order = "H x W x C" if claim.value[-1] != claim.value[0] and claim.value[0] == claim.value[1] else "C x H x W"
            assert order in claim.convention or claim.value[0] == claim.value[1] == claim.value[2], claim.id


def test_other_statements_carry_a_verdict():
    for item in [*claimslib.unchecked(), *claimslib.accuracy()]:
        assert item.verdict in claimslib.CHECKS
        assert item.check.startswith(item.verdict) or item.verdict in ("wrong", ""), item.quote
    quoted = {q.label: q for q in claimslib.accuracy()}
    assert quoted["AlexNet"].verdict == "wrong" and "16.4" not in quoted["AlexNet"].check  # no guess at where 16% comes from
    assert quoted["AlexNet (SuperVision)"].verdict == "wrong"  # 26.5% for the paper's 26.2%
    assert any(u.verdict == "imprecise" and ">14 triệu ảnh" in u.quote for u in claimslib.unchecked())


def test_no_fc_wordings_share_one_reading(fresh):
    """GoogLeNet's and ResNet's "no FC layers" are read one way in every lecture: no hidden FC layer, the classifier
    apart, as lecture 000 says on its ResNet slide ("no FC at the end, only the FC 1000")."""
    results = {r.claim.id: r for r in claimslib.results()}
    wordings = ("googlenet_no_fc", "googlenet_avgpool_fc", "resnet_one_fc", "resnet_no_hidden_fc")
    for name in wordings:
        r = results[name]
        assert r.claim.ref.exclude == ("fc",) and r.claim.ref.of == "linear" and "hidden FC" in r.claim.convention
        assert (r.computed, r.status, r.claim.wrong) == (0, "exact", False)
    assert results["googlenet_no_fc"].claim.sources == ("000_12de7eca9a6f8a84.txt", "002_7bcb16c13aee3109.txt")
    # the one FC layer each keeps is its classifier: 1024 -> 1000 and 512 -> 1000
    assert claimslib.quantity(claimslib.Ref("googlenet", "params", "fc")) == 1024 * 1000 + 1000
    assert claimslib.quantity(claimslib.Ref("resnet34", "count", of="linear")) == 1
    page = fresh["claims.md"].decode()
    section = page[page.index("## One claim, several wordings"):page.index("## 1.")]
    rows = {_cells(line)[2]: _cells(line)[-1] for line in _tables(section)[0][2:]}
    assert rows["Uses average pooling instead of FC layers at the top of the ConvNet"] == "exact"
    assert next(v for k, v in rows.items() if k.startswith("Không có lớp kết nối")) == "exact"
    assert "-100" not in page


def test_printed_vgg_block_cannot_give_its_summary():
    result = claimslib.judge(next(c for c in claimslib.claims() if c.id == "vgg_block_code"))
    # a 2x2 pool after every convolution: 224 -> 112 -> 56 | 28 -> 14 | 7 -> 3 -> 1 | the next pool has no 2x2 window
    size = 224
    for _ in range(2 + 2 + 3):
        size //= 2
    assert size == 1
    assert "block4.conv1.pool" in result.error and "larger than the padded input 1" in result.error
    assert result.beside == (("the pool after the loop (vgg16)", 5),)


def test_googlenet_and_alexnet_figures_on_the_papers_networks(fresh):
    results = {r.claim.id: r for r in claimslib.results()}
    assert f"{float(Fraction(ALEXNET_PAPER, GOOGLENET_PAPER)):.2f}" == "8.71"
    assert dict(results["googlenet_12x"].beside)["torchvision layouts"] == Fraction(61_100_840, 6_624_904)  # 9.22x
    assert dict(results["googlenet_5m"].beside)["torchvision layout without the classifier"] == 6_624_904 - 1_025_000
    assert dict(results["alexnet_60m"].beside)["torchvision's 64/192-filter variant"] == 61_100_840
    assert results["lenet5_60k"].status == "exact"
    # the GoogLeNet authors' own 12x and 5 M are theirs, framed so and counted apart from the lectures' errors
    for name in ("googlenet_12x", "googlenet_5m"):
        assert "Szegedy" in results[name].claim.authors and "Section 1" in results[name].claim.authors
    assert "Going Deeper with Convolutions" in results["googlenet_12x"].claim.authors
    assert not results["googlenet_4m"].claim.authors  # cs231n's figure: no paper gives it
    page = fresh["networks/googlenet.md"].decode()
    assert "| 7 M " not in page and "the architecture gives 8.711x" in page and "6,998,552 (6.999 M)" in page


def _claim(value, unit=None, **extra) -> claimslib.Claim:
    ref = claimslib.Ref("alexnet_keras", "activations", "features.0")  # conv1: 290,400 values
    return claimslib.Claim("t", "t", ("s",), "q", "c", Figure(value, unit, **extra), ref)


@pytest.mark.parametrize("value, unit, extra, verdict", [
    (290400, None, {}, "exact"),
    (290.4, "K", {}, "exact"),
    (0.3, "M", {}, "rounds"),
    (0.2, "M", {}, "truncates"),
    (300, "K", {"significant": 1}, "rounds"),
    (280, "K", {}, "off"),
    (50, "%", {}, "off"),
    (200, "K", {"bound": "above"}, "holds"),  # "most": more than
    (300, "K", {"bound": "above"}, "off"),
    (291, "K", {"rounding": "up"}, "rounds up"),  # 290.4 K up: Keras' 549 MB for VGG19's 548.05 MiB
    (290, "K", {"rounding": "up"}, "off"),  # the nearest, but the source rounds up
    (291, "K", {}, "off"),  # rounded up, but not said so
])
def test_verdicts(value, unit, extra, verdict):
    assert claimslib.judge(_claim(value, unit, **extra)).status == verdict


def test_wrong_claims_show_the_correct_number_and_pass_archcalc_check():
    results = {r.claim.id: r for r in claimslib.results()}
    wrong = [r for r in results.values() if r.claim.wrong]
    assert {"inception_bottleneck_353m", "inception_bottleneck_358m", "vgg16_total_memory", "googlenet_5m",
            "googlenet_4m", "alexnet_224_conv1"} <= {r.claim.id for r in wrong}
    assert all(r.claim.note and r.ok for r in wrong)
    assert "271,351,808" in results["inception_bottleneck_353m"].claim.note
    assert "15,237,608" in results["vgg16_total_memory"].claim.note
    output = CliRunner().invoke(main, ["check", "--claims", "-v"])
    assert output.exit_code == 0, output.output
    assert "known-wrong claim inception_bottleneck_353m: claimed 353 M, computed 271,351,808" in output.output


def test_claims_page_lists_wrong_claims_with_correct_numbers(fresh):
    page = fresh["claims.md"].decode()
    wrong = page[page.index("## Wrong in the source"):page.index("## 1.")]
    rows = {_cells(line)[3]: _cells(line)[4] for line in _tables(wrong)[0][2:]}
    assert rows["353 M"] == f"{28 * 28 * (64 * 256 * 3 + 128 * 256 + 192 * 9 * 64 + 96 * 25 * 64):,} (271.4 M)"
    assert "24 M" not in rows  # cs231n's line, not the lecture's: counted apart
    outside = page[page.index("## From outside the lecture texts"):page.index("## Not computed")]
    assert "15,237,608" in outside and "358 M" in outside
    assert "**wrong in the source**" in page and "the exact value, rounded to 2 significant digits, is the claim" in page
    assert "the exact value, rounded up to the digits written, is the claim" in page  # Keras' 549 MB of VGG19
    not_computed = page[page.index("## Not computed"):]
    for quote in ("momentum (0.9)", ">14 triệu ảnh", "Trên dưới 20 tầng", "6 kiến trúc", "26.5%", "Dropout(0.4)"):
        assert quote in not_computed


def test_off_percent_and_wrong_marking():
    result = claimslib.judge(_claim(24, "M", wrong=True))
    assert result.status == "off" and result.ok
    assert result.off_percent == pytest.approx((24e6 - 290400) / 290400 * 100)
    assert not claimslib.judge(_claim(290400, wrong=True)).ok  # marked wrong but it adds up


# ---- determinism and staleness ---------------------------------------------------------------

@pytest.fixture(scope="module")
def fresh() -> dict[str, bytes]:
    return build()


def test_report_is_deterministic(fresh):
    second = build()
    assert fresh.keys() == second.keys()
    assert {"README.md", "zoo.md", "claims.md", "tricks.md", "plots/zoo_params_macs.svg", "plots/zoo_params_macs.png",
            "plots/zoo_accuracy_macs.svg", "plots/zoo_accuracy_macs.png", "plots/vgg16_layers.svg",
            "plots/vgg16_layers.png"} <= fresh.keys()
    assert [p for p in fresh if fresh[p] != second[p]] == []
    assert b"<dc:date>" not in fresh["plots/zoo_params_macs.svg"] and fresh["plots/vgg16_layers.png"].startswith(b"\x89PNG")


def test_index_links_every_page_and_plot(fresh):
    index = fresh["README.md"].decode()
    targets = set(re.findall(r"\]\(([^)#]+)", index))
    assert {p for p in fresh if p != "README.md"} <= targets


def test_html_index_lists_every_network_and_every_link_resolves(fresh):
    built = fresh
    index = built["html/index.html"].decode()
    for name in spec.zoo_index():
        assert f'href="{name}.html"' in index and f'src="../diagrams/{name}.svg"' in index, name
    for page in ("html/index.html", "html/zoo.html", "html/claims.html", "html/tricks.html"):
        text = built[page].decode()
        ids = set(re.findall(r'id="([^"]+)"', text))
        for href in re.findall(r'(?:href|src)="([^"]+)"', text):
            href = unescape(href)
            if href.startswith("data:") or "://" in href:
                continue
            path, _, fragment = href.partition("#")
            target = posixpath.normpath(posixpath.join("html", path)) if path else page
            assert target in built or target == "README.md", (page, href)
            if fragment and target.endswith(".html"):
                assert fragment in (ids if target == page else set(re.findall(r'id="([^"]+)"', built[target].decode()))), \
                    (page, href)
    claims = built["html/claims.html"].decode()
    headings = re.findall(r"^## (.+)$", built["claims.md"].decode(), re.M)
    assert len(re.findall(r"<h2 ", claims)) == len(headings) > 10
    assert "](" not in re.sub(r"<[^>]+>", "", claims)  # no Markdown link left unconverted


def test_committed_reports_are_up_to_date():
    assert stale(ROOT / "reports") == [], "reports/ is stale: run `archcalc report`"


@pytest.fixture
def zoo_copy(tmp_path, monkeypatch):
    copy = tmp_path / "specs"
    shutil.copytree(spec.zoo_dir(), copy)
    monkeypatch.setattr(spec, "zoo_dir", lambda: copy)
    return copy


def test_check_finds_a_page_made_stale_by_a_spec_edit(zoo_copy, tmp_path):
    out = tmp_path / "reports"
    generate(out, "lenet5")
    assert stale(out, "lenet5") == []
    path = zoo_copy / "lenet.json"
    path.write_text(path.read_text(encoding="utf-8").replace('"out": 120', '"out": 121', 1), encoding="utf-8")
    assert stale(out, "lenet5") == ["diagrams/lenet5.svg (differs)", "html/lenet5.html (differs)", "networks/lenet5.md (differs)"]
    result = CliRunner().invoke(main, ["report", "lenet5", "--check", "--out", str(out)])
    assert result.exit_code == 1 and "networks/lenet5.md" in result.output


def test_check_finds_the_whole_report_stale_after_a_spec_edit(fresh, zoo_copy, tmp_path):
    from archcalc.report.pages import write

    out = tmp_path / "reports"
    write(out, {**fresh, "networks/gone.md": b"the page of a network since removed"}, prune=True)  # an earlier run
    (out / "networks" / "mine.md").write_text("a page of the user's", encoding="utf-8")
    path = zoo_copy / "lenet.json"
    path.write_text(path.read_text(encoding="utf-8").replace('"out": 120', '"out": 121', 1), encoding="utf-8")
    result = CliRunner().invoke(main, ["report", "--check", "--out", str(out)])
    assert result.exit_code == 1
    stale_files = {line.removeprefix(f"stale: {out}/") for line in result.stdout.splitlines()}
    assert {"networks/lenet5.md (differs)", "zoo.md (differs)", "claims.md (differs)",
            "networks/gone.md (not generated)"} <= stale_files  # LeNet is in no plot: below the zoo plot's MACs
    assert "networks/vgg16.md (differs)" not in stale_files
    assert not any("mine.md" in line for line in stale_files)  # not archcalc's: not in its manifest


def test_recorded_runs_are_kept_and_not_called_stale(fresh, tmp_path):
    from archcalc.report.pages import compare, write

    reference, out = tmp_path / "fresh", tmp_path / "reports"
    write(reference, fresh, prune=True)
    write(out, {**fresh, "networks/gone.md": b"the page of a network since removed"}, prune=True)  # an earlier run
    kept = [out / "bench" / "NVIDIA_H100.md", out / "measured" / "table_speed.md", out / "networks" / "mine.md"]
    for path in kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("a run", encoding="utf-8")
    write(out, fresh, prune=True)
    assert [p.exists() for p in kept] == [True, True, True] and not (out / "networks" / "gone.md").exists()
    assert compare(out, reference) == []


def test_plots_are_compared_only_when_the_same_matplotlib_drew_them(fresh, tmp_path):
    import matplotlib

    from archcalc.report.pages import compare, plot_note, write

    reference, out = tmp_path / "fresh", tmp_path / "reports"
    write(reference, fresh, prune=True)
    write(out, fresh, prune=True)
    assert compare(out, reference) == []
    svg = out / "plots" / "zoo_params_macs.svg"
    svg.write_bytes(svg.read_bytes().replace(b"</svg>", b"<!-- edited --></svg>"))
    assert compare(out, reference) == ["plots/zoo_params_macs.svg (differs)"]
    assert plot_note(out) is None
    version = f"Matplotlib v{matplotlib.__version__}".encode()
    svg.write_bytes(svg.read_bytes().replace(version, b"Matplotlib v0.0.1"))
    assert compare(out, reference) == []  # drawn by another version: other bytes, not a stale figure
    assert "matplotlib 0.0.1" in plot_note(out)
    (out / "zoo.md").write_text("edited", encoding="utf-8")
    assert compare(out, reference) == ["zoo.md (differs)"]  # Markdown is always compared


def test_cli_writes_one_network(tmp_path):
    result = CliRunner().invoke(main, ["report", "lenet5", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "networks" / "lenet5.md").read_text(encoding="utf-8")
    assert re.search(r"\|\s+61,706\s+\|", page)  # 156 + 2,416 + 48,120 + 10,164 + 850
    assert CliRunner().invoke(main, ["report", "lenet5", "--check", "--out", str(tmp_path)]).exit_code == 0


def test_report_modules_do_not_import_matplotlib():
    code = "import sys, archcalc.report.pages, archcalc.cli; print('matplotlib' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_every_cited_lecture_file_has_a_title():
    from archcalc.report.lectures import LECTURES, cite

    root = Path(__file__).parent.parent
    texts = [p.read_text(encoding="utf-8") for p in [*(root / "specs").glob("*.json"), root / "archcalc/report/claims.json"]]
    cited = {name for text in texts for name in re.findall(r"\d{3}_[0-9a-f]{16}\.txt", text)}
    assert cited and cited <= set(LECTURES)
    assert cite("seed 004_5313b15ce488b0b1.txt, slide 12") == (
        '"Hwann-Tzong Chen, Convolutional Neural Networks, National Tsing Hua University, 2017" '
        "(004_5313b15ce488b0b1.txt), slide 12")


def test_one_network_page_links_resolve_inside_its_folder(tmp_path):
    out = tmp_path / "one"
    result = CliRunner().invoke(main, ["report", "vgg16", "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = out / "networks" / "vgg16.md"
    text = page.read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    assert targets and all((page.parent / t).resolve().is_file() for t in targets if "://" not in t), targets
    assert f"`archcalc report vgg16 --out {out}`" in text  # the line that regenerates this very page
    assert CliRunner().invoke(main, ["report", "vgg16", "--out", str(out), "--check"]).exit_code == 0


# ---- a spec's text on its page -----------------------------------------------------------------

def hostile_page() -> tuple[str, dict[str, bytes]]:
    files = build(str(HOSTILE), "out")
    return files[f"networks/{NAME}.md"].decode(), files


def test_page_of_a_hostile_spec_shows_its_text_as_text():
    text, files = hostile_page()
    assert controls(text) == []
    assert not re.search(r"<[A-Za-z/!?]", text), "a raw HTML tag"
    lines = text.split("\n")
    assert lines[0].startswith("# hostile&lt;img src=x") and lines[1] == ""  # the title's newline is a space
    assert unescaped(lines[0], "`") == 0 and unescaped(lines[2], "`") == 6  # the family line: three code spans of its own
    for rows in tables(text):
        assert len({len(pipe_cells(line)) for line in rows}) == 1, rows
        assert all(unescaped(line, "`") == 0 for line in rows)
    footnote = next(line for line in lines if line.startswith("[^e1]: "))
    assert footnote == "[^e1]: source \\x1b]0;pwned\\x07 &lt;script>alert(5)&lt;/script> \\| \\`x\\` line (note \\x1b[31m)"
    links = re.findall(r"(?<!\\)\]\(([^)]*)\)", text)  # the figure and the interactive page, nothing of the spec's
    assert [posixpath.normpath(posixpath.join("networks", unquote(link))) for link in links] == [
        f"diagrams/{NAME}.svg", f"html/{NAME}.html"]
    assert all(" " not in link and "<" not in link for link in links)
    assert set(files) == {f"networks/{NAME}.md", f"diagrams/{NAME}.svg", f"html/{NAME}.html"}


def test_page_of_a_hostile_spec_rendered_by_python_markdown_has_no_element_of_the_spec():
    markdown = pytest.importorskip("markdown")
    text, _ = hostile_page()
    html = markdown.markdown(text, extensions=["tables", "footnotes", "attr_list"])
    tags = set(re.findall(r"<([a-z0-9]+)", html))
    assert tags <= {"h1", "h2", "p", "code", "table", "thead", "tbody", "tr", "th", "td", "strong", "img", "a", "div",
                    "hr", "ol", "li", "sup", "ul"}
    assert "javascript:" not in "".join(re.findall(r'(?:href|src)="([^"]*)"', html))
    assert "onclick" not in "".join(re.findall(r"<h1[^>]*>", html))


# ---- notes: data of a spec or of the claims file, never a network's name in the code -----------------

NOTES = FIXTURES / "report_notes.json"


def _reading_section(page: str) -> str:
    return page[page.index("## Reading this page\n"):page.index("## Layers\n")] if "## Reading this page" in page else ""


def test_a_spec_note_is_on_its_page_with_its_code_spans_and_nothing_else_of_markup():
    page = network_page(load(f"{NOTES}:with_family_notes"), results=[])
    assert _reading_section(page) == (
        "## Reading this page\n\n"
        "RF `global` means that an output sees the whole input; `a<b` stays code.\n\n"
        "A &lt;b>tag&lt;/b>, a [link\\](javascript:alert(1)) and \\*a `star` pair\\* stay text.\n\n")


def test_a_variant_note_replaces_its_family_notes_and_none_leaves_no_section():
    assert _reading_section(network_page(load(f"{NOTES}:with_its_own_note"), results=[])) == (
        "## Reading this page\n\nOne note of the variant's.\n\n")
    assert "## Reading this page" not in network_page(load(f"{NOTES}:without_notes"), results=[])


def test_spec_notes_rendered_by_python_markdown_keep_only_their_code_spans():
    markdown = pytest.importorskip("markdown")
    html = markdown.markdown(_reading_section(network_page(load(f"{NOTES}:with_family_notes"), results=[])))
    assert re.findall(r"<code>([^<]*)</code>", html) == ["global", "a&lt;b", "star"]
    assert set(re.findall(r"<([a-z0-9]+)", html)) == {"h2", "p", "code"}


def test_notes_that_are_not_texts_are_one_line_naming_the_file(tmp_path):
    spec = tmp_path / "net.json"
    spec.write_text('{"input": [3, 8, 8], "meta": {"notes": [1]}, "layers": [{"type": "relu"}]}')
    result = CliRunner().invoke(main, ["report", str(spec), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.output == f"archcalc: {spec}: meta.notes: expected a text or a list of texts, got [1]\n"
    assert not (tmp_path / "out").exists()


def test_zoo_pages_carry_the_notes_of_their_spec_and_of_the_claims_file(fresh):
    efficientnet = [fresh[f"networks/efficientnet_b{i}.md"].decode() for i in range(8)]
    assert all("RF `global` means that an output depends on every input pixel." in page for page in efficientnet)
    googlenet = _reading_section(fresh["networks/googlenet.md"].decode())
    # the paper's layout and torchvision's: 6,998,552 and 6,624,904 parameters (README, The zoo)
    assert "has 6,998,552 parameters against 6,624,904 here ([GoogLeNet claims](../claims.md#" in googlenet
    vgg = fresh["zoo.md"].decode().split("\n## ")
    note = next(part for part in vgg if part.startswith("vgg\n"))
    table = 150_528 + 2 * 3_211_264 + 802_816 + 2 * 1_605_632 + 401_408 + 3 * 802_816 + 200_704 + 3 * 401_408 + 100_352 \
        + 3 * 100_352 + 25_088 + 4096 + 4096 + 1000  # cs231n's VGG16 table: input, every conv and pool, the FC layers
    assert f"whose 7x7x512 output ({7 * 7 * 512:,} values) is a row of its own" in note
    assert f"sums to {table:,} ([claims](claims.md#from-outside-the-lecture-texts))" in note


def test_a_claims_note_names_a_zoo_network_not_any_spec_of_that_name(tmp_path):
    spec = tmp_path / "googlenet.json"
    spec.write_text('{"name": "googlenet", "input": [3, 8, 8], "layers": [{"type": "relu"}]}')
    assert "## Reading this page" not in network_page(load(str(spec)), results=[])


def test_a_claims_note_fills_in_computed_figures_and_links():
    note = claimslib.Note("{p} parameters ([apart]({out})).", network="out7_s1",
                          values=(claimslib.Beside("p", claimslib.Ref("out7_s1", "params")),),
                          links=(("out", "heading", "From outside the lecture texts"),))
    assert pages.note_text(note, [], "../") == "10 parameters ([apart](../claims.md#from-outside-the-lecture-texts)).\n"
    with pytest.raises(SpecError, match=r"\{q\}, which none of its values or links names"):
        pages.note_text(dataclasses.replace(note, text="{q}"), [], "")


def _zoo_words() -> set[str]:
    names = set(spec.zoo_index())
    return names | {load(name).family for name in names}


def name_checks(source: str, words: set[str]) -> list[str]:
    """Where `source` tells networks apart by name: a comparison (==, !=, in, is) or a `case` with one of
    `words`, or a test of the name's start or end with one."""
    def named(node: ast.AST) -> bool:
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return any(named(e) for e in node.elts)
        return isinstance(node, ast.Constant) and node.value in words

    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and any(named(n) for n in (node.left, *node.comparators)) \
                or isinstance(node, ast.MatchValue) and named(node.value) \
                or isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in ("startswith", "endswith") and any(named(a) for a in node.args):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


@pytest.mark.parametrize("code", [
    'if network.name == "googlenet": pass', 'if network.family == "efficientnet": pass', 'x = family != "vgg"',
    'x = a.network.name in ("vgg16", "vgg19")', 'x = "vgg16" not in analyses', 'x = name.startswith("resnet")',
    'match network.name:\n    case "lenet5": pass',
])
def test_name_checks_finds_a_network_told_apart_by_its_name(code):
    assert len(name_checks(code, _zoo_words())) == 1


def test_no_code_tells_a_zoo_network_apart_by_its_name():
    words = _zoo_words()
    assert {"googlenet", "efficientnet", "vgg", "vgg16"} <= words
    found = {str(path.relative_to(ROOT)): checks for path in sorted((ROOT / "archcalc").rglob("*.py"))
             if (checks := name_checks(path.read_text(encoding="utf-8"), words))}
    assert found == {}


def test_layer_settings_of_a_type():
    """kernel, stride, padding of every layer of a type: one number when all agree, else the distinct ones in order."""
    setting = claimslib.quantity
    assert setting(claimslib.Ref("vgg16", "kernel", of="conv2d")) == 3  # thirteen 3x3 convolutions
    # AlexNet: conv1 11x11 stride 4 padding 2 (torchvision), then 5x5 padding 2 and 3x3 padding 1, stride 1
    assert setting(claimslib.Ref("alexnet", "kernel", of="conv2d")) == [11, 5, 3]
    assert setting(claimslib.Ref("alexnet", "stride", of="conv2d")) == [4, 1]
    assert setting(claimslib.Ref("alexnet", "padding", of="conv2d")) == [2, 1]
    assert setting(claimslib.Ref("alexnet", "stride", "features.3", of="conv2d")) == 1  # conv2
    with pytest.raises(SpecError, match="'of' goes with"):
        claimslib._ref({"network": "vgg16", "quantity": "kernel"})
