"""What the commands share: parameter types, options, reading a target, writing outputs, a line on stderr."""
from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING, Any

import click

from ..core.quantities import DTYPE_BYTES, MASTER_DTYPES, OPTIMIZER_SLOTS
from ..errors import UsageError

if TYPE_CHECKING:
    from ..core.spec import Network

FORMATS = ["text", "markdown", "csv", "json"]
CONVENTIONS = ["torchvision", "keras"]


def say(line: str) -> None:
    """A line on stderr, where a closed stderr is no second error."""
    try:
        click.echo(line, err=True)
    except OSError:
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
        from ..files import SUFFIX_FORMATS, split_name

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
    from ..files import format_of, write_atomic

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
    from ..targets import refuse_stray_kwargs, resolve

    if alone:
        refuse_stray_kwargs(kwargs_text, [target])
    found = resolve(target, dims, kwargs_of(kwargs_text))
    echo_notes(found.notes)
    return found.network, found.dims


def kwargs_of(kwargs_text: str | None) -> dict[str, Any] | None:
    """The --kwargs JSON object, read as strictly as a spec; None without one (the importers left unloaded)."""
    if not kwargs_text:
        return None
    from ..importers.loading import parse_kwargs

    return parse_kwargs(kwargs_text)


def takes_target(kwargs_also: str = ""):
    """--kwargs (a torch: target's keyword arguments; `kwargs_also`: what else takes them), and the description
    of TARGET (archcalc.targets.HELP) at the end of the command's help: the same in every command with targets."""
    import inspect

    from ..targets import HELP, KWARGS_HELP

    def decorate(command):
        command.__doc__ = inspect.cleandoc(command.__doc__ or "") + "\n\n" + HELP
        return click.option("--kwargs", "kwargs_text", metavar="JSON", help=KWARGS_HELP + kwargs_also)(command)

    return decorate


convention_option = click.option(
    "--convention", type=click.Choice(CONVENTIONS), default="torchvision", show_default=True,
    help="keras: count BN moving statistics as (non-trainable) parameters, as model.summary() does.",
)


def train_options(command):
    """--train, --optimizer and --master: what a training step costs (archcalc.core.training)."""
    return click.option("--train", is_flag=True,
                        help="Also what a training step costs: backward MACs, bytes kept for the backward, "
                             "gradients, optimizer state, the step's peak.")(optimizer_options(command))


def optimizer_options(command):
    """--optimizer and --master: how the network is trained (archcalc.core.training)."""
    command = click.option("--master", type=click.Choice(MASTER_DTYPES), default=None,
                           help="Keep master weights and the optimizer's state in this dtype (mixed precision: "
                                "--dtype bf16 --master fp32).")(command)
    return click.option("--optimizer", type=click.Choice(list(OPTIMIZER_SLOTS)), default="adamw", show_default=True,
                        help="The optimizer whose state counts.")(command)


def training_counted(train: bool, optimizer: str, master: str | None, dtype: str):
    """The training quantities declared for the command when asked for (--train), else nothing changes."""
    import contextlib

    if not train:
        return contextlib.nullcontext()
    from ..core import training

    return training.counting(training.check_setup(optimizer, master), dtype)

