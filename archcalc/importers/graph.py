"""A small graph of imported ops, and its series-parallel decomposition into a spec document.

A front end (torch_fx, onnx_graph) lists the data nodes of a model in topological order:
layers (an `Op` that a layer type claims), merges (add, concat, mul of several data inputs),
explicit pads (folded into the window layer after them) and permutes (a permute to channels-last,
layers that work on the channels of each position, a permute back: those layers on the channels-last
view, every other permute an error). `to_spec` decomposes the DAG into
sequences and merges whose branches start at one node and meet at the next, groups the items
by module path (ONNX: node name scopes) and checks every shape against the calculator.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, overload

from .. import fmt
from ..budget import current
from ..core.spec import weightless
from ..errors import SpecError
from ..layers import MERGES, REGISTRY, Shape
from ..layers.base import REQUIRED

INPUT = "input"
MERGE_KINDS = MERGES  # the merge types by name (archcalc.layers.merge)
ORIGINS = {"module": ("torch_modules", "torch module"), "call": ("torch_functions", "torch call"),
           "onnx": ("onnx_ops", "ONNX op")}


@dataclass(frozen=True)
class Op:
    """One imported operation, as a layer type's `import_fields` reads it.

    attrs: a torch module's attributes, a call's arguments by name, or an ONNX node's attributes;
    weights / values: shapes and (small) values of the constant tensor operands; pad: an explicit
    (top, bottom, left, right) zero pad folded in from the op before it; channels_last: the op ran
    between a permute to (N, H, W, C) and one back, input and output still given as (C, H, W).
    """

    origin: str  # module, call or onnx
    target: str  # module class, function or method name, ONNX op type
    attrs: Mapping[str, Any]
    input: Shape
    output: Shape | None
    weights: tuple[Shape, ...] = ()
    values: tuple[Any, ...] = ()
    pad: tuple[int, int, int, int] = (0, 0, 0, 0)
    channels_last: bool = False


@dataclass
class Node:
    """A data node. scope: the module (ONNX: name scope) it ran in; path: scope plus its own name."""

    id: str
    kind: str  # layer, merge, pad, permute
    inputs: tuple[str, ...]
    scope: tuple[str, ...]
    path: tuple[str, ...]
    where: str  # for messages: the module path or ONNX node name, and the op
    shape: Shape | None
    op: Op | None = None
    merge: str = ""
    pad: tuple[int, int, int, int] = (0, 0, 0, 0)
    perm: tuple[int, ...] = ()  # of a permute, batch axis included
    tensors: tuple[int, ...] = ()  # the identities of its parameter and buffer tensors: equal ones are shared
    held: int | None = None  # values of the weights the model holds for a layer (ONNX), checked against its row

    @property
    def layer_op(self) -> Op:
        """The op of a layer node: every node of kind "layer" has one."""
        assert self.op is not None, self.where
        return self.op


@dataclass
class Graph:
    nodes: list[Node]  # topological order, the input excluded
    input_shape: Shape
    output: str
    notes: list[str] = field(default_factory=list)


# ---- layers from the registry ---------------------------------------------------------

def spec_layers(op: Op, where: str) -> list[dict]:
    """The spec node(s) of the first layer type that claims `op` and accepts its attributes."""
    key, word = ORIGINS[op.origin]
    claimed = False
    for name, layer in REGISTRY.items():
        if op.target not in getattr(layer, key):
            continue
        claimed = True
        if op.channels_last and not layer.reads_channels_last:
            continue
        try:
            fields = layer.import_fields(op)
        except SpecError as exc:
            raise SpecError(f"{where}: {exc.message}") from None
        if fields is None or (any(op.pad) and "padding" not in layer.fields):
            continue
        if isinstance(fields, list):
            return fields
        defaults = {k: f.default for k, f in layer.fields.items()}
        return [{"type": name, **{k: v for k, v in fields.items() if not _same(v, defaults.get(k, REQUIRED))}}]
    if claimed:
        raise SpecError(f"{where}: {word} {op.target} with these attributes has no archcalc layer type "
                        f"({_describe(op)})")
    raise SpecError(f"{where}: {word} {op.target} has no archcalc layer type")


def _same(value: Any, default: Any) -> bool:
    """A field equal to its default is left out of the spec."""
    if isinstance(default, (tuple, list)) or isinstance(value, (tuple, list)):
        return list(default) == list(value) if isinstance(default, (tuple, list)) and isinstance(value, (tuple, list)) else False
    return type(value) is type(default) and value == default


def _describe(op: Op) -> str:
    shown = {k: v for k, v in op.attrs.items() if isinstance(v, (int, float, str, bool, tuple, list, type(None)))}
    parts = [f"{k}={v}" for k, v in list(shown.items())[:8]] if isinstance(op.attrs, dict) else []
    layout = " on the channels-last (permuted) tensor" if op.channels_last else ""
    return ", ".join(parts + [f"input {fmt.shape(op.input)}{layout}"])


# ---- decomposition --------------------------------------------------------------------

@dataclass
class _Leaf:
    node: Node


@dataclass
class _Merge:
    node: Node
    branches: list[list]
    comps: tuple[str, ...] = ()
    base: tuple[str, ...] = ()  # what branch items are named relative to


class _Decomposer:
    def __init__(self, graph: Graph):
        self.graph = graph
        self.budget = current()
        self.by_id = {n.id: n for n in graph.nodes}
        self.order = {INPUT: -1, **{n.id: i for i, n in enumerate(graph.nodes)}}
        self.consumers: dict[str, list[str]] = {INPUT: [], **{n.id: [] for n in graph.nodes}}
        for n in graph.nodes:
            for i in n.inputs:
                self.consumers[i].append(n.id)

    def fail(self, node_id: str, message: str) -> SpecError:
        node = self.by_id.get(node_id)
        return SpecError(f"{node.where if node else 'the input'}: {message}")

    def check_reaches_output(self) -> None:
        live, stack = set(), [self.graph.output]
        while stack:
            n = stack.pop()
            if n in live or n == INPUT:
                continue
            live.add(n)
            stack.extend(self.by_id[n].inputs)
        for node in self.graph.nodes:
            if node.id not in live:
                raise self.fail(node.id, "its result does not reach the model's output (archcalc needs one output)")

    def sequence(self, src: str, dst: str, region: set[str], depth: int = 0) -> list:
        """The items from `src` to `dst` inside `region`; `depth`: merges around them."""
        if depth > self.budget.depth:
            raise self.fail(src, f"merges nest inside each other deeper than {self.budget.describe('depth')}")
        items: list = []
        cur = src
        while cur != dst:
            succ = [c for c in self.consumers[cur] if c in region]
            if not succ:
                raise self.fail(cur, "its result leaves the block it is in: the graph is not series-parallel")
            if len(succ) == 1 and self.by_id[succ[0]].kind != "merge":
                items.append(_Leaf(self.by_id[succ[0]]))
                cur = succ[0]
                continue
            join = self.join(cur, succ, region, dst)
            items.append(self.merge(cur, join, region, depth))
            cur = join
        return items

    def join(self, cur: str, succ: list[str], region: set[str], dst: str) -> str:
        """Where every path leaving `cur` meets again: the first node all pending edges lead into."""
        pending: dict[str, int] = {}
        for c in succ:
            pending[c] = pending.get(c, 0) + 1
        total = len(succ)
        nodes = self.graph.nodes
        for k in range(self.order[cur] + 1, len(nodes)):  # not a slice: a copy of the rest at every fork
            n = nodes[k]
            if n.id not in pending:
                continue
            count = pending.pop(n.id)
            if count == total and n.kind == "merge":
                return n.id
            outs = [c for c in self.consumers[n.id] if c in region]
            if n.id == dst or not outs:
                break
            total += len(outs) - count
            for c in outs:
                pending[c] = pending.get(c, 0) + 1
        raise self.fail(cur, "the paths leaving it do not meet in one add, concat or mul: "
                             "the graph is not series-parallel")

    def merge(self, cur: str, join: str, region: set[str], depth: int) -> _Merge:
        node = self.by_id[join]
        claimed: set[str] = set()
        branches: list[list] = []
        for inp in node.inputs:
            if inp == cur:
                branches.append([])
                continue
            sub = self.between(cur, inp, region)
            if sub & claimed:
                shared = min(sub & claimed, key=self.order.__getitem__)
                raise self.fail(shared, f"it feeds two inputs of {node.where}: the graph is not series-parallel")
            claimed |= sub
            branches.append(self.sequence(cur, inp, sub, depth + 1))
        for n in claimed:
            for c in self.consumers[n]:
                if c not in claimed and c != join:
                    raise self.fail(n, f"its result is used outside the branches of {node.where}: "
                                       "the graph is not series-parallel")
        if len(branches) < 2:
            raise self.fail(join, f"{node.merge} of a single input")
        return _Merge(node, branches)

    def between(self, src: str, end: str, region: set[str]) -> set[str]:
        """The nodes on the paths from `src` to `end` (`end` included), all inside `region`."""
        found, stack = set(), [end]
        while stack:
            n = stack.pop()
            if n == src or n in found:
                continue
            if n not in region or self.order[n] < self.order[src]:
                raise self.fail(end, "it reads a value from outside the block it is in: the graph is not series-parallel")
            found.add(n)
            stack.extend(self.by_id[n].inputs)
        return found


def _fold_pads(graph: Graph) -> None:
    """An explicit zero pad becomes padding of the window layer after it (named by their common module)."""
    consumers: dict[str, list[Node]] = {}
    for n in graph.nodes:
        for i in n.inputs:
            consumers.setdefault(i, []).append(n)
    scopes, shapes = ScopeCounts(graph.nodes), {n.id: n.shape for n in graph.nodes}
    kept = []
    for n in graph.nodes:
        if n.kind != "pad":
            kept.append(n)
            continue
        users = consumers.get(n.id, [])
        if len(users) != 1 or users[0].kind != "layer":
            raise SpecError(f"{n.where}: an explicit pad is folded into the convolution or pooling after it; "
                            "here it feeds something else")
        user = users[0]
        pad_input = graph.input_shape if n.inputs[0] == INPUT else shapes[n.inputs[0]]
        assert pad_input is not None, n.where  # the layer after it was read, so its input's shape is known
        user.op = replace(user.layer_op, pad=_add_pads(user.layer_op.pad, n.pad), input=pad_input)
        user.inputs = n.inputs
        common = _common(n.scope, user.scope)
        if common and scopes.under(n, len(common)) == 2:  # no other node in their common module
            user.path = common  # archcalc's own build: Sequential(ZeroPad2d, Conv2d) under the layer's name
    graph.nodes[:] = kept


TO_CHANNELS_LAST, TO_CHANNELS_FIRST = (0, 2, 3, 1), (0, 3, 1, 2)


def fold_permutes(graph: Graph) -> None:
    """permute(0, 2, 3, 1), a chain of layers, permute(0, 3, 1, 2): the layers, on the channels-last view.

    Any other permute becomes a `permute` layer (archcalc.layers.layout: the layers after it see its layout)."""
    consumers = _consumers(graph)
    dropped: set[str] = set()
    for n in graph.nodes:
        if n.kind == "permute" and n.perm == TO_CHANNELS_LAST and n.id not in dropped:
            chain = _channels_last_chain(n, consumers)
            if chain is not None:
                dropped |= _fold_chain(graph, n, chain, consumers)
    graph.nodes[:] = [n for n in graph.nodes if n.id not in dropped]
    shapes = {INPUT: graph.input_shape, **{n.id: n.shape for n in graph.nodes}}
    for n in graph.nodes:
        if n.kind == "permute":
            if n.perm[:1] != (0,):
                raise SpecError(f"{n.where}: permute {list(n.perm)} moves the batch axis; archcalc's shapes keep it first")
            n.kind = "layer"
            n.op = Op("call", "permute", {"dims": [d - 1 for d in n.perm[1:]]}, shapes[n.inputs[0]] or (), n.shape)


RESHAPES = ("view", "reshape", "Reshape")


def lay_out(graph: Graph) -> None:
    """Each layer's input shape laid out as the calculator will read it (archcalc.layers.layout): an image from
    the input, what a permute makes of it, a reshape's by its rank, the rest as its input's. So a layer type
    can tell a channels-last grid from an image (a LayerNorm over a grid's channels is Swin's, over an image's
    width is nothing)."""
    from ..layers import layout
    from ..layers.simple import Permute

    laid: dict[str, Shape] = {INPUT: layout.laid(layout.layout_of(graph.input_shape), graph.input_shape)}
    for n in graph.nodes:
        source = laid.get(n.inputs[0]) if n.inputs else None
        if n.kind == "layer" and source is not None and tuple(source) == tuple(n.layer_op.input):
            n.op = replace(n.layer_op, input=source)
        if n.shape is None or source is None:
            continue
        before = layout.layout_of(source)
        dims = tuple(n.layer_op.attrs["dims"]) if n.kind == "layer" and n.layer_op.target in ("permute", "AxesPermute") \
            else None  # a call, or archcalc's module
        if dims is not None and sorted(dims) == list(range(len(source))):  # else the calculator refuses it, in one line
            after = Permute.layout_after(source, dims)
        elif n.kind == "layer" and n.layer_op.target in RESHAPES + ("flatten", "Flatten", "AxesReshape"):
            named = n.layer_op.attrs.get("layout") if isinstance(n.layer_op.attrs, Mapping) else None
            after = layout.LAYOUTS[named] if named in layout.LAYOUTS else layout.layout_of(tuple(n.shape))
        else:
            after = before if len(source) == len(n.shape) else layout.layout_of(tuple(n.shape))
        laid[n.id] = layout.laid(after, n.shape)


def name_image_reshapes(graph: Graph, of_images: Callable[[Op], bool], otherwise: str | None = None) -> None:
    """A reshape to three axes per image that an op of images reads (`of_images`: MaxViT's departition before the
    next block's BatchNorm2d) gives an image CxHxW, the others `otherwise` (a layout name; None: as its rank
    reads): a reshape alone cannot tell an image from any other tensor of three axes (MaxViT's windows)."""
    consumers = _consumers(graph)
    for n in graph.nodes:
        if (n.kind != "layer" or n.layer_op.target not in RESHAPES or len(n.shape or ()) != 3
                or not isinstance(n.layer_op.attrs, dict)):
            continue
        images = any(u.kind == "layer" and of_images(u.layer_op) for u in consumers.get(n.id, []))
        if images or otherwise is not None:
            n.op = replace(n.layer_op, attrs={**n.layer_op.attrs, "layout": "image" if images else otherwise})


def fold_channel_shuffles(graph: Graph) -> None:
    """A view to (g, C/g, H, W), a transpose of those two axes and a view back to (C, H, W) (torchvision's
    channel_shuffle, ShuffleNet's): one `channel_shuffle` of `g` groups, named after it in the module it ran in."""
    consumers = _consumers(graph)
    dropped: set[str] = set()
    for n in graph.nodes:
        if n.kind != "layer" or n.layer_op.target not in RESHAPES or n.shape is None or len(n.shape) != 4:
            continue
        image = n.layer_op.input
        if len(image) != 3 or n.shape[0] * n.shape[1] != image[0] or tuple(n.shape[2:]) != tuple(image[1:]):
            continue
        swap = _only_user(n, consumers)
        back = _only_user(swap, consumers) if swap is not None else None
        if (swap is None or swap.kind != "permute" or swap.perm != (0, 2, 1, 3, 4) or back is None
                or back.kind != "layer" or back.layer_op.target not in RESHAPES or tuple(back.shape or ()) != tuple(image)):
            continue
        back.op = Op("call", "channel_shuffle", {"groups": n.shape[0]}, image, image)
        back.inputs, back.path = n.inputs, (*back.scope, "channel_shuffle")
        back.where = f"{back.path[-1]} (view, transpose, view, in {'.'.join(back.scope) or 'the top-level module'})"
        dropped |= {n.id, swap.id}
    graph.nodes[:] = [n for n in graph.nodes if n.id not in dropped]


def _only_user(node: Node, consumers: dict[str, list[Node]]) -> Node | None:
    users = consumers.get(node.id, [])
    return users[0] if len(users) == 1 else None


def _consumers(graph: Graph) -> dict[str, list[Node]]:
    consumers: dict[str, list[Node]] = {}
    for n in graph.nodes:
        for i in n.inputs:
            consumers.setdefault(i, []).append(n)
    return consumers


def _channels_last_chain(start: Node, consumers: dict[str, list[Node]]) -> list[Node] | None:
    """The layers from `start` to the permute back (that permute last), each the only user of the one
    before; None when the path forks, merges or ends first."""
    chain, cur = [], start
    while True:
        users = consumers.get(cur.id, [])
        if len(users) != 1 or len(users[0].inputs) != 1:
            return None
        cur = users[0]
        chain.append(cur)
        if cur.kind == "permute":
            return chain if cur.perm == TO_CHANNELS_FIRST else None
        if cur.kind != "layer":
            return None


def channels_last(shape: Shape) -> Shape | None:
    """A (C, H, W) shape as permute(0, 2, 3, 1) leaves it: (H, W, C); None for another rank."""
    return (*shape[1:], shape[0]) if len(shape) == 3 else None


@overload
def _channels_first(shape: Shape) -> Shape: ...
@overload
def _channels_first(shape: Shape | None) -> Shape | None: ...
def _channels_first(shape: Shape | None) -> Shape | None:
    """An (H, W, C) shape back in (C, H, W) order; another rank (or None: unknown) as it is."""
    return (shape[2], shape[0], shape[1]) if shape is not None and len(shape) == 3 else shape


def _fold_chain(graph: Graph, start: Node, chain: list[Node], consumers: dict[str, list[Node]]) -> set[str]:
    end, layers = chain[-1], chain[:-1]
    source = layers[-1].id if layers else start.inputs[0]
    for n in layers:
        n.shape = _channels_first(n.shape)
        op = n.layer_op
        n.op = replace(op, channels_last=True, input=_channels_first(op.input), output=_channels_first(op.output))
    if layers:
        layers[0].inputs = start.inputs
    for user in consumers.get(end.id, []):
        user.inputs = tuple(source if i == end.id else i for i in user.inputs)
    if graph.output == end.id:
        graph.output = source
    return {start.id, end.id}


def _add_pads(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """Two (top, bottom, left, right) zero pads as one."""
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3])


def _common(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    k = 0
    while k < min(len(a), len(b)) and a[k] == b[k]:
        k += 1
    return a[:k]


class ScopeCounts:
    """How many nodes lie under each prefix of their scopes, counted in one pass: prefixes are numbered
    component by component, so the work grows with the scopes' lengths, not with their squares."""

    def __init__(self, nodes: list[Node]):
        self.numbers: dict[tuple[int, str], int] = {}
        self.prefixes = {n.id: self._number(n.scope) for n in nodes}
        self.counts: dict[int, int] = {}
        for prefixes in self.prefixes.values():
            for p in prefixes:
                self.counts[p] = self.counts.get(p, 0) + 1

    def _number(self, scope: tuple[str, ...]) -> list[int]:
        prefixes, parent = [], -1
        for comp in scope:
            parent = self.numbers.setdefault((parent, comp), len(self.numbers))
            prefixes.append(parent)
        return prefixes

    def under(self, node: Node, length: int) -> int:
        """The nodes whose scope starts with node.scope[:length] (length at least 1)."""
        return self.counts[self.prefixes[node.id][length - 1]]


def _name_merges(scopes: ScopeCounts, items: list) -> None:
    """A merge is named by the module holding exactly its branches and op, else by its op."""
    for item in items:
        if isinstance(item, _Merge):
            for branch in item.branches:
                _name_merges(scopes, branch)
            inside = _nodes_of(item)
            common = item.node.scope
            for n in inside:
                common = _common(common, n.scope)
            if common and scopes.under(item.node, len(common)) == len(inside):  # nothing else in that module
                item.comps, item.base = common, common
            else:
                item.comps, item.base = item.node.path, item.node.path[:-1]
            _flatten(item)


def _flatten(item: _Merge) -> None:
    """(a + b) + c is one add of three branches; so are nested concatenations."""
    first = item.branches[0]
    if (MERGES[item.node.merge].flattens and len(first) == 1 and isinstance(first[0], _Merge)
            and first[0].node.merge == item.node.merge and first[0].comps == first[0].node.path):
        item.branches[:1] = first[0].branches


def _nodes_of(item) -> list[Node]:
    if isinstance(item, _Leaf):
        return [item.node]
    return [item.node, *(n for branch in item.branches for child in branch for n in _nodes_of(child))]


# ---- naming and nesting -----------------------------------------------------------------

def spec_name(name: str) -> str:
    """A name as a spec takes it: letters, digits, underscores and hyphens (anything else becomes `_`)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name) or "_"


class _Namer:
    def __init__(self):
        self.paths: dict[str, str] = {}  # node id -> spec path of its row
        self.owners: dict[int, str] = {}  # parameter tensor -> the spec path of the first layer that holds it
        self.whole: dict[str, str] = {}  # node id -> spec path of the row of all it became (a layer or a group)

    def nest(self, items: list, base: tuple[str, ...], prefix: str, depth: int = 0,
             used: dict[str, dict] | None = None) -> list[dict]:
        """Spec items of `items`, grouped by module below `base`; `depth`: the groups and merges around them;
        `used`: the items named so far at `prefix` (a merge's branches are named among their neighbours)."""
        if depth > current().depth:
            raise SpecError(f"{prefix}: groups nest inside each other deeper than {current().describe('depth')}")
        out: list[dict] = []
        used = {} if used is None else used

        def name_of(wanted: str, path: tuple[str, ...] | None = None) -> str:
            """`wanted`, or `wanted_k` where another module or op took it (a module or op called again keeps
            its name: see again())."""
            name, k = spec_name(wanted), 1
            candidate = name
            while candidate in used and not (path is not None and used[candidate].get("\0path") == path):
                candidate = f"{name}_{k}"
                k += 1
            return candidate

        def take(made: dict, path: tuple[str, ...] | None) -> None:
            used.setdefault(made["name"], {**made, "\0path": path})
            out.append(made)

        i = 0
        while i < len(items):
            comps = _comps(items[i])
            k = len(_common(comps, base))
            rel = comps[k:]
            if len(rel) <= 1:
                full = items[i].node.path
                wanted = rel[0] if rel else _comps(items[i])[-1] if comps else "layer"
                name = name_of(wanted, full)
                own = f"{prefix}.{name}" if prefix else name
                if name in used and not self.called_again(items[i], used[name], own):
                    name = name_of(wanted)  # the same name, but not the same module or op
                name = _exported_again(items[i], name, used) or name  # the exporter's `relu_1`: `relu` again
                take(self.item(items[i], name, prefix, depth, used), full)
                i += 1
                continue
            j = i + 1
            while j < len(items):
                other = _comps(items[j])
                if len(other) <= k + 1 or other[:k + 1] != comps[:k + 1]:
                    break
                j += 1
            name = name_of(rel[0])
            path = f"{prefix}.{name}" if prefix else name
            take({"name": name, "layers": self.nest(items[i:j], comps[:k + 1], path, depth + 1)}, None)
            i = j
        return out

    def item(self, item, name: str, prefix: str, depth: int, used: dict[str, dict]) -> dict:
        path = f"{prefix}.{name}" if prefix else name
        if isinstance(item, _Leaf):
            layers = spec_layers(item.node.layer_op, item.node.where)
            shares = self.shares(item.node, path, len(layers))
            self.whole[item.node.id] = path
            if len(layers) == 1:
                self.paths[item.node.id] = path
                return {"name": name, **layers[0], **({"shares": shares} if shares else {})}
            self.paths[item.node.id] = f"{path}.{len(layers) - 1}"
            return {"name": name, "layers": layers}
        op = spec_name(item.node.path[-1]) if item.node.path else item.node.merge
        if item.base == item.comps:  # the module holds exactly the merge: a group of that name, the op inside it
            self.paths[item.node.id] = self.whole[item.node.id] = f"{path}.{op}"
            merge = {"name": op, "type": item.node.merge, "branches": self.branches(item, path, depth, {})}
            return {"name": name, "layers": [merge]}
        self.paths[item.node.id] = self.whole[item.node.id] = path
        return {"name": name, "type": item.node.merge, "branches": self.branches(item, prefix, depth, used)}

    def branches(self, item: _Merge, prefix: str, depth: int, used: dict[str, dict]) -> list[list[dict]]:
        """A merge's branches, named among the merge's neighbours at `prefix` (a branch adds no part to a path)."""
        return [self.nest(branch, item.base, prefix, depth + 1, used) for branch in item.branches]

    def called_again(self, item, earlier: dict, path: str) -> bool:
        """Whether `item`, at the path of `earlier`, is the same module or op called again: the same merge, or the
        same layer holding no weights or the very weights of the earlier one."""
        if isinstance(item, _Merge):
            return earlier.get("type") == item.node.merge
        layers = spec_layers(item.node.layer_op, item.node.where)
        if len(layers) != 1 or not _again(earlier, {"name": "", **layers[0]}):
            return False
        owners = {self.owners.get(t) for t in item.node.tensors}
        return weightless(layers[0]["type"]) or (bool(item.node.tensors) and owners == {path})

    def shares(self, node: Node, path: str, layers: int) -> str | None:
        """The path of the earlier layer whose parameters `node` uses (a module called again, tied weights);
        None when they are its own. Sharing only some of them, or across several layers, has no spec form."""
        owners = {self.owners.get(t) for t in node.tensors}
        if owners <= {None}:
            self.owners.update((t, path) for t in node.tensors)
            return None
        owner = next(iter(owners))
        if len(owners) == 1 and layers == 1 and {t for t, p in self.owners.items() if p == owner} == set(node.tensors):
            return owner
        others = ", ".join(sorted(o for o in owners if o is not None))
        raise SpecError(f"{node.where}: shares some of its parameters with {others}; archcalc shares a layer's "
                        "parameters whole, with one earlier layer")


def _exported_again(item, name: str, used: dict[str, dict]) -> str | None:
    """The name of the module an ONNX node `name_1` calls again (torch's exporter numbers a module's later calls):
    a layer without weights, the same as the one named without the number."""
    base = re.sub(r"_\d+$", "", name)
    if base == name or base not in used or not isinstance(item, _Leaf) or item.node.layer_op.origin != "onnx":
        return None
    layers = spec_layers(item.node.layer_op, item.node.where)
    if len(layers) != 1 or not weightless(layers[0]["type"]) or not _again(used[base], {"name": base, **layers[0]}):
        return None
    return base


def _again(earlier: dict, made: dict) -> bool:
    """Whether two spec items of one name are one module or op called again: the same layer (its `shares` aside)
    or the same merge."""
    def bare(item: dict) -> dict:
        return {k: v for k, v in item.items() if k not in ("name", "shares", "branches", "\0path")}
    return "layers" not in made and bare(earlier) == bare(made)


def _comps(item) -> tuple[str, ...]:
    return item.comps if isinstance(item, _Merge) else item.node.path


# ---- the spec document --------------------------------------------------------------------

def to_spec(graph: Graph, name: str, title: str, source: str, expect: list[dict] | None = None) -> dict:
    """The spec document of `graph`, its permutes folded by the front end (`fold_permutes`, before it names
    its nodes); raises SpecError naming the node that does not fit."""
    _fold_pads(graph)
    decomposer = _Decomposer(graph)
    decomposer.check_reaches_output()
    namer = _Namer()
    several = next((n for n in graph.nodes if n.kind == "layer" and len(n.inputs) > 1), None)
    try:
        if several is not None:  # a measured op of two tensors: a node of a graph spec, taking them by `from`
            raise SpecError(f"{several.where}: an op of {len(several.inputs)} tensors: the graph is not series-parallel")
        items = decomposer.sequence(INPUT, graph.output, {n.id for n in graph.nodes})
    except SpecError as exc:
        if "not series-parallel" not in exc.message or graph.nodes[-1].id != graph.output:
            raise
        layers = _graph_layers(graph, namer)  # DenseNet's growing concatenations: a graph spec, with `from`
        why = ("an op of several tensors is measured" if several is not None else
               "the graph is not series-parallel")
        graph.notes.append(f"{why}: written as one sequence whose nodes name what they take (`from`)")
    else:
        _name_merges(ScopeCounts(graph.nodes), items)
        layers = namer.nest(items, (), "")
    document: dict[str, Any] = {"name": spec_name(name), "title": title, "description": f"{title}, imported from {source}",
                                "input": list(graph.input_shape), "layers": layers}
    if graph.notes:
        document["comment"] = "; ".join(graph.notes)
    if expect:
        document["expect"] = expect
    _check_shapes(document, graph, namer)
    return document


def _graph_layers(graph: Graph, namer: _Namer) -> list[dict]:
    """Every node in sequences nested by module as torch names them, each node taking what it reads by `from`
    where that is not the node before it; a merge of nodes is a join (`from` a list). A module's nodes form a
    group where they run one after another, take one tensor and give one (DenseNet's dense block, a dense
    layer's convolutions); a node that does not fit its module's group (a dense layer's concatenation of
    every earlier output) sits beside it, named by the rest of its path with underscores (`denselayer2_cat`)."""
    readers: dict[str, set[str]] = {}
    for node in graph.nodes:
        for source in node.inputs:
            readers.setdefault(source, set()).add(node.id)
    return _GraphNester(graph, namer, readers).sequence(graph.nodes, (), "", INPUT)


class _GraphNester:
    def __init__(self, graph: Graph, namer: _Namer, readers: dict[str, set[str]]):
        self.graph, self.namer, self.readers = graph, namer, readers

    def sequence(self, nodes: list[Node], base: tuple[str, ...], prefix: str, source: str,
                 depth: int = 0) -> list[dict]:
        """The spec items of `nodes`, the nodes of the module `base` (at `prefix`), which take `source`."""
        if depth > current().depth:
            raise SpecError(f"{prefix}: groups nest inside each other deeper than {current().describe('depth')}")
        names = {source: INPUT}  # node id -> what a `from` in this sequence calls it
        used = {INPUT}
        layers: list[dict] = []
        previous, i = source, 0
        while i < len(nodes):
            rel = nodes[i].path[len(base):]
            run = self.run(nodes, i, len(base)) if len(rel) > 1 else []
            outer = self.takes(run)
            if run and outer is not None and spec_name(rel[0]) not in used:
                name = spec_name(rel[0])
                item: dict[str, Any] = {"name": name, **({"from": names[outer]} if outer != previous else {})}
                item["layers"] = self.sequence(run, base + rel[:1], f"{prefix}.{name}" if prefix else name, outer,
                                               depth + 1)
                last = run[-1].id
                i += len(run)
            else:
                node = nodes[i]
                name = wanted = spec_name("_".join(rel) or node.id)
                k = 1
                while name in used:
                    name, k = f"{wanted}_{k}", k + 1
                item = self.node(node, name, prefix, names, previous)
                last = node.id
                i += 1
            used.add(name)
            names[last] = name
            layers.append(item)
            previous = last
        return layers

    @staticmethod
    def run(nodes: list[Node], i: int, depth: int) -> list[Node]:
        """The nodes from `i` on inside the module one level below `depth` that holds nodes[i]."""
        module = nodes[i].path[:depth + 1]
        j = i
        while j < len(nodes) and len(nodes[j].path) > depth + 1 and nodes[j].path[:depth + 1] == module:
            j += 1
        return nodes[i:j]

    def takes(self, run: list[Node]) -> str | None:
        """The one tensor `run` takes, if it can be a group: it reads one tensor from outside, and only its last
        node is read from outside (or is the model's output)."""
        if not run:
            return None
        inside = {n.id for n in run}
        outside = {source for n in run for source in n.inputs if source not in inside}
        if len(outside) != 1:
            return None
        last = run[-1].id
        if any(n.id != last and (n.id == self.graph.output or self.readers.get(n.id, set()) - inside) for n in run):
            return None
        return next(iter(outside))

    def node(self, node: Node, name: str, prefix: str, names: dict[str, str], previous: str) -> dict:
        path = f"{prefix}.{name}" if prefix else name
        if node.kind == "merge":
            self.namer.paths[node.id] = self.namer.whole[node.id] = path
            return {"name": name, "type": node.merge, "from": [names[i] for i in node.inputs]}
        spec = spec_layers(node.layer_op, node.where)
        shares = self.namer.shares(node, path, len(spec))
        item: dict[str, Any] = {"name": name, **spec[0]} if len(spec) == 1 else {"name": name, "layers": spec}
        if shares:
            item["shares"] = shares
        self.namer.paths[node.id] = path if len(spec) == 1 else f"{path}.{len(spec) - 1}"
        self.namer.whole[node.id] = path
        if len(node.inputs) > 1:  # a measured op of several tensors
            item["from"] = [names[i] for i in node.inputs]
        elif node.inputs[0] != previous:
            item["from"] = names[node.inputs[0]]
        return item


def _check_shapes(document: dict, graph: Graph, namer: _Namer) -> None:
    """Each node's shape (and the weights the model holds for it) against the calculator's row."""
    from ..core.calc import analyze
    from ..core.spec import resolve

    analysis = analyze(resolve(document, document["name"], f"{document['name']}.json"))
    calls: dict[str, list] = {}  # a module or op called again has a row per call, in order
    for row in analysis.rows:
        calls.setdefault(row.path, []).append(row)
    rows = {path: found[0] for path, found in calls.items()}
    paths = namer.paths
    for node in graph.nodes:
        path = paths.get(node.id)
        if path is not None and node.shape is not None:
            mine = calls[path].pop(0) if len(calls[path]) > 1 else calls[path][0]
            if mine.output_shape != tuple(node.shape):
                raise SpecError(f"{node.where}: archcalc computes {fmt.shape(mine.output_shape)} "
                                f"where the model gives {fmt.shape(node.shape)}")
        whole = rows.get(namer.whole.get(node.id, ""))
        if node.held is not None and whole is not None and whole.params + whole.non_trainable != node.held:
            weights = ", ".join(fmt.shape(w) or "scalar" for w in node.layer_op.weights)
            raise SpecError(f"{node.where}: its weights ({weights}) hold {node.held:,} values where archcalc's "
                            f"{whole.label} on its input {fmt.shape(whole.input_shape)} has "
                            f"{whole.params + whole.non_trainable:,} parameters: the weights do not fit the input "
                            "or the attributes")
