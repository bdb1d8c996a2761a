"""Checking a network's published figures (`expect`) against what archcalc computes."""
from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from .. import fmt
from ..errors import SpecError
from .calc import Analysis, analyze
from .spec import Expect, Network, suggest

UNITS = {"K": 10**3, "M": 10**6, "G": 10**9, "MB": 10**6, "MiB": 2**20}


@dataclass(frozen=True)
class Verdict:
    network: str
    expect: Expect
    computed: Any  # in the claim's unit, rounded as the claim is
    exact: Any  # the exact computed integer (or shape)
    status: str  # exact, rounds, truncates, miss, wrong (a known error that still does not add up), unexpected

    @property
    def ok(self) -> bool:
        return self.status in ("exact", "rounds", "truncates", "wrong")


def in_unit(exact: int, expect: Expect) -> int | float:
    """`exact` in the claim's unit, to the digits the claim is written with, rounded as it says."""
    decimals = max(0, -Decimal(str(expect.value)).as_tuple().exponent)
    if expect.significant:
        decimals = expect.significant - 1 - math.floor(math.log10(expect.value))
    scaled = Fraction(exact) / UNITS[expect.unit] * Fraction(10) ** decimals
    digits = math.floor(scaled) if expect.rounding == "down" else math.floor(scaled + Fraction(1, 2))
    return round(digits / 10**decimals, decimals) if decimals > 0 else digits * 10**-decimals


def computed_value(analysis: Analysis, expect: Expect) -> Any:
    if expect.layer is not None:
        try:
            source: Any = analysis.row(expect.layer)
        except KeyError:
            paths = [row.path for row in analysis.rows]
            raise SpecError(f"expect: no layer {expect.layer!r}{suggest(expect.layer, paths)}", file=analysis.network.file) from None
    else:
        source = analysis.totals
    what = expect.what  # each figure names its own convention: params or params_keras
    if what == "output_shape":
        return list(source.output_shape if expect.layer else analysis.output_shape)
    if what == "weights_bytes":
        return (source.params + source.non_trainable) * analysis.bytes_per_value
    if what == "flops":
        return 2 * source.macs
    if what == "layers":
        return analysis.totals.weight_layers
    if what == "activations" and expect.layer is not None:
        return source.allocated
    return getattr(source, what)


def judge(analysis: Analysis, expect: Expect) -> Verdict:
    exact = computed_value(analysis, expect)
    computed = exact
    if expect.unit:
        computed = in_unit(exact, expect)
        if Fraction(exact) == Fraction(Decimal(str(expect.value))) * UNITS[expect.unit]:
            status = "exact"
        elif computed == expect.value:
            status = "truncates" if expect.rounding == "down" else "rounds"
        else:
            status = "miss"
    else:
        status = "exact" if exact == expect.value else "miss"
    if expect.wrong:
        status = "unexpected" if status != "miss" else "wrong"
    return Verdict(analysis.network.name, expect, computed, exact, status)


def check_network(network: Network, analysis: Analysis | None = None) -> list[Verdict]:
    analysis = analysis or analyze(network)
    return [judge(analysis, expect) for expect in network.expect]


def describe(verdict: Verdict) -> str:
    e = verdict.expect
    unit = e.unit or ""
    subject = f"{e.what}" + (f" of {e.layer}" if e.layer else "")
    claimed = f"{_number(e.value)}{unit and ' ' + unit}"
    computed = f"{_number(verdict.computed)}{unit and ' ' + unit}" + (" rounded down" if verdict.status == "truncates" else "")
    exact = f" ({_number(verdict.exact)})" if e.unit else ""
    label = {
        "exact": "ok", "rounds": "ok", "truncates": "ok", "miss": "MISS",
        "wrong": "known wrong", "unexpected": "MARKED WRONG BUT MATCHES",
    }[verdict.status]
    note = f"; {e.note}" if e.note and verdict.status in ("wrong", "truncates") else ""
    return f"{label:>5}  {verdict.network}: {subject} claimed {claimed}, computed {computed}{exact} [{e.source}]{note}"


def _number(value: Any) -> str:
    return fmt.value(value) if isinstance(value, (int, list)) and not isinstance(value, bool) else str(value)
