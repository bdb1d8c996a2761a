"""The safe expression evaluator: what it computes and what it refuses."""
from __future__ import annotations

import pytest

from archcalc.core.expr import evaluate, make_divisible
from archcalc.errors import SpecError


@pytest.mark.parametrize("source, expected", [
    ("1 + 2 * 3", 7),
    ("(1 + 2) * 3", 9),
    ("7 // 2", 3),
    ("7 / 2", 3.5),
    ("7 % 4", 3),
    ("2 ** 10", 1024),
    ("-3 + +2", -1),
    ("width * 2", 128),
    ("widths[1]", 128),
    ("widths[-1] // 4", 64),
    ("[width, width * 2]", [64, 128]),
    ("'b' if width > 32 else 'a'", "b"),
    ("width > 32 and width < 100", True),
    ("width < 32 or 5", 5),
    ("not bn", True),
    ("1 < 2 < 3", True),
    ("1 < 3 < 2", False),
    ("64 in widths", True),
    ("3 not in widths", True),
    ("min(3, 1, 2) + max(widths)", 257),
    ("abs(-4) + len(widths) + sum(widths)", 4 + 3 + 448),
    ("int(7.9) + round(2.5) + round(3.5)", 7 + 2 + 4),
    ("ceil(7 / 2) + floor(7 / 2)", 7),
    ("none", None),
])
def test_arithmetic(source, expected):
    env = {"width": 64, "widths": [64, 128, 256], "bn": False, "none": None}
    assert evaluate(source, env) == expected


@pytest.mark.parametrize("value, divisor, expected", [
    (32 * 0.75, 8, 24),
    (16 * 0.35, 8, 8),  # 5.6 rounds up to the minimum, the divisor
    (96 * 1.4, 8, 136),  # 134.4 -> 136
    (1280 * 0.5, 8, 640),
    (92, 16, 96),  # 92 + 8 = 100 -> 96
    (70, 32, 64),  # 70 + 16 = 86 -> 64, not below 0.9 * 70 = 63
    (60, 32, 64),  # 60 + 16 = 76 -> 64
    (40, 32, 64),  # 40 + 16 = 56 -> 32 < 0.9 * 40 = 36: one more step
])
def test_make_divisible(value, divisor, expected):
    assert make_divisible(value, divisor) == expected
    assert evaluate(f"make_divisible({value}, {divisor})", {}) == expected


def test_make_divisible_minimum():
    assert make_divisible(3, 8, 16) == 16


@pytest.mark.parametrize("source, message", [
    ("width.real", "Attribute is not allowed"),
    ("width.bit_length()", "Call is not allowed"),
    ("(1).__class__", "Attribute is not allowed"),
    ("lambda: 1", "Lambda is not allowed"),
    ("[x for x in widths]", "ListComp is not allowed"),
    ("{x: 1 for x in widths}", "DictComp is not allowed"),
    ("{'a': 1}", "Dict is not allowed"),
    ("depth", "unknown name 'depth' (known: width, widths)"),
    ("open('x')", "unknown function 'open'"),
    ("eval('1')", "unknown function 'eval'"),
    ("__import__('os')", "unknown function '__import__'"),
    ("max(widths, key=abs)", "Call is not allowed"),
    ("widths[0](1)", "Call is not allowed"),
    ("2 ** 100", "exponent too large"),
    ("((9 ** 64) ** 64) ** 64", "exponent too large"),
    ("'x' * 10 ** 9", "repetition too long"),
    ("widths * 10 ** 6", "repetition too long"),
    ("1 / 0", "division by zero"),
    ("widths[9]", "list index out of range"),
    ("1 +", "cannot parse expression"),
    ("width = 3", "cannot parse expression"),
])
def test_rejected(source, message):
    with pytest.raises(SpecError) as caught:
        evaluate(source, {"width": 64, "widths": [64, 128, 256]})
    assert message in str(caught.value)
    assert repr(source.strip()) in str(caught.value) or "cannot parse" in str(caught.value)


@pytest.mark.parametrize("source, env, outcome", [
    # a construct that is not allowed is refused where evaluation reaches it, not before
    ("1 if flag else width @ 2", {"flag": True}, 1),
    ("1 if flag else width @ 2", {"flag": False}, "BinOp is not allowed"),
    ("flag and depth", {"flag": False}, False),  # `and` stops at the first false operand
    ("flag or depth", {"flag": 3}, 3),
    ("flag or depth", {"flag": 0}, "unknown name 'depth'"),
    ("1 > 2 is 3", {}, False),  # a chain of comparisons stops at the first false one
    ("2 > 1 is 1", {}, "Compare is not allowed"),
    ("depth @ 2", {}, "BinOp is not allowed"),  # before its operands are looked up
    ("~depth", {}, "UnaryOp is not allowed"),
    ("nosuch(depth)", {}, "unknown function 'nosuch'"),  # before its arguments
    ("max(*widths)", {"widths": [1, 2]}, "Starred is not allowed"),
    ("nope[depth]", {}, "unknown name 'nope'"),  # the list first, then its index
    ("1j", {}, "Constant is not allowed"),
    ("-(-(-width))", {"width": 4}, -4),
    ("[width, width + 1][1] * 2", {"width": 4}, 10),
])
def test_evaluated_in_order(source, env, outcome):
    if isinstance(outcome, str):
        with pytest.raises(SpecError, match=outcome):
            evaluate(source, env)
    else:
        assert evaluate(source, env) == outcome and type(evaluate(source, env)) is type(outcome)


def test_names_are_looked_up_not_executed():
    # A name that is a Python builtin is still just an unknown name here.
    with pytest.raises(SpecError, match="unknown name 'print'"):
        evaluate("print", {})
