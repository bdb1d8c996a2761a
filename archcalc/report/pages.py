"""`archcalc report`: Markdown pages and plots of the zoo, the lecture claims and the tricks.

Everything is generated from the specs and archcalc/report/claims.json, deterministically: the same
inputs give the same bytes, so `archcalc report --check` can tell a stale reports/ folder.
Tables are GitHub pipe tables with numbers right-aligned (archcalc/report/markdown.py).
"""
from __future__ import annotations

import math
import posixpath
import re
import tempfile
from collections import defaultdict
from fractions import Fraction
from pathlib import Path
from urllib.parse import quote, unquote

from .. import fmt
from ..core import quantities
from ..core.calc import Analysis, analyze
from ..core.figures import SCALES, Verdict, decimals, judge
from ..core.spec import Network, load, zoo_index
from ..errors import SpecError, one_line
from ..files import same_content, sigterm_unwinds
from ..fmt import anchor, cell, code, markdown_table
from ..render import rf_footnote, table_rows
from . import claims as claimslib
from . import diagram, html, site, tricks
from .folder import MANIFEST, leftovers, locked, read_manifest, write

FULL_TABLE_ROWS = 60  # networks with more layers than this are folded to depth 2
FOLD_DEPTH = 2
PLOTTED_NETWORK = "vgg16"


# ---- formatting ------------------------------------------------------------------------

def percent(value: float | None) -> str:
    """An accuracy as its source writes it: 59.3, 90.0, 71.592."""
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    text = f"{value:.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


# ---- network pages ---------------------------------------------------------------------

def fold_depth(analysis: Analysis) -> int | None:
    return None if len(analysis.leaves()) < FULL_TABLE_ROWS else FOLD_DEPTH


TOTAL_TEXT = {  # a total as a network's page writes it, by the unit of its quantity
    "count": lambda value: f"{value:,}",
    "bytes": lambda value: fmt.mib(value, unit=False),
    "shape": fmt.shape,
    "field": lambda value: "global" if value == math.inf else f"{value:,}",
}
DEPTH_LABEL = "Depth (weight layers on the longest path)"


def totals_table(analysis: Analysis) -> str:
    """The quantities with a `page_total` (archcalc.core.quantities) topic by topic, at the analysis' batch and
    dtype; the depth papers quote (claims.depth, not a counted quantity) first among the structure's; each
    labelled for this network (quantities.total_label: the non-trainable values named by what they are)."""
    declared = [(q.topic, quantities.total_label(q, q.page_total, analysis), TOTAL_TEXT[q.unit](quantities.figure(q, analysis)))
                for q in quantities.QUANTITIES.values() if q.page_total]
    own = [("structure", DEPTH_LABEL, f"{claimslib.depth(analysis.network.root):,}")]
    rows = [[label, text] for _, label, text in sorted(own + declared, key=lambda row: quantities.topic_rank(row[0]))]
    return markdown_table(rows, ["Quantity", "Value"], numeric=[1])


def training_section(analysis: Analysis) -> list[str]:
    """What a training step costs (archcalc.core.training) at the page's batch and dtype with AdamW: the
    quantities the training block declares with a `page_total`, written as the totals are."""
    from ..core import training

    inference = set(quantities.QUANTITIES)
    with training.counting(training.Setup(), analysis.dtype):
        counted = analysis.analyzed_again()
        rows = [[quantities.total_label(q, q.page_total, counted), TOTAL_TEXT[q.unit](quantities.figure(q, counted))]
                for q in quantities.by_topic(quantities.QUANTITIES.values()) if q.key not in inference and q.page_total]
    return ["## Training step\n",
            f"One step of AdamW at batch {analysis.batch}, {analysis.dtype} (`archcalc table {cell(analysis.network.name)} --train`; "
            "the largest batch a memory holds: `archcalc fit`); conventions in docs/conventions.md (Training).\n",
            markdown_table(rows, ["Quantity", "Value"], numeric=[1])]


def expect_table(analysis: Analysis) -> str:
    verdicts = [judge(analysis, expect) for expect in analysis.network.expect]
    if not verdicts:
        return "No published figures in the spec.\n"
    rows, notes = [], Footnotes("e")
    for v in verdicts:
        e = v.expect
        unit = f" {e.unit}" if e.unit else ""
        places = decimals(e.value) if e.unit else 0
        published = f"{fmt.value(e.value, places)}{unit}"
        exact = fmt.value(v.exact)
        if e.unit and v.exact is not None:
            exact += f" ({in_unit(v.exact, e.unit)})"
        rows.append([cell(e.what), cell(e.layer or ""), published, exact, _expect_verdict(v.verdict, published),
                     notes.mark(e.source + (f" ({e.note})" if e.note else ""))])
    return (markdown_table(rows, ["Figure", "Layer", "Published", "archcalc (exact)", "Verdict", "Source"], numeric=[2, 3])
            + notes.text())


def in_unit(exact, unit: str) -> str:
    """An exact number in a figure's unit, to 4 significant digits: 6,624,904 in M is 6.625 M."""
    x = float(Fraction(exact) / SCALES[unit])
    return f"{x:,.4g}{'' if unit in ('%', 'x') else ' '}{unit}"


def _expect_verdict(v: Verdict, published: str) -> str:
    if v.figure.wrong:
        return "**marked wrong but matches**" if v.matches else "**wrong in the source**"
    if not v.ok:
        return "**MISS**"
    return {"rounds": f"exact value rounds to {published}", "truncates": f"exact value cut to {published}"}.get(v.status, v.status)


class Footnotes:
    """Long source strings as numbered Markdown footnotes; one number per distinct text."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.texts: dict[str, int] = {}  # text -> its number

    def mark(self, text: str) -> str:
        if not text:
            return ""
        number = self.texts.setdefault(text, len(self.texts) + 1)
        return f"[^{self.prefix}{number}]"

    def text(self) -> str:
        return "".join(f"\n[^{self.prefix}{n}]: {cell(t)}" for t, n in self.texts.items()) + ("\n" if self.texts else "")


def claims_section(network: Network, results: list[claimslib.Result]) -> list[str]:
    """The lecture claims computed on this zoo network, with their numbers in claims.md."""
    if not _in_zoo(network):
        return []
    numbers = claim_numbers(results)
    mine = [r for r in lecture_results(results) if network.name in claimslib.networks_of(r.claim)]
    if not mine:
        return []
    rows = [[numbers[r.claim.id], cell(r.claim.quote), _where(r.claim), _claimed(r.claim), _computed(r), _verdict(r)]
            for r in mine]
    return ["## Lecture claims\n",
            "Claims of the lecture texts computed on this network or on a layout of it (the *Computed from* column of "
            "[claims.md](../claims.md), which gives their sources, conventions and notes under the same numbers; the "
            "verdict is the same there).\n",
            markdown_table(rows, ["#", "Claim", "Computed from", "Claimed", "archcalc", "Verdict"], numeric=[3, 4])]


def _in_zoo(network: Network) -> bool:
    return zoo_index().get(network.name) == Path(network.file)


def _regenerate(network: Network) -> str:
    if _in_zoo(network):
        return f"`archcalc report {network.name}`"
    return f"`archcalc report` on the spec file {code(Path(network.file).name)}"


def figure_section(network: Network) -> list[str]:
    """The architecture figure (diagrams/NAME.svg) and the link to the interactive page (html/NAME.html)."""
    name = quote(network.name)  # in a link: `)`, `<` or a space in a spec's name would end it
    return ["## Architecture\n",
            f"![Architecture of {cell(network.name)}](../diagrams/{name}.svg)\n",
            f"The same figure on [an interactive page](../html/{name}.html) (open it from a checkout: a foldable, "
            "sortable layer table and the working of each layer). Regenerate one with `archcalc diagram` or `archcalc html`.\n"]


def network_files(network: Network, analysis: Analysis) -> dict[str, bytes]:
    """The figure and the interactive page of one network."""
    from ..core import training

    depth = diagram.figure_depth(analysis)
    with training.counting(training.Setup(), analysis.dtype):  # the explorer shows a training step's figures too
        explorer = html.page(analysis.analyzed_again(), fold_depth(analysis), depth)
    return {f"diagrams/{network.name}.svg": diagram.svg(diagram.layout(analysis, diagram.Options(depth=depth))).encode(),
            f"html/{network.name}.html": explorer.encode()}


def reading_notes(network: Network, results: list[claimslib.Result]) -> list[str]:
    """What a reader needs to read this network's table: the spec's own notes (`meta.notes`, text of the
    spec's, escaped), then for a zoo network those of the claims file (`notes`, Markdown of archcalc's)."""
    notes = [fmt.prose(text) + "\n" for text in spec_notes(network)]
    if _in_zoo(network):
        notes += [text for note in claimslib.notes() if note.network == network.name
                  if (text := note_text(note, results, "../"))]
    return ["## Reading this page\n", *notes] if notes else []


def spec_notes(network: Network) -> list[str]:
    """`meta.notes` of a spec: a text, or a list of texts (one paragraph each)."""
    notes = network.meta.get("notes", [])
    notes = [notes] if isinstance(notes, str) else notes
    if not isinstance(notes, list) or not all(isinstance(text, str) for text in notes):
        raise SpecError(f"meta.notes: expected a text or a list of texts, got {one_line(repr(notes))[:80]}", file=network.file)
    return notes


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def note_text(note: claimslib.Note, results: list[claimslib.Result], up: str) -> str | None:
    """A note of the claims file with its figures computed and its links into claims.md made relative to the page
    (`up`: the way from the page's folder to the report's); None where a figure's network is not in the zoo."""
    figures = {value.label: claimslib.computed(value) for value in note.values}
    if any(figure is None for figure in figures.values()):
        return None
    filled = {name: _plain(figure) for name, figure in figures.items()}
    filled |= {name: up + (topic_link(results, target) if kind == "topic" else f"claims.md#{anchor(target)}")
               for name, kind, target in note.links}

    def fill(match: re.Match) -> str:
        if match.group(1) not in filled:
            raise SpecError(f"{claimslib.CLAIMS_FILE.name}: a note about {note.network or note.zoo_family} uses "
                            f"{match.group(0)}, which none of its values or links names")
        return filled[match.group(1)]

    return _PLACEHOLDER.sub(fill, note.text) + "\n"


def network_page(network: Network, results: list[claimslib.Result] | None = None, analysis: Analysis | None = None) -> str:
    analysis = analysis or analyze(network)
    results = results if results is not None else claimslib.results()
    depth = fold_depth(analysis)
    headers = ["Layer", "Type", "Output", *(q.header for q in quantities.layer_columns() if q.header), "RF"]
    rows = [[cell(r[0]), cell(r[1]), r[2], *(f"{n:,}" for n in r[3:-1]), r[-1]] for r in table_rows(analysis, depth, "torchvision")]
    layers = markdown_table(rows, headers, numeric=range(2, len(headers)))
    folded = (f"{len(analysis.leaves()):,} layers, folded to depth {depth}: a row of a block carries the totals of "
              "what it holds." if depth is not None else "Every layer.")
    parts = [
        f"# {cell(network.name)}: {cell(network.title)}\n",
        f"Family {code(network.family)} ({code(Path(network.file).name)}), input {fmt.shape(analysis.input_shape)}, "
        f"batch 1, fp32. Regenerate with {_regenerate(network)}; conventions in docs/conventions.md.\n",
        "## Totals\n", totals_table(analysis),
        *training_section(analysis),
        "## Published figures\n", expect_table(analysis),
        *claims_section(network, results),
        *figure_section(network),
        *reading_notes(network, results),
        "## Layers\n",
        f"{folded} Output is C x H x W; Activations are values per image (the layer's output when it allocates one; "
        "x 4 bytes in fp32); RF is the receptive field in input pixels.\n",
        layers,
    ]
    footnote = rf_footnote(analysis, depth)
    if footnote:
        parts.append(footnote + ".\n")
    dropping = [n for n in analysis.warnings if n.drops_input]
    if dropping:
        parts += ["## Warnings\n", "".join(f"- {code(n.path)}: {cell(n.message)}\n" for n in dropping)]
    return "\n".join(parts)


# ---- the zoo -----------------------------------------------------------------------------

ZOO_HEADERS = ["Network", "Year", "Input", "Depth", "Weight layers", "Params", "MACs", "Weights fp32 (MiB)",
               "Activations fp32 (MiB/image)", "torchvision top-1 %", "torchvision top-5 %", "Published top-1 %",
               "Published top-5 %", "Protocol of the published figure"]
TORCHVISION_PROTOCOL = ("ImageNet-1K validation, one network, one 224 centre crop (EfficientNet: the crop of its own input "
                        "size), as torchvision's weights publish them (`_metrics` acc@1/acc@5)")


def building_block(a: Analysis) -> bool:
    """A module shown on its own (the lecture's Inception modules), not a network of the zoo."""
    return bool(a.network.meta.get("building_block"))


def accuracies(meta) -> tuple[tuple, tuple]:
    """((top-1, top-5) by torchvision's protocol, (top-1, top-5, source) by another: the paper's or Keras')."""
    source = meta.get("accuracy_source", "")
    torchvision = source.startswith("torchvision")
    ours = (meta.get("top1"), meta.get("top5")) if torchvision else (None, None)
    if "paper_top1" in meta:
        other = (meta["paper_top1"], meta.get("paper_top5"), meta["paper_accuracy_source"])
    elif not torchvision and meta.get("top1") is not None:
        other = (meta["top1"], meta.get("top5"), source)
    else:
        other = (None, None, "")
    return ours, other


def zoo_row(a: Analysis, notes: Footnotes) -> list[str]:
    t = a.totals
    (top1, top5), (paper1, paper5, source) = accuracies(a.network.meta)
    return [f"[{a.network.name}](networks/{a.network.name}.md)", str(_year(a) or ""), fmt.shape(a.input_shape),
            f"{claimslib.depth(a.network.root):,}", f"{t.weight_layers:,}", fmt.scaled(t.params, "M"), fmt.scaled(t.macs, "G"),
            fmt.mib(a.weights_bytes, unit=False), fmt.mib(a.activation_bytes, unit=False), percent(top1), percent(top5),
            percent(paper1), percent(paper5), notes.mark(source)]


def families(analyses: dict[str, Analysis]) -> dict[str, list[Analysis]]:
    """Analyses by family, the families in order of their first year."""
    grouped: dict[str, list[Analysis]] = defaultdict(list)
    for a in analyses.values():
        grouped[a.network.family].append(a)
    order = sorted(grouped, key=lambda f: (min(_year(a) or 9999 for a in grouped[f]), f))
    return {family: grouped[family] for family in order}


def networks(analyses: dict[str, Analysis]) -> dict[str, Analysis]:
    return {n: a for n, a in analyses.items() if not building_block(a)}


def zoo_page(analyses: dict[str, Analysis], quoted: list[claimslib.Accuracy], results: list[claimslib.Result]) -> str:
    notes = Footnotes("a")
    parts = ["# The zoo\n",
             "One row per network, at its own input size, batch 1, fp32, grouped by family in order of their year. "
             "*Depth* counts the weight layers (conv, linear) on the longest path from input to output, as papers count "
             "them (ResNet-50: 50, GoogLeNet: 22); *Weight layers* counts all of them, parallel branches and projection "
             "shortcuts included. *Params* (trainable) and *MACs* (the multiply-accumulates of convolutions and linear "
             "layers, torchvision's `_ops`; FLOPs = 2 x MACs) are rounded to 3-4 significant digits here; the network pages "
             "and `archcalc table --json` give them exactly. Weights include BN running statistics. Activations are the "
             "cs231n sum of the layer outputs and the input.\n",
             "Accuracies are ImageNet top-1/top-5 in percent: *torchvision* is "
             f"{TORCHVISION_PROTOCOL}; *Published* is the paper's own figure (or Keras' for its model), with its protocol in "
             "the footnote. That column mixes protocols (AlexNet's paper: 10 crops; VGG's: dense evaluation at a single "
             "scale of 256; Keras': one centre crop): compare a figure only with one of the same footnote, and none of "
             "them with torchvision's. The figures the lectures quote are "
             f"[below](#{anchor(QUOTED_HEADING)}); the lecture's Inception modules are "
             f"[building blocks](#{anchor(BLOCKS_HEADING)}), not networks.\n"]
    numeric = [1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    for family, members in families(networks(analyses)).items():
        parts += [f"## {family}\n", markdown_table([zoo_row(a, notes) for a in members], ZOO_HEADERS, numeric=numeric)]
        parts += [text for note in claimslib.notes() if note.zoo_family == family if (text := note_text(note, results, ""))]
    parts += [blocks_section(analyses), quoted_section(quoted, set(networks(analyses)))]
    return "\n".join(parts) + notes.text()


BLOCKS_HEADING = "Building blocks"


def blocks_section(analyses: dict[str, Analysis]) -> str:
    rows = [[f"[{a.network.name}](networks/{a.network.name}.md)", cell(a.network.title), fmt.shape(a.input_shape),
             f"{a.totals.params:,}", f"{a.totals.macs:,}", fmt.shape(a.output_shape)]
            for a in analyses.values() if building_block(a)]
    return (f"## {BLOCKS_HEADING}\n\n"
            "Modules of the lectures computed on their own (not networks: no accuracy, not in the plots).\n\n"
            + markdown_table(rows, ["Module", "What", "Input", "Params", "MACs", "Output"], numeric=[3, 4]))


QUOTED_HEADING = "Accuracy figures the lectures quote"


def quoted_section(quoted: list[claimslib.Accuracy], names: set[str]) -> str:
    rows = []
    for q in quoted:
        links = ", ".join(f"[{n}](networks/{n}.md)" for n in q.networks if n in names)
        rows.append([cell(q.label), links, percent(q.top1), percent(q.top5), percent(q.top5_error), cell(q.measure),
                     cell(q.quote), cell(", ".join(q.sources)), claimslib.CHECKS[q.verdict], cell(q.check)])
    return (f"## {QUOTED_HEADING}\n\n"
            "As the lecture texts write them (`archcalc/report/claims.json`, `accuracy`), with the verdict of the papers "
            "(*Verdict*: hold, wrong, imprecise, or not checkable) and what they say (*Check*). Competition results are a team's entry on the test set (often an ensemble of "
            "networks), not one network on the validation set, so they do not compare with the columns above.\n\n"
            + markdown_table(rows, ["Network", "Zoo", "Top-1 %", "Top-5 %", "Top-5 error %", "Measure", "Quote", "Source",
                                    "Verdict", "Check"], numeric=[2, 3, 4]))


def _year(a: Analysis) -> int | None:
    year = a.network.meta.get("year")
    return year if isinstance(year, int) else None


# ---- claims ------------------------------------------------------------------------------

def topics(results: list[claimslib.Result]) -> dict[str, list[claimslib.Result]]:
    grouped: dict[str, list[claimslib.Result]] = defaultdict(list)
    for r in results:
        grouped[r.claim.topic].append(r)
    return dict(grouped)


def topic_heading(number: int, topic: str) -> str:
    return f"{number}. {topic}"


def topic_link(results: list[claimslib.Result], topic: str) -> str:
    numbered = {name: t for t, name in enumerate(topics([r for r in results if r.claim.in_lectures]), start=1)}
    return f"claims.md#{anchor(topic_heading(numbered[topic], topic))}" if topic in numbered else "claims.md"


def claim_numbers(results: list[claimslib.Result]) -> dict[str, str]:
    """Claim id -> its row number in claims.md: topic.row; the claims from outside the lectures are X.row."""
    lectures = topics([r for r in results if r.claim.in_lectures])
    numbers = {r.claim.id: f"{t}.{i}" for t, rs in enumerate(lectures.values(), start=1) for i, r in enumerate(rs, start=1)}
    outside = [r for r in results if not r.claim.in_lectures]
    return numbers | {r.claim.id: f"X.{i}" for i, r in enumerate(outside, start=1)}


def _unit(c: claimslib.Claim) -> str:
    return f" {c.unit}" if c.unit else ""


def _claimed(c: claimslib.Claim) -> str:
    if isinstance(c.value, list):
        return fmt.shape(c.value)
    text = f"{fmt.value(c.value) if isinstance(c.value, int) else c.value}{_unit(c)}"
    return f"over {text}" if c.bound == "above" else text


def _in_unit(r: claimslib.Result) -> str:
    c = r.claim
    return in_unit(r.computed, c.unit)


def _computed(r: claimslib.Result) -> str:
    if r.error is not None:
        return "does not build"
    if r.computed is None:
        return "network not in the zoo"
    if isinstance(r.computed, list):
        return fmt.shape(r.computed)
    exact = fmt.value(r.computed, 4)
    if r.claim.unit in ("%", "x"):
        return _in_unit(r)
    if r.claim.unit:
        return f"{exact} ({_in_unit(r)})"
    return exact


def _plain(value) -> str:
    if isinstance(value, list):
        return fmt.shape(value)
    if isinstance(value, Fraction) and value.denominator != 1:
        return f"{float(value):,.4g}"
    return fmt.value(int(value))


def _counted(c: claimslib.Claim) -> bool:
    """A count or a small whole number, where "3, not 2" says more than a percentage."""
    return c.unit in (None, "x") and isinstance(c.value, int)


def _verdict(r: claimslib.Result) -> str:
    """The one verdict of a claim, the same on every page that shows it."""
    c = r.claim
    if c.authors:
        return f"**the authors' own figure**; the architecture gives {_with_unit(r.computed, c.unit, exact=False)}; see the note"
    if r.error is not None:
        text = "the code as printed does not build"
    elif r.status == "rounds up":
        text = "the exact value, rounded up to the digits written, is the claim"
    elif r.status == "truncates" and r.verdict.matches:
        text = "the exact value, cut to the digits written, is the claim"
    elif r.status == "rounds":
        digits = f" to {c.significant} significant digit{'s' if c.significant > 1 else ''}" if c.significant else ""
        text = f"the exact value, rounded{digits}, is the claim"
    elif r.status in ("off", "truncates") and (_counted(c) or r.off_percent is None):
        text = f"{_plain(r.computed)}{_unit(c)}, not {_claimed(c)}"
    elif r.status in ("off", "truncates"):
        text = f"off by {r.off_percent:+.1f}%"
        text += " (cut, not rounded)" if r.status == "truncates" else " (a loose figure)" if c.approximate else ""
    elif r.status == "differs":
        text = f"{fmt.shape(r.computed)}, not {_claimed(c)}"
    else:
        text = {"exact": "exact", "holds": "holds", "unavailable": "not computed"}[r.status]
    return f"**wrong in the source**: {text}; see the note" if c.wrong else text


def _beside(r: claimslib.Result) -> str:
    return "; ".join(f"{label}: {_with_unit(value, r.claim.unit)}" for label, value in r.beside if value is not None)


def _with_unit(value, unit: str | None, exact: bool = True) -> str:
    if isinstance(value, list) or not unit:
        return _plain(value)
    if unit in ("%", "x") or not exact:
        return in_unit(value, unit)
    return f"{_plain(value)} ({in_unit(value, unit)})"


def _where(c: claimslib.Claim) -> str:
    ref = f"`{c.ref.network}`" + (f" `{c.ref.layer}`" if c.ref.layer else "")
    if c.ref.input:
        ref += f" at {fmt.shape(c.ref.input)}"
    if c.versus is not None:
        other = f"`{c.versus.network}`" + (f" `{c.versus.layer}`" if c.versus.layer else "")
        ref += {"product": " x ", "saving": " vs "}.get(c.compare or "", " / ") + other
    if c.divide_by != 1:
        ref += f" / {c.divide_by:,}"
    return ref


SUMMARY = {"exact": "exact", "rounds": "rounds to the claim", "rounds up": "rounds up to the claim",
           "cut": "cut to the claim", "holds": "holds", "off": "off", "truncates": "off", "differs": "differs",
           "unavailable": "not computed"}
WRONG, AUTHORS = "errors of the lectures", "the authors' own figures they repeat"


def lecture_results(results: list[claimslib.Result]) -> list[claimslib.Result]:
    return [r for r in results if r.claim.in_lectures]


def headline(results: list[claimslib.Result], implied: bool = False) -> dict[str, int]:
    """Counts of the lecture claims the texts write (`implied`: of those they only imply) by verdict, the errors of the
    lectures and the authors' own figures apart, from the results themselves."""
    counts: dict[str, int] = defaultdict(int)
    for r in lecture_results(results):
        if r.claim.implied == implied:
            status = "cut" if r.status == "truncates" and r.verdict.matches else r.status
            counts[AUTHORS if r.claim.authors else WRONG if r.claim.wrong else SUMMARY[status]] += 1
    return {k: counts[k] for k in (*dict.fromkeys(SUMMARY.values()), WRONG, AUTHORS) if counts[k]}


def statements(unchecked: list[claimslib.Unchecked], quoted: list[claimslib.Accuracy]) -> dict[str, int]:
    """Counts of the other numeric statements (not computed, accuracies) by the verdict of their check."""
    counts: dict[str, int] = defaultdict(int)
    for verdict in [u.verdict for u in unchecked] + [q.verdict for q in quoted]:
        counts[claimslib.CHECKS[verdict]] += 1
    return {word: counts[word] for word in claimslib.CHECKS.values() if counts[word]}


def _listed(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in counts.items())


def headline_text(results: list[claimslib.Result], unchecked: list[claimslib.Unchecked] | None = None,
                  quoted: list[claimslib.Accuracy] | None = None) -> str:
    """What is counted, in one sentence: the computed claims the texts write, those they imply, the other statements."""
    written, implied = headline(results), headline(results, implied=True)
    other = statements(claimslib.unchecked() if unchecked is None else unchecked,
                       claimslib.accuracy() if quoted is None else quoted)
    return (f"{sum(written.values()) + sum(implied.values())} computed claims of the lecture texts: "
            f"{sum(written.values())} figures they write ({_listed(written)}) and {sum(implied.values())} numbers they "
            f"imply but do not write ({_listed(implied)}); besides, {sum(other.values())} other numeric statements "
            f"checked against the papers ({_listed(other)})")


def _claim_rows(rs: list[claimslib.Result], numbers: dict[str, str]) -> list[list[str]]:
    return [[numbers[r.claim.id], cell(r.claim.quote), cell(", ".join(r.claim.sources)), cell(r.claim.convention),
             _where(r.claim), _claimed(r.claim), _computed(r), _verdict(r)] for r in rs]


CLAIM_HEADERS = ["#", "Claim", "Source", "Convention", "Computed from", "Claimed", "archcalc", "Verdict"]


def _sentence(text: str) -> str:
    """A note's part as a sentence of its own: a capital first, a full stop last."""
    text = text[:1].upper() + text[1:]
    return text if text.endswith(".") else text + "."


def _notes(rs: list[claimslib.Result], numbers: dict[str, str]) -> str:
    notes = []
    for r in rs:
        parts = (f"The authors' figure: {r.claim.authors}" if r.claim.authors else "", r.claim.note,
                 f"Computed beside it: {_beside(r)}" if _beside(r) else "")
        text = " ".join(_sentence(t) for t in parts if t)
        if text:
            notes.append(f"- **{numbers[r.claim.id]}** {cell(text)}\n")
    return "Notes:\n\n" + "".join(notes) if notes else ""


def wordings_section(results: list[claimslib.Result], numbers: dict[str, str]) -> str:
    groups: dict[str, list[claimslib.Result]] = defaultdict(list)
    for r in lecture_results(results):
        if r.claim.group:
            groups[r.claim.group].append(r)
    rows = [[numbers[r.claim.id], cell(", ".join(r.claim.sources)), cell(r.claim.quote), cell(r.claim.convention), _claimed(r.claim),
             _computed(r), _verdict(r)] for rs in groups.values() for r in rs]
    return ("## One claim, several wordings\n\n"
            "Where the sources say the same thing in different words, each wording is judged on what it says (one row per "
            "quote and source).\n\n"
            + markdown_table(rows, ["#", "Source", "Wording", "Read as", "Claimed", "archcalc", "Verdict"], numeric=[4, 5]))


LONG_CELL = 200  # characters: a longer reason goes to a footnote


def wrong_section(results: list[claimslib.Result], numbers: dict[str, str]) -> str:
    notes = Footnotes("w")

    def why(text: str) -> str:
        return cell(text) if len(text) <= LONG_CELL else f"{cell(text[:LONG_CELL].rsplit(' ', 1)[0])} ... {notes.mark(text)}"

    def rows(authors: bool) -> list[list[str]]:
        return [[numbers[r.claim.id], cell(r.claim.quote), cell(", ".join(r.claim.sources)), _claimed(r.claim), _computed(r),
                 why(r.claim.authors if authors else r.claim.note)]
                for r in lecture_results(results) if r.claim.wrong and bool(r.claim.authors) == authors]

    headers = ["#", "Claim", "Source", "Claimed", "Correct (archcalc)", "Why"]
    return ("## Wrong in the source\n\n"
            "Figures of the lecture texts that do not add up or say more than the network does, with the number archcalc "
            "computes instead and why. They are marked in `archcalc/report/claims.json` (`wrong`), so they do not fail "
            "`archcalc check --claims`; a figure marked wrong that starts to match would.\n\n"
            + markdown_table(rows(False), headers, numeric=[3, 4])
            + "\nThe authors' own figures: round figures the network's authors give in their papers, which the lectures "
            "repeat. They do not match the architecture either, but the error is not the lectures' (*Why* names the "
            "paper).\n\n"
            + markdown_table(rows(True), ["#", "Claim", "Source", "Claimed", "The architecture (archcalc)", "The authors' source"],
                             numeric=[3, 4])
            + notes.text())


OUTSIDE_HEADING = "From outside the lecture texts"


def outside_section(results: list[claimslib.Result], numbers: dict[str, str]) -> str:
    rs = [r for r in results if not r.claim.in_lectures]
    return (f"## {OUTSIDE_HEADING}\n\n"
            "Figures of the slides the lectures copy that the lecture texts themselves do not contain, with their real "
            "source. They are checked like the others but are not counted among the lecture claims above.\n\n"
            + markdown_table(_claim_rows(rs, numbers), CLAIM_HEADERS, numeric=[5, 6]) + "\n" + _notes(rs, numbers))


def googlenet_layouts() -> str:
    """GoogLeNet's parameters in the layouts the figures 4M, 5M and 12x may mean."""
    rows = []
    for label, name in (("the paper's (5x5 branches, biases, no batch norm)", "googlenet_paper"),
                        ("torchvision's (3x3 in the '5x5' branch, batch norm)", "googlenet")):
        total = claimslib.quantity(claimslib.Ref(name, "params"))
        body = claimslib.quantity(claimslib.Ref(name, "params", exclude=("fc",)))
        rows.append([label, f"`{name}`", f"{total:,}", fmt.scaled(total, "M"), f"{body:,}", fmt.scaled(body, "M")])
    alexnet = {n: claimslib.quantity(claimslib.Ref(n, "params")) for n in ("alexnet_paper", "alexnet")}
    ratios = [[f"`{a}` / `{g}`", f"{alexnet[a]:,} / {claimslib.quantity(claimslib.Ref(g, 'params')):,}",
               f"{float(Fraction(alexnet[a], claimslib.quantity(claimslib.Ref(g, 'params')))):.2f}x"]
              for a, g in (("alexnet_paper", "googlenet_paper"), ("alexnet", "googlenet"))]
    return ("GoogLeNet's parameters, computed in both layouts, with and without the 1024 -> 1000 classifier (no auxiliary "
            "classifiers). 12x and 5 M are the GoogLeNet authors' own round figures (12x: Szegedy et al., Going Deeper with "
            "Convolutions, 2014, Section 1; 5 M, as 60 M / 5 M = 12x: Szegedy et al., Rethinking the Inception "
            "Architecture, CVPR 2016, Section 1); no layout has 5 M at one significant digit, nor a ratio of 12.\n\n"
            + markdown_table(rows, ["Layout", "Spec", "Params", "in M", "Without the classifier", "in M"], numeric=[2, 3, 4, 5])
            + "\n" + markdown_table(ratios, ["AlexNet / GoogLeNet", "Parameters", "Ratio"], numeric=[1, 2]))


def not_computed_section(unchecked: list[claimslib.Unchecked], quoted: list[claimslib.Accuracy]) -> str:
    rows = [[cell(u.what), cell(u.quote), cell(", ".join(u.sources)), claimslib.CHECKS[u.verdict], cell(u.check)]
            for u in unchecked]
    rows += [[cell(f"accuracy: {q.label}"), cell(q.quote), cell(", ".join(q.sources)), claimslib.CHECKS[q.verdict], cell(q.check)]
             for q in quoted]
    return ("## Not computed\n\n"
            "Every other numeric statement of the lecture texts: data sets, training settings, timings, dates and "
            "accuracies are not the shape or the cost of a network, so archcalc cannot compute them. *Check* gives "
            "what the papers say where they allow a verdict (the accuracies are also in "
            f"[the zoo](zoo.md#{anchor(QUOTED_HEADING)})).\n\n"
            + markdown_table(rows, ["What", "Quote", "Source", "Verdict", "Check"]))


def claims_page(results: list[claimslib.Result], unchecked: list[claimslib.Unchecked] | None = None,
                quoted: list[claimslib.Accuracy] | None = None) -> str:
    unchecked = claimslib.unchecked() if unchecked is None else unchecked
    quoted = claimslib.accuracy() if quoted is None else quoted
    numbers = claim_numbers(results)
    grouped = topics(lecture_results(results))
    contents = "".join(f"{t}. [{topic}](#{anchor(topic_heading(t, topic))})\n" for t, topic in enumerate(grouped, start=1))
    parts = ["# Lecture claims, recomputed\n",
             f"Every numeric claim of the lecture texts about the shape or the cost of a network, next to what archcalc "
             f"computes ({headline_text(results, unchecked, quoted)}). The claimed figure is the source's, in the source's "
             "convention and axis order (*Convention*: weights only or with biases, MACs, values or bytes, C x H x W or "
             "H x W x C); "
             "the computed one comes from the named zoo network or small spec of `archcalc/report/claims.json` (*Computed "
             "from*), and *archcalc* shows it exactly (in the claim's unit in brackets). Verdicts: *exact*; *rounds to the "
             "claim* when the exact value rounded to the digits the claim writes is the claim (*rounds up to* or *cut to "
             "the claim* where the source rounds up or cuts, as the claims file says); *off by* (claimed - "
             "computed) / computed, or *N, not M* for counts; *holds* for \"most\" (more than half). A claim that "
             "is wrong in its source is marked so, with the correct number and a note; a figure the network's authors "
             "give themselves, which the lectures repeat, is marked *the authors' own figure* and counted apart. A number "
             "the text implies but does not write (a product, a total) is counted apart too. The slides' figures that the texts "
             f"do not contain are [apart](#{anchor(OUTSIDE_HEADING)}); what archcalc cannot compute is listed under "
             "[Not computed](#not-computed).\n",
             contents, wrong_section(results, numbers), wordings_section(results, numbers)]
    for t, (topic, rs) in enumerate(grouped.items(), start=1):
        parts += [f"## {topic_heading(t, topic)}\n", markdown_table(_claim_rows(rs, numbers), CLAIM_HEADERS, numeric=[5, 6])]
        if notes := _notes(rs, numbers):
            parts.append(notes)
        if topic == "GoogLeNet":
            parts.append(googlenet_layouts())
    parts += [outside_section(results, numbers),
              not_computed_section(unchecked, quoted)]
    return "\n".join(parts)


# ---- assembling --------------------------------------------------------------------------

PLOTS = {
    "zoo_params_macs": "parameters against MACs of the zoo (bubble area: activation memory per image)",
    "zoo_accuracy_macs": "torchvision top-1 accuracy against GMACs (torchvision's weights, one centre crop each)",
    f"{PLOTTED_NETWORK}_layers": f"per-layer parameters (log scale), MACs and activations of {PLOTTED_NETWORK}",
}


def index_page(analyses: dict[str, Analysis], results: list[claimslib.Result]) -> str:
    bad = headline(results).get(WRONG, 0) + headline(results, implied=True).get(WRONG, 0)
    shown = networks(analyses)
    claim_topics = ", ".join(f"[{topic}](claims.md#{anchor(topic_heading(t, topic))})"
                             for t, topic in enumerate(topics(lecture_results(results)), start=1))
    outside = len(results) - len(lecture_results(results))
    lines = [
        "# Reports\n",
        "Generated by `archcalc report` from `specs/*.json` and `archcalc/report/claims.json`; do not edit by hand. "
        "`archcalc report --check` fails when these files are stale; `archcalc report NAME --out DIR` writes one "
        "network's page. Tables are GitHub pipe tables: copy one into a slide or a course page as is.\n",
        f"- [The zoo](zoo.md): {len(shown)} networks, one row each, grouped by family: year, depth, parameters, "
        "MACs, weights and activation memory, torchvision's accuracy and the published one, each with its protocol; "
        f"[building blocks](zoo.md#{anchor(BLOCKS_HEADING)}), "
        f"[accuracy figures the lectures quote](zoo.md#{anchor(QUOTED_HEADING)})",
        f"- [Lecture claims](claims.md): {headline_text(results)} "
        f"([{bad} errors of the lectures](claims.md#wrong-in-the-source)); {outside} figures of the slides they copy, "
        f"[counted apart](claims.md#{anchor(OUTSIDE_HEADING)}); [what archcalc cannot compute](claims.md#not-computed). "
        f"Topics: {claim_topics}",
        "- [Tricks](tricks.md): " + ", ".join(f"[{title}](tricks.md#{anchor(title)})" for title in tricks.TITLES),
        "- [In a browser](html/index.html): every network with its figure, linked to its page; "
        + ", ".join(f"[{title.lower()}](html/{name}.html)" for name, title in site.PAGES.items()) + " as HTML",
        "- Networks (below): each page embeds its architecture figure (*figure*: `diagrams/NAME.svg`); *page* is a "
        "self-contained HTML page (`html/NAME.html`) with the figure, a foldable and sortable layer table and the working "
        "of each layer",
        "- Plots: " + ", ".join(f"[{what}](plots/{name}.svg) ([PNG](plots/{name}.png))" for name, what in PLOTS.items()) + "\n",
        "## Networks\n",
    ]
    lines += [f"- {family}: " + ", ".join(f"[{a.network.name}](networks/{a.network.name}.md) "
                                          f"([figure](diagrams/{a.network.name}.svg), [page](html/{a.network.name}.html))"
                                          for a in members)
              for family, members in families(analyses).items()]
    lines += ["", "## Plots\n", *(f"![{what}](plots/{name}.png)\n" for name, what in PLOTS.items()),
              "## Recorded runs\n",
              "Measurements of one machine, written by the tools that took them and never regenerated here: "
              "`measured/` (`python benchmarks/calc_speed.py`: how fast the calculator answers, next to fvcore and torchinfo) and "
              "`bench/` (`archcalc bench ... --out reports/bench/DEVICE.md`: GPU latency, when a GPU was at hand)."]
    return "\n".join(lines) + "\n"


def build(target: str | None = None, out: str = "reports", network: Network | None = None) -> dict[str, bytes]:
    """Relative path -> content of every report file (one network's page when `target` is given,
    written to be read in the folder `out`: its links resolve there, and it says how to regenerate it;
    `network`: the target's, where the command line read it already)."""
    from . import plots

    claimslib.network.cache_clear()  # the specs may have changed since the last build
    claimslib.analysis.cache_clear()
    results = claimslib.results()
    if target is not None:
        network = network or load(target)
        files = {f"networks/{network.name}.md": network_page(network, results).encode(),
                 **network_files(network, analyze(network))}
        return standalone(files, f"networks/{network.name}.md", target, out)
    analyses = {name: analyze(load(name)) for name in zoo_index()}
    pages = {f"networks/{name}.md": network_page(a.network, results, a) for name, a in analyses.items()}
    pages["zoo.md"] = zoo_page(analyses, claimslib.accuracy(), results)
    pages["claims.md"] = claims_page(results)
    pages["tricks.md"] = tricks.page(topic_link(results, "Inception module"))
    pages["README.md"] = index_page(analyses, results)
    built = {path: text.encode() for path, text in pages.items()}
    built.update(site.files(families(analyses), pages))  # html/index.html, and the pages as HTML beside it
    for a in analyses.values():
        built.update(network_files(a.network, a))
    shown = networks(analyses)
    points = [(n, a.network.family, a.totals.params, a.totals.macs, a.activation_bytes, a.input_shape[-1]) for n, a in shown.items()]
    accuracy = [(n, a.network.family, a.totals.macs, accuracies(a.network.meta)[0][0]) for n, a in shown.items()]
    sizes = sorted({a.input_shape[-1] for n, a in shown.items() if accuracies(a.network.meta)[0][0] is not None})
    drawn = {"zoo_params_macs": plots.zoo_scatter(points),
             "zoo_accuracy_macs": plots.accuracy_scatter([p for p in accuracy if p[3] is not None],
                                                         "torchvision's weights, ImageNet-1K val, one centre crop "
                                                         f"at each network's input size ({sizes[0]}-{sizes[-1]} px)")}
    if PLOTTED_NETWORK in analyses:
        drawn[f"{PLOTTED_NETWORK}_layers"] = plots.layer_bars(analyses[PLOTTED_NETWORK])
    for name, formats in drawn.items():
        for suffix, data in formats.items():
            built[f"plots/{name}.{suffix}"] = data
    return built


def standalone(files: dict[str, bytes], page: str, target: str, out: str) -> dict[str, bytes]:
    """One network's page on its own: links to report files not written with it become plain text,
    and its "regenerate with" line names the folder."""
    text = files[page].decode()
    base = posixpath.dirname(page)

    def unlink(match: re.Match) -> str:
        label, href = match.group(1), match.group(2)
        if "://" in href or href.startswith("#"):
            return match.group(0)
        written = posixpath.normpath(posixpath.join(base, unquote(href.split("#")[0])))
        return match.group(0) if written in files else label

    text = re.sub(r"(?<!!)\[([^\]]+)(?<!\\)\]\(([^)\s]+)\)", unlink, text)  # an escaped `\]` ends no link
    command = f"`archcalc report {target}`"
    text = text.replace(command, f"`archcalc report {target} --out {out}`", 1)
    return {**files, page: text.encode()}


def generate(out_dir: Path, target: str | None = None, label: Path | None = None, force: bool = False,
             network: Network | None = None) -> list[str]:
    files = build(target, str(label or out_dir), network) if target is not None else build()
    write(out_dir, files, prune=target is None, force=force)
    return sorted(files)


def stale(out_dir: Path, target: str | None = None, network: Network | None = None) -> list[str]:
    """Files of `out_dir` that differ from a fresh generation, are missing or should not be there."""
    with sigterm_unwinds(), tempfile.TemporaryDirectory(prefix="archcalc-report-") as temporary:
        fresh = Path(temporary)
        generate(fresh, target, label=out_dir, network=network)
        return compare(out_dir, fresh, complete=target is None)


def compare(out_dir: Path, fresh: Path, complete: bool = True) -> list[str]:
    """Files archcalc writes in `out_dir` that differ from those of `fresh`, are missing, are not in
    its manifest, or (`complete`) are listed there but no longer generated. Files the manifest does
    not list are the user's (or recorded runs: bench/, measured/) and are not compared.

    Plots are compared byte for byte only when the same matplotlib version drew them (their SVGs
    name it): another version draws the same figure with other bytes.
    """
    expected = sorted(read_manifest(fresh) or ())
    if not out_dir.is_dir():
        return sorted(f"{p} (missing)" for p in [MANIFEST, *expected])
    with locked(out_dir, shared=True):
        listed = read_manifest(out_dir)
        same_drawing = plotted_with(out_dir) == plotted_with(fresh)
        problems = [f"{MANIFEST} (missing)"] if listed is None else []
        for p in expected:
            if not (out_dir / p).is_file():
                problems.append(f"{p} (missing)")
            elif (same_drawing or not _is_plot(p)) and not same_content(out_dir / p, (fresh / p).read_bytes()):
                problems.append(f"{p} (differs)")
            elif listed is not None and p not in listed:
                problems.append(f"{p} (not in {MANIFEST})")
        if complete and listed is not None:
            problems += [f"{p} (not generated)" for p in sorted(listed - set(expected))]
        problems += [f"{p} (a temporary file of an interrupted run)" for p in leftovers(out_dir, {*expected, *(listed or ())})]
    return sorted(problems)


def _is_plot(path: str) -> bool:
    return path.startswith("plots/")


def plotted_with(out_dir: Path) -> str | None:
    """The matplotlib version named by the report's zoo plot, if there is one."""
    svg = out_dir / "plots" / "zoo_params_macs.svg"
    found = re.search(rb"Matplotlib v([^,<\s]+)", svg.read_bytes()) if svg.exists() else None
    return found.group(1).decode() if found else None


def plot_note(out_dir: Path) -> str | None:
    """A line saying the plots were not compared, when another matplotlib version drew them."""
    import matplotlib

    made = plotted_with(out_dir)
    if made is None or made == matplotlib.__version__:
        return None
    return (f"note: the plots in {out_dir} were drawn by matplotlib {made}, this is {matplotlib.__version__}: "
            "they were not compared (run `archcalc report` to redraw them)")
