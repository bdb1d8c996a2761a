"""Architecture figures: a series-parallel layout of the spec tree, written as SVG (or PNG).

The figure follows the spec's nesting: a sequence flows top to bottom (left to right when
horizontal), the branches of a merge stand side by side and meet at a labelled merge node, an
empty branch is drawn as a skip arrow, named groups are framed, groups below `depth` are one
box, and consecutive siblings of the same block with the same shapes fold into one (`x3`).
Layout first (boxes, frames and edges with integer coordinates), then a writer: the SVG is
text written here, so the same network gives the same bytes; PNG draws the same layout with
matplotlib. Labels and colours come from the layer classes (`LayerType.label`, `.kind`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from html import escape
from typing import NamedTuple, Sequence

from .. import fmt
from ..core import quantities
from ..core.calc import Analysis, Row, rows_by_key
from ..core.spec import Group, Layer, Node, printable
from ..errors import UsageError, one_line, suggest
from ..layers import MERGES, REGISTRY
from ..layers.layout import as_image

# Okabe & Ito's colour-blind safe palette: a light tint fills the box, the colour draws its edge.
PALETTE = {
    "conv": "#0072B2", "pool": "#D55E00", "norm": "#F0E442", "activation": "#009E73",
    "linear": "#CC79A7", "shape": "#56B4E9", "regularisation": "#E69F00",
    "block": "#000000", "merge": "#000000", "input": "#000000",
}
KIND_NAMES = {"block": "folded block", "merge": "merge"}
INK, MUTED, FRAME = "#000000", "#444444", "#777777"
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
RF_ANNOTATION = "rf"

LABEL_SIZE, LINE_SIZE = 12, 10
CHAR = 0.62  # width of a character in em, generous for a proportional font
PAD, GAP, FORK, LANE, FRAME_PAD, BRANCH_GAP = 8, 18, 12, 22, 8, 14
TITLE_SIZE = 10
MIN_BOX = 92


def text_width(text: str, size: int) -> int:
    """The width of `text` as the writers draw it (control characters as escapes, as `xml_text` writes it)."""
    return math.ceil(len(one_line(text)) * size * CHAR)


def xml_text(text: str) -> str:
    """A text of the figure (a block name, a title) in SVG: control characters as escapes (XML 1.0 holds
    none, not even as a reference), then markup characters as entities."""
    return escape(one_line(text))


# ---- drawing primitives -------------------------------------------------------------------

@dataclass(frozen=True)
class Rect:
    x: int
    y: int
    w: int
    h: int
    fill: str
    stroke: str
    dashed: bool = False
    radius: int = 3


@dataclass(frozen=True)
class Text:
    x: int
    y: int  # baseline
    text: str
    size: int
    bold: bool = False
    anchor: str = "middle"  # start, middle, end
    colour: str = INK
    halo: bool = False  # a white outline, so that a line running under the text does not cross it


@dataclass(frozen=True)
class Line:
    points: tuple[tuple[int, int], ...]
    arrow: bool = True


@dataclass(frozen=True)
class Mark:
    """One thing of the figure: a box, a merge, a frame, an edge; `attrs` become data- attributes."""

    role: str  # box, merge, frame, edge, legend, title
    parts: tuple
    title: str = ""
    attrs: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Drawing:
    width: int
    height: int
    marks: tuple[Mark, ...]
    description: str


# ---- what is drawn --------------------------------------------------------------------------

@dataclass(frozen=True)
class Options:
    depth: int | None = None
    focus: str | None = None
    horizontal: bool = False
    annotate: tuple[str, ...] = ()
    scale: bool = False


def annotation_words() -> tuple[str, ...]:
    """What --annotate may name: each quantity a figure can write (its key: archcalc.core.quantities), and rf."""
    return (*(q.key for q in quantities.in_figures()), RF_ANNOTATION)


def parse_annotate(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    wanted = tuple(part.strip().lower() for part in text.split(",") if part.strip())
    known = annotation_words()
    for word in wanted:
        if word not in known:
            raise UsageError(f"--annotate {text!r}: {word!r} is not one of {', '.join(known)}{suggest(word, known)}")
    return wanted


class _Flow:
    """Layout in flow coordinates: `main` runs along the sequence, `cross` across the branches."""

    def __init__(self, horizontal: bool):
        self.horizontal = horizontal

    def xy(self, main: int, cross: int) -> tuple[int, int]:
        return (main, cross) if self.horizontal else (cross, main)

    def main_cross(self, w: int, h: int) -> tuple[int, int]:
        return (w, h) if self.horizontal else (h, w)


class _Element:
    """Something laid out: its size along and across the flow and its spine (where edges enter and leave)."""

    main: int
    cross: int
    spine: int
    entry_is_node = True

    def place(self, flow: _Flow, m: int, c: int, out: list[Mark]) -> None:
        raise NotImplementedError


class _Box(_Element):
    def __init__(self, flow: _Flow, role: str, lines: list[tuple[str, int, bool]], colour_kind: str, title: str,
                 attrs: tuple[tuple[str, str], ...], extra: tuple[int, int] = (0, 0), badge: str = ""):
        self.role, self.lines, self.kind, self.title, self.attrs, self.badge = role, lines, colour_kind, title, attrs, badge
        badge_room = text_width(badge, LINE_SIZE) + 6 if badge else 0
        width = max(MIN_BOX if role == "box" else 40, max(text_width(t, s) for t, s, _ in lines) + 2 * PAD + 2 * badge_room)
        height = sum(round(s * 1.3) for _, s, _ in lines) + 2 * PAD - 2
        self.w, self.h = width + extra[0], height + extra[1]
        self.main, self.cross = flow.main_cross(self.w, self.h)
        self.spine = self.cross // 2

    def place(self, flow: _Flow, m: int, c: int, out: list[Mark]) -> None:
        x, y = flow.xy(m, c)
        parts: list = [Rect(x, y, self.w, self.h, fill(self.kind), PALETTE[self.kind],
                            radius=self.h // 2 if self.role == "merge" else 3)]
        total = sum(round(s * 1.3) for _, s, _ in self.lines)
        baseline = y + (self.h - total) // 2
        for text, size, bold in self.lines:
            baseline += round(size * 1.3)
            parts.append(Text(x + self.w // 2, baseline - round(size * 0.3), text, size, bold, colour=INK if bold else MUTED))
        if self.badge:
            parts.append(Text(x + self.w - 5, y + LABEL_SIZE + 3, self.badge, LINE_SIZE, True, "end"))
        out.append(Mark(self.role, tuple(parts), self.title, self.attrs))


class _Sequence(_Element):
    def __init__(self, children: list[_Element]):
        self.children = children
        self.spine = max(ch.spine for ch in children)
        self.cross = self.spine + max(ch.cross - ch.spine for ch in children)
        self.main = sum(ch.main for ch in children) + GAP * (len(children) - 1)
        self.entry_is_node = children[0].entry_is_node

    def place(self, flow: _Flow, m: int, c: int, out: list[Mark]) -> None:
        axis = c + self.spine
        for i, child in enumerate(self.children):
            if i:
                out.append(Mark("edge", (Line((flow.xy(m - GAP, axis), flow.xy(m, axis)), child.entry_is_node),)))
            child.place(flow, m, axis - child.spine, out)
            m += child.main + GAP


class _Frame(_Element):
    """A named group: its content inside a dashed outline with the name on top; the flow line runs through."""

    entry_is_node = False

    def __init__(self, flow: _Flow, content: _Element, title: str, attrs: tuple[tuple[str, str], ...]):
        self.content, self.title, self.attrs = content, title, attrs
        head = TITLE_SIZE + 6
        content_w, content_h = (content.main, content.cross) if flow.horizontal else (content.cross, content.main)
        self.w = max(content_w, text_width(title, TITLE_SIZE) + 10) + 2 * FRAME_PAD
        self.h = content_h + 2 * FRAME_PAD + head
        self.main, self.cross = flow.main_cross(self.w, self.h)
        dx, dy = (self.w - content_w) // 2, FRAME_PAD + head  # where the content sits inside
        self.lead, self.side = (dx, dy) if flow.horizontal else (dy, dx)
        self.spine = self.side + content.spine

    def place(self, flow: _Flow, m: int, c: int, out: list[Mark]) -> None:
        x, y = flow.xy(m, c)
        out.append(Mark("frame", (Rect(x, y, self.w, self.h, "none", FRAME, dashed=True, radius=6),
                                  Text(x + 5, y + TITLE_SIZE + 3, self.title, TITLE_SIZE, anchor="start", colour=MUTED, halo=True)),
                        "", self.attrs))
        axis = c + self.spine
        start, end = m + self.lead, m + self.lead + self.content.main
        out.append(Mark("edge", (Line((flow.xy(m, axis), flow.xy(start, axis)), self.content.entry_is_node),)))
        self.content.place(flow, start, c + self.side, out)
        out.append(Mark("edge", (Line((flow.xy(end, axis), flow.xy(m + self.main, axis)), False),)))


class _Merge(_Element):
    """Branches side by side, from a fork at the entry to a merge node; an empty branch is a skip lane."""

    entry_is_node = False

    def __init__(self, flow: _Flow, branches: list[_Element | None], node: _Box, path: str):
        self.branches, self.node, self.path = branches, node, path
        widths = [LANE if b is None else b.cross for b in branches]
        self.offsets, at = [], 0
        for w in widths:
            self.offsets.append(at)
            at += w + BRANCH_GAP
        inner = at - BRANCH_GAP
        solid = [i for i, b in enumerate(branches) if b is not None]
        if len(solid) == 1:  # a residual or SE block: the body stays on the line, the skip goes round it
            spine = self.offsets[solid[0]] + branches[solid[0]].spine  # type: ignore[union-attr]
        else:
            spine = inner // 2
        left = max(0, node.cross // 2 - spine)
        right = max(0, node.cross - node.cross // 2 - (inner - spine))
        self.offsets = [o + left for o in self.offsets]
        self.spine = spine + left
        self.cross = left + inner + right
        self.tallest = max((b.main for b in branches if b is not None), default=0)
        self.main = FORK + self.tallest + FORK + node.main

    def place(self, flow: _Flow, m: int, c: int, out: list[Mark]) -> None:
        axis = c + self.spine
        fork = m + FORK // 2
        top = m + FORK
        join = top + self.tallest + FORK // 2
        node_m = top + self.tallest + FORK
        node_centre = node_m + self.node.main // 2
        node_c = axis - self.node.spine
        to = (("to", self.path),)
        for branch, offset in zip(self.branches, self.offsets):
            if branch is None:
                lane = c + offset + LANE // 2
                side = node_c if lane < axis else node_c + self.node.cross
                points = (flow.xy(m, axis), flow.xy(fork, axis), flow.xy(fork, lane), flow.xy(node_centre, lane),
                          flow.xy(node_centre, side))
                out.append(Mark("edge", (Line(_clean(points)),), "", (("skip", "identity"), *to)))
                continue
            start = c + offset + branch.spine
            out.append(Mark("edge", (Line(_clean((flow.xy(m, axis), flow.xy(fork, axis), flow.xy(fork, start),
                                                  flow.xy(top, start))), branch.entry_is_node),)))
            branch.place(flow, top, c + offset, out)
            end = top + branch.main
            out.append(Mark("edge", (Line(_clean((flow.xy(end, start), flow.xy(join, start), flow.xy(join, axis),
                                                  flow.xy(node_m, axis)))),), "", to))
        self.node.place(flow, node_m, node_c, out)


def _clean(points: Sequence[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Drop repeated and collinear points so that the SVG path is as short as it can be."""
    kept: list[tuple[int, int]] = []
    for p in points:
        if kept and p == kept[-1]:
            continue
        if len(kept) >= 2 and (kept[-2][0] == kept[-1][0] == p[0] or kept[-2][1] == kept[-1][1] == p[1]):
            kept[-1] = p
            continue
        kept.append(p)
    return tuple(kept)


def tint(colour: str, amount: float = 0.28) -> str:
    """The colour mixed with white: `amount` of the colour."""
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return "#" + "".join(f"{round(255 - (255 - v) * amount):02X}" for v in (r, g, b))


def fill(kind: str) -> str:
    """A box's fill: a light tint of its kind's colour; white for merges and the input, grey for a folded block."""
    return "#FFFFFF" if kind in ("merge", "input") else "#EEEEEE" if kind == "block" else tint(PALETTE[kind])


# ---- from the spec tree to elements ------------------------------------------------------------

def _annotated(quantity: quantities.Quantity, row: Row) -> str:
    """A quantity of a row as a box shows it: `12.3M params`."""
    return f"{fmt.scaled(quantities.shown(quantity, row))} {quantity.short}"


class _Builder:
    def __init__(self, analysis: Analysis, options: Options):
        self.analysis, self.options = analysis, options
        self.rows = {**{r.path: r for r in analysis.rows}, **rows_by_key(analysis)}  # by path, and by node key
        self.flow = _Flow(options.horizontal)
        self.kinds: set[str] = set()
        images = (as_image(r.output_shape) for r in analysis.rows)
        spatial = [image[1] * image[2] for image in images if image is not None]
        self.largest = max(spatial, default=1)

    def annotation(self, row: Row) -> list[tuple[str, int, bool]]:
        parts = [f"RF {row.rf.label()}" if word == RF_ANNOTATION else _annotated(quantities.QUANTITIES[word], row)
                 for word in self.options.annotate]
        return [(" · ".join(parts), LINE_SIZE, False)] if parts else []

    def extra(self, row: Row) -> tuple[int, int]:
        """With --scale: wider for a larger feature map, thicker for more channels (VGG's figure)."""
        image = as_image(row.output_shape)
        if not self.options.scale or image is None:
            return (0, 0)
        c, h, w = image
        across = round(140 * math.sqrt(h * w / self.largest))
        along = round(4 * math.log2(max(c, 1)))
        return (across, along) if not self.options.horizontal else (along, across)

    def box(self, row: Row, label: str, kind: str, badge: str = "", covers: Sequence[str] = ()) -> _Box:
        self.kinds.add(kind)
        lines = [(label, LABEL_SIZE, True), (fmt.shape(row.output_shape), LINE_SIZE, False), *self.annotation(row)]
        counts = "".join(f"{quantities.shown(q, row):,} {q.short}, " for q in quantities.in_figures())
        title = (f"{row.path}: {row.label}, {fmt.shape(row.input_shape)} -> {fmt.shape(row.output_shape)}, "
                 f"{counts}RF {row.rf.label()}")
        attrs = [("path", row.path), ("kind", kind)]
        if covers:
            attrs.append(("covers", " ".join(covers)))
        return _Box(self.flow, "box", lines, kind, title, tuple(attrs), self.extra(row), badge)

    def node(self, node: Node, badge: str = "", covers: Sequence[str] = ()) -> _Element:
        row = self.rows[node.path]
        if isinstance(node, Layer):
            layer = REGISTRY[node.type]
            return self.box(row, layer.label(node.attrs) + _taken(node), layer.kind, badge=badge, covers=covers)
        if node.kind == "sequence" and self.folded(row):  # a merge is no module: its branches' nodes fold one by one
            return self.folded_box(node, row, badge, covers)
        if node.kind == "sequence":
            content = self.sequence(node.children)
            if node.label == "branch" or content is None:
                return content  # type: ignore[return-value]
            name = node.path.rsplit(".", 1)[-1]
            if badge:
                name = f"{name}…{covers[-1].rsplit('.', 1)[-1]}"
            title = (name if node.label in (name, "sequence") else f"{name}: {node.label}") + _taken(node)
            if badge:
                title += f" {badge}"
            attrs = [("path", node.path)] + ([("covers", " ".join(covers))] if covers else [])
            return _Frame(self.flow, content, title, tuple(attrs))
        return self.merge(node)

    def folded(self, row: Row) -> bool:
        return self.options.depth is not None and row.depth >= self.options.depth

    def folded_box(self, node: Group, row: Row, badge: str, covers: Sequence[str]) -> _Box:
        """A group drawn as one box: named by its one weight layer (VGG's `conv 3x3, 64`), else by its block."""
        name = node.path.rsplit(".", 1)[-1]
        if node.label == "branch":  # named by its merge: `se: branch 1`
            merge = node.path.rsplit(".", 2)[-2] if node.path.count(".") else ""
            name = f"{merge}: branch {name}" if merge else f"branch {name}"
        if covers:
            name = f"{name}…{covers[-1].rsplit('.', 1)[-1]}"
        weighted = [leaf for leaf in leaves(node) if REGISTRY[leaf.type].kind in ("conv", "linear")]
        if len(weighted) == 1:
            layer = REGISTRY[weighted[0].type]
            return self.box(row, layer.label(weighted[0].attrs), layer.kind, badge=badge, covers=covers)
        label = name if node.label in (name, "sequence", "branch", "repeat") else f"{name}: {node.label}"
        return self.box(row, label, "block", badge=badge, covers=covers)

    def branch(self, branch: Node) -> _Element | None:
        if not (isinstance(branch, Group) and branch.label == "branch"):
            return self.node(branch)
        if not branch.children:
            return None  # the identity: a skip arrow
        return self.sequence(branch.children)  # a branch has no row of its own: its nodes fold one by one

    def merge(self, node: Group) -> _Element:
        row = self.rows[node.path]
        branches = [self.branch(b) for b in node.children]
        self.kinds.add("merge")
        lines = [(MERGES[node.kind].symbol + _taken(node), LABEL_SIZE, True), (fmt.shape(row.output_shape), LINE_SIZE, False)]
        of = ", ".join(node.inputs) if not branches else f"{len(branches)} branches"
        title = f"{row.path}: {node.kind} of {of} -> {fmt.shape(row.output_shape)}"
        key = printable(node.path)  # an op called again (three `cat` in one Inception block) is a merge of its own
        merge_node = _Box(self.flow, "merge", lines, "merge", title,
                          (("path", key), ("merge", node.kind), ("inputs", str(len(branches)))))
        return _Merge(self.flow, branches, merge_node, key)

    def sequence(self, children: Sequence[Node]) -> _Element | None:
        elements, i = [], 0
        while i < len(children):
            j = i + 1
            while j < len(children) and self.same(children[i], children[j]):
                j += 1
            covers = [c.path for c in children[i + 1:j]]
            elements.append(self.node(children[i], f"×{j - i}" if j - i > 1 else "", covers))
            i = j
        elements = [e for e in elements if e is not None]
        return _Sequence(elements) if elements else None

    def same(self, a: Node, b: Node) -> bool:
        """Consecutive siblings that fold: the same block, the same layers, the same shapes."""
        if not isinstance(a, Group) or not isinstance(b, Group) or a.label in ("sequence", "branch") \
                or a.inputs or b.inputs:  # a node that names what it takes is drawn with it
            return False
        ra, rb = self.rows[a.path], self.rows[b.path]
        return (ra.input_shape, ra.output_shape) == (rb.input_shape, rb.output_shape) and structure(a) == structure(b)

    def input_box(self, row: Row, path: str) -> _Box:
        self.kinds.add("input")
        lines = [("input" if not path else f"input of {path}", LABEL_SIZE, True), (fmt.shape(row.input_shape), LINE_SIZE, False)]
        return _Box(self.flow, "box", lines, "input", f"input: {fmt.shape(row.input_shape)}", (("path", "input"), ("kind", "input")))


def leaves(node: Node) -> list[Layer]:
    if isinstance(node, Layer):
        return [node]
    return [leaf for child in node.children for leaf in leaves(child)]


def structure(node: Node) -> tuple:
    """What a node is, without its path: types, attributes and nesting."""
    if isinstance(node, Layer):
        return (node.type, tuple(sorted((k, repr(v)) for k, v in node.attrs.items())))
    return (node.kind, node.label, tuple(structure(c) for c in node.children))


def _taken(node: Node) -> str:
    """What a node that names its inputs (`from`) takes, written after its label: the figure draws a
    sequence as a chain."""
    return f" ← {', '.join(node.inputs)}" if node.inputs else ""


def find(root: Group, path: str) -> Node:
    """The node at `path`, or the one node whose path ends with `.path`."""
    nodes: list[Node] = []

    def walk(node: Node) -> None:
        nodes.append(node)
        for child in node.children if isinstance(node, Group) else ():
            walk(child)

    walk(root)
    found = [n for n in nodes if n.path == path] or [n for n in nodes if n.path.endswith("." + path)]
    if len(found) == 1:
        return found[0]
    if found:
        raise UsageError(f"--focus {path!r} names {len(found)} nodes ({', '.join(n.path for n in found[:4])}, ...); give the whole path")
    raise UsageError(f"--focus {path!r}: no such layer or block{suggest(path, [n.path for n in nodes if n.path])}")


# ---- the figure ------------------------------------------------------------------------------

MARGIN = 16


def layout(analysis: Analysis, options: Options = Options()) -> Drawing:
    builder = _Builder(analysis, options)
    network = analysis.network
    content: _Element | None
    if options.focus:
        node = find(network.root, options.focus)
        content = builder.node(node)
        first = builder.rows[node.path]
        start = builder.input_box(first, node.path)
        subject = f"{network.name}: {node.path}"
    else:
        content = builder.sequence(network.root.children)
        start = builder.input_box(analysis.rows[0], "")
        subject = network.name
    body = _Sequence([start, content] if content is not None else [start])
    flow = builder.flow
    heading = f"{subject}, input {fmt.shape(analysis.input_shape)}" + (f", depth {options.depth}" if options.depth else "")
    marks: list[Mark] = []
    top = MARGIN + LABEL_SIZE + 12
    m, c = (MARGIN, top) if flow.horizontal else (top, MARGIN)
    body.place(flow, m, c, marks)
    w, h = flow.xy(body.main, body.cross)
    legend, legend_w, legend_h = _legend(sorted(builder.kinds, key=list(PALETTE).index), MARGIN, top + h + 14, w)
    width = max(w, legend_w) + 2 * MARGIN
    height = top + h + 14 + legend_h + MARGIN
    title = Mark("title", (Text(MARGIN, MARGIN + LABEL_SIZE, heading, LABEL_SIZE + 1, True, "start"),))
    width = max(width, text_width(heading, LABEL_SIZE + 1) + 2 * MARGIN)
    marks = [title, *marks, *legend]
    return Drawing(width, height, tuple(marks), f"Architecture of {heading}")


def _legend(kinds: list[str], x: int, y: int, width: int) -> tuple[list[Mark], int, int]:
    """A swatch and a name for each kind drawn, in rows no wider than the figure: marks, width, height."""
    marks, at, row_y, widest = [], x, y, 0
    for kind in kinds:
        name = KIND_NAMES.get(kind, kind)
        size = 14 + text_width(name, LINE_SIZE) + 14
        if at + size > x + max(width, 360) and at > x:
            at, row_y = x, row_y + 18
        marks.append(Mark("legend", (Rect(at, row_y, 10, 10, fill(kind), PALETTE[kind], radius=2),
                                     Text(at + 14, row_y + 9, name, LINE_SIZE, anchor="start", colour=MUTED)), "",
                          (("kind", kind),)))
        at += size
        widest = max(widest, at - x)
    return marks, widest, row_y - y + 12 if kinds else 0


# ---- writers --------------------------------------------------------------------------------

def svg(drawing: Drawing) -> str:
    """The drawing as SVG text: integer coordinates, one element a line, the same bytes every time."""
    lines = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{drawing.width}" height="{drawing.height}" '
        f'viewBox="0 0 {drawing.width} {drawing.height}" role="img" aria-labelledby="figure-title" '
        f'font-family="{FONT}">',
        f'<title id="figure-title">{xml_text(drawing.description)}</title>',
        "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" "
        "orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#333333\"/></marker></defs>",
        f'<rect width="{drawing.width}" height="{drawing.height}" fill="#FFFFFF"/>',
    ]
    for mark in drawing.marks:
        attrs = "".join(f' data-{k}="{xml_text(v)}"' for k, v in mark.attrs)
        body = "".join(_svg_part(p) for p in mark.parts)
        title = f"<title>{xml_text(mark.title)}</title>" if mark.title else ""
        lines.append(f'<g class="{mark.role}"{attrs}>{title}{body}</g>')
    lines.append("</svg>")
    return "\n".join(lines) + "\n"


def _svg_part(part) -> str:
    if isinstance(part, Rect):
        dash = ' stroke-dasharray="4 3"' if part.dashed else ""
        return (f'<rect x="{part.x}" y="{part.y}" width="{part.w}" height="{part.h}" rx="{part.radius}" '
                f'fill="{part.fill}" stroke="{part.stroke}" stroke-width="{1 if part.dashed else 1.5}"{dash}/>')
    if isinstance(part, Text):
        weight = ' font-weight="bold"' if part.bold else ""
        if part.halo:
            weight += ' stroke="#FFFFFF" stroke-width="3" paint-order="stroke"'
        return (f'<text x="{part.x}" y="{part.y}" font-size="{part.size}" text-anchor="{part.anchor}" '
                f'fill="{part.colour}"{weight}>{xml_text(part.text)}</text>')
    d = "M" + " L".join(f"{x},{y}" for x, y in part.points)
    arrow = ' marker-end="url(#arrow)"' if part.arrow else ""
    return f'<path d="{d}" fill="none" stroke="#333333" stroke-width="1.2"{arrow}/>'


def png(drawing: Drawing, dpi: int = 144) -> bytes:
    """The same drawing rasterised by matplotlib (imported only here)."""
    import io

    from ..deps import require

    matplotlib = require("matplotlib", purpose="PNG figures")
    matplotlib.use("Agg")
    from matplotlib import patches
    from matplotlib import pyplot as plt

    figure = plt.figure(figsize=(drawing.width / 72, drawing.height / 72), dpi=dpi)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_xlim(0, drawing.width)
    axes.set_ylim(drawing.height, 0)
    axes.axis("off")
    for mark in drawing.marks:
        for part in mark.parts:
            if isinstance(part, Rect):
                style = f"round,pad=0,rounding_size={part.radius}" if part.radius else "square,pad=0"
                axes.add_patch(patches.FancyBboxPatch(
                    (part.x, part.y), part.w, part.h, boxstyle=style, linewidth=1 if part.dashed else 1.3,
                    facecolor="none" if part.fill == "none" else part.fill, edgecolor=part.stroke,
                    linestyle=(0, (4, 3)) if part.dashed else "solid"))
            elif isinstance(part, Text):
                axes.text(part.x, part.y, one_line(part.text), parse_math=False, fontsize=part.size, ha={"start": "left", "end": "right"}.get(part.anchor, "center"),
                          va="baseline", color=part.colour, fontweight="bold" if part.bold else "normal", family="DejaVu Sans",
                          zorder=3, bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5} if part.halo else None)
            else:
                xs, ys = zip(*part.points)
                axes.plot(xs, ys, color="#333333", linewidth=1.1, solid_capstyle="butt")
                if part.arrow and len(part.points) >= 2:
                    axes.annotate("", xy=part.points[-1], xytext=part.points[-2],
                                  arrowprops={"arrowstyle": "-|>", "color": "#333333", "lw": 1.1, "shrinkA": 0, "shrinkB": 0})
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()


def render(analysis: Analysis, options: Options = Options(), suffix: str = "svg",
           drawing: Drawing | None = None) -> str | bytes:
    """The figure as SVG text or PNG bytes (of `drawing` when given, laid out already)."""
    drawing = drawing or layout(analysis, options)
    if suffix == "png":
        return png(drawing)
    return svg(drawing)

FIGURE_BOXES = 100  # a report's figure: every layer when it takes no more boxes than this
LONG_SIDE = 2000  # `archcalc diagram` folds a figure until its long side fits this many px (the SVG's; a PNG has 2 per)


class Fitted(NamedTuple):
    """A figure folded to fit: the drawing, its depth (None: every layer) and the full figure's size when folded."""

    drawing: Drawing
    depth: int | None
    full_size: tuple[int, int] | None  # width, height of the unfolded figure; None when nothing was folded


def fold_to_fit(analysis: Analysis, options: Options = Options(), long_side: int = LONG_SIDE) -> Fitted:
    """The figure at the deepest depth whose long side is at most `long_side` (the shallowest when none
    is: depth 1, or the focused node's children); `options.depth` set: that depth, as asked."""
    full = layout(analysis, options)
    if options.depth is not None or max(full.width, full.height) <= long_side:
        return Fitted(full, options.depth, None)
    deepest = max(r.depth for r in analysis.rows)
    shallowest = find(analysis.network.root, options.focus).path.count(".") + 2 if options.focus else 1
    drawing, depth = full, None
    for depth in range(deepest - 1, shallowest - 1, -1):
        drawing = layout(analysis, replace(options, depth=depth))
        if max(drawing.width, drawing.height) <= long_side:
            break
    if depth is None:  # a focused layer or a block of layers: nothing to fold
        return Fitted(full, None, None)
    return Fitted(drawing, depth, (full.width, full.height))


def fold_note(fitted: Fitted, long_side: int = LONG_SIDE) -> str | None:
    """What stderr says of a figure folded to fit, and how to unfold it; None when nothing was folded."""
    if fitted.full_size is None:
        return None
    width, height = fitted.full_size
    drawn = fitted.drawing
    fits = "to fit" if max(drawn.width, drawn.height) <= long_side else "as far as it folds, short of"
    return (f"note: folded to depth {fitted.depth} {fits} {long_side:,} px ({drawn.width:,} x {drawn.height:,} px; "
            f"every layer: {width:,} x {height:,} px); --depth N draws deeper, --full every layer")


def figure_depth(analysis: Analysis, limit: int = FIGURE_BOXES) -> int | None:
    """None (every layer) when the full figure has at most `limit` boxes, else the deepest depth that has."""
    deepest = max(r.depth for r in analysis.rows)
    for depth in (None, *range(deepest - 1, 1, -1)):
        if sum(1 for m in layout(analysis, Options(depth=depth)).marks if m.role in ("box", "merge")) <= limit:
            return depth
    return 1
