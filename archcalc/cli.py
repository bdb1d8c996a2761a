"""The `archcalc` program: its commands (archcalc.commands, a module imported when one of its commands runs),
errors as one line on stderr, exit codes. torch, fvcore, pandas and matplotlib load only in the
commands that need them."""
from __future__ import annotations

from .core.alloc import pause_collector, resume_collector

_collecting = pause_collector()  # until the end of the module (core.alloc)
import gc
import importlib
import io
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

import click

from .commands.common import say
from .errors import ArchcalcError, one_line, suggest

# Each command by its name: the module of archcalc.commands that declares it, and its name there.
COMMANDS = {"bench": "bench:bench", "check": "check:check", "diagram": "report:diagram", "fit": "table:fit",
            "html": "report:html", "import": "imports:import_command", "list": "check:list_networks",
            "report": "report:report_command", "schema": "imports:schema", "table": "table:table",
            "verify": "verify:verify"}


class _Cli(click.Group):
    """Every error, archcalc's or the command line's, is one line on stderr: `archcalc: ...`. Each command
    is imported from its module (COMMANDS) when click first asks for it, with the collector paused as the
    program's own imports are: click's way of loading commands lazily (`list_commands`, `get_command`)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in COMMANDS:
            module, attribute = COMMANDS[name].split(":")
            collecting = pause_collector()
            try:
                self.add_command(getattr(importlib.import_module(f"{__package__}.commands.{module}"), attribute), name)
            finally:
                resume_collector(collecting)
        return self.commands.get(name)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        name = args[0]
        if name not in COMMANDS and not ctx.resilient_parsing and not name.startswith("-"):
            ctx.fail(f"no such command {name!r}{suggest(name, tuple(COMMANDS))}")
        return super().resolve_command(ctx, args)

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
            say(f"archcalc: {exc}")
            sys.exit(exc.exit_code)
        except OSError as exc:  # writing the output: a full disk, a closed pipe
            from .files import reason

            _silence_stdout()
            say(one_line(f"archcalc: {exc.filename or '<stdout>'}: cannot write: {reason(exc)}"))
            sys.exit(2)

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        _checked_writes()
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
        except click.Abort:  # Ctrl-C, or SIGTERM while temporary files are made (archcalc.files.sigterm_unwinds)
            click.echo("archcalc: interrupted", err=True)
            sys.exit(130)
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


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the exit's flush does not fail a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real stdout (tests capture it)
        pass


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120})
@click.version_option(package_name="archcalc")
def main() -> None:
    """What a convolutional network costs: shapes, parameters, MACs, memory, receptive field."""


def entry() -> None:
    """The `archcalc` program: `main`, in a process that ends with it."""
    gc.freeze()  # what the imports made lives as long as the process: no collection walks it again
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


resume_collector(_collecting)

if __name__ == "__main__":
    main()
