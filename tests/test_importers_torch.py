"""`archcalc import torch`: specs from torch modules, against the spec they were built from and against fvcore."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("fvcore")

import archcalc  # noqa: E402
from archcalc.core.calc import analyze  # noqa: E402
from archcalc.core.spec import load, resolve  # noqa: E402
from archcalc.errors import SpecError  # noqa: E402
from archcalc.importers.graph import to_spec  # noqa: E402
from archcalc.importers.torch_fx import trace_graph  # noqa: E402
from archcalc.torch.build import build_torch  # noqa: E402

ZOO = list(archcalc.zoo_index())
ROW_FIELDS = ("output_shape", "params", "non_trainable", "macs", "fvcore_flops", "activations", "rf")


def rows_differ(original, imported) -> list:
    theirs = {row.path: row for row in imported.leaves()}
    problems = [row.path for row in original.leaves() if row.path not in theirs]
    problems += [(row.path, f, getattr(row, f), getattr(theirs[row.path], f))
                 for row in original.leaves() if row.path in theirs for f in ROW_FIELDS
                 if getattr(row, f) != getattr(theirs[row.path], f)]
    problems += [row.path for row in imported.leaves() if row.path not in {r.path for r in original.leaves()}]
    return problems


@pytest.mark.parametrize("name", ZOO)
def test_zoo_round_trip_through_torch(name):
    # build_torch(spec) -> torch.fx -> spec: the same rows (paths, shapes, counts, receptive fields)
    # and the same totals, peak live activations included.
    network = load(name)
    shape = network.input
    with torch.device("meta"):  # the weights' values do not matter, only their shapes
        model = build_torch(network, shape)
    graph, _ = trace_graph(model.eval(), shape)  # on meta tensors: shapes without arithmetic
    document = to_spec(graph, name, name, "zoo")
    original, imported = analyze(network, shape), analyze(resolve(document, name, f"{name}.json"))
    assert rows_differ(original, imported) == []
    assert imported.totals == original.totals
