"""Which module of a torch model computes which row of a spec: by name, or in order."""
from __future__ import annotations

import re

from ..core.calc import Analysis, Row


def candidates(path: str) -> list[str]:
    """The row's own path (a row is named as torch names its module, a merge's branches adding nothing), and
    without a `_N` suffix that told apart two calls of one module in a spec written before."""
    plain = re.sub(r"_\d+$", "", path)
    return [path] if plain == path else [path, plain]


def by_name(analysis: Analysis, modules: set[str]) -> dict[str, list[Row]]:
    """Module name -> the leaf rows it computes, in spec order."""
    matched: dict[str, list[Row]] = {}
    for row in analysis.leaves()[1:]:
        for name in candidates(row.path):
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
