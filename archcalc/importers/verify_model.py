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

from .. import fmt
from ..core.calc import Analysis, Row, analyze
from ..core.spec import Network
from ..deps import require_torch
from ..errors import ArchcalcError, SpecError
from ..layers import Shape
from ..torch.memory import check_allocation, fake_values_bytes
from ..torch.record import Call, Recording, holds_weights, parameter_count, record
from ..torch.verify import LayerCheck, Report, compare_modules, compared, counted_by
from . import match
from .graph import channels_last
from .loading import exception_text, load_model, running


def verify_model(network: Network, input_shape: Shape | None, batch: int, target: str, how: str = "name",
                 kwargs: dict | None = None) -> Report:
    """The verify Report of `network` against the module that `target` builds."""
    analysis = analyze(network, input_shape, batch)
    with running(target):
        return _verified(analysis, how, target, load_model(target, kwargs))


def _verified(analysis: Analysis, how: str, target: str, model) -> Report:
    """The checks of `analysis` against `model`: one module per matched row, the rows no module computes,
    the modules with weights no row matched; then the totals."""
    recording = _run(analysis, target, model)
    modules = dict(model.named_modules())
    if how == "order":
        matched = match.by_order(analysis, recording.weighted, lambda row: row.params > 0)
    else:
        matched = match.by_name(analysis, set(modules) - {""})
    checks = compare_modules(matched, modules, recording, analysis.batch, read=_as_rows)
    seen = {row.path for rows in matched.values() for row in rows}
    checks += _held_by_modules(analysis, [r for r in analysis.leaves()[1:] if r.path not in seen], modules,
                               set(matched), recording)
    checks += _unmatched(modules, set(matched), recording)
    return compared(analysis, model, recording, checks)


def _run(analysis: Analysis, target: str, model) -> Recording:
    """One recorded pass of `model` on a random batch, once the activations it needs fit the budget; what its
    forward raises is one line naming `target`."""
    torch = require_torch()
    batch = analysis.batch
    needed = fake_values_bytes(model, (batch, *analysis.input_shape))  # None: the model needs real values
    check_allocation(analysis.peak_activation_bytes if needed is None else needed, "verify --model",
                     f"activations of a batch of {batch} at {fmt.shape(analysis.input_shape)}", analysis.network.file)
    torch.manual_seed(0)
    try:
        torch_counted = any(counted_by(row) == "torch" for row in analysis.leaves())  # attention: FlopCounterMode
        return record(model, torch.randn(batch, *analysis.input_shape), torch_counted)
    except ArchcalcError:
        raise
    except Exception as exc:  # the user's forward can fail in any way
        raise SpecError(f"{target}: the model fails on a batch of {batch} at {fmt.shape(analysis.input_shape)}: "
                        f"{type(exc).__name__}: {exception_text(exc)}") from None


def _as_rows(row: Row, call: Call) -> Shape:
    """The call's output shape, in the rows' (C, H, W) order when the module ran on a channels-last view."""
    if (call.output != row.output_shape and call.input is not None and call.input == channels_last(row.input_shape)
            and call.output == channels_last(row.output_shape)):
        return row.output_shape
    return call.output


def _unmatched(modules: dict, matched: set[str], recording: Recording) -> list[LayerCheck]:
    """One check per module with weights of its own that is not (inside) a matched module: no row computes it."""
    checks = []
    for name, module in modules.items():
        if name and holds_weights(module) and not any(name == m or name.startswith(m + ".") for m in matched):
            checks.append(LayerCheck(f"(model) {name}", type(module).__name__, (), recording.output(name),
                                     0, parameter_count(module), 0, recording.flops.get(name, 0)))
    return checks


def _held_by_modules(analysis: Analysis, rows: list[Row], modules: dict, matched: set[str],
                     recording: Recording) -> list[LayerCheck]:
    """One check per module holding rows that no module of its own computes (functional calls)."""
    flops, batch = recording.flops, analysis.batch
    groups: dict[str, list] = {}
    for row in rows:
        groups.setdefault(_holder(match.candidates(row.path), modules), []).append(row)
    checks = []
    for name, held in groups.items():
        module = modules[name]
        own_params = parameter_count(module, recurse=False)
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
