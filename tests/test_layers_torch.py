"""The layer types added for imported models and for token layouts against torch's modules and fvcore's counts."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
fvnn = pytest.importorskip("fvcore.nn")

from archcalc.core.spec import resolve  # noqa: E402
from archcalc.layers import REGISTRY  # noqa: E402
from archcalc.torch.record import record  # noqa: E402

CASES = [
    # layer, input, torch module written here, fvcore flops by hand
    ({"type": "group_norm", "groups": 4}, (8, 6, 5), lambda: torch.nn.GroupNorm(4, 8), 5 * 8 * 6 * 5),
    ({"type": "group_norm", "groups": 2, "affine": False}, (8, 6, 5), lambda: torch.nn.GroupNorm(2, 8, affine=False), 4 * 8 * 6 * 5),
    ({"type": "upsample", "scale": 2}, (3, 5, 4), lambda: torch.nn.Upsample(scale_factor=2), 3 * 10 * 8),
    ({"type": "upsample", "scale": 2, "bilinear": True}, (3, 5, 4),
     lambda: torch.nn.Upsample(scale_factor=2, mode="bilinear"), 4 * 3 * 10 * 8),
    ({"type": "upsample", "size": [7, 9], "bilinear": True, "align_corners": True}, (3, 5, 4),
     lambda: torch.nn.UpsamplingBilinear2d(size=(7, 9)), 4 * 3 * 7 * 9),
    ({"type": "hardsigmoid"}, (3, 5, 4), lambda: torch.nn.Hardsigmoid(), 0),
    # token layouts: torch's modules on the batched tensor, the batch axis in front
    ({"type": "layer_norm", "eps": 1e-6}, (7, 12), lambda: torch.nn.LayerNorm(12, eps=1e-6), 5 * 7 * 12),
    ({"type": "layer_norm", "affine": False}, (5, 4), lambda: torch.nn.LayerNorm(4, elementwise_affine=False),
     4 * 5 * 4),
    ({"type": "permute", "dims": [1, 2, 0]}, (3, 5, 4), lambda: Lambda(lambda x: x.permute(0, 2, 3, 1)), 0),
    ({"type": "reshape", "shape": [5, 2, -1]}, (5, 12), lambda: Lambda(lambda x: x.reshape(-1, 5, 2, 6)), 0),
    ({"type": "flatten", "start": 1}, (3, 5, 4), lambda: torch.nn.Flatten(2), 0),
]


class Lambda(torch.nn.Module):
    def __init__(self, function):
        super().__init__()
        self.function = function

    def forward(self, x):
        return self.function(x)


def test_linear_over_the_last_axis_is_nn_linear_on_each_token():
    from archcalc.core.calc import analyze

    row = analyze(resolve({"input": [7, 12], "layers": [{"name": "x", "type": "linear", "out": 5}]}, "t", "t.json")).row("x")
    built = REGISTRY["linear"].torch_module({"out": 5, "bias": True}, (7, 12)).eval()
    x = torch.rand(2, 7, 12)
    assert tuple(built(x).shape[1:]) == row.output_shape == (7, 5)
    assert torch.allclose(built(x)[:, 3], built(x[:, 3]))  # token by token
    assert sum(p.numel() for p in built.parameters()) == row.params == 12 * 5 + 5
    assert record(torch.nn.Sequential(built), x[:1]).flops[""] == row.fvcore_flops == row.macs == 7 * 12 * 5


@pytest.mark.parametrize("layer, shape, reference, flops", CASES, ids=[str(c[0]) for c in CASES])
def test_new_layer_types_match_torch_and_fvcore(layer, shape, reference, flops):
    from archcalc.core.calc import analyze

    row = analyze(resolve({"input": list(shape), "layers": [{"name": "x", **layer}]}, "t", "t.json")).row("x")
    built = REGISTRY[layer["type"]].torch_module(dict(row_attrs(layer, shape)), shape).eval()
    x = torch.rand(2, *shape)
    assert torch.allclose(built(x), reference().eval()(x))
    assert tuple(built(x).shape[1:]) == row.output_shape
    assert sum(p.numel() for p in built.parameters()) == row.params
    assert record(torch.nn.Sequential(built), x[:1]).flops[""] == row.fvcore_flops == flops


def row_attrs(layer: dict, shape):
    network = resolve({"input": list(shape), "layers": [{"name": "x", **layer}]}, "t", "t.json")
    return network.root.children[0].attrs


def test_mean_module_is_x_mean():
    built = REGISTRY["mean"].torch_module({"keepdim": False}, (4, 3, 3))
    x = torch.rand(2, 4, 3, 3)
    assert torch.equal(built(x), x.mean((2, 3)))


def test_multihead_attention_is_torchs_and_flop_counter_mode_counts_its_macs():
    from archcalc.core.calc import analyze
    from archcalc.torch.record import flop_counter_macs

    shape = (9, 12)  # 9 tokens of 12 features, 3 heads of 4
    row = analyze(resolve({"input": list(shape), "layers": [{"name": "x", "type": "multihead_attention", "heads": 3}]},
                          "t", "t.json")).row("x")
    built = REGISTRY["multihead_attention"].torch_module({"heads": 3, "bias": True, "dropout": 0.0}, shape).eval()
    reference = torch.nn.MultiheadAttention(12, 3, batch_first=True).eval()
    reference.load_state_dict(built.state_dict())
    x = torch.rand(2, *shape)
    with torch.no_grad():
        assert torch.allclose(built(x), reference(x, x, x, need_weights=False)[0], atol=1e-6)
    assert sum(p.numel() for p in built.parameters()) == row.params == 4 * 12 * 12 + 4 * 12
    # fvcore: the four projections only (9 x 12 x 12 each); FlopCounterMode: those and Q·Kᵀ, A·V (3 x 9 x 9 x 4 each)
    assert record(torch.nn.Sequential(built), x[:1]).flops[""] == row.fvcore_flops == 4 * 9 * 12 * 12
    assert flop_counter_macs(torch.nn.Sequential(built), x[:1])[""] == row.macs == 4 * 9 * 12 * 12 + 2 * 3 * 9 * 9 * 4


@pytest.mark.parametrize("layer, reference, params", [
    ({"type": "class_token"}, lambda x, p: torch.cat([p["class_token"].expand(x.shape[0], -1, -1), x], 1), 12),
    ({"type": "position_embedding"}, lambda x, p: x + p["pos_embedding"], 9 * 12),
    ({"type": "select_token", "index": -1}, lambda x, p: x[:, -1], 0),
])
def test_token_layers_are_the_torch_operations(layer, reference, params):
    from archcalc.core.calc import analyze

    row = analyze(resolve({"input": [9, 12], "layers": [{"name": "x", **layer}]}, "t", "t.json")).row("x")
    built = REGISTRY[layer["type"]].torch_module(dict(row_attrs(layer, (9, 12))), (9, 12)).eval()
    x = torch.rand(2, 9, 12)
    named = dict(built.named_parameters())
    assert torch.equal(built(x), reference(x, named))
    assert tuple(built(x).shape[1:]) == row.output_shape
    assert sum(p.numel() for p in built.parameters()) == row.params == params
