"""How an Analysis shows itself in a notebook (Jupyter calls `_repr_html_` / `_repr_markdown_`).

The calculator cannot import the formats (they sit above it), so `import archcalc` loads this module,
which fills in archcalc.core.calc.DISPLAY: Markdown is `archcalc table --format markdown`; HTML a
compact table of the same columns with the totals under it.
"""
from __future__ import annotations

from .core.calc import DISPLAY, Analysis
from .errors import one_line
from .render import PER_IMAGE, _cells, columns, render_markdown, summary_lines


def html_table(analysis: Analysis, depth: int | None = None, convention: str = "torchvision") -> str:
    """The layer table (numbers right-aligned) and the totals, as one HTML fragment with no script or style sheet."""
    import html  # its entity table is large: loaded when a notebook asks, not by every command

    cols = columns()
    right = ' style="text-align:right"'
    head = "".join(f"<th{right if c.numeric else ''}>{html.escape(c.header)}</th>" for c in cols)
    body = "\n".join(
        "<tr>" + "".join(f"<td{right if c.numeric else ''}>{html.escape(text)}</td>" for c, text in zip(cols, row)) + "</tr>"
        for row in _cells(analysis, depth, convention, cols))
    totals = "".join(f"<li>{html.escape(line)}</li>" for line in summary_lines(analysis, convention, depth))
    title = html.escape(one_line(f"{analysis.network.name}: {analysis.network.title}"))
    return (f"<div class=\"archcalc\"><strong>{title}</strong><p>{html.escape(PER_IMAGE)}</p>\n"
            f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>\n<ul>{totals}</ul></div>")


DISPLAY.update(markdown=render_markdown, html=html_table)
