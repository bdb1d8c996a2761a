"""Kinds of values a spec holds, each described once: how it is checked, normalised and written in JSON Schema.

A kind checks a *resolved* value (after expressions are evaluated) and returns it normalised: pairs
become `(h, w)` tuples, integral floats of integer kinds become ints. `schema()` is the same rule in
JSON Schema; `expression=True` keys also accept an expression string there. `examples()` gives values
the kind accepts and refuses, so tests can show that the loader and the schema agree.
"""

import json
import math
import re
from typing import Any

from .budget import current
from .errors import SpecError, suggest

EXPR = {"type": "string", "description": "an expression over the family's params, loop variables and block args"}
PADDING_MODES = ("same", "valid")


def shown(value: Any, limit: int = 80) -> str:
    """A value as JSON, cut to `limit` characters so that no message grows with the input."""
    try:
        text = json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def quoted(text: Any, limit: int = 80) -> str:
    """repr(text), cut to `limit` characters: for names and expressions echoed in a message."""
    out = repr(text)
    return out if len(out) <= limit else out[: limit - 4] + "...'"


def kind_error(where: str, expected: str, value: Any) -> SpecError:
    return SpecError(f"{where}: expected {expected}, got {shown(value)}")


def is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Kind:
    expected = "a value"

    def check(self, value: Any, where: str) -> Any:
        return value

    def schema(self) -> dict:
        return {}

    def literal(self, raw: Any, where: str, owner: str = "") -> Any:
        """A raw JSON string that is not an expression (a keyword such as 'same'), else None (asked of strings only)."""
        return None

    def examples(self) -> tuple[list, list]:
        """(values accepted, values refused), for tests."""
        return [], []

    def expression_schema(self) -> dict:
        """The strings the schema lets through as expressions (all but the keywords `literal` refuses)."""
        return EXPR


class Bounds:
    """A closed or open interval; None leaves a side unbounded (`above` and `below` are exclusive)."""

    __slots__ = ("minimum", "maximum", "above", "below")

    def __init__(self, minimum: float | None = None, maximum: float | None = None, above: float | None = None,
                 below: float | None = None):
        self.minimum, self.maximum, self.above, self.below = minimum, maximum, above, below

    def check(self, value: float, where: str) -> None:
        if self.minimum is not None and value < self.minimum:
            raise SpecError(f"{where}: must be at least {self.minimum}, got {shown(value)}")
        if self.maximum is not None and value > self.maximum:
            raise SpecError(f"{where}: must be at most {self.maximum}, got {shown(value)}")
        if self.above is not None and value <= self.above:
            raise SpecError(f"{where}: must be greater than {self.above}, got {shown(value)}")
        if self.below is not None and value >= self.below:
            raise SpecError(f"{where}: must be less than {self.below}, got {shown(value)}")

    def schema(self) -> dict:
        out: dict[str, Any] = {}
        for key, bound in (("minimum", self.minimum), ("maximum", self.maximum),
                           ("exclusiveMinimum", self.above), ("exclusiveMaximum", self.below)):
            if bound is not None:
                out[key] = bound
        return out

    def inside(self) -> float:
        low = self.minimum if self.minimum is not None else (self.above + 1 if self.above is not None else 0)
        if self.below is not None and low >= self.below:
            return (low + self.below) / 2 if self.above is not None else self.below - 0.5
        return low

    def outside(self) -> list[float]:
        out = []
        if self.minimum is not None:
            out.append(self.minimum - 1)
        if self.above is not None:
            out.append(self.above)
        if self.maximum is not None:
            out.append(self.maximum + 1)
        if self.below is not None:
            out.append(self.below)
        return out


class Integer(Kind):
    expected = "an integer"

    def __init__(self, minimum: int | None = None, maximum: int | None = None):
        self.bounds = Bounds(minimum, maximum)

    def check(self, value: Any, where: str) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not is_integer(value):
            raise kind_error(where, self.expected, value)
        top = 1 << (current().int_bits - 1)
        if not -top <= value < top:
            raise SpecError(f"{where}: {shown(value, 40)} is beyond {current().describe('int_bits')}")
        self.bounds.check(value, where)
        return value

    def schema(self) -> dict:
        return {"type": "integer", **self.bounds.schema()}

    def examples(self) -> tuple[list, list]:
        return [int(self.bounds.inside())], [*[int(v) for v in self.bounds.outside()], "x1", 1.5, True, [1]]


class Number(Kind):
    expected = "a number"

    def __init__(self, minimum: float | None = None, maximum: float | None = None,
                 above: float | None = None, below: float | None = None):
        self.bounds = Bounds(minimum, maximum, above, below)

    def check(self, value: Any, where: str) -> float | int:
        if not is_number(value):
            raise kind_error(where, self.expected, value)
        if isinstance(value, float) and not math.isfinite(value):
            raise kind_error(where, "a finite number", value)
        self.bounds.check(value, where)
        return value

    def schema(self) -> dict:
        return {"type": "number", **self.bounds.schema()}

    def examples(self) -> tuple[list, list]:
        return [self.bounds.inside()], [*self.bounds.outside(), True, [1.0]]


class Boolean(Kind):
    expected = "true or false"

    def check(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise kind_error(where, self.expected, value)
        return value

    def literal(self, raw: Any, where: str, owner: str = "") -> Any:
        if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
            raise SpecError(f"{where}: {shown(raw)} is a string; use the JSON value {raw.strip().lower()}")
        return None

    def schema(self) -> dict:
        return {"type": "boolean"}

    def expression_schema(self) -> dict:
        return {**EXPR, "not": {"pattern": "^\\s*([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])\\s*$"}}

    def examples(self) -> tuple[list, list]:
        return [True, False], [0, 1]


class Text(Kind):
    expected = "a string"

    def __init__(self, non_empty: bool = False):
        self.non_empty = non_empty

    def check(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or (self.non_empty and not value):
            raise kind_error(where, "a non-empty string" if self.non_empty else self.expected, value)
        return value

    def literal(self, raw: Any, where: str, owner: str = "") -> Any:
        return raw if isinstance(raw, str) else None  # text is never an expression

    def expression_schema(self) -> dict:
        return self.schema()  # no string stands for an expression

    def schema(self) -> dict:
        return {"type": "string", **({"minLength": 1} if self.non_empty else {})}

    def examples(self) -> tuple[list, list]:
        return ["text"], [1, None, *([""] if self.non_empty else [])]


class FileName(Text):
    """A name that becomes a file name (a network's report page): it must stay one file in the folder."""

    longest = 100
    pattern = "^(?![.])[^/\\\\\\x00-\\x1f\\x7f-\\x9f]{1,%d}$" % longest
    expected = (f"a name of 1 to {longest} characters without '/', '\\' or control characters, "
                "not starting with '.'")

    def check(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not re.fullmatch(self.pattern, value):
            raise kind_error(where, self.expected, value)
        return value

    def schema(self) -> dict:
        return {"type": "string", "pattern": self.pattern}

    def examples(self) -> tuple[list, list]:
        return ["resnet50", "ResNet-50 (v1.5)"], ["../escaped", "a/b", ".hidden", "x" * 101, "tab\there", "", 1]


class Choice(Kind):
    def __init__(self, *values: str):
        self.values = values
        self.expected = "one of " + ", ".join(values)

    def check(self, value: Any, where: str) -> str:
        if value not in self.values or not isinstance(value, str):
            hint = suggest(value, self.values) if isinstance(value, str) else ""
            given = quoted(value) if isinstance(value, str) else shown(value)
            raise SpecError(f"{where}: {given} is not {self.expected}{hint}")
        return value

    def literal(self, raw: Any, where: str, owner: str = "") -> Any:
        return raw if isinstance(raw, str) and raw in self.values else None

    def schema(self) -> dict:
        return {"enum": list(self.values)}

    def examples(self) -> tuple[list, list]:
        return [self.values[0]], [self.values[0] + "x", 1]


class Pair(Kind):
    """An integer for both axes, or [h, w]; normalised to (h, w)."""

    expected = "an integer or [h, w]"

    def __init__(self, minimum: int = 0):
        self.item = Integer(minimum)

    def check(self, value: Any, where: str) -> tuple[int, int]:
        if isinstance(value, (list, tuple)):
            if len(value) != 2:
                raise kind_error(where, self.expected, value)
            return tuple(self._item(v, value, where) for v in value)  # type: ignore[return-value]
        one = self._item(value, value, where)
        return one, one

    def _item(self, v: Any, whole: Any, where: str) -> int:
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if not is_integer(v):
            raise kind_error(where, self.expected, whole)
        return self.item.check(v, where)

    def literal(self, raw: Any, where: str, owner: str = "") -> Any:
        if raw in PADDING_MODES:
            raise SpecError(f"{where}: the padding mode {raw!r} is not defined for {owner or 'this layer'}; "
                            f"give the padding as an integer or [h, w]")
        return None

    def expression_schema(self) -> dict:
        return {**EXPR, "not": {"enum": list(PADDING_MODES)}}

    def schema(self) -> dict:
        item = self.item.schema()
        return {"anyOf": [item, {"type": "array", "items": {"anyOf": [item, EXPR]}, "minItems": 2, "maxItems": 2}]}

    def examples(self) -> tuple[list, list]:
        low = self.item.bounds.minimum or 0
        return [low, [low, low + 1]], [[low], [low, low, low], low - 1, "same"]


class Padding(Pair):
    """A pair, or the keyword 'same' (TensorFlow's rule) or 'valid' (no padding)."""

    expected = "an integer, [h, w], 'same' or 'valid'"

    def check(self, value: Any, where: str) -> Any:
        return value if value in PADDING_MODES else super().check(value, where)

    def literal(self, raw: Any, where: str, owner: str = "") -> Any:
        return raw if raw in PADDING_MODES else None

    def expression_schema(self) -> dict:
        return EXPR

    def schema(self) -> dict:
        return {"anyOf": [{"enum": list(PADDING_MODES)}, *super().schema()["anyOf"]]}

    def examples(self) -> tuple[list, list]:
        return ["same", "valid", 1, [0, 1]], [[1], -1, "full"]


class Shape(Kind):
    """A shape without the batch: [C, H, W], [H, W] or [F], positive integers; an input's unless told."""

    def __init__(self, of: str = "an input"):
        self.expected = f"{of} shape [C, H, W], [H, W] or [F] of positive integers (no batch)"

    def check(self, value: Any, where: str) -> tuple[int, ...]:
        if not (isinstance(value, list) and 1 <= len(value) <= 3 and all(is_integer(v) and v > 0 for v in value)):
            raise kind_error(where, self.expected, value)
        return tuple(value)

    def schema(self) -> dict:
        return {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1, "maxItems": 3}

    def examples(self) -> tuple[list, list]:
        return [[3, 8, 8], [16]], [[], [1, 3, 8, 8], [0, 8, 8], "3x8x8"]


class Ints(Kind):
    """A list of integers (axes, sizes), each at least `minimum`; normalised to a tuple."""

    def __init__(self, minimum: int = 0, what: str = "integers"):
        self.item = Integer(minimum)
        self.expected = f"a list of {what}"

    def check(self, value: Any, where: str) -> tuple[int, ...]:
        if not isinstance(value, (list, tuple)) or not value:
            raise kind_error(where, self.expected, value)
        out = []
        for v in value:
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            if not is_integer(v):
                raise kind_error(where, self.expected, value)
            out.append(self.item.check(v, where))
        return tuple(out)

    def schema(self) -> dict:
        return {"type": "array", "items": {"anyOf": [self.item.schema(), EXPR]}, "minItems": 1}

    def examples(self) -> tuple[list, list]:
        low = self.item.bounds.minimum or 0
        return [[low + 1, low], [low + 2]], [[], low + 1, [low - 1], [1.5], "0,1"]


class Object(Kind):
    expected = "an object"

    def check(self, value: Any, where: str) -> dict:
        if not isinstance(value, dict):
            raise kind_error(where, self.expected, value)
        return value

    def schema(self) -> dict:
        return {"type": "object"}

    def examples(self) -> tuple[list, list]:
        return [{}], [[], "x", 1]


class Structure(Kind):
    """A value the loader walks itself (nodes, blocks, variants): the schema refers to a definition."""

    def __init__(self, schema: dict, expected: str, check_type: type | None = None):
        self._schema, self.expected, self.check_type = schema, expected, check_type

    def check(self, value: Any, where: str) -> Any:
        if self.check_type is not None and not isinstance(value, self.check_type):
            raise kind_error(where, self.expected, value)
        return value

    def schema(self) -> dict:
        return dict(self._schema)


class Table(Kind):
    """A connection table: for each output channel, the input channels it reads (LeNet-5's C3)."""

    expected = "a list, per output channel, of the distinct input channels it reads ([[0, 1, 2], [1, 2, 3], ...])"

    def check(self, value: Any, where: str) -> tuple[tuple[int, ...], ...]:
        if not (isinstance(value, (list, tuple)) and value and all(
                isinstance(row, (list, tuple)) and row and all(is_integer(c) and c >= 0 for c in row)
                and len(set(row)) == len(row) for row in value)):
            raise kind_error(where, self.expected, value)
        return tuple(tuple(row) for row in value)

    def schema(self) -> dict:
        row = {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1, "uniqueItems": True}
        return {"type": "array", "items": row, "minItems": 1}

    def examples(self) -> tuple[list, list]:
        return [[[0, 1], [1]]], [[], [[]], [[0, 0]], [[-1]], [1, 2], "0,1"]


KINDS_BY_NAME = {"int": Integer, "number": Number, "bool": Boolean, "pair": Pair, "padding": Padding, "table": Table,
                 "ints": Ints}


def by_name(name: str, minimum: float | None = None) -> Kind:
    """The kind a layer field names (`Field("pair", minimum=1)`)."""
    cls = KINDS_BY_NAME[name]
    if cls is Integer:
        return Integer(None if minimum is None else int(minimum))
    if cls is Number:
        return Number(minimum)
    if cls in (Pair, Padding):
        return cls(int(minimum or 0))
    return cls()


class Sources(Kind):
    """What a merge's `from` names: one node (its branches' input) or the nodes it joins, two or more."""

    expected = "a node's name, or a list of two or more names"

    def check(self, value: Any, where: str) -> Any:
        if isinstance(value, str) and value:
            return value
        if isinstance(value, list) and len(value) >= 2 and all(isinstance(v, str) and v for v in value):
            return value
        raise kind_error(where, self.expected, value)

    def schema(self) -> dict:
        name = {"type": "string", "minLength": 1}
        return {"anyOf": [name, {"type": "array", "items": name, "minItems": 2}]}

    def examples(self) -> tuple[list, list]:
        return ["a", ["a", "b"]], [1, "", ["a"], [1, 2], None]
