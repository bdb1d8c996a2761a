"""Figures of the report, byte for byte reproducible: Agg, fixed fonts, no dates, fixed SVG ids."""
from __future__ import annotations

import io
from typing import Sequence

from .calc import Analysis
from .errors import SpecError

FORMATS = ("png", "svg")


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise SpecError('the report plots need matplotlib: pip install "archcalc[report]"') from None
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
        metadata = {"Date": None, "Creator": None} if fmt == "svg" else {"Software": None}
        fig.savefig(buffer, format=fmt, metadata=metadata, bbox_inches=None)
        out[fmt] = buffer.getvalue()
    plt.close(fig)
    return out


def zoo_scatter(points: Sequence[tuple[str, str, int, int, int]]) -> dict[str, bytes]:
    """(name, family, params, macs, activation bytes) per network: params against GMACs."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 6))
    families = sorted({p[1] for p in points})
    colors = plt.get_cmap("tab10")
    largest = max(p[4] for p in points) or 1
    for f, family in enumerate(families):
        mine = [p for p in points if p[1] == family]
        ax.scatter([p[3] / 1e9 for p in mine], [p[2] / 1e6 for p in mine],
                   s=[20 + 600 * p[4] / largest for p in mine], color=colors(f % 10), alpha=0.6,
                   edgecolors="black", linewidths=0.5, label=family)
        for p in mine:
            ax.annotate(p[0], (p[3] / 1e9, p[2] / 1e6), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("GMACs per image (conv + linear, at each network's input size)")
    ax.set_ylabel("parameters (millions)")
    ax.set_title("The zoo: parameters against MACs (bubble area = activation memory per image)")
    ax.grid(True, which="both", linewidth=0.3)
    ax.legend(fontsize=7, markerscale=0.5, loc="lower right")
    fig.tight_layout()
    return _save(fig, plt)


def layer_bars(analysis: Analysis) -> dict[str, bytes]:
    """Per-layer parameters and activation memory of the layers that hold either."""
    plt = _pyplot()
    rows = [r for r in analysis.leaves() if r.params or r.activations]
    labels = [r.path.removeprefix("features.").removesuffix(".conv") for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    positions = range(len(rows))
    top.bar(positions, [r.params / 1e6 for r in rows], color="tab:blue")
    top.set_ylabel("parameters (millions)")
    top.set_title(f"{analysis.network.name}: where the parameters and the activations are")
    bottom.bar(positions, [r.activations * analysis.bytes_per_value / 2**20 for r in rows], color="tab:orange")
    bottom.set_ylabel(f"activations (MiB per image, {analysis.dtype})")
    bottom.set_xticks(list(positions))
    bottom.set_xticklabels(labels, rotation=90, fontsize=7)
    for ax in (top, bottom):
        ax.grid(True, axis="y", linewidth=0.3)
    fig.tight_layout()
    return _save(fig, plt)
