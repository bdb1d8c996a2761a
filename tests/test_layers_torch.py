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
