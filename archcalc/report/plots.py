"""Figures of the report, byte for byte reproducible: Agg, fixed fonts, no dates, fixed SVG ids."""
from __future__ import annotations

import io
import math
from typing import Sequence

from ..core.calc import Analysis, Row
from ..deps import require
from ..layers import layer_type

FORMATS = ("png", "svg")
KIND_COLORS = {"input": "tab:olive", "conv": "tab:blue", "linear": "tab:red", "pool": "tab:gray", "other": "tab:purple"}
SHARE_LABEL = 2.5  # bars holding at least this percentage of the total are labelled with it


def _pyplot():
    matplotlib = require("matplotlib", purpose="the report plots")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcdefaults()
    plt.rcParams.update({
        "svg.hashsalt": "archcalc", "svg.fonttype": "path", "font.family": "DejaVu Sans",
        "font.size": 9, "figure.dpi": 100, "savefig.dpi": 100, "path.simplify": False,
    })
    return plt


def _save(fig, plt) -> dict[str, bytes]:
    out = {}
    for fmt in FORMATS:
        buffer = io.BytesIO()
        # no date; the SVG names the matplotlib version that drew it (report.stale compares plots of the same version)
        metadata = {"Date": None} if fmt == "svg" else {"Software": None}
        fig.savefig(buffer, format=fmt, metadata=metadata, bbox_inches=None)
        out[fmt] = buffer.getvalue()
    plt.close(fig)
    return out


# ---- the zoo: parameters against MACs, accuracy against MACs -------------------------------

SMALLEST_MACS = 10**8  # networks below this (LeNet) would stretch the log axes over four decades: left out, and said so
Point = tuple[str, str, int, int, int, int]  # name, family, params, macs, activation bytes, input size (pixels)


DIRECTIONS = [(1, 0.3), (1, -1), (-1, 0.3), (-1, -1), (0, 1), (0, -1.6), (1, 1), (-1, 1.2),
              (0.5, 1.5), (-0.5, 1.5), (0.5, -1.8), (-0.5, -1.8), (1, -0.3), (-1, -0.3)]
NEAR = len(DIRECTIONS)  # labels further out than the first ring get a leader line


def _label_offsets(radius: float) -> list[tuple[float, float]]:
    """Candidate label positions around a marker, nearest first (points, right of the marker first)."""
    return [(dx * (radius + reach), dy * (radius + reach))
            for reach in (4, 12, 22, 34, 48, 64, 82, 102, 126, 154, 186) for dx, dy in DIRECTIONS]


def _place_labels(fig, ax, spots, obstacles) -> None:
    """Greedy, deterministic: each point's label takes the first nearby place that hides no label nor marker.

    `spots` are (x, y, label, radius in points) in data coordinates; every point gets its own label.
    """
    from matplotlib.text import Text

    renderer = fig.canvas.get_renderer()
    taken = list(obstacles)
    frame = ax.get_window_extent(renderer)

    def put(text: str, x: float, y: float, radius: float, i: int, dx: float, dy: float):
        ha = "left" if dx > 0 else "right" if dx < 0 else "center"
        leader = dict(arrowstyle="-", color="0.5", linewidth=0.5, shrinkA=0, shrinkB=radius) if i >= NEAR else None
        label = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=7,
                            ha=ha, va="center", arrowprops=leader)
        label.update_positions(renderer)
        return label, Text.get_window_extent(label, renderer).expanded(1.04, 1.15)  # the text, not its leader line

    for x, y, text, radius in sorted(spots, key=lambda s: (-s[1], s[0], s[2])):
        fallback = None
        for i, (dx, dy) in enumerate(_label_offsets(radius)):
            label, box = put(text, x, y, radius, i, dx, dy)
            if frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1):
                if not any(box.overlaps(other) for other in taken):
                    taken.append(box)
                    break
                fallback = fallback or (i, dx, dy)
            label.remove()
        else:  # no free place: the nearest one inside the axes, overlapping
            put(text, x, y, radius, *(fallback or (0, *_label_offsets(radius)[0])))


def _log_limits(values: Sequence[float], below: float, above: float) -> tuple[float, float]:
    low, high = math.log10(min(values)), math.log10(max(values))
    return 10 ** (low - below), 10 ** (high + above)


def _name(point: Point) -> str:
    return point[0] if point[5] == 224 else f"{point[0]} ({point[5]} px)"


def zoo_scatter(points: Sequence[Point]) -> dict[str, bytes]:
    """Parameters against MACs, log-log; bubble area = activation memory per image at each network's input size."""
    from matplotlib.lines import Line2D
    from matplotlib.transforms import Bbox

    plt = _pyplot()
    small = sorted(p[0] for p in points if p[3] < SMALLEST_MACS)
    points = [p for p in points if p[3] >= SMALLEST_MACS]
    fig, ax = plt.subplots(figsize=(13, 9))
    families = sorted({p[1] for p in points})
    colors = plt.get_cmap("tab10")
    scale = 1200 / max(p[4] for p in points)  # marker area in points², proportional to activation memory

    def size(activation_bytes: float) -> float:
        return max(10.0, scale * activation_bytes)

    def radius(activation_bytes: float) -> float:
        return math.sqrt(size(activation_bytes)) / 2

    for f, family in enumerate(families):
        mine = [p for p in points if p[1] == family]
        ax.scatter([p[3] for p in mine], [p[2] for p in mine], s=[size(p[4]) for p in mine], color=colors(f % 10),
                   alpha=0.5, edgecolors="black", linewidths=0.6, zorder=3)
        ax.scatter([p[3] for p in mine], [p[2] for p in mine], s=4, color="black", zorder=4)  # the point itself
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(*_log_limits([p[3] for p in points], 0.25, 0.35))
    ax.set_ylim(*_log_limits([p[2] for p in points], 0.3, 0.3))
    ax.set_xlabel("MACs per image (conv + linear multiply-accumulates, at each network's own input size)")
    ax.set_ylabel("trainable parameters")
    left_out = f"; not shown: {', '.join(small)} (below {SMALLEST_MACS:.0e} MACs)" if small else ""
    ax.set_title("The zoo: parameters against MACs. Bubble area = activation memory per image (fp32, sum of the layer "
                 f"outputs) at the network's input size,\nwhich grows with the input (224 to 600 px): the dot is the "
                 f"network{left_out}", fontsize=9)
    ax.grid(True, which="major", linewidth=0.4)
    ax.grid(True, which="minor", linewidth=0.2, alpha=0.5)
    fig.tight_layout()

    renderer = fig.canvas.get_renderer()
    to_display = ax.transData.transform
    markers = []
    for _, _, params, macs, activation_bytes, _ in points:
        cx, cy = to_display((macs, params))
        r = 3 * fig.dpi / 72  # labels may cover a bubble's edge, never the dot
        markers.append(Bbox([[cx - r, cy - r], [cx + r, cy + r]]))
    kinds = [Line2D([], [], marker="o", linestyle="", markersize=7, markerfacecolor=colors(f % 10), alpha=0.7,
                    markeredgecolor="black", markeredgewidth=0.6, label=family) for f, family in enumerate(families)]
    family_legend = ax.legend(handles=kinds, title="family", fontsize=7, title_fontsize=8, loc="lower right")
    ax.add_artist(family_legend)
    sizes = [Line2D([], [], marker="o", linestyle="", markersize=math.sqrt(size(mib * 2**20)), markerfacecolor="white",
                    markeredgecolor="black", markeredgewidth=0.6, label=f"{mib:,} MiB") for mib in (10, 100, 1000)]
    size_legend = ax.legend(handles=sizes, title="activations per image", fontsize=7, title_fontsize=8, loc="upper left",
                            labelspacing=1.8, borderpad=1.0)
    markers += [legend.get_window_extent(renderer) for legend in (family_legend, size_legend)]
    _place_labels(fig, ax, [(p[3], p[2], _name(p), 3.0) for p in points], markers)
    return _save(fig, plt)


def accuracy_scatter(points: Sequence[tuple[str, str, int, float]], protocol: str) -> dict[str, bytes]:
    """(name, family, macs, top-1 %) of one protocol: accuracy against GMACs, log x."""
    from matplotlib.transforms import Bbox

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(12, 7.5))
    families = sorted({p[1] for p in points})
    colors = plt.get_cmap("tab10")
    for f, family in enumerate(families):
        mine = sorted((p for p in points if p[1] == family), key=lambda p: p[2])
        ax.plot([p[2] / 1e9 for p in mine], [p[3] for p in mine], marker="o", markersize=5, linewidth=0.8,
                color=colors(f % 10), label=family, zorder=3)
    ax.set_xscale("log")
    ax.set_xlim(*_log_limits([p[2] / 1e9 for p in points], 0.15, 0.25))
    ax.set_ylim(min(p[3] for p in points) - 2.5, max(p[3] for p in points) + 2)
    ax.set_xlabel("GMACs per image (at each network's own input size)")
    ax.set_ylabel("top-1 accuracy, %")
    ax.set_title(f"Accuracy against compute: {protocol}", fontsize=9)
    ax.grid(True, which="major", linewidth=0.4)
    ax.grid(True, which="minor", linewidth=0.2, alpha=0.5)
    legend = ax.legend(title="family", fontsize=7, title_fontsize=8, loc="lower right")
    fig.tight_layout()
    renderer = fig.canvas.get_renderer()
    r = 3 * fig.dpi / 72
    markers = [Bbox([[x - r, y - r], [x + r, y + r]]) for x, y in (ax.transData.transform((p[2] / 1e9, p[3])) for p in points)]
    _place_labels(fig, ax, [(p[2] / 1e9, p[3], p[0], 3.0) for p in points], markers + [legend.get_window_extent(renderer)])
    return _save(fig, plt)


# ---- one network: where the parameters and the activations are ---------------------------

def _kind(row: Row) -> str:
    found = layer_type(row.layer_type) if row.layer_type else None
    if found is None:
        return "input" if row.kind == "input" else "other"
    return found.kind if found.kind in ("conv", "linear", "pool") else "other"


def _shares(ax, values: Sequence[float]) -> None:
    """Label the bars that hold a good share of the total with it."""
    total = sum(values)
    for i, value in enumerate(values):
        if 100 * value / total >= SHARE_LABEL:
            ax.annotate(f"{100 * value / total:.1f}%", (i, value), xytext=(0, 2), textcoords="offset points",
                        ha="center", va="bottom", fontsize=7)


def layer_bars(analysis: Analysis) -> dict[str, bytes]:
    """Per-layer parameters (log scale), MACs and activation memory of the layers that hold any."""
    from matplotlib.patches import Patch

    plt = _pyplot()
    rows = [r for r in analysis.leaves() if r.params or r.allocated or r.macs]
    labels = [r.path.removeprefix("features.").removesuffix(".conv") for r in rows]
    colors = [KIND_COLORS[_kind(r)] for r in rows]
    params = [r.params for r in rows]
    macs = [r.macs / 1e9 for r in rows]
    memory = [r.allocated * analysis.bytes_per_value / 2**20 for r in rows]
    fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(11, 10), sharex=True)
    positions = list(range(len(rows)))

    top.bar(positions, [p or float("nan") for p in params], color=colors)
    top.set_yscale("log")
    top.set_ylabel("parameters (log scale)")
    _shares(top, params)
    middle.bar(positions, macs, color=colors)
    middle.set_ylabel("GMACs per image")
    _shares(middle, macs)
    bottom.bar(positions, memory, color=colors)
    bottom.set_ylabel(f"activations (MiB per image, {analysis.dtype})")
    _shares(bottom, memory)
    bottom.set_xticks(positions)
    bottom.set_xticklabels(labels, rotation=90, fontsize=7)

    linear = [i for i, r in enumerate(rows) if _kind(r) == "linear"]
    conv = [i for i, r in enumerate(rows) if _kind(r) == "conv"]

    def share(values: Sequence[float], where: list[int]) -> float:
        return 100 * sum(values[i] for i in where) / sum(values)

    top.set_title(f"{analysis.network.name}: most parameters in the FC layers ({share(params, linear):.1f}%), most compute "
                  f"in the convolutions ({share(macs, conv):.1f}% of the MACs),\nactivations in the early convolutions "
                  f"(FC layers: {share(memory, linear):.2f}%); bars labelled with their share", fontsize=9)
    for ax in (top, middle, bottom):
        ax.grid(True, axis="y", linewidth=0.3)
        ax.set_axisbelow(True)
    for ax in (middle, bottom):
        ax.margins(y=0.12)
    top.set_ylim(1e3, max(params) * 6)
    kinds = sorted({_kind(r) for r in rows}, key=list(KIND_COLORS).index)
    top.legend(handles=[Patch(color=KIND_COLORS[k], label=k) for k in kinds], fontsize=7, loc="upper left")
    fig.tight_layout()
    return _save(fig, plt)
