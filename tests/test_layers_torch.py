"""The layer types added for imported models against torch's modules and fvcore's counts."""
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
]


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
