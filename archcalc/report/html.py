"""`archcalc html`: one self-contained page per network, to explore it in a browser.

The figure, the totals, and the layer table with groups that fold and unfold (the `--depth` of
`archcalc table`), sortable columns, and the working of a clicked layer: its output size with the
numbers filled in, its parameter and MAC formulas and its receptive-field step, as written by the
layer's class (`LayerType.working`). CSS and script are inline; nothing is fetched, so the page
works from file://. Deterministic: the same network gives the same bytes.
"""
from __future__ import annotations

import json
import math

from .. import fmt
from ..core import quantities
from ..core.calc import Analysis, Row, rows_by_key
from ..core.spec import Group, Layer, Node, joins, shown, source_positions
from ..errors import one_line
from ..layers import MERGES, REGISTRY, RF
from . import diagram
from .diagram import xml_text


def shown_totals(analysis: Analysis) -> list[tuple[str, str]]:
    """(key, label) of each total the page shows: the quantities with an `explorer_total`, topic by topic
    (archcalc.core.quantities), each under its key in `archcalc table --format json`, labelled for the network."""
    shown = quantities.by_topic(q for q in quantities.QUANTITIES.values() if q.explorer_total)
    return [(q.per_image, quantities.total_label(q, q.explorer_total, analysis))
            for q in shown if q.per_image and q.explorer_total]


def totals(analysis: Analysis) -> dict[str, int]:
    """The totals the page shows: those of `archcalc table --format json`, from the same function."""
    from ..render import to_json

    shown = to_json(analysis)["totals"]
    return {key: shown[key] for key, _ in shown_totals(analysis)}


# ---- workings ---------------------------------------------------------------------------------

def input_fields(root: Group, rows: dict[str, Row]) -> dict[str, RF]:
    """The receptive field each node receives: the previous sibling's, or its parent's input."""
    fields: dict[str, RF] = {}

    def walk(node: Node, before: RF) -> RF:
        fields[node.path] = before
        after = rows[node.path].rf if node.path in rows else before  # a branch has no row: its last node's
        if isinstance(node, Group):
            if node.kind == "sequence":  # each child receives what it takes: the previous child's, or `from`
                outputs: list[RF] = []
                for child, sources in zip(node.children, source_positions(node.children)):
                    outputs.append(walk(child, outputs[sources[0]] if sources[0] >= 0 else before))
                if node.label == "branch":
                    after = outputs[-1] if outputs else before
            else:
                for child in node.children:
                    walk(child, before)
        return after

    walk(root, RF())
    return fields


def workings(analysis: Analysis) -> dict[str, list[str]]:
    """Path -> the lines of its working, for every row of the table."""
    rows = {**{r.path: r for r in analysis.rows}, **rows_by_key(analysis)}  # by path, and by node key
    fields = input_fields(analysis.network.root, rows)
    found: dict[str, list[str]] = {}
    first = analysis.rows[0]
    found["input"] = [f"input {fmt.shape(first.output_shape)} = {math.prod(first.output_shape):,} values per image"]

    def walk(node: Node) -> None:
        if isinstance(node, Layer):
            row = rows[node.path]
            found.setdefault(shown(node.path), REGISTRY[node.type].working(node.attrs, row.input_shape, row.output_shape,
                                                                            fields[node.path]))
            return
        if joins(node):
            row = rows[node.path]
            found[node.path] = [f"{node.kind} of {', '.join(node.inputs)}: {fmt.shape(row.output_shape)}",
                                f"RF {row.rf.label()}"]
            return
        for child in node.children:
            walk(child)
        if not node.path or node.label == "branch":
            return
        row = rows[node.path]
        if node.kind != "sequence":  # a merge: its own row (its branches' nodes have theirs)
            made = row.activations
            found[shown(node.path)] = [_merge_line(node, analysis), f"a new tensor of {made:,} values" if made
                                       else "accumulated in place into its first branch: no new tensor"]
            return
        leaves = sum(1 for r in analysis.rows if r.leaf and r.path.startswith(node.path + "."))
        found[node.path] = [
            f"{one_line(node.label)}: {leaves} layers, {fmt.shape(row.input_shape)} -> {fmt.shape(row.output_shape)}",
            f"params = sum over its layers = {row.params:,}", f"MACs = sum over its layers = {row.macs:,}",
            f"RF {fields[node.path].label()} -> {row.rf.label()}"]

    walk(analysis.network.root)
    return found


def _merge_line(node: Group, analysis: Analysis) -> str:
    sums = analysis.walked.sums  # a branch's output shape: it has no row
    return MERGES[node.kind].working([sums[branch.path].output_shape for branch in node.children],
                                     sums[node.path].output_shape)


# ---- the page -------------------------------------------------------------------------------------

def table_data(analysis: Analysis) -> dict:
    """The rows as compact lists, and the working of each as indices into one list of distinct lines."""
    found = workings(analysis)
    parents = {r.path for r in analysis.rows if not r.leaf}
    columns = quantities.layer_columns()
    lines: dict[str, int] = {}
    rows = []
    for r in analysis.rows:
        rf_sort = r.rf.size[0] * r.rf.size[1] if r.rf.size else -1
        steps = [lines.setdefault(line, len(lines)) for line in found.get(r.path, [])]
        rows.append([one_line(r.path), one_line(r.label), r.depth, int(r.path in parents), fmt.shape(r.output_shape), math.prod(r.output_shape),
                     *(quantities.shown(q, r) for q in columns), r.rf.label(), rf_sort, steps])
    return {"columns": ["path", "type", "depth", "group", "output", "size", *(q.key for q in columns), "rf", "rf_size",
                        "working"], "rows": rows, "lines": list(lines)}


def layer_header() -> str:
    """The layer table's header: a sortable column per quantity with a `header` (archcalc.core.quantities),
    named by its key in the table data; two to a line after the first three."""
    cells = [f'<th data-column="{q.key}" class="num">{xml_text(q.header)}</th>' for q in quantities.layer_columns() if q.header]
    cells.append('<th data-column="rf_size" class="num">RF</th>')
    return ('<thead><tr><th data-column="path">Layer</th><th data-column="type">Type</th><th data-column="size" class="num">Output</th>\n'
            + "\n".join("".join(cells[i:i + 2]) for i in range(0, len(cells), 2)) + "</tr></thead>")


def script() -> str:
    """The page's script, with a cell per quantity column of the layer table."""
    cells = "".join(f"    cell(row, number(r[column.{q.key}]), true);\n" for q in quantities.layer_columns())
    return SCRIPT.replace(QUANTITY_CELLS, cells)


def page(analysis: Analysis, depth: int | None = None, figure_depth: int | None = None) -> str:
    """The page; groups deeper than `depth` start folded, the figure is drawn at `figure_depth`."""
    network = analysis.network
    figure = diagram.svg(diagram.layout(analysis, diagram.Options(depth=figure_depth)))
    figure = figure.replace('<svg xmlns="http://www.w3.org/2000/svg"', '<svg xmlns="http://www.w3.org/2000/svg" id="figure-svg"', 1)
    total_rows = "".join(f'<tr><th scope="row">{xml_text(label)}</th><td class="num" data-total="{key}">{value:,}</td>'
                         f'<td class="num scaled" data-scaled="{key}">{fmt.scaled(value)}</td></tr>'
                         for (key, label), value in zip(shown_totals(analysis), totals(analysis).values()))
    deepest = max(r.depth for r in analysis.rows)
    depth_buttons = "".join(f'<button data-depth="{d}">{d}</button>' for d in range(1, deepest + 1))
    # every `<` as \u003c: neither `</script>` nor `<!--` in a spec's names can end or hide the element
    data = json.dumps(table_data(analysis), ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
    title = f"{network.name}: {network.title}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{xml_text(title)} · archcalc</title>
<link rel="icon" href="data:,">
<style>{CSS}</style>
</head>
<body>
<header>
<h1>{xml_text(title)}</h1>
<p>Family <code>{xml_text(network.family)}</code>, input {fmt.shape(analysis.input_shape)}, batch {analysis.batch}, {analysis.dtype}.
Click a layer, in the table or in the figure, for its working; in the table, the arrow keys move between rows,
Enter shows the working, Space or Left and Right fold a block. Generated by <code>archcalc html {xml_text(network.name)}</code>.</p>
</header>
<main>
<section id="figure" aria-label="Architecture figure">
{figure}</section>
<section id="details">
<table id="totals"><caption>Totals</caption>{total_rows}</table>
<div id="working" aria-live="polite"><h2>Working</h2><p id="working-hint">Click a layer for its arithmetic.</p>
<h3 id="working-title"></h3><ol id="working-lines"></ol></div>
<div id="controls">Fold to depth: {depth_buttons}<button data-depth="all">all</button>
<span id="shown"></span></div>
<noscript><p>The layer table needs JavaScript; <code>archcalc table {xml_text(network.name)}</code> prints it.</p></noscript>
<div id="table-wrap">
<table id="layers" role="treegrid" aria-label="Layers" data-initial-depth="{depth or 'all'}">
{layer_header()}
<tbody></tbody>
</table>
</div>
</section>
</main>
<script type="application/json" id="table-data">{data}</script>
<script>{script()}</script>
</body>
</html>
"""


CSS = """
body{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;margin:0;color:#000;background:#fff;font-size:14px}
header{padding:8px 16px;border-bottom:1px solid #ccc}h1{font-size:20px;margin:6px 0}header p{margin:4px 0;color:#333}
main{display:flex;align-items:flex-start;gap:12px;padding:8px 16px}#layers{--indent:1.1em}
#figure{flex:0 0 auto;max-width:45%;max-height:calc(100vh - 16px);overflow:auto;position:sticky;top:8px;border:1px solid #ddd}
#details{flex:1 1 auto;min-width:0;position:sticky;top:8px;height:calc(100vh - 16px);display:flex;flex-direction:column}
#details>*{flex:0 0 auto}#details>#totals{align-self:flex-start}
table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #eee;text-align:left;white-space:nowrap}
.num{text-align:right;font-variant-numeric:tabular-nums}
#totals{margin-bottom:8px}#totals caption{text-align:left;font-weight:bold;padding:2px 0}
#totals th{font-weight:normal;color:#333;white-space:normal}#totals td.scaled{color:#333}
#details>#table-wrap{flex:1 1 auto;min-height:120px;overflow:auto;border-top:1px solid #ddd}
#working{border:1px solid #0072B2;background:#F2F8FC;padding:4px 12px;margin:8px 0;min-height:60px}
#working h2{font-size:15px;margin:4px 0}#working h3{font-size:14px;margin:4px 0;font-family:monospace}
#working ol{margin:4px 0 6px 0;padding-left:22px;font-family:DejaVu Sans Mono,monospace;font-size:13px}
#controls{margin:6px 0}#controls button{margin:0 2px}#shown{color:#555;margin-left:8px}
#layers thead th{position:sticky;top:0;background:#fff;cursor:pointer;border-bottom:2px solid #999;user-select:none}
#layers thead th[aria-sort=ascending]::after{content:" ▲"}#layers thead th[aria-sort=descending]::after{content:" ▼"}
#layers tbody tr{cursor:pointer}#layers tbody tr:hover{background:#F5F5F5}
#layers tbody tr.selected{background:#FFF3C4}
#layers tbody tr:focus{outline:2px solid #0072B2;outline-offset:-2px}#layers tr[data-group] td:first-child{font-weight:bold}
#layers tr.hidden{display:none}
.toggle{display:inline-block;width:1.3em;border:none;background:none;padding:0;cursor:pointer;font-size:12px}
#figure-svg g.box,#figure-svg g.merge{cursor:pointer}
#figure-svg g.selected rect{stroke:#000;stroke-width:3}
@media (max-width:1279px){body{font-size:13px}main{gap:8px;padding:6px 8px}#figure{max-width:28%}
td,th{padding:2px 3px}#layers{--indent:0.6em}#layers td:nth-child(2){max-width:6em;overflow:hidden;text-overflow:ellipsis}
#working ol{font-size:12px}#working li{white-space:normal;overflow-wrap:anywhere}}
@media print{#details{position:static;height:auto;display:block}#table-wrap{overflow:visible}#figure{position:static;max-height:none;max-width:none;overflow:visible}main{display:block}}
"""

QUANTITY_CELLS = "    /* a cell per quantity column (script()) */\n"
SCRIPT = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("table-data").textContent);
  var column = {};
  data.columns.forEach(function (name, i) { column[name] = i; });
  var table = document.getElementById("layers");
  var body = table.tBodies[0];
  var byPath = {}, record = {}, children = {"": []}, order = {}, rows = [];
  function number(n) { return n.toLocaleString("en-US"); }
  function cell(row, text, numeric) {
    var td = document.createElement("td");
    td.textContent = text;
    if (numeric) { td.className = "num"; }
    row.appendChild(td);
    return td;
  }
  data.rows.forEach(function (r, i) {
    var path = r[column.path], row = document.createElement("tr");
    row.dataset.path = path;
    row.dataset.depth = r[column.depth];
    row.tabIndex = i === 0 ? 0 : -1;  /* one row in the tab order: the arrow keys move it (a roving tabindex) */
    row.setAttribute("aria-level", String(Math.max(r[column.depth], 1)));
    var name = cell(row, "", false);
    name.style.paddingLeft = "calc(0.3em + " + Math.max(r[column.depth] - 1, 0) + " * var(--indent))";
    name.title = path;
    var toggle = document.createElement(r[column.group] ? "button" : "span");
    toggle.className = "toggle";
    if (r[column.group]) { toggle.tabIndex = -1; }
    name.appendChild(toggle);
    name.appendChild(document.createTextNode(path.slice(path.lastIndexOf(".") + 1)));
    if (r[column.group]) { row.dataset.group = ""; }
    cell(row, r[column.type], false).title = r[column.type];
    cell(row, r[column.output], true);
    /* a cell per quantity column (script()) */
    cell(row, r[column.rf], true);
    byPath[path] = row; record[path] = r; order[path] = i; children[path] = [];
    rows.push(row);
    body.appendChild(row);
  });
  function parentOf(path) {
    var cut = path.lastIndexOf(".");
    while (cut > 0) {
      var up = path.slice(0, cut);
      if (byPath[up]) { return up; }
      cut = up.lastIndexOf(".");
    }
    return "";
  }
  rows.forEach(function (row) { children[parentOf(row.dataset.path)].push(row); });
  var folded = {};
  function update() {
    var shown = 0;
    rows.forEach(function (row) {
      var hidden = false, up = parentOf(row.dataset.path);
      while (up) { if (folded[up]) { hidden = true; break; } up = parentOf(up); }
      row.classList.toggle("hidden", hidden);
      if (!hidden) { shown += 1; }
      var button = row.querySelector("button.toggle");
      if (button) {
        var open = !folded[row.dataset.path];
        button.textContent = open ? "\u25be" : "\u25b8";
        button.setAttribute("aria-expanded", String(open));
        button.setAttribute("aria-label", open ? "fold" : "unfold");
        row.setAttribute("aria-expanded", String(open));
      }
    });
    document.getElementById("shown").textContent = shown + " of " + rows.length + " rows shown";
  }
  function foldTo(depth) {
    folded = {};
    rows.forEach(function (row) {
      if (row.hasAttribute("data-group") && depth !== "all" && Number(row.dataset.depth) >= Number(depth)) {
        folded[row.dataset.path] = true;
      }
    });
    update();
  }
  var sortColumn = null, sortDirection = 0;
  function sortKey(row, key) {
    return record[row.dataset.path][column[key]];
  }
  function arrange() {
    var sequence = [];
    function visit(path) {
      var list = children[path].slice();
      if (sortDirection !== 0) {
        list.sort(function (a, b) {
          var x = sortKey(a, sortColumn), y = sortKey(b, sortColumn);
          if (x < y) { return -sortDirection; }
          if (x > y) { return sortDirection; }
          return order[a.dataset.path] - order[b.dataset.path];
        });
      }
      list.forEach(function (row) { sequence.push(row); visit(row.dataset.path); });
    }
    visit("");
    sequence.forEach(function (row) { body.appendChild(row); });
  }
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
    th.addEventListener("click", function () {
      var key = th.dataset.column;
      if (sortColumn !== key) { sortColumn = key; sortDirection = 1; }
      else { sortDirection = sortDirection === 1 ? -1 : sortDirection === -1 ? 0 : 1; }
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (other) { other.removeAttribute("aria-sort"); });
      if (sortDirection !== 0) { th.setAttribute("aria-sort", sortDirection === 1 ? "ascending" : "descending"); }
      arrange();
    });
  });
  var svg = document.getElementById("figure-svg");
  var wrap = document.getElementById("table-wrap");
  /* A row chosen in the figure is scrolled into view inside the table's own box, never by scrolling the
     window (scrollIntoView would move the page to the row, away from the figure and the working);
     then the working is brought into view if it is not. */
  function reveal(row) {
    var details = document.getElementById("details").getBoundingClientRect();
    if (details.bottom > window.innerHeight && details.top > 0) {  /* the page's header above it: a few pixels */
      window.scrollBy(0, Math.min(details.bottom - window.innerHeight, details.top));
    }
    var box = wrap.getBoundingClientRect(), at = row.getBoundingClientRect();
    var top = Math.max(box.top, 0) + table.tHead.getBoundingClientRect().height;
    var bottom = Math.min(box.bottom, window.innerHeight);  /* what of the box is on the screen */
    if (at.top < top || at.bottom > bottom) {
      wrap.scrollTop += at.top - top - Math.max((bottom - top - at.height) / 3, 0);
    }
    var working = document.getElementById("working").getBoundingClientRect();
    if (working.top < 0 || working.bottom > window.innerHeight) {
      window.scrollBy(0, working.top - 8);
    }
  }
  function select(path) {
    if (!record[path]) { return; }
    rows.forEach(function (row) { row.classList.toggle("selected", row.dataset.path === path); });
    if (svg) {
      Array.prototype.forEach.call(svg.querySelectorAll("g.box, g.merge"), function (g) {
        g.classList.toggle("selected", g.getAttribute("data-path") === path);
      });
    }
    document.getElementById("working-hint").hidden = true;
    var row = byPath[path];
    document.getElementById("working-title").textContent = path + " (" + row.cells[1].textContent + ")";
    var list = document.getElementById("working-lines");
    while (list.firstChild) { list.removeChild(list.firstChild); }
    record[path][column.working].forEach(function (line) {
      var item = document.createElement("li");
      item.textContent = data.lines[line];
      list.appendChild(item);
    });
  }
  function current(row) {
    rows.forEach(function (other) { other.tabIndex = other === row ? 0 : -1; });
  }
  function visibleRows() {
    return Array.prototype.filter.call(body.rows, function (row) { return !row.classList.contains("hidden"); });
  }
  function toggleFold(row, open) {
    var path = row.dataset.path;
    folded[path] = open === undefined ? !folded[path] : !open;
    update();
  }
  function focusRow(row) {
    if (!row) { return; }
    current(row);
    row.focus();
  }
  body.addEventListener("keydown", function (event) {
    var row = event.target.closest("tr");
    if (!row || event.altKey || event.ctrlKey || event.metaKey) { return; }
    var shown = visibleRows(), at = shown.indexOf(row), group = row.hasAttribute("data-group");
    var open = group && !folded[row.dataset.path];
    switch (event.key) {
      case "ArrowDown": focusRow(shown[at + 1]); break;
      case "ArrowUp": focusRow(shown[at - 1]); break;
      case "Home": focusRow(shown[0]); break;
      case "End": focusRow(shown[shown.length - 1]); break;
      case "ArrowRight": if (group && !open) { toggleFold(row, true); } else if (open) { focusRow(shown[at + 1]); } break;
      case "ArrowLeft": if (open) { toggleFold(row, false); } else { focusRow(byPath[parentOf(row.dataset.path)]); } break;
      case "Enter": select(row.dataset.path); break;
      case " ": if (group) { toggleFold(row); } else { select(row.dataset.path); } break;
      default: return;
    }
    event.preventDefault();
  });
  body.addEventListener("click", function (event) {
    var row = event.target.closest("tr");
    if (!row) { return; }
    current(row);
    if (event.target.closest("button.toggle")) {
      var path = row.dataset.path;
      folded[path] = !folded[path];
      update();
      return;
    }
    select(row.dataset.path);
  });
  if (svg) {
    svg.addEventListener("click", function (event) {
      var g = event.target.closest("g.box, g.merge");
      if (!g) { return; }
      var path = g.getAttribute("data-path");
      var up = parentOf(path);
      while (up) { folded[up] = false; up = parentOf(up); }
      update();
      select(path);
      if (byPath[path]) { current(byPath[path]); reveal(byPath[path]); }
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll("#controls button"), function (button) {
    button.addEventListener("click", function () { foldTo(button.dataset.depth); });
  });
  foldTo(table.dataset.initialDepth);
})();
"""
