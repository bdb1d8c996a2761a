"""The one progress display of the CLI, on stderr: redrawn in place on a terminal, one line per step otherwise."""
from __future__ import annotations


class ProgressBar:
    """Call with (done, total, label) before each step and once at the end (done == total)."""

    def __init__(self, stream, width: int = 30):
        self.stream = stream
        self.width = width
        self.tty = hasattr(stream, "isatty") and stream.isatty()

    def __call__(self, done: int, total: int, label: str) -> None:
        filled = self.width * done // max(total, 1)
        line = f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} {label}"
        if self.tty:
            self.stream.write(f"\r{line[:120]:<120}" + ("\n" if done == total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
