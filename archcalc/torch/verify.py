"""Cross-checking the calculator against a real torch model and fvcore's counts.

`verify_network` builds the spec as torch modules (archcalc.torch_build), runs it once
under fvcore's tracer and compares, layer by layer, matched by path: the output shape
(forward hooks), the parameters (counted on the module) and the operations (fvcore's
`by_module`) against the calculator's `output_shape`, `params` and `fvcore_flops` x batch.

fvcore's convention (its default handles): one multiply-add is one flop for
convolutions, linear layers and matrix products (bias not counted; a transposed
convolution is counted over its input grid); batch norm in eval mode 2 per element (1
without affine), layer and group norm 5 per element, adaptive average pooling 1 per input
element, nearest upsampling 1 and bilinear 4 per output element. Max and average
pooling, activations, additions and products count 0 (fvcore lists them as unsupported).

`receptive_field_check` measures a receptive field: with positive weights (and the
layers that could zero a gradient made harmless) the gradient of the centre output
unit with respect to the input is non-zero exactly on that unit's field.
"""
from __future__ import annotations

import math
import warnings
from collections import Counter
from dataclasses import dataclass, field

from .. import fmt
from ..core.calc import Analysis, analyze
from ..core.spec import Network
from ..deps import require_fvcore, require_torch
from ..errors import SpecError
from ..layers import Shape


@dataclass(frozen=True)
class LayerCheck:
    """One calculator row beside what the torch module at the same path did."""

    path: str
    type: str
    shape: Shape
    torch_shape: Shape | None  # None: no module ran under this path
    params: int
    torch_params: int | None
    flops: int  # the calculator's fvcore_flops for the whole batch
    torch_flops: int | None

    @property
    def shape_ok(self) -> bool:
        return self.shape == self.torch_shape

    @property
    def params_ok(self) -> bool:
        return self.params == self.torch_params

    @property
    def flops_ok(self) -> bool:
        return self.flops == self.torch_flops

    @property
    def ok(self) -> bool:
        return self.shape_ok and self.params_ok and self.flops_ok

    def problems(self) -> list[str]:
        return [what for what, ok in (("output", self.shape_ok), ("params", self.params_ok),
                                      ("flops", self.flops_ok)) if not ok]


@dataclass(frozen=True)
class RFCheck:
    """The calculator's receptive field of one layer beside the measured gradient support."""

    path: str
    input_shape: Shape  # the input it was measured on (grown until the field fits)
    expected: tuple[int, int]
    measured: tuple[int, int]
    clipped: bool  # the field touched the input's border even on the largest input tried

    @property
    def ok(self) -> bool:
        return self.clipped or self.expected == self.measured

    def describe(self) -> str:
        head = f"receptive field at {self.path} (input {fmt.shape(self.input_shape)}): "
        if self.clipped:
            return head + f"calculator {_hw(self.expected)}; the field does not fit the input, not measured"
        verdict = "agrees" if self.ok else "DISAGREES"
        return head + f"calculator {_hw(self.expected)}, gradient support {_hw(self.measured)}: {verdict}"


@dataclass(frozen=True)
class Report:
    analysis: Analysis
    layers: tuple[LayerCheck, ...]
    totals: tuple[LayerCheck, ...]  # the whole network: params, buffers and flops
    unsupported: Counter = field(default_factory=Counter)
    rf: RFCheck | None = None

    @property
    def disagreeing(self) -> list[LayerCheck]:
        return [c for c in (*self.layers, *self.totals) if not c.ok]

    @property
    def ok(self) -> bool:
        return not self.disagreeing and (self.rf is None or self.rf.ok)


def _hw(size: tuple[int, int]) -> str:
    return f"{size[0]}" if size[0] == size[1] else f"{size[0]}x{size[1]}"


# ---- layer by layer ---------------------------------------------------------------------

def _count(module, buffers: bool = False) -> int:
    if buffers:
        return sum(b.numel() for name, b in module.named_buffers() if not name.endswith("num_batches_tracked"))
    return sum(p.numel() for p in module.parameters())


def trace(model, x) -> tuple[dict[str, Shape], Counter, Counter]:
    """Output shapes per module path (batch left out), fvcore's by_module counts, unsupported ops."""
    torch = require_torch()
    fvnn = require_fvcore()
    shapes: dict[str, Shape] = {}

    def hook(name):
        def record(module, inputs, output):
            if isinstance(output, torch.Tensor):
                shapes[name] = tuple(int(d) for d in output.shape[1:])  # ints, also while tracing
        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in model.named_modules()]
    analysis = (fvnn.FlopCountAnalysis(model, x).unsupported_ops_warnings(False)
                .uncalled_modules_warnings(False).tracer_warnings("none"))
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            by_module = analysis.by_module()
            unsupported = analysis.unsupported_ops()
    finally:
        for handle in handles:
            handle.remove()
    return shapes, Counter({k: int(v) for k, v in by_module.items()}), Counter(unsupported)


VERIFY_BYTES = 8 * 2**30  # what verify may ask torch for


def verify_network(analysis: Analysis, receptive_field: bool = True, seed: int = 0) -> Report:
    """Build, run and trace the analysed network at its input and batch; compare every leaf row and the totals."""
    torch = require_torch()
    from .build import build_torch

    network, batch = analysis.network, analysis.batch
    needed = analysis.weights_bytes + analysis.peak_activation_bytes
    if needed > VERIFY_BYTES:  # checked before torch allocates anything
        raise SpecError(f"verify would allocate {fmt.scaled_bytes(needed)} (weights and peak activations), "
                        f"over the {fmt.scaled_bytes(VERIFY_BYTES)} it allows", file=network.file)
    torch.manual_seed(seed)
    try:
        model = build_torch(analysis).eval()
        x = torch.randn(batch, *analysis.input_shape)
        shapes, flops, unsupported = trace(model, x)
    except (MemoryError, RuntimeError) as exc:
        if not isinstance(exc, MemoryError) and "alloc" not in str(exc):
            raise
        raise SpecError(f"torch could not allocate the network: {str(exc).splitlines()[0][:120]}",
                        file=network.file) from None
    modules = dict(model.named_modules())
    checks = []
    for row in analysis.leaves()[1:]:  # the first is the input
        module = modules.get(row.path)
        checks.append(LayerCheck(
            row.path, row.type, row.output_shape, shapes.get(row.path),
            row.params, None if module is None else _count(module),
            row.fvcore_flops * batch, flops.get(row.path) if module is not None else None,
        ))
    t = analysis.totals
    out = analysis.output_shape
    totals = (
        LayerCheck("(total)", "params", out, shapes.get(""), t.params, _count(model), t.fvcore_flops * batch, flops[""]),
        LayerCheck("(total)", "buffers", out, out, t.non_trainable, _count(model, buffers=True), 0, 0),
    )
    rf = receptive_field_check(network, analysis.input_shape) if receptive_field else None
    return Report(analysis, tuple(checks), totals, unsupported, rf)


# ---- receptive field ------------------------------------------------------------------

_SATURATING = {"Tanh", "Sigmoid", "ReLU6", "Hardswish", "Hardsigmoid", "Hardtanh", "GELU", "SiLU",
               "Mish", "ELU", "LeakyReLU", "Softplus", "PReLU"}
_HARMLESS = {"LocalResponseNorm", "LayerNorm", "LayerNorm2d", "GroupNorm", "Softmax", "Dropout"}


def _support_model(model):
    """`model` with positive weights; gates that could zero a gradient become ReLU or identity.

    Max pooling passes the gradient to one input per window, so it becomes the average
    over the same windows; activations that saturate become ReLU (the identity on the
    positive values that flow here); normalisations across channels become the identity.
    """
    torch = require_torch()
    nn = torch.nn
    F = nn.functional

    class WindowSum(nn.Module):
        def __init__(self, pool):
            super().__init__()
            self.pool = pool

        def forward(self, x):
            p = self.pool
            if p.dilation in (1, (1, 1)):
                return F.avg_pool2d(x, p.kernel_size, p.stride, p.padding, p.ceil_mode, True)
            kernel = torch.ones(x.shape[1], 1, *nn.modules.utils._pair(p.kernel_size))
            target = p(x).shape[2:]
            (ph, pw), (sh, sw) = nn.modules.utils._pair(p.padding), nn.modules.utils._pair(p.stride)
            padded = F.pad(x, [pw, pw + sw, ph, ph + sh])  # the extra stride serves ceil_mode
            out = F.conv2d(padded, kernel, None, p.stride, 0, p.dilation, x.shape[1])
            return out[..., :target[0], :target[1]]

    def replace(parent):
        for name, child in list(parent._modules.items()):
            kind = type(child).__name__
            if kind in _SATURATING:
                parent._modules[name] = nn.ReLU()
            elif kind in _HARMLESS:
                parent._modules[name] = nn.Identity()
            elif kind == "MaxPool2d":
                parent._modules[name] = WindowSum(child)
            elif kind == "AdaptiveMaxPool2d":
                parent._modules[name] = nn.AdaptiveAvgPool2d(child.output_size)
            else:
                replace(child)

    replace(model)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                taps = math.prod(m.kernel_size)
                m.weight.uniform_(0.5, 1.0).div_(m.in_channels // m.groups * math.sqrt(taps))
            elif isinstance(m, nn.Linear):  # positive is all the measurement needs; a constant is quick to fill
                m.weight.fill_(1.0 / m.in_features)
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
            for name, p in m.named_parameters(recurse=False):
                if not (name == "weight" and isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))):
                    p.fill_(1.0 if name != "bias" else 0.01)
    return model.eval()


def rf_target(analysis: Analysis) -> str | None:
    """The last layer whose output is still an image with a bounded field (the feature extractor's end)."""
    found = None
    for row in analysis.leaves()[1:]:
        if len(row.output_shape) != 3 or row.rf.size is None:
            break
        if not row.type.startswith("adaptive_"):
            found = row.path
    return found


class _Stop(Exception):
    def __init__(self, output):
        self.output = output


def gradient_support(network: Network, input_shape: Shape, path: str) -> tuple[tuple[int, int], bool]:
    """Bounding box (h, w) of the input pixels the centre unit of `path` depends on; touches the border?"""
    torch = require_torch()
    from .build import build_torch

    torch.manual_seed(0)
    with torch.device("meta"):  # no default initialisation: _support_model sets every value
        model = build_torch(analyze(network, input_shape))
    model = _support_model(model.to_empty(device="cpu")).requires_grad_(False)
    target = model.get_submodule(path)

    def stop(module, inputs, output):
        raise _Stop(output)

    handle = target.register_forward_hook(stop)
    x = (torch.rand(1, *input_shape) + 0.5).requires_grad_(True)
    try:
        model(x)
        raise SpecError(f"{path} did not run")  # pragma: no cover
    except _Stop as caught:
        out = caught.output
    finally:
        handle.remove()
    out[0, :, out.shape[2] // 2, out.shape[3] // 2].sum().backward()
    mask = x.grad[0].abs().sum(0) > 0
    rows = torch.nonzero(mask.any(1)).flatten().tolist()
    cols = torch.nonzero(mask.any(0)).flatten().tolist()
    size = (rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)
    clipped = rows[0] == 0 or cols[0] == 0 or rows[-1] == input_shape[1] - 1 or cols[-1] == input_shape[2] - 1
    return size, clipped


def receptive_field_check(network: Network, input_shape: Shape | None = None, path: str | None = None,
                          tries: int = 3, max_pixels: int = 1024 * 1024) -> RFCheck | None:
    """Measure the field of `path` (default: `rf_target`), growing the input until it fits.

    None when there is no layer with a bounded field to measure.
    """
    shape = tuple(input_shape or network.input)
    for attempt in range(tries):
        analysis = analyze(network, shape)
        target = path or rf_target(analysis)
        if target is None:
            return None
        expected = analysis.row(target).rf.size
        if expected is None:
            return None
        # the smallest input whose centre unit's field can lie inside it, with a stride of slack each side
        fits = tuple(max(n, e + 2 * math.ceil(j) + 2) for n, e, j in zip(shape[1:], expected, analysis.row(target).rf.jump))
        if attempt == 0 and fits != tuple(shape[1:]) and input_shape is None:
            shape = (shape[0], *fits)
            analysis = analyze(network, shape)
        measured, clipped = gradient_support(network, shape, target)
        grown = (shape[0], *(n + 2 * e for n, e in zip(shape[1:], expected)))
        if not clipped or attempt == tries - 1 or math.prod(grown[1:]) > max_pixels:
            return RFCheck(target, shape, tuple(expected), measured, clipped)  # type: ignore[arg-type]
        shape = grown
    raise AssertionError("unreachable")  # pragma: no cover


# ---- output -----------------------------------------------------------------------------

def _mark(ok: bool) -> str:
    return "ok" if ok else "DIFF"


def render_report(report: Report) -> str:
    from tabulate import tabulate

    a = report.analysis
    headers = ["Layer", "Type", "Output", "torch", "", "Params", "torch", "", "fvcore flops", "fvcore", ""]
    rows = [
        [c.path, c.type, fmt.shape(c.shape), fmt.shape(c.torch_shape), _mark(c.shape_ok),
         fmt.count(c.params), fmt.count(c.torch_params), _mark(c.params_ok),
         fmt.count(c.flops), fmt.count(c.torch_flops), _mark(c.flops_ok)]
        for c in report.layers
    ]
    table = tabulate(rows, headers, tablefmt="simple", disable_numparse=True,
                     colalign=("left", "left", "right", "right", "left", "right", "right", "left", "right", "right", "left"))
    total, buffers = report.totals
    lines = [
        f"{a.network.name}: calculator vs torch + fvcore, input {fmt.shape(a.input_shape)}, batch {a.batch}",
        "",
        table,
        "",
        f"params: calculator {total.params:,}, torch {fmt.count(total.torch_params)}: {_mark(total.params_ok)}",
        f"non-trainable (BN running statistics): calculator {buffers.params:,}, torch {fmt.count(buffers.torch_params)}: "
        f"{_mark(buffers.params_ok)}",
        f"fvcore flops (one multiply-add = 1; batch {a.batch}): calculator {total.flops:,}, fvcore "
        f"{fmt.count(total.torch_flops)}: {_mark(total.flops_ok)}",
        f"output: calculator {fmt.shape(total.shape)}, torch {fmt.shape(total.torch_shape)}: {_mark(total.shape_ok)}",
        "ops fvcore does not count (0 flops): "
        + (", ".join(f"{op} x{n}" for op, n in sorted(report.unsupported.items())) or "none"),
    ]
    if report.rf is not None:
        lines.append(report.rf.describe())
    if report.ok:
        lines.append("all agree")
    else:
        for check in report.disagreeing:
            lines.append(f"disagrees: {check.path} ({check.type}): {', '.join(check.problems())}")
        if report.rf is not None and not report.rf.ok:
            lines.append(f"disagrees: {report.rf.path}: receptive field")
    return "\n".join(lines) + "\n"


def summary_line(report: Report) -> str:
    a, (total, _) = report.analysis, report.totals
    rf = "" if report.rf is None else (
        f", RF {_hw(report.rf.expected)} " + ("not measured" if report.rf.clipped else _mark(report.rf.ok)))
    verdict = "ok" if report.ok else "DIFF " + ", ".join(
        c.path for c in report.disagreeing) + ("" if report.rf is None or report.rf.ok else " receptive field")
    return (f"{a.network.name}: {verdict} (input {fmt.shape(a.input_shape)}, batch {a.batch}, "
            f"params {total.params:,}, fvcore flops {total.flops:,}{rf})")
