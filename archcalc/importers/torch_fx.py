"""The torch front end: torch.fx symbolic tracing (a concrete trace where it cannot), the shapes from one pass
on meta or fake tensors (torch_values).

Modules that a layer type claims (by class name) stay whole; everything else is traced through,
so functional calls, `+`, `torch.cat` and `*` in `forward` become ops of the graph.
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping, NamedTuple, Sequence

from .. import fmt
from ..deps import require_torch
from ..errors import SpecError
from ..layers import MERGES, REGISTRY, Shape
from .graph import (
    INPUT,
    MERGE_KINDS,
    Graph,
    Node,
    Op,
    fold_channel_shuffles,
    fold_permutes,
    lay_out,
    name_image_reshapes,
    spec_layers,
    to_spec,
)
from .torch_values import concrete

PASS_THROUGH = {"contiguous", "clone", "detach"}
PAD_MODULES = ("ZeroPad2d", "ConstantPad2d")
# positional arguments of tensor methods after self (torch.fx leaves them positional)
METHOD_ARGS = {
    "mean": ("dim", "keepdim"), "flatten": ("start_dim", "end_dim"), "clamp": ("min", "max"),
    "clamp_": ("min", "max"), "clip": ("min", "max"), "softmax": ("dim",), "add": ("other",), "mul": ("other",),
}


def _merge_called(call: str) -> str | None:
    """The merge type a torch function or tensor method is imported as (archcalc.layers.merge), if any."""
    return next((merge.name for merge in MERGES.values() if call in merge.torch_functions), None)


def claimed_modules() -> set[str]:
    return {name for layer in REGISTRY.values() for name in layer.torch_modules}


class _ModuleAttrs(Mapping):
    """A torch module's attributes, read on demand by a layer type's import_fields."""

    def __init__(self, module):
        self.module = module

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self.module, key)
        except AttributeError:
            raise KeyError(key) from None

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _leaf_tracer(torch):
    """torch.fx's tracer with the modules a layer type claims (and merge modules) kept whole."""
    claimed = claimed_modules()
    tracer_base: Any = torch.fx.Tracer  # torch is loaded on demand: a base class known only at run time

    class Tracer(tracer_base):
        def is_leaf_module(self, m, qualname: str) -> bool:
            return (type(m).__name__ in claimed or getattr(m, "merge", None) in MERGE_KINDS
                    or super().is_leaf_module(m, qualname))

    return Tracer()


def trace_graph(model, input_shape: Shape, strict: bool = False, fvcore_counts: Mapping[str, int] | None = None
                ) -> tuple[Graph, Any]:
    """The graph of `model` (in eval mode) on one image of `input_shape`, and that input (a meta or fake tensor
    where the model runs on one: see torch_values). torch.fx's symbolic trace where it can trace the model; a
    concrete trace at this input's shapes where it cannot (control flow on shapes or flags, optional arguments)."""
    torch = require_torch()
    tracer = _leaf_tracer(torch)
    module, fx_failure = None, ""
    try:
        traced = tracer.trace(model)
        if sum(n.op == "placeholder" for n in traced.nodes) == 1:  # more: optional arguments, traced as inputs
            module = torch.fx.GraphModule(tracer.root, traced)
    except Exception as exc:
        fx_failure = f"torch.fx cannot trace {type(model).__name__} ({type(exc).__name__}); "
    module, values, world, x = _run(model, module, input_shape, tracer.is_leaf_module, fx_failure)
    reader = _Reader(torch, module, values, input_shape)
    reader.strict, reader.root, reader.world = strict, model, world
    reader.fvcore_counts = dict(fvcore_counts or {})
    return reader.graph(), x


def _run(model, module, input_shape: Shape, is_leaf, fx_failure: str):
    """The traced module, each node's value, the world it ran in and its input: the fx graph (`module`) run,
    or without one a concrete trace, in the first world that can run it (meta, fake, real)."""
    from .torch_values import real_run_allowed, trace_concrete, worlds

    shape = (1, *input_shape)
    failure = None
    for world in worlds():
        if world.name == "real":
            real_run_allowed(model, shape)
        try:
            if module is None:
                traced, values, x = trace_concrete(model, world, shape, is_leaf)
                return traced, values, world, x
            values = {}
            with world.enter(module):
                x = world.input(shape)
                _interpreter(module, values).run(x)
            return module, values, world, x
        except Exception as exc:
            failure = exc
    raise SpecError(f"{fx_failure}the model fails on one image of {fmt.shape(input_shape)}: "
                    f"{type(failure).__name__}: {' '.join(str(failure).split())[:300]}") from None


def _interpreter(module, values: dict):
    """torch.fx's Interpreter over `module`, keeping each node's value in `values`."""
    torch = require_torch()
    interpreter_base: Any = torch.fx.Interpreter  # as the tracer's base: known only at run time

    class Recorder(interpreter_base):
        def run_node(self, n):
            values[n] = super().run_node(n)
            return values[n]

    return Recorder(module)


class _Piece(NamedTuple):
    """What x.chunk(k, dim=1) / x.split(...) returns, before one of its pieces is taken: the channel ranges."""

    source: Any  # the fx node split
    ranges: list[tuple[int, int]]
    name: str


SPLITS = ("chunk", "split", "tensor_split")


class _Reader:
    def __init__(self, torch, module, values: dict, input_shape: Shape):
        self.torch, self.module, self.values = torch, module, values
        self.pieces: dict[Any, _Piece] = {}  # fx node of a chunk or split -> its pieces
        self.tuples: set[Any] = set()  # module calls that returned a tuple, read as its first value
        self.fx_nodes: dict[str, Any] = {}  # graph node id -> its fx node
        self.assigned: set[int] = set()  # parameters a measured op holds
        self.strict = False
        self.world: Any = None  # the world its values were computed in (torch_values), where measured ops run again
        self.root = module  # the model itself, whose every submodule the traced module may not hold
        self.fvcore_counts: dict[str, int] = {}  # fvcore's count per module path, for measured modules
        self.notes: list[str] = []
        self.ids: dict[Any, str] = {}  # fx node -> graph node id (or the id of what it passes through)
        self.nodes: list[Node] = []
        self.input_shape = input_shape
        self.weights_of_model = {id(t) for t in (*module.parameters(), *module.buffers())}  # what `shares` is about

    def is_data(self, n) -> bool:
        return n in self.ids

    def graph(self) -> Graph:
        output = None
        for n in self.module.graph.nodes:
            if n.op == "placeholder":
                if self.ids:
                    raise SpecError(f"{n.name}: the model takes more than one input; archcalc needs one image input")
                self.ids[n] = INPUT
            elif n.op == "output":
                output = self.prediction(n.args[0])
            elif n.op != "get_attr":
                self.node(n)
        if not hasattr(output, "op") or output not in self.ids:
            raise SpecError("the model's output is not one tensor computed from its input (archcalc needs one output)")
        graph = Graph(self.nodes, self.input_shape, self.ids[output], self.notes)
        fold_channel_shuffles(graph)
        fold_permutes(graph)
        name_image_reshapes(graph, lambda op: op.origin == "module" and op.target.endswith("2d"))  # a ...2d module
        lay_out(graph)
        if not self.strict:
            self.measure_unknown(graph)
        self.note_idle_modules(graph)
        _name_lone_calls(graph)
        return graph

    def measure_unknown(self, graph: Graph) -> None:
        """Each op no layer type takes becomes a `measured` row: its traced output shape, its own parameters,
        the MACs FlopCounterMode counts for it on the values it got (half the FLOPs), said in the spec's comment."""
        used = {t for node in graph.nodes for t in node.tensors}
        measured = []
        for node in graph.nodes:
            if node.kind != "layer" or node.id not in self.fx_nodes or (len(node.inputs) == 1 and _has_type(node)):
                continue  # an op of several tensors is measured: a layer type takes one
            n = self.fx_nodes[node.id]
            params, fvcore = self.own_parameters(n, node, used)
            op = node.layer_op
            attrs = {"op": op.target, "at": list(op.input), "output": list(node.shape or ()), "params": params,
                     "macs": self.counted_macs(n), "fvcore_flops": fvcore}
            node.op = Op("call", "<measured>", attrs, op.input, node.shape)
            node.tensors = ()
            measured.append(op.target)
        if measured:
            names = ", ".join(dict.fromkeys(measured))
            ops = "1 op" if len(measured) == 1 else f"{len(measured)} ops"
            self.notes.append(f"{ops} archcalc has no layer type for ({names}) measured at {fmt.shape(self.input_shape)} "
                              "(FlopCounterMode): the spec holds at that input only")

    def note_idle_modules(self, graph: Graph) -> None:
        """Modules whose parameters no op of this pass used (Inception v3's auxiliary head in eval mode): named
        in the spec's comment with their parameters, which `model.parameters()` counts and the spec does not."""
        used = {t for node in graph.nodes for t in node.tensors} | self.assigned
        idle: list[tuple[str, int]] = []
        for name, module in self.root.named_modules():
            params = list(module.parameters())
            if not name or not params or any(id(p) in used for p in params):
                continue
            if not any(name.startswith(f"{outer}.") for outer, _ in idle):
                idle.append((name, sum(p.numel() for p in params)))
        if idle:
            listed = ", ".join(f"{name} ({count:,} parameters)" for name, count in idle[:8])
            self.notes.append(f"not run in this pass, so not in the spec: {listed}")

    def own_parameters(self, n, node: Node, used: set[int]) -> tuple[int, int | None]:
        """A module's parameters (and fvcore's count of it); a function's: the model's tensors it takes, and those
        of the module it ran in that no other op uses."""
        torch = self.torch
        if n.op == "call_module":
            module = self.module.get_submodule(n.target)
            self.assigned |= {id(p) for p in module.parameters()}
            return sum(p.numel() for p in module.parameters()), self.fvcore_counts.get(n.target)
        taken = {id(t): t for t in self.constants(n) if id(t) in self.weights_of_model and isinstance(t, torch.nn.Parameter)}
        scope = _submodule(self.root, node.scope)
        if scope is not None and scope is not self.root:
            for p in scope.parameters():
                if id(p) not in used and id(p) not in self.assigned:
                    taken.setdefault(id(p), p)
        self.assigned |= set(taken)
        return sum(t.numel() for t in taken.values()), None

    def counted_macs(self, n) -> int:
        """Half of what torch's FlopCounterMode counts for the call, run again on the values it got."""
        torch = self.torch
        from torch.utils.flop_counter import FlopCounterMode

        def value(a):
            return _attr(self.module, a.target) if a.op == "get_attr" else self.values.get(a)

        args = torch.fx.node.map_arg(n.args, value)
        kwargs = torch.fx.node.map_arg(n.kwargs, value)
        counter = FlopCounterMode(display=False)
        try:
            with self.world.enter(self.module), counter:
                if n.op == "call_module":
                    self.module.get_submodule(n.target)(*args, **kwargs)
                elif n.op == "call_method":
                    getattr(args[0], n.target)(*args[1:], **kwargs)
                else:
                    n.target(*args, **kwargs)
        except Exception as exc:  # the user's op, run again on the values it got
            raise SpecError(f"{n.name}: measuring it again raised {type(exc).__name__}: "
                            f"{' '.join(str(exc).split())[:200]}") from None
        return counter.get_total_flops() // 2

    def prediction(self, output):
        """The model's output; of a tuple or list, the first tensor computed from the input (the prediction),
        said in the spec's comment."""
        if isinstance(output, (tuple, list)):
            data = [o for o in output if hasattr(o, "op") and o in self.ids]
            if data:
                self.notes.append(f"the model returns {len(output)} values; the first, the prediction, is analysed")
                return data[0]
        return output

    def split(self, n, name: str, value, inputs: list) -> None:
        """x.chunk(k, dim=1), x.split(size, 1): the channel range of each piece, for the getitems that take them."""
        attrs = self.arguments(n, name)
        dim = attrs.get("dim", attrs["args"][1] if len(attrs["args"]) > 1 else 0)
        rank = self.values[inputs[0]].dim()
        if not isinstance(dim, int) or dim % rank != 1:  # along another axis: each piece an op without a layer type
            self.pieces[n] = _Piece(inputs[0], [], name)
            return
        ranges, start = [], 0
        for piece in value:
            ranges.append((start, start + int(piece.shape[1])))
            start += int(piece.shape[1])
        self.pieces[n] = _Piece(inputs[0], ranges, name)

    def piece(self, n, index: int, scope: tuple[str, ...], where_module: str) -> None:
        """One piece of a chunk or split: a `slice` of the channels of what was split."""
        split = self.pieces[n.args[0]]
        value = self.values[n]
        shape = tuple(int(d) for d in value.shape[1:])
        name = f"{split.name}_{index}"
        where = f"{n.name} ({split.name} piece {index}, in {where_module})"
        # a range of channels is a slice; a piece along another axis is measured (archcalc has no type for it)
        attrs = {"start": split.ranges[index][0], "stop": split.ranges[index][1]} if split.ranges else {"index": index}
        op = Op("call", split.name, attrs, self.shape_of(split.source), shape)
        self.add(n, Node(n.name, "layer", (self.ids[split.source],), scope, (*scope, name), where, shape, op=op))

    def data_inputs(self, n) -> list:
        found = []

        def visit(a):
            if hasattr(a, "op") and self.is_data(a):
                found.append(a)
            elif isinstance(a, (list, tuple)):
                for b in a:
                    visit(b)
            elif isinstance(a, dict):
                for b in a.values():
                    visit(b)

        visit(n.args)
        visit(n.kwargs)
        return found

    def node(self, n) -> None:
        inputs = self.data_inputs(n)
        value = self.values.get(n)
        stack = n.meta.get("nn_module_stack") or {}
        scope = tuple(list(stack)[-1].split(".")) if stack else ()
        if scope == ("",):
            scope = ()
        where_module = ".".join(scope) or "the top-level module"
        called = getattr(n.target, "__name__", str(n.target)) if n.op != "call_module" else ""
        if called in SPLITS and inputs and isinstance(value, (tuple, list)):
            self.split(n, called, value, inputs)
            return
        if called == "getitem" and n.args and n.args[0] in self.pieces and isinstance(n.args[1], int):
            self.piece(n, n.args[1], scope, where_module)
            return
        if called == "getitem" and n.args and n.args[0] in self.tuples and n.args[1] == 0:
            self.ids[n] = self.ids[n.args[0]]  # (output, weights) of an attention module: its output
            return
        if n.op == "call_module" and inputs and isinstance(value, tuple) and value and isinstance(value[0], self.torch.Tensor):
            self.tuples.add(n)  # nn.MultiheadAttention returns (output, weights or None)
            value = self.values[n] = value[0]
        if not inputs or not isinstance(value, self.torch.Tensor):
            return  # a constant, or sizes and other metadata read off a tensor
        shape = tuple(int(d) for d in value.shape[1:])
        input_shape = self.shape_of(inputs[0])
        ids = tuple(dict.fromkeys(self.ids[i] for i in inputs))  # attention(x, x, x) reads one tensor
        if n.op == "call_module":
            module = self.module.get_submodule(n.target)
            kind = type(module).__name__
            where = f"module {n.target} ({kind})"
            path = tuple(n.target.split("."))
            merge = getattr(module, "merge", None)
            if merge in MERGE_KINDS:
                self.add(n, Node(n.name, "merge", ids, path, path, where, shape, merge=merge))
                return
            if kind in PAD_MODULES:
                self.add(n, self.pad(n, ids, path, where, shape, list(module.padding), getattr(module, "value", 0.0), "constant"))
                return
            self.one_input(ids, where)
            op = Op("module", kind, _ModuleAttrs(module), input_shape, shape, self.weights(n))
            tensors = tuple(id(t) for t in (*module.parameters(), *module.buffers()))
            self.add(n, Node(n.name, "layer", ids, path, path, where, shape, op=op, tensors=tensors))
            return
        name = getattr(n.target, "__name__", str(n.target)) if n.op == "call_function" else str(n.target)
        where = f"{n.name} ({name}, in {where_module})"
        path = (*scope, _op_name(name))  # torch.fx numbers calls across the model (add_17): the op alone
        if name in PASS_THROUGH and len(ids) == 1:
            self.ids[n] = ids[0]
            return
        attrs = self.arguments(n, name)
        merge_kind = _merge_called(name)
        if merge_kind and len(inputs) >= 2:
            if merge_kind == "concat" and attrs.get("dim", 0) % (len(input_shape) + 1) != 1:
                raise SpecError(f"{where}: torch.cat along dim {attrs.get('dim', 0)}; archcalc joins along the channels (dim 1)")
            if merge_kind == "add" and attrs.get("alpha", 1) != 1:
                raise SpecError(f"{where}: add with alpha={attrs['alpha']} has no archcalc form")
            self.add(n, Node(n.name, "merge", ids, scope, path, where, shape, merge=merge_kind))
            return
        if name == "permute" and len(ids) == 1:
            self.add(n, Node(n.name, "permute", ids, scope, path, where, shape, perm=_dims(attrs, len(input_shape) + 1)))
            return
        if name == "transpose" and len(ids) == 1:
            self.add(n, Node(n.name, "permute", ids, scope, path, where, shape,
                             perm=_swapped(attrs, len(input_shape) + 1)))
            return
        if name == "pad":
            pad = attrs.get("pad")
            self.add(n, self.pad(n, ids, path, where, shape, list(pad or ()), attrs.get("value") or 0.0,
                              attrs.get("mode", "constant"), scope))
            return
        self.one_input(ids, where)
        op = Op("call", name, attrs, input_shape, shape, self.weights(n), self.small_values(n))
        tensors = tuple(id(t) for t in self.constants(n) if id(t) in self.weights_of_model)
        self.add(n, Node(n.name, "layer", ids, scope, path, where, shape, op=op, tensors=tensors))

    def add(self, n, node: Node) -> None:
        self.fx_nodes[node.id] = n
        self.nodes.append(node)
        self.ids[n] = node.id

    def shape_of(self, n) -> Shape:
        return tuple(int(d) for d in self.values[n].shape[1:])

    def one_input(self, ids: tuple[str, ...], where: str) -> None:
        """An op of several tensors (einsum of q and k) is measured, taking them by `from`; `strict` refuses it."""
        if len(ids) != 1 and self.strict:
            raise SpecError(f"{where}: {len(ids)} tensor inputs; archcalc layers take one (merges: +, torch.cat, *)")

    def pad(self, n, ids, path, where, shape, sides: list, value: float, mode: str, scope=None) -> Node:
        if len(sides) != 4 or value != 0 or mode != "constant" or min(sides) < 0:
            raise SpecError(f"{where}: only a zero pad of left, right, top, bottom is folded into the next layer "
                            f"(got pad {sides}, value {value}, mode {mode})")
        left, right, top, bottom = sides
        return Node(n.name, "pad", ids, path if scope is None else scope, path, where, shape, pad=(top, bottom, left, right))

    def arguments(self, n, name: str) -> dict:
        """The call's arguments by name: nodes replaced by their values (tensors by None)."""
        args, kwargs = list(n.args), dict(n.kwargs)
        if n.op == "call_method":
            named = dict(zip(METHOD_ARGS.get(name, ()), args[1:]))
            attrs = {**named, **kwargs, "args": tuple(args[1:])}
        else:
            attrs = {**kwargs, "args": tuple(args[1:])}
            from torch.fx.operator_schemas import normalize_function

            try:
                pair = normalize_function(n.target, tuple(args), kwargs, normalize_to_only_use_kwargs=True)
            except Exception:  # an overload it cannot choose without the argument types
                pair = None
            if pair is not None:
                attrs.update(dict(list(pair.kwargs.items())[1:]))
        return {k: self.resolve(v) for k, v in attrs.items()}

    def resolve(self, v: Any) -> Any:
        if hasattr(v, "op"):
            value = self.values.get(v) if v.op != "get_attr" else None
            return None if isinstance(value, self.torch.Tensor) else value
        if isinstance(v, (list, tuple)):
            return type(v)(self.resolve(b) for b in v)
        return v

    def constants(self, n) -> list:
        out = []
        for a in (*n.args, *n.kwargs.values()):
            if hasattr(a, "op") and not self.is_data(a):
                value = _attr(self.module, a.target) if a.op == "get_attr" else self.values.get(a)
                if isinstance(value, self.torch.Tensor):
                    out.append(value)
        return out

    def weights(self, n) -> tuple[Shape, ...]:
        return tuple(tuple(int(d) for d in t.shape) for t in self.constants(n)) if n.op != "call_module" else ()

    def small_values(self, n) -> tuple:
        return tuple(t.flatten().tolist() if t.numel() <= 64 and concrete(t) else None for t in self.constants(n))


def _name_lone_calls(graph: Graph) -> None:
    """A functional call that is the only op of its module (F.layer_norm in a norm module) is named by the module."""
    counts: dict[tuple[str, ...], int] = {}
    for n in graph.nodes:
        for k in range(1, len(n.scope) + 1):
            counts[n.scope[:k]] = counts.get(n.scope[:k], 0) + 1
    for n in graph.nodes:
        if n.kind == "layer" and n.layer_op.origin == "call" and n.scope and counts[n.scope] == 1:
            n.path = n.scope


def _op_name(name: str) -> str:
    """A call's name in the spec: the function or method (`add`, `cat`), in-place or private marks dropped."""
    return name.strip("_") or "op"


def _submodule(root, scope: tuple[str, ...]):
    """The module at `scope` of the model itself (the traced module holds only the ones it calls); None if none."""
    try:
        return root.get_submodule(".".join(scope)) if scope else None
    except AttributeError:
        return None


def _has_type(node: Node) -> bool:
    """Whether a layer type takes the node's op (a merge, a pad, a permute are the graph's own)."""
    try:
        spec_layers(node.layer_op, node.where)
    except SpecError:
        return False
    return True


def _dims(attrs: dict, rank: int) -> tuple[int, ...]:
    """The order of x.permute(0, 2, 3, 1), x.permute([0, 2, 3, 1]) or torch.permute(x, dims), batch axis included."""
    dims: Sequence[Any] = attrs.get("dims") or attrs.get("args") or ()
    if len(dims) == 1 and isinstance(dims[0], (list, tuple)):
        dims = dims[0]
    return tuple(int(d) % rank if isinstance(d, int) else -1 for d in dims)


def _swapped(attrs: dict, rank: int) -> tuple[int, ...]:
    """x.transpose(a, b) as the order of a permute, batch axis included."""
    args: Sequence[Any] = attrs.get("args") or ()
    a, b = attrs.get("dim0", args[0] if args else 0), attrs.get("dim1", args[1] if len(args) > 1 else 1)
    order = list(range(rank))
    order[a % rank], order[b % rank] = order[b % rank], order[a % rank]
    return tuple(order)


def _attr(module, target: str):
    for part in target.split("."):
        module = getattr(module, part)
    return module


def import_torch(model, input_shape: Shape, name: str, source: str, strict: bool = False) -> dict:
    """The spec document of `model`, with the parameters it holds in `expect` (the model does not run: its graph
    is traced on meta or fake tensors, so no fvcore total is measured); `strict`:
    an op no layer type takes stops the import instead of being measured."""
    from ..torch.record import parameter_count

    graph, _ = trace_graph(model, input_shape, strict)
    where = f"imported from {source} at {fmt.shape(input_shape)}"
    expect = [{"what": "params", "value": parameter_count(model), "source": where}]
    kind = type(model).__name__
    return to_spec(graph, name, name if name == kind else f"{name} ({kind})", source, expect)
