"""Formatting, in one place: shapes, exact counts, scaled counts and bytes, and Markdown tables.

Tables for people use thousands separators or scaled units (K/M/G for counts, KiB/MiB/GiB for
bytes, 3-4 significant digits); machine formats (JSON, CSV) keep exact integers and never come here.
GitHub-flavoured Markdown: pipe tables whose separator row carries the alignment, so a table copied
as is into a page or a slide renders with its numbers right-aligned; free text in a cell is escaped
so that `224*224*3` or `a | b` stay literal.
"""
from __future__ import annotations

import itertools
import re
from typing import Any, Iterable, Sequence

from .errors import one_line

MISSING = "-"


def shape(dims: Sequence[int] | Sequence[Sequence[int]] | None) -> str:
    """3x224x224; several tensors (a module that returns a tuple) `64x32x32, 64x32x32`; a missing shape '-'."""
    if dims is None:
        return MISSING
    if any(not isinstance(d, int) for d in dims):
        return ", ".join(shape(d) for d in dims)  # type: ignore[arg-type]
    return "x".join(str(d) for d in dims)


def count(n: int | None) -> str:
    """An exact integer with thousands separators: 138,357,544."""
    return MISSING if n is None else f"{n:,}"


def value(v: Any, decimals: int = 2) -> str:
    """Whatever a figure holds, as a table shows it: integers exact, lists as shapes, the rest to `decimals`."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, (list, tuple)):
        return shape(v)
    if getattr(v, "denominator", None) == 1:  # a whole Fraction
        return f"{v.numerator:,}"
    return f"{float(v):,.{decimals}f}"


def mib(n: int | None, unit: bool = True, decimals: int = 2) -> str:
    """Bytes in MiB to fixed decimals (reports keep one unit per column)."""
    if n is None:
        return "not measured"
    return f"{n / 2**20:,.{decimals}f}" + (" MiB" if unit else "")


def giga(n: int) -> str:
    """A count in G to three decimals, as torchvision publishes GMACs."""
    return f"{n / 1e9:,.3f} G"


def _significant(x: float) -> str:
    """4 significant digits with at most 2 decimals: 2.67, 15.47, 416.5, 1,234 (3-4 digits in all)."""
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 100:
        return f"{x:.1f}"
    return f"{x:.2f}"


def _in_units(n: int | float, units: Sequence[tuple[int, str]]) -> str | None:
    """`n` in the largest unit it reaches, moving up one when rounding reaches 1,000 (999.96 K is 1.00 M)."""
    for i, (factor, suffix) in enumerate(units):
        if abs(n) < factor:
            continue
        text = _significant(abs(n) / factor)
        if i and float(text.replace(",", "")) >= 1000:
            factor, suffix = units[i - 1]
            text = _significant(abs(n) / factor)
        return f"{'-' if n < 0 else ''}{text} {suffix}"
    return None


_COUNT_UNITS = ((10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "K"))
_BYTE_UNITS = ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"))


UNITS = {suffix: factor for factor, suffix in _COUNT_UNITS}


def scaled(n: int | float, unit: str | None = None) -> str:
    """A count scaled to its size: 416.5 K, 15.47 G; below 1,000 as it is (999.96 K reads 1.00 M).

    `unit` fixes the scale, as a column of one unit wants (0.0617 M)."""
    if unit is not None:
        x = n / UNITS[unit]
        return f"{_significant(x) if abs(x) >= 1 else f'{x:#.3g}'} {unit}"
    text = _in_units(n, _COUNT_UNITS)
    if text is not None:
        return text
    return f"{n:,}" if isinstance(n, int) else f"{n:.3g}"


def share(part: int, whole: int) -> str:
    """`part` as a percentage of `whole`, one decimal (`12.3%`); empty where the whole is 0."""
    return f"{100 * part / whole:.1f}%" if whole else ""


def scaled_bytes(n: int) -> str:
    """Bytes scaled to their size: 240 B, 241.0 KiB, 527.8 MiB, 2.67 GiB (1,023.9 KiB reads 1.00 MiB)."""
    text = _in_units(n, _BYTE_UNITS)
    if text is not None:
        return text
    if n >= 1000:  # 1,000 to 1,023 B: already 0.98 KiB and more
        return f"{n / 2**10:.2f} KiB"
    return f"{n:,} B"


def markdown_table(rows: list[list[str]], headers: list[str], numeric: Iterable[int] = ()) -> str:
    """A pipe table; columns in `numeric` are right-aligned (`---:`), the others left-aligned."""
    return _table(rows, headers, set(numeric), "pipe") + "\n"


def text_table(rows: list[list[str]], headers: list[str], numeric: Iterable[int] = ()) -> str:
    """A plain-text table for a terminal: numeric columns right-aligned, cells as given."""
    return _table(rows, headers, set(numeric), "simple")


def _plain(cell: Any) -> bool:
    """Text without line breaks, escapes or possibly wide characters (a regular expression for this
    takes milliseconds to compile: longer than the check of a whole table)."""
    return type(cell) is str and cell.isprintable() and (cell.isascii() or max(cell) < "\u1100")


def _table(rows: list[list[str]], headers: list[str], numeric: set[int], style: str) -> str:
    """tabulate's `pipe` and `simple` layouts (disable_numparse, a colalign) for one-line text cells.

    Written out because importing tabulate costs more than a whole `archcalc table`, and it
    takes microseconds per cell; any other table (no rows, line breaks, terminal escapes, wide
    characters, non-text cells) goes to tabulate itself, as do the tests that compare the two.
    """
    if not rows or any(len(row) != len(headers) for row in rows):
        return _tabulated(rows, headers, numeric, style)
    # A long table repeats most of its cells: a column's distinct cells are checked and padded once.
    # A column whose first cells differ (the paths) is done cell by cell: a set of them all costs more.
    try:
        columns = [column if len(set(column[:256])) > 128 else set(column) for column in zip(*rows)]
    except TypeError:  # an unhashable cell is no text
        return _tabulated(rows, headers, numeric, style)
    if not all(_plain(c) for c in itertools.chain(headers, *columns)):
        return _tabulated(rows, headers, numeric, style)
    right = [i in numeric for i in range(len(headers))]
    widths = [max([len(h) + 2, *(len(c.strip()) for c in cells)]) for h, cells in zip(headers, columns)]

    def pad(value: str, i: int) -> str:
        return value.rjust(widths[i]) if right[i] else value.ljust(widths[i])

    def padder(i: int, cells: set[str] | tuple[str, ...]):  # tabulate strips cells, not headers
        if isinstance(cells, set):
            return {c: pad(c.strip(), i) for c in cells}.__getitem__
        return lambda c: pad(c.strip(), i)

    padded = [padder(i, cells) for i, cells in enumerate(columns)]
    head = [pad(h, i) for i, h in enumerate(headers)]
    if style == "simple":
        rule, before, between, after = "  ".join("-" * w for w in widths), "", "  ", ""
    else:
        rule = "|" + "|".join(("-" * (w + 1) + ":") if r else (":" + "-" * (w + 1)) for w, r in zip(widths, right)) + "|"
        before, between, after = "| ", " | ", " |"
    lines = [(before + between.join(head) + after).rstrip(), rule]
    lines += [(before + between.join([f(c) for f, c in zip(padded, row)]) + after).rstrip() for row in rows]
    return "\n".join(lines)


def _tabulated(rows: list[list[str]], headers: list[str], numeric: set[int], style: str) -> str:
    from tabulate import tabulate

    align = tuple("right" if i in numeric else "left" for i in range(len(headers)))
    return tabulate(rows, headers, tablefmt=style, disable_numparse=True, colalign=align)


# Patterns compiled on their first use (re keeps them): only Markdown and prose need them.
_ALWAYS = r"([\\|`]|\](?=[(\[])|\{(?=[^}]*\}))"  # a backtick even alone: code spans cross cells
_HTML = r"<|&(?=#?\w+;)"  # a tag, or a character reference; `\<` is literal text in CommonMark only
_PAIRED = (r"\*", r"~", r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")  # an underscore inside a word never emphasises


def cell(text: Any) -> str:
    """Text from a spec made literal in Markdown (a table cell, a heading, a footnote): on one line,
    control characters escaped (errors.one_line), no HTML, link, code or emphasis, no cell break.

    `<` and the `&` of a character reference become entities, which every Markdown renders as
    written (Python-Markdown leaves `\\<` to HTML); `\\`, `|`, backticks, the `]` of a link and the
    `{` of an attribute list are escaped. Emphasis and strikethrough need two marks, so a lone `*`,
    `~` or word-edge `_` stays as written (the Markdown remains readable when copied); pairs are escaped.
    """
    text = " ".join(str(text).split())
    return one_line(_literal(text, _paired(text)))


def prose(text: Any) -> str:
    """Text from a spec as a paragraph of Markdown (a note on a network's page): literal as `cell` makes
    it, but a span between two backticks stays inline code (`code`). Emphasis marks are counted across
    the code spans, which emphasis may enclose."""
    pieces = re.split(_CODE_SPAN, " ".join(str(text).split()))  # prose, code, prose, ...; a lone backtick is prose
    paired = _paired(" ".join(pieces[0::2]))
    return one_line("".join(code(p) if i % 2 else _literal(p, paired) for i, p in enumerate(pieces)))


_CODE_SPAN = r"`([^`]+)`"


def _paired(text: str) -> list[str]:
    """The emphasis marks `text` holds two of or more (their patterns): those that could pair."""
    return [pattern for pattern in _PAIRED if len(re.findall(pattern, text)) >= 2]


def _literal(text: str, paired: Iterable[str]) -> str:
    text = re.sub(_ALWAYS, r"\\\1", text)
    text = re.sub(_HTML, lambda m: "&lt;" if m.group() == "<" else "&amp;", text)
    for pattern in paired:
        text = re.sub(pattern, lambda m: "\\" + m.group(0), text)
    return text


def code(text: str) -> str:
    """Text from a spec as inline code outside a table: `text`, or escaped text (`cell`) where it holds a
    backtick, which would end the span, or a control character."""
    return f"`{text}`" if text.isprintable() and "`" not in text else cell(text)


CSV_FORMULA = ("=", "+", "-", "@")  # what makes a spreadsheet read a cell as a formula


def csv_text(text: str) -> str:
    """Text from a spec in a CSV cell: control characters escaped, and a leading `'` where the text
    starts as a formula would (a block named `=HYPERLINK(...)`), which spreadsheets show as text."""
    text = one_line(text)
    return "'" + text if text.startswith(CSV_FORMULA) else text


def anchor(heading: str) -> str:
    """The fragment GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    kept = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return kept.replace(" ", "-")
