"""`archcalc table` and `archcalc fit`: a network's per-layer table, and the batch that fits a card."""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from .common import (
    DTYPES,
    MAX_BATCH,
    TIMED_DTYPES,
    MemorySize,
    batch_option,
    convention_option,
    dtype_option,
    echo_notes,
    format_option,
    input_option,
    load_target,
    optimizer_options,
    out_option,
    table_width,
    takes_target,
    train_options,
    training_counted,
    write_outputs,
)

if TYPE_CHECKING:
    from ..core.spec import Network


@click.command()
@click.argument("target")
@input_option
@batch_option("Images per batch (memory and per-batch figures); several give one totals line per configuration.")
@dtype_option(DTYPES, "Bytes per value of the memory figures.")
@format_option
@click.option("--depth", type=click.IntRange(min=1), default=None, help="Fold everything deeper than N into its block.")
@convention_option
@click.option("--all-warnings", is_flag=True,
              help="Also note output sizes that are not whole but drop no input pixel (only padding goes unused).")
@click.option("--wide", is_flag=True, help="Every column and whole paths, even when wider than the terminal.")
@click.option("--tree", is_flag=True,
              help="Text and Markdown: every block's row (its subtotal) above what it holds, names indented by depth.")
@click.option("--share", is_flag=True, help="Text and Markdown: each row's % of the network's params and MACs.")
@train_options
@out_option
@takes_target()
def table(target: str, dims: tuple[int, ...] | None, batches: tuple[int, ...], dtypes: tuple[str, ...], out_format: str,
          depth: int | None, convention: str, all_warnings: bool, wide: bool, tree: bool, share: bool, train: bool,
          optimizer: str, master: str | None, outs: tuple[str, ...], kwargs_text: str | None) -> None:
    """Per-layer table of a network: a zoo NAME, a spec file, FILE:VARIANT, a torch model or an ONNX file.

    Per-layer figures are per image (shapes carry no batch dimension); each --batch and --dtype
    pair is one configuration line in the totals (MACs per batch, weights, activations, peak live).
    On a terminal the text table fits its width (paths shortened, then Type, RF and Activations
    hidden, with a note on stderr); piped, it keeps every column. Warnings (an output size whose
    rounding drops input pixels) go to stderr; JSON lists every inexact size with its kind.
    With --train, the cost of a training step too: backward MACs and the bytes autograd keeps per
    layer; gradients, optimizer state and the step's peak per configuration (docs/cli.md).
    """
    with training_counted(train, optimizer, master, dtypes[0]):
        _table(load_target(target, dims, kwargs_text), batches, dtypes, out_format, depth, convention, all_warnings, wide,
               tree, share, outs)


def _table(loaded: tuple[Network, tuple[int, ...] | None], batches: tuple[int, ...], dtypes: tuple[str, ...],
           out_format: str, depth: int | None, convention: str, all_warnings: bool, wide: bool, tree: bool, share: bool,
           outs: tuple[str, ...]) -> None:
    from ..core.calc import analyze
    from ..render import View, render, render_text, warning_lines

    network, left = loaded
    analysis = analyze(network, left, batches[0], dtypes[0])
    configurations = [analysis.scaled(b, d) for d in dtypes for b in batches]
    view = View(tree, share)

    def produce(kind: str) -> str:
        return render(analysis, kind, depth, convention, configurations, view=view)

    write_outputs(outs, produce, out_format)
    if out_format == "text":
        fitted = render_text(analysis, depth, convention, configurations, table_width(wide), view)
        click.echo(fitted.text, nl=False)
        echo_notes([fitted.hint] if fitted.hint else [])
    else:
        click.echo(produce(out_format), nl=False)
    if out_format != "json":  # JSON keeps them as data
        echo_notes(warning_lines(analysis, notes=all_warnings))


@click.command()
@click.argument("target")
@input_option
@click.option("--memory", type=MemorySize(), required=True, help="The memory of the card: 24GiB, 80GB, 512MiB.")
@click.option("--batch", type=click.IntRange(min=1, max=MAX_BATCH), default=None,
              help="Say whether this batch fits (exit 1 when it does not) instead of finding the largest.")
@click.option("--dtype", type=click.Choice(TIMED_DTYPES), default="fp32", show_default=True,
              help="The dtype of weights, gradients and activations.")
@optimizer_options
@takes_target()
def fit(target: str, dims: tuple[int, ...] | None, memory: int, batch: int | None, dtype: str, optimizer: str,
        master: str | None, kwargs_text: str | None) -> None:
    """The largest batch whose training step fits in --memory, and what its peak is made of.

    The step's peak is weights + gradients + optimizer state + what autograd keeps at the end of the
    forward + the backward's largest transient (docs/conventions.md). With --batch, a one-line verdict
    for that batch and its breakdown; exit 1 when it does not fit (a CI budget).
    """
    from ..core import training
    from ..core.calc import analyze
    from ..render import fit_lines

    with training.counting(training.check_setup(optimizer, master), dtype):
        analysis = analyze(*load_target(target, dims, kwargs_text), 1, dtype)
        found = training.fit(analysis, memory)
        at = training.breakdown(analysis.scaled(batch=batch)) if batch else found.at_batch
    click.echo("\n".join(fit_lines(analysis.network.name, found, batch, at, optimizer, dtype, master)))
    sys.exit(1 if (found.batch < batch if batch else found.batch == 0) else 0)
