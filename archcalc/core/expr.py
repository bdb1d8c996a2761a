"""A small, safe evaluator for the arithmetic a spec family needs.

Only literals, names from the environment, arithmetic, comparisons, boolean logic,
conditional expressions, indexing and a handful of whitelisted functions are allowed.
Nothing is ever passed to Python's eval.
"""
from __future__ import annotations

import ast
import functools
import math
import operator
import re
import sys
import warnings
from keyword import iskeyword
from typing import Any, Callable, Mapping

from ..budget import Budget, current
from ..errors import SpecError
from ..kinds import quoted, shown

_SURROGATE = "[\ud800-\udfff]"  # compiled on its first use (re keeps it): a text is rarely computed


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round channels to a multiple of divisor, never more than 10% down (MobileNet/EfficientNet rule)."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def _round(value: Any, digits: Any = None) -> Any:
    """round(), with a number of digits that cannot make a huge power of ten."""
    if digits is not None and (not isinstance(digits, int) or abs(digits) > 30):
        raise SpecError(f"round(x, n) takes n between -30 and 30, got {shown(digits, 24)}")
    return round(value) if digits is None else round(value, digits)


def _int(value: Any) -> int:
    if isinstance(value, str) and len(value.strip().lstrip("+-")) > 20:
        raise SpecError(f"int() of a text of {len(value):,} characters: beyond 64-bit integers")
    return int(value)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "min": min,
    "max": max,
    "abs": abs,
    "int": _int,
    "round": _round,
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
_PLAIN = {ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod}  # on two numbers, bounded by _checked alone
_NUMBERS = {int, float}  # the types (not bool) an arithmetic step takes without the checks of _binary
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}
_COMPARE = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}


def evaluate(source: str, env: Mapping[str, Any]) -> Any:
    """Evaluate one expression; raise SpecError naming the expression on any problem."""
    budget = current()
    if len(source) > budget.expression:
        raise SpecError(f"an expression of {len(source):,} characters, over {budget.describe('expression')}")
    if source in env and source.isidentifier() and not iskeyword(source):  # the most common one: a name
        return env[source]
    compiled = _compiled(source, budget.expression_depth)
    if isinstance(compiled, str):
        raise SpecError(compiled.replace("{source}", quoted(source)))
    try:
        return compiled(env, budget)
    except SpecError as exc:
        raise SpecError(f"in expression {quoted(source)}: {exc.message}") from None
    except (ArithmeticError, TypeError, IndexError, KeyError, ValueError) as exc:
        raise SpecError(f"in expression {quoted(source)}: {str(exc)[:120]}") from None
    except (RecursionError, MemoryError):
        raise SpecError(f"in expression {quoted(source)}: too large to evaluate") from None


@functools.lru_cache(maxsize=4096)
def names(source: str, depth_limit: int) -> frozenset[str] | None:
    """The names an expression reads; None when it does not parse (evaluating it says why)."""
    tree = _parse(source.strip(), depth_limit)
    return None if isinstance(tree, str) else frozenset(n.id for n in ast.walk(tree) if isinstance(n, ast.Name))


@functools.lru_cache(maxsize=4096)
def _parse(source: str, depth_limit: int) -> ast.expr | str:
    """The expression's tree, or the message (with {source} for the expression) saying why there is none."""
    with warnings.catch_warnings():  # "4if 1 else 2" warns; the spec's author sees errors, not warnings
        warnings.simplefilter("ignore")
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(limit + len(source))  # a sum of n terms is n levels deep in Python's tree
        try:
            tree = ast.parse(source, mode="eval")
        except SyntaxError as exc:
            shown_text = quoted(source)[1:-1]
            return (f"cannot parse expression {{source}}: {exc.msg} (text is quoted inside the string: "
                    f"\"'{shown_text}'\")")
        except (RecursionError, MemoryError):
            return "cannot parse expression {source}: it nests too deeply"
        except ValueError as exc:  # a NUL character
            return f"cannot parse expression {{source}}: {exc}"
        finally:
            sys.setrecursionlimit(limit)
    stack: list[tuple[ast.AST, int]] = [(tree.body, 0)]
    while stack:  # how deep _eval will recurse: chains of binary and unary operators are walked in a loop
        node, depth = stack.pop()
        if depth > depth_limit:
            return f"expression {{source}} nests deeper than {current().describe('expression_depth')}"
        if isinstance(node, ast.BinOp):
            stack += [(node.left, depth), (node.right, depth + 1)]
        elif isinstance(node, ast.UnaryOp):
            stack.append((node.operand, depth))
        else:
            stack += [(child, depth + 1) for child in ast.iter_child_nodes(node)]
    return tree.body


def _checked(value: Any, budget: Budget) -> Any:
    """Every value an expression makes stays within the budget: it is checked as soon as it is made."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if value.bit_length() >= budget.int_bits:
            raise SpecError(f"an integer of {value.bit_length():,} bits, beyond {budget.describe('int_bits')}")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise SpecError(f"the result {value} is not a finite number")
    elif isinstance(value, str):
        if len(value) > budget.text:
            raise SpecError(f"a text of {len(value):,} characters, over {budget.describe('text')}")
        if re.search(_SURROGATE, value):
            raise SpecError("a text holding a lone UTF-16 surrogate, which is not text")
    elif isinstance(value, list):
        if _size(value, budget.items) > budget.items:
            raise SpecError(f"a list of more than {budget.describe('items')}")
    else:
        kind = "a complex number" if isinstance(value, complex) else f"of type {type(value).__name__}"
        raise SpecError(f"the result is {kind}, not a real number, a text or a list")
    return value


def _size(value: list, limit: int) -> int:
    """Items of a list, the items of nested lists counted in full; counting stops past `limit`."""
    total, stack = 0, [value]
    while stack and total <= limit:
        items = stack.pop()
        total += len(items)
        stack += [item for item in items if isinstance(item, list)]
    return total


def _sizes(value: Any) -> int:
    return len(value) if isinstance(value, str) else _size(value, 2**62) if isinstance(value, list) else 0


def _binary(op: ast.operator, left: Any, right: Any, budget: Budget) -> Any:
    """One arithmetic step, its size bounded before it is computed where it could be huge."""
    kind = type(op)
    if kind is ast.Mod and isinstance(left, str):
        raise SpecError("text formatting with % is not allowed")
    if kind is ast.Pow and isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1 \
            and (abs(left).bit_length() - 1) * right >= budget.int_bits:
        raise SpecError(f"exponent too large: {shown(left, 24)} ** {shown(right, 24)} is beyond {budget.describe('int_bits')}")
    if kind is ast.Mult:
        for sequence, count in ((left, right), (right, left)):
            if isinstance(sequence, (str, list)) and isinstance(count, int) and count > 0:
                name = "text" if isinstance(sequence, str) else "items"
                if _sizes(sequence) * count > getattr(budget, name):
                    raise SpecError(f"repetition too long: over {budget.describe(name)}")
    if kind is ast.Add and isinstance(left, (str, list)) and type(left) is type(right):
        name = "text" if isinstance(left, str) else "items"
        if _sizes(left) + _sizes(right) > getattr(budget, name):
            raise SpecError(f"a concatenation over {budget.describe(name)}")
    return _checked(_BINARY[kind](left, right), budget)


def _names(env: Mapping[str, Any]) -> str:
    names = sorted(env)
    listed = ", ".join(quoted(n, 40)[1:-1] for n in names[:12])
    return (listed + (f" and {len(names) - 12:,} more" if len(names) > 12 else "")) or "none"


Compiled = Callable[[Mapping[str, Any], Budget], Any]  # (environment, budget) -> value


@functools.lru_cache(maxsize=4096)
def _compiled(source: str, depth_limit: int) -> Compiled | str:
    """The expression as a function of the environment and budget, or the message saying why there is none."""
    tree = _parse(source.strip(), depth_limit)
    return tree if isinstance(tree, str) else _compile(tree)


def _compile(node: ast.AST) -> Compiled:
    """A tree as nested closures, made once per expression. Evaluating one checks what the tree walk would,
    in the same order: a construct that is not allowed raises when it is reached, not before."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool, type(None))):
        value = node.value
        if type(value) is int:  # within any budget of more bits: checked only where the budget has fewer
            bits = value.bit_length()
            return lambda env, budget: value if bits < budget.int_bits else _checked(value, budget)
        if value is None or type(value) is bool or (type(value) is float and math.isfinite(value)):
            return lambda env, budget: value  # what _checked lets through whatever the budget
        return lambda env, budget: _checked(value, budget)
    if isinstance(node, ast.Name):
        name = node.id

        def lookup(env, budget):
            try:
                return env[name]
            except KeyError:
                raise SpecError(f"unknown name {quoted(name, 40)} (known: {_names(env)})") from None
        return lookup
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        chain = []  # a + b + c is ((a + b) + c): the left spine is compiled and run in a loop, not by recursion
        while isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            chain.append(node)
            node = node.left
        first = _compile(node)
        steps = [(step.op, type(step.op) in _PLAIN, _BINARY[type(step.op)], _compile(step.right))
                 for step in reversed(chain)]

        def arithmetic(env, budget):
            value = first(env, budget)
            for op, plain, function, right in steps:
                other = right(env, budget)
                if plain and type(value) in _NUMBERS and type(other) in _NUMBERS:  # no text or list: no size to bound
                    value = _checked(function(value, other), budget)
                else:
                    value = _binary(op, value, other, budget)
            return value
        return arithmetic
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        ops = []
        while isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            ops.append(_UNARY[type(node.op)])
            node = node.operand
        operand, ops = _compile(node), ops[::-1]

        def unary(env, budget):
            value = operand(env, budget)
            for op in ops:
                value = _checked(op(value), budget)
            return value
        return unary
    if isinstance(node, ast.BoolOp):
        values, conjunction = [_compile(v) for v in node.values], isinstance(node.op, ast.And)

        def logic(env, budget):
            result: Any = conjunction
            for value in values:
                result = value(env, budget)
                if bool(result) is not conjunction:  # a false operand ends an and, a true one an or
                    return result
            return result
        return logic
    if isinstance(node, ast.Compare):
        left_of = _compile(node.left)
        pairs = [(_COMPARE.get(type(op)), _compile(comparator)) for op, comparator in zip(node.ops, node.comparators)]
        kind = type(node).__name__

        def compare(env, budget):
            left = left_of(env, budget)
            for op, right_of in pairs:
                if op is None:
                    raise SpecError(f"{kind} is not allowed in a spec expression")
                right = right_of(env, budget)
                if not op(left, right):
                    return False
                left = right
            return True
        return compare
    if isinstance(node, ast.IfExp):
        test, body, orelse = _compile(node.test), _compile(node.body), _compile(node.orelse)
        return lambda env, budget: body(env, budget) if test(env, budget) else orelse(env, budget)
    if isinstance(node, ast.Subscript) and not isinstance(node.slice, ast.Slice):
        container, index = _compile(node.value), _compile(node.slice)
        return lambda env, budget: container(env, budget)[index(env, budget)]
    if isinstance(node, (ast.List, ast.Tuple)):
        elements = [_compile(element) for element in node.elts]
        return lambda env, budget: _checked([element(env, budget) for element in elements], budget)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        name, starred = node.func.id, any(isinstance(arg, ast.Starred) for arg in node.args)
        args = [] if starred else [_compile(arg) for arg in node.args]

        def call(env, budget):
            function = FUNCTIONS.get(name)
            if function is None:
                raise SpecError(f"unknown function {quoted(name, 40)} (allowed: {', '.join(sorted(FUNCTIONS))})")
            if starred:
                raise SpecError("Starred is not allowed in a spec expression")
            return _checked(function(*[arg(env, budget) for arg in args]), budget)
        return call
    message = f"{type(node).__name__} is not allowed in a spec expression"

    def refused(env, budget):
        raise SpecError(message)
    return refused
