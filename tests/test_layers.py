"""Each layer rule against a hand calculation written out here."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from archcalc import SpecError, analyze, load
from archcalc.core.calc import Analysis, Row
from archcalc.core.spec import resolve
from archcalc.layers import REGISTRY, LayerType

FIXTURES = Path(__file__).parent / "fixtures"


def run(layers: list[dict], input_shape: list[int]) -> Analysis:
    return analyze(resolve({"input": input_shape, "layers": layers}, "t", "t.json"))


def one(layer: dict, input_shape: list[int]) -> Row:
    return run([{"name": "x", **layer}], input_shape).row("x")


# ---- conv2d ------------------------------------------------------------------------

def test_conv2d_basic():
    row = one({"type": "conv2d", "out": 16, "kernel": 3, "padding": 1}, [3, 32, 32])
    assert row.output_shape == (16, 32, 32)  # (32 + 2 - 3)/1 + 1
    assert row.params == 16 * 3 * 3 * 3 + 16 == 448
    assert row.macs == 16 * 32 * 32 * (3 * 3 * 3) == 442_368
    assert row.non_trainable == 0
    assert row.allocated == 16 * 32 * 32


def test_conv2d_without_bias():
    assert one({"type": "conv2d", "out": 16, "kernel": 3, "bias": False}, [3, 32, 32]).params == 432


def test_conv2d_stride_and_padding():
    row = one({"type": "conv2d", "out": 64, "kernel": 7, "stride": 2, "padding": 3}, [3, 224, 224])
    assert row.output_shape == (64, 112, 112)  # floor((224 + 6 - 7)/2) + 1 = 111 + 1
    assert row.params == 64 * 3 * 49 + 64 == 9_472
    assert row.macs == 64 * 112 * 112 * 3 * 49 == 118_013_952


@pytest.mark.parametrize("size, kernel, expected", [(17, 5, 17), (224, 3, 224), (10, 4, 10)])
def test_conv2d_same_stride_1_keeps_the_size(size, kernel, expected):
    row = one({"type": "conv2d", "out": 2, "kernel": kernel, "padding": "same"}, [1, size, size])
    assert row.output_shape == (2, expected, expected)


@pytest.mark.parametrize("size, expected", [(15, 8), (16, 8), (224, 112), (7, 4)])
def test_conv2d_same_stride_2_is_ceil_of_half(size, expected):
    # TensorFlow: out = ceil(N/2); total padding (out-1)*2 + 3 - N, the odd pixel on the bottom/right.
    run_ = run([{"name": "x", "type": "conv2d", "out": 2, "kernel": 3, "stride": 2, "padding": "same"}], [1, size, size])
    assert run_.row("x").output_shape == (2, expected, expected)
    assert run_.warnings == ()


def test_conv2d_valid_padding():
    assert one({"type": "conv2d", "out": 2, "kernel": 3, "padding": "valid"}, [1, 10, 10]).output_shape == (2, 8, 8)


def test_conv2d_dilation():
    row = one({"type": "conv2d", "out": 8, "kernel": 3, "dilation": 2, "padding": 2}, [4, 20, 20])
    assert row.output_shape == (8, 20, 20)  # span 2*(3-1)+1 = 5; 20 + 4 - 5 + 1
    assert row.params == 8 * 4 * 9 + 8  # dilation adds no weights
    assert row.macs == 8 * 20 * 20 * 4 * 9
    assert row.rf.size == (5, 5)


def test_conv2d_groups():
    row = one({"type": "conv2d", "out": 16, "kernel": 3, "padding": 1, "groups": 4}, [8, 8, 8])
    assert row.params == 16 * (8 // 4) * 9 + 16 == 304
    assert row.macs == 16 * 8 * 8 * (8 // 4) * 9 == 18_432


def test_depthwise_conv():
    row = one({"type": "conv2d", "out": 32, "kernel": 3, "padding": 1, "groups": 32, "bias": False}, [32, 14, 14])
    assert row.params == 32 * 9 == 288
    assert row.macs == 32 * 14 * 14 * 9 == 56_448


def test_conv2d_rectangular_kernel():
    row = one({"type": "conv2d", "out": 4, "kernel": [1, 7], "padding": [0, 3]}, [3, 10, 12])
    assert row.output_shape == (4, 10, 12)
    assert row.params == 4 * 3 * 1 * 7 + 4 == 88
    assert row.macs == 4 * 10 * 12 * 21 == 10_080
    assert row.rf.size == (1, 7) and row.rf.label() == "1x7"


def test_rectangular_stride():
    assert one({"type": "conv2d", "out": 1, "kernel": 1, "stride": [1, 2]}, [1, 6, 6]).output_shape == (1, 6, 3)


def test_alexnet_conv1_at_224_is_not_whole():
    analysis = analyze(load(str(FIXTURES / "alexnet_conv1.json")))
    row = analysis.row("conv1")
    assert row.output_shape == (96, 54, 54)  # floor(54.25)
    assert row.params == 96 * 3 * 11 * 11 + 96 == 34_944
    messages = [note.message for note in analysis.warnings]
    assert messages == ["conv2d: H and W: (224 + 0 - 11)/4 + 1 = 54.25 is not whole; floor gives 54: "
                        "the last row and column of its input are never read"]  # windows 0..53 start at 0, 4, ..., 212
    assert all(note.path == "conv1" and note.drops_input for note in analysis.warnings)


def test_non_square_input_warns_per_axis():
    analysis = analyze(load(str(FIXTURES / "alexnet_conv1.json")), (3, 224, 227))
    messages = [note.message for note in analysis.warnings]
    assert messages == ["conv2d: H: (224 + 0 - 11)/4 + 1 = 54.25 is not whole; floor gives 54: "
                        "the last row of its input is never read"]


def test_alexnet_conv1_at_227_is_whole():
    analysis = analyze(load(str(FIXTURES / "alexnet_conv1.json")), (3, 227, 227))
    assert analysis.row("conv1").output_shape == (96, 55, 55)  # (227 - 11)/4 + 1 = 55
    assert analysis.warnings == ()


# ---- conv_transpose2d --------------------------------------------------------------

def test_conv_transpose2d_doubles():
    row = one({"type": "conv_transpose2d", "out": 4, "kernel": 4, "stride": 2, "padding": 1}, [8, 5, 5])
    assert row.output_shape == (4, 10, 10)  # (5-1)*2 - 2 + (4-1) + 0 + 1
    assert row.params == 8 * 4 * 16 + 4 == 516
    assert row.macs == 8 * 5 * 5 * 4 * 16 == 12_800  # every input pixel scatters one kernel


def test_conv_transpose2d_output_padding():
    layer = {"type": "conv_transpose2d", "out": 4, "kernel": 3, "stride": 2, "padding": 1}
    assert one(layer, [8, 4, 4]).output_shape == (4, 7, 7)  # (4-1)*2 - 2 + 2 + 1
    assert one({**layer, "output_padding": 1}, [8, 4, 4]).output_shape == (4, 8, 8)
    assert one({**layer, "output_padding": [0, 1]}, [8, 4, 4]).output_shape == (4, 7, 8)


def test_conv_transpose2d_output_padding_must_be_below_the_stride():
    with pytest.raises(SpecError, match="output_padding 2 must be smaller than stride 2"):
        one({"type": "conv_transpose2d", "out": 4, "kernel": 3, "stride": 2, "output_padding": 2}, [8, 4, 4])


def test_conv_transpose2d_groups():
    row = one({"type": "conv_transpose2d", "out": 8, "kernel": 2, "stride": 2, "groups": 2, "bias": False}, [4, 3, 3])
    assert row.output_shape == (8, 6, 6)
    assert row.params == 4 * (8 // 2) * 4 == 64


# ---- a fixed connection table (LeNet-5's C3) ---------------------------------------

def test_conv2d_connection_table():
    table = [[0, 1], [1, 2], [0, 1, 2]]  # 2 + 2 + 3 = 7 connections
    row = one({"type": "conv2d", "out": 3, "kernel": 3, "connections": table}, [3, 8, 8])
    assert row.output_shape == (3, 6, 6)
    assert row.params == 7 * 3 * 3 + 3 == 66  # a 3x3 kernel per connection, a bias per output
    assert row.macs == 6 * 6 * 7 * 9 == 2_268
    assert one({"type": "conv2d", "out": 3, "kernel": 3, "connections": table, "bias": False}, [3, 8, 8]).params == 63


# LeCun et al. 1998, Table I: the S2 maps each C3 map reads (columns 0-15 of the table)
LECUN_C3 = [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5], [4, 5, 0], [5, 0, 1],
            [0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5], [3, 4, 5, 0], [4, 5, 0, 1], [5, 0, 1, 2],
            [0, 1, 3, 4], [1, 2, 4, 5], [0, 2, 3, 5], [0, 1, 2, 3, 4, 5]]


def test_lenet5_c3_table_has_1516_parameters():
    row = one({"type": "conv2d", "out": 16, "kernel": 5, "connections": LECUN_C3}, [6, 14, 14])
    assert row.params == (6 * 3 + 9 * 4 + 6) * 25 + 16 == 1_516
    assert row.macs == 10 * 10 * 60 * 25 == 150_000


def test_lenet5_paper_against_a_plain_torch_model():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    from archcalc.core.spec import read_json, zoo_dir
    from archcalc.torch.build import build_torch

    spec_table = read_json(Path(zoo_dir()) / "lenet.json")["params"]["c3_table"]
    assert [sorted(r) for r in spec_table] == [sorted(r) for r in LECUN_C3]

    class LeNet5(nn.Module):  # the paper's network, written out: 156 + 12 + 1,516 + 32 + 48,120 + 10,164
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(1, 6, 5)
            self.s2 = nn.Parameter(torch.ones(2, 6))  # a coefficient and a bias per map
            self.c3 = nn.ModuleList(nn.Conv2d(len(r), 1, 5) for r in LECUN_C3)
            self.s4 = nn.Parameter(torch.ones(2, 16))
            self.c5, self.f6 = nn.Conv2d(16, 120, 5), nn.Linear(120, 84)
            self.register_buffer("rbf", torch.zeros(10, 84))  # hand-chosen, not trained

        def forward(self, x):
            def sub(x, s):
                return torch.tanh(nn.functional.avg_pool2d(x, 2) * s[0, :, None, None] + s[1, :, None, None])
            x = sub(torch.tanh(self.c1(x)), self.s2)
            x = torch.tanh(torch.cat([c(x[:, r]) for r, c in zip(LECUN_C3, self.c3)], 1))
            x = torch.tanh(self.f6(torch.tanh(self.c5(sub(x, self.s4))).flatten(1)))
            return ((x[:, None] - self.rbf) ** 2).sum(-1)

    plain = LeNet5()
    trainable = sum(p.numel() for p in plain.parameters())
    assert trainable == 60_000 and plain(torch.zeros(1, 1, 32, 32)).shape == (1, 10)
    analysis = analyze(load("lenet5_paper"))
    assert (analysis.totals.params, analysis.totals.non_trainable) == (trainable, plain.rbf.numel())
    built = build_torch(analysis)
    assert sum(p.numel() for p in built.parameters()) == trainable
    assert sum(b.numel() for b in built.buffers()) == 840
    assert built(torch.zeros(2, 1, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("layer, message", [
    ({"out": 2, "connections": [[0]]}, "1 rows, one per output channel is needed \\(2\\)"),
    ({"out": 1, "connections": [[0, 5]]}, "input channels \\[5\\], the input has 3"),
    ({"out": 2, "groups": 1, "connections": [[0], [0, 0]]}, "distinct input channels"),
    ({"out": 3, "groups": 3, "connections": [[0], [1], [2]]}, "exclude each other"),
])
def test_conv2d_connection_table_errors(layer, message):
    with pytest.raises(SpecError, match=message):
        one({"type": "conv2d", "kernel": 1, **layer}, [3, 4, 4])


# ---- RBF output units ----------------------------------------------------------------

def test_rbf_units_hold_fixed_centres():
    row = one({"type": "rbf", "out": 10}, [84])
    assert row.output_shape == (10,)
    assert (row.params, row.non_trainable) == (0, 84 * 10)  # LeNet-5: the centres are chosen by hand
    assert row.macs == 840 and row.fvcore_flops == 0
    with pytest.raises(SpecError, match="flat input"):
        one({"type": "rbf", "out": 10}, [4, 2, 2])


# ---- linear ------------------------------------------------------------------------

def test_linear():
    row = one({"type": "linear", "out": 10}, [100])
    assert row.output_shape == (10,)
    assert row.params == 100 * 10 + 10
    assert row.macs == 1000
    assert one({"type": "linear", "out": 10, "bias": False}, [100]).params == 1000


def test_vgg16_first_fully_connected_layer():
    row = run([{"type": "flatten"}, {"name": "fc6", "type": "linear", "out": 4096}], [512, 7, 7]).row("fc6")
    assert row.params == 25_088 * 4096 + 4096 == 102_764_544


# ---- pooling -----------------------------------------------------------------------

def test_max_pool_stride_defaults_to_kernel():
    row = one({"type": "max_pool2d", "kernel": 2}, [64, 224, 224])
    assert row.output_shape == (64, 112, 112)
    assert row.params == 0 and row.macs == 0
    assert row.allocated == 64 * 112 * 112


def test_max_pool_with_padding():
    # ResNet's stem pool: floor((112 + 2 - 3)/2) + 1 = 55 + 1 = 56
    analysis = run([{"name": "x", "type": "max_pool2d", "kernel": 3, "stride": 2, "padding": 1}], [64, 112, 112])
    assert analysis.row("x").output_shape == (64, 56, 56)
    assert any("(112 + 2 - 3)/2 + 1 = 56.5" in note.message for note in analysis.warnings)


def test_ceil_mode():
    layer = {"type": "max_pool2d", "kernel": 3, "stride": 2}
    assert one(layer, [1, 6, 6]).output_shape == (1, 2, 2)  # floor(3/2) + 1
    assert one({**layer, "ceil_mode": True}, [1, 6, 6]).output_shape == (1, 3, 3)  # ceil(3/2) + 1
    # GoogLeNet: 112 -> ceil(109/2) + 1 = 56
    assert one({**layer, "ceil_mode": True}, [64, 112, 112]).output_shape == (64, 56, 56)


def test_ceil_mode_last_window_must_start_inside():
    # N=5, k=2, s=2, p=1: ceil((5 + 2 - 2)/2) + 1 = 4, but the 4th window would start at
    # 3*2 = 6 >= 5 + 1 (input plus left padding): it lies in the right padding only, so torch drops it.
    layer = {"type": "max_pool2d", "kernel": 2, "stride": 2, "padding": 1, "ceil_mode": True}
    assert one(layer, [1, 5, 5]).output_shape == (1, 3, 3)
    # N=6: ceil((6 + 2 - 2)/2) + 1 = 4 and window 4 starts at 6 < 6 + 1: kept.
    assert one(layer, [1, 6, 6]).output_shape == (1, 4, 4)


def test_avg_pool():
    layer = {"type": "avg_pool2d", "kernel": 2, "stride": 2}
    assert one(layer, [3, 7, 7]).output_shape == (3, 3, 3)
    assert one({**layer, "ceil_mode": True}, [3, 7, 7]).output_shape == (3, 4, 4)
    assert one({"type": "avg_pool2d", "kernel": 3, "stride": 1, "padding": 1}, [3, 7, 7]).output_shape == (3, 7, 7)


def test_pool_padding_at_most_half_the_kernel():
    with pytest.raises(SpecError, match="padding 2 must be at most half the kernel 2"):
        one({"type": "max_pool2d", "kernel": 2, "padding": 2}, [1, 8, 8])


def test_max_pool_dilation():
    row = one({"type": "max_pool2d", "kernel": 3, "stride": 1, "dilation": 2}, [1, 9, 9])
    assert row.output_shape == (1, 5, 5)  # span 5: 9 - 5 + 1


def test_adaptive_pools():
    row = one({"type": "adaptive_avg_pool2d", "output": 7}, [512, 14, 14])
    assert row.output_shape == (512, 7, 7)
    assert row.params == 0 and row.macs == 0
    assert row.fvcore_flops == 512 * 14 * 14  # fvcore: one per input element
    assert one({"type": "adaptive_max_pool2d", "output": [2, 3]}, [8, 10, 10]).output_shape == (8, 2, 3)
    assert one({"type": "adaptive_max_pool2d", "output": 1}, [8, 10, 10]).fvcore_flops == 0
    assert one({"type": "adaptive_avg_pool2d"}, [8, 10, 10]).output_shape == (8, 1, 1)


# ---- shape-only and elementwise -----------------------------------------------------

def test_flatten_is_a_view():
    row = one({"type": "flatten"}, [4, 3, 3])
    assert row.output_shape == (36,)
    assert row.allocated == 0


@pytest.mark.parametrize("kind", ["relu", "relu6", "tanh", "sigmoid", "gelu", "silu", "hardswish", "identity", "dropout"])
def test_elementwise_layers_are_free_and_in_place(kind):
    row = one({"type": kind}, [8, 5, 5])
    assert row.output_shape == (8, 5, 5)
    assert (row.params, row.non_trainable, row.macs, row.fvcore_flops, row.allocated) == (0, 0, 0, 0, 0)


def test_dropout_probability_is_a_field():
    assert one({"type": "dropout", "p": 0.2}, [10]).output_shape == (10,)


def test_softmax_allocates():
    row = one({"type": "softmax"}, [1000])
    assert row.output_shape == (1000,)
    assert row.allocated == 1000 and row.params == 0


# ---- layouts: tokens, channels-last grids, permute, reshape, flatten over axes ------------

def test_patch_embedding_flatten_and_transpose_make_tokens():
    # ViT-B/16's stem at 224: conv 16x16/16 to 768x14x14, flatten(2) to 768x196, transpose to 196x768
    analysis = run([{"name": "proj", "type": "conv2d", "out": 768, "kernel": 16, "stride": 16},
                    {"name": "flat", "type": "flatten", "start": 1},
                    {"name": "tokens", "type": "permute", "dims": [1, 0]}], [3, 224, 224])
    assert analysis.row("flat").output_shape == (768, 14 * 14)
    assert analysis.row("flat").allocated == 0  # a view
    tokens = analysis.row("tokens")
    assert tokens.output_shape == (196, 768)
    assert tokens.allocated == 196 * 768  # the builder makes the permuted tensor contiguous
    assert (tokens.params, tokens.macs) == (0, 0)
    assert tokens.rf.label() == "16"  # each token keeps the field of its patch


def test_permute_to_channels_last_and_back():
    analysis = run([{"name": "hwc", "type": "permute", "dims": [1, 2, 0]},
                    {"name": "fc", "type": "linear", "out": 6},
                    {"name": "chw", "type": "permute", "dims": [2, 0, 1]},
                    {"name": "conv", "type": "conv2d", "out": 2, "kernel": 3}], [4, 5, 7])
    assert analysis.row("hwc").output_shape == (5, 7, 4)
    assert analysis.row("fc").output_shape == (5, 7, 6)
    assert analysis.row("chw").output_shape == (6, 5, 7)
    assert analysis.row("conv").output_shape == (2, 3, 5)
    assert analysis.row("fc").rf.label() == "1"  # position by position
    assert analysis.row("conv").rf.label() == "3"


def test_a_channels_last_grid_is_refused_by_an_image_layer():
    with pytest.raises(SpecError, match="conv2d needs an image CxHxW, got a channels-last grid HxWxC 5x7x4"):
        run([{"type": "permute", "dims": [1, 2, 0]}, {"type": "conv2d", "out": 2, "kernel": 3}], [4, 5, 7])


def test_permute_that_transposes_h_and_w_swaps_the_field():
    analysis = run([{"type": "conv2d", "out": 1, "kernel": [3, 1]},
                    {"name": "t", "type": "permute", "dims": [0, 2, 1]}], [1, 9, 9])
    assert analysis.row("t").output_shape == (1, 9, 7)
    assert analysis.row("t").rf.size == (1, 3)


def test_permute_needs_an_order_of_the_axes():
    with pytest.raises(SpecError, match=r"permute dims \[0, 1\] is not an order of the 3 axes"):
        one({"type": "permute", "dims": [0, 1]}, [4, 5, 7])


def test_reshape_to_heads_and_back():
    # 197 tokens of 768 features as 12 heads of 64: (197, 12, 64), then heads first (12, 197, 64)
    analysis = run([{"name": "split", "type": "reshape", "shape": [197, 12, -1]},
                    {"name": "heads", "type": "permute", "dims": [1, 0, 2]},
                    {"name": "back", "type": "permute", "dims": [1, 0, 2]},
                    {"name": "join", "type": "reshape", "shape": [197, 768]}], [197, 768])
    assert analysis.row("split").output_shape == (197, 12, 64)
    assert analysis.row("split").allocated == 0
    assert analysis.row("heads").output_shape == (12, 197, 64)
    assert analysis.row("join").output_shape == (197, 768)
    with pytest.raises(SpecError, match="conv2d needs an image CxHxW, got a tensor 197x12x64"):
        run([{"type": "reshape", "shape": [197, 12, 64]}, {"type": "conv2d", "out": 2, "kernel": 1}], [197, 768])


def test_reshape_names_a_grid():
    analysis = run([{"name": "grid", "type": "reshape", "shape": [14, 14, 768], "layout": "grid"},
                    {"name": "chw", "type": "permute", "dims": [2, 0, 1]}], [196, 768])
    assert analysis.row("chw").output_shape == (768, 14, 14)


def test_reshape_must_hold_every_value():
    with pytest.raises(SpecError, match="reshape to \\[5, -1\\] does not hold the 12 values"):
        one({"type": "reshape", "shape": [5, -1]}, [3, 4])


def test_flatten_over_axes_needs_them_in_order():
    assert one({"type": "flatten", "start": 0, "end": 1}, [4, 5, 6]).output_shape == (20, 6)
    with pytest.raises(SpecError, match="flatten start 2 comes after end 1"):
        one({"type": "flatten", "start": 2, "end": 1}, [4, 5, 6])
    with pytest.raises(SpecError, match="flatten start 3 is not an axis"):
        one({"type": "flatten", "start": 3}, [4, 5, 6])


def test_linear_over_the_last_axis_of_tokens():
    # ViT-B/16's MLP: 197 tokens, 768 -> 3072
    row = one({"type": "linear", "out": 3072}, [197, 768])
    assert row.output_shape == (197, 3072)
    assert row.params == 768 * 3072 + 3072 == 2_362_368
    assert row.macs == 197 * 768 * 3072 == 464_781_312
    assert row.fvcore_flops == row.macs  # fvcore's linear handle: input elements x out features
    assert row.rf.label() == "1"  # each token by itself


def test_linear_refuses_an_image():
    with pytest.raises(SpecError, match="linear needs a flat vector, a token sequence LxD, a channels-last grid "
                                        "HxWxC or a tensor, got an image CxHxW 4x6x6"):
        one({"type": "linear", "out": 3}, [4, 6, 6])


def test_layer_norm_over_the_last_axis():
    row = one({"type": "layer_norm", "eps": 1e-6}, [197, 768])
    assert row.output_shape == (197, 768)
    assert row.params == 2 * 768 == 1536
    assert row.macs == 0
    assert row.fvcore_flops == 5 * 197 * 768  # fvcore's norm handle: 5 per element with affine
    assert one({"type": "layer_norm", "affine": False}, [197, 768]).fvcore_flops == 4 * 197 * 768
    assert one({"type": "layer_norm", "affine": False}, [197, 768]).params == 0
    with pytest.raises(SpecError, match="layer_norm needs .* got an image CxHxW 4x6x6 \\(layer_norm2d normalises"):
        one({"type": "layer_norm"}, [4, 6, 6])


# ---- attention and the token layers --------------------------------------------------------

def test_multihead_attention_at_vit_b_16_size():
    # L = 197 tokens, D = 768, h = 12 heads of d = 64
    row = one({"type": "multihead_attention", "heads": 12}, [197, 768])
    assert row.output_shape == (197, 768)
    # q, k, v and output projections: 4 x 768 x 768 weights, 4 x 768 biases
    assert row.params == 4 * 768 * 768 + 4 * 768 == 2_362_368
    projections = 4 * 197 * 768 * 768  # each of the 197 tokens through four 768 x 768 matrices
    scores = 12 * 197 * 197 * 64  # Q·Kᵀ: per head a 197 x 64 by 64 x 197 product
    weighted = 12 * 197 * 197 * 64  # A·V: per head a 197 x 197 by 197 x 64 product
    assert projections == 464_781_312 and scores == weighted == 29_805_312
    assert row.macs == projections + scores + weighted == 524_391_936
    assert row.fvcore_flops == projections  # fvcore: its linear handle; no handle for scaled_dot_product_attention
    assert row.rf.size is None  # every token sees every token: global
    assert row.allocated == 197 * 768


def test_multihead_attention_without_bias_and_refusals():
    assert one({"type": "multihead_attention", "heads": 2, "bias": False}, [5, 8]).params == 4 * 8 * 8
    with pytest.raises(SpecError, match="3 heads do not divide the 8 features"):
        one({"type": "multihead_attention", "heads": 3}, [5, 8])
    with pytest.raises(SpecError, match="multihead_attention needs a token sequence LxD, got an image CxHxW 8x4x4"):
        one({"type": "multihead_attention", "heads": 2}, [8, 4, 4])


def test_multihead_attention_peak_holds_the_attention_matrices():
    # 65 tokens of 16 features, 4 heads: n = L·D = 1040, A = h·L·L = 16,900. On torch's math path the layer holds
    # at most max(6n, 4n + 2A, 5n + A) = 4n + 2A values beside its input: the scores and their softmax.
    analysis = run([{"type": "multihead_attention", "heads": 4}], [65, 16])
    n, scores = 65 * 16, 4 * 65 * 65
    assert analysis.peak_activation_bytes == (n + 4 * n + 2 * scores) * 4


def test_class_token_position_embedding_and_token_selection():
    analysis = run([{"name": "cls", "type": "class_token"}, {"name": "pos", "type": "position_embedding"},
                    {"name": "first", "type": "select_token"}], [196, 768])
    cls, pos, first = analysis.row("cls"), analysis.row("pos"), analysis.row("first")
    assert (cls.output_shape, cls.params, cls.allocated) == ((197, 768), 768, 197 * 768)
    assert (pos.output_shape, pos.params, pos.macs) == ((197, 768), 197 * 768, 0)
    assert (first.output_shape, first.params, first.allocated) == ((768,), 0, 0)  # x[:, 0]: a view
    with pytest.raises(SpecError, match="token 5 is not one of the 5 tokens"):
        one({"type": "select_token", "index": 5}, [5, 8])


def test_mean_over_tokens_and_over_a_grid():
    assert one({"type": "mean"}, [197, 768]).output_shape == (768,)
    assert one({"type": "mean", "keepdim": True}, [197, 768]).output_shape == (1, 768)
    grid = run([{"type": "permute", "dims": [1, 2, 0]}, {"name": "m", "type": "mean"}], [96, 7, 7]).row("m")
    assert grid.output_shape == (96,) and grid.rf.size is None


def test_softmax_over_an_axis():
    # over each token's features: the field stays; over the keys of attention scores (h, L, L): global
    tokens = run([{"type": "conv2d", "out": 4, "kernel": 2, "stride": 2}, {"type": "flatten", "start": 1},
                  {"type": "permute", "dims": [1, 0]}, {"name": "s", "type": "softmax", "axis": -1}], [1, 4, 4]).row("s")
    assert tokens.output_shape == (4, 4) and tokens.rf.label() == "2"
    scores = one({"type": "softmax", "axis": -1}, [2, 5, 5])  # an image's last axis: W
    assert scores.rf.size is None and scores.allocated == 50
    with pytest.raises(SpecError, match="softmax axis 3 is not an axis of a 3-axis shape"):
        one({"type": "softmax", "axis": 3}, [2, 5, 5])


# ---- normalisation -----------------------------------------------------------------

def test_batch_norm2d():
    row = one({"type": "batch_norm2d"}, [64, 56, 56])
    assert row.params == 2 * 64  # gamma, beta
    assert row.non_trainable == 2 * 64  # running mean, running variance
    assert row.params_keras == 256
    assert row.macs == 0
    assert row.fvcore_flops == 2 * 64 * 56 * 56
    assert row.allocated == 64 * 56 * 56


def test_batch_norm2d_without_affine():
    row = one({"type": "batch_norm2d", "affine": False}, [64, 4, 4])
    assert (row.params, row.non_trainable, row.fvcore_flops) == (0, 128, 64 * 16)


def test_layer_norm2d():
    row = one({"type": "layer_norm2d"}, [96, 56, 56])
    assert (row.params, row.non_trainable, row.macs) == (192, 0, 0)
    assert row.fvcore_flops == 5 * 96 * 56 * 56


def test_lrn():
    row = one({"type": "lrn", "size": 5, "alpha": 1e-4, "beta": 0.75, "k": 2}, [96, 55, 55])
    assert row.output_shape == (96, 55, 55)
    assert (row.params, row.non_trainable, row.macs) == (0, 0, 0)
    assert row.allocated == 96 * 55 * 55


def test_layer_scale():
    row = one({"type": "layer_scale", "init": 1e-6}, [96, 56, 56])
    assert (row.params, row.macs) == (96, 0)


# ---- receptive field ---------------------------------------------------------------

def rf(layers: list[dict], size: int = 64):
    return run(layers, [3, size, size]).rows[-1].rf


def conv(kernel: int, stride: int = 1, dilation: int = 1) -> dict:
    return {"type": "conv2d", "out": 3, "kernel": kernel, "stride": stride, "dilation": dilation,
            "padding": dilation * (kernel // 2)}


def test_rf_two_3x3_convs_see_5x5():
    assert rf([conv(3), conv(3)]).size == (5, 5)
    assert rf([conv(3), conv(3), conv(3)]).size == (7, 7)


def test_rf_jump_through_pooling():
    # 1 -> 3 -> 5; pool 2/2: 5 + 1 = 6, jump 2; conv 3 at jump 2: 6 + 2*2 = 10
    field = rf([conv(3), conv(3), {"type": "max_pool2d", "kernel": 2}, conv(3)])
    assert field.size == (10, 10)
    assert field.jump == (Fraction(2), Fraction(2))


def test_rf_resnet_stem():
    # conv 7/2: 7, jump 2; max pool 3/2: 7 + 2*2 = 11, jump 4
    field = rf([conv(7, 2), {"type": "max_pool2d", "kernel": 3, "stride": 2, "padding": 1}], 224)
    assert field.size == (11, 11)
    assert field.jump == (Fraction(4), Fraction(4))


def test_rf_dilated_stack():
    # dilations 1, 2, 4: 3 -> 3 + 2*2 = 7 -> 7 + 2*4 = 15
    assert rf([conv(3, 1, 1), conv(3, 1, 2), conv(3, 1, 4)]).size == (15, 15)


def test_rf_vgg16_features():
    # The classic figure: pool5 of VGG16 sees 212x212 pixels, at a jump of 32.
    row = analyze(load("vgg16")).row("features")
    assert row.rf.size == (212, 212)
    assert row.rf.jump == (Fraction(32), Fraction(32))


def test_rf_is_global_after_linear_and_global_pooling():
    assert rf([{"type": "adaptive_avg_pool2d"}]).size is None
    assert rf([{"type": "flatten"}, {"type": "linear", "out": 4}]).label() == "global"
    assert rf([{"type": "flatten"}, {"type": "linear", "out": 4}, {"type": "relu"}]).size is None


def test_rf_merge_takes_the_widest_branch():
    layers = [{"type": "concat", "branches": [[conv(1)], [conv(3)], [conv(5)]]}]
    assert rf(layers).size == (5, 5)


def test_stochastic_depth_is_the_identity_at_inference():
    row = one({"type": "stochastic_depth", "p": 0.2}, [16, 7, 7])
    assert row.output_shape == (16, 7, 7)
    assert (row.params, row.macs, row.fvcore_flops, row.allocated) == (0, 0, 0, 0)  # no new tensor
    with pytest.raises(SpecError, match=r"\.p: must be at most 1, got 1.5"):
        one({"type": "stochastic_depth", "p": 1.5}, [16, 7, 7])


# ---- the registry: every layer type is checked by hand here -----------------------------

def test_every_layer_type_has_a_hand_calculated_test_in_this_file():
    source = Path(__file__).read_text()
    missing = [name for name in REGISTRY if f'"{name}"' not in source]
    assert missing == []


def test_every_layer_type_names_its_kind_and_weight_layers_count_biases():
    kinds = {"conv", "linear", "pool", "norm", "activation", "regularisation", "shape"}
    assert {name: lt.kind for name, lt in REGISTRY.items() if lt.kind not in kinds} == {}
    weight_layers = {name for name, lt in REGISTRY.items() if lt.weight_layer}
    assert {"conv2d", "conv_transpose2d", "linear"} <= weight_layers
    for name in (n for n in weight_layers if "bias" in REGISTRY[n].fields):  # a bias of `out` values, by hand: out = 4
        assert REGISTRY[name].biases({"out": 4, "bias": True}) == 4
        assert REGISTRY[name].biases({"out": 4, "bias": False}) == 0


# ---- group_norm, upsample, hardsigmoid, mean --------------------------------------

def test_group_norm():
    row = one({"type": "group_norm", "groups": 4}, [32, 10, 12])
    assert row.output_shape == (32, 10, 12)
    assert row.params == 2 * 32  # gamma and beta per channel, whatever the groups
    assert row.non_trainable == 0  # no running statistics
    assert row.fvcore_flops == 5 * 32 * 10 * 12  # fvcore's norm handle: 5 per element with affine
    assert row.macs == 0


def test_group_norm_without_affine_and_groups_that_do_not_divide():
    row = one({"type": "group_norm", "groups": 2, "affine": False}, [6, 4, 4])
    assert (row.params, row.fvcore_flops) == (0, 4 * 6 * 4 * 4)
    with pytest.raises(SpecError, match=r"groups=4 must divide the channels \(6\)"):
        one({"type": "group_norm", "groups": 4}, [6, 4, 4])


def test_upsample_nearest_and_bilinear():
    nearest = one({"type": "upsample", "scale": 2}, [8, 7, 5])
    assert nearest.output_shape == (8, 14, 10)
    assert nearest.fvcore_flops == 1 * 8 * 14 * 10  # fvcore: 1 per output element for nearest
    assert (nearest.params, nearest.macs, nearest.allocated) == (0, 0, 8 * 14 * 10)
    bilinear = one({"type": "upsample", "scale": [2, 3], "bilinear": True}, [4, 5, 5])
    assert bilinear.output_shape == (4, 10, 15)
    assert bilinear.fvcore_flops == 4 * 4 * 10 * 15  # 4 per output element for bilinear
    sized = one({"type": "upsample", "size": [9, 11]}, [2, 4, 5])
    assert sized.output_shape == (2, 9, 11)


def test_upsample_receptive_field():
    # conv 3x3 (field 3, jump 1), nearest x2: one input pixel per output, the grid twice as fine
    # (jump 1/2); then a 3x3 conv adds (3 - 1) * 1/2 = 1: field 4. Bilinear reads two neighbours: +1.
    for bilinear, expected in ((False, 4), (True, 5)):
        result = run([{"type": "conv2d", "out": 2, "kernel": 3}, {"type": "upsample", "bilinear": bilinear},
                      {"name": "last", "type": "conv2d", "out": 2, "kernel": 3}], [1, 16, 16])
        assert result.row("last").rf.size == (expected, expected)
        assert result.row("last").rf.jump == (Fraction(1, 2), Fraction(1, 2))


def test_hardsigmoid_is_free_and_in_place():
    row = one({"type": "hardsigmoid"}, [3, 4, 4])
    assert (row.output_shape, row.params, row.fvcore_flops, row.allocated) == ((3, 4, 4), 0, 0, 0)


def test_mean_over_height_and_width():
    row = one({"type": "mean"}, [16, 7, 7])
    assert (row.output_shape, row.fvcore_flops, row.rf.size) == ((16,), 0, None)
    assert one({"type": "mean", "keepdim": True}, [16, 7, 7]).output_shape == (16, 1, 1)


# ---- channel_shuffle and slice (ShuffleNet v2) ----------------------------------------

def test_channel_shuffle_keeps_the_shape_and_copies():
    row = one({"type": "channel_shuffle", "groups": 2}, [116, 28, 28])
    assert row.output_shape == (116, 28, 28)
    assert (row.params, row.non_trainable, row.macs, row.fvcore_flops) == (0, 0, 0, 0)
    assert row.allocated == 116 * 28 * 28 == 90_944  # view, transpose, contiguous: a new tensor
    assert row.rf.size == (1, 1)  # each output channel is one input channel at the same position
    with pytest.raises(SpecError, match="groups 3 does not divide the 116 channels"):
        one({"type": "channel_shuffle", "groups": 3}, [116, 28, 28])


def test_slice_takes_a_range_of_channels_as_a_view():
    row = one({"type": "slice", "start": 58, "stop": 116}, [116, 28, 28])
    assert row.output_shape == (116 - 58, 28, 28) == (58, 28, 28)
    assert (row.params, row.macs, row.fvcore_flops, row.allocated) == (0, 0, 0, 0)
    assert one({"type": "slice", "stop": 3}, [10]).output_shape == (3,)
    for start, stop in [(4, 4), (0, 117), (5, 2)]:
        with pytest.raises(SpecError, match=rf"channels \[{start}, {stop}\) are not a non-empty range of the 116"):
            one({"type": "slice", "start": start, "stop": stop}, [116, 28, 28])


def test_slice_and_shuffle_keep_the_field_of_what_they_read():
    # conv 3x3: 3; slice: 3; conv 3x3 on it: 3 + 2 = 5; shuffle: 5
    layers = [conv(3), {"type": "slice", "stop": 2}, conv(3), {"type": "channel_shuffle", "groups": 3}]
    assert rf(layers).size == (5, 5)


def test_shufflenet_unit_params_and_macs_written_out():
    # torchvision's stride-1 InvertedResidual with 116 channels at 28x28 (shufflenet_v2_x1_0's stage2.1):
    # half = 58; branch2 = 1x1 (58*58) + BN (2*58) + depthwise 3x3 (58*9) + BN + 1x1 (58*58) + BN.
    unit = analyze(load("shufflenet_v2_x1_0")).row("stage2.1")
    assert unit.params == 58 * 58 + 2 * 58 + 58 * 9 + 2 * 58 + 58 * 58 + 2 * 58 == 7_598
    assert unit.macs == 28 * 28 * (58 * 58 + 58 * 9 + 58 * 58) == 5_684_000
    # allocated: three convs and three BNs of 58x28x28, the concatenation and the shuffle of 116x28x28
    assert unit.activations == 6 * 58 * 28 * 28 + 2 * 116 * 28 * 28 == 454_720


# ---- window attention and patch merging (Swin, MaxViT) ----------------------------------

def test_window_attention_with_a_shift_and_padding():
    # 8x10x9, 2 heads, 4x4 windows shifted by 2: the map is padded to 12x12 (ceil(10/4) = ceil(9/4) = 3
    # windows a side), 9 windows of N = 16 positions; the shift stays (a window is smaller than the map).
    row = one({"type": "window_attention", "heads": 2, "window": 4, "shift": 2}, [8, 10, 9])
    assert row.output_shape == (8, 10, 9)
    # q/k/v 8x24 + 24, output 8x8 + 8, bias table (2*4-1)^2 offsets x 2 heads
    assert row.params == 8 * 24 + 24 + 8 * 8 + 8 + 7 * 7 * 2 == 386
    # every padded position (144) through q/k/v (8x24) and the output (8x8); q.kT and attn.v: 16x16x8 per window each
    assert row.macs == 144 * 8 * 24 + 144 * 8 * 8 + 2 * 9 * 16 * 16 * 8 == 73_728
    assert row.fvcore_flops == row.macs
    assert row.allocated == 8 * 10 * 9 + 9 * 2 * 16 * 16 == 5_328  # the output and the attention matrices
    assert row.rf.size == (4, 4)  # each output sees its window (from the input's 1x1 field)


def test_window_attention_drops_the_shift_where_a_window_covers_the_map():
    # 8x4x12, window 4, shift 2: along H one window covers the (unpadded) map, so no shift there; along W three
    # windows, shifted. Fields: H one window of 4; W the windows starting at 2, 6, 10: also 4 wide.
    analysis = run([{"name": "x", "type": "window_attention", "heads": 1, "window": 4, "shift": 2}], [8, 4, 12])
    row = analysis.row("x")
    assert row.macs == 48 * 4 * 64 + 2 * 3 * 16 * 16 * 8 == 24_576
    assert row.rf.size == (4, 4)
    from archcalc.layers.window import windows

    assert windows(analysis.network.root.children[0].attrs, (8, 4, 12)).shift == (0, 2)


def test_window_attention_fields_grow_with_the_shifted_windows():
    # Two blocks of 4x4 windows, the second shifted by 2: an output of the second reads the window [2, 6) of the
    # first's outputs, which read [0, 4) and [4, 8): a field of 8 input pixels.
    plain = {"type": "window_attention", "heads": 1, "window": 4}
    assert rf([plain], 16).size == (4, 4)
    assert rf([plain, dict(plain, shift=2)], 16).size == (8, 8)
    assert rf([plain, plain], 16).size == (4, 4)  # the same windows again add nothing
    # after a 2x2/2 convolution (field 2, jump 2) the windows are 4 positions, 8 pixels: 2 + (4 - 1) x 2
    assert rf([conv(2, 2), plain], 16).size == (8, 8)


def test_window_attention_v2_counts_the_logit_scale_and_the_position_mlp():
    # v2: no bias table; a logit scale per head, and the MLP 2 -> 16 (bias) -> 2 heads (no bias), run once on
    # the 7x7 table of offsets: 49 x (2 x 16 + 16 x 2) MACs.
    row = one({"type": "window_attention", "heads": 2, "window": 4, "shift": 2, "v2": True, "mlp_hidden": 16},
              [8, 10, 9])
    assert row.params == 8 * 24 + 24 + 8 * 8 + 8 + 2 + (2 * 16 + 16) + 16 * 2 == 370
    assert row.macs == 73_728 + 49 * (2 * 16 + 16 * 2) == 76_864


def test_grid_attention_groups_positions_spread_over_the_map():
    # 8x6x9, grid 3x3: positions k*P + r with P = 2 (H) and 3 (W): 2x3 = 6 groups of 9 positions, the whole map
    row = one({"type": "window_attention", "heads": 2, "window": 3, "grid": True}, [8, 6, 9])
    assert row.params == 8 * 24 + 24 + 8 * 8 + 8 + 5 * 5 * 2 == 338
    assert row.macs == 54 * 8 * 32 + 2 * 6 * 9 * 9 * 8 == 21_600
    assert row.rf.size is None  # global


@pytest.mark.parametrize("layer, shape, message", [
    ({"heads": 3, "window": 4}, [8, 8, 8], "heads=3 must divide the channels (8)"),
    ({"heads": 2, "window": 4, "shift": 4}, [8, 8, 8], "shift 4x4 must be smaller than the window 4x4"),
    ({"heads": 2, "window": 3, "grid": True}, [8, 8, 9], "grid attention needs the map 8x9 to be a multiple"),
    ({"heads": 2, "window": 3, "grid": True, "shift": 1}, [8, 9, 9], "grid attention takes no shift"),
])
def test_window_attention_refuses_what_torchvision_cannot_run(layer, shape, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        one({"type": "window_attention", **layer}, shape)


def test_patch_merging_v1_and_v2():
    # 8x5x7 padded to 6x8: 3x4 blocks of 2x2 -> 4C = 32 channels, reduced to 2C = 16 without bias.
    row = one({"type": "patch_merging"}, [8, 5, 7])
    assert row.output_shape == (16, 3, 4)
    assert row.params == 32 * 16 + 2 * 32 == 576  # layer norm over 4C before the reduction
    assert row.macs == 3 * 4 * 32 * 16 == 6_144
    assert row.fvcore_flops == 6_144 + 5 * 12 * 32 == 8_064  # and 5 per normalised value
    assert row.rf.size == (2, 2)
    after = one({"type": "patch_merging", "norm_after": True}, [8, 5, 7])
    assert after.params == 32 * 16 + 2 * 16 == 544  # layer norm over 2C after it (v2)
    assert after.fvcore_flops == 6_144 + 5 * 12 * 16


def test_window_attention_and_patch_merging_on_a_channels_last_grid():
    # The same layers on the grid 10x9x8 (HxWxC, torchvision's Swin layout): the same counts as on 8x10x9.
    grid = [{"type": "permute", "dims": [1, 2, 0]}]
    attn = run([*grid, {"name": "x", "type": "window_attention", "heads": 2, "window": 4, "shift": 2}], [8, 10, 9]).row("x")
    assert attn.output_shape == (10, 9, 8)
    assert (attn.params, attn.macs, attn.allocated) == (386, 73_728, 5_328)
    assert attn.rf.size == (4, 4)
    merge = run([*grid, {"name": "x", "type": "patch_merging"}], [8, 5, 7]).row("x")
    assert merge.output_shape == (3, 4, 16)  # (ceil(5/2), ceil(7/2), 2C), still channels last
    assert (merge.params, merge.macs, merge.fvcore_flops) == (576, 6_144, 8_064)
    with pytest.raises(SpecError, match="window_attention needs an image CxHxW or a channels-last grid HxWxC"):
        run([{"type": "flatten", "start": 1}, {"type": "window_attention", "heads": 1, "window": 2}], [8, 4, 4])


def test_measured_op_holds_at_its_input_only():
    layer = {"type": "measured", "op": "InstanceNorm2d", "at": [4, 6, 6], "output": [4, 6, 6], "params": 8,
             "macs": 144, "fvcore_flops": 576}
    row = one(layer, [4, 6, 6])
    # what the import measured, as written: 8 parameters, 144 MACs, fvcore's 576; a new 4x6x6 tensor
    assert (row.output_shape, row.params, row.macs, row.fvcore_flops, row.allocated) == ((4, 6, 6), 8, 144, 576, 144)
    assert one({**layer, "output": [144]}, [4, 6, 6]).output_shape == (144,)
    with pytest.raises(SpecError, match="measured op InstanceNorm2d was measured on an input 4x6x6, not 4x8x8"):
        one(layer, [4, 8, 8])


# ---- the registry loads the types a CNN never reads on first use ------------------------------------

_LATER_PROBE = """
import json, sys
import archcalc
from archcalc.layers import REGISTRY, LayerType
archcalc.analyze(archcalc.load("vgg16"))
loaded_for_a_cnn = sorted(m for m in sys.modules if m.startswith("archcalc.layers.") and m.rsplit(".", 1)[1]
                          in ("window", "tokens", "measured", "channels"))
found = REGISTRY["window_attention"].name  # a lookup of a type not yet registered loads its module
listed = sorted(REGISTRY)
print(json.dumps([loaded_for_a_cnn, found, listed]))
"""


def test_a_cnn_table_loads_no_token_or_window_module_and_a_lookup_loads_them():
    import json
    import subprocess
    import sys

    from archcalc.layers import channels, measured, tokens, window

    declared = {cls.name for module in (channels, measured, tokens, window) for cls in vars(module).values()
                if isinstance(cls, type) and issubclass(cls, LayerType) and "name" in vars(cls)}
    done = subprocess.run([sys.executable, "-c", _LATER_PROBE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded_for_a_cnn, found, listed = json.loads(done.stdout.splitlines()[-1])
    assert loaded_for_a_cnn == []
    assert found == "window_attention"
    assert {"window_attention", "patch_merging", "multihead_attention", "channel_shuffle", "measured"} <= declared
    assert declared <= set(listed)
    assert sorted(REGISTRY) == listed  # the same types, however they were loaded
