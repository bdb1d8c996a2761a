"""How an Analysis shows itself: a one-line repr, Markdown (the table's format) and a compact HTML table."""
from __future__ import annotations

import html.parser

import archcalc


class _Cells(html.parser.HTMLParser):
    """The text of each <td>/<th>, row by row, and of each <li>: read back by a parser, not by the code that wrote it."""

    def __init__(self):
        super().__init__()
        self.rows: list[list[str]] = []
        self.items: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        if tag in ("td", "th", "li"):
            self._in = tag
            (self.rows[-1] if tag != "li" else self.items).append("")

    def handle_endtag(self, tag):
        self._in = None if tag in ("td", "th", "li") else self._in

    def handle_data(self, data):
        if self._in in ("td", "th"):
            self.rows[-1][-1] += data
        elif self._in == "li":
            self.items[-1] += data


def test_repr_is_one_short_line():
    analysis = archcalc.analyze(archcalc.load("resnet50"), batch=8, dtype="fp16")
    text = repr(analysis)
    assert "\n" not in text and len(text) < 160
    # ResNet-50: 25,557,032 parameters (torchvision ResNet50_Weights.IMAGENET1K_V1.meta num_params)
    assert "resnet50" in text and "25,557,032 params" in text and "batch 8 fp16" in text


def test_html_table_holds_every_row_and_the_totals():
    # alexnet: conv1 is 64 kernels of 3x11x11 plus a bias each: 64 * (363 + 1) = 23,296 parameters
    analysis = archcalc.analyze(archcalc.load("alexnet"))
    cells = _Cells()
    cells.feed(analysis._repr_html_())
    header, *rows = cells.rows
    assert header[:3] == ["Layer", "Type", "Output"]
    by_path = {row[0]: row for row in rows}
    assert by_path["features.0"][header.index("Params")] == "23,296"
    assert len(rows) == len(analysis.leaves())
    assert any(item.startswith("Total params: 61,100,840") for item in cells.items)  # torchvision num_params


def test_html_escapes_the_specs_text():
    network = archcalc.load({"name": "x", "title": "<script>alert(1)</script>", "input": [3, 8, 8],
                             "layers": [{"type": "relu"}]})
    text = archcalc.analyze(network)._repr_html_()
    assert "<script>" not in text and "&lt;script&gt;" in text


def test_markdown_is_the_tables_markdown():
    analysis = archcalc.analyze(archcalc.load("alexnet"))
    text = analysis._repr_markdown_()
    assert text.startswith("### alexnet")
    assert "| features.0 " in text and "23,296" in text
