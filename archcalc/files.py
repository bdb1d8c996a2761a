"""Files archcalc writes are written whole: a temporary file beside the target, fsync, then a rename.

The temporary file is named `.NAME.XXXXXXXX.archcalc-tmp`; it is removed on every way out of
write_atomic (an error, Ctrl-C, SIGTERM: `sigterm_unwinds`), and one left by a killed run
is recognised by `is_temporary` (`is_temporary_of` a given file) so that `archcalc report` removes
those of its own files and `--check` reports them.
Every OS error becomes a FileError naming the path and the reason.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
from typing import TYPE_CHECKING, Iterator

from .errors import FileError, closest

if TYPE_CHECKING:
    from pathlib import Path

TEMP_SUFFIX = ".archcalc-tmp"
# ours, and those of earlier versions (`.NAME.md.XXXXXXXX`, no suffix)
# (compiled on its first use: re keeps it)
_TEMPORARY = r"\..+\.[a-z0-9_]{8}" + re.escape(TEMP_SUFFIX) + r"|\..+\.(md|png|svg|json)\.[a-z0-9_]{8}"


def reason(exc: OSError | ValueError) -> str:
    """The OS's words for an error, e.g. 'Permission denied'; a NUL character (the ValueError the OS
    calls raise for one) in the path's own words."""
    if isinstance(exc, ValueError):
        return "the path holds a NUL character" if "null" in str(exc) else str(exc)
    if isinstance(exc, FileExistsError) or exc.errno == errno.EEXIST:
        return "a file is in the way (not a folder)"
    return exc.strerror or str(exc) or type(exc).__name__


def is_temporary(name: str) -> bool:
    return bool(re.fullmatch(_TEMPORARY, name))


def is_temporary_of(name: str, target: str) -> bool:
    """Whether `name` is a temporary file that write_atomic (or an earlier version) made on its way to
    the file named `target` in the same folder."""
    if not is_temporary(name):
        return False
    ours = f".{target[:64]}."
    if name.startswith(ours) and len(name) == len(ours) + 8 + len(TEMP_SUFFIX):
        return True
    return name.startswith(f".{target}.") and len(name) == len(target) + 10  # `.NAME.XXXXXXXX`


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_folder(folder: Path) -> None:
    from pathlib import Path  # only where a file is written: not at start-up

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as exc:
        where = getattr(exc, "filename", None) or folder
        raise FileError(f"cannot create the folder: {reason(exc)}", file=str(where)) from None
    if not folder.is_dir():
        raise FileError("cannot create the folder: a file is in the way", file=str(folder))


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt for the length of the block, so that the way out removes the
    temporary files made in it, as on Ctrl-C (the program's line: `archcalc: interrupted`, exit 130).
    Only where SIGTERM had its default action, and in the main thread; nested blocks keep the outer
    one's handler. Outside such blocks SIGTERM ends the process at once: it leaves nothing half made."""
    import signal  # only where temporary files are made: not at start-up

    installed = False
    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _interrupt)
            installed = True
    except ValueError:  # not the main thread
        pass
    try:
        yield
    finally:
        if installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def write_atomic(path: str | Path, data: str | bytes) -> None:
    from pathlib import Path

    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    make_folder(path.parent)
    with sigterm_unwinds():
        _write_through_temporary(path, payload)


def _write_through_temporary(path: Path, payload: bytes) -> None:
    temporary = None
    done = False
    try:
        import tempfile  # loaded by the commands that write files

        handle, temporary = tempfile.mkstemp(prefix=f".{path.name[:64]}.", suffix=TEMP_SUFFIX, dir=path.parent)
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fchmod(stream.fileno(), 0o666 & ~_umask())  # mkstemp makes 0600 files
            os.fsync(stream.fileno())
        os.replace(temporary, path)
        done = True
    except (OSError, ValueError) as exc:
        raise FileError(f"cannot write: {reason(exc)}", file=str(path)) from None
    finally:
        if temporary is not None and not done:
            try:
                os.unlink(temporary)
            except OSError:
                pass


def check_writable(path: str | os.PathLike) -> None:
    """Refuse now a file write_atomic could not write (a read-only folder, a folder or a file in the
    way), before the work that makes its content. Creates nothing: its folder is made when written,
    and the probe file, made in the deepest folder that exists, is removed at once."""
    import tempfile

    target = os.fspath(path)
    if os.path.isdir(target):
        raise FileError("cannot write: Is a directory", file=target)
    folder = os.path.dirname(os.path.abspath(target))
    while not os.path.lexists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise FileError("cannot create the folder: a file is in the way", file=folder)
    with sigterm_unwinds():
        try:
            handle, probe = tempfile.mkstemp(prefix=f".{os.path.basename(target)[:64]}.", suffix=TEMP_SUFFIX,
                                             dir=folder)
        except (OSError, ValueError) as exc:
            raise FileError(f"cannot write: {reason(exc)}", file=target) from None
        os.close(handle)
        os.unlink(probe)


def same_content(path: Path, data: bytes) -> bool:
    """Whether `path` already holds exactly `data` (False when it cannot be read)."""
    try:
        if not os.path.isfile(path) or os.path.getsize(path) != len(data):
            return False
        with open(path, "rb") as stream:
            return stream.read() == data
    except OSError:
        return False


SUFFIX_FORMATS = {".json": "json", ".md": "markdown", ".markdown": "markdown", ".csv": "csv", ".txt": "text"}


def format_of(path: str | Path, default: str) -> str:
    """The output format a file's suffix names (.json, .md, .csv, .txt), else `default`."""
    return SUFFIX_FORMATS.get(split_name(path)[1].lower(), default)


def nearest_file(path: str | os.PathLike) -> str:
    """The end of a "no such file" message: the file of the same folder whose name is nearest, as a path
    to type (` (did you mean 'specs/vgg.json'?)`), or nothing. Names are compared without their suffix,
    so that a typo in the suffix finds its file and a shared `.json` makes no two names alike."""
    folder, name = os.path.split(os.fspath(path))
    try:
        with os.scandir(folder or ".") as entries:  # the first 10,000 names: a message, not a search
            names = sorted(entry.name for entry, _ in zip(entries, range(10_000)) if not entry.name.startswith("."))
    except (OSError, ValueError):
        return ""
    stem, suffix = split_name(name)
    by_stem: dict[str, str] = {}
    for other in names:
        other_stem, other_suffix = split_name(other)
        if other_stem not in by_stem or other_suffix == suffix:
            by_stem[other_stem] = other
    close = closest(stem, list(by_stem))
    return "" if close is None else f" (did you mean {os.path.join(folder, by_stem[close])!r}?)"


def split_name(path: str | os.PathLike) -> tuple[str, str]:
    """pathlib's stem and suffix of a path's last name, without importing pathlib (start-up)."""
    name = os.path.basename(os.fspath(path).rstrip("/"))
    dot = name.rfind(".")
    return (name[:dot], name[dot:]) if 0 < dot < len(name) - 1 else (name, "")
