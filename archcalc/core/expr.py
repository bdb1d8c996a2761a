"""A small, safe evaluator for the arithmetic a spec family needs.

Only literals, names from the environment, arithmetic, comparisons, boolean logic,
conditional expressions, indexing and a handful of whitelisted functions are allowed.
Nothing is ever passed to Python's eval.
"""
from __future__ import annotations

import ast
import math
import operator
from typing import Any, Callable, Mapping

from ..errors import SpecError


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round channels to a multiple of divisor, never more than 10% down (MobileNet/EfficientNet rule)."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "min": min,
    "max": max,
    "abs": abs,
    "int": int,
    "round": round,
    "len": len,
    "sum": sum,
    "ceil": math.ceil,
    "floor": math.floor,
    "make_divisible": make_divisible,
}

_BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}
_COMPARE = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}


def evaluate(source: str, env: Mapping[str, Any]) -> Any:
    """Evaluate one expression; raise SpecError naming the expression on any problem."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise SpecError(f"cannot parse expression {source!r}: {exc.msg} (text is quoted inside the string: "
                        f"\"'{source}'\")") from None
    try:
        return _eval(tree.body, env)
    except SpecError as exc:
        raise SpecError(f"in expression {source!r}: {exc.message}") from None
    except (ArithmeticError, TypeError, IndexError, KeyError, ValueError) as exc:
        raise SpecError(f"in expression {source!r}: {exc}") from None


def _bits(value: Any) -> int:
    return abs(value).bit_length() if isinstance(value, int) else 0


def _too_long(left: Any, right: Any) -> bool:
    """A string or list repeated into more than a million items."""
    for sequence, count in ((left, right), (right, left)):
        if isinstance(sequence, (str, list)) and isinstance(count, int) and len(sequence) * count > 10**6:
            return True
    return False


def _eval(node: ast.AST, env: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool, type(None))):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in env:
            return env[node.id]
        names = ", ".join(sorted(env)) or "none"
        raise SpecError(f"unknown name {node.id!r} (known: {names})")
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left, env), _eval(node.right, env)
        if isinstance(node.op, ast.Pow) and (abs(right) > 64 or _bits(left) * abs(right) > 4096):
            raise SpecError("exponent too large")
        if isinstance(node.op, ast.Mult) and _too_long(left, right):
            raise SpecError("repetition too long")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand, env))
    if isinstance(node, ast.BoolOp):
        values = node.values
        if isinstance(node.op, ast.And):
            result: Any = True
            for value in values:
                result = _eval(value, env)
                if not result:
                    return result
            return result
        result = False
        for value in values:
            result = _eval(value, env)
            if result:
                return result
        return result
    if isinstance(node, ast.Compare):
        left = _eval(node.left, env)
        for op, comparator in zip(node.ops, node.comparators):
            if type(op) not in _COMPARE:
                break
            right = _eval(comparator, env)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        else:
            return True
    if isinstance(node, ast.IfExp):
        return _eval(node.body, env) if _eval(node.test, env) else _eval(node.orelse, env)
    if isinstance(node, ast.Subscript):
        return _eval(node.value, env)[_eval(node.slice, env)]
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_eval(element, env) for element in node.elts]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        function = FUNCTIONS.get(node.func.id)
        if function is None:
            raise SpecError(f"unknown function {node.func.id!r} (allowed: {', '.join(sorted(FUNCTIONS))})")
        return function(*(_eval(arg, env) for arg in node.args))
    raise SpecError(f"{type(node).__name__} is not allowed in a spec expression")
