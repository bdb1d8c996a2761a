"""A real torch model from a spec: modules named like the calculator's rows.

A sequence (the network, a block, a `layers` list, a branch) becomes an `nn.Sequential`
holding its children under their spec names; a merge becomes a `Merge` holding its
branches `0`, `1`, ... and the op that combines them under `concat`, `add` or `mul`;
a layer is what its layer type's `torch_module` returns. So the module at
`model.get_submodule(row.path)` is the one that computes a calculator row.
torch is imported only when a model is built.
"""
from __future__ import annotations

import functools

from ..core.calc import Analysis, analyze
from ..core.spec import Layer, Network, Node
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

    class Sequential(nn.Sequential):
        get_submodule = _get_submodule

    return Sequential, Merge


def _get_submodule(self, target: str):
    """Module.get_submodule by child names only: a spec name may shadow a method (`type`, `forward`)."""
    module = self
    for name in target.split(".") if target else ():
        if name not in module._modules:
            raise AttributeError(f"{type(module).__name__} has no submodule {name!r} (in {target!r})")
        module = module._modules[name]
    return module


def _attach(parent, name: str, module, path: str) -> None:
    """add_module, also for spec names that shadow a Module method (`type`, `forward`)."""
    try:
        parent.add_module(name, module)
    except KeyError:
        if not callable(getattr(parent, name)):  # `training`: Module.train() would assign to it
            raise SpecError(f"the name {name!r} is an attribute of torch's modules; rename the layer", path=path) from None
        parent._modules[name] = module


def _build(node: Node, shapes: dict[str, Shape]):
    sequential, merge = _classes()
    if isinstance(node, Layer):
        return REGISTRY[node.type].torch_module(node.attrs, shapes[node.path])
    if node.kind == "sequence":
        module = sequential()
        for child in node.children:
            _attach(module, child.path.rsplit(".", 1)[-1], _build(child, shapes), child.path)
        return module
    return merge(node.kind, [_build(child, shapes) for child in node.children])


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
        return _build(network.root, shapes)
    except SpecError as exc:
        raise exc.located(file=network.file) from None
