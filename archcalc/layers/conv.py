"""Convolutions and fully connected layers: the only layers that count MACs."""
from __future__ import annotations

from typing import Any

from ..deps import require_torch
from ..errors import SpecError
from . import layout
from .base import (
    GLOBAL_RF,
    REGISTRY,
    RF,
    Attrs,
    Field,
    LayerType,
    Shape,
    Warn,
    axes_lines,
    compact_pair,
    need_image,
    numel,
    pair,
    register,
    resolve_padding,
    rf_working,
    spec_padding,
    torch_nn,
    window_label,
    window_output,
    window_rf,
    window_spans,
    window_working,
)

_CONV_FIELDS = {
    "out": Field("int", doc="output channels", minimum=1),
    "kernel": Field("pair", doc="kernel size, int or [h, w]", minimum=1),
    "stride": Field("pair", 1, minimum=1),
    "padding": Field("padding", 0, doc="int, [h, w], 'valid' or 'same' (TensorFlow rule: output ceil(N/S))"),
    "dilation": Field("pair", 1, minimum=1),
    "groups": Field("int", 1, minimum=1),
    "bias": Field("bool", True),
}
_CONNECTIONS = Field("table", None, doc="per output channel, the input channels it reads (a fixed connection table, "
                     "as LeNet-5's C3); absent: every channel of its group")


def _check_groups(a: Attrs, in_channels: int) -> None:
    groups, out = a["groups"], a["out"]
    if groups < 1 or in_channels % groups or out % groups:
        raise SpecError(
            f"groups={groups} must divide both the input channels ({in_channels}) "
            f"and the output channels ({out})"
        )


def _conv_label(word: str, a: Attrs) -> str:
    """`conv 3x3/2, 64`, with `d2` for a dilation and `g32` for groups."""
    text = f"{window_label(word, a)}, {a['out']}"
    dilation = pair(a["dilation"])
    if dilation != (1, 1):
        text += f", d{dilation[0]}" if dilation[0] == dilation[1] else f", d{dilation[0]}x{dilation[1]}"
    return text + (f", g{a['groups']}" if a["groups"] > 1 else "")


def _weights_working(a: Attrs, cin: int, cout_per_group: int | None, params: int) -> str:
    """params = Cout x (Cin/g) x Kh x Kw + bias, numbers filled in (transposed: Cin x Cout/g x ...)."""
    kh, kw = pair(a["kernel"])
    g = a["groups"]
    bias = f" + {a['out']}" if a["bias"] else ""
    if cout_per_group is None:
        per_group = f"({cin}/{g})" if g > 1 else f"{cin}"
        return f"params = Cout×(Cin/g)×Kh×Kw + bias = {a['out']}×{per_group}×{kh}×{kw}{bias} = {params:,}"
    per_group = f"({a['out']}/{g})" if g > 1 else f"{a['out']}"
    return f"params = Cin×(Cout/g)×Kh×Kw + bias = {cin}×{per_group}×{kh}×{kw}{bias} = {params:,}"
def _check_connections(a: Attrs, in_channels: int) -> None:
    table = a["connections"]
    if table is None:
        return
    if a["groups"] != 1:
        raise SpecError(f"connections and groups={a['groups']} exclude each other: the table says which channels each output reads")
    if len(table) != a["out"]:
        raise SpecError(f"connections has {len(table)} rows, one per output channel is needed ({a['out']})")
    wide = sorted({c for row in table for c in row if c >= in_channels})
    if wide:
        raise SpecError(f"connections name input channels {wide}, the input has {in_channels} (0 to {in_channels - 1})")


def _kernel_volume(a: Attrs, in_channels: int) -> int:
    """Weights per output channel (on average, for a connection table: the total is what counts)."""
    kh, kw = pair(a["kernel"])
    return in_channels // a["groups"] * kh * kw


def _weights(a: Attrs, in_channels: int) -> int:
    """Weights of the whole layer: out x kernel volume, or the kernel area per connection of a table."""
    if a.get("connections") is None:
        return a["out"] * _kernel_volume(a, in_channels)
    kh, kw = pair(a["kernel"])
    return _connections(a) * kh * kw


def _connections(a: Attrs) -> int:
    """The input channels a connection table's output channels read, summed over them."""
    return sum(len(row) for row in a["connections"])


@register
class Conv2d(LayerType):
    name = "conv2d"
    saves_input = True  # the gradient of the weights needs it
    also_known_as = ("conv", "convolution", "Convolution2D")
    doc = ("2-D convolution. MACs = Cout*Hout*Wout*(Cin/groups)*Kh*Kw; bias not counted. With `connections`, "
           "output channel o reads only the channels of row o: weights = Kh*Kw*(connections in the table).")
    fields = {**_CONV_FIELDS, "connections": _CONNECTIONS}
    kind = "conv"
    weight_layer = True

    def biases(self, a: Attrs) -> int:
        return a["out"] if a["bias"] else 0

    def label(self, a: Attrs) -> str:
        return _conv_label("conv", a)

    def working(self, a: Attrs, shape: Shape, out: Shape, rf: RF = RF()) -> list[str]:
        kh, kw = pair(a["kernel"])
        g = a["groups"]
        per_group = f"({shape[0]}/{g})" if g > 1 else f"{shape[0]}"
        return [
            *window_working(a, shape, out),
            _weights_working(a, shape[0], None, self.params(a, shape)),
            f"MACs = Cout×Hout×Wout×(Cin/g)×Kh×Kw = {out[0]}×{out[1]}×{out[2]}×{per_group}×{kh}×{kw} "
            f"= {self.macs(a, shape, out):,}",
            rf_working(rf, self.receptive_field(a, rf, shape), *window_spans(a)),
        ]

    def output_shape(self, a: Attrs, shape: Shape, warn: Warn) -> Shape:
        channels, _, _ = need_image(self.name, shape)
        _check_groups(a, channels)
        _check_connections(a, channels)
        return (a["out"], *window_output(self.name, a, shape, warn))

    def params(self, a: Attrs, shape: Shape) -> int:
        return _weights(a, shape[0]) + (a["out"] if a["bias"] else 0)

    def macs(self, a: Attrs, shape: Shape, out: Shape) -> int:
        return out[1] * out[2] * _weights(a, shape[0])

    def receptive_field(self, a: Attrs, rf: RF, shape: Shape) -> RF:
        return window_rf(a, rf, shape)

    # A connection table's pieces (table_conv) each keep their own copy of the channels they read, and the
    # copies' int64 channel indices (once per batch); the input itself is kept by none.
    def keeps_input(self, a: Attrs, shape: Shape, out: Shape) -> bool:
        return a["connections"] is None

    def saved_values(self, a: Attrs, shape: Shape, out: Shape) -> int:
        if a["connections"] is None:
            return super().saved_values(a, shape, out)
        return _connections(a) * shape[1] * shape[2]

    def saved_batch_bytes(self, a: Attrs, shape: Shape) -> int:
        return 0 if a["connections"] is None else 8 * _connections(a)  # an int64 index per channel read

    def param_tensors(self, a: Attrs, shape: Shape) -> int:
        """A weight and a bias per piece of a connection table (one convolution per output channel)."""
        whole = super().param_tensors(a, shape)
        return whole if a["connections"] is None else len(a["connections"]) * whole

    def live_bytes(self, a: Attrs, shape: Shape, out: Shape, value_bytes: int) -> int:
        (top, bottom), (left, right) = resolve_padding(a, shape, pair(a["stride"]), pair(a["dilation"]))
        padded = 0 if top == bottom and left == right else shape[0] * (shape[1] + top + bottom) * (shape[2] + left + right)
        return (numel(out) + padded) * value_bytes  # an asymmetric padding is a padded copy (ZeroPad2d)

    def probe_module(self, module):
        from . import probe

        return probe.window_sum(module)

    def torch_module(self, a: Attrs, shape: Shape):
        nn = torch_nn()
        stride, dilation = pair(a["stride"]), pair(a["dilation"])
        (top, bottom), (left, right) = resolve_padding(a, shape, stride, dilation)
        symmetric = top == bottom and left == right
        if a["connections"] is not None:
            conv = table_conv(a["connections"], a["kernel"], stride, (top, left) if symmetric else 0, dilation, a["bias"])
            return conv if symmetric else nn.Sequential(nn.ZeroPad2d((left, right, top, bottom)), conv)
        conv = nn.Conv2d(
            shape[0], a["out"], pair(a["kernel"]), stride, (top, left) if symmetric else 0,
            dilation, a["groups"], a["bias"],
        )
        if symmetric:
            return conv
        return nn.Sequential(nn.ZeroPad2d((left, right, top, bottom)), conv)

    # TableConv2d: table_conv's module, one Conv2d per output channel; a linear layer on the channels
    # of a permuted (channels-last) tensor is a 1x1 convolution
    torch_modules = ("Conv2d", "TableConv2d", "Linear")
    torch_functions = ("conv2d", "linear")
    onnx_ops = ("Conv", "Gemm", "MatMul")
    reads_channels_last = True

    def import_fields(self, op: Any) -> dict | None:
        if op.target in Linear.torch_modules + Linear.torch_functions + Linear.onnx_ops:
            return _pointwise_fields(op)
        if op.channels_last:
            return None
        if op.origin == "module" and op.target == "TableConv2d":
            return _table_fields(op)
        if op.origin == "module":
            m = op.attrs
            if m["padding_mode"] != "zeros":
                return None
            kernel, stride, dilation, padding = m["kernel_size"], m["stride"], m["dilation"], m["padding"]
            out, groups, bias = m["out_channels"], m["groups"], m["bias"] is not None
        elif op.origin == "call" and op.weights:  # F.conv2d(x, self.weight, self.bias, ...)
            a, weight = op.attrs, op.weights[0]
            kernel, stride, dilation, padding = weight[2:], a.get("stride", 1), a.get("dilation", 1), a.get("padding", 0)
            out, groups, bias = weight[0], a.get("groups", 1), len(op.weights) > 1
        elif op.origin == "onnx":
            a, weight = op.attrs, op.weights[0]
            kernel, stride, dilation = a.get("kernel_shape", weight[2:]), a.get("strides", 1), a.get("dilations", 1)
            padding = _onnx_padding(a)
            out, groups, bias = weight[0], a.get("group", 1), len(op.weights) > 1
        else:
            return None
        if isinstance(padding, str) and any(op.pad):
            return None
        if not isinstance(padding, str):
            top, left = (padding, padding) if isinstance(padding, int) else padding[:2]
            bottom, right = (top, left) if isinstance(padding, int) or len(padding) == 2 else padding[2:]
            padding = spec_padding((top, bottom, left, right), op, kernel, stride, dilation)
        return {"out": out, "kernel": compact_pair(kernel), "stride": compact_pair(stride), "padding": padding,
                "dilation": compact_pair(dilation), "groups": groups, "bias": bias}


def _pointwise_fields(op: Any) -> dict | None:
    """A linear layer on the channels of each position of a channels-last tensor: a 1x1 convolution."""
    if not op.channels_last:
        return None
    # an importer's op (a dataclass): the dataclasses module stays off the calculator's import
    from dataclasses import replace

    fields = REGISTRY["linear"].import_fields(replace(op, input=op.input[:1]))
    if not isinstance(fields, dict) or len(op.input) != 3 or op.output != (fields["out"], *op.input[1:]):
        return None
    return {"out": fields["out"], "kernel": 1, "bias": fields["bias"]}


def _table_fields(op: Any) -> dict | None:
    """The conv2d fields of a module table_conv built: its table, and the settings all its pieces share."""
    table, pieces = op.attrs.get("table"), op.attrs.get("pieces")
    if not table or pieces is None or len(pieces) != len(table):
        return None
    settings = {(p.kernel_size, p.stride, p.padding, p.dilation, p.groups, p.padding_mode, p.bias is not None)
                for p in pieces}
    if len(settings) != 1 or any(p.out_channels != 1 or p.in_channels != len(row) for p, row in zip(pieces, table)):
        return None
    kernel, stride, padding, dilation, groups, mode, bias = settings.pop()
    if groups != 1 or mode != "zeros" or isinstance(padding, str):
        return None
    top, left = padding
    return {"out": len(table), "kernel": compact_pair(kernel), "stride": compact_pair(stride),
            "padding": spec_padding((top, top, left, left), op, kernel, stride, dilation),
            "dilation": compact_pair(dilation), "bias": bias, "connections": [[int(c) for c in row] for row in table]}


def table_conv(table, kernel, stride, padding, dilation, bias):
    """A convolution with a fixed connection table: one Conv2d per output channel on the channels it reads.

    Its parameters are exactly the table's (no masked weights), and fvcore counts each piece's MACs.
    """
    torch = require_torch()
    nn = torch.nn

    class TableConv2d(nn.Module):
        def __init__(self):
            super().__init__()
            self.table = [list(row) for row in table]  # plain indices: no buffer to materialise
            self.pieces = nn.ModuleList(nn.Conv2d(len(row), 1, pair(kernel), stride, padding, dilation, bias=bias)
                                        for row in table)

        def forward(self, x):
            return torch.cat([piece(x[:, row]) for row, piece in zip(self.table, self.pieces)], 1)

    return TableConv2d()


@register
class ConvTranspose2d(LayerType):
    name = "conv_transpose2d"
    saves_input = True

    def param_tensors(self, a: Attrs, shape: Shape) -> int:
        return 1 + bool(a["bias"])

    also_known_as = ("Conv2DTranspose", "deconv", "deconvolution")
    weight_layer = True
    biases = Conv2d.biases
    doc = (
        "2-D transposed convolution. Output (N-1)*S - 2P + D(K-1) + output_padding + 1. "
        "MACs = Cin*Hin*Win*(Cout/groups)*Kh*Kw (each input pixel scatters one kernel)."
    )
    fields = {
        **{k: v for k, v in _CONV_FIELDS.items() if k != "padding"},
        "padding": Field("pair", 0),
        "output_padding": Field("pair", 0),
    }
    kind = "conv"

    def label(self, a: Attrs) -> str:
        return _conv_label("deconv", a)

    def working(self, a: Attrs, shape: Shape, out: Shape, rf: RF = RF()) -> list[str]:
        from fractions import Fraction  # exact strides of the field: loaded when a working is explained
        kh, kw = pair(a["kernel"])
        g = a["groups"]
        per_axis = [
            f"{axis}: ({n} - 1)×{st} - 2×{p} + {d}×({k} - 1) + {op} + 1 = {o}"
            for axis, n, k, st, p, op, d, o in zip("HW", shape[1:], pair(a["kernel"]), pair(a["stride"]),
                                                   pair(a["padding"]), pair(a["output_padding"]), pair(a["dilation"]), out[1:])
        ]
        per_group = f"({a['out']}/{g})" if g > 1 else f"{a['out']}"
        after = self.receptive_field(a, rf, shape)
        stride, dilation = pair(a["stride"]), pair(a["dilation"])
        spans = tuple(-(-(d * (k - 1) + 1) // st) for k, st, d in zip(pair(a["kernel"]), stride, dilation))
        return [
            "out = (N - 1)S - 2P + D(K-1) + output_padding + 1",
            *axes_lines(per_axis),
            _weights_working(a, shape[0], a["out"] // g, self.params(a, shape)),
            f"MACs = Cin×Hin×Win×(Cout/g)×Kh×Kw = {shape[0]}×{shape[1]}×{shape[2]}×{per_group}×{kh}×{kw} "
            f"= {self.macs(a, shape, out):,}",
            rf_working(rf, after, spans, tuple(Fraction(1, st) for st in stride)),  # type: ignore[arg-type]
        ]

    def output_shape(self, a: Attrs, shape: Shape, warn: Warn) -> Shape:
        channels, height, width = need_image(self.name, shape)
        _check_groups(a, channels)
        sizes = []
        for axis, n, k, s, p, op, d in zip(
            "HW", (height, width), pair(a["kernel"]), pair(a["stride"]), pair(a["padding"]),
            pair(a["output_padding"]), pair(a["dilation"]),
        ):
            if op >= s and op >= d:
                raise SpecError(f"output_padding {op} must be smaller than stride {s} or dilation {d} along {axis}")
            size = (n - 1) * s - 2 * p + d * (k - 1) + op + 1
            if size < 1:
                raise SpecError(
                    f"output size ({n} - 1)*{s} - 2*{p} + {d}*({k} - 1) + {op} + 1 = {size} is below 1 along {axis}"
                )
            sizes.append(size)
        return (a["out"], *sizes)

    def params(self, a: Attrs, shape: Shape) -> int:
        kh, kw = pair(a["kernel"])
        return shape[0] * (a["out"] // a["groups"]) * kh * kw + (a["out"] if a["bias"] else 0)

    def macs(self, a: Attrs, shape: Shape, out: Shape) -> int:
        kh, kw = pair(a["kernel"])
        return shape[0] * shape[1] * shape[2] * (a["out"] // a["groups"]) * kh * kw

    def receptive_field(self, a: Attrs, rf: RF, shape: Shape) -> RF:
        return rf.transposed(pair(a["kernel"]), pair(a["stride"]), pair(a["dilation"]), pair(a["padding"]))

    def probe_module(self, module):
        from . import probe

        return probe.window_sum(module)

    def torch_module(self, a: Attrs, shape: Shape):
        return torch_nn().ConvTranspose2d(
            shape[0], a["out"], pair(a["kernel"]), pair(a["stride"]), pair(a["padding"]),
            pair(a["output_padding"]), a["groups"], a["bias"], pair(a["dilation"]),
        )

    torch_modules = ("ConvTranspose2d",)
    onnx_ops = ("ConvTranspose",)

    def import_fields(self, op: Any) -> dict | None:
        if op.origin == "module":
            m = op.attrs
            if m["padding_mode"] != "zeros" or any(op.pad):
                return None
            return {"out": m["out_channels"], "kernel": compact_pair(m["kernel_size"]), "stride": compact_pair(m["stride"]),
                    "padding": compact_pair(m["padding"]), "output_padding": compact_pair(m["output_padding"]),
                    "dilation": compact_pair(m["dilation"]), "groups": m["groups"], "bias": m["bias"] is not None}
        if op.origin != "onnx" or any(op.pad) or "output_shape" in op.attrs:
            return None
        a, weight = op.attrs, op.weights[0]
        pads = a.get("pads", [0, 0, 0, 0])
        if pads[:2] != pads[2:]:
            return None
        groups = a.get("group", 1)
        return {"out": weight[1] * groups, "kernel": compact_pair(a.get("kernel_shape", weight[2:])),
                "stride": compact_pair(a.get("strides", 1)), "padding": compact_pair(pads[:2]),
                "output_padding": compact_pair(a.get("output_padding", 0)), "dilation": compact_pair(a.get("dilations", 1)),
                "groups": groups, "bias": len(op.weights) > 1}


@register
class Linear(LayerType):
    name = "linear"
    saves_input = True

    def param_tensors(self, a: Attrs, shape: Shape) -> int:
        return 1 + bool(a["bias"])

    also_known_as = ("Dense", "fc", "fully_connected", "InnerProduct")
    weight_layer = True
    doc = ("Fully connected layer over the last axis (torch's nn.Linear): a flat vector, each token, each "
           "position of a channels-last grid. MACs = in*out per position; bias not counted.")
    fields = {"out": Field("int", doc="output features", minimum=1), "bias": Field("bool", True)}
    kind = "linear"
    weight_layer = True
    biases = Conv2d.biases

    def label(self, a: Attrs) -> str:
        return f"fc {a['out']}"

    def working(self, a: Attrs, shape: Shape, out: Shape, rf: RF = RF()) -> list[str]:
        bias = f" + {a['out']}" if a["bias"] else ""
        positions = numel(shape[:-1])
        each = f"×{positions:,} positions" if len(shape) > 1 else ""
        return [
            f"output {shape[-1]} features -> {a['out']}" + (f" at each of {positions:,} positions" if each else ""),
            f"params = in×out + bias = {shape[-1]}×{a['out']}{bias} = {self.params(a, shape):,}",
            f"MACs = in×out{'×positions' if each else ''} = {shape[-1]}×{a['out']}{each} = {self.macs(a, shape, out):,}",
            rf_working(rf, self.receptive_field(a, rf, shape)),
        ]

    def output_shape(self, a: Attrs, shape: Shape, warn: Warn) -> Shape:
        layout.need(self.name, shape, layout.FLAT, layout.TOKENS, layout.GRID, layout.TENSOR,
                    hint=" (add a flatten before it, or permute to channels last)")
        return layout.like(shape, (*shape[:-1], a["out"]))

    def params(self, a: Attrs, shape: Shape) -> int:
        return shape[-1] * a["out"] + (a["out"] if a["bias"] else 0)

    def macs(self, a: Attrs, shape: Shape, out: Shape) -> int:
        return numel(shape) * a["out"]

    def receptive_field(self, a: Attrs, rf: RF, shape: Shape) -> RF:
        """A flat vector's outputs each read every input; otherwise position by position."""
        return GLOBAL_RF if len(shape) == 1 else rf

    def torch_module(self, a: Attrs, shape: Shape):
        return torch_nn().Linear(shape[-1], a["out"], a["bias"])

    torch_modules = ("Linear",)
    torch_functions = ("linear",)
    onnx_ops = ("Gemm", "MatMul")

    def import_fields(self, op: Any) -> dict | None:
        if op.origin == "module":
            return {"out": op.attrs["out_features"], "bias": op.attrs["bias"] is not None}
        if op.origin == "call" and op.weights and len(op.weights[0]) == 2:  # F.linear(x, self.weight, self.bias)
            return {"out": op.weights[0][0], "bias": len(op.weights) > 1}
        if op.origin != "onnx" or not op.weights or len(op.weights[0]) != 2:
            return None
        a = op.attrs
        if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
            return None
        out = op.weights[0][0] if a.get("transB", 0) else op.weights[0][1]
        return {"out": out, "bias": len(op.weights) > 1}


def _onnx_padding(a: Any) -> Any:
    """Padding of an ONNX Conv or pool: (top, left, bottom, right), or 'same' from auto_pad."""
    auto = a.get("auto_pad", "NOTSET")
    if auto == "SAME_UPPER":
        return "same"
    if auto == "VALID":
        return 0
    if auto != "NOTSET":
        raise SpecError(f"auto_pad {auto} (extra padding at the top/left) has no archcalc form")
    return list(a.get("pads", [0, 0, 0, 0]))

@register
class RBF(LayerType):
    name = "rbf"
    doc = ("Euclidean radial basis units (LeNet-5's output): unit j gives sum_i (x_i - w_ij)^2 with fixed, "
           "hand-chosen centres w (in*out values, not trained). MACs = in*out (a difference squared and added each).")
    fields = {"out": Field("int", doc="units (classes)", minimum=1)}
    kind = "linear"
    weight_layer = True

    def output_shape(self, a: Attrs, shape: Shape, warn: Warn) -> Shape:
        if len(shape) != 1:
            raise SpecError("rbf needs a flat input (add a flatten before it)")
        return (a["out"],)

    def buffers(self, a: Attrs, shape: Shape) -> int:
        return shape[0] * a["out"]

    def macs(self, a: Attrs, shape: Shape, out: Shape) -> int:
        return shape[0] * a["out"]

    def fvcore_flops(self, a: Attrs, shape: Shape, out: Shape) -> int:
        return 0  # subtraction, power and sum: fvcore has no handle for them

    def receptive_field(self, a: Attrs, rf: RF, shape: Shape) -> RF:
        return RF(None)

    # The backward is the input's gradient only (the centres are fixed); torch keeps the differences x - w
    # (the square's input), out x in values.
    def backward_macs(self, a: Attrs, shape: Shape, out: Shape) -> int:
        return self.macs(a, shape, out)

    def saved_values(self, a: Attrs, shape: Shape, out: Shape) -> int:
        return shape[0] * a["out"]

    def torch_module(self, a: Attrs, shape: Shape):
        torch = require_torch()
        module: Any = torch.nn.Module  # torch is loaded on demand: a base class known only at run time

        class RBFUnits(module):
            def __init__(self, features: int, units: int):
                super().__init__()
                self.register_buffer("centres", torch.zeros(units, features))

            def forward(self, x):
                return ((x.unsqueeze(1) - self.centres) ** 2).sum(-1)

        return RBFUnits(shape[0], a["out"])

    torch_modules = ("RBFUnits",)  # the module torch_module builds: fixed centres as a buffer

    def import_fields(self, op: Any) -> dict | None:
        if op.origin != "module":
            return None
        centres = op.attrs.get("centres")
        if centres is None or tuple(centres.shape) != (op.output[0], op.input[0]) or len(op.input) != 1:
            return None
        return {"out": int(centres.shape[0])}
