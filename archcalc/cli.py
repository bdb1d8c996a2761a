"""The `archcalc` command. torch, fvcore, pandas and matplotlib load only in the commands that need them."""
from __future__ import annotations

import io
import os
import re
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import click

from . import fmt
from .core.alloc import paused_gc
from .core.quantities import DTYPE_BYTES
from .errors import ArchcalcError, SpecError, UsageError, one_line

if TYPE_CHECKING:
    from .core.spec import Network

FORMATS = ["text", "markdown", "csv", "json"]
CONVENTIONS = ["torchvision", "keras"]


class _Cli(click.Group):
    """Every error, archcalc's or the command line's, is one line on stderr: `archcalc: ...`."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Each command with its whole first sentence (wrapped, never cut with '...')."""
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

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
            _say(one_line(f"archcalc: {exc.filename or '<stdout>'}: cannot write: {reason(exc)}"))
            sys.exit(2)

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        _checked_writes()
        previous = _on_sigterm(_interrupt)  # unwind (temporary files go) as on Ctrl-C
        try:
            super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:  # `archcalc` alone: its help, as --help prints it
            click.echo(exc.ctx.get_help())
            sys.exit(0)
        except click.UsageError as exc:
            command = exc.ctx.command_path if exc.ctx else "archcalc"
            click.echo(one_line(f"archcalc: {_joined(exc.format_message())} (see '{command} --help')"), err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(one_line(f"archcalc: {exc.format_message()}"), err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("archcalc: interrupted", err=True)
            sys.exit(130)
        finally:
            if previous is not None:
                _on_sigterm(previous)
        sys.exit(0)


def _joined(message: str) -> str:
    """click's lists of choices (`Choose from:\n\ttorch,\n\tonnx`) on one line: `Choose from: torch, onnx`."""
    return re.sub(r"([:,])\n\t", r"\1 ", message)


_UNBUFFERED: list = []  # the streams _checked_writes replaced: kept open (closing one closes the file)


def _checked_writes() -> None:
    """Under PYTHONUNBUFFERED (python -u) stdout and stderr write straight to the file, and the text
    layer ignores a write the OS cuts short (on a full disk, the part that fitted): exit 0 after a
    truncated output. A buffered layer between writes everything or raises; click flushes after each
    echo, and `invoke` turns the error into its line and exit 2. Stdout's layer also outlives its
    reader (_ReaderMayLeave)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        real = stream is getattr(sys, f"__{name}__") and isinstance(getattr(stream, "buffer", None), io.IOBase)
        if not real or not (name == "stdout" or isinstance(stream.buffer, io.RawIOBase)):
            continue
        try:
            raw = _ReaderMayLeave(stream.fileno()) if name == "stdout" else stream.buffer
        except (OSError, ValueError):
            continue
        stream.flush()
        _UNBUFFERED.append(stream)
        setattr(sys, name, io.TextIOWrapper(io.BufferedWriter(raw), encoding=stream.encoding, errors=stream.errors,
                                            newline="\n", line_buffering=stream.line_buffering,
                                            write_through=isinstance(stream.buffer, io.RawIOBase)))


class _ReaderMayLeave(io.RawIOBase):
    """Stdout's file, where a reader that leaves early (`archcalc check -v | head -1`) is no error: the
    rest of the output goes nowhere and the command ends with its own exit code."""

    def __init__(self, fd: int):
        super().__init__()
        self.fd, self.gone = fd, False

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.fd

    def isatty(self) -> bool:
        return os.isatty(self.fd)

    def write(self, data) -> int:  # type: ignore[override]
        if not self.gone:
            try:
                return os.write(self.fd, data)
            except BrokenPipeError:
                self.gone = True
                _silence_stdout()
        return len(data)

    def close(self) -> None:  # the file is the process's: left open
        pass


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

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return self.name

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            dims = tuple(int(part) for part in value.lower().replace("×", "x").split("x"))
        except ValueError:
            self.fail(f"{value!r}: expected CxHxW, HxW or N, e.g. 3x224x224", param, ctx)
        if len(dims) == 4 and min(dims) >= 1:
            self.fail(f"{value!r} has four sizes: give one image, CxHxW ({'x'.join(map(str, dims[1:]))}), "
                      f"and the batch with --batch {dims[0]}", param, ctx)
        if not 1 <= len(dims) <= 3 or min(dims) < 1:
            self.fail(f"{value!r}: expected CxHxW, HxW or N with positive sizes", param, ctx)
        if max(dims) >= 2**31:
            self.fail(f"{value[:40]!r}: sizes are below 2**31", param, ctx)
        return dims


class MemorySize(click.ParamType):
    """Bytes: 24GiB, 80GB, 512MiB, 1.5TiB or a whole number of bytes (GiB = 2**30, GB = 10**9)."""

    name = "SIZE"
    UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
             "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        found = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", value)
        unit = found and self.UNITS.get(found.group(2).lower())
        if not found or unit is None:
            self.fail(f"{_cut(value)}: expected a size such as 24GiB, 80GB or 512MiB", param, ctx)
        size = int(float(found.group(1)) * unit) if "." in found.group(1) else int(found.group(1)) * unit
        if size < 1:
            self.fail(f"{_cut(value)}: a size of at least 1 byte", param, ctx)
        return size


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
                self.fail(f"{_cut(value)}: {_cut(part)} is not {self.each} (e.g. {self.example})", param, ctx)
        return tuple(dict.fromkeys(values))


class FilePath(click.Path):
    """click's Path, refusing a NUL character (which os.stat raises on) as a bad value."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and "\0" in value:
            self.fail(f"{value!r}: a path holds no NUL character", param, ctx)
        return super().convert(value, param, ctx)


class OutputPath(FilePath):
    """A file to write a table to, in the format its suffix names (archcalc.files.SUFFIX_FORMATS); no suffix
    takes --format, and any other suffix is refused before the work begins."""

    def convert(self, value, param, ctx):
        from .files import SUFFIX_FORMATS, split_name

        path = super().convert(value, param, ctx)
        suffix = split_name(path)[1]
        if suffix and suffix.lower() not in SUFFIX_FORMATS:
            self.fail(f"{_cut(path)}: archcalc writes no {suffix[:20]!r} file: name it "
                      f"{', '.join(SUFFIX_FORMATS)}, or with no suffix to write --format", param, ctx)
        return path


def _cut(value: str, limit: int = 40) -> str:
    """A command-line value in a message, cut so that the message stays short."""
    return repr(value) if len(value) <= limit else repr(value[:limit]) + f"... ({len(value):,} characters)"


DTYPES = list(DTYPE_BYTES)
TIMED_DTYPES = DTYPES[:3]  # what bench and verify can run a model in
MAX_BATCH = 2**31 - 1  # as for input sizes: what torch indexes, and scaled figures stay within a float
BATCHES = ListOf(click.IntRange(min=1, max=MAX_BATCH), "1,32,256",
                 f"a whole number of at least 1 and at most {MAX_BATCH:,}")


def dtype_list(choices: list[str]) -> ListOf:
    return ListOf(click.Choice(choices), ",".join(choices[:2]), f"one of {', '.join(choices)}")


def batch_option(help_text: str):
    return click.option("--batch", "batches", type=BATCHES, default="1", show_default=True, help=help_text)


def dtype_option(choices: list[str], help_text: str):
    return click.option("--dtype", "dtypes", type=dtype_list(choices), default="fp32", show_default=True,
                        help=f"{help_text} Comma-separated: {', '.join(choices)}.")


out_option = click.option(
    "--out", "outs", multiple=True, metavar="FILE", type=OutputPath(dir_okay=False),
    help="Also write the output to FILE, whole, in the format its suffix names (.txt, .md, .csv, .json; "
         "else --format); repeatable.")
format_option = click.option("--format", "out_format", type=click.Choice(FORMATS), default="text", show_default=True,
                             help="text and markdown for people (scaled units), csv and json for machines (exact integers).")


def write_outputs(paths: tuple[str, ...], produce, default_format: str) -> None:
    """Each --out file whole (archcalc.files.write_atomic), in the format its suffix names."""
    from .files import format_of, write_atomic

    for path in paths:
        try:
            write_atomic(path, produce(format_of(path, default_format)))
        except OSError as exc:
            raise UsageError(f"--out {path}: cannot write: {exc.strerror or exc}") from None


def stdout_isatty() -> bool:
    return sys.stdout.isatty()


def table_width(wide: bool) -> int | None:
    """The width to fit a text table to: the terminal's (COLUMNS honoured); None when piped or --wide."""
    if wide or not stdout_isatty():
        return None
    # shutil.get_terminal_size's columns, without importing shutil (and the compression modules it
    # imports: a tenth of a table's start-up)
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        stdout = sys.__stdout__  # None when Python started without one
        try:
            columns = os.get_terminal_size(stdout.fileno()).columns if stdout is not None else 0
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def echo_notes(lines: list[str]) -> None:
    """Warnings and notes go to stderr, so that stdout holds the table alone."""
    for line in lines:
        click.echo(line, err=True)

input_option = click.option("--input", "dims", type=InputShape(), default=None,
                            help="Input size instead of the spec's: CxHxW, HxW (the spec's channels) or N (NxN; N features for a flat "
                                 "spec); the size a torch: TARGET is traced at (CxHxW, required).")


def load_target(target: str, dims: tuple[int, ...] | None, kwargs_text: str | None = None,
                alone: bool = True) -> tuple[Network, tuple[int, ...] | None]:
    """(network, dims left to apply) of any TARGET (archcalc.targets), its notes on stderr; `kwargs_text`: a
    torch: target's --kwargs, refused for another target `alone` (a command of several targets, or with another
    callable, refuses them itself: archcalc.targets.refuse_stray_kwargs)."""
    from .targets import refuse_stray_kwargs, resolve

    if alone:
        refuse_stray_kwargs(kwargs_text, [target])
    found = resolve(target, dims, kwargs_of(kwargs_text))
    echo_notes(found.notes)
    return found.network, found.dims


def kwargs_of(kwargs_text: str | None) -> dict[str, Any] | None:
    """The --kwargs JSON object, read as strictly as a spec; None without one (the importers left unloaded)."""
    if not kwargs_text:
        return None
    from .importers.loading import parse_kwargs

    return parse_kwargs(kwargs_text)


def takes_target(kwargs_also: str = ""):
    """--kwargs (a torch: target's keyword arguments; `kwargs_also`: what else takes them), and the description
    of TARGET (archcalc.targets.HELP) at the end of the command's help: the same in every command with targets."""
    import inspect

    from .targets import HELP, KWARGS_HELP

    def decorate(command):
        command.__doc__ = inspect.cleandoc(command.__doc__ or "") + "\n\n" + HELP
        return click.option("--kwargs", "kwargs_text", metavar="JSON", help=KWARGS_HELP + kwargs_also)(command)

    return decorate


convention_option = click.option(
    "--convention", type=click.Choice(CONVENTIONS), default="torchvision", show_default=True,
    help="keras: count BN moving statistics as (non-trainable) parameters, as model.summary() does.",
)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120})
@click.version_option(package_name="archcalc")
def main() -> None:
    """What a convolutional network costs: shapes, parameters, MACs, memory, receptive field."""


def entry() -> None:
    """The `archcalc` program: `main`, in a process that ends with it."""
    try:
        main()
    except SystemExit as done:
        if "torch" in sys.modules or not isinstance(done.code, (int, type(None))):
            raise  # torch's exit handlers run; a message is printed by the interpreter
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except OSError:  # a closed pipe: the interpreter's own exit says so
            raise done from None
        # The interpreter's exit frees every object the command made, one by one: 0.15 s after
        # `check`, work the operating system does at once when the process ends. Nothing is left
        # to run: files are written whole and closed by then, and no exit handler is archcalc's.
        os._exit(done.code or 0)


def train_options(command):
    """--train, --optimizer and --master: what a training step costs (archcalc.core.training)."""
    return click.option("--train", is_flag=True,
                        help="Also what a training step costs: backward MACs, bytes kept for the backward, "
                             "gradients, optimizer state, the step's peak.")(optimizer_options(command))


def optimizer_options(command):
    """--optimizer and --master: how the network is trained (archcalc.core.training)."""
    from .core.training import MASTER_DTYPES, OPTIMIZER_SLOTS

    command = click.option("--master", type=click.Choice(MASTER_DTYPES), default=None,
                           help="Keep master weights and the optimizer's state in this dtype (mixed precision: "
                                "--dtype bf16 --master fp32).")(command)
    return click.option("--optimizer", type=click.Choice(list(OPTIMIZER_SLOTS)), default="adamw", show_default=True,
                        help="The optimizer whose state counts.")(command)


def training_counted(train: bool, optimizer: str, master: str | None, dtype: str):
    """The training quantities declared for the command when asked for (--train), else nothing changes."""
    import contextlib

    from .core import training

    return training.counting(training.check_setup(optimizer, master), dtype) if train else contextlib.nullcontext()


@main.command()
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
    from .core.calc import analyze
    from .render import View, render, render_text, warning_lines

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


@main.command()
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
    from .core import training
    from .core.calc import analyze
    from .render import fit_lines

    with training.counting(training.check_setup(optimizer, master), dtype):
        analysis = analyze(*load_target(target, dims, kwargs_text), 1, dtype)
        found = training.fit(analysis, memory)
        at = training.breakdown(analysis.scaled(batch=batch)) if batch else found.at_batch
    click.echo("\n".join(fit_lines(analysis.network.name, found, batch, at, optimizer, dtype, master)))
    sys.exit(1 if (found.batch < batch if batch else found.batch == 0) else 0)


@main.command("list")
@paused_gc  # the whole zoo: its trees stay alive to the end, and hold no cycles (core.alloc)
def list_networks() -> None:
    """The built-in zoo by family and year: name, year, input, parameters, MACs per image."""
    from .core.calc import analyze
    from .core.spec import load, zoo_index

    analyses = [analyze(load(name)) for name in zoo_index()]
    rows = [[one_line(a.network.name), one_line(a.network.family), one_line(str(a.network.meta.get("year", ""))),
             fmt.shape(a.input_shape),
             fmt.count(a.totals.params), fmt.scaled(a.totals.macs)] for a in zoo_order(analyses)]
    click.echo(fmt.text_table(rows, ["Name", "Family", "Year", "Input", "Params", "MACs"], numeric=[2, 3, 4, 5]))


def natural_key(name: str) -> tuple:
    """vgg11 < vgg16 < vgg16_bn < vgg19, resnet50 < resnet50_v1 < resnet101: numbers by value."""
    import re

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


@main.command()
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

    from .core.calc import analyze
    from .core.spec import zoo_index
    from .targets import is_imported, refuse_stray_kwargs, resolve_each

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
            from .report.claims import zoo_analysis

            return [zoo_analysis(target)]
        return [analyze(t.network, t.dims) for t in resolve_each(target, dims, kwargs)]  # a family: each variant

    unreadable = []  # one line each: the other targets are still checked, and the exit is 2
    for target in targets or tuple(zoo):
        try:
            analyses = analysed(target)
        except ArchcalcError as exc:
            unreadable.append(one_line(f"archcalc: {exc}"))
            _say(unreadable[-1])
            continue
        for analysis in analyses:
            _check_one(analysis, target if len(analyses) == 1 else analysis.network.name, convention, out_format,
                       strict, entries, measured)
    if with_claims:
        from .report.claims import describe as describe_claim
        from .report.claims import results as claim_results

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
        from .report.lectures import cite

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
    from .core.calc import check_network
    from .core.figures import CHANGED, MEASURED, NOTHING, describe
    from .importers.commands import model_changed

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
    from .core.spec import Group

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


@main.command("import", no_args_is_help=True)
@click.argument("kind", type=click.Choice(["torch", "onnx"]))
@click.argument("source")
@input_option
@click.option("--kwargs", "kwargs_text", metavar="JSON", help="torch: keyword arguments of the callable, a JSON object.")
@click.option("-o", "--out", metavar="FILE", help="Write the spec to FILE (default: print it).")
@click.option("--strict", is_flag=True, help="Stop at an op (ONNX: a module scope's nodes) archcalc has no layer type for "
                                            "instead of measuring it.")
def import_command(kind: str, source: str, dims: tuple[int, ...] | None, kwargs_text: str | None, out: str | None,
                   strict: bool) -> None:
    """A spec from a torch callable (MODULE:CALLABLE or FILE.py:CALLABLE) or an ONNX file.

    The graph becomes sequences and add/concat/mul branches grouped by module path; `expect` records
    the parameters (and fvcore's total) measured on the model. An op archcalc has no layer type for
    becomes a `measured` row (its output shape, parameters and FlopCounterMode's MACs at this input;
    for ONNX, one row for the module scope of nodes archcalc reads as no layer types, MACs counted from its
    nodes by shape; with --strict, it stops the import); a graph that is not series-parallel stops it
    with one line naming the node.
    """
    from .importers.commands import fingerprinted, import_document, kept_budgets, write_document
    from .importers.loading import parse_kwargs

    document = fingerprinted(import_document(kind, source, dims, parse_kwargs(kwargs_text), strict), kind, source, dims,
                             out)
    document, kept = kept_budgets(document, out)
    text = write_document(document, out)
    if not out:
        click.echo(text, nl=False)
    if kept:
        echo_notes([one_line(f"note: kept the {len(kept)} budget(s) of the spec {out} replaced: {', '.join(kept)}")])


@main.command()
def schema() -> None:
    """Print the JSON Schema of specs (the one in specs/schema.json)."""
    from .core.schema import schema_text

    click.echo(schema_text(), nl=False)


@main.command()
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
    from .core.calc import analyze
    from .deps import require_fvcore
    from .targets import refuse_stray_kwargs
    from .torch.verify import verify_network
    from .torch.verify_render import render_report, summary_line

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
        from .importers.loading import parse_kwargs
        from .importers.verify_model import verify_model

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
    from .core.spec import zoo_index
    from .progress import ProgressBar

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

    from .core.calc import analyze
    from .core.spec import zoo_index
    from .torch.train import checks, render_checks, small_input, summary

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


@main.command()
@click.argument("names", nargs=-1, metavar="[TARGET]...")
@click.option("--all", "every", is_flag=True, help="Every network of the zoo.")
@input_option
@batch_option("Comma-separated batch sizes, e.g. 1,32,256.")
@dtype_option(TIMED_DTYPES, "The dtype the model runs in.")
@click.option("--channels-last", is_flag=True, help="Model and input in channels_last memory format.")
@click.option("--device", type=click.Choice(["cuda", "cpu"]), default=None, help="Default: cuda when torch sees a GPU, else cpu.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads of torch on --device cpu (default: the physical cores); the output states it.")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model (with --cuda-graph: mode reduce-overhead).")
@click.option("--cuda-graph", is_flag=True, help="Capture one forward pass in a CUDA graph and time its replay.")
@click.option("--l2-flush", is_flag=True, help="Overwrite a buffer larger than the GPU's L2 before each repetition.")
@click.option("--warmup-iters", type=click.IntRange(min=0), default=10, show_default=True,
              help="Untimed iterations before timing (at least this many, and --warmup-seconds).")
@click.option("--warmup-seconds", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Seconds of untimed iterations before timing (at least this long, and --warmup-iters).")
@click.option("--iters", type=click.IntRange(min=1), default=50, show_default=True, help="Timed repetitions.")
@click.option("--matmul-size", type=click.IntRange(min=16), default=None, help="Side of the peak matmul (default 8192 on CUDA, 1024 on CPU).")
@format_option
@out_option
@takes_target()
def bench(names: tuple[str, ...], every: bool, dims: tuple[int, ...] | None, batches: tuple[int, ...], dtypes: tuple[str, ...],
          channels_last: bool, device: str | None, threads: int | None, compile_: bool, cuda_graph: bool, l2_flush: bool,
          warmup_iters: int, warmup_seconds: float, iters: int, matmul_size: int | None, out_format: str,
          outs: tuple[str, ...], kwargs_text: str | None) -> None:
    """Measure latency, images/s, TFLOP/s and memory of networks, next to archcalc's figures.

    Ctrl-C stops cleanly: what was measured is printed and written (--out), and the exit code is 130.
    """
    from .core.calc import analyze
    from .core.spec import zoo_index
    from .deps import require_torch
    from .files import check_writable
    from .progress import ProgressBar
    from .targets import refuse_stray_kwargs
    from .torch.bench import NOISE_FACTOR, Settings, run
    from .torch.bench_render import render

    if bool(names) == every:
        raise UsageError("bench takes TARGETs (see --help) or --all, not both and not neither")
    refuse_stray_kwargs(kwargs_text, names)
    for path in outs:  # before minutes of measuring
        check_writable(path)
    analyses = [analyze(*load_target(name, dims, kwargs_text, alone=False)) for name in (names or tuple(zoo_index()))]
    torch = require_torch()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if threads is not None and device != "cpu":
        raise UsageError("--threads applies to --device cpu")
    settings = Settings(device, channels_last, compile_, cuda_graph, l2_flush, warmup_iters, warmup_seconds, iters,
                        matmul_size, threads=threads)
    result = run(analyses, batches, dtypes, settings, progress=ProgressBar(sys.stderr))
    click.echo(render(result, out_format), nl=False)
    write_outputs(outs, lambda kind: render(result, kind), out_format)
    for r in result.results:
        if r.noisy:
            click.echo(f"WARNING: {r.network} batch {r.batch} {r.dtype}: median {r.latency.median_ms:.4f} ms is within "
                       f"{NOISE_FACTOR}x of the empty timed region ({r.overhead_ms:.4f} ms): mostly timer overhead", err=True)
    if result.interrupted:
        click.echo(f"archcalc: interrupted; {len(result.results)} of {result.planned} configurations measured"
                   + (f", written to {', '.join(outs)}" if outs else ""), err=True)
        sys.exit(130)


@main.command()
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
    from .core.calc import analyze
    from .files import write_atomic
    from .report.diagram import Options, fold_note, fold_to_fit, layout, parse_annotate, render

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


@main.command()
@click.argument("target")
@click.option("-o", "--out", "out", required=True, metavar="FILE", help="FILE.html")
@input_option
@click.option("--depth", type=click.IntRange(min=1), default=None, help="Groups at depth N start folded in the table.")
@train_options
@takes_target()
def html(target: str, out: str, dims: tuple[int, ...] | None, depth: int | None, train: bool, optimizer: str,
         master: str | None, kwargs_text: str | None) -> None:
    """One self-contained page: the figure, the totals, a foldable and sortable layer table, each layer's working."""
    from .core.calc import analyze
    from .files import write_atomic
    from .report.diagram import figure_depth
    from .report.html import page

    with training_counted(train, optimizer, master, "fp32"):
        analysis = analyze(*load_target(target, dims, kwargs_text))
        write_atomic(out, page(analysis, depth, figure_depth(analysis)))
    click.echo(f"wrote {out}")


@main.command("report")
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

    from .report.pages import generate, plot_note, stale
    from .targets import is_imported, refuse_stray_kwargs

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


if __name__ == "__main__":
    main()
