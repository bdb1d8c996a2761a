"""Numeric claims of the lecture material, recomputed.

A claim (archcalc/report/claims.json) quotes its source and names what archcalc computes for it:
a network (a zoo name, or a small spec of the claims file), a quantity, optionally a layer,
an input size, and a comparison with a second quantity (`ratio`, `ratio_percent`, `saving`
in percent, or `product`). A claim with `"bound": "above"` says "more than" (a majority,
"most"). The claimed figure is data; the computed one never is. The file also lists the
accuracy figures the lectures quote (`accuracy`), which archcalc shows but cannot compute.
"""
from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, Mapping

from .. import fmt
from ..core.calc import Analysis, analyze
from ..core.spec import Layer, Network, Node, load, resolve, variant_names, zoo_index
from ..errors import SpecError

CLAIMS_FILE = Path(__file__).with_name("claims.json")
SCALES = {None: 1, "K": 10**3, "M": 10**6, "G": 10**9, "MB": 10**6, "MiB": 2**20, "%": 1, "x": 1}
BYTES_PER_VALUE = 4  # fp32: the sources' convention for memory figures
QUANTITIES = (
    "params", "weights", "biases", "non_trainable", "macs", "flops", "activations", "activation_bytes",
    "weights_bytes", "output_shape", "output_shape_hwc", "output_size", "layers", "depth", "count",
    "receptive_field", "jump",
)
SHAPES = ("output_shape", "output_shape_hwc", "output_size", "receptive_field", "jump")
WEIGHT_LAYERS = ("conv2d", "conv_transpose2d", "linear")


@dataclass(frozen=True)
class Ref:
    """What archcalc computes: a quantity of a network (or of one of its rows)."""

    network: str
    quantity: str
    layer: str | None = None
    input: tuple[int, ...] | None = None
    exclude: tuple[str, ...] = ()
    of: str | None = None  # count: the row type counted (a layer type or a block name)


@dataclass(frozen=True)
class Claim:
    id: str
    topic: str
    sources: tuple[str, ...]
    quote: str
    convention: str
    value: Any
    unit: str | None
    ref: Ref
    versus: Ref | None = None
    compare: str | None = None  # ratio (ref / versus), ratio_percent (100 x ratio), saving (100 x (1 - ratio)), product
    divide_by: int = 1
    significant: int | None = None  # "800K" for 802,816: written to 2 significant digits
    bound: str | None = None  # "above": the claim is "more than value" ("most" = above 50 %)
    wrong: bool = False  # the source's figure does not add up
    approximate: bool = False  # a loose figure: off by a fraction of a percent is what it says
    note: str = ""


@dataclass(frozen=True)
class Result:
    claim: Claim
    computed: Any  # exact: an int, a Fraction or a list; None when the network is not available
    verdict: str  # exact, rounds, truncates, holds, off, differs, unavailable
    off_percent: float | None = None

    @property
    def ok(self) -> bool:
        """A claim that does not add up is fine only when the claims file says it is wrong."""
        matches = self.verdict in ("exact", "rounds", "truncates", "holds")
        if self.verdict == "unavailable":
            return True
        return not matches if self.claim.wrong else matches or self.claim.approximate


@dataclass(frozen=True)
class Accuracy:
    """An accuracy or error rate a lecture quotes: shown next to the zoo, never computed."""

    label: str  # what the lecture names: "VGGNet", "ZFNet"
    networks: tuple[str, ...]  # zoo networks it is about (none for ZFNet)
    quote: str
    sources: tuple[str, ...]
    measure: str  # what the figure measures: data set, split, single network or a team's entry
    top1: float | None = None  # accuracy, percent
    top5: float | None = None
    top5_error: float | None = None


# ---- the claims file -------------------------------------------------------------------

@functools.cache
def document(path: Path = CLAIMS_FILE) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def local_specs(path: Path = CLAIMS_FILE) -> dict[str, dict]:
    """Network name -> the claims file's family document that defines it."""
    index = {}
    for spec in document(path)["specs"]:
        for name in variant_names(spec, path):
            index[name] = spec
    return index


def claims(path: Path = CLAIMS_FILE) -> list[Claim]:
    return [_claim(raw) for raw in document(path)["claims"]]


def accuracy(path: Path = CLAIMS_FILE) -> list[Accuracy]:
    return [Accuracy(raw["label"], tuple(raw.get("networks", ())), raw["quote"], tuple(raw["sources"]), raw["measure"],
                     raw.get("top1"), raw.get("top5"), raw.get("top5_error")) for raw in document(path).get("accuracy", [])]


def _ref(raw: Mapping[str, Any]) -> Ref:
    if raw["quantity"] not in QUANTITIES:
        raise SpecError(f"{CLAIMS_FILE.name}: unknown quantity {raw['quantity']!r}")
    if (raw["quantity"] == "count") != ("of" in raw):
        raise SpecError(f"{CLAIMS_FILE.name}: 'of' goes with quantity 'count' and only with it ({raw.get('network')})")
    return Ref(raw["network"], raw["quantity"], raw.get("layer"),
               tuple(raw["input"]) if raw.get("input") else None, tuple(raw.get("exclude", ())), raw.get("of"))


def _claim(raw: dict) -> Claim:
    return Claim(
        id=raw["id"], topic=raw["topic"], sources=tuple(raw["sources"]), quote=raw["quote"],
        convention=raw["convention"], value=raw["value"], unit=raw.get("unit"), ref=_ref(raw),
        versus=_ref(raw["versus"]) if "versus" in raw else None, compare=raw.get("compare"),
        divide_by=raw.get("divide_by", 1), significant=raw.get("significant"), bound=raw.get("bound"),
        wrong=raw.get("wrong", False), approximate=raw.get("approximate", False), note=raw.get("note", ""),
    )


# ---- computing -------------------------------------------------------------------------

@functools.cache
def network(name: str) -> Network | None:
    specs = local_specs()
    if name in specs:
        return resolve(specs[name], name, f"{CLAIMS_FILE.name}#{name}")
    if name in zoo_index():
        return load(name)
    return None


@functools.cache
def analysis(name: str, input_shape: tuple[int, ...] | None) -> Analysis | None:
    net = network(name)
    return None if net is None else analyze(net, input_shape)


def biases(net: Network) -> dict[str, int]:
    """Bias values of every weight layer, by path."""
    found: dict[str, int] = {}

    def walk(node: Node) -> None:
        if isinstance(node, Layer):
            if node.type in WEIGHT_LAYERS and node.attrs["bias"]:
                found[node.path] = node.attrs["out"]
            return
        for child in node.children:
            walk(child)

    walk(net.root)
    return found


def depth(node: Node) -> int:
    """Weight layers on the longest path from input to output: the depth papers quote.

    Branches that meet count their deepest one, so ResNet-50's projection shortcuts and
    GoogLeNet's parallel convolutions do not add to it (ResNet-50: 50, GoogLeNet: 22).
    """
    if isinstance(node, Layer):
        return int(node.type in WEIGHT_LAYERS)
    counts = [depth(child) for child in node.children]
    return sum(counts) if node.kind == "sequence" else max(counts, default=0)


def quantity(ref: Ref) -> Any:
    result = analysis(ref.network, ref.input)
    if result is None:
        return None
    if ref.quantity in SHAPES:
        return _shape(result.row(ref.layer) if ref.layer else result.rows[-1], ref.quantity)
    if ref.quantity == "depth":
        return depth(_node(result.network.root, ref.layer) if ref.layer else result.network.root)
    if ref.quantity == "count":
        return sum(1 for r in result.rows if r.label == ref.of and _inside(r.path, ref))
    return _summed(result, ref)


def _shape(row: Any, what: str) -> Any:
    if what == "receptive_field":
        return list(row.rf.size) if row.rf.size else None
    if what == "jump":
        h, w = row.rf.jump
        return int(h) if h == w and h.denominator == 1 else [h, w]
    shape = list(row.output_shape)
    if what == "output_size":
        return shape[1:]
    return shape[1:] + shape[:1] if what == "output_shape_hwc" and len(shape) == 3 else shape


def _node(root: Node, path: str) -> Node:
    stack = [root]
    while stack:
        node = stack.pop()
        if node.path == path:
            return node
        stack.extend(getattr(node, "children", ()))
    raise KeyError(path)


def _inside(path: str, ref: Ref) -> bool:
    if any(path == e or path.startswith(e + ".") for e in ref.exclude):
        return False
    return ref.layer is None or path == ref.layer or path.startswith(ref.layer + ".")


def _summed(result: Analysis, ref: Ref) -> int:
    """A quantity summed over the leaves under `layer` (all of them without one), less `exclude`."""
    bias = biases(result.network)
    rows = [r for r in result.leaves() if _inside(r.path, ref)]
    values = {
        "params": lambda r: r.params,
        "biases": lambda r: bias.get(r.path, 0),
        "weights": lambda r: r.params - bias.get(r.path, 0) if r.label in WEIGHT_LAYERS else 0,
        "non_trainable": lambda r: r.non_trainable,
        "macs": lambda r: r.macs,
        "flops": lambda r: 2 * r.macs,
        "activations": lambda r: r.allocated,
        "activation_bytes": lambda r: r.allocated * BYTES_PER_VALUE,
        "weights_bytes": lambda r: (r.params + r.non_trainable) * BYTES_PER_VALUE,
        "layers": lambda r: int(r.label in WEIGHT_LAYERS),
    }[ref.quantity]
    return sum(values(r) for r in rows)


def computed(claim: Claim) -> Any:
    value = quantity(claim.ref)
    if value is None or isinstance(value, list):
        return value
    if claim.versus is not None:
        other = quantity(claim.versus)
        if other is None:
            return None
        if claim.compare == "product":
            value = value * other
        else:
            ratio = Fraction(value, other)
            value = {"ratio": ratio, "ratio_percent": 100 * ratio, "saving": 100 * (1 - ratio)}[claim.compare]
    return Fraction(value, claim.divide_by) if claim.divide_by != 1 else value


def judge(claim: Claim) -> Result:
    value = computed(claim)
    if value is None:
        return Result(claim, None, "unavailable")
    if isinstance(value, list):
        return Result(claim, value, "exact" if value == claim.value else "differs")
    x = Fraction(value) / SCALES[claim.unit]
    claimed = Fraction(Decimal(str(claim.value)))
    if claim.bound == "above":
        return Result(claim, value, "holds" if x > claimed else "off", None if x > claimed else _off(claimed, x))
    if x == claimed:
        return Result(claim, value, "exact")
    step = Fraction(10) ** decimals(claim.value)
    if claim.significant:
        step = Fraction(10) ** (claim.significant - 1 - math.floor(math.log10(claim.value)))
    if math.floor(x * step + Fraction(1, 2)) == claimed * step:
        return Result(claim, value, "rounds")
    if math.floor(x * step) == claimed * step:
        return Result(claim, value, "truncates", _off(claimed, x))
    return Result(claim, value, "off", _off(claimed, x))


def _off(claimed: Fraction, x: Fraction) -> float | None:
    """(claimed - computed) / computed, in percent."""
    return float((claimed - x) / x * 100) if x else None


def decimals(value: Any) -> int:
    return max(0, -Decimal(str(value)).as_tuple().exponent)


def results() -> list[Result]:
    return [judge(c) for c in claims()]


def describe(result: Result) -> str:
    """One line for `archcalc check`, in the style of a spec's published figures."""
    c = result.claim
    matches = result.verdict in ("exact", "rounds", "truncates", "holds")
    label = ("MARKED WRONG BUT MATCHES" if matches else "known wrong") if c.wrong else "ok" if result.ok else "MISS"
    claimed = fmt.shape(c.value) if isinstance(c.value, list) else f"{c.value}{' ' + c.unit if c.unit else ''}"
    computed = result.computed
    if isinstance(computed, list):
        computed = fmt.shape(computed)
    elif isinstance(computed, Fraction):
        computed = f"{float(computed):.4g}" if computed.denominator != 1 else f"{computed.numerator:,}"
    elif isinstance(computed, int):
        computed = f"{computed:,}"
    note = f"; {c.note}" if c.note and c.wrong else ""
    return f"{label:>5}  claim {c.id}: claimed {claimed}, computed {computed} ({result.verdict}) [{', '.join(c.sources)}]{note}"
