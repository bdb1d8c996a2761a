"""The `archcalc` command. torch, fvcore, pandas and matplotlib load only in the commands that need them."""
from __future__ import annotations

import os
import signal
import sys

import click

from . import fmt
from .errors import ArchcalcError, SpecError, UsageError

FORMATS = ["text", "markdown", "csv", "json"]
CONVENTIONS = ["torchvision", "keras"]


class _Cli(click.Group):
    """Every error, archcalc's or the command line's, is one line on stderr: `archcalc: ...`."""

    def invoke(self, ctx: click.Context):
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()
            return result
        except ArchcalcError as exc:
            _say(f"archcalc: {exc}")
            sys.exit(exc.exit_code)
        except OSError as exc:  # writing the output: a full disk, a closed pipe
            from .files import reason

            _silence_stdout()
            _say(f"archcalc: {exc.filename or '<stdout>'}: cannot write: {reason(exc)}")
            sys.exit(2)

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        previous = _on_sigterm(_interrupt)  # unwind (temporary files go) as on Ctrl-C
        try:
            super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as exc:
            command = exc.ctx.command_path if exc.ctx else "archcalc"
            click.echo(f"archcalc: {exc.format_message()} (see '{command} --help')", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"archcalc: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("archcalc: interrupted", err=True)
            sys.exit(130)
        finally:
            if previous is not None:
                _on_sigterm(previous)
        sys.exit(0)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _on_sigterm(handler):
    """Install `handler` for SIGTERM where none was set; the handler it replaced, else None."""
    try:
        previous = signal.getsignal(signal.SIGTERM)
        if previous is signal.SIG_DFL or handler is not _interrupt:
            signal.signal(signal.SIGTERM, handler)
            return previous
    except ValueError:  # not the main thread
        pass
    return None


def _say(line: str) -> None:
    try:
        click.echo(line, err=True)
    except OSError:
        pass


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the exit's flush does not fail a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real stdout (tests capture it)
        pass


class InputShape(click.ParamType):
    """CxHxW, HxW (the spec's channels) or N (NxN; N features for a flat spec)."""

    name = "CxHxW"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            dims = tuple(int(part) for part in value.lower().replace("×", "x").split("x"))
        except ValueError:
            self.fail(f"{value!r}: expected CxHxW, HxW or N, e.g. 3x224x224", param, ctx)
        if not 1 <= len(dims) <= 3 or min(dims) < 1:
            self.fail(f"{value!r}: expected CxHxW, HxW or N with positive sizes", param, ctx)
        if max(dims) >= 2**31:
            self.fail(f"{value[:40]!r}: sizes are below 2**31", param, ctx)
        return dims


class ListOf(click.ParamType):
    """Comma-separated values of one kind, duplicates dropped: `1,32,256` or `fp32,bf16`."""

    def __init__(self, item: click.ParamType, example: str, each: str):
        self.item, self.example, self.each = item, example, each
        self.name = f"{item.name}[,...]"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        values = []
        for part in (part.strip() for part in str(value).split(",")):
            try:
                values.append(self.item.convert(part, param, ctx))
            except click.BadParameter:
                self.fail(f"{value!r}: {part!r} is not {self.each} (e.g. {self.example})", param, ctx)
        return tuple(dict.fromkeys(values))


DTYPES = ["fp32", "fp16", "bf16", "int8"]
TIMED_DTYPES = DTYPES[:3]  # what bench can run a model in
BATCHES = ListOf(click.IntRange(min=1), "1,32,256", "a whole number of at least 1")

input_option = click.option("--input", "dims", type=InputShape(), default=None,
                            help="Input size instead of the spec's: CxHxW, HxW (the spec's channels) or N (NxN; N features for a flat spec).")
convention_option = click.option(
    "--convention", type=click.Choice(CONVENTIONS), default="torchvision", show_default=True,
    help="keras: count BN moving statistics as (non-trainable) parameters, as model.summary() does.",
)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="archcalc")
def main() -> None:
    """What a convolutional network costs: shapes, parameters, MACs, memory, receptive field."""


@main.command()
@click.argument("target")
@input_option
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Images per batch (memory figures).")
@click.option("--dtype", type=click.Choice(DTYPES), default="fp32", show_default=True, help="Bytes per value (memory figures).")
@click.option("--format", "out_format", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("--depth", type=click.IntRange(min=1), default=None, help="Fold everything deeper than N into its block.")
@convention_option
def table(target: str, dims: tuple[int, ...] | None, batch: int, dtype: str, out_format: str, depth: int | None,
          convention: str) -> None:
    """Per-layer table of a zoo network (NAME) or a spec file (PATH, PATH:VARIANT)."""
    from .core.calc import analyze
    from .core.spec import load
    from .render import render

    click.echo(render(analyze(load(target), dims, batch, dtype), out_format, depth, convention), nl=False)


@main.command("list")
def list_networks() -> None:
    """The built-in zoo: name, family, input, parameters, MACs."""
    from tabulate import tabulate

    from .core.calc import analyze
    from .core.spec import load, zoo_index

    rows = []
    for name in zoo_index():
        analysis = analyze(load(name))
        t = analysis.totals
        rows.append([name, analysis.network.family, fmt.shape(analysis.input_shape), f"{t.params:,}", f"{t.macs / 1e9:,.3f}"])
    click.echo(tabulate(rows, ["Name", "Family", "Input", "Params", "GMACs"], disable_numparse=True,
                        colalign=("left", "left", "right", "right", "right")))


@main.command()
@click.argument("targets", nargs=-1)
@convention_option
def check(targets: tuple[str, ...], convention: str) -> None:
    """Check every published figure (`expect`) of the zoo or of the given specs; exit 1 on a miss.

    Without targets the lecture claims of archcalc/report/claims.json are checked too; a figure marked
    wrong in its source passes as long as it stays wrong.

    Each figure names its convention (`params` or `params_keras`); with --convention keras the
    Keras-convention total of each network is printed as well.
    """
    from .core.calc import analyze
    from .core.figures import check_network, describe
    from .core.spec import load, zoo_index

    names = targets or tuple(zoo_index())
    failures = total = 0
    for name in names:
        network = load(name)
        analysis = analyze(network)
        if convention == "keras":
            click.echo(f"       {name}: params in Keras' convention (BN moving statistics included): "
                       f"{analysis.totals.params_keras:,}")
        for verdict in check_network(network, analysis):
            total += 1
            failures += not verdict.ok
            click.echo(describe(verdict))
    if not targets:  # the whole zoo: the lecture claims (archcalc/report/claims.json) as well
        from .report.claims import describe as describe_claim
        from .report.claims import results as claim_results

        for result in claim_results():
            total += 1
            failures += not result.ok
            click.echo(describe_claim(result))
    click.echo(f"{total - failures} passed, {failures} failed")
    sys.exit(1 if failures else 0)


@main.command()
def schema() -> None:
    """Print the JSON Schema of specs (the one in specs/schema.json)."""
    from .core.schema import schema_text

    click.echo(schema_text(), nl=False)


@main.command()
@click.argument("target", required=False)
@input_option
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Images per traced batch.")
@click.option("--all", "every", is_flag=True, help="Verify the whole zoo; one line per network.")
@click.option("--no-rf", is_flag=True, help="Skip the receptive-field measurement.")
def verify(target: str | None, dims: tuple[int, ...] | None, batch: int, every: bool, no_rf: bool) -> None:
    """Build the network in torch, trace it with fvcore and compare with the calculator.

    Per layer: output shape, parameters and fvcore's flop count (one multiply-add = 1).
    Exit 0 when everything agrees, 1 when something disagrees, 2 on bad input.
    """
    from .core.calc import analyze
    from .core.spec import load
    from .deps import require_fvcore
    from .torch.verify import render_report, summary_line, verify_network

    if bool(target) == every:
        raise UsageError("verify takes a network (NAME or PATH) or --all, not both")
    require_fvcore()
    if not every:
        report = verify_network(analyze(load(target), dims, batch), receptive_field=not no_rf)
        click.echo(render_report(report), nl=False)
        sys.exit(0 if report.ok else 1)
    from .core.spec import zoo_index

    lines, failures = [], 0
    with click.progressbar(list(zoo_index()), label="verifying", file=sys.stderr, item_show_func=lambda n: n) as names:
        for name in names:
            try:
                report = verify_network(analyze(load(name), dims, batch), receptive_field=not no_rf)
                lines.append(summary_line(report))
                failures += not report.ok
            except SpecError as exc:
                lines.append(f"{name}: error: {exc}")
                failures += 1
    click.echo("\n".join(lines))
    click.echo(f"{len(lines) - failures} agree, {failures} disagree")
    sys.exit(1 if failures else 0)


@main.command()
@click.argument("names", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every network of the zoo.")
@input_option
@click.option("--batch", "batches", type=BATCHES, default="1", show_default=True, help="Comma-separated batch sizes, e.g. 1,32,256.")
@click.option("--dtype", "dtypes", type=ListOf(click.Choice(TIMED_DTYPES), "fp32,bf16", f"one of {', '.join(TIMED_DTYPES)}"), default="fp32", show_default=True,
              help="Comma-separated: fp32, fp16, bf16.")
@click.option("--channels-last", is_flag=True, help="Model and input in channels_last memory format.")
@click.option("--device", type=click.Choice(["cuda", "cpu"]), default=None, help="Default: cuda when torch sees a GPU, else cpu.")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model (with --cuda-graph: mode reduce-overhead).")
@click.option("--cuda-graph", is_flag=True, help="Capture one forward pass in a CUDA graph and time its replay.")
@click.option("--l2-flush", is_flag=True, help="Overwrite a buffer larger than the GPU's L2 before each repetition.")
@click.option("--warmup-iters", type=click.IntRange(min=0), default=10, show_default=True)
@click.option("--warmup-seconds", type=click.FloatRange(min=0), default=1.0, show_default=True)
@click.option("--iters", type=click.IntRange(min=1), default=50, show_default=True, help="Timed repetitions.")
@click.option("--matmul-size", type=click.IntRange(min=16), default=None, help="Side of the peak matmul (default 8192 on CUDA, 1024 on CPU).")
@click.option("--format", "out_format", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True)
@click.option("--out", "outs", multiple=True, metavar="FILE", help="Also write the run to FILE (.json, .md, else --format); repeatable.")
def bench(names: tuple[str, ...], every: bool, dims: tuple[int, ...] | None, batches: tuple[int, ...], dtypes: tuple[str, ...],
          channels_last: bool, device: str | None, compile_: bool, cuda_graph: bool, l2_flush: bool,
          warmup_iters: int, warmup_seconds: float, iters: int, matmul_size: int | None, out_format: str,
          outs: tuple[str, ...]) -> None:
    """Measure latency, images/s, TFLOP/s and memory of networks, next to archcalc's figures."""
    from .core.calc import analyze
    from .core.spec import load, zoo_index
    from .deps import require_torch
    from .torch.bench import NOISE_FACTOR, Settings, run
    from .torch.bench_render import ProgressBar, render, write_outputs

    if bool(names) == every:
        raise UsageError("bench takes network names (or spec paths) or --all, not both and not neither")
    analyses = [analyze(load(name), dims) for name in (names or tuple(zoo_index()))]
    torch = require_torch()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    settings = Settings(device, channels_last, compile_, cuda_graph, l2_flush, warmup_iters, warmup_seconds, iters, matmul_size)
    result = run(analyses, batches, dtypes, settings, progress=ProgressBar(sys.stderr))
    click.echo(render(result, out_format), nl=False)
    write_outputs(result, outs, out_format)
    for r in result.results:
        if r.noisy:
            click.echo(f"WARNING: {r.network} batch {r.batch} {r.dtype}: median {r.latency.median_ms:.4f} ms is within "
                       f"{NOISE_FACTOR}x of the empty timed region ({r.overhead_ms:.4f} ms): mostly timer overhead", err=True)
    if result.interrupted:
        click.echo(f"archcalc: interrupted; {len(result.results)} of {result.planned} configurations measured"
                   + (f", written to {', '.join(outs)}" if outs else ""), err=True)
        sys.exit(130)


@main.command("report")
@click.argument("target", required=False)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="reports", show_default=True,
              help="Folder of the report.")
@click.option("--check", "check_only", is_flag=True, help="Regenerate into a temporary folder; exit 1 listing stale files.")
def report_command(target: str | None, out_dir: str, check_only: bool) -> None:
    """Markdown pages and plots of the zoo, the lecture claims and the tricks (one network's page with TARGET)."""
    from pathlib import Path

    from .report.pages import generate, plot_note, stale

    if check_only:
        problems = stale(Path(out_dir), target)
        for problem in problems:
            click.echo(f"stale: {Path(out_dir) / problem}")
        if target is None and (note := plot_note(Path(out_dir))):
            click.echo(note, err=True)
        if problems:
            click.echo(f"{len(problems)} stale file(s); run `archcalc report` to regenerate", err=True)
            sys.exit(1)
        click.echo(f"{out_dir} is up to date")
        return
    written = generate(Path(out_dir), target)
    click.echo(f"{len(written)} files in {out_dir}")


if __name__ == "__main__":
    main()
