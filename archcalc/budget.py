"""How much a spec may ask for: limits checked while a spec is read and expanded, never after.

A spec is data, but a few bytes of it can stand for an unbounded network (`"repeat": 10**9`, blocks
that use each other twice at every level, an expression that squares a list). Every limit below is
checked at the moment the thing it limits is made, and hitting one is a SpecError naming the place
in the spec and the limit. A bigger network is one call away:

    >>> from archcalc.budget import Budget, use
    >>> with use(Budget(nodes=5_000_000)):
    ...     network = archcalc.load("huge.json")

or `archcalc.load("huge.json", budget=Budget(nodes=5_000_000))`.
"""

import contextlib
import contextvars
from typing import Iterator, NamedTuple


class Budget(NamedTuple):
    file_bytes: int = 64 * 2**20  # a spec file, refused before it is read
    depth: int = 100  # JSON nesting, and groups (blocks, sequences, merges) inside each other
    nodes: int = 20_000  # layers and groups of one network, and repeat iterations (each limited apart)
    items: int = 100_000  # items of a list value, nested lists counted in full
    int_bits: int = 64  # integers, in the JSON and from expressions: |n| < 2**63
    text: int = 10_000  # characters of a string an expression computes
    expression: int = 20_000  # characters of one expression
    expression_depth: int = 100  # operators nested inside each other (a chain of + or - counts once)
    onnx_nodes: int = 200_000  # nodes of an ONNX graph, counted before the graph is read
    fold_elements: int = 1_000_000  # values an ONNX import computes from constants, all together
    fold_bytes: int = 8 * 2**20  # the same values' bytes; both checked before a value is computed

    def describe(self, name: str) -> str:
        """`nodes` -> 'the budget of 100,000 nodes (Budget.nodes)'."""
        units = {"file_bytes": "bytes", "depth": "levels", "nodes": "nodes", "items": "items",
                 "int_bits": "bits", "text": "characters", "expression": "characters",
                 "expression_depth": "levels", "onnx_nodes": "nodes",
                 "fold_elements": "elements", "fold_bytes": "bytes"}
        return f"the budget of {getattr(self, name):,} {units[name]} (Budget.{name})"


DEFAULT = Budget()
_CURRENT: contextvars.ContextVar[Budget] = contextvars.ContextVar("archcalc_budget", default=DEFAULT)


def current() -> Budget:
    return _CURRENT.get()


@contextlib.contextmanager
def use(budget: Budget | None) -> Iterator[Budget]:
    """Within the block, specs are read and expanded under `budget` (None keeps the current one)."""
    if budget is None:
        yield current()
        return
    token = _CURRENT.set(budget)
    try:
        yield budget
    finally:
        _CURRENT.reset(token)
