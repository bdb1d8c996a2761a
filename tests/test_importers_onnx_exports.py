"""`archcalc import onnx` on files from torch's two exporters (`dynamo=False` and the default `dynamo=True`) and on
graphs built with onnx.helper that carry what those files carry (a shared initializer, name_scopes metadata)."""
from __future__ import annotations

import contextlib
import io
import re
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from archcalc.core.calc import analyze  # noqa: E402
from archcalc.core.spec import resolve  # noqa: E402
from archcalc.importers.onnx_graph import import_onnx  # noqa: E402


def imported(path):
    document = import_onnx(path)
    return document, analyze(resolve(document, document["name"], str(path)))


def leaf_paths(analysis) -> list[str]:
    return [row.path for row in analysis.leaves()[1:]]


def save(tmp_path, nodes, initializers, input_shape, name="graph"):
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, *input_shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializers)
    path = tmp_path / f"{name}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def scoped(node, *names: str):
    """The dynamo exporter's per-node metadata: the modules the node ran in, then its op's own name."""
    helper.set_metadata_props(node, {"pkg.torch.onnx.name_scopes": repr(["", *names])})
    return node


# ---- graphs built with onnx.helper ----------------------------------------------------------------------


def test_an_initializer_read_by_two_convolutions_counts_once(tmp_path):
    weights = [numpy_helper.from_array(np.ones((4, 4, 3, 3), np.float32), "w"),
               numpy_helper.from_array(np.ones(4, np.float32), "b")]
    conv = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c1"], name="/conv/Conv", **conv),
             helper.make_node("Relu", ["c1"], ["r"], name="/act/Relu"),
             helper.make_node("Conv", ["r", "w", "b"], ["y"], name="/conv_1/Conv", **conv)]
    document, analysis = imported(save(tmp_path, nodes, weights, (4, 6, 6)))
    assert analysis.totals.params == 4 * 4 * 3 * 3 + 4  # 148 values in the file, once
    assert {e["what"]: e["value"] for e in document["expect"]}["params"] == 148
    assert analysis.totals.macs == 2 * (4 * 4 * 3 * 3 * 6 * 6)  # both convolutions run: 2 x 5,184
    assert [layer.get("shares") for layer in document["layers"]] == [None, None, "conv"]


def test_an_initializer_merged_from_equal_values_counts_in_each_layer(tmp_path):
    # the dynamo exporter merges initializers of equal values: two convolutions with their own weights read one
    # bias of zeros, which the model holds twice
    weights = [numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float32), "a.weight"),
               numpy_helper.from_array(np.full((4, 4, 1, 1), 2, np.float32), "b.weight"),
               numpy_helper.from_array(np.zeros(4, np.float32), "a.bias")]
    nodes = [helper.make_node("Conv", ["x", "a.weight", "a.bias"], ["c"], name="/a/Conv"),
             helper.make_node("Conv", ["c", "b.weight", "a.bias"], ["y"], name="/b/Conv")]
    document, analysis = imported(save(tmp_path, nodes, weights, (4, 3, 3)))
    assert analysis.totals.params == {e["what"]: e["value"] for e in document["expect"]}["params"] == 2 * (16 + 4)
    assert "counted in each layer that reads them" in document["comment"]


def test_a_gather_of_every_index_after_a_flat_reshape_is_the_tensor_itself(tmp_path):
    # the dynamo exporter's as_strided of ConvNeXt's pooled features: Reshape to [-1], Gather of 0..C-1 as (1, C, 1, 1)
    weights = [numpy_helper.from_array(np.array([-1], np.int64), "flat"),
               numpy_helper.from_array(np.arange(4, dtype=np.int64).reshape(1, 4, 1, 1), "every"),
               numpy_helper.from_array(np.ones((3, 4), np.float32), "fc.weight"),
               numpy_helper.from_array(np.ones(3, np.float32), "fc.bias")]
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["p"], name="/pool/GlobalAveragePool"),
             helper.make_node("Reshape", ["p", "flat"], ["f"], name="node_Reshape_7"),
             helper.make_node("Gather", ["f", "every"], ["g"], name="node_as_strided", axis=0),
             helper.make_node("Flatten", ["g"], ["h"], name="/flatten/Flatten"),
             helper.make_node("Gemm", ["h", "fc.weight", "fc.bias"], ["y"], name="/fc/Gemm", transB=1)]
    _, analysis = imported(save(tmp_path, nodes, weights, (4, 5, 5)))
    assert [row.label for row in analysis.leaves()[1:]] == ["adaptive_avg_pool2d", "flatten", "linear"]
    assert analysis.totals.params == 4 * 3 + 3  # the indices are not weights


def test_name_scopes_metadata_names_the_rows_by_torch_module(tmp_path):
    # names as the dynamo exporter writes them: node_<Op>_<n>, the modules in the metadata; a batch norm folded
    # into `block.conv2` gives its Conv the norm's scopes, while its weight keeps the conv's name
    weights = [numpy_helper.from_array(np.ones((4, 3, 1, 1), np.float32), "block.conv1.weight"),
               numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float32), "block.conv2.weight"),
               numpy_helper.from_array(np.ones(4, np.float32), "block.conv2.weight_bias")]
    nodes = [scoped(helper.make_node("Conv", ["x", "block.conv1.weight"], ["c1"], name="node_Conv_7"),
                    "block", "block.conv1", "conv2d"),
             scoped(helper.make_node("Relu", ["c1"], ["r1"], name="node_relu"), "block", "block.act", "relu"),
             scoped(helper.make_node("Conv", ["r1", "block.conv2.weight", "block.conv2.weight_bias"], ["c2"],
                                     name="node_Conv_9"), "block", "block.bn2", "_native_batch_norm_legit_no_training"),
             scoped(helper.make_node("Relu", ["c2"], ["y"], name="node_relu_1"), "block", "block.act", "relu_1")]
    _, analysis = imported(save(tmp_path, nodes, weights, (3, 4, 4)))
    assert leaf_paths(analysis) == ["block.conv1", "block.act", "block.conv2", "block.act"]  # one module, two calls


def test_a_node_without_name_scopes_takes_its_users_module(tmp_path):
    # the exporter's optimizer makes a Split (x.chunk(2, dim=1)) without metadata
    weights = [numpy_helper.from_array(np.ones((2, 2, 1, 1), np.float32), "unit.conv.weight")]
    nodes = [helper.make_node("Split", ["x"], ["a", "b"], name="node_Split_3", axis=1, num_outputs=2),
             scoped(helper.make_node("Conv", ["b", "unit.conv.weight"], ["c"], name="node_Conv_4"),
                    "unit", "unit.conv", "conv2d"),
             scoped(helper.make_node("Concat", ["a", "c"], ["y"], name="node_cat", axis=1), "unit", "cat")]
    _, analysis = imported(save(tmp_path, nodes, weights, (4, 3, 3)))
    slices = [row for row in analysis.leaves() if row.label == "slice"]
    assert [row.path.split(".")[0] for row in slices] == ["unit", "unit"]
    assert [row.output_shape for row in slices] == [(2, 3, 3), (2, 3, 3)]  # channels 0:2 and 2:4 of 4
    assert analysis.totals.params == 2 * 2 and analysis.totals.macs == 2 * 2 * 3 * 3


# ---- files from torch's exporters ----------------------------------------------------------------------

torch = pytest.importorskip("torch")
from archcalc.torch.build import build_torch  # noqa: E402
from tests import handwritten_models  # noqa: E402

EXPORTERS = [pytest.param(False, id="legacy"), pytest.param(True, id="dynamo")]


def export(model, shape, path, dynamo: bool):
    """`model` exported at one image of `shape`, every parameter and batch norm statistic given random positive
    values (the dynamo exporter drops a bias of zeros, a freshly made model's, and so would a folded batch norm's)."""
    generator = torch.Generator().manual_seed(0)
    model = model.eval()
    with torch.no_grad():
        for tensor in (*model.parameters(), *model.buffers()):
            if tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (torch.randn(1, *shape),), str(path), dynamo=dynamo)
    return path


def flop_counter_macs(model, shape) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.randn(1, *shape))
    return counter.get_total_flops() // 2


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_shuffle_unit_chunk_cat_and_shuffle(tmp_path, dynamo):
    # x.chunk(2, dim=1) (legacy: Slice at Shape(x)[1] / 2; dynamo: Split), cat, view-transpose-view; a tuple out
    model = handwritten_models.ShuffleUnit(8)
    document, analysis = imported(export(model, (8, 5, 6), tmp_path / "unit.onnx", dynamo))
    assert analysis.totals.params == sum(p.numel() for p in model.parameters())  # 4*4+4 + 4*9+4 = 60
    assert analysis.totals.macs == flop_counter_macs(model, (8, 5, 6))  # the two convolutions: 16*30 + 36*30
    labels = [row.label for row in analysis.leaves()[1:]]
    assert labels.count("slice") == 2 and labels[-1] == "channel_shuffle"
    assert "2 outputs: analysed on the first" in document["comment"]
    if dynamo:  # named by the modules of name_scopes, not node_Conv_12
        assert [p.split(".")[-2:] for p in leaf_paths(analysis) if "branch" in p] == [
            ["branch", "0"], ["branch", "1"], ["branch", "2"]]


def test_tiny_resnet_from_the_dynamo_exporter_is_named_as_torch_names_it(tmp_path):
    model = handwritten_models.TinyResNet()
    _, analysis = imported(export(model, (3, 16, 16), tmp_path / "tiny.onnx", True))
    norms = [m.num_features for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    # each batch norm follows a convolution: folded, its 2C weights become C values of bias
    assert analysis.totals.params == sum(p.numel() for p in model.parameters()) - sum(norms)
    convs = [re.sub(r"\.add\.\d+", "", row.path) for row in analysis.leaves() if row.label == "conv2d"]  # merges aside
    assert convs == ["conv2d", "layer1.0.conv1", "layer1.0.conv2", "layer1.1.conv1", "layer1.1.conv2",
                     "layer1.1.downsample.0"]  # the stem's F.conv2d, then the modules
    assert not any("node_" in path for path in leaf_paths(analysis))


def conv(name: str, out: int, kernel: int = 1) -> dict:
    return {"name": name, "type": "conv2d", "out": out, "kernel": kernel, "padding": kernel // 2, "bias": False}


BN, RELU = {"type": "batch_norm2d"}, {"type": "relu"}
NESTED_CONCAT = [  # Inception v3's E block: a concat inside a branch of a concat, beside a pooled branch
    conv("stem", 8, 3), {"name": "stem_bn", **BN}, RELU,
    {"name": "mix", "type": "concat", "branches": [
        [conv("b1", 4)],
        [conv("b2", 4), {"name": "pair", "type": "concat", "branches": [[conv("b2a", 2, 3)], [conv("b2b", 2)]]}],
        [{"type": "avg_pool2d", "kernel": 3, "stride": 1, "padding": 1}, conv("b3", 2)]]}]
GROWING_CONCAT = [  # DenseNet's: each layer reads the concatenation of every output before it
    conv("x0", 4, 3), {"name": "n0", **BN}, {"name": "r0", **RELU},
    conv("x1", 2, 3),
    {"name": "j1", "type": "concat", "from": ["r0", "x1"]}, {"name": "n1", **BN}, RELU, conv("x2", 2, 3),
    {"name": "j2", "type": "concat", "from": ["r0", "x1", "x2"]}, {"name": "n2", **BN}, RELU]


@pytest.mark.parametrize(("layers", "params", "running", "folded"), [
    # the stem's batch norm folds into the stem (its 2 x 8 weights become 8 of bias): 3*8*9 + 8, then the 1x1 and
    # 3x3 convolutions of the branches: 8*4 + 8*4 + 4*2*9 + 4*2 + 8*2
    pytest.param(NESTED_CONCAT, 3 * 8 * 9 + 8 + 8 * 4 + 8 * 4 + 4 * 2 * 9 + 4 * 2 + 8 * 2, 0, ["stem_bn"], id="nested"),
    # n0 folds into x0 (3*4*9 + 4); n1 and n2 follow a concat, not a convolution: kept, their running statistics
    # non-trainable (2*6 + 2*8); x1 4*2*9, x2 6*2*9; n1 and n2 weights and biases 2*6 + 2*8
    pytest.param(GROWING_CONCAT, 3 * 4 * 9 + 4 + 4 * 2 * 9 + 6 * 2 * 9 + 2 * 6 + 2 * 8, 2 * 6 + 2 * 8, ["n0"],
                 id="growing"),
])
def test_zoo_layers_built_by_archcalc_through_the_legacy_exporter(tmp_path, layers, params, running, folded):
    network = resolve({"input": [3, 8, 8], "layers": layers}, "net", "net.json")
    original = analyze(network)
    model = build_torch(original)
    document, analysis = imported(export(model, (3, 8, 8), tmp_path / "net.onnx", False))
    expect = {e["what"]: e["value"] for e in document["expect"]}
    assert (analysis.totals.params, expect["params"], expect["non_trainable"]) == (params, params, running)
    folded_macs = sum(row.macs for row in original.rows if row.path in folded)
    assert analysis.totals.macs == original.totals.macs - folded_macs
    assert analysis.rows[-1].output_shape == original.rows[-1].output_shape
