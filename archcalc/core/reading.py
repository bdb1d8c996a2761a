"""Reading a spec file: only regular files, at most Budget.file_bytes, strict UTF-8, strict JSON.

Strict JSON here means what Python's json module lets through and a spec must not hold: NaN and
Infinity (and numbers that overflow to infinity), duplicate keys (json keeps the last silently),
integers beyond Budget.int_bits, lone UTF-16 surrogates ("\\ud800": not text, cannot be written
as UTF-8), and nesting deeper than Budget.depth. Each is refused with its JSON path.
"""
from __future__ import annotations

import json
import math
import os
import re
import stat
from collections.abc import Iterable
from typing import Any

from ..budget import current
from ..errors import SpecError
from ..files import nearest_file, reason
from ..kinds import shown

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = "[\ud800-\udfff]"  # compiled on its first use (re keeps it): where the JSON escapes a surrogate
_LONGEST_INT_LITERAL = 40  # digits parsed as an int; longer ones are refused without converting them


class _Literal:
    """A JSON number or constant refused after parsing, when its path is known."""

    def __init__(self, text: str, problem: str):
        self.text, self.problem = text, problem


def read_bytes(path: str | os.PathLike, limit: int | None = None, what: str = "specs") -> bytes:
    """The file's bytes; a FIFO, a device, a folder or an oversized file is refused before reading.

    `limit`: the most bytes read (default: the budget's file_bytes); `what` the files are, in messages."""
    over = current().describe("file_bytes") if limit is None else f"the {limit:,} bytes archcalc reads of {what}"
    limit = current().file_bytes if limit is None else limit
    try:
        handle = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise SpecError(f"no such file{nearest_file(path)}", file=str(path)) from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL character in the path
        raise SpecError(f"cannot read: {reason(exc)}", file=str(path)) from None
    try:
        with os.fdopen(handle, "rb") as stream:
            info = os.fstat(handle)
            if stat.S_ISDIR(info.st_mode):
                raise SpecError("cannot read: a folder, not a file", file=str(path))
            if not stat.S_ISREG(info.st_mode):
                raise SpecError("cannot read: not a regular file (a FIFO, device or socket); "
                                f"archcalc reads {what} from files only", file=str(path))
            if info.st_size > limit:
                raise SpecError(f"the file is {info.st_size:,} bytes, over {over}", file=str(path))
            data = _read_up_to(stream, info.st_size, limit + 1)
    except OSError as exc:
        raise SpecError(f"cannot read: {reason(exc)}", file=str(path)) from None
    if len(data) > limit:  # it grew while it was read (or /proc reports 0 bytes)
        raise SpecError(f"the file is over {over}", file=str(path))
    return data


def _read_up_to(stream, size: int, most: int) -> bytes:
    """At most `most` bytes, asked for in pieces near the file's size: one read of `most` bytes would
    reserve them all at once (2 GiB for an ONNX file), whatever the file holds."""
    chunks, total = [], 0
    while total < most:
        chunk = stream.read(min(max(size + 1 - total, 1 << 16), most - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def read_json(path: str | os.PathLike, data: bytes | None = None) -> dict:
    """The spec document of the file at `path` (its bytes `data` when already read)."""
    data = read_bytes(path) if data is None else data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"not UTF-8 text: {exc.reason} at byte {exc.start}", file=str(path)) from None
    try:
        document = parse(text)
    except SpecError as exc:
        raise exc.located(file=str(path)) from None
    if not isinstance(document, dict):
        raise SpecError("$: a spec is a JSON object", file=str(path))
    return document


def parse(text: str) -> Any:
    """JSON text to Python values, refusing what a spec must not hold (see the module docstring)."""
    budget = current()
    duplicates: dict[int, tuple[dict, str]] = {}

    def pairs_to_object(pairs: list) -> dict:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            seen: set = set()
            first = next(key for key, _ in pairs if key in seen or seen.add(key))  # type: ignore[func-returns-value]
            duplicates[id(obj)] = (obj, first)  # the object is kept, so its id is not reused
        return obj

    def integer(literal: str) -> Any:
        if len(literal.lstrip("-")) > _LONGEST_INT_LITERAL:
            return _Literal(literal, f"an integer of {len(literal.lstrip('-')):,} digits, beyond {budget.describe('int_bits')}")
        return int(literal)

    def number(literal: str) -> Any:
        value = float(literal)
        return value if math.isfinite(value) else _Literal(literal, f"{shown(literal, 40)} overflows to infinity; give a finite number")

    def constant(literal: str) -> Any:
        return _Literal(literal, f"{literal} is not a number JSON allows; give a finite number")

    try:
        document = json.loads(text, object_pairs_hook=pairs_to_object, parse_int=integer,
                              parse_float=number, parse_constant=constant)
    except json.JSONDecodeError as exc:
        raise SpecError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise SpecError(f"$: JSON nests deeper than {budget.describe('depth')}") from None
    except (ValueError, MemoryError) as exc:
        raise SpecError(f"invalid JSON: {shown(str(exc), 80)}") from None
    if isinstance(document, (dict, list)):  # a bare scalar is no spec: read_json says so
        _check(document, budget, duplicates, bool(_SURROGATE_ESCAPE.search(text)))
    return document


def _check(document: Any, budget, duplicates: dict, surrogates: bool) -> None:
    """Walk the parsed document once (no recursion) and refuse the first thing it must not hold."""
    top = 2 ** (budget.int_bits - 1)
    stack: list[tuple[Any, int, tuple | None]] = [(document, 0, None)]
    items: Iterable[tuple[Any, Any]]
    while stack:
        value, depth, trail = stack.pop()
        if depth >= budget.depth:
            raise SpecError(f"{_path(trail)}: JSON nests deeper than {budget.describe('depth')}")
        if isinstance(value, dict):
            if id(value) in duplicates:
                raise SpecError(f"{_path(trail)}: duplicate key {shown(duplicates[id(value)][1])} "
                                "(JSON keeps only the last; give each key once)")
            if surrogates:
                for key in value:
                    if re.search(_SURROGATE, key):
                        raise SpecError(f"{_path(trail)}: key {shown(key)} holds a lone UTF-16 surrogate, which is not text")
            items = value.items()
        else:
            if len(value) > budget.items:
                raise SpecError(f"{_path(trail)}: a list of {len(value):,} items, over {budget.describe('items')}")
            items = enumerate(value)
        for key, item in items:  # scalars are checked here; containers go on the stack
            kind = type(item)
            if kind is dict or kind is list:
                stack.append((item, depth + 1, (trail, key)))
            elif kind is int:
                if not -top <= item < top:
                    raise SpecError(f"{_path((trail, key))}: {shown(item, 40)} is beyond {budget.describe('int_bits')}")
            elif kind is _Literal:
                raise SpecError(f"{_path((trail, key))}: {item.problem}")
            elif surrogates and kind is str and re.search(_SURROGATE, item):
                raise SpecError(f"{_path((trail, key))}: {shown(item)} holds a lone UTF-16 surrogate, which is not text")


def _path(trail: tuple | None) -> str:
    parts: list[str] = []
    while trail is not None:
        trail, key = trail
        parts.append(f"[{key}]" if isinstance(key, int) else (f".{key}" if re.fullmatch(r"[A-Za-z_$][\w$]*", key)
                                                              else f"[{shown(key, 40)}]"))
    path = "$" + "".join(reversed(parts))
    return path if len(path) <= 120 else f"{path[:60]}...{path[-40:]} ({len(parts)} levels)"
