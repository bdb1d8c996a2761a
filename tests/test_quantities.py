"""The table of quantities: a quantity declared there (and its per-layer rule) is counted, summed and
shown in every format, and a spec's `expect` may name it; withdrawn, it is gone from all of them."""
from __future__ import annotations

import csv
import io
import re

import pytest

import archcalc
from archcalc.core import quantities
from archcalc.core.calc import Row, Totals, check_network
from archcalc.core.quantities import Quantity
from archcalc.core.schema import build_schema
from archcalc.errors import SpecError
from archcalc.report import diagram, html, pages

# One per layer: what a tally of the layers by hand gives, whatever their type.
ONES = Quantity("one_per_layer", "1 for each layer", layer=lambda t, a, shape, out: 1, batched=True,
                per_image="ones_per_image", per_batch="ones_per_batch", header="Ones", batch_header="Ones",
                expect="one_per_layer")

NETWORK = {
    "name": "ones", "input": [3, 8, 8],
    "layers": [
        {"name": "conv", "type": "conv2d", "out": 4, "kernel": 3, "padding": 1},
        {"type": "relu"},
        {"name": "branches", "layers": [{"name": "concat", "type": "concat", "branches": [
            [{"name": "squeeze", "type": "conv2d", "out": 2, "kernel": 1}],
            [{"name": "pool", "type": "max_pool2d", "kernel": 3, "stride": 1, "padding": 1}],
        ]}]},
    ],
}
# Counted by hand: four layers (conv, relu, squeeze, pool); two in the group around the concat;
# none in the input and in the tensor the concat allocates.
LEAVES = {"input": 0, "conv": 1, "1": 1, "branches.squeeze": 1, "branches.pool": 1, "branches.concat": 0}
AT_DEPTH_1 = {"input": 0, "conv": 1, "1": 1, "branches": 2}
LAYERS = 4


def with_expect(*figures: dict) -> dict:
    return {**NETWORK, "expect": list(figures)}


def test_a_declared_quantity_is_in_every_format():
    with quantities.declared(ONES):
        analysis = archcalc.analyze(archcalc.load(NETWORK), batch=3)
        document = archcalc.to_json(analysis)
        assert {r["path"]: r["ones_per_image"] for r in document["layers"]} == LEAVES
        assert document["totals"]["ones_per_image"] == LAYERS
        assert document["configurations"][0]["ones_per_batch"] == 3 * LAYERS
        assert {r["path"]: r["ones_per_image"] for r in archcalc.to_json(analysis, depth=1)["layers"]} == AT_DEPTH_1
        assert analysis.totals.one_per_layer == LAYERS and analysis.row("branches").one_per_layer == 2

        records = list(csv.DictReader(io.StringIO(archcalc.render(analysis, "csv"))))
        assert {r["path"]: r["ones_per_image"] for r in records} == {path: str(n) for path, n in LEAVES.items()}

        text = archcalc.render(analysis, "text")
        header, _, *lines = text.split("\n\n")[1].splitlines()
        column = header.split().index("Ones")
        assert {line.split()[0]: int(line.split()[column]) for line in lines} == LEAVES

        markdown = archcalc.render(analysis, "markdown")
        table = [line.split("|")[1:-1] for line in markdown.splitlines() if line.startswith("| ")]
        column = [cell.strip() for cell in table[0]].index("Ones")
        assert {cells[0].strip(): int(cells[column]) for cells in table[1:] if cells[0].strip() in LEAVES} == LEAVES
        configurations = [line.split("|")[1:-1] for line in markdown.split("\n\n")[-1].splitlines()]
        assert [cell.strip() for cell in configurations[0]][-1] == "Ones"
        assert configurations[2][-1].strip() == str(3 * LAYERS)  # batch 3

        (claimed,) = check_network(archcalc.load(with_expect(
            {"what": "one_per_layer", "value": LAYERS, "source": "counted by hand"})))
        assert claimed.ok and claimed.exact == LAYERS
        (of_a_row,) = check_network(archcalc.load(with_expect(
            {"what": "one_per_layer", "layer": "branches", "value": 3, "source": "a miscount"})))
        assert not of_a_row.ok and of_a_row.exact == 2
        what = build_schema()["$defs"]["expect"]["properties"]["what"]
        assert what["enum"][-1] == "one_per_layer"


# The same tally, shown in the reports too: a row of each totals table, a short name for the figures.
SHOWN = ONES._replace(topic="structure", explorer_total="Layers, counted by hand",
                      page_total="Layers, counted by hand (page)", short="ones")
# Every row of the explorer's table: the leaves above and the groups (a branch holds one layer).
ROWS = {**LEAVES, "branches": 2}  # a merge's branches have no rows of their own


def markdown_rows(text: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.split("|")[1:-1]] for line in text.splitlines() if line.startswith("| ")]


def test_a_declared_quantity_is_in_the_reports():
    with quantities.declared(SHOWN):
        analysis = archcalc.analyze(archcalc.load(NETWORK))

        page = html.page(analysis)  # the HTML explorer: its total under its JSON key, and a sortable column
        assert re.search(r'<th scope="row">Layers, counted by hand</th><td class="num" data-total="ones_per_image">'
                         rf"{LAYERS}</td>", page)
        assert '<th data-column="one_per_layer" class="num">Ones</th>' in page
        assert "cell(row, number(r[column.one_per_layer]), true);" in page
        data = html.table_data(analysis)
        column = data["columns"].index("one_per_layer")
        assert {row[0]: row[column] for row in data["rows"]} == ROWS

        totals = dict(markdown_rows(pages.totals_table(analysis)))  # a network's page: its total and its column
        assert totals["Layers, counted by hand (page)"] == str(LAYERS)
        assert list(totals).index("Layers, counted by hand (page)") == list(totals).index("Output") + 1  # structure
        layers = markdown_rows(pages.network_page(analysis.network, [], analysis).split("## Layers")[1])
        column = layers[0].index("Ones")
        assert {cells[0]: int(cells[column]) for cells in layers[1:]} == LEAVES

        figure = diagram.svg(diagram.layout(analysis, diagram.Options(annotate=diagram.parse_annotate("one_per_layer"))))
        assert figure.count(">1 ones<") == LAYERS  # each layer's box
        assert "conv: conv2d, 3x8x8 -&gt; 4x8x8, 112 params, 6,912 MACs, 1 ones, RF 3" in figure  # 4*3*3*3 + 4 params

    assert "one_per_layer" not in html.page(analysis) and "Layers, counted by hand" not in pages.totals_table(analysis)


def test_a_withdrawn_quantity_is_gone():
    with quantities.declared(ONES):
        pass
    analysis = archcalc.analyze(archcalc.load(NETWORK))
    document = archcalc.to_json(analysis)
    assert "ones_per_image" not in document["totals"] and "ones_per_image" not in document["layers"][0]
    assert "Ones" not in archcalc.render(analysis, "text")
    assert not hasattr(Row, "one_per_layer") and not hasattr(Totals, "one_per_layer")
    with pytest.raises(SpecError, match="'one_per_layer' is not one of params, params_keras"):
        archcalc.load(with_expect({"what": "one_per_layer", "value": LAYERS, "source": "counted by hand"}))


def test_a_quantity_may_not_hide_what_a_row_has():
    with pytest.raises(ValueError, match="would hide Row.path"):
        quantities.declare(ONES._replace(key="path"))
    with pytest.raises(ValueError, match="'macs' is declared already"):
        quantities.declare(ONES._replace(key="macs"))
    assert "path" not in quantities.QUANTITIES


def test_the_declared_quantities_are_what_the_formats_show():
    # The table as declared reads as the JSON of vgg16 has always read (archcalc/render.py keeps no list).
    analysis = archcalc.analyze(archcalc.load("vgg16"))
    document = archcalc.to_json(analysis)
    assert list(document["totals"]) == ["params", "trainable_params", "non_trainable", "weight_layers",
                                        "macs_per_image", "flops_per_image", "fvcore_flops_per_image",
                                        "activations_per_image", "peak_activations_per_image"]
    assert list(document["configurations"][0]) == [
        "batch", "dtype", "bytes_per_value", "macs_per_batch", "flops_per_batch", "weights_bytes",
        "activations_per_batch", "activation_bytes_per_batch", "peak_activations_per_batch",
        "peak_activation_bytes_per_batch"]
    # torchvision's VGG16: 138,357,544 parameters; FLOPs twice its 15,470,264,320 MACs
    assert document["totals"]["params"] == 138_357_544
    assert document["totals"]["flops_per_image"] == 2 * 15_470_264_320
