"""The folder a report goes to: archcalc removes or writes over only the files it wrote there itself.

`.archcalc-manifest` (JSON, written whole) lists the files archcalc wrote in the folder, relative to
it. A run writing the folder
- refuses a folder that holds anything and no manifest (archcalc did not make it), unless forced;
- refuses to write over a file the manifest does not list, unless forced (and then only the names it
  generates: everything else in the folder stays as it is);
- removes only files the previous manifest lists that it no longer generates, and the temporary
  files of names it writes (left by a killed run);
- holds a lock on the folder (flock) while it writes, so that two runs take turns instead of
  removing each other's temporary files; `report --check` reads under a shared lock.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import posixpath
import stat
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..core.reading import parse, read_bytes
from ..errors import FileError, SpecError
from ..files import is_temporary_of, make_folder, reason, same_content, write_atomic

MANIFEST = ".archcalc-manifest"
MANIFEST_NOTE = "the files archcalc wrote in this folder; `archcalc report` removes or overwrites no other"
MANIFEST_BYTES = 16 * 1024 * 1024
LOCK_WAIT_S = 120.0  # a run waits this long for another one writing the same folder, then refuses
_LOCK_POLL_S = 0.05


# ---- names -------------------------------------------------------------------------------

def plain_name(relative: str) -> bool:
    """Whether a relative path is a plain one: no '', '.', '..', backslash, control character or absolute root."""
    parts = relative.split("/")
    return not relative.startswith("/") and all(
        part not in ("", ".", "..") and "\\" not in part and part.isprintable() and len(part) <= 255 for part in parts)


def confined(out_dir: Path, relative: str) -> Path:
    """out_dir / relative, refused unless it stays inside out_dir (a spec names the pages)."""
    if not plain_name(relative) or Path(relative).is_absolute():
        raise FileError(f"refusing to write {relative!r}: not a plain file name inside the folder", file=str(out_dir))
    target = out_dir / relative
    try:
        inside = target.resolve().is_relative_to(out_dir.resolve())
    except (OSError, RuntimeError) as exc:
        raise FileError(f"cannot write {relative!r}: {exc}", file=str(out_dir)) from None
    if not inside:
        raise FileError(f"refusing to write {relative!r}: it resolves outside the folder", file=str(out_dir))
    return target


# ---- the manifest ------------------------------------------------------------------------

def manifest_bytes(paths: Iterable[str]) -> bytes:
    """The manifest listing `paths`: the same bytes for the same files (it is committed with reports/)."""
    return (json.dumps({"archcalc": MANIFEST_NOTE, "files": sorted(set(paths))}, indent=1) + "\n").encode()


def read_manifest(out_dir: Path) -> set[str] | None:
    """The files the folder's manifest lists; None when it has none. A manifest archcalc cannot
    have written (bad JSON, a name that is not plain) is a FileError."""
    path = out_dir / MANIFEST
    if not os.path.lexists(path):
        return None
    data = read_bytes(path, MANIFEST_BYTES, "manifests")  # a regular file, of a bounded size
    try:
        document = parse(data.decode("utf-8"))
    except (UnicodeDecodeError, SpecError):
        why = "not JSON"
    else:
        files = document.get("files") if isinstance(document, dict) else None
        if not isinstance(files, list):
            why = "no 'files' list"
        elif not all(isinstance(name, str) and plain_name(name) and name != MANIFEST for name in files):
            why = "a name that is not a plain file name inside the folder"
        else:
            return set(files)
    raise FileError(f"not a manifest archcalc wrote ({why}); remove it, or add --force to write the report "
                    "anyway (it then removes nothing)", file=str(path))


# ---- the lock ----------------------------------------------------------------------------

@contextlib.contextmanager
def locked(out_dir: Path, shared: bool = False) -> Iterator[None]:
    """Hold an flock on the folder itself (nothing is added to it): exclusive to write, shared to read.
    Waits up to LOCK_WAIT_S for another run; where the file system has no locks, goes on without one."""
    import fcntl

    try:
        handle = os.open(out_dir, os.O_RDONLY | os.O_DIRECTORY)
    except (OSError, ValueError) as exc:
        raise FileError(f"cannot open the folder: {reason(exc)}", file=str(out_dir)) from None
    try:
        _lock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX, out_dir)
        yield
    finally:
        os.close(handle)  # releases the lock


def _lock(handle: int, kind: int, out_dir: Path) -> None:
    import fcntl

    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(handle, kind | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                return  # no locks here (some network file systems)
        if time.monotonic() >= deadline:
            raise FileError(f"another archcalc run has been writing this folder for {LOCK_WAIT_S:g} s; "
                            "run again when it has finished", file=str(out_dir))
        time.sleep(_LOCK_POLL_S)


# ---- writing -----------------------------------------------------------------------------

def write(out_dir: Path, files: dict[str, bytes], prune: bool, force: bool = False) -> None:
    """Write what changed and record it in the manifest; remove temporary files of killed runs and
    (`prune`) the files the previous manifest lists that are no longer made. See the module's rules."""
    targets = {path: confined(out_dir, path) for path in files}  # all checked before anything is written
    make_folder(out_dir)
    with locked(out_dir):
        previous = _previous(out_dir, force)
        if not force:
            _refuse_overwriting(out_dir, targets, files, previous)
        ours = previous | set(files)
        _write_manifest(out_dir, ours)  # first: a run killed half-way leaves its files listed
        for leftover in leftovers(out_dir, ours):
            _remove(out_dir / leftover)
        for path, data in sorted(files.items()):
            if not same_content(targets[path], data):
                write_atomic(targets[path], data)
        if prune:
            for path in sorted(previous - set(files)):
                _prune(out_dir, path)
            _write_manifest(out_dir, files)


def _previous(out_dir: Path, force: bool) -> set[str]:
    """What the folder's manifest lists; a folder with files and no manifest is refused unless forced."""
    try:
        listed = read_manifest(out_dir)
    except (FileError, SpecError):  # a bad manifest; SpecError: not a regular file, too big
        if force:
            return set()
        raise
    if listed is None:
        if not force and _holds_anything(out_dir):
            raise FileError(f"the folder holds files archcalc did not write (it has no {MANIFEST}); name a new or "
                            "empty folder, or add --force to write the report into it (no other file is touched)",
                            file=str(out_dir))
        return set()
    return listed


def _holds_anything(out_dir: Path) -> bool:
    try:
        with os.scandir(out_dir) as entries:
            return any(not is_temporary_of(entry.name, MANIFEST) for entry in entries)
    except OSError as exc:
        raise FileError(f"cannot list: {reason(exc)}", file=str(out_dir)) from None


def _refuse_overwriting(out_dir: Path, targets: dict[str, Path], files: dict[str, bytes], previous: set[str]) -> None:
    """A file in the way that archcalc did not write (not listed, other content) stops the run before it writes."""
    theirs = [path for path in sorted(files) if path not in previous
              and os.path.lexists(targets[path]) and not same_content(targets[path], files[path])]
    if theirs:
        more = f" (and {len(theirs) - 1} more)" if len(theirs) > 1 else ""
        raise FileError(f"a file archcalc did not write is in the way{more}: it is not in {MANIFEST}; move it, or add "
                        "--force to overwrite the report's files", file=str(targets[theirs[0]]))


def _write_manifest(out_dir: Path, paths: Iterable[str]) -> None:
    data = manifest_bytes(paths)
    if not same_content(out_dir / MANIFEST, data):
        write_atomic(out_dir / MANIFEST, data)


def _prune(out_dir: Path, relative: str) -> None:
    """Remove a listed file no longer generated: a plain file inside the folder, nothing it links to."""
    path = out_dir / relative
    try:
        inside = path.parent.resolve().is_relative_to(out_dir.resolve())
        if inside and stat.S_ISREG(path.lstat().st_mode):
            _remove(path)
    except FileNotFoundError:
        pass
    except (OSError, RuntimeError) as exc:
        raise FileError(f"cannot remove: {reason(exc) if isinstance(exc, OSError) else exc}", file=str(path)) from None


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise FileError(f"cannot remove: {reason(exc)}", file=str(path)) from None


def leftovers(out_dir: Path, names: Iterable[str]) -> list[str]:
    """Temporary files of the given names (and of the manifest) that a killed run left behind."""
    by_folder: dict[str, set[str]] = {}
    for name in [*names, MANIFEST]:
        folder, base = posixpath.split(name)
        by_folder.setdefault(folder, set()).add(base)
    found = []
    for folder, bases in sorted(by_folder.items()):
        try:
            with os.scandir(out_dir / folder) as entries:
                found += [posixpath.join(folder, entry.name) for entry in entries
                          if any(is_temporary_of(entry.name, base) for base in bases)]
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            raise FileError(f"cannot list: {reason(exc)}", file=str(out_dir / folder)) from None
    return sorted(found)
