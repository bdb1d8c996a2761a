"""ONNX module scopes that archcalc reads as no layer types, imported as one `measured` row each, and the note on
batch norms an exporter folded into the convolutions before them: graphs built with onnx.helper (counted by hand)
and files exported from plain torch modules (counted by the module's parameters and FlopCounterMode)."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from archcalc.core.calc import analyze  # noqa: E402
from archcalc.core.spec import resolve  # noqa: E402
from archcalc.errors import SpecError  # noqa: E402
from archcalc.importers.onnx_graph import import_onnx  # noqa: E402


def weight(name: str, *shape: int):
    return numpy_helper.from_array(np.full(shape, 0.5, np.float32), name)


def ints(name: str, *values: int):
    return numpy_helper.from_array(np.array(values, np.int64), name)


def attention_graph(tmp_path):
    """An image 8x4x4 -> 16 tokens of 8 -> an attention whose transposes move the batch axis, as torch's
    MultiheadAttention exports (`/blk/attn/...`) -> a linear head of 5 outputs."""
    nodes = [
        helper.make_node("Conv", ["x", "wc"], ["c"], name="/stem/Conv", kernel_shape=[1, 1]),
        helper.make_node("Reshape", ["c", "tokens"], ["r"], name="/Reshape"),
        helper.make_node("Transpose", ["r"], ["t"], name="/Transpose", perm=[0, 2, 1]),
        helper.make_node("Transpose", ["t"], ["s"], name="/blk/attn/Transpose", perm=[1, 0, 2]),
        helper.make_node("MatMul", ["s", "wq"], ["q"], name="/blk/attn/MatMul"),
        helper.make_node("MatMul", ["s", "wk"], ["k"], name="/blk/attn/MatMul_1"),
        helper.make_node("Transpose", ["k"], ["kt"], name="/blk/attn/Transpose_1", perm=[1, 2, 0]),
        helper.make_node("Transpose", ["q"], ["qb"], name="/blk/attn/Transpose_2", perm=[1, 0, 2]),
        helper.make_node("MatMul", ["qb", "kt"], ["scores"], name="/blk/attn/MatMul_2"),
        helper.make_node("Softmax", ["scores"], ["p"], name="/blk/attn/Softmax", axis=-1),
        helper.make_node("MatMul", ["p", "qb"], ["a"], name="/blk/attn/MatMul_3"),
        helper.make_node("MatMul", ["a", "wh"], ["y"], name="/head/MatMul"),
    ]
    inits = [weight("wc", 8, 8, 1, 1), ints("tokens", 1, 8, 16), weight("wq", 8, 8), weight("wk", 8, 8),
             weight("wh", 8, 5)]
    graph = helper.make_graph(nodes, "attention", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    path = tmp_path / "attention.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def measured_layers(layers: list) -> list[dict]:
    found = []
    for item in layers:
        found += [item] if item.get("type") == "measured" else measured_layers(item.get("layers", []))
        found += [row for branch in item.get("branches", []) for row in measured_layers(branch)]
    return found


def test_a_scope_archcalc_cannot_read_is_one_measured_row_counted_by_hand(tmp_path):
    document = import_onnx(attention_graph(tmp_path))
    [row] = [r for r in measured_layers(document["layers"]) if r["name"] == "attn"]  # its nodes, in its scope
    tokens, width = 16, 8
    by_hand = 2 * tokens * width * width + 2 * tokens * tokens * width  # q and k; scores and their product with q
    assert (row["at"], row["output"], row["params"], row["macs"]) == ([16, 8], [16, 8], 2 * 8 * 8, by_hand)
    analysis = analyze(resolve(document, document["name"], "attention.onnx"))
    assert analysis.totals.macs == 8 * 8 * 16 + by_hand + 16 * 8 * 5  # the stem, the attention, the head
    assert analysis.totals.params == 64 + 2 * 64 + 40
    assert [r["name"] for r in measured_layers(document["layers"])] == ["attn"]
    assert "1 module scope archcalc reads as no layer types measured" in document["comment"]


def test_an_op_of_a_container_is_measured_alone_not_with_the_modules_inside_it(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="/enc/l0/act/Relu"),
             helper.make_node("Erf", ["a"], ["e"], name="/enc/Erf"),  # no layer type; `enc` holds modules of modules
             helper.make_node("Relu", ["e"], ["b"], name="/enc/l1/act/Relu"),
             helper.make_node("Relu", ["b"], ["y"], name="/enc/l2/act/Relu")]
    graph = helper.make_graph(nodes, "container", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    path = tmp_path / "container.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    analysis = analyze(resolve(document := import_onnx(path), document["name"], "container.onnx"))
    assert [(row.path, row.label) for row in analysis.leaves()[1:]] == [
        ("enc.l0.act", "relu"), ("enc.Erf", "measured"), ("enc.l1.act", "relu"), ("enc.l2.act", "relu")]


def test_a_measured_scope_takes_in_what_the_import_computed_from_its_constants(tmp_path):
    """Swin v2's position-bias MLP runs on fixed coordinates: the import computes its first layer from constants
    (a small MatMul), whose weight and multiply-accumulates are still the scope's."""
    nodes = [helper.make_node("MatMul", ["coords", "w1"], ["hidden"], name="/attn/MatMul"),  # 6x2 @ 2x4: constants
             helper.make_node("MatMul", ["hidden", "w2"], ["bias"], name="/attn/MatMul_1"),  # 6x4 @ 4x4
             helper.make_node("Transpose", ["x"], ["t"], name="/attn/Transpose", perm=[1, 0, 2, 3]),
             helper.make_node("Add", ["t", "bias"], ["a"], name="/attn/Add"),
             helper.make_node("Transpose", ["a"], ["y"], name="/attn/Transpose_1", perm=[1, 0, 2, 3])]
    inits = [weight("coords", 6, 2), weight("w1", 2, 4), weight("w2", 4, 4)]
    graph = helper.make_graph(nodes, "bias", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    path = tmp_path / "bias.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    [row] = measured_layers(import_onnx(path)["layers"])
    assert row["macs"] == 6 * 2 * 4 + 6 * 4 * 4  # both MatMuls, the first computed by the import
    assert row["params"] == 6 * 2 + 2 * 4 + 4 * 4  # the coordinates too: ONNX does not tell a buffer from a weight


def test_strict_refuses_what_would_be_measured(tmp_path):
    with pytest.raises(SpecError, match=r"ONNX node /blk/attn/Transpose \(Transpose\): permute \[1, 0, 2\] moves the "
                                        "batch axis"):
        import_onnx(attention_graph(tmp_path), strict=True)


def test_a_spec_with_a_measured_row_refuses_another_input(tmp_path):
    nodes = [helper.make_node("Transpose", ["x"], ["t"], name="/mix/Transpose", perm=[1, 0, 2, 3]),
             helper.make_node("Relu", ["t"], ["r"], name="/mix/Relu"),
             helper.make_node("Transpose", ["r"], ["y"], name="/mix/Transpose_1", perm=[1, 0, 2, 3])]
    graph = helper.make_graph(nodes, "mix", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    path = tmp_path / "mix.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    network = resolve(document := import_onnx(path), document["name"], "mix.onnx")
    assert analyze(network).output_shape == (8, 4, 4)
    with pytest.raises(SpecError, match="measured op ONNX Transpose, Relu was measured on an input 8x4x4, not 8x6x6"):
        analyze(network, (8, 6, 6))


def test_check_strict_fails_an_onnx_import_with_a_measured_row(tmp_path):
    import json

    from conftest import cli_runner

    from archcalc.cli import main

    spec = tmp_path / "attention.json"
    spec.write_text(json.dumps(import_onnx(attention_graph(tmp_path))))
    result = cli_runner().invoke(main, ["check", "--strict", str(spec)])
    assert result.exit_code == 1 and "measured" in result.stdout.lower()


# ---- files exported by torch ---------------------------------------------------------------------------------------


def export(model, shape, path, dynamo=False):
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), torch.randn(1, *shape), str(path), dynamo=dynamo)
    return path


def flop_counter_macs(module, *inputs) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        module(*inputs)
    return counter.get_total_flops() // 2


def windowed_net():
    """A patch embedding, then tokens through an attention that splits its heads with a reshape and a permute
    that moves the batch axis (torchvision's Swin and MaxViT do), a residual, a token mean and a head."""
    import torch
    from torch import nn

    class HeadsAttention(nn.Module):
        def __init__(self, dim: int = 8, heads: int = 2):
            super().__init__()
            self.qkv, self.proj, self.heads = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim), heads

        def forward(self, x):
            b, n, d = x.shape
            q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.heads)
            return self.proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed, self.norm, self.attn, self.head = nn.Conv2d(3, 8, 4, 4), nn.LayerNorm(8), HeadsAttention(), \
                nn.Linear(8, 5)

        def forward(self, x):
            tokens = self.embed(x).flatten(2).transpose(1, 2)
            tokens = tokens + self.attn(self.norm(tokens))
            return self.head(tokens.mean(1))

    torch.manual_seed(0)
    return Net().eval()


def test_a_torch_attention_exported_is_measured_as_flop_counter_counts_it(tmp_path):
    torch = pytest.importorskip("torch")
    model = windowed_net()
    document = import_onnx(export(model, (3, 16, 16), tmp_path / "windowed.onnx"))
    analysis = analyze(resolve(document, document["name"], "windowed.onnx"))
    image = torch.randn(1, 3, 16, 16)
    assert analysis.totals.params == sum(p.numel() for p in model.parameters())
    assert analysis.totals.macs == flop_counter_macs(model, image)
    attention = [r for r in measured_layers(document["layers"]) if r.get("macs")]
    assert [r["macs"] for r in attention] == [flop_counter_macs(model.attn, torch.randn(1, 16, 8))]
    assert [r["params"] for r in attention] == [sum(p.numel() for p in model.attn.parameters())]


def test_batch_norms_folded_and_left_are_both_in_the_note(tmp_path):
    torch = pytest.importorskip("torch")
    from torch import nn

    model = nn.Sequential(nn.Conv2d(3, 6, 3, bias=False), nn.BatchNorm2d(6), nn.ReLU(), nn.BatchNorm2d(6))
    with torch.no_grad():
        for bn in (model[1], model[3]):
            bn.running_var.uniform_(0.5, 1.5)
            bn.weight.uniform_(0.5, 1.5)
    document = import_onnx(export(model, (3, 8, 8), tmp_path / "norms.onnx"))
    params = {e["what"]: e["value"] for e in document["expect"]}["params"]
    assert sum(p.numel() for p in model.parameters()) - params == 6  # 6 x 27 + 2 x 12 in the model: the first norm's 12 -> 6
    assert "batch norm folded into 1 convolution by the exporter (0; 6 channels)" in document["comment"]
    assert "so 6 parameters fewer than the model" in document["comment"]
    assert "1 batch norm left unfolded" in document["comment"]


def test_table_of_an_onnx_file_prints_the_folding_note(tmp_path):
    from conftest import cli_runner

    from archcalc.cli import main

    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, bias=False), torch.nn.BatchNorm2d(4))
    path = export(model, (3, 8, 8), tmp_path / "folded.onnx")
    result = cli_runner().invoke(main, ["table", str(path)])
    assert result.exit_code == 0
    assert "note: batch norm folded into 1 convolution by the exporter (0; 4 channels)" in result.stderr
