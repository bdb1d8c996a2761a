"""The one error type archcalc shows to users: a file, a path in the spec, a message."""
from __future__ import annotations


class SpecError(Exception):
    """Bad input. The CLI prints it as one line on stderr and exits with code 2."""

    def __init__(self, message: str, *, file: str | None = None, path: str | None = None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.path = path

    def located(self, *, file: str | None = None, path: str | None = None) -> "SpecError":
        """The same error with a file and layer path filled in where still unknown."""
        return SpecError(self.message, file=self.file or file, path=self.path or path)

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.file, self.path) if part)
        return f"{where}: {self.message}" if where else self.message
