"""A real torch model from a spec: modules named like the calculator's rows.

A sequence (the network, a block, a `layers` list, a branch) becomes an `nn.Sequential`
holding its children under their spec names; a merge becomes a `Merge` holding its
branches `0`, `1`, ... and the op that combines them under `concat`, `add` or `mul`;
a layer is what its layer type's `torch_module` returns. A sequence whose nodes name what
they take (`from`) becomes a `Graph`: its children run in the spec's order on the outputs they
name, each output dropped once its last reader has returned (the calculator's liveness); a merge
of named nodes is its combining module alone. So the module at
`model.get_submodule(row.path)` is the one that computes a calculator row.
torch is imported only when a model is built.
"""
from __future__ import annotations

import functools

from ..core.calc import Analysis, analyze
from ..core.spec import Group, Layer, Network, Node, joins, sibling_name, source_positions
from ..deps import require_torch
from ..errors import SpecError
from ..layers import MERGES, REGISTRY, Shape


@functools.cache
def combiner(name: str):
    """The torch module class of a merge type (`Concat`, `Add`, `Mul`): its `merge` attribute is what
    archcalc.importers reads it as, its forward the merge type's `combine`."""
    torch = require_torch()
    merge_type = MERGES[name]

    def forward(self, *xs):
        return merge_type.combine(torch, xs)

    return type(name.capitalize(), (torch.nn.Module,), {"__doc__": merge_type.doc, "merge": name, "forward": forward})


@functools.cache
def _classes():
    torch = require_torch()
    nn = torch.nn

    class Merge(nn.Module):
        """Runs every branch on the same input and combines their outputs."""

        def __init__(self, kind: str, branches: list):
            super().__init__()
            for i, branch in enumerate(branches):
                self.add_module(str(i), branch)
            self.count = len(branches)
            self.kind = kind
            self.add_module(kind, combiner(kind)())

        def forward(self, x):
            outputs = [self._modules[str(i)](x) for i in range(self.count)]
            return self._modules[self.kind](*outputs)

        def extra_repr(self) -> str:
            return self.kind

        get_submodule = _get_submodule

    def __setattr__(self, name: str, value) -> None:
        if name in self.__dict__ and name in self.__dict__["_modules"]:  # `training`, also a child's name
            object.__setattr__(self, name, value)
        else:
            nn.Module.__setattr__(self, name, value)

    class Sequential(nn.Sequential):
        get_submodule = _get_submodule

    class Graph(nn.Module):
        """Runs its children in order, each on the outputs it names (-1: the input); drops each output once
        its last reader has returned."""

        def __init__(self, plan: list[tuple[str, tuple[int, ...], tuple[int, ...]]]):
            super().__init__()
            self.plan = tuple(plan)  # each child's name, the outputs it takes, the outputs dropped after it

        def forward(self, x):
            values = {-1: x}
            for k, (name, sources, dropped) in enumerate(self.plan):
                taken = [values[s] for s in sources]
                values[k] = self._modules[name](*taken)
                del taken
                for s in dropped:
                    del values[s]
            return values[len(self.plan) - 1] if self.plan else x

        get_submodule = _get_submodule

    Sequential.__setattr__ = Graph.__setattr__ = __setattr__  # type: ignore[method-assign,assignment]
    return Sequential, Merge, Graph


def _get_submodule(self, target: str):
    """Module.get_submodule by child names only: a spec name may shadow a method (`type`, `forward`)."""
    module = self
    for name in target.split(".") if target else ():
        if name not in module._modules:
            raise AttributeError(f"{type(module).__name__} has no submodule {name!r} (in {target!r})")
        module = module._modules[name]
    return module


def _attach(parent, name: str, module) -> None:
    """add_module, also for spec names that shadow a Module attribute (`type`, `forward`, `training`,
    `_parameters`): the child is reached through `_modules` (get_submodule, named_modules), the attribute
    stays the Module's own (Sequential.__setattr__ keeps `training` assignable)."""
    try:
        parent.add_module(name, module)
    except KeyError:
        parent._modules[name] = module


def _build(node: Node, shapes: dict[str, Shape], layers: dict):
    """The module of `node`; `layers` holds the layers' modules built so far, by path (for `shares`)."""
    sequential, merge, graph = _classes()
    if isinstance(node, Layer):
        module = layers[node.path] = REGISTRY[node.type].torch_module(node.attrs, shapes[node.path])
        if node.shares is not None:
            _tie(module, layers[node.shares])
        return module
    if joins(node):
        return combiner(node.kind)()
    if node.kind == "sequence" and node.graph:
        module = graph(_plan(node))
        for child in node.children:
            _attach(module, sibling_name(child), _build(child, shapes, layers))
        return module
    if node.kind == "sequence":
        module = sequential()
        for child in node.children:
            _attach(module, child.path.rsplit(".", 1)[-1], _build(child, shapes, layers))
        return module
    return merge(node.kind, [_build(child, shapes, layers) for child in node.children])


def _plan(node: Group) -> list[tuple[str, tuple[int, ...], tuple[int, ...]]]:
    """Each child's name, the positions of the outputs it takes, and those whose last reader it is (its own
    when nothing reads it); the last child's output is returned."""
    sources = source_positions(node.children)
    last = {k: k for k in range(len(sources))}
    for k, taken in enumerate(sources):
        for s in taken:
            if s >= 0:
                last[s] = k
    last.pop(len(sources) - 1, None)
    dropped: dict[int, list[int]] = {}
    for s, k in last.items():
        dropped.setdefault(k, []).append(s)
    return [(sibling_name(child), taken, tuple(dropped.get(k, ()))) for k, (child, taken) in
            enumerate(zip(node.children, sources))]


def _tie(module, shared) -> None:
    """`module` uses the parameters and buffers of `shared`, a module of the same layer (the calculator
    checked): torch's parameters() then counts them once, and each module still runs on its own input."""
    for name, tensor in [*shared.named_parameters(), *shared.named_buffers()]:
        owner, _, leaf = name.rpartition(".")
        setattr(module.get_submodule(owner) if owner else module, leaf, tensor)


def build_torch(analysis: Analysis | Network):
    """An `nn.Module` computing the analysed network (training mode, torch's default initialisation).

    Layers whose torch form depends on the input size ('same' padding) are built for the
    analysis' input; a Network is analysed at its spec's input first.
    """
    require_torch()
    if not isinstance(analysis, Analysis):
        analysis = analyze(analysis)
    network = analysis.network
    shapes = {row.path: row.input_shape for row in analysis.rows if row.leaf}
    try:
        return _build(network.root, shapes, {})
    except SpecError as exc:
        raise exc.located(file=network.file) from None
