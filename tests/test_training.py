"""The cost of a training step (archcalc.core.training), worked out by hand for a three-layer network."""
import pytest

from archcalc.core import training
from archcalc.core.calc import analyze
from archcalc.core.spec import resolve

# conv 3->4 (3x3, padding 1) on 3x8x8, ReLU, flatten, linear 256->10
THREE_LAYERS = {"input": [3, 8, 8], "layers": [
    {"type": "conv2d", "out": 4, "kernel": 3, "padding": 1},
    {"type": "relu"},
    {"type": "flatten"},
    {"type": "linear", "out": 10},
]}
CONV_MACS = 4 * 8 * 8 * 3 * 3 * 3  # 6,912
LINEAR_MACS = 256 * 10
PARAMS = (4 * 3 * 9 + 4) + (256 * 10 + 10)  # 2,682 in 4 tensors
# Kept for the backward, per image: the conv its input (3x8x8), the ReLU its output (4x8x8); the linear's
# input is that output, flattened (a view of the same storage): counted once.
SAVED_VALUES = 3 * 64 + 4 * 64
# The largest gradients of a layer's output and input at once: the ReLU's (and flatten's), 256 + 256.
TRANSIENT_VALUES = 512


def analysed(batch: int = 2, dtype: str = "fp32", optimizer: str = "adamw", master: str | None = None):
    with training.counting(training.check_setup(optimizer, master), dtype):
        analysis = analyze(resolve(THREE_LAYERS, "t", "t.json"), batch=batch, dtype=dtype)
        totals = {"backward_macs": analysis.totals.backward_macs, "saved_values": analysis.totals.saved_values}
        rows = [(r.path, r.backward_macs, r.saved_bytes) for r in analysis.leaves()]
        return totals, training.breakdown(analysis), rows


def test_backward_macs_skip_the_gradient_of_the_network_input():
    analysis, _, rows = analysed()
    # the first conv computes the gradient of its weights only; the linear those of its input and weights
    assert analysis["backward_macs"] == CONV_MACS + 2 * LINEAR_MACS
    assert [r[1] for r in rows[1:]] == [CONV_MACS, 0, 0, 2 * LINEAR_MACS]


def test_saved_bytes_count_a_tensor_kept_by_two_ops_once():
    analysis, _, rows = analysed()
    assert analysis["saved_values"] == SAVED_VALUES
    assert [r[2] for r in rows[1:]] == [3 * 64 * 4, 4 * 64 * 4, 0, 0]


def test_breakdown_fp32_adamw():
    _, step, _ = analysed()
    assert step.weights == PARAMS * 4
    assert step.gradients == PARAMS * 4
    assert step.optimizer == 2 * PARAMS * 4 + 4 * 4  # exp_avg, exp_avg_sq, and a float32 step per tensor
    assert step.saved == 2 * SAVED_VALUES * 4
    assert step.transient == 2 * TRANSIENT_VALUES * 4
    # The backward, layer by layer from the last: (kept, gradients made, this layer's gradients, its transient)
    # linear (3584, 0, 10280, 2*266*4), flatten (3584, 10280, 0, 2*512*4), ReLU the same, then it frees its
    # output: conv (1536, 10280, 448, 2*448*4). The fullest: 3584 + 10280 + 4096 = 17960.
    assert step.backward == 17960
    assert step.peak == 10728 + 21472 + 17960


def test_mixed_precision_keeps_fp32_master_weights_and_state():
    _, step, _ = analysed(dtype="bf16", master="fp32")
    assert step.weights == PARAMS * 2
    assert step.gradients == PARAMS * 2
    assert step.optimizer == 2 * PARAMS * 4 + 4 * 4 + PARAMS * 4
    assert step.saved == 2 * SAVED_VALUES * 2


@pytest.mark.parametrize("optimizer, state", [("none", 0), ("sgd", 0), ("momentum", PARAMS * 4),
                                              ("adam", 2 * PARAMS * 4 + 16)])
def test_optimizer_state(optimizer, state):
    assert analysed(optimizer=optimizer)[1].optimizer == state


def test_fit_is_the_largest_batch_a_brute_force_search_finds():
    with training.counting():
        analysis = analyze(resolve(THREE_LAYERS, "t", "t.json"))
        for memory in (40_000, 50_000, 123_456, 10**6, 10**7):
            found = training.fit(analysis, memory)
            brute = max((b for b in range(0, 3_000) if b == 0 or training.training_peak_bytes(analysis.scaled(batch=b))
                         <= memory), default=0)
            assert found.batch == brute
            if found.batch:
                assert found.at_batch.peak <= memory < training.training_peak_bytes(analysis.scaled(batch=found.batch + 1))


def test_an_expect_of_the_training_peak_is_judged_outside_the_training_block():
    from archcalc.core.calc import check_network

    def verdict(limit: int) -> str:
        budget = {"what": "training_peak_bytes", "max": limit, "batch": 2, "reason": "a CI budget"}
        [checked] = check_network(resolve({**THREE_LAYERS, "expect": [budget]}, "t", "t.json"))
        return checked.verdict.status

    assert verdict(50160) != verdict(50159)


def saved_per_image(spec: dict, dtype: str = "fp32") -> tuple[int, int, int]:
    """(values, fixed bytes, batch bytes) autograd keeps per image, the whole network's."""
    with training.counting(training.Setup(), dtype):
        t = analyze(resolve(spec, "t", "t.json"), batch=2, dtype=dtype).totals
        return t.saved_values, t.saved_fixed_bytes, t.saved_batch_bytes


def test_local_response_norm_keeps_its_input_the_padded_square_the_power_input_and_the_divisor():
    # conv 3->8 (3x3) on 3x6x6: 8x4x4 = 128 values; then LRN of size 5 on them
    spec = {"input": [3, 6, 6], "layers": [{"type": "conv2d", "out": 8, "kernel": 3}, {"type": "lrn", "size": 5}]}
    conv_input, lrn_input, padded_square, power_input, divisor = 3 * 36, 128, (8 + 4) * 16, 128, 128
    assert saved_per_image(spec) == (conv_input + lrn_input + padded_square + power_input + divisor, 0, 0)


def test_a_connection_table_keeps_a_copy_of_the_channels_each_output_reads_and_their_indices():
    # conv 1->4 (1x1) on 1x5x5, then a 3x3 table conv whose 2 outputs read channels [0, 1] and [1, 2, 3]
    spec = {"input": [1, 5, 5], "layers": [
        {"type": "conv2d", "out": 4, "kernel": 1},
        {"type": "conv2d", "out": 2, "kernel": 3, "connections": [[0, 1], [1, 2, 3]]},
    ]}
    copies = (2 + 3) * 25  # not the 4x5x5 input itself
    assert saved_per_image(spec) == (25 + copies, 0, (2 + 3) * 8)  # int64 indices, once per batch


def test_rbf_keeps_the_differences_and_computes_only_the_input_gradient():
    spec = {"input": [6], "layers": [{"type": "linear", "out": 4}, {"type": "rbf", "out": 3}]}
    assert saved_per_image(spec) == (6 + 4 * 3, 0, 0)  # the linear's input; x - w for each unit
    with training.counting():
        rows = analyze(resolve(spec, "t", "t.json")).leaves()
        assert [r.backward_macs for r in rows[1:]] == [6 * 4, 4 * 3]  # linear: weights only; rbf: input only


def test_swin_v2_window_attention_keeps_the_normalised_q_k_the_scaled_attention_and_the_bias_mlp():
    # 8x8 map of 16 channels, windows of 4: 4 windows of N = 16 positions, 64 positions; 2 heads; MLP 2->24->2
    spec = {"input": [16, 8, 8], "layers": [{"type": "window_attention", "heads": 2, "window": 4, "v2": True,
                                              "mlp_hidden": 24}]}
    p, c, h, n, table = 64, 16, 2, 16, 7 * 7
    windows, qkv, normalised_qk, heads_output = p * c, 3 * p * c, 2 * p * c, p * c
    norms = 2 * 2 * h * p  # for q and for k: the norm, and the clamped divisor
    attention = 2 * h * p * n  # before the logit scale (copied by the in-place multiply) and the softmax
    mlp = table * 2 + table * 24 + h * n * n  # its input, its hidden layer, the bias gathered from its table
    values = windows + qkv + normalised_qk + heads_output + norms + attention + mlp
    assert saved_per_image(spec) == (values, 0, 4 * h)  # the logit scale's exponential, in fp32
