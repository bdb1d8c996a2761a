"""`archcalc verify`: every column against torch and fvcore, on archcalc's build of the network or on your module."""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from .. import fmt
from ..errors import SpecError, UsageError, one_line
from .common import (
    TIMED_DTYPES,
    batch_option,
    dtype_option,
    input_option,
    load_target,
    takes_target,
)

if TYPE_CHECKING:
    pass


@click.command()
@click.argument("target", required=False)
@input_option
@batch_option("Images per traced batch; comma-separated for several.")
@dtype_option(TIMED_DTYPES, "The dtype the model runs in (the counts do not depend on it).")
@click.option("--all", "every", is_flag=True, help="Verify the whole zoo; one line per network and configuration.")
@click.option("--no-rf", is_flag=True, help="Skip the receptive-field measurement.")
@click.option("--model", "model_target", metavar="MODULE:CALLABLE", help="Compare with your own module instead of archcalc's build.")
@click.option("--match", "match_by", type=click.Choice(["name", "order"]), default="name", show_default=True,
              help="With --model: pair layers with modules by name, or the k-th weighted layer with the k-th weighted module.")
@click.option("--train", is_flag=True, help="Verify a training step instead: the bytes autograd keeps, backward MACs, "
                                            "gradients, optimizer state and the step's peak, on the CPU.")
@click.option("--optimizer", type=click.Choice(["sgd", "momentum", "adam", "adamw"]), default="adamw",
              show_default=True, help="With --train: the optimizer that takes the step.")
@takes_target(" With --model: that callable's as well.")
def verify(target: str | None, dims: tuple[int, ...] | None, batches: tuple[int, ...], dtypes: tuple[str, ...],
           every: bool, no_rf: bool, model_target: str | None, match_by: str, train: bool, optimizer: str,
           kwargs_text: str | None) -> None:
    """Build the network in torch, trace it with fvcore and compare with the calculator.

    Per layer: output shape, parameters and fvcore's flop count (one multiply-add = 1).
    With --model the spec is compared with your own module (MODULE:CALLABLE or FILE.py:CALLABLE).
    Exit 0 when everything agrees, 1 when something disagrees, 2 on bad input, 130 when
    interrupted (what was verified is printed).
    """
    from ..core.calc import analyze
    from ..deps import require_fvcore
    from ..targets import refuse_stray_kwargs
    from ..torch.verify import verify_network
    from ..torch.verify_render import render_report, summary_line

    if not target and not every:
        raise UsageError("verify needs a network: a TARGET (a zoo NAME, a spec, a torch: or .onnx model; see --help), "
                         "or --all for the whole zoo")
    if target and every:
        raise UsageError("verify takes a network (TARGET) or --all, not both")
    refuse_stray_kwargs(kwargs_text, [target], elsewhere=bool(model_target))
    if train:
        _verify_train(target, dims, batches, dtypes, optimizer, kwargs_text)
    require_fvcore()
    if model_target:
        from ..importers.loading import parse_kwargs
        from ..importers.verify_model import verify_model

        if not target:  # --all
            raise UsageError("--model takes a network (TARGET), not --all")
        network, left = load_target(target, dims, kwargs_text, alone=False)
        report = verify_model(network, left, batches[0], model_target, match_by, parse_kwargs(kwargs_text))
        click.echo(render_report(report), nl=False)
        sys.exit(0 if report.ok else 1)

    def configurations(name: str):
        network, left = load_target(name, dims, kwargs_text, alone=False)
        analysis = analyze(network, left)
        return [analysis.scaled(b, d) for d in dtypes for b in batches]

    if target:  # not --all
        reports = [verify_network(c, receptive_field=not no_rf) for c in configurations(target)]
        click.echo("\n".join(render_report(report) for report in reports), nl=False)
        sys.exit(0 if all(report.ok for report in reports) else 1)
    from ..core.spec import zoo_index
    from ..progress import ProgressBar

    names = list(zoo_index())
    progress = ProgressBar(sys.stderr)
    lines, failures, finished, interrupted = [], 0, 0, False
    try:
        for name in names:
            progress(finished, len(names), f"verifying {name}")
            try:
                for config in configurations(name):
                    report = verify_network(config, receptive_field=not no_rf)
                    lines.append(summary_line(report))
                    failures += not report.ok
            except SpecError as exc:
                lines.append(f"{name}: error: {exc}")
                failures += 1
            finished += 1
        progress(len(names), len(names), "verified")
    except KeyboardInterrupt:  # keep what was measured, as bench does
        interrupted = True
    click.echo("\n".join(lines))
    click.echo(f"{len(lines) - failures} agree, {failures} disagree")
    if interrupted:
        click.echo(f"archcalc: interrupted; {finished} of {len(names)} networks verified", err=True)
        sys.exit(130)
    sys.exit(1 if failures else 0)


def _verify_train(target: str | None, dims: tuple[int, ...] | None, batches: tuple[int, ...], dtypes: tuple[str, ...],
                  optimizer: str, kwargs_text: str | None) -> None:
    """verify --train: each training figure beside torch's (archcalc.torch.train); exit 1 on a disagreement."""
    import time

    from ..core.calc import analyze
    from ..core.spec import zoo_index
    from ..torch.train import checks, render_checks, small_input, summary

    failures = 0
    for name in [target] if target else list(zoo_index()):
        network, left = load_target(name, dims, kwargs_text, alone=False)
        left = left if target or left else small_input(network)  # --all: each network at a small input
        for batch, dtype in [(b, d) for d in dtypes for b in batches]:
            start = time.perf_counter()
            try:
                analysis = analyze(network, left, batch, dtype)
                found = checks(analysis, optimizer)
            except (SpecError, MemoryError, RuntimeError) as exc:  # --all goes on past a network torch cannot run
                click.echo(one_line(f"BAD {name}: error: {exc}"))
                failures += 1
                continue
            shown = f"{batch}, {dtype}" + ("" if target else f", input {fmt.shape(analysis.input_shape)}")
            click.echo(render_checks(network.name, shown, found) if target
                       else summary(network.name, shown, found, time.perf_counter() - start))
            failures += not all(c.ok for c in found)
    sys.exit(1 if failures else 0)
