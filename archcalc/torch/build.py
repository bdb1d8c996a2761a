"""A real torch model from a spec: modules named like the calculator's rows.

A sequence (the network, a block, a `layers` list) becomes an `nn.Sequential` holding its
children under their spec names; a layer is what its layer type's `torch_module` returns. A
sequence that holds a merge with branches, or whose nodes name what they take (`from`), becomes a
`Graph`: it holds its children and, as neighbours, the nodes of its merges' branches (a branch
adds no part to a path, as the modules of a torch block that adds or concatenates) and each
merge's combining module under the merge's name (`add`, `concat`); it runs them in the spec's
order, each output dropped once its last reader has returned (the calculator's liveness). A layer
that is a module called again is that module, held under a second key that `named_modules()` does
not list. So `model.named_modules()` names are the rows' paths, and the module at
`model.get_submodule(row.path)` is the one that computes a calculator row.
torch is imported only when a model is built.
"""
from __future__ import annotations

import functools
from typing import Sequence

from ..core.calc import Analysis, analyze
from ..core.spec import CALL, Group, Layer, Network, Node, joins, source_positions
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

    def __setattr__(self, name: str, value) -> None:
        if name in self.__dict__ and name in self.__dict__["_modules"]:  # `training`, also a child's name
            object.__setattr__(self, name, value)
        else:
            nn.Module.__setattr__(self, name, value)

    class Sequential(nn.Sequential):
        get_submodule = _get_submodule

    class Graph(nn.Module):
        """Runs a plan (see _plan) on the input: its children in order, each on the outputs it names (-1: the
        input), a merge's branches each on the merge's input; drops each output once its last reader has
        returned."""

        def __init__(self, plan: tuple):
            super().__init__()
            self.plan = plan

        def forward(self, x):
            return self.run(self.plan, x)

        def run(self, plan: tuple, x):
            values = {-1: x}
            for k, (name, sources, dropped, branches) in enumerate(plan):
                taken = [values[s] for s in sources]
                if branches:
                    taken = [self.run(branch, taken[0]) for branch in branches]
                values[k] = self._modules[name](*taken)
                del taken
                for s in dropped:
                    del values[s]
            return values[len(plan) - 1] if plan else x

        get_submodule = _get_submodule

    Sequential.__setattr__ = Graph.__setattr__ = __setattr__  # type: ignore[method-assign,assignment]
    return Sequential, Graph


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
    sequential, graph = _classes()
    if isinstance(node, Layer):
        if CALL in node.path:  # the same module called again
            return layers[node.shares]
        module = layers[node.path] = REGISTRY[node.type].torch_module(node.attrs, shapes[node.path])
        if node.shares is not None:
            _tie(module, layers[node.shares])
        return module
    if joins(node):
        return combiner(node.kind)()
    if node.graph or any(_branches(child) for child in node.children):
        module_names: dict[str, Node] = {}
        module = graph(_plan(node.children, module_names))
        for name, child in module_names.items():
            if CALL in name and isinstance(child, Group):  # an op called again: its one module
                _attach(module, name, module._modules[name.partition(CALL)[0]])
            elif isinstance(child, Group) and _branches(child):
                _attach(module, name, combiner(child.kind)())
            else:
                _attach(module, name, _build(child, shapes, layers))
        return module
    module = sequential()
    for child in node.children:
        _attach(module, _local(child), _build(child, shapes, layers))
    return module


def _branches(node: Node) -> bool:
    return isinstance(node, Group) and node.kind != "sequence" and bool(node.children)


def _local(node: Node) -> str:
    """A node's name in the module that holds it: the last part of its path (branches add none)."""
    return node.path.rsplit(".", 1)[-1]


def _plan(children: Sequence[Node], modules: dict[str, Node]) -> tuple:
    """Each child's module name, the positions of the outputs it takes, those whose last reader it is (its own
    when nothing reads it), and a merge's branches as plans of their own; the last child's output is returned.
    `modules` gathers the modules to hold, by name: a merge's branches' nodes are its neighbours."""
    sources = source_positions(children)
    last = {k: k for k in range(len(sources))}
    for k, taken in enumerate(sources):
        for s in taken:
            if s >= 0:
                last[s] = k
    last.pop(len(sources) - 1, None)
    dropped: dict[int, list[int]] = {}
    for s, k in last.items():
        dropped.setdefault(k, []).append(s)
    plan = []
    for k, (child, taken) in enumerate(zip(children, sources)):
        branches = tuple(_plan(b.children, modules) for b in child.children) if _branches(child) else ()  # type: ignore[union-attr]
        modules[_local(child)] = child
        plan.append((_local(child), taken, tuple(dropped.get(k, ())), branches))
    return tuple(plan)


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
    shapes = {row.path: row.input_shape for row in reversed(analysis.rows) if row.leaf}  # a module's first call
    try:
        return _build(network.root, shapes, {})
    except SpecError as exc:
        raise exc.located(file=network.file) from None
