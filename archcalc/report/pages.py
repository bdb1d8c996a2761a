"""`archcalc report`: Markdown pages and plots of the zoo, the lecture claims and the tricks.

Everything is generated from the specs and archcalc/report/claims.json, deterministically: the same
inputs give the same bytes, so `archcalc report --check` can tell a stale reports/ folder.
Tables are GitHub pipe tables with numbers right-aligned (archcalc/report/markdown.py).
"""
from __future__ import annotations

import os
import re
import tempfile
from collections import defaultdict
from fractions import Fraction
from pathlib import Path

from .. import fmt
from ..core.calc import Analysis, analyze
from ..core.figures import judge
from ..core.spec import Network, load, zoo_index
from ..errors import FileError
from ..files import is_temporary, make_folder, reason, same_content, write_atomic
from ..fmt import anchor, cell, markdown_table
from ..render import table_rows
from . import claims as claimslib
from . import tricks

FULL_TABLE_ROWS = 60  # networks with more layers than this are folded to depth 2
FOLD_DEPTH = 2
MANAGED = ("*.md", "*.png", "*.svg")
RECORDED = ("bench", "measured")  # runs recorded on a machine: never regenerated, pruned or compared
PLOTTED_NETWORK = "vgg16"
STATUS = {"exact": "exact", "rounds": "rounds", "miss": "**MISS**", "wrong": "**wrong in the source**",
          "unexpected": "**marked wrong but matches**"}


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


def totals_table(analysis: Analysis) -> str:
    t = analysis.totals
    rows = [
        ["Parameters (trainable)", f"{t.params:,}"],
        ["Non-trainable values (BN running statistics)", f"{t.non_trainable:,}"],
        ["MACs per image (conv + linear)", f"{t.macs:,}"],
        ["FLOPs per image (2 x MACs)", f"{t.flops:,}"],
        ["Depth (weight layers on the longest path)", f"{claimslib.depth(analysis.network.root):,}"],
        ["Weight layers (conv, linear)", f"{t.layers:,}"],
        ["Output", fmt.shape(analysis.output_shape)],
        ["Weights, fp32 (MiB)", fmt.mib(analysis.weights_bytes, unit=False)],
        ["Activations per image (values, input included)", f"{t.activations:,}"],
        ["Activations per image, fp32 (MiB)", fmt.mib(analysis.activation_bytes, unit=False)],
        ["Peak live activations at inference, fp32 (MiB)", fmt.mib(analysis.peak_activation_bytes, unit=False)],
    ]
    return markdown_table(rows, ["Quantity", "Value"], numeric=[1])


def expect_table(analysis: Analysis) -> str:
    verdicts = [judge(analysis, expect) for expect in analysis.network.expect]
    if not verdicts:
        return "No published figures in the spec.\n"
    rows = []
    for v in verdicts:
        e = v.expect
        unit = f" {e.unit}" if e.unit else ""
        places = claimslib.decimals(e.value) if e.unit else 0
        published = f"{fmt.value(e.value, places)}{unit}"
        verdict = {"rounds": f"rounds to {published}", "truncates": f"rounds down to {published}"}.get(v.status) or STATUS[v.status]
        rows.append([e.what, e.layer or "", published, f"{fmt.value(v.computed, places)}{unit}", fmt.value(v.exact) if e.unit else "",
                     verdict, cell(e.source + (f" ({e.note})" if e.note else ""))])
    return markdown_table(rows, ["Figure", "Layer", "Published", "Computed", "Exact", "Verdict", "Source"], numeric=[2, 3, 4])


def claims_section(network: Network, results: list[claimslib.Result]) -> list[str]:
    """The lecture claims computed on this zoo network, with their numbers in claims.md."""
    if not _in_zoo(network):
        return []
    numbers = claim_numbers(results)
    mine = [r for r in results if r.claim.ref.network == network.name]
    if not mine:
        return []
    rows = [[numbers[r.claim.id], cell(r.claim.quote), r.claim.ref.layer or "", _claimed(r.claim), _computed(r), _verdict(r)]
            for r in mine]
    return ["## Lecture claims\n",
            "Claims of the lecture texts computed on this network; the numbers refer to [claims.md](../claims.md), "
            "which gives their sources, conventions and notes.\n",
            markdown_table(rows, ["#", "Claim", "Layer", "Claimed", "archcalc", "Verdict"], numeric=[3, 4])]


def _in_zoo(network: Network) -> bool:
    return zoo_index().get(network.name) == Path(network.file)


def _regenerate(network: Network) -> str:
    if _in_zoo(network):
        return f"`archcalc report {network.name}`"
    return f"`archcalc report` on the spec file `{Path(network.file).name}`"


def network_page(network: Network, results: list[claimslib.Result] | None = None, analysis: Analysis | None = None) -> str:
    analysis = analysis or analyze(network)
    depth = fold_depth(analysis)
    rows = [[cell(r[0]), r[1], r[2], f"{r[3]:,}", f"{r[4]:,}", f"{r[5]:,}", r[6]] for r in table_rows(analysis, depth, "torchvision")]
    layers = markdown_table(rows, ["Layer", "Type", "Output", "Params", "MACs", "Activations", "RF"], numeric=[2, 3, 4, 5, 6])
    folded = (f"{len(analysis.leaves()):,} layers, folded to depth {depth}: a row of a block carries the totals of "
              "what it holds." if depth is not None else "Every layer.")
    parts = [
        f"# {network.name}: {network.title}\n",
        f"Family `{network.family}` (`{Path(network.file).name}`), input {fmt.shape(analysis.input_shape)}, "
        f"batch 1, fp32. Regenerate with {_regenerate(network)}; conventions in the README.\n",
        "## Totals\n", totals_table(analysis),
        "## Published figures\n", expect_table(analysis),
        *claims_section(network, results if results is not None else claimslib.results()),
        "## Layers\n",
        f"{folded} Output is C x H x W; Activations are values per image (the layer's output when it allocates one; "
        "x 4 bytes in fp32); RF is the receptive field in input pixels.\n",
        layers,
    ]
    if analysis.warnings:
        parts += ["## Warnings\n", "".join(f"- `{n.path}`: {cell(n.message)}\n" for n in analysis.warnings)]
    return "\n".join(parts)


# ---- the zoo -----------------------------------------------------------------------------

ZOO_HEADERS = ["Network", "Year", "Input", "Depth", "Weight layers", "Params", "MACs", "Weights fp32 (MiB)",
               "Activations fp32 (MiB/image)", "Top-1 %", "Top-5 %", "Accuracy source"]


def zoo_row(a: Analysis) -> list[str]:
    t, meta = a.totals, a.network.meta
    return [f"[{a.network.name}](networks/{a.network.name}.md)", str(_year(a) or ""), fmt.shape(a.input_shape),
            f"{claimslib.depth(a.network.root):,}", f"{t.layers:,}", f"{t.params:,}", f"{t.macs:,}", fmt.mib(a.weights_bytes, unit=False),
            fmt.mib(a.activation_bytes, unit=False), percent(meta.get("top1")), percent(meta.get("top5")), cell(meta.get("accuracy_source", ""))]


def families(analyses: dict[str, Analysis]) -> dict[str, list[Analysis]]:
    """Analyses by family, the families in order of their first year."""
    grouped: dict[str, list[Analysis]] = defaultdict(list)
    for a in analyses.values():
        grouped[a.network.family].append(a)
    order = sorted(grouped, key=lambda f: (min(_year(a) or 9999 for a in grouped[f]), f))
    return {family: grouped[family] for family in order}


def zoo_page(analyses: dict[str, Analysis], quoted: list[claimslib.Accuracy]) -> str:
    parts = ["# The zoo\n",
             "One row per network, at its own input size, batch 1, fp32, grouped by family in order of their year. "
             "*Depth* counts the weight layers (conv, linear) on the longest path from input to output, as papers count "
             "them (ResNet-50: 50, GoogLeNet: 22); *Weight layers* counts all of them, parallel branches and projection "
             "shortcuts included. *MACs* are the multiply-accumulates of convolutions and linear layers (torchvision's "
             "`_ops`; FLOPs = 2 x MACs). Weights include BN running statistics. Activations are the cs231n sum of the "
             "layer outputs and the input. Top-1/top-5 are ImageNet-1K validation accuracies given by the model's "
             "maintainers or its paper, with their source; the figures the lectures quote are [below]"
             f"(#{anchor(QUOTED_HEADING)}).\n"]
    numeric = [1, 3, 4, 5, 6, 7, 8, 9, 10]
    for family, members in families(analyses).items():
        parts += [f"## {family}\n", markdown_table([zoo_row(a) for a in members], ZOO_HEADERS, numeric=numeric)]
    parts += [quoted_section(quoted, set(analyses))]
    return "\n".join(parts)


QUOTED_HEADING = "Accuracy figures the lectures quote"


def quoted_section(quoted: list[claimslib.Accuracy], names: set[str]) -> str:
    rows = []
    for q in quoted:
        links = ", ".join(f"[{n}](networks/{n}.md)" for n in q.networks if n in names)
        rows.append([cell(q.label), links, percent(q.top1), percent(q.top5), percent(q.top5_error), cell(q.measure),
                     cell(q.quote), cell(", ".join(q.sources))])
    return (f"## {QUOTED_HEADING}\n\n"
            "As the lecture texts write them (`archcalc/report/claims.json`, `accuracy`). Competition results are a team's "
            "entry on the test set, not one network at one crop, so they do not compare with the validation "
            "accuracies above.\n\n"
            + markdown_table(rows, ["Network", "Zoo", "Top-1 %", "Top-5 %", "Top-5 error %", "Measure", "Quote", "Source"],
                    numeric=[2, 3, 4]))


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
    numbered = {name: t for t, name in enumerate(topics(results), start=1)}
    return f"claims.md#{anchor(topic_heading(numbered[topic], topic))}" if topic in numbered else "claims.md"


def claim_numbers(results: list[claimslib.Result]) -> dict[str, str]:
    """Claim id -> its row number in claims.md: topic.row."""
    return {r.claim.id: f"{t}.{i}" for t, rs in enumerate(topics(results).values(), start=1) for i, r in enumerate(rs, start=1)}


def _unit(c: claimslib.Claim) -> str:
    return f" {c.unit}" if c.unit else ""


def _claimed(c: claimslib.Claim) -> str:
    if isinstance(c.value, list):
        return fmt.shape(c.value)
    text = f"{fmt.value(c.value) if isinstance(c.value, int) else c.value}{_unit(c)}"
    return f"over {text}" if c.bound == "above" else text


def _in_unit(r: claimslib.Result) -> str:
    c = r.claim
    x = Fraction(r.computed) / claimslib.SCALES[c.unit]
    places = claimslib.decimals(c.value) + 2
    return f"{float(x):,.{places}f}".rstrip("0").rstrip(".") + _unit(c)


def _computed(r: claimslib.Result) -> str:
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


def _verdict(r: claimslib.Result) -> str:
    c = r.claim
    if r.verdict == "rounds":
        digits = f" ({c.significant} significant digit{'s' if c.significant > 1 else ''})" if c.significant else ""
        text = f"rounds to {_claimed(c)}{digits}"
    elif r.verdict in ("off", "truncates"):
        text = f"off by {r.off_percent:+.1f}%" if r.off_percent is not None else "off"
        text += " (cut, not rounded)" if r.verdict == "truncates" else " (a loose figure)" if c.approximate else ""
    else:
        text = {"exact": "exact", "holds": "holds", "differs": "differs", "unavailable": "not computed"}[r.verdict]
    return f"**wrong in the source**: {text}; see the note" if c.wrong else text


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


def wrong_section(results: list[claimslib.Result], numbers: dict[str, str]) -> str:
    rows = [[numbers[r.claim.id], cell(r.claim.quote), cell(", ".join(r.claim.sources)), _claimed(r.claim), _computed(r),
             cell(r.claim.note)] for r in results if r.claim.wrong]
    return ("## Wrong in the source\n\n"
            "Figures of the lecture material that do not add up, with the number archcalc computes instead and why. "
            "They are marked in `archcalc/report/claims.json` (`wrong`), so they do not fail `archcalc check`; a figure marked "
            "wrong that starts to match would.\n\n"
            + markdown_table(rows, ["#", "Claim", "Source", "Claimed", "Correct (archcalc)", "Why"], numeric=[3, 4]))


SUMMARY = {"exact": "exact", "rounds": "rounds to", "holds": "holds", "off": "off by", "truncates": "off by",
           "differs": "differs", "unavailable": "not computed"}


def claims_page(results: list[claimslib.Result]) -> str:
    counts: dict[str, int] = defaultdict(int)
    for r in results:
        counts["wrong in the source" if r.claim.wrong else SUMMARY[r.verdict]] += 1
    summary = ", ".join(f"{counts[k]} {k}" for k in (*dict.fromkeys(SUMMARY.values()), "wrong in the source") if counts[k])
    numbers = claim_numbers(results)
    grouped = topics(results)
    contents = "".join(f"{t}. [{topic}](#{anchor(topic_heading(t, topic))})\n" for t, topic in enumerate(grouped, start=1))
    parts = ["# Lecture claims, recomputed\n",
             f"Every numeric claim of the lecture texts about the shape or the cost of a network, next to what archcalc "
             f"computes ({len(results)} claims: {summary}). The claimed figure is the source's, in the source's "
             "convention (*Convention*: weights only or with biases, MACs, values or bytes, C x H x W or H x W x C); "
             "the computed one comes from the named zoo network or small spec of `archcalc/report/claims.json` (*Computed "
             "from*). Verdicts: *exact*; *rounds to* when the claim is the computed value rounded to the digits "
             "written; *off by* (claimed - computed) / computed; *holds* for \"most\" (more than half). A claim that "
             "is wrong in its source is marked so, with the correct number and a note.\n",
             contents, wrong_section(results, numbers)]
    for t, (topic, rs) in enumerate(grouped.items(), start=1):
        rows = [[numbers[r.claim.id], cell(r.claim.quote), cell(", ".join(r.claim.sources)), cell(r.claim.convention),
                 _where(r.claim), _claimed(r.claim), _computed(r), _verdict(r)] for r in rs]
        parts += [f"## {topic_heading(t, topic)}\n",
                  markdown_table(rows, ["#", "Claim", "Source", "Convention", "Computed from", "Claimed", "archcalc", "Verdict"],
                        numeric=[5, 6])]
        notes = [f"- **{numbers[r.claim.id]}** {cell(r.claim.note)}\n" for r in rs if r.claim.note]
        if notes:
            parts.append("Notes:\n\n" + "".join(notes))
    parts.append(NOT_CHECKED)
    return "\n".join(parts)


NOT_CHECKED = """## Not computed

Figures of the lectures that are not the shape or the cost of an architecture, so archcalc does not
check them: error rates and accuracies (in [the zoo](zoo.md#accuracy-figures-the-lectures-quote)),
Keras timings (ms per inference step), training and data (1.2M images and 1000 classes, batch 256,
weight decay 5e-4, dropout 0.5, 2-3 weeks on 4 GPUs, a week on 2 GPUs, 50x GPU speed-up, 6x faster
convergence with ReLU, 2048x more training patches, 3GB of GPU memory), dates, and the 56-layer plain
network of the degradation experiment (CIFAR-10, not in the zoo).
"""


# ---- assembling --------------------------------------------------------------------------

def index_page(analyses: dict[str, Analysis], results: list[claimslib.Result]) -> str:
    bad = sum(1 for r in results if r.claim.wrong)
    claim_topics = ", ".join(f"[{topic}](claims.md#{anchor(topic_heading(t, topic))})"
                             for t, topic in enumerate(topics(results), start=1))
    lines = [
        "# Reports\n",
        "Generated by `archcalc report` from `specs/*.json` and `archcalc/report/claims.json`; do not edit by hand. "
        "`archcalc report --check` fails when these files are stale; `archcalc report NAME --out DIR` writes one "
        "network's page. Tables are GitHub pipe tables: copy one into a slide or a course page as is.\n",
        f"- [The zoo](zoo.md): {len(analyses)} networks, one row each, grouped by family: year, depth, parameters, "
        "MACs, weights and activation memory, published accuracy with its source; "
        f"[accuracy figures the lectures quote](zoo.md#{anchor(QUOTED_HEADING)})",
        f"- [Lecture claims](claims.md): {len(results)} numeric claims of the lecture texts recomputed, "
        f"[{bad} wrong in their source](claims.md#wrong-in-the-source). Topics: {claim_topics}",
        "- [Tricks](tricks.md): " + ", ".join(f"[{title}](tricks.md#{anchor(title)})" for title in tricks.TITLES),
        "- Plots: [parameters against MACs of the zoo](plots/zoo_params_macs.svg) ([PNG](plots/zoo_params_macs.png)), "
        f"[per-layer parameters and activations of {PLOTTED_NETWORK}](plots/{PLOTTED_NETWORK}_layers.svg) "
        f"([PNG](plots/{PLOTTED_NETWORK}_layers.png))\n",
        "## Networks\n",
    ]
    lines += [f"- {family}: " + ", ".join(f"[{a.network.name}](networks/{a.network.name}.md)" for a in members)
              for family, members in families(analyses).items()]
    lines += ["", "## Plots\n",
              "![Parameters against MACs of the zoo, bubble area = activation memory](plots/zoo_params_macs.png)\n",
              f"![Per-layer parameters and activation memory of {PLOTTED_NETWORK}](plots/{PLOTTED_NETWORK}_layers.png)\n",
              "## Recorded runs\n",
              "Measurements of one machine, written by the tools that took them and never regenerated here: "
              "`measured/` (`python benchmarks/table_speed.py`: how fast `archcalc table` answers) and "
              "`bench/` (`archcalc bench ... --out reports/bench/DEVICE.md`: GPU latency, when a GPU was at hand)."]
    return "\n".join(lines) + "\n"


def build(target: str | None = None) -> dict[str, bytes]:
    """Relative path -> content of every report file (one network's page when `target` is given)."""
    from . import plots

    claimslib.network.cache_clear()  # the specs may have changed since the last build
    claimslib.analysis.cache_clear()
    results = claimslib.results()
    if target is not None:
        network = load(target)
        return {f"networks/{network.name}.md": network_page(network, results).encode()}
    analyses = {name: analyze(load(name)) for name in zoo_index()}
    files = {f"networks/{name}.md": network_page(a.network, results, a) for name, a in analyses.items()}
    files["zoo.md"] = zoo_page(analyses, claimslib.accuracy())
    files["claims.md"] = claims_page(results)
    files["tricks.md"] = tricks.page(topic_link(results, "Inception module"))
    files["README.md"] = index_page(analyses, results)
    out = {path: text.encode() for path, text in files.items()}
    points = [(n, a.network.family, a.totals.params, a.totals.macs, a.activation_bytes) for n, a in analyses.items()]
    for suffix, data in plots.zoo_scatter(points).items():
        out[f"plots/zoo_params_macs.{suffix}"] = data
    if PLOTTED_NETWORK in analyses:
        for suffix, data in plots.layer_bars(analyses[PLOTTED_NETWORK]).items():
            out[f"plots/{PLOTTED_NETWORK}_layers.{suffix}"] = data
    return out


def write(out_dir: Path, files: dict[str, bytes], prune: bool) -> None:
    """Write what changed, remove temporary files left by killed runs, and (`prune`) pages no longer made."""
    targets = {path: confined(out_dir, path) for path in files}  # all checked before anything is written
    make_folder(out_dir)
    for leftover in temporaries(out_dir):
        _remove(out_dir / leftover)
    for path, data in sorted(files.items()):
        if not same_content(targets[path], data):
            write_atomic(targets[path], data)
    if prune:
        for path in managed(out_dir):
            if path not in files:
                _remove(out_dir / path)


def confined(out_dir: Path, relative: str) -> Path:
    """out_dir / relative, refused unless it stays inside out_dir (a spec names the pages)."""
    parts = relative.split("/")
    if any(part in ("", ".", "..") or "\\" in part or not part.isprintable() or len(part) > 255 for part in parts) \
            or Path(relative).is_absolute():
        raise FileError(f"refusing to write {relative!r}: not a plain file name inside the folder", file=str(out_dir))
    target = out_dir / relative
    try:
        inside = target.resolve().is_relative_to(out_dir.resolve())
    except (OSError, RuntimeError) as exc:
        raise FileError(f"cannot write {relative!r}: {exc}", file=str(out_dir)) from None
    if not inside:
        raise FileError(f"refusing to write {relative!r}: it resolves outside the folder", file=str(out_dir))
    return target


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise FileError(f"cannot remove: {reason(exc)}", file=str(path)) from None


def _files_under(out_dir: Path) -> list[Path]:
    """Files in out_dir and its sub-folders, two levels down: as deep as a report goes."""
    found: list[Path] = []
    folders = [(out_dir, 0)]
    try:
        while folders:
            folder, level = folders.pop()
            if not folder.is_dir():
                continue
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False) and level < 1:
                        folders.append((Path(entry.path), level + 1))
                    elif entry.is_file(follow_symlinks=False):
                        found.append(Path(entry.path))
    except OSError as exc:
        raise FileError(f"cannot list: {reason(exc)}", file=str(exc.filename or out_dir)) from None
    return found


def temporaries(out_dir: Path) -> list[str]:
    """Temporary files a killed run left behind (archcalc.files names them)."""
    return sorted(str(p.relative_to(out_dir)) for p in _files_under(out_dir) if is_temporary(p.name))


def managed(out_dir: Path) -> list[str]:
    found = {p.relative_to(out_dir) for p in _files_under(out_dir) if any(p.match(pattern) for pattern in MANAGED)}
    return sorted(str(p) for p in found if p.parts[0] not in RECORDED and not is_temporary(p.name))


def generate(out_dir: Path, target: str | None = None) -> list[str]:
    files = build(target)
    write(out_dir, files, prune=target is None)
    return sorted(files)


def stale(out_dir: Path, target: str | None = None) -> list[str]:
    """Files of `out_dir` that differ from a fresh generation, are missing or should not be there."""
    with tempfile.TemporaryDirectory(prefix="archcalc-report-") as temporary:
        fresh = Path(temporary)
        generate(fresh, target)
        return compare(out_dir, fresh, complete=target is None)


def compare(out_dir: Path, fresh: Path, complete: bool = True) -> list[str]:
    """Files of `out_dir` that differ from those of `fresh`, are missing, or (`complete`) are extra.

    Plots are compared byte for byte only when the same matplotlib version drew them (their SVGs
    name it): another version draws the same figure with other bytes.
    """
    expected = managed(fresh)
    present = set(managed(out_dir)) if out_dir.is_dir() else set()
    same_drawing = plotted_with(out_dir) == plotted_with(fresh)
    compared = [p for p in expected if p in present and (same_drawing or not _is_plot(p))]
    problems = [f"{p} (missing)" for p in expected if p not in present]
    problems += [f"{p} (differs)" for p in compared if not same_content(out_dir / p, (fresh / p).read_bytes())]
    if complete:
        problems += [f"{p} (not generated)" for p in sorted(present - set(expected))]
    problems += [f"{p} (a temporary file of an interrupted run)" for p in temporaries(out_dir)]
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
