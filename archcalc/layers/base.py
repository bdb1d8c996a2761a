"""What a layer type is: its fields, and the arithmetic it owns.

A layer type is one class registered under its spec name. It declares its fields (these
also generate the JSON Schema) and answers, from its attributes and input shape: the
output shape, trainable parameters, non-trainable values, MACs (archcalc's convention),
the count fvcore would report, the receptive-field step, and the torch module.
Shapes never include the batch: (C, H, W), (F,), or another layout (archcalc.layers.layout).
"""
import math
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping

from .. import fmt
from ..errors import SpecError
from ..kinds import Kind, by_name
from . import layout
from .rf import GLOBAL_RF, RF, merge_rf  # noqa: F401  (the layer modules import them from here)

if TYPE_CHECKING:
    from fractions import Fraction  # exact arithmetic, loaded only when a working is explained

    from .notes import InexactSize  # loaded when a size is not whole

Shape = tuple[int, ...]
Attrs = Mapping[str, Any]
Warn = Callable[["InexactSize"], None]

REQUIRED = object()


class Field:
    """One attribute of a layer in a spec: the kind of its value (with its domain), default and meaning.

    `kind` is a Kind (archcalc.kinds) or the name of one: int, number, bool, pair, padding,
    with `minimum` as its lower bound. `default_from` names the field whose value stands in when
    this one is absent (pooling's stride is its kernel). The loader normalises the value once
    (pairs as (h, w)), so layer code reads it as it is.
    """

    __slots__ = ("kind", "default", "doc", "minimum", "default_from")

    def __init__(self, kind: Kind | str, default: Any = REQUIRED, doc: str = "", minimum: float | None = None,
                 default_from: str | None = None):
        self.kind: Kind = by_name(kind, minimum) if isinstance(kind, str) else kind
        self.default, self.doc, self.minimum, self.default_from = default, doc, minimum, default_from


class LayerType:
    """Base class: a layer with no parameters, no cost and the input's shape."""

    name: ClassVar[str]
    doc: ClassVar[str] = ""
    fields: ClassVar[dict[str, Field]] = {}
    allocates: ClassVar[bool] = True  # False: in place or a view, adds no activation memory
    # What the layer is, for figures and counts: conv, linear, pool, norm, activation, regularisation or shape.
    kind: ClassVar[str] = "shape"
    weight_layer: ClassVar[bool] = False  # counted in "weight layers" and in a network's depth
    # What verify compares its count with: "fvcore" (fvcore_flops against fvcore's count of its module) or
    # "torch" (macs against torch's FlopCounterMode, halved: for ops fvcore has no handle for, as attention).
    counted_by: ClassVar[str] = "fvcore"

    def biases(self, a: Attrs) -> int:
        """The bias values among the parameters (the lectures count weights and biases apart)."""
        return 0
    field_depends_on_size: ClassVar[bool] = False  # its receptive-field step changes with the input size
    returns_input: ClassVar[bool] = False  # its torch module returns the input's own memory (a view, the identity)

    def output_shape(self, a: Attrs, shape: Shape, warn: Warn) -> Shape:
        return shape

    def params(self, a: Attrs, shape: Shape) -> int:
        return 0

    def buffers(self, a: Attrs, shape: Shape) -> int:
        """Non-trainable stored values (BN running statistics)."""
        return 0

    def macs(self, a: Attrs, shape: Shape, out: Shape) -> int:
        """Multiply-accumulates of convolutions and matrix products only (torchvision's _ops)."""
        return 0

    def fvcore_flops(self, a: Attrs, shape: Shape, out: Shape) -> int:
        """What fvcore's default handles count for this op, per image."""
        return self.macs(a, shape, out)

    def activations(self, a: Attrs, shape: Shape, out: Shape) -> int:
        """Values it allocates (the cs231n convention): its output, unless it works in place or as a view."""
        return numel(out) if self.allocates else 0

    def receptive_field(self, a: Attrs, rf: RF, shape: Shape) -> RF:
        return rf

    # ---- training (archcalc.core.training; docs/conventions.md "Training") ----
    saves_input: ClassVar[bool] = False  # autograd keeps its input for the backward
    saves_output: ClassVar[bool] = False  # autograd keeps its output (relu, sigmoid, tanh, softmax)

    def backward_macs(self, a: Attrs, shape: Shape, out: Shape) -> int:
        """MACs of the backward: the gradient of the input and of the weights, each a product the size of the
        forward's (a conv's two transposed convolutions, a linear's two matmuls); where both factors are
        activations (attention), the gradient of each."""
        return 2 * self.macs(a, shape, out)

    def input_grad_macs(self, a: Attrs, shape: Shape, out: Shape) -> int:
        """The part of backward_macs that is the gradient of the input: not run where the input needs none."""
        return self.macs(a, shape, out)

    def saved_values(self, a: Attrs, shape: Shape, out: Shape) -> int:
        """Values (in the activations' dtype) autograd keeps for its backward, per image: its input and/or
        output (the walk counts a tensor kept by two ops once) and what else it keeps in that dtype."""
        return numel(shape) * self.keeps_input(a, shape, out) + numel(out) * self.saves_output

    def returns_input_in_training(self, a: Attrs) -> bool:
        """Its torch module returns the input's own memory in training too (dropout does not)."""
        return self.returns_input

    def keeps_input(self, a: Attrs, shape: Shape, out: Shape) -> bool:
        """Whether autograd keeps its input at this size (saves_input, unless its torch op differs by size)."""
        return self.saves_input

    def saved_fixed_bytes(self, a: Attrs, shape: Shape, out: Shape) -> int:
        """Bytes it keeps per image whose size is the same in every dtype: int64 indices, bool masks, fp32
        statistics per position."""
        return 0

    def saved_batch_bytes(self, a: Attrs, shape: Shape) -> int:
        """Bytes it keeps once per batch, whatever its size (batch norm's fp32 mean and inverse deviation)."""
        return 0

    def param_tensors(self, a: Attrs, shape: Shape) -> int:
        """Parameter tensors (an optimizer keeps a step counter per tensor): a weight, and a bias apart."""
        return 0 if self.params(a, shape) == 0 else 1 + (self.biases(a) > 0)

    def live_bytes(self, a: Attrs, shape: Shape, out: Shape, value_bytes: int) -> int:
        """Bytes its torch module holds at its peak in an inference pass, its input left out."""
        return 0 if self.returns_input else numel(out) * value_bytes

    def torch_module(self, a: Attrs, shape: Shape):  # pragma: no cover - overridden
        raise NotImplementedError(self.name)

    def label(self, a: Attrs) -> str:
        """What a figure writes in the layer's box, e.g. `conv 3x3/2, 64`."""
        return self.name.replace("_", " ")

    def working(self, a: Attrs, shape: Shape, out: Shape, rf: RF = RF()) -> list[str]:
        """The arithmetic of this layer with its numbers filled in, one step a line; `rf` is the input's field."""
        return [same_shape_working(shape, out), *count_working(self, a, shape, out),
                rf_working(rf, self.receptive_field(a, rf, shape))]

    def probe_module(self, module):
        """The receptive-field probe's stand-in for this layer's torch module (archcalc.layers.probe):
        by default the identity, right for every layer that works position by position."""
        from . import probe

        return probe.identity(module)

    # What an imported graph op this type stands for (archcalc.importers): names of torch module
    # classes, of torch functions and tensor methods, and of ONNX op types.
    torch_modules: ClassVar[tuple[str, ...]] = ()
    torch_functions: ClassVar[tuple[str, ...]] = ()
    onnx_ops: ClassVar[tuple[str, ...]] = ()
    # Whether import_fields also reads an op run on the channels-last view of a (C, H, W) tensor
    # (between permute(0, 2, 3, 1) and permute(0, 3, 1, 2)): op.channels_last.
    reads_channels_last: ClassVar[bool] = False
    several_inputs: ClassVar[bool] = False  # its `from` may name several nodes, whose outputs it takes (measured)

    # Other tools' names for it (Keras', the literature's), so that an unknown type gets a "did you mean".
    also_known_as: ClassVar[tuple[str, ...]] = ()

    def import_fields(self, op: Any) -> dict | list[dict] | None:
        """Spec fields of this type for an imported op (archcalc.importers.graph.Op), a list of
        spec nodes when the op stands for several layers, or None when the type does not fit it."""
        return {}


class Registry(dict):
    """The layer types by spec name. The modules named in `later` (the types a convolutional table never
    reads: tokens, windows, ...) are imported on the first lookup of a name not yet registered, or on
    the first listing of every type, so that a CNN's `archcalc table` does not pay for them."""

    def __init__(self) -> None:
        super().__init__()
        self.later: list[str] = []

    def _load_later(self) -> bool:
        import importlib

        pending, self.later = self.later, []
        for module in pending:
            importlib.import_module(module)
        return bool(pending)

    def __missing__(self, name: str) -> LayerType:
        if self._load_later() and name in self:
            return dict.__getitem__(self, name)
        raise KeyError(name)

    def get(self, name, default=None):  # type: ignore[override]
        return dict.get(self, name) or (self[name] if name in self else default)

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name) or (self._load_later() and dict.__contains__(self, name))

    def __iter__(self):
        self._load_later()
        return dict.__iter__(self)

    def __len__(self) -> int:
        self._load_later()
        return dict.__len__(self)

    def keys(self):  # type: ignore[override]
        self._load_later()
        return dict.keys(self)

    def values(self):  # type: ignore[override]
        self._load_later()
        return dict.values(self)

    def items(self):  # type: ignore[override]
        self._load_later()
        return dict.items(self)


REGISTRY = Registry()


def layer_type(name: str) -> LayerType | None:
    """The layer type registered under `name`, None for anything else (a block, a merge, the input)."""
    return REGISTRY.get(name)


def known_as(word: str) -> str | None:
    """The layer type another tool's name stands for: `Dense` -> linear, `BatchNorm2d` -> batch_norm2d
    (case, `_` and `-` aside), None when none does."""
    if not isinstance(word, str):
        return None
    wanted = _plain(word)
    for name, found in REGISTRY.items():
        if wanted == _plain(name) or wanted in map(_plain, found.also_known_as):
            return name
    return None


def _plain(word: str) -> str:
    return word.lower().replace("_", "").replace("-", "")


def is_weight_layer(name: str) -> bool:
    found = REGISTRY.get(name)
    return found is not None and found.weight_layer


def register(cls: type[LayerType]) -> type[LayerType]:
    dict.__setitem__(REGISTRY, cls.name, cls())
    return cls


def torch_nn():
    """torch.nn, imported only when a torch module is actually built."""
    from ..deps import require_torch

    return require_torch().nn


# ---- shared arithmetic ---------------------------------------------------------------

def numel(shape: Shape) -> int:
    return math.prod(shape)


def need_image(name: str, shape: Shape) -> tuple[int, int, int]:
    """The (C, H, W) of a channels-first image; one line for any other layout (archcalc.layers.layout)."""
    return layout.need(name, shape, layout.IMAGE)  # type: ignore[return-value]


def sliding_size(
    size: int, kernel: int, stride: int, pad_before: int, pad_after: int, dilation: int,
    ceil_mode: bool, axis: str, warn: Warn,
) -> int:
    """floor((N + 2P - D(F-1) - 1)/S + 1), with torch's ceil_mode rule; warns when inexact."""
    span = dilation * (kernel - 1) + 1
    padded = size + pad_before + pad_after
    numerator = padded - span
    out = (-(-numerator // stride) if ceil_mode else numerator // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad_before:
        out -= 1  # the last window must start inside the input or its left padding
    if out < 1:  # ceil_mode keeps a first window that overhangs the padded input by less than a stride
        raise SpecError(
            f"kernel {kernel} (span {span} with dilation {dilation}) is larger than the padded "
            f"input {size}+{pad_before + pad_after}={padded} along {axis}"
        )
    if numerator % stride:
        from .notes import InexactSize

        dropped = unread_by_rounding(size, kernel, stride, pad_before, dilation, out)
        warn(InexactSize(axis, size, pad_before + pad_after, span, stride, ceil_mode, out, dropped))
    return out


def unread_by_rounding(size: int, kernel: int, stride: int, pad_before: int, dilation: int, out: int) -> tuple[int, ...]:
    """Input indices no window reads that one more window would read: what the rounding drops
    (a pixel that the stride skips anyway, as a 1x1 stride-2 convolution does, is not dropped)."""
    start = out * stride  # the next window, in padded coordinates
    first = max(0, -(-(pad_before - start) // dilation))
    last = min(kernel - 1, (pad_before + size - 1 - start) // dilation)
    first = max(first, last - MAX_DROPPED + 1)  # the taps nearest the end, where the rounding drops pixels
    taps = (start + j * dilation for j in range(first, last + 1))
    return tuple(p - pad_before for p in taps if not _read_by_a_window(p, kernel, stride, dilation, out))


MAX_DROPPED = 4096  # input pixels looked at past the last window


def _read_by_a_window(p: int, kernel: int, stride: int, dilation: int, out: int) -> bool:
    """Whether p = i*stride + j*dilation for a window i < out and a tap j < kernel (solved, not searched)."""
    low = max(0, -(-(p - (out - 1) * stride) // dilation))  # taps j that keep i within 0 .. out - 1
    high = min(kernel - 1, p // dilation)
    if low > high:
        return False
    g = math.gcd(dilation, stride)
    if p % g:
        return False
    period = stride // g  # j*dilation = p (mod stride) holds on one residue class of j mod period
    j0 = (p // g) * pow(dilation // g, -1, period) % period if period > 1 else 0
    return low + (j0 - low) % period <= high


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow/Keras 'same': output ceil(N/S), extra padding on the bottom/right."""
    span = dilation * (kernel - 1) + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


def pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)  # type: ignore[return-value]


def resolve_padding(a: Attrs, shape: Shape, stride: tuple[int, int], dilation: tuple[int, int]):
    """((top, bottom), (left, right)) from an int, [h, w], 'valid' or 'same'."""
    padding = a["padding"]
    kernel = pair(a["kernel"])
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        return tuple(same_padding(n, k, s, d) for n, k, s, d in zip(shape[1:], kernel, stride, dilation))
    ph, pw = pair(padding)
    return (ph, ph), (pw, pw)


def window_output(name: str, a: Attrs, shape: Shape, warn: Warn, ceil_mode: bool = False) -> tuple[int, int]:
    need_image(name, shape)
    kernel, stride, dilation = pair(a["kernel"]), pair(a["stride"] or a["kernel"]), pair(a.get("dilation", 1))
    pads = resolve_padding(a, shape, stride, dilation)
    return tuple(  # type: ignore[return-value]
        sliding_size(n, k, s, p[0], p[1], d, ceil_mode, axis, warn)
        for n, k, s, p, d, axis in zip(shape[1:], kernel, stride, pads, dilation, ("H", "W"))
    )


def window_rf(a: Attrs, rf: RF, shape: Shape) -> RF:
    kernel, stride, dilation = pair(a["kernel"]), pair(a["stride"] or a["kernel"]), pair(a.get("dilation", 1))
    (top, _), (left, _) = resolve_padding(a, shape, stride, dilation)
    return rf.window(kernel, stride, dilation, (top, left))


# ---- workings: the arithmetic above, written out with its numbers --------------------

def same_shape_working(shape: Shape, out: Shape) -> str:
    return f"output = input: {fmt.shape(out)}" if out == shape else f"output {fmt.shape(shape)} -> {fmt.shape(out)}"


def count_working(layer: LayerType, a: Attrs, shape: Shape, out: Shape) -> list[str]:
    """Parameters and MACs when the layer has neither: one line saying so."""
    params, buffers, macs = layer.params(a, shape), layer.buffers(a, shape), layer.macs(a, shape, out)
    if params or buffers or macs:  # pragma: no cover - such layers write their own working
        return [f"params = {params:,}", f"MACs = {macs:,}"]
    return ["params = 0, MACs = 0 (not counted)"]


def _number(x: "Fraction | int") -> str:
    from fractions import Fraction  # exact arithmetic, loaded only when a working is explained
    x = Fraction(x)
    if x.denominator == 1:
        return f"{x.numerator:,}"
    decimal = float(x)
    return f"{decimal:g}" if Fraction(decimal) == x else f"{x.numerator}/{x.denominator}"


def axes_lines(per_axis: list[str]) -> list[str]:
    """'H: ...' and 'W: ...' with the same arithmetic read as one 'H, W: ...'."""
    if len(per_axis) == 2 and per_axis[0].startswith("H: ") and per_axis[1] == "W: " + per_axis[0][3:]:
        return ["H, W: " + per_axis[0][3:]]
    return per_axis


SLIDING_FORMULA = "out = (N + 2P - D(F-1) - 1)/S + 1"


def window_working(a: Attrs, shape: Shape, out: Shape, ceil_mode: bool = False) -> list[str]:
    """Each spatial output size of a sliding window, as sliding_size computes it."""
    from fractions import Fraction  # exact arithmetic, loaded only when a working is explained
    kernel, stride, dilation = pair(a["kernel"]), pair(a["stride"] or a["kernel"]), pair(a.get("dilation", 1))
    pads = resolve_padding(a, shape, stride, dilation)
    lines = []
    for n, k, s, (before, after), d, o, axis in zip(shape[1:], kernel, stride, pads, dilation, out[1:], "HW"):
        padding = f"2×{before}" if before == after else f"{before} + {after}"
        exact = Fraction(n + before + after - d * (k - 1) - 1, s) + 1
        line = f"{axis}: ({n} + {padding} - {d}×({k} - 1) - 1)/{s} + 1 = {_number(exact)}"
        if exact.denominator != 1:
            rounded = math.ceil(exact) if ceil_mode else math.floor(exact)
            line += f" -> {'ceil' if ceil_mode else 'floor'} {rounded}"
            if rounded != o:
                line += f" -> {o} (the last window must start inside the input)"
        lines.append(line)
    return [SLIDING_FORMULA, *axes_lines(lines)]


def rf_working(before: RF, after: RF, spans: tuple[int, int] | None = None,
               strides: "tuple[Fraction, Fraction] | None" = None) -> str:
    """The receptive-field step: size + (span - 1) x jump, and the new jump."""
    if after.size is None:
        return "RF: global (every output sees the whole input)" + (" already" if before.size is None else "")
    if after == before:
        return f"RF unchanged: {after.label()}, jump {_jump(after)}"
    if spans is None or strides is None or before.size is None:
        return f"RF {before.label()} -> {after.label()}, jump {_jump(after)}"
    per_axis = [f"{axis}: {s} + ({k} - 1)×{_number(j)} = {n}, jump {_number(j)}×{_number(st)} = {_number(nj)}"
                for axis, s, k, j, st, n, nj in zip("HW", before.size, spans, before.jump, strides, after.size, after.jump)]
    return "RF " + "; ".join(axes_lines(per_axis))


def _jump(rf: RF) -> str:
    h, w = rf.jump
    return _number(h) if h == w else f"{_number(h)}x{_number(w)}"


def window_spans(a: Attrs) -> "tuple[tuple[int, int], tuple[Fraction, Fraction]]":
    """The span D(K-1)+1 and the stride of each axis, as window_rf grows the field."""
    from fractions import Fraction  # exact arithmetic, loaded only when a working is explained
    kernel, dilation = pair(a["kernel"]), pair(a.get("dilation", 1))
    spans = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    return spans, tuple(Fraction(s) for s in pair(a["stride"] or a["kernel"]))  # type: ignore[return-value]


def window_label(word: str, a: Attrs) -> str:
    """`conv 3x3/2`, `maxpool 3x3/2`: the kernel, and the stride when it is not 1."""
    kh, kw = pair(a["kernel"])
    stride = pair(a["stride"] or a["kernel"])
    text = f"{word} {kh}x{kw}"
    if stride != (1, 1):
        text += f"/{stride[0]}" if stride[0] == stride[1] else f"/{stride[0]}x{stride[1]}"
    return text


# ---- reading imported ops (archcalc.importers) -------------------------------------

def compact_pair(value: Any) -> int | list[int]:
    """A spec pair from an int or a sequence of two: an int when both agree."""
    h, w = pair(value) if isinstance(value, int) else tuple(int(v) for v in value)
    return h if h == w else [h, w]


def spec_padding(sides: tuple[int, int, int, int], op: Any, kernel: Any, stride: Any, dilation: Any = 1) -> Any:
    """A spec padding field from (top, bottom, left, right), an explicit pad before the op added.

    Unequal sides are accepted only as the TensorFlow 'same' rule for this input size.
    """
    top, bottom, left, right = (s + e for s, e in zip(sides, op.pad))
    if top == bottom and left == right:
        return compact_pair((top, left))
    shape = need_image(op.target, op.input)
    same = tuple(same_padding(n, k, s, d) for n, k, s, d in zip(shape[1:], pair(kernel), pair(stride), pair(dilation)))
    if same == ((top, bottom), (left, right)):
        return "same"
    raise SpecError(f"padding top {top}, bottom {bottom}, left {left}, right {right} is neither symmetric "
                    f"nor the 'same' rule for input {fmt.shape(shape)}")
