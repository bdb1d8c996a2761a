"""`archcalc import onnx`: graphs built with onnx.helper (no torch), torch exports of zoo networks."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from jsonschema import Draft202012Validator

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from archcalc.core.calc import analyze  # noqa: E402
from archcalc.core.spec import load, resolve  # noqa: E402
from archcalc.errors import SpecError  # noqa: E402
from archcalc.importers.onnx_graph import import_onnx  # noqa: E402


def weight(name: str, *shape: int):
    return numpy_helper.from_array(np.zeros(shape, dtype=np.float32), name)


def ints(name: str, *values: int):
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def save(tmp_path, nodes, initializers, input_shape, name="graph", opset=17):
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, *input_shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


SCHEMA = json.loads((Path(__file__).parent.parent / "specs" / "schema.json").read_text())
FIXTURES = Path(__file__).parent / "fixtures"


def imported(path):
    document = import_onnx(path)
    assert list(Draft202012Validator(SCHEMA).iter_errors(document)) == []  # a spec like any other
    return document, analyze(resolve(document, document["name"], str(path)))


def test_helper_graph_with_a_pad_a_fork_and_a_classifier(tmp_path):
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["p"], name="stem/pad"),
        helper.make_node("Conv", ["p", "w1", "b1"], ["c"], name="stem/conv", kernel_shape=[3, 3], strides=[2, 2]),
        helper.make_node("BatchNormalization", ["c", "g", "beta", "mean", "var"], ["n"], name="stem/bn", epsilon=1e-3),
        helper.make_node("Relu", ["n"], ["r"], name="stem/relu"),
        helper.make_node("MaxPool", ["r"], ["m"], name="mix/pool", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["r", "w2"], ["q"], name="mix/conv1x1", kernel_shape=[1, 1]),
        helper.make_node("Concat", ["m", "q"], ["k"], name="mix/concat", axis=1),
        helper.make_node("Clip", ["k", "lo", "hi"], ["z"], name="relu6"),
        helper.make_node("GlobalAveragePool", ["z"], ["a"], name="pool"),
        helper.make_node("Flatten", ["a"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["g3"], name="fc", transB=1),
        helper.make_node("Softmax", ["g3"], ["y"], name="softmax", axis=1),
    ]
    inits = [ints("pads", 0, 0, 0, 0, 0, 0, 1, 1), weight("w1", 8, 3, 3, 3), weight("b1", 8), weight("g", 8),
             weight("beta", 8), weight("mean", 8), weight("var", 8), weight("w2", 4, 8, 1, 1),
             numpy_helper.from_array(np.array(0, np.float32), "lo"), numpy_helper.from_array(np.array(6, np.float32), "hi"),
             weight("w3", 10, 12), weight("b3", 10)]
    document, analysis = imported(save(tmp_path, nodes, inits, (3, 32, 32)))
    rows = {row.path: row for row in analysis.leaves()}
    # pad bottom/right 1 then 3x3 stride 2 on 32: TensorFlow's 'same' (out 16, padding (0, 1) each axis)
    assert rows["stem.conv"].output_shape == (8, 16, 16)
    assert document["layers"][0]["layers"][0]["padding"] == "same"
    assert rows["stem.conv"].params == 8 * 3 * 9 + 8
    assert rows["stem.conv"].macs == 8 * 16 * 16 * 27
    assert (rows["stem.bn"].params, rows["stem.bn"].non_trainable) == (16, 16)
    assert rows["mix.conv1x1"].params == 4 * 8  # the concat is all the name scope `mix` does: its op, `mix.concat`
    assert rows["mix.concat"].output_shape == (12, 16, 16)  # 8 pooled + 4 convolved channels
    assert rows["relu6"].label == "relu6"  # Clip(0, 6)
    assert rows["fc"].params == 12 * 10 + 10
    assert analysis.totals.params == 224 + 16 + 32 + 130
    assert analysis.totals.macs == 8 * 16 * 16 * 27 + 4 * 16 * 16 * 8 + 12 * 10
    assert {"what": "params", "value": 402, "source": "imported from graph.onnx at 3x32x32"} in document["expect"]
    assert {"what": "non_trainable", "value": 16, "source": "imported from graph.onnx at 3x32x32"} in document["expect"]


def test_helper_graph_with_se_residual_upsampling_and_matmul(tmp_path):
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c"], name="block/conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=2),
        helper.make_node("Sigmoid", ["c"], ["s"], name="block/act/Sigmoid"),
        helper.make_node("Mul", ["c", "s"], ["a"], name="block/act/Mul"),
        helper.make_node("GlobalAveragePool", ["a"], ["g"], name="block/se/pool"),
        helper.make_node("Conv", ["g", "w2", "b2"], ["e"], name="block/se/fc", kernel_shape=[1, 1]),
        helper.make_node("HardSigmoid", ["e"], ["h"], name="block/se/gate", alpha=1 / 6, beta=0.5),
        helper.make_node("Mul", ["a", "h"], ["m"], name="block/se/mul"),
        helper.make_node("Add", ["m", "x"], ["r"], name="block/add"),
        helper.make_node("LRN", ["r"], ["l"], name="lrn", size=3),
        helper.make_node("Resize", ["l", "", "scales"], ["u"], name="up", mode="nearest"),
        helper.make_node("ConvTranspose", ["u", "w3"], ["t"], name="deconv", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("AveragePool", ["t"], ["v"], name="pool", kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
        helper.make_node("ReduceMean", ["v"], ["mm"], name="mean", axes=[2, 3], keepdims=0),
        helper.make_node("MatMul", ["mm", "w4"], ["fc"], name="fc/MatMul"),
        helper.make_node("Add", ["fc", "b4"], ["y"], name="fc/Add"),
    ]
    inits = [weight("w1", 4, 2, 3, 3), weight("w2", 4, 4, 1, 1), weight("b2", 4),
             numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"), weight("w3", 4, 6, 2, 2),
             weight("w4", 6, 5), weight("b4", 5)]
    document, analysis = imported(save(tmp_path, nodes, inits, (4, 6, 6)))
    rows = {row.path: row for row in analysis.leaves()}
    types = [row.label for row in analysis.leaves()[1:]]
    assert "silu" in types and "hardsigmoid" in types  # x * sigmoid(x) is one SiLU; the gate a hard sigmoid
    assert rows["block.conv"].params == 4 * 2 * 9  # groups=2: 2 input channels per filter (beside `block.add`)
    assert rows["up"].output_shape == (4, 12, 12)
    assert rows["up"].fvcore_flops == 4 * 12 * 12  # nearest: 1 per output element
    assert rows["deconv"].output_shape == (6, 24, 24)
    assert rows["deconv"].macs == 4 * 12 * 12 * 6 * 4  # Cin*Hin*Win*Cout*Kh*Kw
    assert rows["pool"].output_shape == (6, 12, 12)  # ceil((24 - 3)/2) + 1 = 12
    assert rows["fc"].label == "linear" and rows["fc"].params == 6 * 5 + 5  # MatMul + Add of a vector
    assert analysis.totals.params == 72 + 20 + 96 + 35


def test_torch_export_with_batch_norm_folded_says_so(tmp_path):
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, bias=False), torch.nn.BatchNorm2d(8), torch.nn.ReLU()).eval()
    path = tmp_path / "folded.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.randn(1, 3, 10, 10), str(path), dynamo=False)
    document, analysis = imported(path)
    assert [row.label for row in analysis.leaves()[1:]] == ["conv2d", "relu"]
    assert analysis.totals.params == 8 * 27 + 8  # the folded batch norm is the convolution's bias now
    bn_params = sum(p.numel() for p in model[1].parameters())  # the norm's weight and bias: 2 x 8
    assert bn_params - 8 == 8  # the model's 8 x 27 + 16 against the file's 8 x 27 + 8
    assert "batch norm folded into 1 convolution by the exporter (0; 8 channels)" in document["comment"]
    assert "so 8 parameters fewer than the model" in document["comment"]


def scalar(name: str, value: float):
    return numpy_helper.from_array(np.array(value, dtype=np.float32), name)


def test_helper_graph_with_group_normalization(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="/conv/Conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("GroupNormalization", ["c", "scale", "bias"], ["n"], name="/norm/GroupNormalization",
                              num_groups=2, epsilon=1e-3),
             helper.make_node("Relu", ["n"], ["y"], name="/act/Relu")]
    inits = [weight("w", 8, 3, 3, 3), weight("b", 8), weight("scale", 8), weight("bias", 8)]
    document, analysis = imported(save(tmp_path, nodes, inits, (3, 8, 8), opset=21))
    norm = document["layers"][1]
    assert (norm["type"], norm["groups"], norm["eps"]) == ("group_norm", 2, 1e-3)
    rows = {row.path: row for row in analysis.leaves()}
    assert rows["norm"].params == 2 * 8  # a scale and a bias per channel
    assert rows["norm"].fvcore_flops == 5 * 8 * 8 * 8  # 5 per element with affine
    assert analysis.totals.params == 8 * 3 * 9 + 16


def test_helper_graph_with_a_channels_last_layer_norm_and_linear(tmp_path):
    # ConvNeXt's block as its authors write it: LayerNorm and the MLP on a channels-last tensor
    nodes = [helper.make_node("Transpose", ["x"], ["t"], name="/block/Transpose", perm=[0, 2, 3, 1]),
             helper.make_node("LayerNormalization", ["t", "g", "b"], ["n"], name="/block/norm/LayerNormalization",
                              axis=-1, epsilon=1e-6),
             helper.make_node("MatMul", ["n", "w1"], ["m"], name="/block/pwconv1/MatMul"),
             helper.make_node("Add", ["m", "b1"], ["a"], name="/block/pwconv1/Add"),
             helper.make_node("Gelu", ["a"], ["e"], name="/block/act/Gelu"),
             helper.make_node("Mul", ["e", "gamma"], ["s"], name="/block/Mul"),
             helper.make_node("Transpose", ["s"], ["y"], name="/block/Transpose_1", perm=[0, 3, 1, 2])]
    inits = [weight("g", 6), weight("b", 6), weight("w1", 6, 24), weight("b1", 24), weight("gamma", 24)]
    _, analysis = imported(save(tmp_path, nodes, inits, (6, 5, 7), opset=20))
    rows = {row.path: row for row in analysis.leaves()}
    assert [row.label for row in analysis.leaves()[1:]] == ["layer_norm2d", "conv2d", "gelu", "layer_scale"]
    assert rows["block.norm"].output_shape == (6, 5, 7) and rows["block.norm"].params == 2 * 6
    assert rows["block.norm"].fvcore_flops == 5 * 6 * 5 * 7
    assert rows["block.pwconv1"].output_shape == (24, 5, 7)  # a 1x1 convolution: 6 -> 24 channels
    assert rows["block.pwconv1"].params == 6 * 24 + 24
    assert rows["block.pwconv1"].macs == 5 * 7 * 6 * 24
    assert rows["block.Mul"].params == 24
    assert analysis.totals.params == 12 + 168 + 24 and analysis.output_shape == (24, 5, 7)


def test_helper_graph_with_lrn_node(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="/conv/Conv", kernel_shape=[1, 1]),
             helper.make_node("LRN", ["c"], ["y"], name="/lrn/LRN", size=3, alpha=2e-4, beta=0.5, bias=2.0)]
    document, analysis = imported(save(tmp_path, nodes, [weight("w", 7, 3, 1, 1)], (3, 5, 5)))
    # ONNX's alpha, beta, bias and size are torch's alpha, beta, k and size: both divide by
    # (k + alpha/size * sum of the squares in the window)^beta
    assert document["layers"][1] == {"name": "lrn", "type": "lrn", "size": 3, "alpha": 2e-4, "beta": 0.5, "k": 2.0}
    lrn = analysis.leaves()[-1]
    assert (lrn.output_shape, lrn.params, lrn.macs, lrn.fvcore_flops) == ((7, 5, 5), 0, 0, 0)
    assert analysis.totals.params == 7 * 3


def lrn_sequence(kernel: list[int], alpha: float = 3e-4, beta: float = 0.6, k: float = 2.0) -> tuple[list, list]:
    """torch's local_response_norm as its exporter writes it (x*x, a window over the channels, ...)."""
    size = kernel[0]
    nodes = [helper.make_node("Mul", ["x", "x"], ["sq"], name="/lrn/Mul"),
             helper.make_node("Reshape", ["sq", "five"], ["r"], name="/lrn/Reshape"),
             helper.make_node("Pad", ["r", "pads"], ["p"], name="/lrn/Pad"),
             helper.make_node("AveragePool", ["p"], ["a"], name="/lrn/AveragePool", kernel_shape=kernel,
                              strides=[1, 1, 1], pads=[0, 0, 0, 0, 0, 0]),
             helper.make_node("Squeeze", ["a", "one"], ["q"], name="/lrn/Squeeze"),
             helper.make_node("Mul", ["q", "alpha"], ["m"], name="/lrn/Mul_1"),
             helper.make_node("Add", ["m", "k"], ["s"], name="/lrn/Add"),
             helper.make_node("Pow", ["s", "beta"], ["d"], name="/lrn/Pow"),
             helper.make_node("Div", ["x", "d"], ["y"], name="/lrn/Div")]
    inits = [ints("five", 1, 1, 6, 4, 4), ints("pads", 0, 0, size // 2, 0, 0, 0, 0, (size - 1) // 2, 0, 0),
             ints("one", 1), scalar("alpha", alpha), scalar("k", k), scalar("beta", beta)]
    return nodes, inits


def test_helper_graph_with_torchs_lrn_sequence(tmp_path):
    document, analysis = imported(save(tmp_path, *lrn_sequence([3, 1, 1]), (6, 4, 4)))
    assert document["layers"] == [{"name": "lrn", "type": "lrn", "size": 3, "alpha": 3e-4, "beta": 0.6, "k": 2.0}]
    assert analysis.leaves()[-1].output_shape == (6, 4, 4) and analysis.totals.params == 0


def test_torch_exports_of_group_norm_lrn_layer_norm_and_gelu_sequences(tmp_path):
    # the exporter's sequences at its default opset and at 14 (LayerNorm and GELU decomposed),
    # against the module's parameters and fvcore's total
    torch = pytest.importorskip("torch")
    fvnn = pytest.importorskip("fvcore.nn")
    import handwritten_models

    nn = torch.nn
    models = {"convnext": (handwritten_models.TinyConvNeXt, (3, 32, 40)),
              "norms": (lambda: nn.Sequential(nn.Conv2d(3, 8, 3), nn.GroupNorm(4, 8, affine=False), nn.LocalResponseNorm(3),
                                              nn.Conv2d(8, 8, 3), nn.GroupNorm(2, 8), nn.ReLU()), (3, 12, 10))}
    for name, (build, shape) in models.items():
        for opset in (None, 14):
            torch.manual_seed(0)
            model = build().eval()
            x = torch.randn(1, *shape)
            path = tmp_path / f"{name}{opset}.onnx"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(model, x, str(path), dynamo=False, **({"opset_version": opset} if opset else {}))
            _, analysis = imported(path)
            flops = fvnn.FlopCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            assert analysis.totals.params == sum(p.numel() for p in model.parameters()), (name, opset)
            assert analysis.totals.fvcore_flops == flops.total(), (name, opset)
            assert analysis.output_shape == tuple(model(x).shape[1:])


# residual, concat, SE, same; ConvNeXt (layer norm between transposes); AlexNet as published (LRN)
ONNX_SAMPLE = ["lenet5", "inception_naive", "resnet18", "tests/fixtures/mirror.json", "convnext_tiny", "alexnet_paper"]


@pytest.mark.parametrize("name", ONNX_SAMPLE)
def test_zoo_round_trip_through_onnx(name, tmp_path):
    torch = pytest.importorskip("torch")
    from test_importers_torch import rows_differ

    from archcalc.torch.build import build_torch

    network = load(str(Path(__file__).parent.parent / name) if name.endswith(".json") else name)
    torch.manual_seed(0)
    model = build_torch(network).eval()
    path = tmp_path / f"{network.name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # batch norm kept (PRESERVE): its rows are compared too
        torch.onnx.export(model, torch.randn(1, *network.input), str(path), dynamo=False,
                          training=torch.onnx.TrainingMode.PRESERVE)
    original = analyze(network)
    _, result = imported(path)
    # the exporter drops identity modules (stochastic depth at inference): rows with nothing to count
    dropped = [p for p in rows_differ(original, result) if isinstance(p, str)]
    assert all(original.row(p).label in ("stochastic_depth", "identity", "dropout") for p in dropped)
    assert [p for p in rows_differ(original, result) if not isinstance(p, str)] == []
    assert result.totals == original.totals


# ---- one line, exit 2, no file ------------------------------------------------------------

def test_unsupported_op_names_the_node(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="/body/conv/Conv", kernel_shape=[1, 1]),
             helper.make_node("InstanceNormalization", ["c", "s", "b"], ["y"], name="/body/norm/InstanceNormalization")]
    path = save(tmp_path, nodes, [weight("w", 2, 3, 1, 1), weight("s", 2), weight("b", 2)], (3, 4, 4))
    with pytest.raises(SpecError, match=r"ONNX node /body/norm/InstanceNormalization \(InstanceNormalization\): "
                                        r"ONNX op InstanceNormalization has no archcalc layer type"):
        import_onnx(path, strict=True)


def test_unsupported_op_through_the_command_line_is_one_line_exit_2_and_no_file(tmp_path):
    from conftest import cli_runner

    from archcalc.cli import main

    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="/body/conv/Conv", kernel_shape=[1, 1]),
             helper.make_node("InstanceNormalization", ["c", "s", "b"], ["y"], name="/body/norm/InstanceNormalization")]
    model = save(tmp_path, nodes, [weight("w", 2, 3, 1, 1), weight("s", 2), weight("b", 2)], (3, 4, 4))
    out = tmp_path / "out" / "model.json"
    result = cli_runner().invoke(main, ["import", "onnx", str(model), "-o", str(out), "--strict"])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == (f"archcalc: {model}: ONNX node /body/norm/InstanceNormalization (InstanceNormalization): "
                             "ONNX op InstanceNormalization has no archcalc layer type\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [model.name]  # no out folder, no file


def test_a_fifo_in_place_of_an_onnx_file_is_refused_without_reading(tmp_path):
    import os

    fifo = tmp_path / "model.onnx"
    os.mkfifo(fifo)  # reading it would wait for a writer for ever
    with pytest.raises(SpecError, match="not a regular file .*archcalc reads ONNX models from files only"):
        import_onnx(fifo)


BROKEN = {
    "a layer norm over H, W and C": (
        [helper.make_node("Transpose", ["x"], ["t"], name="/norm/Transpose", perm=[0, 2, 3, 1]),
         helper.make_node("LayerNormalization", ["t", "g", "b"], ["n"], name="/norm/LayerNormalization", axis=1),
         helper.make_node("Transpose", ["n"], ["y"], name="/norm/Transpose_1", perm=[0, 3, 1, 2])],
        [weight("g", 4, 4, 6), weight("b", 4, 4, 6)], 17,
        (r"ONNX node /norm/LayerNormalization \(LayerNormalization\): ONNX op LayerNormalization with these attributes "
         r"has no archcalc layer type \(axis=1, input 6x4x4 on the channels-last \(permuted\) tensor\)")),
    "a layer norm on NCHW": (
        [helper.make_node("LayerNormalization", ["x", "g", "b"], ["y"], name="/norm/LayerNormalization", axis=1)],
        [weight("g", 6, 4, 4), weight("b", 6, 4, 4)], 17,
        r"ONNX node /norm/LayerNormalization \(LayerNormalization\): ONNX op LayerNormalization with these attributes"),
    "a transpose of the batch axis": (
        [helper.make_node("Transpose", ["x"], ["t"], name="/head/Transpose", perm=[1, 0, 2, 3]),
         helper.make_node("Relu", ["t"], ["y"], name="/head/Relu")], [], 17,
        r"ONNX node /head/Transpose \(Transpose\): permute \[1, 0, 2, 3\] moves the batch axis"),
    "a group norm's scale per group": (
        [helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], name="/gn/GroupNormalization", num_groups=2)],
        [weight("s", 2), weight("b", 2)], 18,
        r"ONNX node /gn/GroupNormalization \(GroupNormalization\): ONNX op GroupNormalization with these attributes"),
    "a window over H and W, not the channels": (
        *lrn_sequence([1, 3, 3]), 17, r"ONNX node /lrn/Pad \(Pad\): only a zero pad of H and W"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_variant_of_a_recognised_sequence_names_the_node(case, tmp_path):
    nodes, inits, opset, message = BROKEN[case]
    path = save(tmp_path, nodes, inits, (6, 4, 4), opset=opset)
    with pytest.raises(SpecError, match=message) as caught:
        import_onnx(path, strict=True)
    assert "\n" not in str(caught.value)


def test_not_series_parallel_is_a_graph_spec(tmp_path):
    # a = conv(x); b = conv(x) + a; y = conv(a) + b: the two paths from x cross
    nodes = [helper.make_node("Conv", ["x", "wa"], ["a"], name="a", kernel_shape=[1, 1]),
             helper.make_node("Conv", ["x", "wb"], ["b"], name="b", kernel_shape=[1, 1]),
             helper.make_node("Add", ["b", "a"], ["s"], name="sum1"),
             helper.make_node("Conv", ["a", "wc"], ["c"], name="c", kernel_shape=[1, 1]),
             helper.make_node("Add", ["c", "s"], ["y"], name="sum2")]
    path = save(tmp_path, nodes, [weight(w, 3, 3, 1, 1) for w in ("wa", "wb", "wc")], (3, 4, 4))
    document = import_onnx(path)
    assert [item.get("from") for item in document["layers"]] == [None, "input", ["b", "a"], "a", ["c", "sum1"]]
    analysis = analyze(load(document))
    assert analysis.totals.params == 27  # three 3x3x1x1 weights
    assert analysis.totals.macs == 3 * 16 * 9  # three 1x1 convolutions 3 -> 3 on 4x4


def test_a_file_that_is_not_onnx(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_text("this is not a protobuf\n")
    with pytest.raises(SpecError, match="not an ONNX model"):
        import_onnx(path)


NO_TORCH = """
import sys
sys.modules["torch"] = None  # `import torch` now raises ImportError
from archcalc.cli import main
main(["table", {path!r}])
"""


def test_table_of_an_onnx_file_works_without_torch(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3, 3]),
             helper.make_node("Relu", ["c"], ["y"], name="relu")]
    path = save(tmp_path, nodes, [weight("w", 5, 3, 3, 3)], (3, 9, 9), name="tiny")
    result = subprocess.run([sys.executable, "-c", NO_TORCH.format(path=str(path))], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Total params: 135" in result.stdout  # 5 * 3 * 3 * 3
    assert "5x7x7" in result.stdout


@pytest.mark.parametrize("args", [[], ["--format", "markdown"], ["--format", "csv"]])
def test_a_model_file_s_name_is_its_title_shown_escaped(tmp_path, args):
    from conftest import cli_runner
    from hostile_text import controls

    from archcalc.cli import main

    name = "net\x1b]0;pwned\x07\x9b31m\nx <script>"  # a file name may hold any of these
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="/conv/Conv", kernel_shape=[1, 1])]
    path = save(tmp_path, nodes, [weight("w", 2, 3, 1, 1)], (3, 4, 4), name=name)
    result = cli_runner().invoke(main, ["table", str(path), *args])
    assert result.exit_code == 0, (result.output, result.exception)
    assert controls(result.stdout) == [] and controls(result.stderr) == []
    if not args:
        assert result.stdout.split("\n")[0].endswith(": net\\x1b]0;pwned\\x07\\x9b31m\\nx <script>")  # name: title
    elif "markdown" in args:
        assert result.stdout.split("\n")[0].endswith(": net\\x1b]0;pwned\\x07\\x9b31m x &lt;script>")


# ---- hostile files: bounded work, one line naming the file ------------------------------------

def conv_relu(tmp_path, extra_nodes=(), extra_inits=(), name="hostile", opset=17, input_shape=(3, 8, 8)):
    """A valid conv + relu graph (5 * 3 * 3 * 3 = 135 parameters) with `extra_nodes` beside it."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3, 3]),
             helper.make_node("Relu", ["c"], ["y"], name="relu"), *extra_nodes]
    return save(tmp_path, nodes, [weight("w", 5, 3, 3, 3), *extra_inits], input_shape, name=name, opset=opset)


def int64(name: str, value: int):
    return numpy_helper.from_array(np.array(value, dtype=np.int64), name)


def refused(path, *, budget=None) -> str:
    """The one-line message of the SpecError that importing `path` with `strict` raises (under `budget`)."""
    from archcalc.budget import use

    with use(budget), pytest.raises(SpecError) as caught:
        import_onnx(path, strict=True)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{path}: "), message
    return message


def test_a_range_computed_from_constants_is_refused_before_it_is_computed(tmp_path):
    # Range(0, 2e6) makes 2,000,000 int64 values: past the 1,000,000 of the default budget
    path = conv_relu(tmp_path, [helper.make_node("Range", ["start", "limit", "delta"], ["r"], name="/bomb/Range")],
                     [int64("start", 0), int64("limit", 2_000_000), int64("delta", 1)])
    message = refused(path)
    assert "ONNX node /bomb/Range (Range)" in message
    assert "start = 0, limit = 2000000, delta = 1" in message
    assert "2,000,000 elements of 8 bytes" in message and "Budget.fold_elements" in message


def test_a_folded_value_within_a_raised_budget_is_computed(tmp_path):
    from archcalc.budget import Budget, use

    path = conv_relu(tmp_path, [helper.make_node("Range", ["start", "limit", "delta"], ["r"], name="/big/Range")],
                     [int64("start", 0), int64("limit", 2_000_000), int64("delta", 1)])
    with use(Budget(fold_elements=2_000_000, fold_bytes=16_000_000)):
        document = import_onnx(path)
    assert {"what": "params", "value": 135, "source": "imported from hostile.onnx at 3x8x8"} in document["expect"]


def ones(name: str, *shape: int):
    return numpy_helper.from_array(np.ones(shape, dtype=np.float32), name)


# each makes 10,000 values (40,000 bytes) from at most 201 input values; the budget below allows 9,999
BOMBS = {
    "ConstantOfShape": ([helper.make_node("ConstantOfShape", ["shape"], ["b"], name="bomb")], [ints("shape", 100, 100)],
                        "shape = [100, 100]"),
    "Expand": ([helper.make_node("Expand", ["one", "shape"], ["b"], name="bomb")], [ones("one", 1), ints("shape", 100, 100)],
               "one = [1.0], shape = [100, 100]"),
    "Tile": ([helper.make_node("Tile", ["row", "reps"], ["b"], name="bomb")], [ones("row", 1, 100), ints("reps", 100, 1)],
             "reps = [100, 1]"),
    "Where": ([helper.make_node("Where", ["cond", "col", "row"], ["b"], name="bomb")],
              [numpy_helper.from_array(np.array(True), "cond"), ones("col", 100, 1), ones("row", 1, 100)], "cond = True"),
    "Add": ([helper.make_node("Add", ["col", "row"], ["b"], name="bomb")], [ones("col", 100, 1), ones("row", 1, 100)],
            "col = a 100x1 float32 tensor"),
    "Pad": ([helper.make_node("Pad", ["one", "pads"], ["b"], name="bomb")], [ones("one", 1, 1), ints("pads", 0, 0, 99, 9999)],
            "pads = [0, 0, 99, 9999]"),
    "Gather": ([helper.make_node("Gather", ["row", "index"], ["b"], name="bomb", axis=0)],
               [ones("row", 1, 100), numpy_helper.from_array(np.zeros(100, np.int64), "index")], "index = a 100 int64 tensor"),
    "a chain": ([helper.make_node("ConstantOfShape", ["shape"], ["a"], name="first"),
                 helper.make_node("ConstantOfShape", ["shape"], ["b"], name="bomb")], [ints("shape", 50, 100)],
                "shape = [50, 100]"),  # 5,000 values each: the budget is for all of them together
}


@pytest.mark.parametrize("case", list(BOMBS))
def test_every_op_computed_from_constants_is_bounded_before_it_runs(case, tmp_path):
    from archcalc.budget import Budget

    nodes, inits, shown = BOMBS[case]
    message = refused(conv_relu(tmp_path, nodes, inits), budget=Budget(fold_elements=9_999, fold_bytes=10**6))
    assert f"ONNX node bomb ({nodes[-1].op_type})" in message and shown in message, message
    assert "Budget.fold_elements" in message
    assert "Budget.fold_bytes" in refused(conv_relu(tmp_path, nodes, inits),
                                          budget=Budget(fold_elements=10**6, fold_bytes=39_999))


LIMITED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, 4 * 2**30))  # reading the file reserves 2 GiB
from archcalc.cli import main
main(["import", "onnx", sys.argv[1]])
"""


def test_a_165_byte_constant_of_shape_bomb_is_one_line_in_little_memory_and_time(tmp_path):
    # ConstantOfShape([30000, 30000]): 3.6 GB of float32 that the file asks for in a few bytes
    path = conv_relu(tmp_path, [helper.make_node("ConstantOfShape", ["shape"], ["b"], name="bomb")],
                     [ints("shape", 30000, 30000)])
    result = subprocess.run([sys.executable, "-c", LIMITED, str(path)], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (2, ""), result.stderr[-2000:]
    assert result.stderr == (f"archcalc: {path}: ONNX node bomb (ConstantOfShape): its value, computed from constants "
                             "(shape = [30000, 30000]), would have 900,000,000 elements of 4 bytes; the values computed "
                             "from constants go past the budget of 1,000,000 elements (Budget.fold_elements)\n")


def test_a_node_whose_output_size_is_unknown_beforehand_is_not_computed(tmp_path):
    # a Loop of 10**8 turns on constants: its outputs' size is known only by running it, so it stays
    body = helper.make_graph([helper.make_node("Identity", ["cond_in"], ["cond_out"])], "body",
                             [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                              helper.make_tensor_value_info("cond_in", TensorProto.BOOL, [])],
                             [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
                              helper.make_tensor_value_info("i_out", TensorProto.INT64, [])])
    body.node.append(helper.make_node("Identity", ["i"], ["i_out"]))
    loop = helper.make_node("Loop", ["trips", "cond"], ["scan"], name="loop", body=body)
    path = conv_relu(tmp_path, [loop], [int64("trips", 10**8), numpy_helper.from_array(np.array(True), "cond")])
    result = subprocess.run([sys.executable, "-c", LIMITED, str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["layers"][0] == {"name": "conv", "type": "conv2d", "out": 5, "kernel": 3, "bias": False}


def tensor(name: str, dims: list[int], data_type=TensorProto.FLOAT, **data):
    """A TensorProto as a file may hold it, its data in the given fields whatever its shape says."""
    t = TensorProto(name=name, data_type=data_type, dims=dims)
    for field, values in data.items():
        if field == "raw_data":
            t.raw_data = values
        else:
            getattr(t, field).extend(values)
    return t


# the weight of conv_relu's convolution (5x3x3x3: 135 float32 values, 540 bytes) with data that does not fill it
MISFITS = {
    "a short raw_data": (dict(raw_data=bytes(536)), "raw_data holds 536 bytes where its shape needs 540"),
    "a long raw_data": (dict(raw_data=bytes(544)), "raw_data holds 544 bytes where its shape needs 540"),
    "raw_data of a part of a value": (dict(raw_data=bytes(541)), "raw_data holds 541 bytes where its shape needs 540"),
    "float_data too short": (dict(float_data=[0.0] * 134), "float_data holds 134 values where its shape needs 135"),
    "float_data too long": (dict(float_data=[0.0] * 136), "float_data holds 136 values where its shape needs 135"),
    "int64_data for a float tensor": (dict(int64_data=[0] * 135),
                                      "float_data holds 0 values where its shape needs 135 (it has 135 in int64_data)"),
    "double_data for a float tensor": (dict(double_data=[0.0] * 135),
                                       "float_data holds 0 values where its shape needs 135 (it has 135 in double_data)"),
    "no data": ({}, "float_data holds 0 values where its shape needs 135"),
}


@pytest.mark.parametrize("case", list(MISFITS))
def test_an_initializer_whose_data_do_not_fill_its_shape_is_one_line(case, tmp_path):
    data, said = MISFITS[case]
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[3, 3])]
    path = save(tmp_path, nodes, [tensor("w", [5, 3, 3, 3], **data)], (3, 8, 8))
    assert refused(path) == f"{path}: initializer w (FLOAT, shape 5x3x3x3): {said}"


@pytest.mark.parametrize("dims, said", [([5, -3, 3, 3], "a negative dimension in its shape [5, -3, 3, 3]"),
                                        ([2**40, 2**40, 0], "its shape 1099511627776x1099511627776x0 has more than 2**62 values")])
def test_an_impossible_initializer_shape_names_the_file(dims, said, tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[3, 3])]
    path = save(tmp_path, nodes, [tensor("w", dims, float_data=[0.0] * 135)], (3, 8, 8))
    assert refused(path) == f"{path}: initializer w: {said}"


def test_a_constant_nodes_tensor_is_checked_as_an_initializer_is(tmp_path):
    constant = helper.make_node("Constant", [], ["k"], name="/k/Constant", value=tensor("kv", [4], raw_data=bytes(15)))
    path = conv_relu(tmp_path, [constant])
    assert refused(path) == (f"{path}: ONNX node /k/Constant (Constant) (FLOAT, shape 4): raw_data holds 15 bytes "
                             "where its shape needs 16")


def test_an_initializer_of_no_tensor_type_is_one_line(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[3, 3])]
    path = save(tmp_path, nodes, [tensor("w", [5, 3, 3, 3], data_type=999, float_data=[0.0] * 135)], (3, 8, 8))
    assert refused(path) == f"{path}: initializer w: data type 999 is not an ONNX tensor type archcalc reads"


def external(name: str, array, location: str, offset: int = 0):
    """An initializer whose data lie in the file `location` (relative to the model) at `offset`."""
    t = numpy_helper.from_array(array, name)
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(array.nbytes))):
        t.external_data.add(key=key, value=value)
    return t


def relu6_with_external_bounds(folder, location: str):
    """conv (135 parameters), Clip(lo, hi) with both bounds read from `location`: a relu6 when they are 0 and 6."""
    folder.mkdir(exist_ok=True)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3, 3]),
             helper.make_node("Clip", ["c", "lo", "hi"], ["y"], name="act")]
    inits = [external("w", np.ones((5, 3, 3, 3), np.float32), location, 8),
             external("lo", np.array(0, np.float32), location, 0), external("hi", np.array(6, np.float32), location, 4)]
    return save(folder, nodes, inits, (3, 8, 8), name="model")


def test_external_data_is_read_beside_the_model_not_in_the_current_folder(tmp_path, monkeypatch):
    path = relu6_with_external_bounds(tmp_path / "model", "weights.bin")
    (tmp_path / "model" / "weights.bin").write_bytes(np.array([0, 6], np.float32).tobytes() + bytes(540))
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "weights.bin").write_bytes(np.array([-1, 1], np.float32).tobytes() + bytes(540))
    monkeypatch.chdir(tmp_path / "elsewhere")  # a file of the same name here must not be read
    document, analysis = imported(path)
    assert [row.label for row in analysis.leaves()[1:]] == ["conv2d", "relu6"]  # Clip(0, 6) from the model's folder
    assert analysis.totals.params == 135


@pytest.mark.parametrize("location, said", [
    ("../../../../../../../../etc/passwd", "the path leads out of the model's folder"),
    ("/etc/passwd", "archcalc reads external data only from a relative path in the model's folder"),
    ("missing.bin", "cannot read it: No such file or directory"),
    ("short.bin", "the file has 20 bytes, fewer than the 548 it needs (540 at offset 8)"),
    ("link.bin", "the path leads out of the model's folder"),
    ("fifo.bin", "not a regular file; archcalc reads external data from files only"),
])
def test_an_external_data_path_outside_the_models_folder_or_unreadable_is_one_line(location, said, tmp_path):
    import os

    folder = tmp_path / "model"
    path = relu6_with_external_bounds(folder, location)
    (folder / "short.bin").write_bytes(bytes(20))
    (tmp_path / "outside.bin").write_bytes(bytes(600))
    os.symlink(tmp_path / "outside.bin", folder / "link.bin")
    os.mkfifo(folder / "fifo.bin")  # opening it for reading would wait for a writer
    message = refused(path)
    assert message.startswith(f"{path}: initializer ") and f"external data {location!r}" in message, message
    assert said in message, message


def test_a_cycle_is_named_as_a_cycle(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[1, 1]),
             helper.make_node("Add", ["c", "z"], ["y"], name="add"),
             helper.make_node("Relu", ["y"], ["z"], name="relu")]
    path = save(tmp_path, nodes, [weight("w", 3, 3, 1, 1)], (3, 4, 4))
    assert refused(path) == (f"{path}: the graph has a cycle: ONNX nodes relu (Relu) -> add (Add) -> relu (Relu), "
                             "each reading the value of the one before")


def test_an_input_that_nothing_computes_is_named(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[1, 1]),
             helper.make_node("Add", ["c", "nowhere"], ["y"], name="add")]
    path = save(tmp_path, nodes, [weight("w", 3, 3, 1, 1)], (3, 4, 4))
    assert refused(path) == (f"{path}: ONNX node add (Add): its input 'nowhere' is not computed by any node, "
                             "nor an input or initializer of the graph")


def test_a_value_computed_twice_is_named(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[1, 1]),
             helper.make_node("Relu", ["x"], ["c"], name="relu"), helper.make_node("Relu", ["c"], ["y"], name="out")]
    path = save(tmp_path, nodes, [weight("w", 3, 3, 1, 1)], (3, 4, 4))
    assert refused(path) == f"{path}: ONNX node relu (Relu): its output 'c' is also the output of ONNX node conv (Conv)"


def test_nodes_out_of_order_are_read_in_the_order_of_their_values(tmp_path):
    # ONNX asks for a topological order; a file that lists a node before its input's maker is still one network
    nodes = [helper.make_node("Relu", ["c"], ["y"], name="relu"),
             helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[1, 1])]
    _, analysis = imported(save(tmp_path, nodes, [weight("w", 3, 3, 1, 1)], (3, 4, 4)))
    assert [row.label for row in analysis.leaves()[1:]] == ["conv2d", "relu"] and analysis.totals.params == 9


def test_two_nodes_of_one_name_are_two_layers(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], name="conv", kernel_shape=[1, 1]),
             helper.make_node("Conv", ["a", "w"], ["y"], name="conv", kernel_shape=[1, 1])]
    _, analysis = imported(save(tmp_path, nodes, [weight("w", 3, 3, 1, 1)], (3, 4, 4)))
    # one weight read by both: one module called twice, as torch names it (its 3x3 weights count once)
    assert [row.path for row in analysis.leaves()[1:]] == ["conv", "conv"]
    assert analysis.totals.macs == 2 * 3 * 3 * 16  # two 1x1 convolutions, 3 -> 3 channels on 4x4
    assert analysis.totals.params == 3 * 3


def test_an_error_found_while_reading_the_nodes_names_the_file(tmp_path):
    nodes = [helper.make_node("Transpose", ["x"], ["t"], name="/head/Transpose", perm=[1, 0, 2, 3]),
             helper.make_node("Relu", ["t"], ["y"], name="/head/Relu")]
    path = save(tmp_path, nodes, [], (6, 4, 4))
    assert refused(path).startswith(f"{path}: ONNX node /head/Transpose (Transpose): permute [1, 0, 2, 3]")


# weights that do not fit the input the file declares (or the node's attributes): archcalc would count the input's
WRONG_WEIGHTS = {
    "a convolution on 10**12 channels with a weight for 3": (
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[1, 1])], [weight("w", 2, 3, 1, 1)],
        (10**12, 8, 8), "its weights (2x3x1x1) hold 6 values where archcalc's conv2d on its input 1000000000000x8x8 "
                        "has 2,000,000,000,000 parameters"),
    "a transposed convolution": (
        [helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="conv", kernel_shape=[1, 1])],
        [weight("w", 3, 2, 1, 1)], (5, 8, 8), "its weights (3x2x1x1) hold 6 values where archcalc's conv_transpose2d"),
    "a batch norm for 3 channels on 5": (
        [helper.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["y"], name="conv")],
        [weight(n, 3) for n in "gbmv"], (5, 8, 8), "its weights (3, 3, 3, 3) hold 12 values where archcalc's batch_norm2d"),
    "a kernel_shape the weight does not have": (
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[3, 3])], [weight("w", 2, 5, 1, 1)],
        (5, 8, 8), "its weights (2x5x1x1) hold 10 values where archcalc's conv2d on its input 5x8x8 has 90 parameters"),
    "a bias of the wrong length": (
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", kernel_shape=[1, 1])],
        [weight("w", 2, 5, 1, 1), weight("b", 7)], (5, 8, 8), "its weights (2x5x1x1, 7) hold 17 values"),
    "a linear layer for 3 features on 5": (
        [helper.make_node("Flatten", ["x"], ["f"], name="flat"),
         helper.make_node("Gemm", ["f", "w", "b"], ["y"], name="conv", transB=1)], [weight("w", 4, 3), weight("b", 4)],
        (5, 1, 1), "its weights (4x3, 4) hold 16 values where archcalc's linear on its input 5 has 24 parameters"),
}


@pytest.mark.parametrize("case", list(WRONG_WEIGHTS))
def test_weights_that_do_not_fit_the_declared_input_are_refused(case, tmp_path):
    nodes, inits, shape, said = WRONG_WEIGHTS[case]
    message = refused(save(tmp_path, nodes, inits, shape))
    assert f"ONNX node conv ({nodes[-1].op_type}): {said}" in message, message


@pytest.mark.parametrize("opset, said", [(999, "ONNX operator set 999: the onnx package"), (0, "ONNX operator set 0")])
def test_an_operator_set_onnx_does_not_know_is_refused(opset, said, tmp_path):
    message = refused(conv_relu(tmp_path, opset=opset))
    assert said in message and f"knows versions 1 to {onnx.defs.onnx_opset_version()}" in message



def nested_residuals(tmp_path, depth: int):
    """Residual blocks inside residual blocks, `depth` deep: x + conv(x + conv(x + ...))."""
    nodes, inputs = [], ["x"]
    for level in range(depth + 1):
        nodes.append(helper.make_node("Conv", [inputs[-1], "w"], [f"c{level}"], name=f"conv{level}", kernel_shape=[1, 1]))
        inputs.append(f"c{level}")
    out = inputs.pop()
    for level in reversed(range(depth)):
        nodes.append(helper.make_node("Add", [out, inputs[level]], [f"a{level}"], name=f"add{level}"))
        out = f"a{level}"
    nodes.append(helper.make_node("Relu", [out], ["y"], name="relu"))
    return save(tmp_path, nodes, [weight("w", 3, 3, 1, 1)], (3, 4, 4), name="nested")


def test_merges_nested_deeper_than_the_budget_are_one_line(tmp_path):
    message = refused(nested_residuals(tmp_path, 1000))  # a RecursionError once
    assert message.endswith("merges nest inside each other deeper than the budget of 100 levels (Budget.depth)"), message


def test_node_names_nested_deeper_than_the_budget_are_one_line(tmp_path):
    scope = "".join(f"/m{k}" for k in range(1000))  # a RecursionError once
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name=f"{scope}/conv/Conv", kernel_shape=[1, 1]),
             helper.make_node("Relu", ["c"], ["y"], name=f"{scope}/relu/Relu")]
    message = refused(save(tmp_path, nodes, [weight("w", 3, 3, 1, 1)], (3, 4, 4)))
    assert "nest inside each other deeper than the budget of 100 levels (Budget.depth)" in message, message


def residual_blocks(tmp_path, blocks: int, channels: int = 4):
    """`blocks` residual blocks (conv, relu, conv, add of the block's input) in a row, then a relu."""
    nodes, x = [], "x"
    for i in range(blocks):
        p = f"/layer{i}"
        nodes += [helper.make_node("Conv", [x, "w"], [f"{p}/c1"], name=f"{p}/conv1/Conv", kernel_shape=[3, 3],
                                   pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"{p}/c1"], [f"{p}/r"], name=f"{p}/relu/Relu"),
                  helper.make_node("Conv", [f"{p}/r", "w"], [f"{p}/c2"], name=f"{p}/conv2/Conv", kernel_shape=[3, 3],
                                   pads=[1, 1, 1, 1]),
                  helper.make_node("Add", [f"{p}/c2", x], [f"{p}/a"], name=f"{p}/Add")]
        x = f"{p}/a"
    nodes.append(helper.make_node("Relu", [x], ["y"], name="/out/Relu"))
    return save(tmp_path, nodes, [weight("w", channels, channels, 3, 3)], (channels, 8, 8), name=f"res{blocks}")


def test_import_time_grows_linearly_with_the_graph(tmp_path):
    import time

    def cpu(blocks: int) -> float:
        path = residual_blocks(tmp_path, blocks)
        import_onnx(path)  # the first run pays for imports and caches
        times = []
        for _ in range(2):  # the faster of two: a machine shared with other work slows some runs
            started = time.process_time()
            document = import_onnx(path)
            times.append(time.process_time() - started)
        network = resolve(document, document["name"], str(path))
        assert len(analyze(network).leaves()) == 1 + 4 * blocks + 1  # the input, 3 layers and the add a block, the last relu
        return min(times)

    small, large = cpu(500), cpu(2000)
    # linear: 4 times the blocks, about 4 times the time (measured 4.5); the quadratic naming of merges took 14 times
    assert large < 8 * small, (small, large)


def test_a_graph_over_the_node_budget_is_refused_while_its_nodes_are_read(tmp_path):
    from archcalc.budget import Budget

    message = refused(residual_blocks(tmp_path, 400), budget=Budget(nodes=1000))
    # 1,001 layers make more than 1,000 nodes of a spec: refused there, before the spec is made and checked
    assert message.endswith("ONNX node /layer333/relu/Relu (Relu): the graph has more than 1,000 layers, "
                            "past the budget of 1,000 nodes (Budget.nodes)"), message


def test_an_onnx_graph_of_too_many_nodes_is_refused_before_it_is_read(tmp_path):
    from archcalc.budget import Budget

    path = residual_blocks(tmp_path, 25)
    assert refused(path, budget=Budget(onnx_nodes=100)) == \
        f"{path}: the graph has 101 nodes, past the budget of 100 nodes (Budget.onnx_nodes)"


# found by tests/test_fuzz.py's ONNX mutator: each was a traceback
FUZZED = {
    "a Concat without its axis": (
        [helper.make_node("Conv", ["x", "w"], ["a"], name="conv", kernel_shape=[1, 1]),
         helper.make_node("Concat", ["a", "x"], ["y"], name="cat")], 17,
        "ONNX node cat (Concat): Concat along axis None; archcalc joins along the channels (axis 1)"),
    "a Pad whose constant value has several values": (
        [helper.make_node("Pad", ["x", "pads", "fill"], ["p"], name="pad"),
         helper.make_node("Conv", ["p", "w"], ["y"], name="conv", kernel_shape=[1, 1])], 17,
        "ONNX node pad (Pad): its constant value has 3 values; a Pad takes one"),
    "a perm of floats": (
        [helper.make_node("Conv", ["x", "w"], ["a"], name="conv", kernel_shape=[1, 1]),
         helper.make_node("Transpose", ["a"], ["y"], name="t", perm=[0.0, 2.0, 3.0, 1.0])], 17,
        "ONNX node t (Transpose): attribute perm is FLOATS; ONNX's Transpose takes INTS"),
    "an attribute given twice": (
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[1, 1], group=1)], 17,
        "ONNX node conv (Conv): attribute group is given twice"),
    "a convolution whose weight is a vector": (
        [helper.make_node("Conv", ["x", "b"], ["y"], name="conv")], 7,
        "ONNX node conv (Conv): its weight is 3; archcalc reads a 2-D convolution, whose weight is a constant of 4 "
        "dimensions"),
}


@pytest.mark.parametrize("case", list(FUZZED))
def test_malformed_nodes_found_by_the_fuzzer_are_one_line(case, tmp_path):
    nodes, opset, said = FUZZED[case]
    if case == "an attribute given twice":
        nodes[0].attribute.append(helper.make_attribute("group", 2))
    inits = [weight("w", 3, 3, 1, 1), weight("b", 3), ints("pads", 0, 0, 1, 1, 0, 0, 1, 1),
             numpy_helper.from_array(np.zeros(3, np.float32), "fill")]
    path = save(tmp_path, nodes, inits, (3, 4, 4), opset=opset)
    assert refused(path) == f"{path}: {said}"


def test_a_name_that_is_not_utf8_is_one_line(tmp_path):
    path = conv_relu(tmp_path)
    path.write_bytes(path.read_bytes().replace(b"relu", b"r\xffu\xfe"))  # same length: the protobuf still parses
    assert refused(path) == f"{path}: not an ONNX model: onnx.NodeProto.name is not UTF-8 text"


@pytest.mark.parametrize("case", ["range", "short raw_data", "external /etc/passwd", "cycle"])
def test_hostile_files_through_the_command_line_are_one_line_exit_2_and_no_file(case, tmp_path):
    from conftest import cli_runner

    from archcalc.cli import main

    if case == "range":
        path = conv_relu(tmp_path, [helper.make_node("Range", ["s", "l", "d"], ["r"], name="r")],
                         [int64("s", 0), int64("l", 5 * 10**6), int64("d", 1)])  # 40 MB, past the budget
    elif case == "short raw_data":
        path = save(tmp_path, [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[3, 3])],
                    [tensor("w", [5, 3, 3, 3], raw_data=bytes(20))], (3, 8, 8))
    elif case == "external /etc/passwd":
        path = relu6_with_external_bounds(tmp_path / "model", "/etc/passwd")
    else:
        path = save(tmp_path, [helper.make_node("Add", ["x", "z"], ["y"], name="add"),
                               helper.make_node("Relu", ["y"], ["z"], name="relu")], [], (3, 4, 4))
    out = tmp_path / "out.json"
    result = cli_runner().invoke(main, ["import", "onnx", str(path), "-o", str(out)])
    assert (result.exit_code, result.stdout, out.exists()) == (2, "", False)
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith(f"archcalc: {path}: "), result.stderr


@pytest.mark.parametrize("name, message", [
    # a Sigmoid folded over a cut constant: numpy's overflow warnings are not archcalc's to print
    ("onnx_folded_sigmoid_overflow.onnx", "padding top 0, bottom 1, left 0, right 0 is neither symmetric"),
    # a pad computed in the graph, of an input that is not an image: was an IndexError
    ("onnx_pad_of_a_flat_input.onnx", "ONNX node /pad/Pad (Pad): archcalc pads images (CxHxW), not an input of"),
])
def test_mutants_a_release_fuzz_run_found_are_one_line(tmp_path, name, message):
    """Two mutants of the release run (seed 1452001982, ONNX mutants 13872 and 19433), kept as files."""
    from conftest import cli_runner

    from archcalc.cli import main

    out = tmp_path / "spec.json"
    with warnings.catch_warnings(record=True) as shown:  # what a terminal would print beside the line
        warnings.simplefilter("always")
        result = cli_runner().invoke(main, ["import", "onnx", str(FIXTURES / name), "-o", str(out)])
    assert [str(w.message) for w in shown] == []
    assert (result.exit_code, result.stdout, out.exists()) == (2, "", False), result.exception
    assert len(result.stderr.splitlines()) == 1 and message in result.stderr, result.stderr
