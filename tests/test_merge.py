"""Merge types: concat, add and mul as archcalc/layers/merge.py declares them, and a new merge that is
one class there: a spec takes it, the calculator, the formats, the figures, torch and the importer follow."""
from __future__ import annotations

import functools

import pytest

import archcalc
from archcalc.core.calc import analyze
from archcalc.errors import SpecError
from archcalc.layers import MERGES
from archcalc.layers.merge import Elementwise
from archcalc.report import diagram, html


class Max(Elementwise):
    """A merge the calculator has never heard of: the elementwise maximum of branches of one shape."""

    name = "max"
    doc = "the elementwise maximum of the branches"
    symbol = "max"
    torch_functions = ("maximum",)

    def combine(self, torch, outputs):
        return functools.reduce(torch.maximum, outputs)


@pytest.fixture
def max_merge():
    MERGES["max"] = Max()
    yield MERGES["max"]
    del MERGES["max"]


NETWORK = {
    "name": "maxed", "input": [3, 8, 8],
    "layers": [
        {"name": "stem", "type": "conv2d", "out": 4, "kernel": 3, "padding": 1},
        {"name": "pick", "type": "max", "branches": [
            [{"name": "a", "type": "conv2d", "out": 4, "kernel": 1}],
            [{"name": "b", "type": "conv2d", "out": 4, "kernel": 3, "padding": 1}],
        ]},
    ],
}


def test_a_new_merge_is_one_class(max_merge):
    analysis = analyze(archcalc.load(NETWORK))
    rows = {row.path: row for row in analysis.rows}
    # By hand: stem 3*4*9 + 4 = 112 parameters; a 4*4 + 4 = 20; b 4*4*9 + 4 = 148.
    assert analysis.totals.params == 112 + 20 + 148
    assert analysis.totals.macs == 3 * 9 * 4 * 64 + 4 * 4 * 64 + 4 * 9 * 4 * 64
    # The maximum is a tensor of its own: 4x8x8 values, a row beside its branches.
    assert rows["pick"].kind == "merge" and rows["pick"].activations == 256  # the merge's own row, its name
    assert analysis.totals.activations == 192 + 256 + 256 + 256 + 256
    # Nothing is freed before the end: input, stem, both branches and the maximum, fp32.
    assert analysis.peak_activation_bytes == 4 * (192 + 4 * 256)
    assert rows["pick"].output_shape == (4, 8, 8) and rows["pick"].rf.size == (5, 5)  # b: 3 + (3 - 1)
    with pytest.raises(SpecError, match=r"pick \(max, .*\): max needs equal shapes, got 4x8x8, 2x8x8"):
        bad = {**NETWORK, "layers": [NETWORK["layers"][0], {**NETWORK["layers"][1], "branches": [
            [{"type": "conv2d", "out": 4, "kernel": 1}], [{"type": "conv2d", "out": 2, "kernel": 1}]]}]}
        analyze(archcalc.load(bad))
    document = archcalc.to_json(analysis)
    assert [r["activations_per_image"] for r in document["layers"] if r["path"] == "pick"] == [256]
    svg = diagram.render(analysis)
    assert 'data-merge="max"' in svg and ">max<" in svg
    assert html.workings(analysis)["pick"][0] == "max: 4x8x8 + 4x8x8 -> 4x8x8"
    assert [row.path for row in analysis.leaves()] == ["input", "stem", "a", "b", "pick"]  # branches add no path part


def test_a_new_merge_builds_and_imports(max_merge):
    torch = pytest.importorskip("torch")
    from archcalc.importers.torch_fx import import_torch

    model = archcalc.build_torch(archcalc.load(NETWORK)).eval()
    x = torch.randn(2, 3, 8, 8)
    stem = model.get_submodule("stem")(x)
    expected = torch.maximum(model.get_submodule("a")(stem), model.get_submodule("b")(stem))
    assert torch.equal(model(x), expected)
    assert type(model.get_submodule("pick")).__name__ == "Max"

    class Picked(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Conv2d(3, 4, 1)
            self.b = torch.nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            return torch.maximum(self.a(x), self.b(x))

    document = import_torch(Picked(), (3, 8, 8), "picked", "test")
    assert [node["type"] for node in document["layers"]] == ["max"]


def test_the_merges_of_the_spec_format():
    # the order specs/schema.json lists them in
    assert list(MERGES) == ["concat", "add", "mul", "matmul", "scaled_dot_product_attention"]
    assert MERGES["concat"].output_shape([(2, 4, 4), (3, 4, 4)]) == (5, 4, 4)
    assert MERGES["mul"].output_shape([(8, 4, 4), (8, 1, 1)]) == (8, 4, 4)
    assert MERGES["mul"].gates([(8, 4, 4), (8, 1, 1)], (8, 4, 4)) == [False, True]
    assert MERGES["add"].output_shape([(8, 4, 4), (8, 1, 1)]) == (8, 4, 4)  # broadcast as torch does
    with pytest.raises(SpecError, match="add cannot broadcast 8x4x4, 3x4x4"):
        MERGES["add"].output_shape([(8, 4, 4), (3, 4, 4)])
    # An add accumulates into its first branch: no tensor, no row of its own, unless broadcasting makes
    # the sum larger than that branch (8x1x1 + 8x4x4: 8 * 4 * 4 = 128 values of its own).
    same = [(8, 4, 4), (8, 4, 4)]
    assert [MERGES[name].allocated_values(same, (8, 4, 4)) for name in ("add", "mul")] == [0, 128]
    assert MERGES["concat"].allocated_values(same, (16, 4, 4)) == 256
    assert MERGES["add"].allocated_values([(8, 1, 1), (8, 4, 4)], (8, 4, 4)) == 128
    # A concat writes once; an add or mul of three keeps the running result beside the next one.
    assert [MERGES[name].partial_results(3) for name in ("concat", "add", "mul")] == [1, 2, 2]
