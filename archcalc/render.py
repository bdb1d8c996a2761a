"""Tables of an analysis: text (fitted to a width) and Markdown for people, CSV, JSON and a DataFrame for machines.

Batch semantics, the same in every format: per-layer figures and the totals named `*_per_image` are
per image (shapes carry no batch dimension); everything that grows with the batch sits in one
*configuration* (batch, dtype) and is named `*_per_batch`. Text and Markdown scale the totals to
K/M/G and KiB/MiB/GiB; JSON, CSV and the DataFrame keep exact integers under the same names.
"""

import io
import json
import re
from typing import Any, Callable, Sequence

from . import fmt
from .core import quantities
from .core.alloc import paused_gc
from .core.calc import Analysis, Row
from .core.quantities import QUANTITIES, Quantity
from .core.records import (  # noqa: F401  (the formats of archcalc.render, as they always were)
    OPTIONAL_INTEGER_KEYS,
    configuration_record,
    dataframe,
    each_configuration,
    integer_keys,
    layer_keys,
    layer_record,
    to_json,
)
from .errors import one_line

FORMATS = ("text", "markdown", "csv", "json")


# ---- CSV: the layer records (archcalc.core.records) one a line ----------------------------------

def to_csv(analysis: Analysis, depth: int | None = None, convention: str = "torchvision") -> str:
    """One line per layer with every key of the JSON layer records; shapes as CxHxW, empty for none."""
    import csv  # only for this format

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    keys = layer_keys()
    writer.writerow(keys)
    for row in analysis.at_depth(depth):
        record = layer_record(row, convention)
        writer.writerow([_csv_value(record[key]) for key in keys])
    return buffer.getvalue()


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return fmt.shape(value)
    return fmt.csv_text(value) if isinstance(value, str) else str(value)


# ---- text and Markdown -----------------------------------------------------------------------

class Column:
    """A column of the text and Markdown layer tables: its header and how a row's cell is written.
    `drop`: 0, always shown; else its turn to go when the table does not fit. `spec_text`: text from the
    spec (a path, a block name), escaped for the output format."""

    __slots__ = ("header", "cell", "numeric", "drop", "spec_text")

    def __init__(self, header: str, cell: Callable[[Row, str], str], numeric: bool = False, drop: int = 0,
                 spec_text: bool = False):
        self.header, self.cell, self.numeric, self.drop, self.spec_text = header, cell, numeric, drop, spec_text


class View:
    """How the text and Markdown layer tables show the rows: `tree`, every group's row (its subtotal)
    above what it holds, named by its last path component indented by depth, instead of the leaves by
    their paths; `share`, each row's % of the network's params and MACs beside their columns."""

    __slots__ = ("tree", "share")

    def __init__(self, tree: bool = False, share: bool = False):
        self.tree, self.share = tree, share


TREE_INDENT = "· "  # per level of a tree table's names (a table strips leading spaces, Markdown too)


def columns(analysis: Analysis | None = None, view: View = View()) -> tuple[Column, ...]:
    """The columns of the text and Markdown layer tables: a quantity's where it has a `header`, followed
    by its share (`share`, with view.share and an analysis to take the totals from)."""
    return (
        Column("Layer", tree_name if view.tree else (lambda r, c: r.path), spec_text=True),
        Column("Type", lambda r, c: r.label, drop=1, spec_text=True),
        Column("Output", lambda r, c: fmt.shape(r.output_shape), numeric=True),
        *(column for q in quantities.layer_columns() if q.header for column in _quantity_columns(q, analysis, view)),
        Column("RF", lambda r, c: rf_cell(r.rf), numeric=True, drop=2),
    )


def _quantity_columns(q: Quantity, analysis: Analysis | None, view: View) -> list[Column]:
    header = q.header or q.key
    own = Column(header, _exact_cell(q), numeric=True, drop=q.drop)
    if not (view.share and q.share and analysis is not None):
        return [own]
    totals = analysis.totals
    return [own, Column(q.share, lambda row, convention: fmt.share(quantities.shown(q, row, convention),
                                                                   quantities.shown(q, totals, convention)),
                        numeric=True, drop=1)]


def tree_name(row: Row, convention: str = "torchvision") -> str:
    """A row's name in a tree table: its last path component, indented one step per level below the top."""
    name = row.path.rsplit(".", 1)[-1]
    return TREE_INDENT * max(row.depth - 1, 0) + name


def shown_rows(analysis: Analysis, depth: int | None, view: View = View()) -> list[Row]:
    """The rows of a layer table: the leaves folded at `depth` (analysis.at_depth); in a tree, also every
    group down to `depth` above what it holds (the input first)."""
    if not view.tree:
        return analysis.at_depth(depth)
    return [r for r in analysis.rows if depth is None or r.depth <= depth]


def _exact_cell(q: Quantity) -> Callable[[Row, str], str]:
    return lambda row, convention: fmt.count(quantities.shown(q, row, convention))


PER_IMAGE = "Per image (shapes without the batch dimension); Activations: values allocated; RF: in input pixels."
PATH_FLOOR = 24  # paths shrink to this before columns are hidden, then further down to MIN_PATH
MIN_PATH = 10
ELLIPSIS = "…"
GAP = 2  # the space between the columns of a text table


def table_rows(analysis: Analysis, depth: int | None, convention: str) -> list[list]:
    """Rows for the report pages: path, type, shape, the exact integer of each quantity with a column (per
    image, as in the text table), and the receptive field."""
    shown = quantities.layer_columns()
    return [[row.path, row.label, fmt.shape(row.output_shape), *(quantities.shown(q, row, convention) for q in shown),
             rf_cell(row.rf)] for row in analysis.at_depth(depth)]


GATED = "*"  # marks a spatial field where the strict one is global because of a gate


def rf_cell(rf) -> str:
    """The spatial field, marked, where a broadcast gate makes the strict field global; else the field."""
    return rf.spatial_label() + GATED if _marked(rf) else rf.label()


def _marked(rf) -> bool:
    return rf.gated and rf.spatial_size is not None


def rf_footnote(analysis: Analysis, depth: int | None) -> str | None:
    """What the mark means, naming the first gate of the rows shown; None when no row is marked."""
    gates = [r.rf.gate for r in analysis.at_depth(depth) if _marked(r.rf)]
    if not gates:
        return None
    first = gates[0]
    assert first is not None  # a marked field is gated: it names its gate
    return (f"RF {GATED}: the spatial field, of the path that carries the pixels; the strict field is global "
            f"because the gate at {one_line(first)} pools the whole input (held constant for the spatial field)")


def summary_lines(analysis: Analysis, convention: str, depth: int | None = None) -> list[str]:
    """The totals that do not depend on the batch: parameters, MACs per image, shapes, activation values."""
    t = analysis.totals
    params = t.params_keras if convention == "keras" else t.params
    label = "Total params (Keras: trainable + BN moving statistics)" if convention == "keras" else "Total params"
    return [
        f"{label}: {params:,} ({fmt.scaled(params)})",
        f"Trainable params: {t.params:,}",
        f"{quantities.total_label(QUANTITIES['non_trainable'], 'Non-trainable values', analysis)}: {t.non_trainable:,}",
        f"MACs (conv, linear, matmul; per image): {t.macs:,} ({fmt.scaled(t.macs)}); FLOPs = 2 x MACs: {fmt.scaled(t.flops)}",
        f"Weight layers (conv, linear): {t.weight_layers}",
        f"Input {fmt.shape(analysis.input_shape)} -> output {fmt.shape(analysis.output_shape)} (per image)",
        f"Activations per image: {t.activations:,} values (input and allocated outputs); "
        f"peak live at inference: {t.peak_activations:,}",
        *filter(None, [rf_footnote(analysis, depth)]),
    ]


def warning_lines(analysis: Analysis, notes: bool = False) -> list[str]:
    """For stderr: a warning where the rounding of an output size drops input pixels; with `notes`,
    also the inexact sizes that drop nothing."""
    return [one_line(f"{'warning' if n.drops_input else 'note'}: {n.path}: {n.message}")
            for n in analysis.warnings if n.drops_input or notes]


def _in_configurations() -> list[tuple[str, Quantity]]:
    """The quantities of the table of configurations with their column headers, in their order."""
    return [(q.batch_header, q) for q in QUANTITIES.values() if q.batch_header]


def config_headers() -> list[str]:
    return ["Batch", "Dtype", *(header for header, _ in _in_configurations())]


CONFIG_NOTE = ("Whole batch: MACs; weights with running statistics; activations (input and allocated outputs); "
               "peak live at inference.")


def _config_numeric() -> list[int]:
    """Every column of the configurations but the dtype."""
    return [0, *range(2, len(config_headers()))]


def configuration_rows(configurations: Sequence[Analysis]) -> list[list[str]]:
    shown = [q for _, q in _in_configurations()]
    return [[fmt.count(c.batch), c.dtype, *(_scaled(q, quantities.figure(q, c)) for q in shown)] for c in configurations]


def _scaled(q: Quantity, value: int) -> str:
    return fmt.scaled_bytes(value) if q.unit == "bytes" else fmt.scaled(value)


def _cells(analysis: Analysis, depth: int | None, convention: str, cols: Sequence[Column],
           shown: Callable[[str], str] = one_line, view: View = View()) -> list[list[str]]:
    """The cells of every row shown, the spec's text `shown` as the format wants it (one_line: control
    characters escaped; fmt.cell for Markdown); equal cells are one string (a long network repeats most
    of them)."""
    equal: dict[str, str] = {}
    one = equal.setdefault
    escaped: dict[str, str] = {}  # a block's name repeats on many rows: escaped once

    def spec_text(text: str) -> str:
        found = escaped.get(text)
        return found if found is not None else escaped.setdefault(text, shown(text))

    return [[one(text, text) for text in [spec_text(column.cell(row, convention)) if column.spec_text
                                          else column.cell(row, convention) for column in cols]]
            for row in shown_rows(analysis, depth, view)]


def shorten_path(path: str, limit: int) -> str:
    """`path` in at most `limit` characters: the leaf kept (with as many whole components before it as
    fit), the middle elided: features.st….depthwise.0."""
    if len(path) <= limit:
        return path
    parts = path.split(".")
    if len(parts[-1]) + 2 >= limit:
        return ELLIPSIS + parts[-1][-(limit - 1):]
    room = limit - 2 - min(6, len(parts[0]))  # what the tail may take, leaving a few characters of the head
    tail = parts[-1]
    for k in range(2, len(parts)):
        longer = ".".join(parts[-k:])
        if len(longer) > room:
            break
        tail = longer
    return path[:limit - len(tail) - 2] + ELLIPSIS + "." + tail


class Fitted:
    """A text table fitted to a width, and the hint of what was shortened or hidden (how to see everything)."""

    __slots__ = ("text", "hint")

    def __init__(self, text: str, hint: str | None):
        self.text, self.hint = text, hint


def _widest(rows: list[list[str]], cols: Sequence[Column], column: int) -> int:
    """The column's width in fmt.text_table (tabulate pads a header by 2)."""
    return max([len(cols[column].header) + 2] + [len(r[column]) for r in rows])


def _plan(rows: list[list[str]], cols: Sequence[Column], width: int | None) -> tuple[list[int], int | None]:
    """Which columns to show and how long a path may be so that the table fits `width` (None: all, whole)."""
    everything = list(range(len(cols)))
    droppable = [i for _, i in sorted((c.drop, i) for i, c in enumerate(cols) if c.drop)]
    minimal = [i for i in everything if i not in droppable]
    steps = [([i for i in everything if i not in droppable[:k]], PATH_FLOOR) for k in range(len(droppable) + 1)]
    steps.append((minimal, MIN_PATH))
    longest = _widest(rows, cols, 0)
    for keep, floor in steps:
        if width is None:
            return keep, None
        limit = width - sum(_widest(rows, cols, i) for i in keep if i) - GAP * (len(keep) - 1)
        if limit >= longest:
            return keep, None
        if limit >= floor:
            return keep, limit
    return minimal, MIN_PATH  # narrower than any plan: the least that still shows every number whole


def text_table(analysis: Analysis, depth: int | None = None, convention: str = "torchvision", width: int | None = None,
               view: View = View()) -> Fitted:
    """The layer table, fitted to `width` columns: paths shortened first, then Type (and the shares), RF
    and Activations hidden."""
    cols = columns(analysis, view)
    rows = _cells(analysis, depth, convention, cols, view=view)
    shown, path_limit = _plan(rows, cols, width)
    headers = [cols[i].header for i in shown]
    if path_limit or len(shown) < len(cols):
        rows = [[shorten_path(r[i], path_limit) if i == 0 and path_limit else r[i] for i in shown] for r in rows]
    numeric = [k for k, i in enumerate(shown) if cols[i].numeric]
    text = fmt.text_table(rows, headers, numeric=numeric)
    hidden = [c.header for i, c in enumerate(cols) if i not in shown]
    if not hidden and not path_limit:
        return Fitted(text, None)
    names = " and ".join([", ".join(hidden[:-1]), hidden[-1]] if len(hidden) > 1 else hidden)
    what = [part for part in ("paths shortened" if path_limit else "", f"{names} hidden" if hidden else "") if part]
    hint = f"note: {', '.join(what)} to fit {width} columns; --wide shows all"
    return Fitted(text, "\n".join(_wrap([hint], width)))


_NUMBER_AND_UNIT = r"(\d) (B|[KMGT]|[KMGT]iB)\b"  # compiled on its first use (re keeps it): a terminal's table
_KEEP = "\u00a0"  # holds a number to its unit while wrapping


def _wrap(lines: list[str], width: int | None) -> list[str]:
    """Lines wrapped to `width` at spaces: a word, a number or a number with its unit is never broken."""
    if width is None:
        return lines
    import textwrap  # a terminal's table only

    wrapped = []
    for line in lines:
        held = re.sub(_NUMBER_AND_UNIT, rf"\1{_KEEP}\2", line)
        parts = textwrap.wrap(held, width, break_long_words=False, break_on_hyphens=False, subsequent_indent="  ")
        wrapped += [part.replace(_KEEP, " ") for part in parts] or [""]
    return wrapped


def render_text(analysis: Analysis, depth: int | None = None, convention: str = "torchvision",
                configurations: Sequence[Analysis] | None = None, width: int | None = None,
                view: View = View()) -> Fitted:
    """The text table, its totals and one line per configuration; with `width`, fitted to it."""
    table = text_table(analysis, depth, convention, width, view)
    configs = fmt.text_table(configuration_rows(each_configuration(analysis, configurations)), config_headers(),
                             numeric=_config_numeric())
    head = _wrap([one_line(f"{analysis.network.name}: {analysis.network.title}"), PER_IMAGE], width)
    lines = [*head, "", table.text, "", *_wrap(summary_lines(analysis, convention, depth), width), "",
             *_wrap([CONFIG_NOTE], width), configs]
    return Fitted("\n".join(lines) + "\n", table.hint)


def render_markdown(analysis: Analysis, depth: int | None = None, convention: str = "torchvision",
                    configurations: Sequence[Analysis] | None = None, view: View = View()) -> str:
    cols = columns(analysis, view)
    rows = _cells(analysis, depth, convention, cols, fmt.cell, view)
    layers = fmt.markdown_table(rows, [c.header for c in cols], numeric=[i for i, c in enumerate(cols) if c.numeric])
    configs = fmt.markdown_table(configuration_rows(each_configuration(analysis, configurations)), config_headers(),
                                 numeric=_config_numeric())
    summary = "\n".join(f"- {line}" for line in summary_lines(analysis, convention, depth))
    title = f"{fmt.cell(analysis.network.name)}: {fmt.cell(analysis.network.title)}"
    return f"### {title}\n\n{PER_IMAGE}\n\n{layers}\n{summary}\n\n{CONFIG_NOTE}\n\n{configs}"


@paused_gc
def render(analysis: Analysis, format: str = "text", depth: int | None = None, convention: str = "torchvision",
           configurations: Sequence[Analysis] | None = None, width: int | None = None, view: View = View()) -> str:
    """The analysis as `archcalc table` prints it: format text, markdown, csv or json.

    `depth` folds deeper rows into their block; `convention` "keras" counts BN moving statistics as
    parameters; `configurations` are the same analysis at other batches and dtypes
    (`analysis.scaled(batch, dtype)`), one line each in the totals; `width` fits the text table to
    that many columns (None: every column, whole); `view` (text and Markdown) shows the rows as a tree
    with each group's subtotal above its children, and the shares of params and MACs. Warnings are not part of text and Markdown
    (`warning_lines` has them); JSON keeps them.
    """
    if format == "json":
        return json.dumps(to_json(analysis, depth, convention, configurations), indent=2) + "\n"
    if format == "csv":
        return to_csv(analysis, depth, convention)
    if format == "markdown":
        return render_markdown(analysis, depth, convention, configurations, view)
    if format == "text":
        return render_text(analysis, depth, convention, configurations, width, view).text
    from .errors import UsageError

    raise UsageError(f"unknown format {format!r} (one of {', '.join(FORMATS)})")


def fit_lines(name: str, found: Any, batch: int | None, at: Any, optimizer: str, dtype: str, master: str | None) -> list[str]:
    """What `archcalc fit` prints: the verdict, then the breakdown of the step at the batch
    (archcalc.core.training.Fit and Breakdown)."""
    setup = f"{optimizer}, {dtype}" + (f" with {master} master weights" if master else "")
    budget = fmt.scaled_bytes(found.memory)
    if batch:
        fits = batch <= found.batch
        head = (f"{'fits' if fits else 'does not fit'}: {name} at batch {batch} ({setup}) needs "
                f"{fmt.scaled_bytes(at.peak)} of {budget}; the largest batch that fits is {found.batch:,}")
    elif found.batch:
        head = f"{name} ({setup}): the largest batch that fits in {budget} is {found.batch:,}"
    else:
        head = f"does not fit: {name} ({setup}) needs {fmt.scaled_bytes(found.fixed + found.per_image)} at batch 1, over {budget}"
    lines = [head]
    if at is not None:
        shown = batch or found.batch
        lines += [f"  {label:<34} {fmt.scaled_bytes(value):>12}" for label, value in (
            ("weights", at.weights), ("gradients", at.gradients), ("optimizer state (and master weights)", at.optimizer),
            (f"kept for the backward (batch {shown:,})", at.saved), ("largest transient of the backward", at.transient),
            ("backward at its fullest", at.backward), ("peak: weights + optimizer + that", at.peak))]
    lines.append(f"  the next image adds {fmt.scaled_bytes(found.per_image)}; weights and optimizer state "
                 f"{fmt.scaled_bytes(found.fixed)}")
    return lines
