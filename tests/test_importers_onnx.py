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
    assert rows["mix.1.conv1x1"].params == 4 * 8  # the concat is the name scope `mix`, its branches 0 and 1
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
    assert rows["block.0.conv"].params == 4 * 2 * 9  # groups=2: 2 input channels per filter
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
    assert "folds batch norm into the convolution" in document["comment"]


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
        import_onnx(path)


@pytest.mark.parametrize("command", ["import", "table"])
def test_unsupported_op_through_the_command_line_is_one_line_exit_2_and_no_file(tmp_path, command):
    from conftest import cli_runner

    from archcalc.cli import main

    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="/body/conv/Conv", kernel_shape=[1, 1]),
             helper.make_node("InstanceNormalization", ["c", "s", "b"], ["y"], name="/body/norm/InstanceNormalization")]
    model = save(tmp_path, nodes, [weight("w", 2, 3, 1, 1), weight("s", 2), weight("b", 2)], (3, 4, 4))
    out = tmp_path / "out" / "model.json"
    args = ["import", "onnx", str(model), "-o", str(out)] if command == "import" else ["table", str(model)]
    result = cli_runner().invoke(main, args)
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
    "a transpose not undone": (
        [helper.make_node("Transpose", ["x"], ["t"], name="/head/Transpose", perm=[0, 2, 3, 1]),
         helper.make_node("Relu", ["t"], ["y"], name="/head/Relu")], [], 17,
        r"ONNX node /head/Transpose \(Transpose\): permute \[0, 2, 3, 1\] has no archcalc layer type"),
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
        import_onnx(path)
    assert "\n" not in str(caught.value)


def test_not_series_parallel_names_the_node(tmp_path):
    # a = conv(x); b = conv(x) + a; y = conv(a) + b: the two paths from x cross
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], name="a", kernel_shape=[1, 1]),
             helper.make_node("Conv", ["x", "w"], ["b"], name="b", kernel_shape=[1, 1]),
             helper.make_node("Add", ["b", "a"], ["s"], name="sum1"),
             helper.make_node("Conv", ["a", "w"], ["c"], name="c", kernel_shape=[1, 1]),
             helper.make_node("Add", ["c", "s"], ["y"], name="sum2")]
    path = save(tmp_path, nodes, [weight("w", 3, 3, 1, 1)], (3, 4, 4))
    with pytest.raises(SpecError, match="not series-parallel"):
        import_onnx(path)


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
