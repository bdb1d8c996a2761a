"""Loading a user's model: MODULE:CALLABLE or path/to/file.py:CALLABLE, called and put in eval()."""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, Iterator

from ..core.reading import parse
from ..deps import require_torch
from ..errors import SpecError, UsageError, suggest
from ..files import nearest_file
from ..kinds import quoted


def parse_kwargs(text: str | None) -> dict[str, Any]:
    """The --kwargs JSON object, read as strictly as a spec (nesting, integers and lists within the budget)."""
    if not text:
        return {}
    try:
        value = parse(text)
    except SpecError as exc:
        raise UsageError(f"--kwargs {quoted(text)}: {exc.message}") from None
    if not isinstance(value, dict):
        raise UsageError(f"--kwargs {quoted(text)}: expected a JSON object of keyword arguments")
    return value


def _module(location: str, target: str):
    if location.endswith(".py") or os.sep in location or "/" in location:
        path = Path(location)
        if not path.is_file():
            raise SpecError(f"{target}: no such file {location}{nearest_file(location)}")
        name = f"_archcalc_model_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules[name] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        return module
    if os.getcwd() not in sys.path:  # `archcalc import torch mypkg.models:f` from the project's folder
        sys.path.insert(0, os.getcwd())
    return importlib.import_module(location)


def load_model(target: str, kwargs: dict[str, Any] | None = None):
    """The nn.Module that `target` (MODULE:CALLABLE or FILE.py:CALLABLE) builds, in eval mode.

    The callable is a function returning a module, or a module class; it gets `kwargs`.
    Whatever goes wrong, one SpecError names the callable and the exception.
    """
    torch = require_torch()
    location, sep, attribute = target.rpartition(":")
    if not sep or not location or not attribute:
        raise UsageError(f"{target!r}: expected MODULE:CALLABLE or path/to/file.py:CALLABLE")
    try:
        obj = _module(location, target)
    except SpecError:
        raise
    except Exception as exc:  # the user's import can fail in any way
        raise SpecError(f"{target}: cannot load it: {type(exc).__name__}: {exception_text(exc)}") from None
    owner = location
    for part in attribute.split("."):
        try:
            found = getattr(obj, part)
        except Exception:  # a missing name, or a property of the user's that raises
            names = [n for n in dir(obj) if not n.startswith("_")]
            raise SpecError(f"{target}: {owner} has no {part!r}{suggest(part, names)}") from None
        obj, owner = found, f"{owner}:{part}" if owner == location else f"{owner}.{part}"
    if not callable(obj):
        raise SpecError(f"{target}: {type(obj).__name__} is not callable")
    try:
        model = obj(**(kwargs or {}))
    except Exception as exc:
        raise SpecError(f"{target}: calling it raised {type(exc).__name__}: {exception_text(exc)}") from None
    if not isinstance(model, torch.nn.Module):
        raise SpecError(f"{target}: returned {type(model).__name__}, not a torch.nn.Module")
    return model.eval()


@contextlib.contextmanager
def running(target: str) -> Iterator[None]:
    """Around everything that runs the user's code (its module, the callable, its forward): a sys.exit
    there is one line naming the callable, not archcalc's own exit. Ctrl-C stays Ctrl-C."""
    try:
        yield
    except SystemExit as exc:
        raise SpecError(f"{target}: the model's code called sys.exit({exc.code!r})") from None


def exception_text(exc: BaseException) -> str:
    """What an exception from the user's code says, on one line, at most 300 characters."""
    text = " ".join(str(exc).split())
    return text[:300] + ("..." if len(text) > 300 else "")
