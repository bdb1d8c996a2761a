"""`archcalc diagram`, `archcalc html` and `archcalc report`: the pictures, the explorer and the lecture pages."""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from ..core.alloc import paused_gc
from ..errors import UsageError
from .common import (
    FilePath,
    InputShape,
    echo_notes,
    input_option,
    load_target,
    takes_target,
    train_options,
    training_counted,
)

if TYPE_CHECKING:
    pass


@click.command()
@click.argument("target")
@click.option("-o", "--out", "out", required=True, metavar="FILE",
              help="FILE.svg or FILE.png; - writes the SVG to stdout.")
@input_option
@click.option("--depth", type=click.IntRange(min=1), default=None, help="Draw every group at depth N as one box.")
@click.option("--focus", metavar="PATH", help="Draw one block or layer only (its path, or the end of it).")
@click.option("--horizontal", is_flag=True, help="Flow left to right instead of top to bottom.")
@click.option("--annotate", metavar="LIST", help="Figures in each box: params,macs,rf.")
@click.option("--scale", is_flag=True, help="Box size grows with the feature map (width) and the channels (thickness).")
@click.option("--full", is_flag=True, help="Every layer, however large the figure (by default it folds to fit 2,000 px).")
@takes_target()
def diagram(target: str, out: str, dims: tuple[int, ...] | None, depth: int | None, focus: str | None, horizontal: bool,
            annotate: str | None, scale: bool, full: bool, kwargs_text: str | None) -> None:
    """Architecture figure of a network: branches side by side, merges, skips, repeated blocks folded.

    Unless --depth or --full is given, groups fold to the deepest depth whose figure fits 2,000 px on
    its long side (a note on stderr says so and how to unfold)."""
    from ..core.calc import analyze
    from ..files import write_atomic
    from ..report.diagram import Options, fold_note, fold_to_fit, layout, parse_annotate, render

    suffix = "svg" if out == "-" else out.rsplit(".", 1)[-1].lower() if "." in out else ""
    if suffix not in ("svg", "png"):
        raise UsageError(f"-o {out!r}: the figure is written as .svg or .png (or - for SVG on stdout)")
    if full and depth is not None:
        raise UsageError("--full draws every layer and --depth folds them: give one of them")
    options = Options(depth, focus, horizontal, parse_annotate(annotate), scale)
    analysis = analyze(*load_target(target, dims, kwargs_text))
    note = None
    if full:
        drawn = render(analysis, options, suffix, layout(analysis, options))
    else:
        fitted = fold_to_fit(analysis, options)
        drawn = render(analysis, options, suffix, fitted.drawing)
        note = fold_note(fitted)
    if out == "-":
        click.echo(drawn, nl=False)
    else:
        write_atomic(out, drawn)
        click.echo(f"wrote {out}")
    echo_notes([note] if note else [])  # once the figure is written: a failed write is the one line


@click.command()
@click.argument("target")
@click.option("-o", "--out", "out", required=True, metavar="FILE", help="FILE.html")
@input_option
@click.option("--depth", type=click.IntRange(min=1), default=None, help="Groups at depth N start folded in the table.")
@train_options
@takes_target()
def html(target: str, out: str, dims: tuple[int, ...] | None, depth: int | None, train: bool, optimizer: str,
         master: str | None, kwargs_text: str | None) -> None:
    """One self-contained page: the figure, the totals, a foldable and sortable layer table, each layer's working."""
    from ..core.calc import analyze
    from ..files import write_atomic
    from ..report.diagram import figure_depth
    from ..report.html import page

    with training_counted(train, optimizer, master, "fp32"):
        analysis = analyze(*load_target(target, dims, kwargs_text))
        write_atomic(out, page(analysis, depth, figure_depth(analysis)))
    click.echo(f"wrote {out}")


@click.command("report")
@click.argument("target", required=False)
@click.option("--out", "out_dir", type=FilePath(file_okay=False), default="reports", show_default=True,
              help="The folder the pages and plots go to (a report is several files).")
@click.option("--check", "check_only", is_flag=True, help="Regenerate into a temporary folder; exit 1 listing stale files.")
@click.option("--force", is_flag=True,
              help="Write into a folder archcalc did not make (no .archcalc-manifest), over files of the names it "
                   "generates; it still removes nothing it did not write.")
@click.option("--input", "dims", type=InputShape(), default=None,
              help="With a torch: or .onnx TARGET: the input it is imported at (CxHxW).")
@paused_gc  # the whole zoo: its trees stay alive to the end, and hold no cycles (core.alloc)
@takes_target()
def report_command(target: str | None, out_dir: str, check_only: bool, force: bool, dims: tuple[int, ...] | None,
                   kwargs_text: str | None) -> None:
    """Markdown pages and plots of the zoo, the lecture claims and the tricks (one network's page with TARGET).

    archcalc lists the files it writes in DIR/.archcalc-manifest and removes or overwrites no other:
    a folder that holds files and no manifest is refused unless --force. A spec's page is at its own input.
    """
    from pathlib import Path

    from ..report.pages import generate, plot_note, stale
    from ..targets import is_imported, refuse_stray_kwargs

    refuse_stray_kwargs(kwargs_text, [target])
    if dims is not None and not (target and is_imported(target)):
        raise UsageError("--input is the size a torch: or .onnx TARGET is imported at; a spec's page is at its own input")
    network = load_target(target, dims, kwargs_text)[0] if target else None
    if check_only:
        problems = stale(Path(out_dir), target, network)
        for problem in problems:
            click.echo(f"stale: {Path(out_dir) / problem}")
        if target is None and (note := plot_note(Path(out_dir))):
            click.echo(note, err=True)
        if problems:
            click.echo(f"{len(problems)} stale file(s); run `archcalc report` to regenerate", err=True)
            sys.exit(1)
        click.echo(f"{out_dir} is up to date")
        return
    written = generate(Path(out_dir), target, force=force, network=network)
    click.echo(f"{len(written)} files in {out_dir}")
