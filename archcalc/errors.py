"""Errors archcalc shows to users. The CLI prints each as one line on stderr.

ArchcalcError is the base: a message, and where it applies (a file, a path in the spec).
SpecError: bad input (a spec, a model file, a value); UsageError: the command line;
MissingDependency: an optional package is not installed (the message gives the install line);
FileError: a file or folder that cannot be read or written.
All of them exit with code 2, their line passed through `one_line` (as the CLI's other errors are).
"""
from __future__ import annotations

import re

# Control characters shown as escapes, wherever archcalc shows a text it did not write (an error's
# file name or value; a spec's title, block names or sources; a model file's name): a line stays one
# line and the terminal is sent nothing but text. C0 and DEL, the C1 controls a terminal may obey
# (\x9b is CSI), and what XML 1.0 cannot hold even as a reference (lone surrogates, U+FFFE, U+FFFF)
# so that an SVG stays well-formed; U+2028 and U+2029 break lines for some readers.
# A pattern compiled on its first use (re keeps it): most texts are printable, and compiling a class this
# wide costs more than the rest of this module.
_CONTROL = "[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff\u2028\u2029]"
_NAMED = {"\0": "\\0", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match) -> str:
    c = match.group()
    return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}")


def one_line(text: str) -> str:
    """`text` with its control characters as escapes (`\\x1b`, `\\n`): what every output shows of a
    text from a spec, a model file or the command line (Markdown, CSV and SVG add their own escapes)."""
    return text if text.isprintable() else re.sub(_CONTROL, _escaped, text)


def suggest(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """The end of a message naming an unknown word: ` (did you mean 'conv2d'?)`, or nothing."""
    close = closest(word, choices)
    return f" (did you mean {close!r}?)" if close is not None else ""


def closest(word: str, choices: list[str] | tuple[str, ...]) -> str | None:
    """The choice nearest to an unknown word, if one is near enough to suggest."""
    if not isinstance(word, str) or len(word) > 200:  # difflib is quadratic in the word's length
        return None
    import difflib  # only for a message: not at start-up

    close = difflib.get_close_matches(word, [c for c in choices if isinstance(c, str)], n=1, cutoff=0.5)
    return close[0] if close else None


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
