"""Receptive fields measured: the support of a gradient, over every output position probed.

The probe is the built network with each layer replaced by its layer type's stand-in
(`LayerType.probe_module`, archcalc.layers.probe): one channel, float64, windows of ones,
per-position layers as the identity, and merges that sum (concat, add) or multiply (mul) their
branches. Everything is positive, so the gradient of an output unit is non-zero exactly on the
input pixels it depends on. For a broadcast gate (squeeze-and-excitation) the probe can hold
the gate constant, which measures the spatial field. The input is grown until the field of
each probed unit fits inside it with a margin, up to MAX_PIXELS.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .. import fmt
from ..core.calc import Analysis, analyze
from ..core.spec import Layer, Network, Node, joins
from ..deps import require_torch
from ..errors import SpecError
from ..layers import MERGES, REGISTRY, Shape
from ..layers.layout import GRID, IMAGE, TOKENS, layout_of

MAX_PIXELS = 4096 * 4096  # the largest input the probe grows to (16.8 million pixels)
MAX_POSITIONS = 16  # output positions probed along the diagonal: two periods of the field, at most this


@dataclass(frozen=True)
class RFCheck:
    """The calculator's receptive field of one layer beside the widest measured gradient support."""

    path: str
    input_shape: Shape  # the input it was measured on (grown until the field fits)
    expected: tuple[int, int]
    measured: tuple[int, int]
    clipped: bool  # the field touched the input's border on every probed unit
    positions: int = 1  # output positions probed
    spatial: bool = False  # the spatial field, a broadcast gate held constant
    beyond_bound: bool = False  # the field needs an input above MAX_PIXELS: not measured

    @property
    def ok(self) -> bool:
        return self.clipped or self.beyond_bound or self.expected == self.measured

    @property
    def measured_ok(self) -> bool:
        return not (self.clipped or self.beyond_bound)

    def describe(self) -> str:
        kind = "spatial receptive field" if self.spatial else "receptive field"
        head = f"{kind} at {self.path} (input {fmt.shape(self.input_shape)}): "
        if self.beyond_bound:
            return head + (f"calculator {hw(self.expected)}; measuring it needs an input above "
                           f"{MAX_PIXELS:,} pixels, not measured")
        if self.clipped:
            return head + f"calculator {hw(self.expected)}; the field does not fit the input, not measured"
        verdict = "agrees" if self.ok else "DISAGREES"
        return (head + f"calculator {hw(self.expected)}, gradient support {hw(self.measured)}: {verdict} "
                f"(widest of {self.positions} output position{'s' if self.positions > 1 else ''})")


def hw(size: tuple[int, int]) -> str:
    return f"{size[0]}" if size[0] == size[1] else f"{size[0]}x{size[1]}"


def rf_target(analysis: Analysis) -> str | None:
    """The last layer whose output is an image, a channels-last grid or tokens with a bounded field (the feature extractor's end),
    leaving out gate branches and layers whose field changes with the input size."""
    if layout_of(analysis.input_shape) != IMAGE:
        return None  # a field in pixels needs an image to start from
    found = None
    for row in analysis.leaves()[1:]:
        field = row.rf.spatial_size if row.rf.gated else row.rf.size
        if layout_of(row.output_shape) not in (IMAGE, GRID, TOKENS) or field is None:
            continue
        if row.kind == "layer" and REGISTRY[row.label].field_depends_on_size:
            continue
        found = row.path
    return found


@dataclass(frozen=True)
class _Support:
    size: tuple[int, int]
    clipped: bool
    positions: int


def probe_model(analysis: Analysis, hold_gates: bool):
    """The analysed network as the probe: every layer's stand-in, merges that sum or multiply."""
    torch = require_torch()
    from .build import build_torch

    with torch.device("meta"):  # the stand-ins hold no weights: nothing is ever initialised
        model = build_torch(analysis)
    shapes = {row.path: row.output_shape for row in analysis.rows}
    _replace(model, analysis.network.root, hold_gates, shapes)
    return model


def _replace(module, node: Node, hold_gates: bool, shapes: dict) -> None:
    """The stand-ins in `module`, the one built for the sequence `node`: its children, and the nodes of its
    merges' branches beside them (build_torch holds them so)."""
    for child in node.children:  # type: ignore[union-attr]
        name = child.path.rsplit(".", 1)[-1]
        if isinstance(child, Layer):
            module._modules[name] = REGISTRY[child.type].probe_module(module._modules[name])
        elif joins(child):
            module._modules[name] = _combine(child.kind, hold_gates)
        elif child.kind != "sequence":
            for branch in child.children:
                _replace(module, branch, hold_gates, shapes)
            module._modules[name] = _combine(child.kind, hold_gates)
        else:
            _replace(module._modules[name], child, hold_gates, shapes)


def _combine(kind: str, hold_gates: bool):
    torch = require_torch()
    merge = MERGES[kind]
    module: Any = torch.nn.Module  # torch is loaded on demand: a base class known only at run time

    class Combine(module):
        """The merge type's probe_combine: the branches summed (one channel each), or multiplied, a branch
        broadcast over the positions held constant when measuring the spatial field."""

        def forward(self, *xs):
            return merge.probe_combine(torch, xs, hold_gates)

    return Combine()


class _Stop(Exception):
    def __init__(self, output):
        self.output = output


def _supports(analysis: Analysis, path: str, positions: int, hold_gates: bool) -> _Support:
    """Widest (h, w) support over `positions` output units of `path` along the diagonal from the centre (for tokens:
    the tokens from the middle of the sequence on, each with all its features)."""
    torch = require_torch()
    model = probe_model(analysis, hold_gates).requires_grad_(False)
    target = model.get_submodule(path)

    def stop(module, inputs, output):
        raise _Stop(output)

    handle = target.register_forward_hook(stop)
    shape = analysis.input_shape
    x = torch.ones(1, 1, *shape[1:], dtype=torch.float64, requires_grad=True)
    try:
        model(x)
        raise SpecError(f"{path} did not run")  # pragma: no cover
    except _Stop as caught:
        out = caught.output
    finally:
        handle.remove()
    laid = layout_of(analysis.row(path).output_shape)
    if laid == GRID:
        out = out.permute(0, 3, 1, 2)  # a channels-last grid read as an image
    if laid == TOKENS:  # tokens from the middle of the sequence on, each with its features; two more than asked,
        middle = out.shape[1] // 2  # since a row of patches read in order ends on the input's border
        units: list = [(middle + t,) for t in range(positions + 2) if middle + t < out.shape[1]]
    else:  # a diagonal centred on the output: an output of four positions (adaptive pooling to 4) has two inner ones
        h0, w0 = max(0, (out.shape[2] - positions) // 2), max(0, (out.shape[3] - positions) // 2)
        units = [(slice(None), h0 + t, w0 + t) for t in range(positions) if h0 + t < out.shape[2] and w0 + t < out.shape[3]]
    inside: list[tuple[int, int]] = []
    touching: list[tuple[int, int]] = []
    for i, unit in enumerate(units):
        (grad,) = torch.autograd.grad(out[(0,) + unit].sum(), x, retain_graph=i < len(units) - 1)
        mask = grad[0, 0] != 0
        rows = torch.nonzero(mask.any(1)).flatten().tolist()
        cols = torch.nonzero(mask.any(0)).flatten().tolist()
        if not rows:
            continue  # a unit that depends on no input pixel (a transposed conv's gaps)
        size = (rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)
        border = rows[0] == 0 or cols[0] == 0 or rows[-1] == shape[1] - 1 or cols[-1] == shape[2] - 1
        (touching if border else inside).append(size)
    sizes = inside or touching or [(0, 0)]
    widest = (max(s[0] for s in sizes), max(s[1] for s in sizes))
    return _Support(widest, not inside, max(len(inside), 1))


def gradient_support(network: Network, input_shape: Shape, path: str) -> tuple[tuple[int, int], bool]:
    """Bounding box (h, w) of the input pixels the centre unit of `path` depends on; touches the border?"""
    support = _supports(analyze(network, input_shape), path, 1, hold_gates=False)
    return support.size, support.clipped


def receptive_field_check(network: Network, input_shape: Shape | None = None, path: str | None = None,
                          tries: int = 3, max_pixels: int = MAX_PIXELS) -> RFCheck | None:
    """Measure the field of `path` (default: `rf_target`) at `input_shape` (default: the spec's),
    grown (with tries > 1) until the field of every probed unit fits. None: nothing bounded to measure."""
    shape = tuple(input_shape or network.input)
    for attempt in range(tries):
        analysis = analyze(network, shape)
        target = path or rf_target(analysis)
        if target is None:
            return None
        rf = analysis.row(target).rf
        spatial = rf.gated
        expected = rf.spatial_size if spatial else rf.size
        field = rf.spatial if spatial else rf.strict
        if expected is None or field is None:  # one is None exactly when the other is: a global field
            return None
        positions = min(MAX_POSITIONS, 2 * max(axis.period for axis in field))
        # the smallest input holding every probed unit's field, with a stride of slack each side
        fits = tuple(max(n, e + 2 * (math.ceil(axis.jump * positions) + 1))
                     for n, e, axis in zip(shape[1:], expected, field))
        if tries > 1 and fits != tuple(shape[1:]) and attempt < tries - 1:
            if math.prod(fits) > max_pixels:
                return RFCheck(target, (shape[0], *fits), expected, (0, 0), False, 0, spatial, True)
            shape = (shape[0], *fits)
            continue  # analyse again: a field after adaptive pooling changes with the input
        # measured on the input the calculator's field is for (a field after adaptive pooling to more than
        # one position grows with the input, so it never fits with the margin: its inner units are measured)
        support = _supports(analysis, target, positions, hold_gates=spatial)
        return RFCheck(target, shape, expected, support.size, support.clipped, support.positions, spatial)
    raise AssertionError("unreachable")  # pragma: no cover
