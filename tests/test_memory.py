"""Peak live activations: the calculator against torch's own allocations in one inference pass.

The measurement (archcalc.torch.memory) tracks every tensor storage the aten ops return,
from creation until torch frees it; the hand figures below follow the builder's forward:
a layer's input is alive while it runs, nn.Sequential drops a tensor once the next layer has
returned, a merge holds its input through every branch and the branch outputs while combining.
Every zoo network is measured by tests/test_verify.py (verify compares the peak).
"""
from __future__ import annotations

import pytest

import archcalc
from archcalc.core.spec import resolve

torch = pytest.importorskip("torch")
from archcalc.torch.memory import peak_live_bytes  # noqa: E402

F = 4  # bytes per fp32 value


def network(layers: list[dict], input_shape: list[int]):
    return archcalc.analyze(resolve({"input": input_shape, "layers": layers}, "t", "t.json"))


def conv(out: int, kernel: int = 1, **extra) -> dict:
    return {"type": "conv2d", "out": out, "kernel": kernel, "padding": kernel // 2, "bias": False, **extra}


BN, RELU = {"type": "batch_norm2d"}, {"type": "relu"}


@pytest.mark.parametrize("name, size", [("resnet18", 64), ("alexnet_paper", None), ("convnext_tiny", 64)])
def test_the_meta_measurement_is_the_cpu_measurement(name, size):
    analysis = archcalc.analyze(archcalc.load(name), None if size is None else (3, size, size))
    assert peak_live_bytes(analysis, "cpu") == peak_live_bytes(analysis) == analysis.peak_activation_bytes


def test_batch_and_dtype_scale_the_measured_peak():
    analysis = archcalc.analyze(archcalc.load("resnet18"), (3, 64, 64), batch=3, dtype="bf16")
    assert peak_live_bytes(analysis) == analysis.peak_activation_bytes


def test_mobilenet_v2_inverted_residual_block():
    # 24 -> 144 -> 24 at 56x56, stride 1, with the residual add. x = 24*56*56, e = 144*56*56.
    layers = [{"name": "block", "type": "add", "branches": [[
        conv(144), BN, {"type": "relu6"}, conv(144, 3, groups=144), BN, {"type": "relu6"}, conv(24), BN], []]}]
    analysis = network(layers, [24, 56, 56])
    x, e = 24 * 56 * 56, 144 * 56 * 56
    # Worst moment: a batch norm (or activation) of the expanded tensor, its input and the block's
    # input alive: x + e + e. At the add: x, the body's 24-channel output and the sum: 3x.
    assert analysis.peak_activation_bytes == (x + 2 * e) * F == 3_913_728  # 3.73 MiB
    assert peak_live_bytes(analysis) == analysis.peak_activation_bytes


def test_resnet_basic_block_with_a_projection():
    # 8x16x16 (x = 2048) -> conv3x3 s2 to 16x8x8 (h = 1024) ... ; shortcut conv1x1 s2 (h).
    body = [conv(16, 3, stride=2), BN, RELU, conv(16, 3), BN]
    layers = [{"name": "block", "type": "add", "branches": [body, [conv(16, 1, padding=0, stride=2), BN]]}, RELU]
    analysis = network(layers, [8, 16, 16])
    x, h = 8 * 16 * 16, 16 * 8 * 8
    # body: x + h + h at most; shortcut while the body's output is held: h + (x + h + h);
    # the add: x + h + h + h (the sum); the trailing relu: x (held by the caller) + h + h.
    assert analysis.peak_activation_bytes == (x + 3 * h) * F
    assert peak_live_bytes(analysis) == analysis.peak_activation_bytes


def test_dense_block():
    # Two dense layers on 4x8x8, growth 2: each is concat[[], [bn, relu, conv3x3 -> 2]].
    def dense(c):
        return {"type": "concat", "branches": [[], [BN, RELU, conv(2, 3)]]}

    analysis = network([dense(4), dense(6)], [4, 8, 8])
    p = 64  # positions
    # Layer 1 on x = 4p: bn 4p + relu 4p over x: 12p; concat: x + 2p + 6p = 12p.
    # Layer 2 on y = 6p (x still held by the caller): x + y + bn 6p + relu 6p = 22p; concat x + y + 2p + 8p = 20p.
    assert analysis.peak_activation_bytes == 22 * p * F
    assert peak_live_bytes(analysis) == analysis.peak_activation_bytes


def test_inception_module():
    # 8x8x8 input (x = 512): branches 1x1 -> 4, 1x1 -> 2 then 3x3 -> 4, max pool 3/1/1 then 1x1 -> 2.
    branches = [[conv(4)], [conv(2), conv(4, 3)], [{"type": "max_pool2d", "kernel": 3, "stride": 1, "padding": 1},
                                                   conv(2)]]
    analysis = network([{"type": "concat", "branches": branches}], [8, 8, 8])
    p, x = 64, 512
    # branch 3 while branches 1 and 2 are held (4p + 4p): the pool's output (8p) and its int64
    # indices (8p values x 8 bytes) beside x; then the concat: x + 4p + 4p + 2p + 10p.
    pool = (x + 8 * p) * F + 8 * p * 8 + 8 * p * F
    concat = (x + 10 * p + 10 * p) * F
    assert analysis.peak_activation_bytes == max(pool, concat) == pool
    assert peak_live_bytes(analysis) == analysis.peak_activation_bytes


def test_squeeze_excitation_block():
    se = {"type": "mul", "branches": [[], [{"type": "adaptive_avg_pool2d"}, conv(2), RELU, conv(8),
                                           {"type": "sigmoid"}]]}
    analysis = network([conv(8, 3), se], [4, 6, 6])
    x, y = 4 * 36, 8 * 36
    # conv: x + y; the gate's tensors are 8 or 2 values; the product: x + y + gate (8) + y.
    assert analysis.peak_activation_bytes == (x + 2 * y + 8) * F
    assert peak_live_bytes(analysis) == analysis.peak_activation_bytes


def test_a_channel_slice_keeps_the_tensor_it_views_alive():
    # ShuffleNet v2's stride-1 unit: half the channels pass, the other half go through a 1x1 convolution;
    # concatenated, then shuffled (a copy).
    unit = [
        {"type": "concat", "branches": [[{"type": "slice", "stop": 4}],
                                        [{"type": "slice", "start": 4, "stop": 8}, conv(4)]]},
        {"type": "channel_shuffle", "groups": 2},
    ]
    analysis = network([conv(8, 3), *unit], [3, 5, 5])
    x, y, half = 3 * 25, 8 * 25, 4 * 25
    # the input x is held to the end; the slices are views of y, which stays whole while the 1x1
    # convolution (half) runs on its second half; the concatenation (y) is made while y and the branch
    # output are alive; the shuffle copies it.
    assert analysis.peak_activation_bytes == max(x + y, x + y + half + y, x + y + y) * F == (x + 2 * y + half) * F
    assert peak_live_bytes(analysis) == analysis.peak_activation_bytes
    # a slice after a convolution, inside one sequence: the 1x1 convolution on the half still holds all of y
    chain = network([conv(8, 3), {"type": "slice", "stop": 4}, conv(2)], [3, 5, 5])
    assert chain.peak_activation_bytes == max(x + y, x + y + 2 * 25) * F == (x + y + 2 * 25) * F
    assert peak_live_bytes(chain) == chain.peak_activation_bytes


def test_window_attention_with_a_shift_and_padding():
    # 8x10x9, 2 heads, 4x4 windows shifted by 2: padded to 12x12, 9 windows of N = 16. Per image, in values:
    # the windows T = 144 x 8 = 1,152; q/k/v 3T; the attention matrices A = 9 x 2 x 16 x 16 = 4,608; the
    # position bias P = 2 x 16 x 16 = 512. The builder's forward: P; the padded map, rolled along H then W, cut
    # into windows (a copy each, the previous one alive: P + 2T); q/k/v (P + T + 3T); the heads apart (P + 6T);
    # q.kT (P + 3T + A); softmax (3T + 2A, the worst); attn.v (3T + A + T); ... the output 720 at the end.
    layers = [{"type": "window_attention", "heads": 2, "window": 4, "shift": 2}]
    analysis = network(layers, [8, 10, 9])
    t, a, p = 1_152, 4_608, 512
    steps = [p, p + t, p + 2 * t, p + 2 * t, p + 2 * t, p + 4 * t, p + 6 * t, p + 3 * t + a, 3 * t + 2 * a]
    assert max(steps) == 3 * t + 2 * a == 12_672
    assert analysis.peak_activation_bytes == (720 + 12_672) * F == 53_568  # the input held beside it
    assert peak_live_bytes(analysis) == peak_live_bytes(analysis, "cpu") == analysis.peak_activation_bytes
    batched = archcalc.analyze(analysis.network, batch=3)
    assert peak_live_bytes(batched) == batched.peak_activation_bytes == 3 * 53_568


def test_swin_v2_attention_and_patch_merging():
    # v2 on a 3x3 map (one 4x4 window, padded): the position bias MLP on the 7x7 offsets dominates:
    # coordinates 49 x 2, hidden 49 x 512 and the table 49 x 2 heads alive at once: 98 + 25,088 + 98.
    attention = network([{"type": "window_attention", "heads": 2, "window": 4, "shift": 2, "v2": True}], [8, 3, 3])
    assert attention.peak_activation_bytes == (72 + 98 + 25_088 + 98) * F == 101_424
    # patch merging 8x5x7 -> 16x3x4: padded 6x8x8 = 384, concatenated 384, normalised 384 + 2 x 12 statistics
    # (the concatenation alive): 792 values, the worst; then reduced (192), back to CxHxW (192).
    merging = network([{"type": "patch_merging"}], [8, 5, 7])
    assert merging.peak_activation_bytes == (280 + 2 * 384 + 24) * F == 4_288
    for analysis in (attention, merging):
        assert peak_live_bytes(analysis) == peak_live_bytes(analysis, "cpu") == analysis.peak_activation_bytes


def test_patch_embedding_to_normalised_tokens():
    # 3x32x32 -> conv 8x8/8 to 16x4x4 (e = 256) -> flatten(1) (a view) -> permute to 16 tokens of 16 (a copy, 256)
    # -> layer_norm (its output 256 and a mean and 1/std per token, 2 x 16) -> linear to 16 x 32 (512).
    layers = [{"type": "conv2d", "out": 16, "kernel": 8, "stride": 8}, {"type": "flatten", "start": 1},
              {"type": "permute", "dims": [1, 0]}, {"type": "layer_norm"}, {"type": "linear", "out": 32}]
    analysis = network(layers, [3, 32, 32])
    x = 3 * 32 * 32
    # the conv: x + 256; the permute: x (held by the caller) + 256 (its input, the view of the conv's output) +
    # 256; the layer norm: x + 256 + 256 + 32; the linear: x + 256 + 512.
    assert analysis.peak_activation_bytes == (x + 256 + 512) * F
    assert peak_live_bytes(analysis) == analysis.peak_activation_bytes


def test_window_attention_and_patch_merging_on_a_channels_last_grid():
    # On the grid 10x9x8 the attention's steps are those on 8x10x9 (the windows are copied from the grid as
    # from the image's channels-last view); the network's input and its permuted copy are both held beside it.
    to_grid = {"type": "permute", "dims": [1, 2, 0]}
    attention = network([to_grid, {"type": "window_attention", "heads": 2, "window": 4, "shift": 2}], [8, 10, 9])
    assert attention.peak_activation_bytes == (720 + 720 + 12_672) * F
    # Patch merging (v2) on the grid 5x7x8: padded 6x8x8 (384), concatenated (384): the worst moment, with the
    # input and the grid (2 x 280); then reduced (192) and normalised (192 + 2 x 12), and no copy back to CxHxW.
    merging = network([to_grid, {"type": "patch_merging", "norm_after": True}], [8, 5, 7])
    assert merging.peak_activation_bytes == (2 * 280 + 2 * 384) * F
    for analysis in (attention, merging):
        assert peak_live_bytes(analysis) == peak_live_bytes(analysis, "cpu") == analysis.peak_activation_bytes


@pytest.mark.parametrize("fused", [False, True])
def test_attention_written_by_hand_holds_its_scores(fused):
    # 40 tokens of 8 features, 2 heads of 4: the scores (2 x 40 x 40 = 3,200 values) dominate the peak
    from test_calc import attention_by_hand

    analysis = network(attention_by_hand(40, 8, 2, fused)["layers"], [40, 8])
    scores, n = 2 * 40 * 40, 40 * 8
    if fused:  # q, k, v and the input held; torch's math kernel: the scaled k, the scores and their softmax
        assert analysis.peak_activation_bytes == (n + 3 * n + n + 2 * scores) * F
    else:  # the scores' softmax and its input (the matmul's output) beside the held input
        assert analysis.peak_activation_bytes == (n + 2 * scores) * F
    assert peak_live_bytes(analysis) == analysis.peak_activation_bytes
