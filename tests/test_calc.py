"""The calculator: totals, memory arithmetic, depth folding and peak live activations, by hand.

tests/fixtures/branching.json, input 4x8x8 (256 values):
  0 conv 1x1 4->8         8x8x8  = 512   params 4*8+8 = 40      MACs 8*64*4  = 2,048
  1 batch_norm2d          8x8x8  = 512   params 16, running stats 16
  2 relu                  in place
  the branches of `mix` (they add no part to a path: named on among their neighbours)
    3 conv 1x1 8->4       4x8x8  = 256   params 8*4+4 = 36      MACs 4*64*8  = 2,048
    4 conv 3x3 8->4, 5 relu 4x8x8 = 256  params 8*4*9+4 = 292   MACs 4*64*72 = 18,432
    and the identity      (the input of the concat, 512)
  mix concat              16x8x8 = 1,024, a new tensor
  7 adaptive_avg_pool2d   16                                    (16)
  8 flatten               a view
  fc linear 16->10        10     params 170                     MACs 160
"""
from __future__ import annotations

from pathlib import Path

import pytest

from archcalc import SpecError, analyze, load

BRANCHING = str(Path(__file__).parent / "fixtures" / "branching.json")

PARAMS = 40 + 16 + 36 + 292 + 170
NON_TRAINABLE = 16
MACS = 2_048 + 2_048 + 18_432 + 160
ACTIVATIONS = 256 + 512 + 512 + 256 + 256 + 1_024 + 16 + 10  # input, conv, bn, branch convs, concat, pool, fc


@pytest.fixture(scope="module")
def net():
    return load(BRANCHING)


def test_totals(net):
    t = analyze(net).totals
    assert t.params == PARAMS == 554
    assert t.non_trainable == NON_TRAINABLE
    assert t.params_keras == 570
    assert t.macs == MACS == 22_688
    assert t.flops == 2 * MACS
    assert t.activations == ACTIVATIONS == 2_842
    assert t.weight_layers == 4  # three convs and a linear


def test_rows_add_up_to_the_totals_worked_out_without_them(net):
    """analyze works the totals out on its own walk; the rows, made when first read, agree with them by hand."""
    a = analyze(net)
    leaves = a.leaves()
    assert sum(r.params for r in leaves) == a.totals.params == PARAMS
    assert sum(r.macs for r in leaves) == a.totals.macs == MACS
    assert sum(r.allocated for r in leaves) == a.totals.activations == ACTIVATIONS  # the input row included
    assert a.rows[0].kind == "input" and a.row("mix").allocated == 1_024  # the concat; its branches have their rows
    assert a.scaled(batch=2, dtype="fp16").rows is a.rows  # made once for every configuration


def test_analyses_compare_by_their_figures_not_by_what_they_defer(net):
    """An analysis is a record: two of one network at one configuration are equal, whether or not
    one has made its rows; another batch or dtype is another analysis."""
    first, second = analyze(net), analyze(net)
    first.rows
    assert first == second and not first != second
    assert first.scaled(4) != first and first.scaled(dtype="fp16") != first
    assert first.scaled(4).scaled(1) == second
    assert first != tuple(first)  # a named tuple, but not equal to any tuple of its values


def test_a_receptive_field_too_long_to_tabulate_is_refused_when_the_rows_are_read(tmp_path):
    # 224 -> 10**9 positions: the field table would repeat every 31,250,000 outputs (see test_errors)
    spec = tmp_path / "net.json"
    spec.write_text('{"input": [3, 224, 224], "layers": [{"type": "adaptive_avg_pool2d", "output": 1000000000}]}')
    a = analyze(load(str(spec)))
    assert a.output_shape == (3, 10**9, 10**9) and a.totals.params == 0
    # memory at another dtype comes from the totals' walk, not from the rows: the input and the output, in fp16
    assert a.scaled(dtype="fp16").peak_activation_bytes == (3 * 224 * 224 + 3 * 10**18) * 2
    with pytest.raises(SpecError, match="repeats only every 31,250,000 output positions") as caught:
        a.rows
    assert str(spec) in str(caught.value)


def test_fvcore_flops(net):
    # MACs + batch norm 2 per element (2*512) + adaptive average pool 1 per input element (1024)
    assert analyze(net).totals.fvcore_flops == MACS + 2 * 512 + 1024


def test_peak_live_activations(net):
    # Worst moment: while concatenating, alive are the network's input (256, held by the caller),
    # the concat's input (512, also the identity branch), the two branch outputs (256 + 256) and
    # the concatenation (1024). Before that: conv 0 holds 256 + 512, batch norm and relu (out of
    # place, as the builder runs them) 256 + 512 + 512, branch 1's relu 256 + 512 + 256 (branch 0)
    # + 256 + 256.
    assert analyze(net).totals.peak_activations == 256 + 512 + 256 + 256 + 1024 == 2_304


def test_peak_of_a_plain_chain():
    # Input 1x4x4 (16) -> conv to 8x4x4 (128) -> relu to a new 8x4x4 -> conv to 2x4x4 (32): 16 + 128,
    # then 16 + 128 + 128 (the input is held by the caller), then 16 + 128 + 32.
    from archcalc.core.spec import resolve

    layers = [{"type": "conv2d", "out": 8, "kernel": 1}, {"type": "relu"}, {"type": "conv2d", "out": 2, "kernel": 1}]
    analysis = analyze(resolve({"input": [1, 4, 4], "layers": layers}, "t", "t.json"))
    assert analysis.totals.peak_activations == 272


@pytest.mark.parametrize("batch, dtype, size", [(1, "fp32", 4), (4, "fp16", 2), (3, "bf16", 2), (2, "int8", 1)])
def test_memory_arithmetic(net, batch, dtype, size):
    a = analyze(net, batch=batch, dtype=dtype)
    assert a.weights_bytes == (PARAMS + NON_TRAINABLE) * size  # weights do not grow with the batch
    assert a.activation_bytes == ACTIVATIONS * batch * size
    assert a.peak_activation_bytes == 2_304 * batch * size


def test_vgg16_memory_by_hand():
    # cs231n's VGG16 walk-through: 138M parameters; 15.2M activation values per image
    # (input 150,528 + every conv, pool and fc output; ReLU in place).
    a = analyze(load("vgg16"), batch=1, dtype="fp32")
    convs = [(64, 224), (64, 224), (128, 112), (128, 112)] + [(256, 56)] * 3 + [(512, 28)] * 3 + [(512, 14)] * 3
    pools = [(64, 112), (128, 56), (256, 28), (512, 14), (512, 7)]
    values = 3 * 224 * 224 + sum(c * s * s for c, s in convs + pools) + 512 * 7 * 7 + 4096 + 4096 + 1000
    assert a.totals.activations == values
    assert a.weights_bytes == 138_357_544 * 4


def test_bad_batch_and_dtype(net):
    with pytest.raises(SpecError, match="batch must be at least 1, got 0"):
        analyze(net, batch=0)
    with pytest.raises(SpecError, match="unknown dtype 'fp64'"):
        analyze(net, dtype="fp64")


def test_merge_rows(net):
    a = analyze(net)
    mix = a.row("mix")  # the merge's own row, named by the merge: no group of its branches (torch has no module)
    assert mix.leaf and mix.kind == "merge" and mix.label == "concat"
    assert mix.output_shape == (16, 8, 8)
    assert mix.allocated == 1024 and mix.params == 0 and mix.macs == 0
    assert (a.row("3").params, a.row("4").params) == (36, 292)  # the branches' convs, beside the merge
    assert (a.row("3").macs, a.row("4").macs) == (2_048, 18_432)


def test_depth_folding(net):
    a = analyze(net)
    top = ["input", "0", "1", "2", "3", "4", "5", "mix", "7", "8", "fc"]
    assert [r.path for r in a.at_depth(1)] == [r.path for r in a.at_depth(2)] == top
    assert [r.path for r in a.at_depth(None)] == [r.path for r in a.leaves()]
    for depth in (1, 2, 3, None):
        rows = a.at_depth(depth)
        assert sum(r.params for r in rows) == PARAMS
        assert sum(r.macs for r in rows) == MACS
        assert sum(r.allocated for r in rows) == ACTIVATIONS


def test_depth_folding_of_blocks():
    a = analyze(load("resnet18"))
    top = [r.path for r in a.at_depth(1)]
    assert top[:2] == ["input", "conv1"] and top[5:9] == ["layer1", "layer2", "layer3", "layer4"] and top[-1] == "fc"
    blocks = [r for r in a.at_depth(2) if r.path.startswith("layer1.")]
    assert [r.path for r in blocks] == ["layer1.0", "layer1.1"]  # two BasicBlocks, their layers folded in
    assert blocks[0].params == 2 * (64 * 64 * 9) + 2 * (2 * 64)  # two 3x3 convolutions without bias, two batch norms
    assert blocks[0].output_shape == (64, 56, 56)


def test_row_lookup(net):
    a = analyze(net)
    assert a.row("fc").params == 170
    with pytest.raises(KeyError):
        a.row("nope")


def test_output_shape_and_input_row(net):
    a = analyze(net)
    assert a.output_shape == (10,)
    assert a.rows[0].path == "input" and a.rows[0].allocated == 256


def test_to_dataframe(net):
    frame = analyze(net).to_dataframe()
    assert list(frame["path"]) == ["input", "0", "1", "2", "3", "4", "5", "mix", "7", "8", "fc"]
    assert int(frame["params"].sum()) == PARAMS
    assert int(frame["macs_per_image"].sum()) == MACS
    mix = frame.set_index("path").loc["4"]
    assert mix["output_shape"] == "4x8x8" and (mix["channels"], mix["height"], mix["width"]) == (4, 8, 8)
    assert {"type", "non_trainable", "fvcore_flops_per_image", "activations_per_image", "rf_height", "rf_width",
            "rf_global"} <= set(frame.columns)
    folded = analyze(net).to_dataframe(depth=1)
    assert len(folded) == 11 and int(folded["params"].sum()) == PARAMS


def test_add_broadcasts_as_torch_does():
    # x (8x5x14) + conv(x) (1x5x14): 8x5x14, accumulated into x; conv(x) + x: the sum is larger than its
    # first branch, so it is a new tensor of 8 x 5 x 14 = 560 values; x + pooled context (8x1x1): 8x5x14
    analysis = analyze(load(str(Path(__file__).parent / "fixtures" / "broadcast_add.json")))
    rows = {row.path: row for row in analysis.rows}
    assert rows["res"].output_shape == rows["res2"].output_shape == rows["ctx"].output_shape == (8, 5, 14)
    assert rows["res"].allocated == rows["ctx"].allocated == 0  # a row each, accumulated in place
    assert rows["res2"].allocated == 8 * 5 * 14
    # input, res's conv, res2's conv, res2's sum, the pool, the context conv, the head (4x3x12)
    assert analysis.totals.activations == 560 + 70 + 70 + 560 + 8 + 8 + 4 * 3 * 12


# ---- products of activations: attention written by hand -----------------------------------------

def heads_of(width: int, heads: int) -> list[dict]:
    """A projection of the tokens split into heads first: (L, D) -> (h, L, d)."""
    return [{"type": "linear", "out": width}, {"type": "reshape", "shape": [-1, heads, width // heads]},
            {"type": "permute", "dims": [1, 0, 2]}]


def attention_by_hand(tokens: int, width: int, heads: int, fused: bool) -> dict:
    """Self-attention with matmul merges (Q·Kᵀ, softmax, A·V) or one scaled_dot_product_attention merge."""
    q, k, v = (heads_of(width, heads) for _ in range(3))
    if fused:
        attention = {"name": "attn", "type": "scaled_dot_product_attention", "branches": [q, k, v]}
    else:
        scores = {"name": "scores", "type": "matmul", "branches": [q, k + [{"type": "permute", "dims": [0, 2, 1]}]]}
        attention = {"name": "attn", "type": "matmul", "branches": [[scores, {"type": "softmax", "axis": -1}], v]}
    return {"input": [tokens, width], "layers": [
        attention, {"type": "permute", "dims": [1, 0, 2]}, {"type": "reshape", "shape": [tokens, width]},
        {"name": "out", "type": "linear", "out": width}]}


@pytest.mark.parametrize("fused", [False, True])
def test_attention_by_hand_at_vit_b_16_size(fused):
    # L = 197, D = 768, h = 12, d = 64: the projections 4 x 197 x 768 x 768, Q·Kᵀ and A·V 12 x 197 x 197 x 64 each
    from archcalc.core.spec import resolve

    analysis = analyze(resolve(attention_by_hand(197, 768, 12, fused), "t", "t.json"))
    assert analysis.output_shape == (197, 768)
    assert analysis.totals.macs == 4 * 197 * 768 * 768 + 2 * 12 * 197 * 197 * 64 == 524_391_936
    assert analysis.totals.params == 4 * (768 * 768 + 768)
    rows = {row.path: row for row in analysis.rows}
    if fused:
        assert rows["attn"].output_shape == (12, 197, 64)
        assert rows["attn"].macs == 2 * 12 * 197 * 197 * 64
        assert analysis.totals.fvcore_flops == 4 * 197 * 768 * 768  # fvcore: no handle for it
    else:
        assert rows["scores"].output_shape == (12, 197, 197)  # the attention matrices
        assert rows["scores"].macs == rows["attn"].macs == 12 * 197 * 197 * 64
        assert analysis.totals.fvcore_flops == analysis.totals.macs  # fvcore's matmul handle counts them
    assert rows["out"].rf.size is None  # global after attention


def test_products_of_activations_refuse_what_torch_refuses():
    from archcalc.core.spec import resolve

    def run(merge: str, branches: list) -> None:
        analyze(resolve({"input": [5, 8], "layers": [{"type": merge, "branches": branches}]}, "t", "t.json"))

    with pytest.raises(SpecError, match=r"matmul needs the last axis of the first \(5x8\) to be the second-last"):
        run("matmul", [[], []])
    with pytest.raises(SpecError, match="matmul multiplies two branches, got 3"):
        run("matmul", [[], [], []])
    with pytest.raises(SpecError, match="scaled_dot_product_attention takes three branches"):
        run("scaled_dot_product_attention", [[], []])
    with pytest.raises(SpecError, match="q and k of one width"):
        run("scaled_dot_product_attention", [[], [{"type": "linear", "out": 4}], []])


# ---- a block used again at the same input is counted once -------------------------------------------

_TWICE = {
    "name": "twice", "input": [3, 9, 9],
    "blocks": {"down": {"args": {"width": None}, "layers": [
        {"type": "conv2d", "name": "conv", "out": "width", "kernel": 3, "padding": 1},
        {"type": "max_pool2d", "name": "pool", "kernel": 2}]}},
    "layers": [
        {"type": "concat", "name": "cat", "branches": [
            [{"name": "left", "block": "down", "args": {"width": 4}}],
            [{"name": "right", "block": "down", "args": {"width": 4}}]]},
        {"name": "tail", "block": "down", "args": {"width": 4}},
    ],
}


def test_copies_of_a_block_count_as_the_block_and_keep_their_own_notes_and_rows():
    # by hand: conv 3->4, 3x3, bias: 4*3*9 + 4 = 112 params, 4*81*27 = 8,748 MACs at 9x9;
    # pool 2/2 on 9: (9 - 2)/2 + 1 = 4.5, floor 4 (a note); concat: 8x4x4;
    # tail conv 8->4 at 4x4: 4*8*9 + 4 = 292 params, 4*16*72 = 4,608 MACs; its pool 4 -> 2 (whole)
    analysis = analyze(load(_TWICE))
    assert analysis.totals.params == 112 + 112 + 292
    assert analysis.totals.macs == 8_748 * 2 + 4_608
    assert analysis.output_shape == (4, 2, 2)
    assert [w.path for w in analysis.warnings] == ["left.pool", "right.pool"]
    rows = {row.path: row for row in analysis.rows}
    assert rows["right.conv"].params == rows["left.conv"].params == 112
    assert rows["right.pool"].output_shape == (4, 4, 4)
    assert rows["tail"].params == 292


def test_a_layer_sharing_the_weights_of_a_copied_block_is_counted_there():
    spec = {**_TWICE, "layers": [*_TWICE["layers"][:1],
                                 {"type": "conv2d", "name": "again", "out": 4, "kernel": 3, "padding": 1,
                                  "shares": "right.conv", "from": "input"}]}
    # `again` runs right.conv's module on the input (3 channels): its 112 parameters count at right.conv only
    analysis = analyze(load(spec))
    assert analysis.totals.params == 112 + 112
    assert analysis.totals.macs == 8_748 * 3


def test_a_layer_sharing_the_weights_of_one_many_layers_before_is_counted_there():
    # first: 4 -> 4 channels, 3x3 with bias, 4*4*9 + 4 = 148 parameters; forty ReLUs; then first's module again
    spec = {"input": [4, 6, 6], "layers": [{"type": "conv2d", "name": "first", "out": 4, "kernel": 3, "padding": 1},
                                           *[{"type": "relu"} for _ in range(40)],
                                           {"type": "conv2d", "name": "again", "out": 4, "kernel": 3, "padding": 1,
                                            "shares": "first"}]}
    analysis = analyze(load(spec))
    assert analysis.totals.params == 148
    assert analysis.totals.macs == 2 * 4 * 6 * 6 * 4 * 9


def test_a_copied_block_holding_a_merge_has_every_row_of_its_own():
    # b2 takes 8 channels where b1 takes 4, so the blocks differ; their adds take 4x6x6 alike, and the second is
    # counted as the first: a merge's branches add no part to their nodes' paths, which follow the block's path
    spec = {"name": "res", "input": [4, 6, 6],
            "blocks": {"res": {"layers": [
                {"type": "conv2d", "name": "reduce", "out": 4, "kernel": 1},
                {"type": "add", "branches": [[{"type": "conv2d", "name": "conv", "out": 4, "kernel": 3, "padding": 1}],
                                             []]}]}},
            "layers": [{"name": "b1", "block": "res"}, {"type": "conv2d", "name": "widen", "out": 8, "kernel": 1},
                       {"name": "b2", "block": "res"}]}
    rows = {row.path: row for row in analyze(load(spec)).rows}
    # by hand: conv 4->4, 3x3, bias: 4*4*9 + 4 = 148 params, 4*36*36 = 5,184 MACs at 6x6; reduce 8->4: 36 params
    for block in ("b1", "b2"):
        assert rows[f"{block}.conv"].params == 148 and rows[f"{block}.conv"].macs == 5_184
        assert rows[f"{block}.add"].output_shape == (4, 6, 6)
    assert rows["b2.reduce"].params == 8 * 4 + 4


def _distinct_convs(count: int) -> dict:
    """`count` 1x1 convolutions of 1 to `count` output channels, one after the other, on 1x4x4."""
    return {"input": [1, 4, 4], "layers": [{"type": "conv2d", "out": k, "kernel": 1} for k in range(1, count + 1)]}


def _convs_params(count: int) -> int:
    # conv k (with bias) takes k - 1 channels (the first, the input's one) and makes k
    return sum(max(k - 1, 1) * k + k for k in range(1, count + 1))


def test_the_layer_sums_kept_between_analyses_are_bounded(monkeypatch):
    from archcalc.core import calc

    monkeypatch.setattr(calc, "_LAYER_SUMS_KEPT", 10)
    small = analyze(load(_distinct_convs(5)))
    assert len(calc._layer_sums_of[1]) == 5  # kept for the next analysis
    large = analyze(load(_distinct_convs(30)))
    assert len(calc._layer_sums_of[1]) == 0  # more than the bound: not held past the analysis that made them
    assert (small.totals.params, large.totals.params) == (_convs_params(5), _convs_params(30))


def test_layer_sums_kept_from_an_earlier_analysis_follow_the_quantities_declared():
    from archcalc.core import training

    network = load("lenet5")
    plain = analyze(network)
    with training.counting():
        trained = analyze(network).totals
        assert trained.backward_macs > 0 and trained.macs == plain.totals.macs
    again = analyze(network)
    assert not hasattr(again.totals, "backward_macs") and again == plain
