"""`archcalc list` and `archcalc check`: the zoo, and the figures specs state against archcalc's."""
from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, Any, NamedTuple

import click

from .. import fmt
from ..core.alloc import paused_gc
from ..errors import ArchcalcError, UsageError, one_line
from .common import (
    InputShape,
    convention_option,
    kwargs_of,
    say,
    takes_target,
)

if TYPE_CHECKING:
    pass


@click.command("list")
@paused_gc  # the whole zoo: its trees stay alive to the end, and hold no cycles (core.alloc)
def list_networks() -> None:
    """The built-in zoo by family and year: name, year, input, parameters, MACs per image."""
    from ..core.calc import analyze
    from ..core.spec import load, zoo_index

    analyses = [analyze(load(name)) for name in zoo_index()]
    rows = [[one_line(a.network.name), one_line(a.network.family), one_line(str(a.network.meta.get("year", ""))),
             fmt.shape(a.input_shape),
             fmt.count(a.totals.params), fmt.scaled(a.totals.macs)] for a in zoo_order(analyses)]
    click.echo(fmt.text_table(rows, ["Name", "Family", "Year", "Input", "Params", "MACs"], numeric=[2, 3, 4, 5]))


def natural_key(name: str) -> tuple:
    """vgg11 < vgg16 < vgg16_bn < vgg19, resnet50 < resnet50_v1 < resnet101: numbers by value."""

    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.findall(r"\d+|\D+", name))


def zoo_order(analyses: list) -> list:
    """Families by year, then name; inside a family the variants by their stem (vgg16 and vgg16_c, resnet50 and
    resnet50_v1 side by side, numbers by value), the bare stem first, then as the family file lists them."""
    position = {a.network.name: i for i, a in enumerate(analyses)}
    first_year: dict[str, int] = {}
    for a in analyses:
        year = a.network.meta.get("year")
        first_year[a.network.family] = min(first_year.get(a.network.family, 9999), year if isinstance(year, int) else 9999)

    def key(a) -> tuple:
        name = a.network.name
        stem = name.split("_")[0]
        return (first_year[a.network.family], a.network.family, natural_key(stem), name != stem, position[name])

    return sorted(analyses, key=key)


@click.command()
@click.argument("targets", nargs=-1, metavar="[TARGET]...")
@convention_option
@click.option("-v", "--verbose", is_flag=True, help="List every figure, not only the failures.")
@click.option("--claims", "with_claims", is_flag=True,
              help="Judge the lecture claims of archcalc/report/claims.json as well.")
@click.option("--format", "out_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: every figure with its verdict, for machines.")
@click.option("--strict", is_flag=True, help="Fail a spec with `measured` rows (ops an import measured for want of a "
                                             "layer type, valid at one input only); without it they are listed and pass.")
@click.option("--input", "dims", type=InputShape(), default=None,
              help="The input a torch: or .onnx target is imported at (CxHxW); a spec is checked at its own input.")
@paused_gc  # the whole zoo: its trees stay alive to the end, and hold no cycles (core.alloc)
@takes_target()
def check(targets: tuple[str, ...], convention: str, verbose: bool, with_claims: bool, out_format: str, strict: bool,
          dims: tuple[int, ...] | None, kwargs_text: str | None) -> None:
    """Check the published figures and budgets (`expect`) of the zoo or of the given targets; exit 1 on a failure.

    Prints the failures and a summary (-v: every figure), one verdict word first on each line: ok,
    known-wrong (a figure wrong in its source, still wrong), or in capitals MISS, OVER, UNDER
    (a budget), MATCHES (marked wrong but it adds up). --claims judges the lecture claims of
    archcalc/report/claims.json too. A family file named without a variant checks each variant.
    Rows an import measured (an op archcalc has no layer type for) are listed on a `measured` line
    that passes; with --strict they fail (MEASURED). Exit 0: all pass; 1: a failure; 2: bad input.
    """
    import json

    from ..core.calc import analyze
    from ..core.spec import zoo_index
    from ..targets import is_imported, refuse_stray_kwargs, resolve_each

    entries: list[_Entry] = []
    measured: list[dict] = []
    zoo = zoo_index()
    refuse_stray_kwargs(kwargs_text, targets)
    if dims is not None and not any(is_imported(t) for t in targets):
        raise UsageError("--input is the size a torch: or .onnx target is imported at; a spec is checked at its own "
                         "input, the one its figures are for")
    kwargs = kwargs_of(kwargs_text)

    def analysed(target: str) -> list:
        if dims is not None and not is_imported(target):
            raise UsageError(f"{target}: a spec is checked at its own input, the one its figures are for: "
                             "--input goes with the torch: and .onnx targets")
        if with_claims and target in zoo:  # the zoo's analyses shared with the claims, computed on the same networks
            from ..report.claims import zoo_analysis

            return [zoo_analysis(target)]
        return [analyze(t.network, t.dims) for t in resolve_each(target, dims, kwargs)]  # a family: each variant

    unreadable = []  # one line each: the other targets are still checked, and the exit is 2
    for target in targets or tuple(zoo):
        try:
            analyses = analysed(target)
        except ArchcalcError as exc:
            unreadable.append(one_line(f"archcalc: {exc}"))
            say(unreadable[-1])
            continue
        for analysis in analyses:
            _check_one(analysis, target if len(analyses) == 1 else analysis.network.name, convention, out_format,
                       strict, entries, measured)
    if with_claims:
        from ..report.claims import describe as describe_claim
        from ..report.claims import results as claim_results

        for result in claim_results():
            entries.append(_Entry.of(result.verdict, describe_claim(result), _claim_record(result)))
    failures = sum(1 for e in entries if not e.ok)
    known = sum(1 for e in entries if e.known_wrong)
    summary = f"{len(entries)} checked: {len(entries) - failures - known} ok, {known} known-wrong, {failures} failed"
    if out_format == "json":
        click.echo(json.dumps({"passed": len(entries) - failures, "failed": failures, "known_wrong": known,
                               "unreadable": unreadable, "measured": measured, "figures": [e.record for e in entries]},
                              indent=2))
    else:
        from ..report.lectures import cite

        for e in entries:
            if verbose or not e.ok:
                click.echo(cite(one_line(e.line)))  # a spec's sources and reasons, escaped
        if entries or not unreadable:  # nothing read: the error lines say it all
            click.echo(summary + (f", {len(unreadable)} not read" if unreadable else ""))
    sys.exit(2 if unreadable else 1 if failures else 0)


def _check_one(analysis, name: str, convention: str, out_format: str, strict: bool, entries: list,
               measured: list) -> None:
    """The verdicts on one network's `expect`, added to `entries`; a failure of its own first where the spec
    checks nothing (NOTHING), its model changed since the import (CHANGED) or, `strict`, it has measured rows
    (MEASURED; else a passing `measured` line, and the rows in `measured` for JSON)."""
    from ..core.calc import check_network
    from ..core.figures import CHANGED, MEASURED, NOTHING, describe
    from ..importers.commands import model_changed

    network = analysis.network
    rows = [{"network": network.name, "path": layer.path, "op": layer.attrs["op"], "at": list(layer.attrs["at"])}
            for layer in _measured_layers(network.root)]
    if rows:
        listed = ", ".join(f"{row['path']} ({row['op']})" for row in rows)
        what = (f"{len(rows)} row{'s' if len(rows) > 1 else ''} measured by the import at {fmt.shape(analysis.input_shape)} "
                f"(ops archcalc has no layer type for; valid at that input only): {listed}")
        if strict:
            entries.append(_Entry(False, False, f"{MEASURED:<11} {one_line(name)}: {one_line(what)}",
                                  {"network": network.name, "verdict": MEASURED, "ok": False, "rows": rows}))
        else:
            measured.extend(rows)
            if out_format == "text":
                click.echo(f"{MEASURED.lower():<11} {one_line(name)}: {one_line(what)}; --strict fails them")
    changed = model_changed(network.meta, network.file)
    if changed:  # the figures below are the old model's
        entries.append(_Entry(False, False, f"{CHANGED:<11} {one_line(name)}: {one_line(changed)}",
                              {"network": network.name, "verdict": CHANGED, "ok": False, "reason": changed}))
    if not network.expect:  # a CI gate that checks nothing fails
        entries.append(_Entry(False, False, f"{NOTHING:<11} {one_line(name)}: the spec has no `expect`: no figure "
                                            "or budget to check", {"network": network.name, "verdict": NOTHING, "ok": False}))
    if convention == "keras" and out_format == "text":
        click.echo(f"{'note':<11} {one_line(name)}: params in Keras' convention (BN moving statistics included): "
                   f"{analysis.totals.params_keras:,}")
    for checked in check_network(network, analysis):
        entries.append(_Entry.of(checked.verdict, describe(checked), _figure_record(checked)))


def _measured_layers(node) -> list:
    """The `measured` layers under `node`, in the order of the spec."""
    from ..core.spec import Group

    if isinstance(node, Group):
        return [layer for child in node.children for layer in _measured_layers(child)]
    return [node] if node.type == "measured" else []


class _Entry(NamedTuple):
    """One line of `check`: whether it passes, whether it is a figure known to be wrong, the line, its JSON record."""

    ok: bool
    known_wrong: bool
    line: str
    record: dict

    @classmethod
    def of(cls, verdict: Any, line: str, record: dict) -> "_Entry":
        return cls(verdict.ok, verdict.ok and verdict.figure.wrong, line, record)


def _verdict_record(verdict) -> dict:
    exact = verdict.exact
    if exact is not None and not isinstance(exact, (int, list)):
        exact = "global" if exact == float("inf") else float(exact)
    return {"verdict": verdict.word, "ok": verdict.ok, "status": verdict.status, "computed": exact}


def _figure_record(checked) -> dict:
    e = checked.expect
    figure = {"value": e.value} if not e.figure.is_budget else {"min": e.figure.minimum, "max": e.figure.maximum}
    return {"network": checked.network, "what": e.what, "layer": e.layer, **figure, "unit": e.unit,
            "batch": e.batch, "dtype": e.dtype, "source": e.source or None, "reason": e.reason or None,
            **_verdict_record(checked.verdict)}


def _claim_record(result) -> dict:
    c = result.claim
    return {"claim": c.id, "value": c.value, "unit": c.unit, "sources": list(c.sources), **_verdict_record(result.verdict)}
