"""Errors archcalc shows to users. The CLI prints each as one line on stderr.

ArchcalcError is the base: a message, and where it applies (a file, a path in the spec).
SpecError: bad input (a spec, a model file, a value); UsageError: the command line;
MissingDependency: an optional package is not installed (the message gives the install line);
FileError: a file or folder that cannot be read or written.
All of them exit with code 2, their line passed through `one_line` (as the CLI's other errors are).
"""
from __future__ import annotations

# Control characters (a newline or NUL in a file name, an escape in a value) shown as escapes: an
# error stays one line on stderr, and writes nothing to the terminal but text.
_ESCAPES = {**{c: f"\\x{c:02x}" for c in [*range(32), 127]}, 0: "\\0", ord("\n"): "\\n", ord("\r"): "\\r",
            ord("\t"): "\\t"}


def one_line(text: str) -> str:
    return text.translate(_ESCAPES)


class ArchcalcError(Exception):
    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, path: str | None = None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.path = path

    def located(self, *, file: str | None = None, path: str | None = None) -> "ArchcalcError":
        """The same error with a file and layer path filled in where still unknown."""
        return type(self)(self.message, file=self.file or file, path=self.path or path)

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.file, self.path) if part)
        return one_line(f"{where}: {self.message}" if where else self.message)


class SpecError(ArchcalcError):
    """Bad input: a spec, a model file, a value out of its domain."""


class UsageError(ArchcalcError):
    """A command line that does not say what to do."""


class MissingDependency(ArchcalcError):
    """An optional package a command needs is not installed."""


class FileError(ArchcalcError):
    """A file or folder archcalc cannot read or write (permissions, a full disk, a file in the way)."""
