"""`archcalc report`: Markdown pages and plots of the zoo, the lecture claims and the tricks.

Everything is generated from the specs and archcalc/claims.json, deterministically: the same
inputs give the same bytes, so `archcalc report --check` can tell a stale reports/ folder.
"""
from __future__ import annotations

import filecmp
import tempfile
from collections import defaultdict
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable

from tabulate import tabulate

from . import claims as claimslib
from . import tricks
from .calc import Analysis, analyze
from .check import check_network
from .files import write_atomic
from .layers import format_shape
from .render import table_rows
from .spec import Network, load, zoo_index

FULL_TABLE_ROWS = 60  # networks with more layers than this are folded to depth 2
FOLD_DEPTH = 2
MANAGED = ("*.md", "*.png", "*.svg")
PLOTTED_NETWORK = "vgg16"
STATUS = {"exact": "exact", "rounds": "rounds", "miss": "**MISS**", "wrong": "known wrong in its source",
          "unexpected": "**marked wrong but matches**"}


# ---- formatting ------------------------------------------------------------------------

def table(rows: list[list], headers: list[str], numeric: Iterable[int] = ()) -> str:
    numeric = set(numeric)
    align = tuple("right" if i in numeric else "left" for i in range(len(headers)))
    return tabulate(rows, headers, tablefmt="github", intfmt=",", disable_numparse=True, colalign=align) + "\n"


def num(value: Any, decimals: int = 2) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, (list, tuple)):
        return "x".join(str(v) for v in value)
    if isinstance(value, Fraction) and value.denominator == 1:
        return f"{value.numerator:,}"
    return f"{float(value):,.{decimals}f}"


def cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def mib(n: int) -> str:
    return f"{n / 2**20:,.2f}"


# ---- network pages ---------------------------------------------------------------------

def fold_depth(analysis: Analysis) -> int | None:
    return None if len(analysis.leaves()) < FULL_TABLE_ROWS else FOLD_DEPTH


def totals_table(analysis: Analysis) -> str:
    t = analysis.totals
    rows = [
        ["Parameters (trainable)", f"{t.params:,}"],
        ["Non-trainable values (BN running statistics)", f"{t.non_trainable:,}"],
        ["MACs per image (conv + linear)", f"{t.macs:,}"],
        ["FLOPs per image (2 x MACs)", f"{t.flops:,}"],
        ["Weight layers (conv, linear)", f"{t.layers:,}"],
        ["Output", format_shape(analysis.output_shape)],
        ["Weights, fp32 (MiB)", mib(analysis.weights_bytes)],
        ["Activations per image (values, input included)", f"{t.activations:,}"],
        ["Activations per image, fp32 (MiB)", mib(analysis.activation_bytes)],
        ["Peak live activations at inference, fp32 (MiB)", mib(analysis.peak_activation_bytes)],
    ]
    return table(rows, ["Quantity", "Value"], numeric=[1])


def expect_table(network: Network) -> str:
    verdicts = check_network(network)
    if not verdicts:
        return "No published figures in the spec.\n"
    rows = []
    for v in verdicts:
        e = v.expect
        unit = f" {e.unit}" if e.unit else ""
        rows.append([e.what, e.layer or "", f"{num(e.value)}{unit}", f"{num(v.computed)}{unit}",
                     num(v.exact) if e.unit else "", STATUS[v.status], cell(e.source + (f" ({e.note})" if e.note else ""))])
    return table(rows, ["Figure", "Layer", "Published", "Computed", "Exact", "Verdict", "Source"], numeric=[2, 3, 4])


def network_page(network: Network) -> str:
    analysis = analyze(network)
    depth = fold_depth(analysis)
    rows = [[cell(r[0]), r[1], r[2], f"{r[3]:,}", f"{r[4]:,}", f"{r[5]:,}", r[6]] for r in table_rows(analysis, depth, "torchvision")]
    layers = table(rows, ["Layer", "Type", "Output", "Params", "MACs", "Activations", "RF"], numeric=[2, 3, 4, 5, 6])
    folded = (f"{len(analysis.leaves()):,} layers, folded to depth {depth}: a row of a block carries the totals of "
              "what it holds." if depth is not None else "Every layer.")
    parts = [
        f"# {network.name}: {network.title}\n",
        f"Family `{network.family}` (`{Path(network.file).name}`), input {format_shape(analysis.input_shape)}, "
        f"batch 1, fp32. Regenerate with `archcalc report {network.name}`; conventions in the README.\n",
        "## Totals\n", totals_table(analysis),
        "## Published figures\n", expect_table(network),
        "## Layers\n",
        f"{folded} Activations are values per image (the layer's output when it allocates one); "
        "RF is the receptive field in input pixels.\n",
        layers,
    ]
    if analysis.warnings:
        parts += ["## Warnings\n", "".join(f"- `{n.path}`: {n.message}\n" for n in analysis.warnings)]
    return "\n".join(parts)


# ---- the zoo -----------------------------------------------------------------------------

def zoo_page(analyses: dict[str, Analysis]) -> str:
    families: dict[str, list[Analysis]] = defaultdict(list)
    for a in analyses.values():
        families[a.network.family].append(a)
    order = sorted(families, key=lambda f: (min(_year(a) or 9999 for a in families[f]), f))
    parts = ["# The zoo\n",
             "One row per network, at its own input size, batch 1, fp32. Depth counts weight layers "
             "(conv, linear). Weights include BN running statistics. Activations are the cs231n sum of "
             "layer outputs and the input. Top-1/top-5 are published ImageNet accuracies where the "
             "spec's `meta` gives them, with their source.\n"]
    headers = ["Network", "Year", "Input", "Depth", "Params", "GMACs", "Weights (MiB)", "Activations (MiB/image)",
               "Top-1 %", "Top-5 %", "Accuracy source"]
    for family in order:
        rows = []
        for a in families[family]:
            t, meta = a.totals, a.network.meta
            rows.append([f"[{a.network.name}](networks/{a.network.name}.md)", str(_year(a) or ""), format_shape(a.input_shape),
                         f"{t.layers:,}", f"{t.params:,}", f"{t.macs / 1e9:,.3f}", mib(a.weights_bytes), mib(a.activation_bytes),
                         num(meta.get("top1"), 3), num(meta.get("top5"), 3), cell(meta.get("accuracy_source", ""))])
        parts += [f"## {family}\n", table(rows, headers, numeric=range(1, 10))]
    return "\n".join(parts)


def _year(a: Analysis) -> int | None:
    year = a.network.meta.get("year")
    return year if isinstance(year, int) else None


# ---- claims ------------------------------------------------------------------------------

def _claimed(c: claimslib.Claim) -> str:
    if isinstance(c.value, list):
        return "x".join(map(str, c.value))
    return f"{num(c.value) if isinstance(c.value, int) else c.value}{' ' + c.unit if c.unit else ''}"


def _in_unit(r: claimslib.Result) -> str:
    c = r.claim
    x = Fraction(r.computed) / claimslib.SCALES[c.unit]
    places = claimslib.decimals(c.value) + 2
    return f"{float(x):,.{places}f}".rstrip("0").rstrip(".") + (f" {c.unit}" if c.unit else "")


def _computed(r: claimslib.Result) -> str:
    if r.computed is None:
        return "network not in the zoo"
    if isinstance(r.computed, list):
        return "x".join(map(str, r.computed))
    exact = num(r.computed, 4)
    if r.claim.unit or not isinstance(r.computed, int):
        return f"{exact} ({_in_unit(r)})" if r.claim.unit not in (None, "%", "x") else _in_unit(r)
    return exact


def _verdict(r: claimslib.Result) -> str:
    text = {"exact": "exact", "rounds": "rounds to the claim", "truncates": "truncates to the claim",
            "differs": "differs", "unavailable": "not computed"}.get(r.verdict)
    if r.verdict == "off":
        text = f"off by {r.off_percent:+.1f}%" if r.off_percent is not None else "off"
    if r.claim.wrong:
        text = f"**wrong in the source**: {text}"
    elif r.verdict == "off" and r.claim.approximate:
        text += " (a loose figure)"
    return text


def claims_page(results: list[claimslib.Result]) -> str:
    counts = defaultdict(int)
    for r in results:
        counts["wrong in the source" if r.claim.wrong else r.verdict] += 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    parts = ["# Lecture claims, recomputed\n",
             f"Every numeric claim of the lecture texts that archcalc can compute, next to what it computes ({len(results)} claims: "
             f"{summary}). The claimed figure is the source's; the computed one comes from the named network or small spec "
             "(`archcalc/claims.json`). *rounds to* means the claim is the computed value rounded to the digits written; "
             "*truncates to* that the source cut digits off; *off by* gives (claimed - computed) / computed.\n"]
    topics: dict[str, list[claimslib.Result]] = defaultdict(list)
    for r in results:
        topics[r.claim.topic].append(r)
    for topic, rs in topics.items():
        rows = [[cell(r.claim.quote), cell(", ".join(r.claim.sources)), cell(r.claim.convention),
                 f"`{r.claim.ref.network}`" + (f" `{r.claim.ref.layer}`" if r.claim.ref.layer else ""),
                 _claimed(r.claim), _computed(r), _verdict(r)] for r in rs]
        notes = [f"- {cell(r.claim.quote)[:60]}...: {r.claim.note}\n" for r in rs if r.claim.note]
        parts += [f"## {topic}\n", table(rows, ["Claim", "Source", "Convention", "Computed from", "Claimed", "archcalc", "Verdict"], numeric=[4, 5])]
        if notes:
            parts.append("Notes:\n\n" + "".join(notes))
    parts.append(NOT_CHECKED)
    return "\n".join(parts)


NOT_CHECKED = """## Not computed

Figures of the lectures that are not costs of an architecture, so archcalc does not check them: error
rates and accuracies (ZFNet 11.7%, VGG 7.3%, GoogLeNet 6.7%, ResNet 3.57%, Inception-v4 3.08% top-5,
human 5.1%), Keras timings (ms per inference step), training details (batch 256, weight decay 5e-4,
2-3 weeks on 4 GPUs, 50x GPU speed-up, 6x faster convergence with ReLU, 2048x augmentation), and
depths counted along the longest path (GoogLeNet's 22 layers; ResNet's 34/50/101/152, which leave out
the projection shortcuts that archcalc's weight-layer count includes).
"""


# ---- assembling --------------------------------------------------------------------------

def index_page(names: list[str], results: list[claimslib.Result]) -> str:
    bad = sum(1 for r in results if r.claim.wrong)
    lines = [
        "# Reports\n",
        "Generated by `archcalc report` from `specs/*.json` and `archcalc/claims.json`; do not edit by hand. "
        "`archcalc report --check` fails when these files are stale.\n",
        f"- [The zoo](zoo.md): {len(names)} networks, one row each, grouped by family",
        f"- [Lecture claims](claims.md): {len(results)} numeric claims of the lecture texts recomputed ({bad} wrong in their source)",
        "- [Tricks](tricks.md): what 1x1 bottlenecks, stacked 3x3, depthwise separable and dilated convolutions save, computed",
        "- Plots: [params vs MACs of the zoo](plots/zoo_params_macs.svg) ([PNG](plots/zoo_params_macs.png)), "
        f"[per-layer params and activations of {PLOTTED_NETWORK}](plots/{PLOTTED_NETWORK}_layers.svg) "
        f"([PNG](plots/{PLOTTED_NETWORK}_layers.png))\n",
        "## Networks\n",
    ]
    lines += [f"- [{name}](networks/{name}.md)" for name in names]
    return "\n".join(lines) + "\n"


def build(target: str | None = None) -> dict[str, bytes]:
    """Relative path -> content of every report file (one network's page when `target` is given)."""
    from . import plots

    claimslib.network.cache_clear()  # the specs may have changed since the last build
    claimslib.analysis.cache_clear()
    if target is not None:
        network = load(target)
        return {f"networks/{network.name}.md": network_page(network).encode()}
    names = list(zoo_index())
    networks = {name: load(name) for name in names}
    files = {f"networks/{name}.md": network_page(net) for name, net in networks.items()}
    analyses = {name: analyze(net) for name, net in networks.items()}
    results = claimslib.results()
    files["zoo.md"] = zoo_page(analyses)
    files["claims.md"] = claims_page(results)
    files["tricks.md"] = tricks.page()
    files["README.md"] = index_page(names, results)
    out = {path: text.encode() for path, text in files.items()}
    points = [(n, a.network.family, a.totals.params, a.totals.macs, a.activation_bytes) for n, a in analyses.items()]
    for fmt, data in plots.zoo_scatter(points).items():
        out[f"plots/zoo_params_macs.{fmt}"] = data
    if PLOTTED_NETWORK in analyses:
        for fmt, data in plots.layer_bars(analyses[PLOTTED_NETWORK]).items():
            out[f"plots/{PLOTTED_NETWORK}_layers.{fmt}"] = data
    return out


def write(out_dir: Path, files: dict[str, bytes], prune: bool) -> None:
    for path, data in sorted(files.items()):
        target = out_dir / path
        if not (target.exists() and target.read_bytes() == data):
            write_atomic(target, data)
    if prune:
        for path in managed(out_dir):
            if path not in files:
                (out_dir / path).unlink()


def managed(out_dir: Path) -> list[str]:
    return sorted({str(p.relative_to(out_dir)) for pattern in MANAGED for p in out_dir.rglob(pattern)})


def generate(out_dir: Path, target: str | None = None) -> list[str]:
    files = build(target)
    write(out_dir, files, prune=target is None)
    return sorted(files)


def stale(out_dir: Path, target: str | None = None) -> list[str]:
    """Files of `out_dir` that differ from a fresh generation, are missing or should not be there."""
    with tempfile.TemporaryDirectory(prefix="archcalc-report-") as temporary:
        fresh = Path(temporary)
        generate(fresh, target)
        expected = managed(fresh)
        present = set(managed(out_dir)) if out_dir.is_dir() else set()
        problems = [f"{p} (missing)" for p in expected if p not in present]
        problems += [f"{p} (differs)" for p in expected if p in present and not filecmp.cmp(fresh / p, out_dir / p, shallow=False)]
        if target is None:
            problems += [f"{p} (not generated)" for p in sorted(present - set(expected))]
        return sorted(problems)
