"""Figures of the report, byte for byte reproducible: Agg, fixed fonts, no dates, fixed SVG ids."""
from __future__ import annotations

import io
import math
from typing import Sequence

from ..core.calc import Analysis, Row
from ..deps import require

FORMATS = ("png", "svg")
KIND_COLORS = {"input": "tab:olive", "conv": "tab:blue", "linear": "tab:red", "pool": "tab:gray", "other": "tab:purple"}
SHARE_LABEL = 2.5  # bars holding at least this percentage of the total are labelled with it
SAME_SPOT = 0.06  # networks closer than this (log10 units on both axes) share one label


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


# ---- the zoo: parameters against MACs ----------------------------------------------------

def _spots(points: Sequence[tuple[str, str, int, int, int]], radius) -> list[tuple[float, float, list[str], float]]:
    """Points that fall on the same spot of the log-log plot, with one label for all of them.

    Each spot carries the largest marker radius (points) of its networks, so labels clear the bubble.
    """
    spots: list[tuple[float, float, list[str], float]] = []
    for name, _, params, macs, activation_bytes in points:
        x, y = math.log10(macs), math.log10(params)
        for k, (sx, sy, names, r) in enumerate(spots):
            if abs(sx - x) < SAME_SPOT and abs(sy - y) < SAME_SPOT:
                names.append(name)
                spots[k] = (sx, sy, names, max(r, radius(activation_bytes)))
                break
        else:
            spots.append((x, y, [name], radius(activation_bytes)))
    return spots


DIRECTIONS = [(1, 0.3), (1, -1), (-1, 0.3), (-1, -1), (0, 1), (0, -1.6), (1, 1), (-1, 1.2),
              (0.5, 1.5), (-0.5, 1.5), (0.5, -1.8), (-0.5, -1.8), (1, -0.3), (-1, -0.3)]
NEAR = len(DIRECTIONS)  # labels further out than the first ring get a leader line


def _label_offsets(radius: float) -> list[tuple[float, float]]:
    """Candidate label positions around a bubble, nearest first (points, right of the bubble first)."""
    return [(dx * (radius + reach), dy * (radius + reach))
            for reach in (4, 12, 22, 34, 48, 64, 82, 102, 126, 154) for dx, dy in DIRECTIONS]


def _place_labels(fig, ax, spots, obstacles) -> None:
    """Greedy, deterministic: each label takes the first nearby place that hides no label nor bubble."""
    from matplotlib.text import Text

    renderer = fig.canvas.get_renderer()
    taken = list(obstacles)
    frame = ax.get_window_extent(renderer)
    def put(text: str, x: float, y: float, radius: float, i: int, dx: float, dy: float):
        ha = "left" if dx > 0 else "right" if dx < 0 else "center"
        leader = dict(arrowstyle="-", color="0.5", linewidth=0.5, shrinkA=0, shrinkB=radius) if i >= NEAR else None
        label = ax.annotate(text, (10**x, 10**y), xytext=(dx, dy), textcoords="offset points", fontsize=7,
                            ha=ha, va="center", arrowprops=leader)
        label.update_positions(renderer)
        return label, Text.get_window_extent(label, renderer).expanded(1.04, 1.15)  # the text, not its leader line

    for x, y, names, radius in sorted(spots, key=lambda s: (-s[1], s[0])):
        text, fallback = ", ".join(names), None
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


def zoo_scatter(points: Sequence[tuple[str, str, int, int, int]]) -> dict[str, bytes]:
    """(name, family, params, macs, activation bytes) per network: parameters against MACs, log-log."""
    from matplotlib.lines import Line2D
    from matplotlib.transforms import Bbox

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(12, 8))
    families = sorted({p[1] for p in points})
    colors = plt.get_cmap("tab10")
    scale = 900 / max(p[4] for p in points)  # marker area in points², proportional to activation memory

    def size(activation_bytes: float) -> float:
        return max(12.0, scale * activation_bytes)

    def radius(activation_bytes: float) -> float:
        return math.sqrt(size(activation_bytes)) / 2

    for f, family in enumerate(families):
        mine = [p for p in points if p[1] == family]
        ax.scatter([p[3] for p in mine], [p[2] for p in mine], s=[size(p[4]) for p in mine], color=colors(f % 10),
                   alpha=0.55, edgecolors="black", linewidths=0.6, zorder=3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(min(p[3] for p in points) / 3, max(p[3] for p in points) * 12)
    ax.set_ylim(min(p[2] for p in points) / 2.5, max(p[2] for p in points) * 8)
    ax.set_xlabel("MACs per image (conv + linear multiply-accumulates, at each network's input size)")
    ax.set_ylabel("parameters")
    ax.set_title("The zoo: parameters against MACs (bubble area = activation memory per image, fp32)")
    ax.grid(True, which="major", linewidth=0.4)
    ax.grid(True, which="minor", linewidth=0.2, alpha=0.5)
    fig.tight_layout()

    renderer = fig.canvas.get_renderer()
    to_display = ax.transData.transform
    markers = []
    for _, _, params, macs, activation_bytes in points:
        cx, cy = to_display((macs, params))
        r = radius(activation_bytes) * fig.dpi / 72
        markers.append(Bbox([[cx - r, cy - r], [cx + r, cy + r]]))
    kinds = [Line2D([], [], marker="o", linestyle="", markersize=7, markerfacecolor=colors(f % 10), alpha=0.7,
                    markeredgecolor="black", markeredgewidth=0.6, label=family) for f, family in enumerate(families)]
    family_legend = ax.legend(handles=kinds, title="family", fontsize=7, title_fontsize=8, loc="lower right")
    ax.add_artist(family_legend)
    sizes = [Line2D([], [], marker="o", linestyle="", markersize=math.sqrt(size(mib * 2**20)), markerfacecolor="white",
                    markeredgecolor="black", markeredgewidth=0.6, label=f"{mib:,} MiB") for mib in (10, 100, 1000)]
    size_legend = ax.legend(handles=sizes, title="activations", fontsize=7, title_fontsize=8, loc="upper left",
                            labelspacing=1.6, borderpad=1.0)
    markers += [legend.get_window_extent(renderer) for legend in (family_legend, size_legend)]
    _place_labels(fig, ax, _spots(points, radius), markers)
    return _save(fig, plt)


# ---- one network: where the parameters and the activations are ---------------------------

def _kind(row: Row) -> str:
    if row.label.startswith("conv"):
        return "conv"
    if row.label in ("linear", "input"):
        return row.label
    return "pool" if "pool" in row.label else "other"


def _shares(ax, values: list[float]) -> None:
    """Label the bars that hold a good share of the total with it."""
    total = sum(values)
    for i, value in enumerate(values):
        if 100 * value / total >= SHARE_LABEL:
            ax.annotate(f"{100 * value / total:.1f}%", (i, value), xytext=(0, 2), textcoords="offset points",
                        ha="center", va="bottom", fontsize=7)


def layer_bars(analysis: Analysis) -> dict[str, bytes]:
    """Per-layer parameters and activation memory of the layers that hold either."""
    from matplotlib.patches import Patch

    plt = _pyplot()
    rows = [r for r in analysis.leaves() if r.params or r.allocated]
    labels = [r.path.removeprefix("features.").removesuffix(".conv") for r in rows]
    colors = [KIND_COLORS[_kind(r)] for r in rows]
    params = [r.params / 1e6 for r in rows]
    memory = [r.allocated * analysis.bytes_per_value / 2**20 for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7.5), sharex=True)
    positions = list(range(len(rows)))

    top.bar(positions, params, color=colors)
    top.set_ylabel("parameters (millions)")
    _shares(top, params)
    bottom.bar(positions, memory, color=colors)
    bottom.set_ylabel(f"activations (MiB per image, {analysis.dtype})")
    _shares(bottom, memory)
    bottom.set_xticks(positions)
    bottom.set_xticklabels(labels, rotation=90, fontsize=7)

    linear = [i for i, r in enumerate(rows) if _kind(r) == "linear"]
    share_params = 100 * sum(params[i] for i in linear) / sum(params)
    share_memory = 100 * sum(memory[i] for i in linear) / sum(memory)
    top.set_title(f"{analysis.network.name}: where the parameters and the activations are "
                  f"(FC layers: {share_params:.1f}% of the parameters, {share_memory:.2f}% of the activations)", fontsize=9)
    for ax in (top, bottom):
        ax.grid(True, axis="y", linewidth=0.3)
        ax.set_axisbelow(True)
        ax.margins(y=0.12)
    kinds = sorted({_kind(r) for r in rows}, key=list(KIND_COLORS).index)
    top.legend(handles=[Patch(color=KIND_COLORS[k], label=k) for k in kinds], fontsize=7, loc="upper left")
    fig.tight_layout()
    return _save(fig, plt)
