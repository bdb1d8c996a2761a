"""Module scopes of an ONNX graph that archcalc reads as no layer types, each read as one `measured` row.

When a node cannot be read (an attention's Transpose that moves the batch axis, a Slice of a window, a
Div of two tensors), the nodes of its module scope (legacy node names `/features/features.1.0/attn/...`,
the dynamo exporter's name_scopes) become one opaque row: the output shape ONNX's shape inference gives
its one output, the parameters of the initializers its nodes read (each counted once), and the MACs of
its nodes counted by shape as torch's FlopCounterMode counts the ops they stand for (halved): MatMul,
Gemm, Conv, ConvTranspose and Einsum multiply-accumulate, every other op (element-wise, Softmax, norms,
reshapes) counts 0. A node in a scope that holds whole modules of its own (a container's add) is
measured alone instead, so that one stray op does not swallow its container.
"""
from __future__ import annotations

import ast
import math
from collections.abc import Callable
from typing import Any, NamedTuple

from ..errors import SpecError

Dims = tuple[int, ...]
ShapeOf = Callable[[str], Dims]
NAME_SCOPES = "pkg.torch.onnx.name_scopes"
""" per-node metadata of torch's dynamo exporter: the names of the modules the node ran in, outermost first,
then the op's own name (['', 'layer1', 'layer1.0', 'layer1.0.conv1', 'conv2d_3']), where its node names say
nothing (`node_Conv_96`) """
CLASSES = "pkg.torch.onnx.class_hierarchy"
""" the same exporter's classes of the modules in name_scopes, then the op """
METADATA_TEXT = 10_000  # characters of one node's metadata list read; a longer value is not read


UNREADABLE = ("has no archcalc layer type", "moves the batch axis", "into non-empty pieces",
              "tensor inputs; archcalc layers take one", "archcalc joins along the channels", "only a zero pad of",
              "an explicit pad is folded into")
""" what the reader says of a node it cannot read as layer types (a graph's errors, such as weights that do not fit
their input or a malformed node, are not measured: they stay one line naming the node) """


def unreadable(exc: SpecError) -> bool:
    """Whether the reader's or the calculator's refusal says a node is read as no layer type (or as one whose input
    has another layout: `linear needs a token sequence, got an image`)."""
    message = exc.message
    return any(text in message for text in UNREADABLE) or (" needs " in message and ", got " in message)


class Unit(NamedTuple):
    """What one measured row stands for: the nodes of a module scope, or one node alone (by its first output)."""

    scope: tuple[str, ...]
    alone: str = ""

    def holds(self, scope: tuple[str, ...], node) -> bool:
        if self.alone:
            return bool(node.output) and node.output[0] == self.alone
        return scope[:len(self.scope)] == self.scope

    def describe(self) -> str:
        return ".".join(self.scope) or "the top level"


class Group(NamedTuple):
    """A unit's nodes, the data values it reads from outside (in order) and the one value it gives outside."""

    unit: Unit
    members: list
    inputs: list[str]
    output: str


# ---- MACs per node, by shape ----------------------------------------------------------------------


def _matmul(node, shape_of: ShapeOf, attrs: dict) -> int:
    a = shape_of(node.input[0])
    return math.prod(shape_of(node.output[0])) * (a[-1] if a else 1)  # torch's matmul: bmm of broadcast operands


def _gemm(node, shape_of: ShapeOf, attrs: dict) -> int:
    a = shape_of(node.input[0])
    return math.prod(shape_of(node.output[0])) * (a[0] if attrs.get("transA") else a[-1])  # addmm: the bias is free


def _conv(node, shape_of: ShapeOf, attrs: dict) -> int:
    return math.prod(shape_of(node.output[0])) * math.prod(shape_of(node.input[1])[1:])  # out x C_in/groups x kernel


def _conv_transpose(node, shape_of: ShapeOf, attrs: dict) -> int:
    return math.prod(shape_of(node.input[0])) * math.prod(shape_of(node.input[1])[1:])  # FlopCounterMode: by the input


def _einsum(node, shape_of: ShapeOf, attrs: dict) -> int:
    """The product of the sizes of every index of the equation (each multiply-accumulate of the summation)."""
    equation = attrs.get("equation", "")
    if isinstance(equation, bytes):
        equation = equation.decode()
    terms = equation.replace(" ", "").split("->")[0].split(",")
    if "." in equation or len(terms) != len(node.input):
        raise SpecError(f"Einsum {equation!r}: archcalc counts an equation of one letter per axis, without '...'")
    sizes: dict[str, int] = {}
    for term, name in zip(terms, node.input):
        shape = shape_of(name)
        if len(term) != len(shape):
            raise SpecError(f"Einsum {equation!r}: {term!r} names {len(term)} axes of an input of {len(shape)}")
        for letter, size in zip(term, shape):
            sizes[letter] = max(sizes.get(letter, 1), size)
    return math.prod(sizes.values())


MACS: dict[str, Callable[[Any, ShapeOf, dict], int]] = {
    "MatMul": _matmul, "Gemm": _gemm, "Conv": _conv, "ConvTranspose": _conv_transpose, "Einsum": _einsum}
""" op type -> its multiply-accumulates from the shapes of its values (batch included); an op not here counts 0"""


def macs_of(nodes: list, shape_of: ShapeOf, attrs_of: Callable[[Any], dict]) -> int:
    return sum(MACS[n.op_type](n, shape_of, attrs_of(n)) for n in nodes if n.op_type in MACS)


# ---- which nodes a unit takes -----------------------------------------------------------------------


def unit_for(node, scope: tuple[str, ...], counts: dict[tuple[str, ...], int]) -> Unit:
    """The unit measured for a node archcalc cannot read: its module scope, unless most of that scope's nodes are in
    modules inside it (a container: ViT's `encoder`, whose own op is the position embedding's add, beside its
    layers): then the node alone. `counts`: the number of nodes of each scope, its inner scopes' left out."""
    own = counts.get(scope, 0)
    under = sum(n for s, n in counts.items() if s[:len(scope)] == scope)
    if scope and 2 * own >= under:
        return Unit(scope)
    return Unit(scope, node.output[0])


def data_values(ops: list, input_name: str, metadata: set[str], outer: Callable[[Any], list[str]]) -> set[str]:
    """The values computed from the graph's input (not its shape only)."""
    data = {input_name}
    for node in ops:
        if node.op_type not in metadata and any(i in data for i in (*node.input, *outer(node))):
            data.update(o for o in node.output if o)
    return data


def plan(units: set[Unit], ops: list, scope_of: Callable[[Any], tuple[str, ...]], data: set[str],
         readers: dict[str, list], graph_outputs: set[str], outer: Callable[[Any], list[str]],
         metadata: set[str]) -> dict[int, Group]:
    """id(node) -> the group of the unit that takes it (a node in two units: the outer one's)."""
    members: dict[Unit, list] = {}
    for node in ops:
        scope = scope_of(node)
        unit = min((u for u in units if u.holds(scope, node)), key=lambda u: (len(u.scope), u.alone), default=None)
        if unit is not None:
            members.setdefault(unit, []).append(node)
    groups: dict[int, Group] = {}
    for unit, nodes in members.items():
        inside = {id(n) for n in nodes}
        made = {o for n in nodes for o in n.output}
        inputs = list(dict.fromkeys(i for n in nodes for i in (*n.input, *outer(n)) if i in data and i not in made))
        outputs = [o for n in nodes for o in n.output if o in data and (o in graph_outputs or any(
            id(r) not in inside and r.op_type not in metadata for r in readers.get(o, [])))]
        if not outputs:
            continue  # nothing of it reaches the output
        if len(outputs) > 1 or not inputs:
            what = f"{len(outputs)} values to the nodes after it" if len(outputs) > 1 else "no input from the graph"
            raise SpecError(f"ONNX module scope {unit.describe()}: archcalc has no layer types for its nodes, and it "
                            f"gives {what}; a measured row takes the graph's values and gives one")
        group = Group(unit, nodes, inputs, outputs[0])
        groups.update((id(n), group) for n in nodes)
    return groups


def op_name(group: Group) -> str:
    """What a measured row names: the module's class (dynamo metadata), else the ONNX ops it holds."""
    first = group.members[0]
    if group.unit.alone:
        return first.op_type
    module = ".".join(group.unit.scope)
    for node in group.members:
        scopes, classes = metadata_list(node, NAME_SCOPES), metadata_list(node, CLASSES)
        if scopes and classes and module in scopes and len(classes) == len(scopes):
            return classes[scopes.index(module)].rpartition(".")[2]
    kinds = list(dict.fromkeys(n.op_type for n in group.members))
    return "ONNX " + ", ".join(kinds[:4]) + (f" and {len(kinds) - 4} more op types" if len(kinds) > 4 else "")


def metadata_list(node, key: str) -> list[str]:
    """A node's metadata `key` (the exporter writes a Python list of names), read as data; [] when absent, too
    long, or not such a list."""
    text = next((p.value for p in node.metadata_props if p.key == key), None)
    if text is None or len(text) > METADATA_TEXT:
        return []
    try:
        value = ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return []
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else []


def per_image(total: int, batch: int, where: str) -> int:
    if batch < 1 or total % batch:
        raise SpecError(f"{where}: {total:,} MACs for a batch of {batch}: not a whole number per image")
    return total // batch
