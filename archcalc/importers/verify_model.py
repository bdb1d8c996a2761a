"""`verify SPEC --model MODULE:CALLABLE`: a spec against the user's own module, the CI check of a real model.

Rows are matched to modules by name (a spec imported from the model carries its module names;
merge and branch components of the path are looked past) or, with match="order", the k-th row
with parameters to the k-th module call with parameters. Per matched module: output shape of
each call (forward hooks), parameters, and fvcore's count; then the totals.
"""
from __future__ import annotations

from collections import Counter

from ..core.calc import Analysis, analyze
from ..core.spec import Network
from ..deps import require_torch
from ..layers import Shape
from . import match
from .loading import load_model


def _calls(model, x) -> tuple[dict[str, list[Shape]], list[str]]:
    """Output shapes of every call of every module, and the modules with parameters in call order."""
    torch = require_torch()
    shapes: dict[str, list[Shape]] = {}
    order: list[str] = []

    def hook(name):
        def record(module, inputs, output):
            if isinstance(output, torch.Tensor):
                shapes.setdefault(name, []).append(tuple(int(d) for d in output.shape[1:]))
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
    torch = require_torch()
    from ..torch.verify import LayerCheck, Report, _count, trace

    analysis: Analysis = analyze(network, input_shape, batch)
    model = load_model(target, kwargs)
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
    for name, rows in matched.items():
        module = modules[name]
        shapes = calls.get(name, [])
        for k, row in enumerate(rows):
            seen.add(row.path)
            label = row.path if row.path == name else f"{row.path} = {name}"
            first = k == 0
            checks.append(LayerCheck(
                label, row.label, row.output_shape, shapes[k] if k < len(shapes) else None,
                row.params, _count(module) if first else 0,
                sum(r.fvcore_flops for r in rows) * batch if first else 0, flops.get(name, 0) if first else 0,
            ))
    for row in analysis.leaves()[1:]:
        if row.path not in seen and row.params:  # functional ops' counts land in their module's: the totals hold them
            checks.append(LayerCheck(row.path, row.label, row.output_shape, None, row.params, None,
                                     row.fvcore_flops * batch, None))
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
