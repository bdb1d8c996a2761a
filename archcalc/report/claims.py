"""Numeric claims of the lecture material, recomputed.

A claim (archcalc/report/claims.json) quotes its source and names what archcalc computes for it:
a network (a zoo name, or a small spec of the claims file), a quantity, optionally a layer,
an input size, and a comparison with a second quantity (`ratio`, `ratio_percent`, `saving`
in percent, `product` or `difference`). A claim with `"bound": "above"` says "more than" (a majority,
"most"). The claimed figure is data; the computed one never is. A claim quoted by several sources
in different words lists them as `wordings` (each an id, its sources, its quote and what differs),
so that each quote is judged once on what it says. `beside` computes the same figure another way
(another layout) to show next to the verdict. Sources are the lecture files' names; a claim from anywhere
else names its real source and is counted apart from the lecture texts. The file also lists the
accuracy figures the lectures quote (`accuracy`), which archcalc shows but cannot compute, and
every other numeric statement of the lectures (`not_computed`), with a check where a paper gives one,
and the paragraphs the report adds about zoo networks (`notes`, see Note): what the lectures say of
a network stays in this file, not in the code that writes the pages.
"""
from __future__ import annotations

import copy
import functools
import json
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Mapping

from .. import fmt
from ..core.calc import Analysis, analyze
from ..core.figures import Figure, Verdict, compare
from ..core.quantities import by_expect
from ..core.spec import (
    Layer,
    Network,
    Node,
    load,
    resolve,
    variant_names,
    zoo_document,
    zoo_file,
)
from ..errors import SpecError
from ..layers import REGISTRY, is_weight_layer

CLAIMS_FILE = Path(__file__).with_name("claims.json")
BYTES_PER_VALUE = 4  # fp32: the sources' convention for memory figures
QUANTITIES = (
    "params", "weights", "biases", "non_trainable", "macs", "flops", "activations", "activation_bytes",
    "weights_bytes", "output_shape", "output_shape_hwc", "output_size", "layers", "depth", "count",
    "receptive_field", "jump", "channels", "kernel", "stride", "padding",
)
SETTINGS = ("kernel", "stride", "padding")  # a layer field, over every layer of the type `of`
SHAPES = ("output_shape", "output_shape_hwc", "output_size", "receptive_field", "jump", "channels")
LECTURE_FILE = re.compile(r"\d{3}_[0-9a-f]{16}\.txt")  # a lecture text of ../shared/seeds


@dataclass(frozen=True)
class Ref:
    """What archcalc computes: a quantity of a network (or of one of its rows)."""

    network: str
    quantity: str
    layer: str | None = None
    input: tuple[int, ...] | None = None
    exclude: tuple[str, ...] = ()
    of: str | None = None  # count: the row type counted (a layer type or a block name); a setting: the layer type


@dataclass(frozen=True)
class Claim:
    id: str
    topic: str
    sources: tuple[str, ...]
    quote: str
    convention: str
    figure: Figure  # the claimed figure, as the source writes it
    ref: Ref
    versus: Ref | None = None
    compare: str | None = None  # ratio (ref / versus), ratio_percent (100 x ratio), saving (100 x (1 - ratio)), product
    divide_by: int = 1
    note: str = ""
    group: str | None = None  # the claim id its wordings share, when sources word it differently
    beside: tuple["Beside", ...] = ()
    authors: str = ""  # where the network's authors give this figure themselves: the lecture repeats it
    implied: bool = False  # a number the source implies (a product, a total) but does not write

    @property
    def in_lectures(self) -> bool:
        """Quoted from the lecture texts, not from a source they copy."""
        return all(LECTURE_FILE.fullmatch(s) for s in self.sources)

    value = property(lambda self: self.figure.value)
    unit = property(lambda self: self.figure.unit)
    significant = property(lambda self: self.figure.significant)
    bound = property(lambda self: self.figure.bound)
    wrong = property(lambda self: self.figure.wrong)
    approximate = property(lambda self: self.figure.approximate)


@dataclass(frozen=True)
class Beside:
    """The claimed figure computed another way (another layout), shown next to the verdict."""

    label: str
    ref: Ref
    versus: Ref | None = None
    compare: str | None = None
    divide_by: int = 1


@dataclass(frozen=True)
class Result:
    """A claim and its verdict; `computed` is the exact number (int, Fraction or list), None if unavailable.

    `error` is the message of a spec that cannot be built (a lecture's code that fails), `beside`
    the values of the claim's `beside` computations.
    """

    claim: Claim
    verdict: Verdict
    error: str | None = None
    beside: tuple[tuple[str, Any], ...] = ()

    computed = property(lambda self: self.verdict.exact)
    status = property(lambda self: self.verdict.status)
    ok = property(lambda self: self.verdict.ok)
    off_percent = property(lambda self: self.verdict.off_percent)


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
    check: str = ""  # what the paper behind the figure says, where it differs
    verdict: str = ""  # of the check: one of CHECKS


@dataclass(frozen=True)
class Note:
    """A paragraph the report adds about a zoo network: on its page (`network`), or on the zoo page under
    its family's table (`zoo_family`). `text` is Markdown of the claims file's own in which `{name}` stands
    for a figure of `values` (computed as a claim's `beside` is) or a link of `links` into claims.md."""

    text: str
    network: str | None = None
    zoo_family: str | None = None
    values: tuple[Beside, ...] = ()  # each named by its label
    links: tuple[tuple[str, str, str], ...] = ()  # (name, "topic" or "heading", the topic or heading of claims.md)


@dataclass(frozen=True)
class Unchecked:
    """A numeric statement of the lectures archcalc cannot compute (data, training, dates, timings)."""

    what: str
    quote: str
    sources: tuple[str, ...]
    check: str = ""  # a verdict from the papers, where one is possible
    verdict: str = ""  # of the check: one of CHECKS


CHECKS = {"holds": "hold", "wrong": "wrong", "imprecise": "imprecise", "": "not checkable"}  # verdict -> headline word


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
    found: list[Claim] = []
    for raw in document(path)["claims"]:
        shared = {k: v for k, v in raw.items() if k != "wordings"}
        found += [_claim({**shared, **wording, "group": raw["id"]}) for wording in raw["wordings"]] if "wordings" in raw \
            else [_claim(raw)]
    ids = [c.id for c in found]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise SpecError(f"{CLAIMS_FILE.name}: claim ids used twice: {twice}")
    return found


def accuracy(path: Path = CLAIMS_FILE) -> list[Accuracy]:
    return [Accuracy(raw["label"], tuple(raw.get("networks", ())), raw["quote"], tuple(raw["sources"]), raw["measure"],
                     raw.get("top1"), raw.get("top5"), raw.get("top5_error"), raw.get("check", ""), _checked(raw))
            for raw in document(path).get("accuracy", [])]


def unchecked(path: Path = CLAIMS_FILE) -> list[Unchecked]:
    return [Unchecked(raw["what"], raw["quote"], tuple(raw["sources"]), raw.get("check", ""), _checked(raw))
            for raw in document(path).get("not_computed", [])]


def _checked(raw: Mapping[str, Any]) -> str:
    verdict = raw.get("verdict", "")
    if verdict not in CHECKS:
        raise SpecError(f"{CLAIMS_FILE.name}: verdict {verdict!r} of {raw['quote'][:40]!r} is none of {', '.join(CHECKS)}")
    return verdict


def notes(path: Path = CLAIMS_FILE) -> list[Note]:
    return [_note(raw) for raw in document(path).get("notes", [])]


def _note(raw: Mapping[str, Any]) -> Note:
    if ("network" in raw) == ("zoo_family" in raw):
        raise SpecError(f"{CLAIMS_FILE.name}: a note names a 'network' (its page) or a 'zoo_family' (the zoo page), "
                        f"one of them: {raw.get('text', '')[:40]!r}")
    links = []
    for name, link in raw.get("links", {}).items():
        if not isinstance(link, dict) or len(link) != 1 or not {"topic", "heading"} >= link.keys():
            raise SpecError(f"{CLAIMS_FILE.name}: note link {name!r}: one 'topic' or 'heading' of claims.md, got {link}")
        [(kind, target)] = link.items()
        links.append((name, kind, target))
    return Note(raw["text"], raw.get("network"), raw.get("zoo_family"),
                tuple(_beside(name, value) for name, value in raw.get("values", {}).items()), tuple(links))


def _ref(raw: Mapping[str, Any]) -> Ref:
    if raw["quantity"] not in QUANTITIES:
        raise SpecError(f"{CLAIMS_FILE.name}: unknown quantity {raw['quantity']!r}")
    if (raw["quantity"] in ("count", *SETTINGS)) != ("of" in raw):
        raise SpecError(f"{CLAIMS_FILE.name}: 'of' goes with quantity 'count' or a setting ({', '.join(SETTINGS)}) "
                        f"and only with them ({raw.get('network')})")
    return Ref(raw["network"], raw["quantity"], raw.get("layer"),
               tuple(raw["input"]) if raw.get("input") else None, tuple(raw.get("exclude", ())), raw.get("of"))


def _claim(raw: dict) -> Claim:
    figure = Figure(raw["value"], raw.get("unit"), raw.get("significant"), raw.get("rounding", "nearest"),
                    raw.get("bound"), raw.get("wrong", False), raw.get("approximate", False))
    return Claim(
        id=raw["id"], topic=raw["topic"], sources=tuple(raw["sources"]), quote=raw["quote"],
        convention=raw["convention"], figure=figure, ref=_ref(raw),
        versus=_ref(raw["versus"]) if "versus" in raw else None, compare=raw.get("compare"),
        divide_by=raw.get("divide_by", 1), note=raw.get("note", ""), group=raw.get("group"),
        beside=tuple(_beside(b["label"], b) for b in raw.get("beside", ())),
        authors=raw.get("authors", ""), implied=raw.get("implied", False),
    )


def _beside(label: str, raw: Mapping[str, Any]) -> Beside:
    return Beside(label, _ref(raw), _ref(raw["versus"]) if "versus" in raw else None, raw.get("compare"),
                  raw.get("divide_by", 1))


def networks_of(claim: Claim) -> set[str]:
    """The zoo networks a claim is computed on: those it names, a layout of the claims file standing for the
    zoo network it extends (googlenet_paper for googlenet)."""
    names = {claim.ref.network, *([claim.versus.network] if claim.versus else [])}
    specs = local_specs()
    return {specs[n].get("extends", n) if n in specs else n for n in names}


# ---- computing -------------------------------------------------------------------------

def _extended(spec: dict) -> dict:
    """A zoo family document with the claims file's `params` (a layout the zoo does not hold)."""
    path = zoo_file(spec["extends"])
    if path is None:
        raise SpecError(f"{CLAIMS_FILE.name}: {spec['name']!r} extends {spec['extends']!r}, which is not in the zoo")
    base = copy.deepcopy(zoo_document(path))
    variant = (base.pop("variants", None) or {}).get(spec["extends"], {})
    base.update({k: v for k, v in variant.items() if k not in ("params", "expect")})
    base["params"] = {**base.get("params", {}), **variant.get("params", {}), **spec.get("params", {})}
    base.update(name=spec["name"], title=spec["title"], expect=[])
    return base


@functools.cache
def network(name: str) -> Network | None:
    specs = local_specs()
    if name in specs:
        spec = _extended(specs[name]) if "extends" in specs[name] else specs[name]
        return resolve(spec, name, f"{CLAIMS_FILE.name}#{name}")
    if zoo_file(name):
        return load(name)
    return None


@functools.cache
def analysis(name: str, input_shape: tuple[int, ...] | None) -> Analysis | None:
    if name not in local_specs() and zoo_file(name):
        return zoo_analysis(name, input_shape)
    net = network(name)
    return None if net is None else analyze(net, input_shape)


_ZOO_ANALYSES: dict[tuple[int, tuple[int, ...] | None], tuple[Network, Analysis]] = {}


def zoo_analysis(name: str, input_shape: tuple[int, ...] | None = None) -> Analysis:
    """A zoo network's analysis, shared by its own figures and the claims in `archcalc check --claims`; again when its
    file changes (`load` resolves each version of a zoo file once: the same Network while the file stays as it is)."""
    network = load(name)
    key = (id(network), input_shape)
    if key not in _ZOO_ANALYSES:  # the entry holds the network, so its id is not reused meanwhile
        _ZOO_ANALYSES[key] = (network, analyze(network, input_shape))
    return _ZOO_ANALYSES[key][1]


def biases(net: Network) -> dict[str, int]:
    """Bias values of every layer that has them, by path."""
    found: dict[str, int] = {}

    def walk(node: Node) -> None:
        if isinstance(node, Layer):
            if count := REGISTRY[node.type].biases(node.attrs):
                found[node.path] = count
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
        return int(is_weight_layer(node.type))
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
    if ref.quantity in SETTINGS:
        return _setting(result.network.root, ref)
    return _summed(result, ref)


def _setting(root: Node, ref: Ref) -> Any:
    """A field (kernel, stride, padding) of every layer of type `of` under `layer`: one number when all of them
    have it square and alike (3 for 3x3 everywhere), else the distinct values in order of appearance."""
    found: list[Any] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, Layer):
            if node.type == ref.of and _inside(node.path, ref):
                value = node.attrs[ref.quantity]
                value = value[0] if isinstance(value, tuple) and len(set(value)) == 1 else value
                found += [] if value in found else [value]
            continue
        stack.extend(reversed(node.children))
    return found[0] if len(found) == 1 and isinstance(found[0], int) else [list(v) if isinstance(v, tuple) else v for v in found]


def _shape(row: Any, what: str) -> Any:
    if what == "channels":
        return row.output_shape[0]
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
    """A quantity summed over the leaves under `layer` (all of them without one), less `exclude`: one of the
    lectures' split of the parameters, or the quantity an `expect` of that name is about
    (archcalc.core.quantities), in bytes at fp32."""
    rows = [r for r in result.leaves() if _inside(r.path, ref)]
    if ref.quantity in ("biases", "weights"):
        bias = biases(result.network)
        if ref.quantity == "biases":
            return sum(bias.get(r.path, 0) for r in rows)
        return sum(r.params - bias.get(r.path, 0) for r in rows if r.layer_type is not None and is_weight_layer(r.layer_type))
    quantity = by_expect()[ref.quantity]
    values = sum(getattr(r, quantity.bytes_of or quantity.key) for r in rows)
    return values * BYTES_PER_VALUE if quantity.bytes_of else values


def computed(claim: Claim | Beside) -> Any:
    value = quantity(claim.ref)
    if value is None or isinstance(value, list):
        return value
    if claim.versus is not None:
        other = quantity(claim.versus)
        if other is None:
            return None
        if claim.compare == "product":
            value = value * other
        elif claim.compare == "difference":
            value = value - other
        else:
            ratio = Fraction(value, other)
            ratios = {"ratio": ratio, "ratio_percent": 100 * ratio, "saving": 100 * (1 - ratio)}
            if claim.compare not in ratios:
                raise SpecError(f"{CLAIMS_FILE.name}: compare {claim.compare!r} is none of product, difference, "
                                f"{', '.join(ratios)}")
            value = ratios[claim.compare]
    return Fraction(value, claim.divide_by) if claim.divide_by != 1 else value


def judge(claim: Claim) -> Result:
    beside = tuple((b.label, computed(b)) for b in claim.beside)
    try:
        value = computed(claim)
    except SpecError as exc:  # the lecture's own code, written as a spec, does not build
        return Result(claim, compare(claim.figure, None), error=str(exc), beside=beside)
    return Result(claim, compare(claim.figure, value), beside=beside)


def results() -> list[Result]:
    return [judge(c) for c in claims()]


def describe(result: Result) -> str:
    """One line for `archcalc check --claims`, in the style of a spec's published figures."""
    c, v = result.claim, result.verdict
    claimed = fmt.shape(c.value) if isinstance(c.value, list) else f"{c.value}{' ' + c.unit if c.unit else ''}"
    computed = result.computed
    if isinstance(computed, list):
        computed = fmt.shape(computed)
    elif isinstance(computed, Fraction):
        computed = f"{float(computed):.4g}" if computed.denominator != 1 else f"{computed.numerator:,}"
    elif isinstance(computed, int):
        computed = f"{computed:,}"
    note = f"; {c.note}" if c.note and c.wrong else ""
    return f"{v.word:<11} claim {c.id}: claimed {claimed}, computed {computed}{_how(v)} [{', '.join(c.sources)}]{note}"


def _how(v) -> str:
    """How the computed number meets the claim, in words that are not a second verdict."""
    if v.figure.wrong:
        return ""  # the note says why
    if v.status == "rounds":
        return " (to the digits written)"
    if v.status == "rounds up":
        return " (rounded up to the digits written)"
    if v.status == "unavailable":
        return " (not computed)"
    if v.status in ("off", "truncates") and v.off_percent is not None:
        if v.status == "truncates" and not v.figure.approximate:
            return " (cut to the digits written)"
        side = "above" if v.off_percent > 0 else "below"
        return f" ({'a loose figure, ' if v.ok else ''}{abs(v.off_percent):.1f}% {side})"
    return ""
