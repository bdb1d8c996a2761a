"""What the CLI asks of the importers: a spec document from a torch callable or an ONNX file."""
from __future__ import annotations

import json
import os
from typing import Any

from .. import fmt
from ..errors import UsageError, one_line
from ..files import write_atomic


def import_document(kind: str, source: str, dims: tuple[int, ...] | None, kwargs: dict[str, Any] | None = None,
                    strict: bool = False) -> dict:
    if kind == "torch":
        if dims is None or len(dims) != 3:
            given = "" if dims is None else f" (got {fmt.shape(dims)})"
            raise UsageError(f"import torch needs the input size as --input CxHxW, e.g. 3x224x224{given}")
        from .loading import load_model, running
        from .torch_fx import import_torch

        with running(source):
            model = load_model(source, kwargs)
            name = source.rpartition(":")[2].split(".")[-1]
            return import_torch(model, dims, name, source, strict)
    from pathlib import Path

    from .onnx_graph import import_onnx

    return import_onnx(Path(source), dims, strict)


def load_imported(kind: str, source: str, target: str, dims: tuple[int, ...] | None,
                  kwargs: dict[str, Any] | None = None) -> tuple[Any, list[str]]:
    """The network of an on-the-fly import of `source` ("torch" or "onnx": archcalc.targets tells the kind of
    `target`), resolved as a spec would be, and its notes for stderr (an ONNX file's: what the import found, such
    as batch norms folded by the exporter); `kwargs`: the torch callable's."""
    from ..core.spec import resolve

    if kind == "torch" and ":" not in source.strip(":"):
        raise UsageError(f"{one_line(target[:200])!r}: expected torch:MODULE:CALLABLE or torch:path/to/file.py:CALLABLE")
    if kind == "onnx" and kwargs:
        raise UsageError(f"--kwargs goes with a torch:MODULE:CALLABLE target, not the ONNX file {one_line(target[:200])}")
    document = import_document(kind, source, dims, kwargs)
    notes = [f"note: {one_line(document['comment'])}"] if kind == "onnx" and document.get("comment") else []
    return resolve(document, document["name"], source), notes


def dumps(document: dict) -> str:
    """JSON with one layer per line: indented structure, compact leaves."""
    def render(value: Any, indent: int) -> str:
        pad, inner = "  " * indent, "  " * (indent + 1)
        if isinstance(value, dict) and ("layers" in value or "branches" in value or indent == 0):
            items = [f"{inner}{json.dumps(k)}: {render(v, indent + 1)}" for k, v in value.items()]
            return "{\n" + ",\n".join(items) + f"\n{pad}}}"
        if isinstance(value, list) and value and all(isinstance(v, (dict, list)) for v in value):
            return "[\n" + ",\n".join(f"{inner}{render(v, indent + 1)}" for v in value) + f"\n{pad}]"
        return json.dumps(value)

    return render(document, 0) + "\n"


def fingerprinted(document: dict, kind: str, source: str, dims: tuple[int, ...] | None = None,
                  out: str | None = None) -> dict:
    """The document with the file it was imported from and that file's SHA-256 in `meta.imported_from`, so
    that `archcalc check` can say when the model changed since (archcalc.core.figures.model_changed)."""
    path = source if kind == "onnx" else source.rpartition(":")[0]
    if kind == "torch" and not path.endswith(".py"):
        return document  # a module of an installed package: no one file to compare
    meta = dict(document.get("meta") or {})
    command = " ".join([f"archcalc import {kind} {source}", *([f"--input {fmt.shape(dims)}"] if dims else []),
                        *([f"-o {out}"] if out else [])])
    meta["imported_from"] = {"command": command, "file": path, "sha256": file_digest(path)}
    return {**document, "meta": meta}


def kept_budgets(document: dict, out: str | None) -> tuple[dict, list[str]]:
    """The document with the budgets (an `expect` with `min` or `max`) of the spec at `out` it replaces, and a
    description of each: a re-import keeps what the user added."""
    if not out:
        return document, []
    try:
        with open(out, encoding="utf-8") as f:
            old = json.load(f)
    except (OSError, ValueError):
        return document, []  # no spec there (or not one archcalc can read): nothing to keep
    expect = old.get("expect") if isinstance(old, dict) else None
    budgets = [e for e in expect if isinstance(e, dict) and ("min" in e or "max" in e)] if isinstance(expect, list) else []
    if not budgets:
        return document, []
    present = document.get("expect") or []
    kept = [e for e in budgets if e not in present]
    described = [one_line(" ".join([str(e.get("what")), *(f"{bound} {e[bound]}" for bound in ("min", "max") if bound in e)]))
                 for e in kept]
    return {**document, "expect": [*present, *kept]}, described


def write_document(document: dict, out: str | None) -> str:
    text = dumps(document)
    if out:
        write_atomic(out, text)
    return text



def file_digest(path: str) -> str | None:
    """The SHA-256 of a file's bytes in hex; None when it cannot be read."""
    import hashlib

    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def model_changed(meta: Any, spec_file: str) -> str | None:
    """Why an imported spec no longer describes its model (the file it was imported from, `meta.imported_from`,
    has other bytes now), else None; for `archcalc check`, without torch. The file is found as written at the
    import, or beside the spec."""
    source = meta.get("imported_from") if hasattr(meta, "get") else None
    if not isinstance(source, dict) or not isinstance(source.get("file"), str) or not source.get("sha256"):
        return None
    path = source["file"]
    if not os.path.exists(path) and spec_file:
        path = os.path.join(os.path.dirname(spec_file), os.path.basename(path))
    now = file_digest(path)
    if now is None:
        return f"the model file {source['file']} it was imported from cannot be read: re-import it or drop meta.imported_from"
    if now != source["sha256"]:
        return f"the model file {source['file']} changed since the import: run `{source.get('command', 'archcalc import')}` again"
    return None
