"""The lecture's design tricks, computed on small generated specs (reports/tricks.md)."""
from __future__ import annotations

from fractions import Fraction

from .. import fmt
from ..core.calc import Analysis, analyze
from ..core.spec import resolve
from ..fmt import markdown_table
from ..layers import layer_type

TITLES = (
    "Stacked 3x3 convolutions instead of one large filter",
    "1x1 bottlenecks",
    "Depthwise separable convolutions",
    "Receptive field growth",
    "Parameter sharing",
    "Global average pooling instead of FC layers",
    "Output sizes of dilated and transposed convolutions",
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
        ("ResNet basic block on 64 channels, 56x56 (He et al., Fig. 5 left): 3x3 64->64, 3x3 64->64", [64, 56, 56],
         [conv(64, 3), conv(64, 3)]),
        ("... the bottleneck on 256 channels (Fig. 5 right): 1x1 256->64, 3x3 64->64, 1x1 64->256", [256, 56, 56],
         [conv(64, 1), conv(64, 3), conv(256, 1)]),
        ("Inception 5x5 branch, 28x28x256: 5x5 256->96", [256, 28, 28], [conv(96, 5)]),
        ("... as 1x1 256->64, 5x5 64->96", [256, 28, 28], [conv(64, 1), conv(96, 5)]),
        ("Inception 3x3 branch, 28x28x256: 3x3 256->192", [256, 28, 28], [conv(192, 3)]),
        ("... as 1x1 256->64, 3x3 64->192", [256, 28, 28], [conv(64, 1), conv(192, 3)]),
    ]
    rows, base = [], None
    for label, shape, layers in designs:
        a = net("bottleneck", shape, layers)
        base = a if not label.startswith("...") else base
        saving = ("", "") if base is None or a is base else (_pct(a.totals.params, base.totals.params), _pct(a.totals.macs, base.totals.macs))
        rows.append([label, f"{a.totals.params:,}", f"{a.totals.macs:,}", *saving])
    return (f"## {TITLES[1]}\n\n"
            "Reduce the channels with a 1x1 convolution before the expensive filter (no biases). He et al. compare their "
            "blocks this way (Fig. 5): the bottleneck works on 4x the channels (256) for about the cost of the basic block "
            "on 64, which is why ResNet-50/101/152 use it. The whole Inception "
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
        rows.append([label] + [r.rf.label() for r in a.leaves() if _is_conv(r.layer_type)])
    return (f"## {TITLES[3]}\n\n"
            "Receptive field (input pixels) after each of six stacked 3x3 convolutions: stride 1 adds 2 per layer, "
            "dilation 2^i doubles it each layer (Yu & Koltun) at full resolution, stride 2 doubles it while halving "
            "the resolution.\n\n"
            + _table(rows, ["Stack", *[f"after {i}" for i in range(1, 7)]]))


def sharing() -> str:
    a = net("alexnet_conv1", [3, 227, 227], [{"type": "conv2d", "out": 96, "kernel": 11, "stride": 4}])
    row = a.leaves()[-1]
    per_output = row.params // 96  # 11 x 11 x 3 weights and a bias
    rows = [["shared: one 11x11x3 filter (and bias) per output map", f"{row.params:,}", f"{per_output:,} x 96"],
            ["unshared: one filter (and bias) per output value", f"{row.allocated * per_output:,}",
             f"{per_output:,} x {row.allocated:,}"]]
    return (f"## {TITLES[4]}\n\n"
            f"AlexNet's conv1 (96 filters of 11x11x3, stride 4, 227x227 input, {fmt.shape(row.output_shape)} output, "
            "lecture 004): a convolution uses the same filter at every position; without sharing, each of the "
            f"{row.allocated:,} outputs would need its own.\n\n"
            + _table(rows, ["Design", "Params", "As"]))


def pooling_heads() -> str:
    designs: list[tuple[str, list[dict]]] = [
        ("FC on the flattened 7x7x1024 map", [{"type": "flatten"}, {"type": "linear", "out": 1000}]),
        ("GoogLeNet: global average pool, then FC 1024->1000", [{"type": "adaptive_avg_pool2d", "output": 1},
                                                                {"type": "flatten"}, {"type": "linear", "out": 1000}]),
        ("NiN: 1x1 convolution to 1000 maps, then global average pool", [{"type": "conv2d", "out": 1000, "kernel": 1},
                                                                        {"type": "adaptive_avg_pool2d", "output": 1}]),
    ]
    rows = []
    for label, layers in designs:
        a = net("head", [1024, 7, 7], layers)
        rows.append([label, f"{a.totals.params:,}", f"{a.totals.macs:,}", fmt.shape(a.output_shape)])
    return (f"## {TITLES[5]}\n\n"
            "The classifier on GoogLeNet's last feature map (1024 x 7 x 7). Averaging each map first (GoogLeNet, Szegedy "
            "et al. 2014) keeps one small FC layer; Network in Network (Lin et al. 2014) makes the last convolution give "
            "one map per class and averages it, with no FC layer at all.\n\n"
            + _table(rows, ["Head", "Params", "MACs", "Output"]))


def output_sizes() -> str:
    """The output-size formula of lecture 002, with dilation, and the transposed convolution that inverts a stride."""
    designs = [
        ("conv 3x3, stride 1, pad 1, dilation 1", 32, conv(1, 3), (32 + 2 * 1 - 1 * (3 - 1) - 1) // 1 + 1),
        ("conv 3x3, stride 1, pad 2, dilation 2", 32, conv(1, 3, dilation=2, padding=2), (32 + 2 * 2 - 2 * (3 - 1) - 1) // 1 + 1),
        ("conv 3x3, stride 2, pad 0, dilation 3", 32, conv(1, 3, stride=2, dilation=3, padding=0),
         (32 + 0 - 3 * (3 - 1) - 1) // 2 + 1),
        ("conv_transpose 4x4, stride 2, pad 1", 16, {"type": "conv_transpose2d", "out": 1, "kernel": 4, "stride": 2,
                                                     "padding": 1, "bias": False}, (16 - 1) * 2 - 2 * 1 + (4 - 1) + 1),
    ]
    rows = []
    for label, size, layer, formula in designs:
        a = net("size", [1, size, size], [layer])
        rows.append([label, f"{size}", f"{a.output_shape[-1]}", f"{formula}"])
    return (f"## {TITLES[6]}\n\n"
            "Lecture 002: L_out = floor((L_in + 2 pad - dil (kernel - 1) - 1) / stride + 1); the transposed convolution "
            "(`convtranspose`, which raises the resolution) gives (L_in - 1) stride - 2 pad + dil (kernel - 1) + 1. "
            "*archcalc* is the calculator's output size; *formula* is the formula evaluated here.\n\n"
            + _table(rows, ["Layer", "L_in", "archcalc", "formula"]))


def _is_conv(type_name: str | None) -> bool:
    found = None if type_name is None else layer_type(type_name)
    return found is not None and found.kind == "conv"


def page(inception_link: str = "claims.md") -> str:
    return "\n".join([
        "# Tricks, computed\n",
        "Companions to the lectures: every number below is computed by archcalc on a small spec built here.\n",
        stacks(), bottlenecks(inception_link), separable(), receptive_fields(), sharing(), pooling_heads(), output_sizes(),
    ])
