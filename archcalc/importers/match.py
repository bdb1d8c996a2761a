"""Which module of a torch model computes which row of a spec: by name, or in order."""
from __future__ import annotations

import re

from ..core.calc import Analysis, Row
from ..core.spec import MERGES


def candidates(path: str, merges: set[str]) -> list[str]:
    """The row's own path; without merge branch indices; without the merge and its branch index;
    each also without a `_N` suffix that told apart two calls of one module."""
    parts = path.split(".")
    no_index: list[str] = []
    no_merge: list[str] = []
    i = 0
    while i < len(parts):
        no_index.append(parts[i])
        if ".".join(parts[:i + 1]) in merges and i + 1 < len(parts) and parts[i + 1].isdigit():
            i += 2  # the branch index after the merge's name
            continue
        no_merge.append(parts[i])
        i += 1
    found: list[str] = []
    for option in (parts, no_index, no_merge):
        for name in (".".join(option), re.sub(r"_\d+$", "", ".".join(option))):
            if name not in found:
                found.append(name)
    return found


def by_name(analysis: Analysis, modules: set[str]) -> dict[str, list[Row]]:
    """Module name -> the leaf rows it computes, in spec order."""
    merges = merge_paths(analysis)
    matched: dict[str, list[Row]] = {}
    for row in analysis.leaves()[1:]:
        for name in candidates(row.path, merges):
            if name in modules:
                matched.setdefault(name, []).append(row)
                break
    return matched


def by_order(analysis: Analysis, calls: list[str], is_weighted) -> dict[str, list[Row]]:
    """The k-th row with weights or counted flops goes with the k-th such module call."""
    rows = [row for row in analysis.leaves()[1:] if is_weighted(row)]
    matched: dict[str, list[Row]] = {}
    for name, row in zip(calls, rows):
        matched.setdefault(name, []).append(row)
    return matched


def merge_paths(analysis: Analysis) -> set[str]:
    """The paths of the merges (concat, add, mul), which `candidates` looks past."""
    return {row.path for row in analysis.rows if not row.leaf and row.label in MERGES}
