"""`verify SPEC --model MODULE:CALLABLE`: a spec against the user's own module, the CI check of a real model.

Rows are matched to modules by name (a spec imported from the model carries its module names;
merge and branch components of the path are looked past) or, with match="order", the k-th row
with parameters to the k-th module call with parameters. Per matched module: output shape of
each call (forward hooks), parameters, and fvcore's count; then the totals.

A module that ran on a channels-last view (between permute(0, 2, 3, 1) and permute(0, 3, 1, 2),
input and output both (H, W, C) where the rows say (C, H, W)) is compared in the rows' order.
Rows no module computes (functional calls on a module's own parameters: `F.conv2d(x, self.w)`,
`x * self.gamma`) are checked together against the module that holds them: its own parameters
(not its children's) and fvcore's count for it less its children's; their shapes are not measured.
"""
from __future__ import annotations

from collections import Counter

from .. import fmt
from ..core.calc import Analysis, analyze
from ..core.spec import Network
from ..deps import require_torch
from ..layers import Shape
from . import match
from .loading import load_model, running


def _calls(model, x) -> tuple[dict[str, list[tuple[Shape | None, Shape]]], list[str]]:
    """(input, output) shapes of every call of every module, and the modules with parameters in call order."""
    torch = require_torch()
    shapes: dict[str, list[tuple[Shape | None, Shape]]] = {}
    order: list[str] = []

    def hook(name):
        def record(module, inputs, output):
            if isinstance(output, torch.Tensor):
                given = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
                shapes.setdefault(name, []).append((None if given is None else tuple(int(d) for d in given.shape[1:]),
                                                    tuple(int(d) for d in output.shape[1:])))
            if not list(module.children()) and any(True for _ in module.parameters(recurse=False)) and name not in order:
                order.append(name)
        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in model.named_modules() if name]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return shapes, order


def verify_model(network: Network, input_shape: Shape | None, batch: int, target: str, how: str = "name",
                 kwargs: dict | None = None):
    """The verify Report of `network` against the module that `target` builds."""
    analysis: Analysis = analyze(network, input_shape, batch)
    with running(target):
        return _verified(analysis, batch, target, how, load_model(target, kwargs))


def _verified(analysis: Analysis, batch: int, target: str, how: str, model):
    """The checks of `analysis` against `model`, one module per matched row, then the totals."""
    torch = require_torch()
    from ..torch.memory import check_allocation, fake_values_bytes
    from ..torch.verify import LayerCheck, Report, _count, trace

    needed = fake_values_bytes(model, (batch, *analysis.input_shape))  # None: the model needs real values
    check_allocation(analysis.peak_activation_bytes if needed is None else needed, "verify --model",
                     f"activations of a batch of {batch} at {fmt.shape(analysis.input_shape)}", analysis.network.file)
    torch.manual_seed(0)
    x = torch.randn(batch, *analysis.input_shape)
    calls, order = _calls(model, x)
    _, flops, unsupported = trace(model, x)
    modules = dict(model.named_modules())
    if how == "order":
        matched = match.by_order(analysis, order, lambda row: row.params > 0)
    else:
        matched = match.by_name(analysis, set(modules) - {""})
    checks, seen = [], set()
    counted: set[int] = set()  # parameters met in an earlier module: tied ones count there, as the rows do
    for name, rows in matched.items():
        module = modules[name]
        shapes = calls.get(name, [])
        for k, row in enumerate(rows):
            seen.add(row.path)
            label = row.path if row.path == name else f"{row.path} = {name}"
            first = k == 0
            checks.append(LayerCheck(
                label, row.label, row.output_shape, _as_rows(row, shapes[k]) if k < len(shapes) else None,
                row.params, _count(module, counted=counted) if first else 0,
                sum(r.fvcore_flops for r in rows) * batch if first else 0, flops.get(name, 0) if first else 0,
            ))
    checks += _held_by_modules(analysis, [r for r in analysis.leaves()[1:] if r.path not in seen], modules,
                               set(matched), flops, batch)
    covered = set(matched)
    for name, module in modules.items():
        weighted = not list(module.children()) and any(True for _ in module.parameters(recurse=False))
        if name and weighted and not any(name == c or name.startswith(c + ".") for c in covered):
            checks.append(LayerCheck(f"(model) {name}", type(module).__name__, (), (calls.get(name) or [None])[-1],
                                     0, _count(module), 0, flops.get(name, 0)))
    t = analysis.totals
    output = analysis.output_shape
    with torch.no_grad():
        output_torch = tuple(int(d) for d in model(x).shape[1:])
    totals = (
        LayerCheck("(total)", "params", output, output_torch, t.params, _count(model), t.fvcore_flops * batch, flops[""]),
        LayerCheck("(total)", "buffers", output, output, t.non_trainable, _count(model, buffers=True), 0, 0),
    )
    return Report(analysis, tuple(checks), totals, Counter(unsupported), None)


def _as_rows(row, call: tuple[Shape | None, Shape]) -> Shape:
    """The call's output shape, in the rows' (C, H, W) order when the module ran on a channels-last view."""
    given, out = call
    last = lambda shape: (*shape[1:], shape[0]) if len(shape) == 3 else None  # noqa: E731
    if out != row.output_shape and given is not None and given == last(row.input_shape) and out == last(row.output_shape):
        return row.output_shape
    return out


def _held_by_modules(analysis: Analysis, rows: list, modules: dict, matched: set[str], flops: dict, batch: int) -> list:
    """One check per module holding rows that no module of its own computes (functional calls)."""
    from ..torch.verify import LayerCheck

    merges = match.merge_paths(analysis)
    groups: dict[str, list] = {}
    for row in rows:
        groups.setdefault(_holder(match.candidates(row.path, merges), modules), []).append(row)
    checks = []
    for name, held in groups.items():
        module = modules[name]
        own_params = sum(p.numel() for p in module.parameters(recurse=False))
        children = [child for child in modules if child != name and child.startswith(f"{name}." if name else "")
                    and "." not in child[len(name) + 1 if name else 0:]]
        own_flops = flops.get(name, 0) - sum(flops.get(child, 0) for child in children)
        params, counted = sum(r.params for r in held), sum(r.fvcore_flops for r in held) * batch
        if name in matched or not (own_params or own_flops):  # rows no module computes: each its own miss
            checks += [LayerCheck(r.path, r.label, r.output_shape, None, r.params, None, r.fvcore_flops * batch, None)
                       for r in held if r.params]
            continue
        label = f"{held[0].path}{' ...' if len(held) > 1 else ''} (in {name or 'the model'})"
        checks.append(LayerCheck(label, "+".join(dict.fromkeys(r.label for r in held)), held[0].output_shape, None,
                                 params, own_params, counted, own_flops, shape_measured=False))
    return checks


def _holder(names: list[str], modules: dict) -> str:
    """The deepest module that one of a row's candidate names lies in ('' is the model)."""
    best = ""
    for name in names:
        parts = name.split(".")
        for k in range(len(parts), 0, -1):
            prefix = ".".join(parts[:k])
            if prefix in modules and len(prefix) > len(best):
                best = prefix
    return best
