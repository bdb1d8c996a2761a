"""GitHub-flavoured Markdown for the reports: pipe tables whose separator row carries the alignment.

A table copied as is into a Markdown page or slide renders with its numbers right-aligned;
free text in a cell is escaped so that `224*224*3` or `a | b` stay literal.
"""
from __future__ import annotations

import re
from typing import Any, Iterable

from tabulate import tabulate

_ALWAYS = re.compile(r"([\\|]|<(?=[A-Za-z/!?]))")
_PAIRED = {"*": re.compile(r"\*"), "~": re.compile(r"~"), "`": re.compile(r"`"),
           "_": re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")}  # an underscore inside a word never emphasises


def table(rows: list[list[str]], headers: list[str], numeric: Iterable[int] = ()) -> str:
    """A pipe table; columns in `numeric` are right-aligned (`---:`), the others left-aligned."""
    numeric = set(numeric)
    align = tuple("right" if i in numeric else "left" for i in range(len(headers)))
    return tabulate(rows, headers, tablefmt="pipe", disable_numparse=True, colalign=align) + "\n"


def cell(text: Any) -> str:
    """Free text made literal inside a table cell: one line, Markdown punctuation escaped.

    Emphasis, strikethrough and code need two marks, so a lone `*`, `~`, backtick or word-edge `_`
    stays as written (the Markdown remains readable when copied); pairs are escaped.
    """
    text = _ALWAYS.sub(r"\\\1", " ".join(str(text).split()))
    for pattern in _PAIRED.values():
        if len(pattern.findall(text)) >= 2:
            text = pattern.sub(lambda m: "\\" + m.group(0), text)
    return text


def anchor(heading: str) -> str:
    """The fragment GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    kept = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return kept.replace(" ", "-")
