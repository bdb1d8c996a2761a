"""The workings layer classes write out (`LayerType.working`, `.label`, `.kind`) against hand calculations."""
from __future__ import annotations

from archcalc import analyze
from archcalc.core.spec import resolve
from archcalc.layers import REGISTRY, RF


def working(layers: list[dict], input_shape: list[int], at: int = -1) -> list[str]:
    """The working of layer `at` of a plain sequence, with the field it receives from the layers before."""
    network = resolve({"input": input_shape, "layers": layers}, "t", "t.json")
    analysis = analyze(network)
    node = network.root.children[at]
    row = analysis.row(node.path)
    before = analysis.rows[analysis.rows.index(row) - 1].rf if at else RF()
    return REGISTRY[node.type].working(node.attrs, row.input_shape, row.output_shape, before)


STEM = {"type": "conv2d", "out": 64, "kernel": 7, "stride": 2, "padding": 3, "bias": False}


def test_conv_working_of_the_resnet_stem():
    assert working([STEM], [3, 224, 224]) == [
        "out = (N + 2P - D(F-1) - 1)/S + 1",
        "H, W: (224 + 2×3 - 1×(7 - 1) - 1)/2 + 1 = 112.5 -> floor 112",  # 223/2 + 1
        "params = Cout×(Cin/g)×Kh×Kw + bias = 64×3×7×7 = 9,408",  # 64 * 147
        "MACs = Cout×Hout×Wout×(Cin/g)×Kh×Kw = 64×112×112×3×7×7 = 118,013,952",  # 802,816 * 147
        "RF H, W: 1 + (7 - 1)×1 = 7, jump 1×2 = 2",
    ]


def test_pool_working_grows_the_field_by_the_jump():
    pool = {"type": "max_pool2d", "kernel": 3, "stride": 2, "padding": 1}
    lines = working([STEM, pool], [3, 224, 224])
    assert lines[1] == "H, W: (112 + 2×1 - 1×(3 - 1) - 1)/2 + 1 = 56.5 -> floor 56"
    assert lines[-1] == "RF H, W: 7 + (3 - 1)×2 = 11, jump 2×2 = 4"  # 7 + 2 * 2


def test_ceil_mode_rounds_up():
    pool = {"type": "max_pool2d", "kernel": 3, "stride": 2, "ceil_mode": True}
    assert working([pool], [64, 112, 112])[1] == "H, W: (112 + 2×0 - 1×(3 - 1) - 1)/2 + 1 = 55.5 -> ceil 56"


def test_depthwise_and_dilated_conv():
    conv = {"type": "conv2d", "out": 32, "kernel": 3, "padding": 2, "dilation": 2, "groups": 32}
    lines = working([conv], [32, 20, 20])
    assert lines[1] == "H, W: (20 + 2×2 - 2×(3 - 1) - 1)/1 + 1 = 20"
    assert lines[2] == "params = Cout×(Cin/g)×Kh×Kw + bias = 32×(32/32)×3×3 + 32 = 320"  # 288 weights + 32 biases
    assert lines[-1] == "RF H, W: 1 + (5 - 1)×1 = 5, jump 1×1 = 1"  # span 2*(3-1) + 1 = 5
    assert REGISTRY["conv2d"].label(dict(conv, stride=1, bias=True)) == "conv 3x3, 32, d2, g32"


def test_transposed_conv_working():
    up = {"type": "conv_transpose2d", "out": 8, "kernel": 4, "stride": 2, "padding": 1}
    lines = working([up], [16, 8, 8])
    assert lines[1] == "H, W: (8 - 1)×2 - 2×1 + 1×(4 - 1) + 0 + 1 = 16"
    assert lines[2] == "params = Cin×(Cout/g)×Kh×Kw + bias = 16×8×4×4 + 8 = 2,056"
    assert lines[3] == "MACs = Cin×Hin×Win×(Cout/g)×Kh×Kw = 16×8×8×8×4×4 = 131,072"


def test_linear_norm_and_flatten_workings():
    head = [{"type": "flatten"}, {"type": "linear", "out": 1000}]
    assert working(head, [4096, 1, 1], 0)[0] == "output = 4096×1×1 = 4,096 features"
    assert working(head, [4096, 1, 1]) == [
        "output 4096 features -> 1000",
        "params = in×out + bias = 4096×1000 + 1000 = 4,097,000",
        "MACs = in×out = 4096×1000 = 4,096,000",
        "RF: global (every output sees the whole input)",
    ]
    bn = working([{"type": "batch_norm2d"}], [64, 56, 56])
    assert bn[1:3] == ["params = 2C (gamma, beta) = 2×64 = 128", "non-trainable = 2C (running mean, variance) = 2×64 = 128"]
    assert working([{"type": "relu"}], [64, 56, 56]) == [
        "output = input: 64x56x56", "params = 0, MACs = 0 (not counted)", "RF unchanged: 1, jump 1"]


def test_every_layer_type_has_a_kind_and_a_label():
    kinds = {"conv", "pool", "norm", "activation", "linear", "shape", "regularisation"}
    samples = {"out": 64, "kernel": 3, "dims": (1, 2, 0), "shape": (8, -1), "heads": 3, "window": 7}
    for name, layer in REGISTRY.items():
        attrs = {k: samples.get(k, f.default) for k, f in layer.fields.items()}
        assert layer.kind in kinds, name
        assert layer.label(attrs), name
    assert REGISTRY["max_pool2d"].label({"kernel": 3, "stride": 2}) == "maxpool 3x3/2"
    assert REGISTRY["adaptive_avg_pool2d"].label({"output": 1}) == "global avgpool"
    assert REGISTRY["linear"].label({"out": 4096, "bias": True}) == "fc 4096"
