"""The lecture's design tricks, computed on small generated specs (reports/tricks.md)."""
from __future__ import annotations

from fractions import Fraction

from ..core.calc import Analysis, analyze
from ..core.spec import resolve
from ..fmt import markdown_table

TITLES = (
    "Stacked 3x3 convolutions instead of one large filter",
    "1x1 bottlenecks",
    "Depthwise separable convolutions",
    "Receptive field growth",
)


def net(name: str, shape: list[int], layers: list[dict]) -> Analysis:
    return analyze(resolve({"name": name, "input": shape, "layers": layers}, name, f"tricks:{name}"))


def conv(out: int, kernel: int, **extra) -> dict:
    return {"type": "conv2d", "out": out, "kernel": kernel, "padding": extra.pop("padding", kernel // 2), "bias": False, **extra}


def _table(rows: list[list], headers: list[str]) -> str:
    return markdown_table(rows, headers, numeric=range(1, len(headers)))


def _pct(part: int, whole: int) -> str:
    return f"{float(100 * (1 - Fraction(part, whole))):.1f}%"


def stacks() -> str:
    rows = []
    for c in (64, 256):
        for large, n in ((5, 2), (7, 3)):
            one = net(f"one_{large}", [c, 56, 56], [conv(c, large)])
            stack = net(f"stack_{n}", [c, 56, 56], [conv(c, 3) for _ in range(n)])
            for label, a in ((f"one {large}x{large}", one), (f"{n} x 3x3", stack)):
                saved = ("", "") if a is one else (_pct(a.totals.params, one.totals.params), _pct(a.totals.macs, one.totals.macs))
                rows.append([label, f"{c:,}", f"{a.totals.params:,}", f"{a.totals.params // c**2:,} C²", f"{a.totals.macs:,}",
                             a.rows[-1].rf.label(), *saved])
    return (f"## {TITLES[0]}\n\n"
            "C channels in and out, 56x56 input, padding that keeps the size, no biases. The stack sees the same "
            "receptive field with fewer weights and MACs (and more non-linearities): 2 x 9 C² = 18 C² against 25 C², "
            "3 x 9 C² = 27 C² against 49 C², for any C.\n\n"
            + _table(rows, ["Design", "C", "Params", "Per C²", "MACs", "RF", "Params saved", "MACs saved"]))


def bottlenecks(inception_link: str) -> str:
    designs = [
        ("ResNet block, 56x56x256: one 3x3 256->256", [256, 56, 56], [conv(256, 3)]),
        ("... as 1x1 256->64, 3x3 64->64, 1x1 64->256", [256, 56, 56], [conv(64, 1), conv(64, 3), conv(256, 1)]),
        ("Inception 5x5 branch, 28x28x256: 5x5 256->96", [256, 28, 28], [conv(96, 5)]),
        ("... as 1x1 256->64, 5x5 64->96", [256, 28, 28], [conv(64, 1), conv(96, 5)]),
        ("Inception 3x3 branch, 28x28x256: 3x3 256->192", [256, 28, 28], [conv(192, 3)]),
        ("... as 1x1 256->64, 3x3 64->192", [256, 28, 28], [conv(64, 1), conv(192, 3)]),
    ]
    rows, base = [], None
    for label, shape, layers in designs:
        a = net("bottleneck", shape, layers)
        base = a if not label.startswith("...") else base
        saving = ("", "") if a is base else (_pct(a.totals.params, base.totals.params), _pct(a.totals.macs, base.totals.macs))
        rows.append([label, f"{a.totals.params:,}", f"{a.totals.macs:,}", *saving])
    return (f"## {TITLES[1]}\n\n"
            "Reduce the channels with a 1x1 convolution before the expensive filter (no biases). The whole Inception "
            f"module of lecture 000 (854M against 271M MACs) is in [the claims]({inception_link}).\n\n"
            + _table(rows, ["Design", "Params", "MACs", "Params saved", "MACs saved"]))


def separable() -> str:
    rows = []
    for cin, cout, size in ((32, 64, 112), (128, 128, 56), (512, 512, 14)):
        full = net("standard", [cin, size, size], [conv(cout, 3)])
        split = net("separable", [cin, size, size], [conv(cin, 3, groups=cin), conv(cout, 1)])
        ratio = Fraction(split.totals.macs, full.totals.macs)
        rows.append([f"{cin}->{cout}, {size}x{size}", f"{full.totals.params:,}", f"{split.totals.params:,}",
                     f"{full.totals.macs:,}", f"{split.totals.macs:,}", _pct(split.totals.macs, full.totals.macs),
                     f"{float(ratio):.4f}", f"{float(Fraction(1, cout) + Fraction(1, 9)):.4f}"])
    return (f"## {TITLES[2]}\n\n"
            "A 3x3 convolution against a depthwise 3x3 (groups = Cin) followed by a pointwise 1x1 (no biases). "
            "The cost ratio is 1/Cout + 1/9 (last column, by the formula; the one before it is computed).\n\n"
            + _table(rows, ["Cin->Cout, size", "Params 3x3", "Params separable", "MACs 3x3", "MACs separable",
                            "MACs saved", "MACs ratio", "1/Cout + 1/9"]))


def receptive_fields() -> str:
    designs = {
        "3x3, stride 1": [conv(8, 3) for _ in range(6)],
        "3x3, dilation 1, 2, 4, 8, 16, 32": [conv(8, 3, dilation=2**i, padding=2**i) for i in range(6)],
        "3x3, stride 2": [conv(8, 3, stride=2) for _ in range(6)],
    }
    rows = []
    for label, layers in designs.items():
        a = net("rf", [8, 512, 512], layers)
        rows.append([label] + [r.rf.label() for r in a.leaves() if r.layer_type == "conv2d"])
    return (f"## {TITLES[3]}\n\n"
            "Receptive field (input pixels) after each of six stacked 3x3 convolutions: stride 1 adds 2 per layer, "
            "dilation 2^i doubles it each layer (Yu & Koltun) at full resolution, stride 2 doubles it while halving "
            "the resolution.\n\n"
            + _table(rows, ["Stack", *[f"after {i}" for i in range(1, 7)]]))


def page(inception_link: str = "claims.md") -> str:
    return "\n".join([
        "# Tricks, computed\n",
        "Companions to the lectures: every number below is computed by archcalc on a small spec built here.\n",
        stacks(), bottlenecks(inception_link), separable(), receptive_fields(),
    ])
