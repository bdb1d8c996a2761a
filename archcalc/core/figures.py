"""Published figures and budgets, and the one comparison that judges them against a computed number.

A `Figure` is a number as its source writes it: the value, its unit, the digits written (decimals, or
`significant` digits), how it was rounded (to the nearest, or cut `down`), a `bound` ("above": more
than the value), and what is known of it (`wrong` in the source, `approximate`). A budget is a figure
with `minimum`/`maximum` instead of a value. `compare(figure, exact)` returns one `Verdict`, used
for a spec's `expect`, the lecture claims and the reports alike.
"""

import math
from typing import TYPE_CHECKING, Any

from .. import fmt
from ..errors import SpecError, suggest
from . import quantities

if TYPE_CHECKING:
    from fractions import Fraction

SCALES = {None: 1, "K": 10**3, "M": 10**6, "G": 10**9, "MB": 10**6, "MiB": 2**20, "%": 1, "x": 1}
# exact, rounds (to the digits written), truncates (cut to them), rounds up (a figure written rounded up), holds ("more than"), within (a budget),
# over and under (a budget missed), off (a number that does not add up), differs (a shape),
# unavailable (nothing to compute it on)
MATCHING = ("exact", "rounds", "holds", "within")
# The one word `archcalc check` starts a line with: lower case passes, upper case fails (NOTHING: a
# spec named to `check` with no `expect`, a gate that checks nothing; CHANGED: an imported spec whose
# model file changed since the import, model_changed; MEASURED: rows an import measured, under
# `check --strict`, and `measured` the line that lists them without it).
WORDS = ("ok", "known-wrong", "MISS", "OVER", "UNDER", "MATCHES", "NOTHING", "CHANGED", "MEASURED", "measured")
NOTHING, CHANGED, MEASURED = WORDS[-4:-1]


def decimals(value: Any) -> int:
    """Decimals a number is written with: 3.8 -> 1, 60 -> 0."""
    from decimal import Decimal  # loaded when a figure is read or judged

    exponent = Decimal(str(value)).as_tuple().exponent
    assert isinstance(exponent, int), value  # a spec's numbers are finite (archcalc.core.reading)
    return max(0, -exponent)


class Figure:
    """A figure as a source writes it, or a budget.

    value: a number or a shape (list); None for a budget. significant: "60 million" for 60,965,224 is
    written to 1 significant digit. rounding: "nearest", "down" (the source cut the figure: 3.858 G
    written 3.8) or "up" (it rounded up). bound: "above", the claim is "more than value" ("most" = above
    50 %). wrong: the source's figure does not add up. approximate: a loose figure, off by a little is what
    it says. minimum, maximum: a budget, the computed number must be at least / at most these.
    """

    __slots__ = ("value", "unit", "significant", "rounding", "bound", "wrong", "approximate", "minimum", "maximum")

    def __init__(self, value: Any = None, unit: str | None = None, significant: int | None = None,
                 rounding: str = "nearest", bound: str | None = None, wrong: bool = False, approximate: bool = False,
                 minimum: int | float | None = None, maximum: int | float | None = None):
        self.value, self.unit, self.significant, self.rounding, self.bound = value, unit, significant, rounding, bound
        self.wrong, self.approximate, self.minimum, self.maximum = wrong, approximate, minimum, maximum

    @property
    def is_budget(self) -> bool:
        return self.minimum is not None or self.maximum is not None

    @property
    def scale(self) -> int:
        return SCALES[self.unit]

    def places(self) -> int:
        """Decimal places written (negative for significant digits left of the point: 60 M to 1 digit is -1)."""
        if self.significant:
            return self.significant - 1 - math.floor(math.log10(self.value))
        return decimals(self.value)

    def step(self) -> "Fraction":
        """The multiplier that makes the last digit written a unit: 3.8 -> 10."""
        from fractions import Fraction  # exact arithmetic: loaded when a figure is judged
        return Fraction(10) ** self.places()

    def written(self, exact: Any) -> Any:
        """`exact` as the source would write it: in the unit, to the digits written, rounded its way."""
        from fractions import Fraction  # exact arithmetic: loaded when a figure is judged
        if isinstance(exact, (list, tuple)) or self.value is None or not self.unit:
            return exact
        scaled = Fraction(exact) / self.scale * self.step()
        digits = {"down": math.floor(scaled), "up": math.ceil(scaled)}.get(self.rounding, math.floor(scaled + Fraction(1, 2)))
        places = self.places()
        return round(digits / 10**places, places) if places > 0 else digits * 10**-places


class Verdict:
    """A figure against the computed one: `exact`, the computed number (int or Fraction) or shape (list), None
    where it was not computed; `status` (MATCHING ...); `off_percent`, (claimed - computed) / computed."""

    __slots__ = ("figure", "exact", "status", "off_percent")

    def __init__(self, figure: Figure, exact: Any, status: str, off_percent: float | None = None):
        self.figure, self.exact, self.status, self.off_percent = figure, exact, status, off_percent

    @property
    def matches(self) -> bool:
        return (self.status in MATCHING or (self.status == "truncates" and self.figure.rounding == "down")
                or (self.status == "rounds up" and self.figure.rounding == "up"))

    @property
    def ok(self) -> bool:
        """A figure known to be wrong is fine while it stays wrong; a loose one while it is near."""
        if self.status == "unavailable":
            return True
        if self.figure.wrong:
            return not self.matches
        return self.matches or (self.figure.approximate and self.status in ("off", "truncates"))

    @property
    def label(self) -> str:
        if self.figure.wrong:
            return "MARKED WRONG BUT MATCHES" if self.matches else "known wrong"
        return "ok" if self.ok else ("OVER BUDGET" if self.figure.is_budget else "MISS")

    @property
    def word(self) -> str:
        """The verdict in one word (WORDS): ok, known-wrong, or in capitals what failed."""
        if self.figure.wrong:
            return "MATCHES" if self.matches else "known-wrong"
        if self.ok:
            return "ok"
        return {"over": "OVER", "under": "UNDER"}.get(self.status, "MISS")

    @property
    def computed(self) -> Any:
        """The computed number as the source would write it (for display next to the claim)."""
        return None if self.exact is None else self.figure.written(self.exact)


def compare(figure: Figure, exact: Any) -> Verdict:
    if exact is None:
        return Verdict(figure, None, "unavailable")
    if figure.is_budget:
        if figure.minimum is not None and exact < figure.minimum:
            return Verdict(figure, exact, "under")
        if figure.maximum is not None and exact > figure.maximum:
            return Verdict(figure, exact, "over")
        return Verdict(figure, exact, "within")
    if isinstance(exact, (list, tuple)) or isinstance(figure.value, list):
        return Verdict(figure, exact, "exact" if list(exact) == figure.value else "differs")
    from decimal import Decimal
    from fractions import Fraction  # exact arithmetic: loaded when a figure is judged

    x = Fraction(exact) / figure.scale
    claimed = Fraction(Decimal(str(figure.value)))
    off = float((claimed - x) / x * 100) if x else None
    if figure.bound == "above":
        return Verdict(figure, exact, "holds") if x > claimed else Verdict(figure, exact, "off", off)
    if x == claimed:
        return Verdict(figure, exact, "exact")
    step = figure.step()
    if figure.rounding == "up":
        return Verdict(figure, exact, "rounds up" if math.ceil(x * step) == claimed * step else "off", off)
    if math.floor(x * step + Fraction(1, 2)) == claimed * step:
        return Verdict(figure, exact, "rounds")
    if math.floor(x * step) == claimed * step:
        return Verdict(figure, exact, "truncates", off)
    return Verdict(figure, exact, "off", off)


# ---- a spec's `expect` -----------------------------------------------------------------------

class Expect:
    """A figure of a spec: what is counted (each names its convention), on which row, by whom. `source`: a
    published figure's source, "" for a budget (its `reason` says why it holds); `batch` and `dtype`: a memory
    figure's (default: the analysis')."""

    __slots__ = ("what", "figure", "source", "layer", "note", "reason", "batch", "dtype")

    def __init__(self, what: str, figure: Figure, source: str, layer: str | None = None, note: str = "",
                 reason: str = "", batch: int | None = None, dtype: str | None = None):
        self.what, self.figure, self.source, self.layer, self.note = what, figure, source, layer, note
        self.reason, self.batch, self.dtype = reason, batch, dtype

    @classmethod
    def from_item(cls, item: dict) -> "Expect":
        """An `expect` entry of a spec, checked (archcalc.core.keys.check_expect_value) beforehand."""
        figure = Figure(item.get("value"), item.get("unit"), item.get("significant"), item.get("rounding", "nearest"),
                        wrong=item.get("wrong", False), minimum=item.get("min"), maximum=item.get("max"))
        return cls(item["what"], figure, item.get("source", ""), item.get("layer"), item.get("note", ""),
                   item.get("reason", ""), item.get("batch"), item.get("dtype"))

    @property
    def value(self) -> Any:
        return self.figure.value

    @property
    def unit(self) -> str | None:
        return self.figure.unit

    @property
    def wrong(self) -> bool:
        return self.figure.wrong

    @property
    def rounding(self) -> str:
        return self.figure.rounding

    @property
    def significant(self) -> int | None:
        return self.figure.significant


class Checked:
    """The verdict on one `expect` of a network."""

    __slots__ = ("network", "expect", "verdict")

    def __init__(self, network: str, expect: Expect, verdict: Verdict):
        self.network, self.expect, self.verdict = network, expect, verdict

    @property
    def ok(self) -> bool:
        return self.verdict.ok

    @property
    def status(self) -> str:
        return self.verdict.status

    @property
    def exact(self) -> Any:
        return self.verdict.exact

    @property
    def computed(self) -> Any:
        return self.verdict.computed


def computed_value(analysis, expect: Expect) -> Any:
    """The number or shape an `expect` is about, from an analysis (archcalc.core.calc.Analysis), at the
    expect's batch (default 1) and dtype: the figure its quantity declares (archcalc.core.quantities)."""
    row = None
    if expect.layer is not None:
        try:
            row = analysis.row(expect.layer)
        except KeyError:
            paths = [row.path for row in analysis.rows]
            raise SpecError(f"expect: no layer {expect.layer!r}{suggest(expect.layer, paths)}",
                            file=analysis.network.file) from None
    return quantities.figure(quantities.by_expect()[expect.what], analysis.scaled(expect.batch or 1, expect.dtype), row)


def judge(analysis, expect: Expect) -> Checked:
    return Checked(analysis.network.name, expect, compare(expect.figure, computed_value(analysis, expect)))


def describe(checked: Checked) -> str:
    """One line: the verdict word, the network, what was claimed or budgeted, what was computed, and why."""
    e, v = checked.expect, checked.verdict
    if e.figure.is_budget:
        return f"{v.word:<11} {checked.network}: {_subject(e)} {_limits(e.figure)}, computed {_number(v.exact)} [{e.reason}]"
    unit = f" {e.unit}" if e.unit else ""
    subject = _subject(e)
    claimed = f"{_number(e.value)}{unit}"
    cut = v.status == "truncates" and v.matches
    computed = f"{_number(v.computed)}{unit}" + (" rounded down" if cut else "")
    exact = f" ({_number(v.exact)})" if e.unit else ""
    note = f"; {e.note}" if e.note and ((e.wrong and not v.matches) or cut) else ""
    return f"{v.word:<11} {checked.network}: {subject} claimed {claimed}, computed {computed}{exact} [{e.source}]{note}"


def _subject(e: Expect) -> str:
    at = [f"batch {e.batch}"] if e.batch else []
    at += [e.dtype] if e.dtype else []
    return e.what + (f" of {e.layer}" if e.layer else "") + (f" ({', '.join(at)})" if at else "")


def _limits(f: Figure) -> str:
    parts = ([f"min {_number(f.minimum)}"] if f.minimum is not None else []) + (
        [f"max {_number(f.maximum)}"] if f.maximum is not None else [])
    return "budget " + ", ".join(parts)


def _number(value: Any) -> str:
    if value == math.inf:
        return "global"
    return fmt.value(value) if isinstance(value, (int, list)) and not isinstance(value, bool) else str(value)
