"""Shape-only and elementwise layers: activations, dropout, flatten, permute, reshape, softmax, identity."""
from __future__ import annotations

import functools
import math
from typing import Any

from .. import fmt
from ..errors import SpecError
from ..kinds import Choice, Integer, Ints, Number
from . import layout
from .base import (
    GLOBAL_RF,
    RF,
    Attrs,
    Field,
    LayerType,
    Shape,
    Warn,
    numel,
    register,
    rf_working,
    torch_nn,
)


class _Elementwise(LayerType):
    """Activations run in place (as torchvision's inplace=True): no new activation memory."""

    allocates = False
    torch_class = ""
    kind = "activation"
    also_modules: tuple[str, ...] = ()
    reads_channels_last = True  # value by value: the layout does not matter

    def torch_module(self, a: Attrs, shape: Shape):
        return getattr(torch_nn(), self.torch_class)()


def _activation(spec_name: str, torch_class: str, description: str, functions: tuple[str, ...], onnx: tuple[str, ...],
                base: type[_Elementwise] = _Elementwise) -> None:
    register(type(torch_class, (base,), {
        "name": spec_name, "torch_class": torch_class,
        "doc": f"{description}, elementwise; no MACs, fvcore counts 0.",
        "torch_modules": (torch_class, *base.also_modules), "torch_functions": functions, "onnx_ops": onnx,
        "saves_output": spec_name in _KEEP_OUTPUT, "saves_input": spec_name in _KEEP_INPUT,
    }))


# What autograd keeps of an activation for its backward: its output, or its input.
_KEEP_OUTPUT = ("relu", "tanh", "sigmoid")
_KEEP_INPUT = ("relu6", "gelu", "silu", "hardswish", "hardsigmoid")


class _ReLU6(_Elementwise):
    """Also torch's hardtanh and clamp, and ONNX's Clip, between 0 and 6."""

    also_modules = ("Hardtanh",)

    def import_fields(self, op: Any) -> dict | None:
        if op.target in (self.torch_class, "relu6"):
            return {}
        a = op.attrs
        low, high = a.get("min", a.get("min_val")), a.get("max", a.get("max_val"))
        if op.origin == "onnx" and len(op.values) == 2:
            low, high = op.values
        return {} if (low, high) == (0, 6) or _flat(low, high) == [0.0, 6.0] else None


def _flat(*values: Any) -> list | None:
    try:
        return [float(v[0] if isinstance(v, list) else v) for v in values]
    except (TypeError, ValueError, IndexError):
        return None


class _HardSigmoid(_Elementwise):
    def import_fields(self, op: Any) -> dict | None:
        if op.origin != "onnx":
            return {}
        return {} if abs(op.attrs.get("alpha", 0.2) - 1 / 6) < 1e-6 and abs(op.attrs.get("beta", 0.5) - 0.5) < 1e-6 else None


class _GELU(_Elementwise):
    def import_fields(self, op: Any) -> dict | None:
        return {} if op.attrs.get("approximate", "none") == "none" else None


class _Identity(_Elementwise):
    """Its torch module hands on the input itself: a shape-keeping layer, not an activation."""

    kind = "shape"
    returns_input = True


for _spec, _torch, _text, _functions, _onnx, _base in [
    ("relu", "ReLU", "max(0, x)", ("relu", "relu_"), ("Relu",), _Elementwise),
    ("relu6", "ReLU6", "min(max(0, x), 6)", ("relu6", "hardtanh", "clamp", "clip"), ("Clip",), _ReLU6),
    ("tanh", "Tanh", "tanh", ("tanh",), ("Tanh",), _Elementwise),
    ("sigmoid", "Sigmoid", "logistic sigmoid", ("sigmoid",), ("Sigmoid",), _Elementwise),
    ("gelu", "GELU", "Gaussian error linear unit", ("gelu",), ("Gelu",), _GELU),
    ("silu", "SiLU", "x*sigmoid(x) (swish)", ("silu",), ("Swish",), _Elementwise),
    ("hardswish", "Hardswish", "hard swish", ("hardswish",), ("HardSwish",), _Elementwise),
    ("hardsigmoid", "Hardsigmoid", "hard sigmoid, relu6(x + 3)/6", ("hardsigmoid",), ("HardSigmoid",), _HardSigmoid),
    ("identity", "Identity", "the identity", (), ("Identity",), _Identity),
]:
    _activation(_spec, _torch, _text, _functions, _onnx, _base)



@register
class Dropout(_Elementwise):
    name = "dropout"

    def saved_values(self, a: Attrs, shape: Shape, out: Shape) -> int:
        """On the CPU, the input times a mask of the input's dtype: the product keeps the mask (p = 0: nothing)."""
        return numel(shape) if a["p"] > 0 else 0

    def returns_input_in_training(self, a: Attrs) -> bool:
        return a["p"] == 0  # torch returns the input itself

    returns_input = True
    doc = "Dropout: the identity at inference; no memory, no cost."
    fields = {"p": Field(Number(minimum=0, below=1), 0.5, "probability of dropping a value, in [0, 1)")}
    kind = "regularisation"

    def label(self, a: Attrs) -> str:
        return f"dropout {a['p']:g}"

    def torch_module(self, a: Attrs, shape: Shape):
        return torch_nn().Dropout(a["p"])

    torch_modules = ("Dropout", "Dropout2d")
    torch_functions = ("dropout", "dropout2d")
    onnx_ops = ("Dropout",)

    def import_fields(self, op: Any) -> dict | None:
        p = op.attrs.get("p", op.attrs.get("ratio", op.values[0] if op.values else 0.5))
        return {"p": float(p[0] if isinstance(p, list) else p)}


@register
class StochasticDepth(_Elementwise):
    name = "stochastic_depth"
    returns_input = True
    doc = "Drops a residual branch per sample in training; the identity at inference."
    fields = {"p": Field(Number(minimum=0, maximum=1), 0.0, "probability of dropping the branch, in [0, 1]")}
    torch_class = "Identity"
    kind = "regularisation"
    torch_modules = ("StochasticDepth",)  # torchvision.ops.StochasticDepth
    torch_functions = ("stochastic_depth",)  # torchvision.ops.stochastic_depth(input, p, mode, training)

    def import_fields(self, op: Any) -> dict | None:
        p = op.attrs.get("p", op.attrs.get("args", (None,))[0] if op.attrs.get("args") else None)
        return {"p": float(p)} if isinstance(p, (int, float)) and not isinstance(p, bool) else {}


@register
class Flatten(LayerType):
    name = "flatten"
    returns_input = True
    doc = ("Axes `start` to `end` (of the image, the batch left out: torch's flatten(start + 1, end + 1)) as one "
           "(a view: no new memory); by default all of them, CxHxW to C*H*W. Each element keeps the field of its "
           "position.")
    fields = {"start": Field(Integer(), 0, "first axis flattened (0: the first after the batch; negative from the end)"),
              "end": Field(Integer(), -1, "last axis flattened, included (-1: the last)")}
    allocates = False

    def output_shape(self, a: Attrs, shape: Shape, warn: Warn) -> Shape:
        first, last = (axis_index(self.name, key, a[key], len(shape)) for key in ("start", "end"))
        if first > last:
            raise SpecError(f"flatten start {a['start']} comes after end {a['end']} on {layout.describe(shape)}")
        return reshaped((*shape[:first], numel(shape[first:last + 1]), *shape[last + 1:]))

    def label(self, a: Attrs) -> str:
        return "flatten" if (a["start"], a["end"]) == (0, -1) else f"flatten {a['start']}..{a['end']}"

    def working(self, a: Attrs, shape: Shape, out: Shape, rf: RF = RF()) -> list[str]:
        if len(out) == 1:
            product = "×".join(str(d) for d in shape)
            first = f"output = {product} = {out[0]:,} features"
        else:
            first = f"output {fmt.shape(shape)} -> {fmt.shape(out)}"
        return [first, "params = 0, MACs = 0 (a view)", rf_working(rf, self.receptive_field(a, rf, shape))]

    def probe_module(self, module):
        from . import probe

        return probe.keep(module)

    def torch_module(self, a: Attrs, shape: Shape):
        end = a["end"] + 1 if a["end"] >= 0 else a["end"]
        return torch_nn().Flatten(a["start"] + 1 if a["start"] >= 0 else a["start"], end)

    torch_modules = ("Flatten",)
    torch_functions = ("flatten", "view", "reshape")
    onnx_ops = ("Flatten", "Reshape")

    def import_fields(self, op: Any) -> dict | None:
        """Flatten from dimension 1 on, or a view / reshape to one flat dimension per image."""
        if op.target == "Flatten" and op.origin == "module":  # nn.Flatten(start_dim, end_dim)
            start, end = op.attrs["start_dim"], op.attrs["end_dim"]
            if start < 1 or not (end == -1 or end >= start):
                return None
            fields = {"start": start - 1, "end": end - 1 if end > 0 else end}
            return {k: v for k, v in fields.items() if v != {"start": 0, "end": -1}[k]}
        if op.target == "flatten" and op.origin != "onnx":  # torch.flatten(x, start_dim, end_dim)
            start, end = op.attrs.get("start_dim", 0), op.attrs.get("end_dim", -1)
            if not isinstance(start, int) or not isinstance(end, int) or start % (len(op.input) + 1) == 0:
                return None  # the batch axis flattened too
            fields = {"start": start - 1 if start > 0 else start, "end": end - 1 if end > 0 else end}
            return {k: v for k, v in fields.items() if v != {"start": 0, "end": -1}[k]}
        if op.target == "Flatten":
            return {} if op.attrs.get("axis", 1) == 1 else None
        return {} if op.output is not None and len(op.output) == 1 else None


def axis_index(name: str, key: str, axis: int, rank: int) -> int:
    """An axis of a per-image shape, counted from the end when negative (torch's rule, the batch left out)."""
    if not -rank <= axis < rank:
        raise SpecError(f"{name} {key} {axis} is not an axis of a {rank}-axis shape (0 to {rank - 1}, or -{rank} to -1; "
                        "the batch is left out)")
    return axis % rank


def reshaped(dims: Shape, named: str | None = None) -> Shape:
    """The layout of a reshaped tensor: `named` if given; else a flat vector (rank 1), tokens (rank 2) or a
    tensor (an image or a grid only when named: a reshape cannot tell them apart)."""
    if named is not None:
        return layout.laid(named, dims)
    return layout.laid(layout.BY_RANK[len(dims)] if len(dims) < 3 else layout.TENSOR, dims)


@register
class Permute(LayerType):
    name = "permute"
    doc = ("The axes reordered, as torch's permute with the batch left out: `dims` [1, 2, 0] takes CxHxW to HxWxC, "
           "[2, 0, 1] back. The builder makes the result contiguous (a new tensor), so that every later reshape and "
           "flatten is a view. Each element keeps its field.")
    fields = {"dims": Field(Ints(0, "axes"), doc="the new order of the axes, the batch left out ([1, 2, 0]: CxHxW to HxWxC)")}

    def output_shape(self, a: Attrs, shape: Shape, warn: Warn) -> Shape:
        dims = a["dims"]
        if sorted(dims) != list(range(len(shape))):
            raise SpecError(f"permute dims {list(dims)} is not an order of the {len(shape)} axes of "
                            f"{layout.describe(shape)} (the batch is left out: [1, 2, 0] takes CxHxW to HxWxC)")
        return layout.laid(self.layout_after(shape, dims), (shape[d] for d in dims))

    @staticmethod
    def layout_after(shape: Shape, dims: tuple[int, ...]) -> layout.Layout:
        """Channels moved last or first make a grid or an image; an image or grid whose channels stay put stays
        one; anything else of rank 3 is a tensor (rank 1 and 2 keep theirs)."""
        before = layout.layout_of(shape)
        if before == layout.IMAGE:
            return layout.IMAGE if dims[0] == 0 else layout.GRID if dims[2] == 0 else layout.TENSOR
        if before == layout.GRID:
            return layout.IMAGE if dims[0] == 2 else layout.GRID if dims[2] == 2 else layout.TENSOR
        return before if len(shape) < 3 else layout.TENSOR

    def receptive_field(self, a: Attrs, rf: RF, shape: Shape) -> RF:
        """H and W swapped (an image's [0, 2, 1], a grid's [1, 0, 2]) swap the field's axes."""
        dims = a["dims"]
        before = layout.SPATIAL.get(layout.layout_of(shape))
        after = layout.SPATIAL.get(self.layout_after(shape, dims))
        if before is None or after is None:
            return rf
        return rf.swapped() if (dims[after[0]], dims[after[1]]) == (before[1], before[0]) else rf

    def label(self, a: Attrs) -> str:
        return f"permute {','.join(str(d) for d in a['dims'])}"

    def probe_module(self, module):
        from . import probe

        return probe.keep(module)

    def torch_module(self, a: Attrs, shape: Shape):
        return _torch_classes()[0](a["dims"])

    torch_modules = ("AxesPermute",)  # the module torch_module builds
    torch_functions = ("permute",)  # the importers' permutes and transposes that are not a channels-last chain

    def import_fields(self, op: Any) -> dict | None:
        if op.origin == "call":
            return {"dims": list(op.attrs["dims"])}
        return {"dims": list(op.attrs["dims"])} if op.origin == "module" else None


@register
class Reshape(LayerType):
    name = "reshape"
    returns_input = True
    allocates = False
    doc = ("The values read in a new shape, as torch's reshape with the batch left out (one size may be -1); a view "
           "(no new memory). The result is a flat vector (one axis), tokens LxD (two) or a tensor, unless `layout` "
           "names it (a channels-last `grid` HxWxC, an `image` CxHxW). Each element keeps its field.")
    fields = {"shape": Field(Ints(-1, "sizes"), doc="the new sizes, the batch left out; one may be -1"),
              "layout": Field(Choice(*layout.LAYOUTS), None, "what the new axes are (default: by the rank, "
                                                                 "a tensor for three or more)")}

    def output_shape(self, a: Attrs, shape: Shape, warn: Warn) -> Shape:
        sizes, total = list(a["shape"]), numel(shape)
        unknown = [i for i, n in enumerate(sizes) if n == -1]
        if 0 in sizes or len(unknown) > 1:
            raise SpecError(f"reshape sizes {sizes} must be positive, with at most one -1")
        known = math.prod(n for n in sizes if n != -1)
        if unknown and total % known == 0:
            sizes[unknown[0]] = total // known
        if math.prod(sizes) != total:
            raise SpecError(f"reshape to {sizes} does not hold the {total:,} values of {layout.describe(shape)}")
        return reshaped(tuple(sizes), a["layout"])

    def label(self, a: Attrs) -> str:
        return f"reshape {'x'.join(str(d) for d in a['shape'])}"

    def probe_module(self, module):
        from . import probe

        return probe.keep(module)

    def torch_module(self, a: Attrs, shape: Shape):
        return _torch_classes()[1](a["shape"])

    torch_modules = ("AxesReshape",)
    torch_functions = ("view", "reshape", "flatten", "unflatten")  # asked after `flatten`, which takes a flat result
    onnx_ops = ("Reshape",)

    def import_fields(self, op: Any) -> dict | None:
        if op.origin == "module":
            return {"shape": list(op.attrs["shape"])}
        named = op.attrs.get("layout") if isinstance(op.attrs, dict) else None  # what the importer saw read it
        return ({"shape": list(op.output), **({"layout": named} if named else {})}) if op.output else None


@functools.cache
def _torch_classes():
    """The modules of permute and reshape, the batch axis kept in front."""
    nn = torch_nn()

    class AxesPermute(nn.Module):
        def __init__(self, dims):
            super().__init__()
            self.dims = tuple(dims)

        def forward(self, x):
            return x.permute(0, *(d + 1 for d in self.dims)).contiguous()

        def extra_repr(self) -> str:
            return f"dims={list(self.dims)}"

    class AxesReshape(nn.Module):
        def __init__(self, shape):
            super().__init__()
            self.shape = tuple(shape)

        def forward(self, x):
            return x.view(x.shape[0], *self.shape)

        def extra_repr(self) -> str:
            return f"shape={list(self.shape)}"

    return AxesPermute, AxesReshape


@register
class Softmax(LayerType):
    name = "softmax"
    saves_output = True
    kind = "activation"
    doc = ("Softmax over one axis (`axis`, the batch left out: 0 is an image's channels, -1 the last axis; a new "
           "tensor; no MACs, fvcore counts 0). Over the features of a position (an image's channels, a grid's or "
           "a token's last axis) the field stays; over anything else every output sees the whole input.")
    fields = {"axis": Field(Integer(), 0, "the axis, the batch left out (negative from the end)")}

    def output_shape(self, a: Attrs, shape: Shape, warn: Warn) -> Shape:
        axis_index(self.name, "axis", a["axis"], len(shape))
        return shape

    def receptive_field(self, a: Attrs, rf: RF, shape: Shape) -> RF:
        features = {layout.IMAGE: 0, layout.GRID: 2, layout.TOKENS: 1}.get(layout.layout_of(shape))
        return rf if features == a["axis"] % len(shape) else GLOBAL_RF

    def label(self, a: Attrs) -> str:
        return "softmax" if a["axis"] == 0 else f"softmax axis {a['axis']}"

    def torch_module(self, a: Attrs, shape: Shape):
        return torch_nn().Softmax(dim=a["axis"] + 1 if a["axis"] >= 0 else a["axis"])

    torch_modules = ("Softmax",)
    torch_functions = ("softmax",)
    onnx_ops = ("Softmax",)

    def import_fields(self, op: Any) -> dict | None:
        dim = op.attrs.get("axis", -1) if op.origin == "onnx" else op.attrs.get("dim")
        if dim is None:
            return None
        rank = len(op.input) + 1
        if not -rank <= dim < rank or dim % rank == 0:
            return None  # (over the batch: not a layer of one image)
        axis = dim % rank - 1
        return {} if axis == 0 else {"axis": axis}
