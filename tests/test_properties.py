"""Property-based cross-check: random layer stacks through the calculator and through torch + fvcore.

Hypothesis draws specs in archcalc's JSON format (plain dicts, resolved with
archcalc.core.spec.resolve; nothing is written to disk): conv2d (kernel, stride, padding as an
int, [h, w], 'same' or 'valid', dilation, groups, bias), conv_transpose2d (padding,
output_padding, dilation, groups), max and average pooling (padding, dilation, ceil_mode,
count_include_pad), batch_norm2d, activations and dropout, channel shuffles and slices, window attention (shifted and
padded windows, v2, grid) and patch merging, concat merges of 2 or 3 branches, channels-last
detours (permute, layer_norm, linear, window attention or patch merging on the grid, reshape to
tokens and back, permute), flatten + linear heads, and token heads (flatten and transpose to
tokens, class token, position embedding, layer norm, self-attention, softmax, mean or one token,
linear), on C x H x W inputs (C <= 8, 1 <= H, W <= 40) with a
batch of 1 to 3. Shapes are tracked while drawing (torch's formulas, written out below) so
that every stack is valid.

The torch model is built here from the spec dict, not by archcalc.torch.build: each layer
is constructed for the tensor that actually reaches it, so torch alone decides input
channels and sizes. For every calculator row (matched by its path) and for the totals,
the test compares the output shape (batch left out), the trainable parameters, the BN
running statistics and fvcore's count (FlopCountAnalysis.by_module, eval mode) against
the calculator's fvcore_flops x batch.

Specs the calculator must reject are valid stacks cut after one broken layer: a kernel
wider than the padded input, groups that do not divide the channels, output_padding not
below stride or dilation, a transposed convolution with an empty output, pooling padding
over half the kernel, a pooling window with no output, concat branches of different
sizes, an image layer after flatten, a zero kernel/stride/dilation or negative padding.
The calculator must raise SpecError naming that layer, and torch must raise too.

Deliberate differences:
- padding 'same' with stride > 1: archcalc follows TensorFlow (output ceil(N/S), the odd
  pixel padded at the bottom/right); torch refuses it. The torch side pads every 'same'
  convolution by hand (at stride 1 exactly torch's padding='same'; 'valid' is 0): fvcore
  does not count torch's string padding (aten::_convolution_mode counts 0), and archcalc's
  convention is the convolution with explicit padding, as archcalc.torch.build builds it.
- a transposed convolution with no output: torch 2.13 refuses it only for batch 1 and
  groups 1; otherwise it returns an empty tensor (a 0 in its shape), counted as refused.
- Swin v2's position bias MLP: torchvision (and the torch side here) runs it once per pass,
  archcalc counts it per image (torchvision's _ops, at batch 1); `once_per_pass` takes the
  difference, (batch - 1) x its MACs, off the calculator's figure.
- never drawn: linear on an image (archcalc asks for a flatten; torch applies it to the
  last axis), and adaptive_avg_pool2d to 1x1 on a flat (N, F) input (torch averages the
  whole tensor, batch included, to (1, 1); it refuses a flat input for every other output
  size and for adaptive max pooling, as archcalc does).

Each run takes the default seed (DEFAULT_SEED), pytest's --hypothesis-seed or ARCHCALC_PROPERTY_SEED
(`random` draws a fresh one, to explore);
a failure prints it with the falsifying spec and a @reproduce_failure blob.
"""
from __future__ import annotations

import json
import math
import os
import random
import re
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("fvcore")

import hypothesis.core  # noqa: E402
from fvcore.nn import FlopCountAnalysis  # noqa: E402
from hypothesis import HealthCheck, Phase, example, note, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from archcalc.core.calc import analyze, rows_by_key  # noqa: E402
from archcalc.core.spec import Layer, resolve  # noqa: E402
from archcalc.errors import SpecError  # noqa: E402
from archcalc.torch.build import build_torch  # noqa: E402

nn = torch.nn
F = torch.nn.functional

VALID_EXAMPLES = 250
INVALID_EXAMPLES = 150
MIN_EXAMPLES = 300  # distinct specs per run, both tests together
ACTIVATIONS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU,
               "silu": nn.SiLU, "hardswish": nn.Hardswish, "hardsigmoid": nn.Hardsigmoid, "identity": nn.Identity}
SEEN: dict[str, set[str]] = defaultdict(set)


DEFAULT_SEED = 20261201  # the same networks every run, so that a run in CI is reproducible


def _run_seed() -> Any:
    """pytest's --hypothesis-seed when given, else ARCHCALC_PROPERTY_SEED (`random`: a fresh one), else the default."""
    forced = getattr(hypothesis.core, "global_force_seed", None)  # where hypothesis' pytest plugin puts it
    if forced is not None:
        return forced
    chosen = os.environ.get("ARCHCALC_PROPERTY_SEED", str(DEFAULT_SEED))
    return random.SystemRandom().randrange(2**32) if chosen == "random" else int(chosen)


RUN_SEED = _run_seed()
PROPERTY_SETTINGS = dict(deadline=None, derandomize=False, print_blob=True,
                         phases=[p for p in Phase if p is not Phase.explain],
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---- torch's size rules, written out ------------------------------------------------------

def window_out(n: int, k: int, s: int, p: int, d: int = 1, ceil: bool = False) -> int:
    """floor((N + 2P - D(K-1) - 1)/S) + 1; with ceil_mode the last window must start inside N + P."""
    top = n + 2 * p - d * (k - 1) - 1
    out = (-(-top // s) if ceil else top // s) + 1
    if ceil and (out - 1) * s >= n + p:
        out -= 1
    return out


def divisors(n: int) -> list[int]:
    return [g for g in range(1, n + 1) if n % g == 0]


def axis(value: Any, i: int, default: Any) -> Any:
    """Axis i (0: H, 1: W) of an int-or-[h, w] field."""
    if value is None:
        return default
    return value[i] if isinstance(value, list) else value


# ---- valid layers: each strategy takes the input shape, gives (layer, output shape) ---------

@st.composite
def pair(draw, h: int, w: int) -> int | list[int]:
    return h if h == w and draw(st.booleans()) else [h, w]


def put(draw, layer: dict, key: str, value: Any, default: Any) -> None:
    """Set a field; a default value is written out only sometimes."""
    if value != default or draw(st.booleans()):
        layer[key] = value


@st.composite
def channels(draw, c: int, most: int = 8) -> tuple[int, int]:
    """(groups, out): groups divides the input channels and the output channels."""
    groups = draw(st.sampled_from([g for g in divisors(c) if g <= most]))
    return groups, groups * draw(st.integers(1, max(1, most // groups)))


@st.composite
def conv2d(draw, shape):
    c, h, w = shape
    groups, out = draw(channels(c))
    mode = draw(st.sampled_from(["number", "number", "same", "valid"]))
    k, s, p, d, size = zip(*(draw(conv_axis(n, mode)) for n in (h, w)))
    layer = {"type": "conv2d", "out": out, "kernel": draw(pair(*k))}
    put(draw, layer, "stride", draw(pair(*s)), 1)
    put(draw, layer, "padding", draw(pair(*p)) if mode == "number" else mode, 0)
    put(draw, layer, "dilation", draw(pair(*d)), 1)
    put(draw, layer, "groups", groups, 1)
    put(draw, layer, "bias", draw(st.booleans()), True)
    return layer, (out, *size)


@st.composite
def conv_axis(draw, n: int, mode: str):
    s, d = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    room = n if mode == "valid" else n + 6  # the widest span the padding can make fit
    k = draw(st.integers(1, min(5, (room - 1) // d + 1)))
    span = d * (k - 1) + 1
    if mode == "same":
        return k, s, None, d, -(-n // s)
    low = max(0, -(-(span - n) // 2)) if mode == "number" else 0
    p = draw(st.integers(low, low + (2 if mode == "number" and n < 40 else 0)))
    return k, s, p, d, window_out(n, k, s, p, d)


@st.composite
def conv_transpose2d(draw, shape):
    c, h, w = shape
    groups, out = draw(channels(c))
    k, s, p, op, d, size = zip(*(draw(transpose_axis(n)) for n in (h, w)))
    layer = {"type": "conv_transpose2d", "out": out, "kernel": draw(pair(*k))}
    for key, value, default in [("stride", s, 1), ("padding", p, 0), ("output_padding", op, 0), ("dilation", d, 1)]:
        put(draw, layer, key, draw(pair(*value)), default)
    put(draw, layer, "groups", groups, 1)
    put(draw, layer, "bias", draw(st.booleans()), True)
    return layer, (out, *size)


@st.composite
def transpose_axis(draw, n: int):
    s, d, k = draw(st.integers(1, 3 if n <= 16 else 1)), draw(st.integers(1, 2)), draw(st.integers(1, 4))
    op = draw(st.integers(0, max(s, d) - 1))
    p = draw(st.integers(0, min(3, ((n - 1) * s + d * (k - 1) + op) // 2)))
    return k, s, p, op, d, (n - 1) * s - 2 * p + d * (k - 1) + op + 1


@st.composite
def pool2d(draw, shape, kind: str | None = None):
    kind = kind or draw(st.sampled_from(["max_pool2d", "avg_pool2d"]))
    c, h, w = shape
    ceil, default_stride = draw(st.booleans()), draw(st.booleans())
    k, s, p, d, size = zip(*(draw(pool_axis(n, kind, ceil, default_stride)) for n in (h, w)))
    layer = {"type": kind, "kernel": draw(pair(*k))}
    if not default_stride:
        layer["stride"] = draw(pair(*s))
    put(draw, layer, "padding", draw(pair(*p)), 0)
    put(draw, layer, "ceil_mode", ceil, False)
    if kind == "max_pool2d":
        put(draw, layer, "dilation", draw(pair(*d)), 1)
    else:
        put(draw, layer, "count_include_pad", draw(st.booleans()), True)
    return layer, (c, *size)


@st.composite
def pool_axis(draw, n: int, kind: str, ceil: bool, default_stride: bool):
    k = draw(st.integers(1, 4))
    d = draw(st.integers(1, 2)) if kind == "max_pool2d" else 1
    if d * (k - 1) + 1 > n + 2 * (k // 2):
        d = 1
    s = k if default_stride else draw(st.integers(1, 3))
    p = draw(st.integers(0, k // 2))  # torch's limit: half the kernel
    if window_out(n, k, s, p, d, ceil) < 1:
        p = k // 2
    return k, s, p, d, window_out(n, k, s, p, d, ceil)


@st.composite
def batch_norm(draw, shape):
    layer = {"type": "batch_norm2d"}
    put(draw, layer, "affine", draw(st.booleans()), True)
    put(draw, layer, "eps", draw(st.sampled_from([1e-5, 1e-3])), 1e-5)
    return layer, shape


@st.composite
def activation(draw, shape):
    name = draw(st.sampled_from([*ACTIVATIONS, "dropout"]))
    layer = {"type": name}
    if name == "dropout":
        put(draw, layer, "p", draw(st.sampled_from([0.1, 0.5])), 0.5)
    return layer, shape


@st.composite
def channel_layer(draw, shape):
    """Layers that keep the shape and mix or scale channels: the rest of the registry's image layers."""
    groups = [g for g in divisors(shape[0]) if shape[0] // g * shape[1] * shape[2] > 1]  # a group holds 2 values or more
    name = draw(st.sampled_from(["layer_norm2d", "lrn", "layer_scale", "softmax", "stochastic_depth", "upsample",
                                 "channel_shuffle", "slice"] + (["group_norm"] if groups else [])))
    layer = {"type": name}
    if name == "channel_shuffle":
        put(draw, layer, "groups", draw(st.sampled_from(divisors(shape[0]))), 2)
        return layer, shape
    if name == "slice":  # channels [start, stop): a view of the input
        start = draw(st.integers(0, shape[0] - 1))
        stop = draw(st.integers(start + 1, shape[0]))
        put(draw, layer, "start", start, 0)
        layer["stop"] = stop
        return layer, (stop - start, *shape[1:])
    if name == "upsample":  # nearest or bilinear, x1 or x2 per axis: (C, H*sh, W*sw)
        scale = [draw(st.integers(1, 2)), draw(st.integers(1, 2))] if shape[1] * shape[2] <= 400 else [1, 1]
        layer.update({"scale": scale, "bilinear": draw(st.booleans())})
        return layer, (shape[0], shape[1] * scale[0], shape[2] * scale[1])
    if name == "group_norm":
        layer["groups"] = draw(st.sampled_from(groups))
        put(draw, layer, "affine", draw(st.booleans()), True)
    if name == "layer_norm2d":
        put(draw, layer, "eps", draw(st.sampled_from([1e-6, 1e-3])), 1e-6)
    elif name == "lrn":
        put(draw, layer, "size", draw(st.integers(1, 5)), 5)
    elif name == "layer_scale":
        put(draw, layer, "init", draw(st.sampled_from([1e-6, 0.5])), 1e-6)
    elif name == "stochastic_depth":
        put(draw, layer, "p", draw(st.sampled_from([0.0, 0.2])), 0.0)
    return layer, shape


@st.composite
def attention_layer(draw, shape):
    """Window attention (Swin v1/v2 windows, shifted and padded, or MaxViT's grid) and patch merging."""
    c, h, w = shape
    if c <= 8 and draw(st.booleans()):
        layer = {"type": "patch_merging"}
        put(draw, layer, "norm_after", draw(st.booleans()), False)
        return layer, (2 * c, -(-h // 2), -(-w // 2))
    layer = {"type": "window_attention", "heads": draw(st.sampled_from(divisors(c)))}
    if draw(st.booleans()):  # a grid that divides the map
        layer.update({"grid": True, "window": [draw(st.sampled_from(divisors(h)[:3])), draw(st.sampled_from(divisors(w)[:3]))]})
    else:
        window = [draw(st.integers(1, 6)), draw(st.integers(1, 6))]
        layer["window"] = window
        put(draw, layer, "shift", [draw(st.integers(0, window[0] - 1)), draw(st.integers(0, window[1] - 1))], [0, 0])
    if draw(st.booleans()):
        layer.update({"v2": True, "mlp_hidden": draw(st.sampled_from([4, 16]))})
    put(draw, layer, "qkv_bias", draw(st.booleans()), True)
    put(draw, layer, "proj_bias", draw(st.booleans()), True)
    return layer, shape


@st.composite
def channels_last(draw, shape):
    """A channels-last detour, as ConvNeXt's and Swin's blocks: permute to HxWxC, a layer norm or a linear layer
    over the channels (or the grid read as tokens and back), permute back to CxHxW."""
    c, h, w = shape
    inner = draw(st.sampled_from(["layer_norm", "linear", "tokens", "attention"]))
    if inner == "attention":  # Swin's layout: window attention or patch merging on the grid
        layer, (c, h, w) = draw(attention_layer(shape))
        middle = [layer]
    elif inner == "layer_norm":
        middle = [{"type": "layer_norm"}]
        put(draw, middle[0], "affine", draw(st.booleans()), True)
    elif inner == "linear":
        c = draw(st.integers(1, 8))
        middle = [{"type": "linear", "out": c, **({} if draw(st.booleans()) else {"bias": False})}]
    else:
        middle = [{"type": "reshape", "shape": [-1, c]}, {"type": "reshape", "shape": [h, w, c], "layout": "grid"}]
    return [{"type": "permute", "dims": [1, 2, 0]}, *middle, {"type": "permute", "dims": [2, 0, 1]}], (c, h, w)


# ---- concat: every branch keeps the size, or every branch halves it (ceil(N/2)) -------------

@st.composite
def keeping_layer(draw, shape):
    c, h, w = shape
    kind = draw(st.sampled_from(["conv", "pool", "norm", "act"]))
    if kind == "norm":
        return draw(batch_norm(shape))
    if kind == "act":
        return draw(activation(shape))
    k = draw(pair(draw(st.sampled_from([1, 3, 5])), draw(st.sampled_from([1, 3, 5]))))
    if kind == "pool":
        kind = draw(st.sampled_from(["max_pool2d", "avg_pool2d"]))
        return {"type": kind, "kernel": k, "stride": 1, "padding": half(k, 1)}, shape
    groups, out = draw(channels(c, 4))
    d = draw(st.integers(1, 2))
    padding = "same" if draw(st.booleans()) else half(k, d)
    layer = {"type": "conv2d", "out": out, "kernel": k, "dilation": d, "padding": padding, "groups": groups}
    return layer, (out, h, w)


def half(kernel: int | list[int], dilation: int) -> int | list[int]:
    """Padding that keeps the size at stride 1 (odd kernels)."""
    return [dilation * (k - 1) // 2 for k in kernel] if isinstance(kernel, list) else dilation * (kernel - 1) // 2


@st.composite
def halving_layer(draw, shape):
    c, h, w = shape
    k = draw(st.sampled_from([1, 3]))
    if draw(st.booleans()):
        kind = draw(st.sampled_from(["max_pool2d", "avg_pool2d"]))
        return {"type": kind, "kernel": k, "stride": 2, "padding": k // 2}, (c, -(-h // 2), -(-w // 2))
    groups, out = draw(channels(c, 4))
    padding = "same" if draw(st.booleans()) else k // 2
    layer = {"type": "conv2d", "out": out, "kernel": k, "stride": 2, "padding": padding, "groups": groups}
    return layer, (out, -(-h // 2), -(-w // 2))


@st.composite
def branch(draw, shape, halve: bool):
    layers, count = [], draw(st.integers(0, 2))
    at = draw(st.integers(0, count)) if halve else -1  # where the halving layer goes
    for i in range(count + halve):
        layer, shape = draw(halving_layer(shape) if i == at else keeping_layer(shape))
        layers.append(layer)
    return layers, shape


@st.composite
def concat(draw, shape):
    halve = draw(st.booleans())
    branches = [draw(branch(shape, halve)) for _ in range(draw(st.integers(2, 3)))]
    size = (-(-shape[1] // 2), -(-shape[2] // 2)) if halve else shape[1:]
    return {"type": "concat", "branches": [b for b, _ in branches]}, (sum(s[0] for _, s in branches), *size)


# ---- whole stacks ------------------------------------------------------------------------

BODY = {"conv2d": conv2d, "conv_transpose2d": conv_transpose2d, "pool": pool2d, "batch_norm2d": batch_norm,
        "activation": activation, "channel": channel_layer, "concat": concat, "attention": attention_layer,
        "channels_last": channels_last}


@dataclass(frozen=True)
class Stack:
    layers: list
    input: tuple[int, int, int]
    batch: int
    output: tuple[int, ...]  # by the formulas above
    shapes: tuple  # the input shape of every item of `layers` (None inside a channels-last detour)

    @property
    def spec(self) -> dict:
        return {"name": "random", "input": list(self.input), "layers": self.layers}


@st.composite
def body(draw) -> Stack:
    shape = (draw(st.integers(1, 8)), draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    start, layers, shapes = shape, [], []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from([k for k in BODY if k != "concat" or shape[0] <= 8]))  # channels stay <= 24
        drawn, after = draw(BODY[kind](shape))
        for i, layer in enumerate(drawn if isinstance(drawn, list) else [drawn]):  # a channels-last detour is
            shapes.append(None if i else shape)  # several layers: an image reaches only the first
            layers.append(layer)
        shape = after
    return Stack(layers, start, draw(st.integers(1, 3)), shape, tuple(shapes))


@st.composite
def head(draw, shape):
    layers = []
    if not draw(st.integers(0, 4)):  # x.mean((2, 3)): global average pooling straight to a flat vector
        layers.append({"type": "mean"})
        shape = (shape[0], 1, 1)
    elif draw(st.booleans()) or shape[0] * shape[1] * shape[2] > 4096:
        layer = {"type": draw(st.sampled_from(["adaptive_avg_pool2d", "adaptive_max_pool2d"]))}
        size = draw(st.sampled_from([1, 1, 2, [1, 3], [2, 1]]))
        put(draw, layer, "output", size, 1)
        layers.append(layer)
        shape = (shape[0], *(size if isinstance(size, list) else [size, size]))
    if layers[-1:] != [{"type": "mean"}]:
        layers.append({"type": "flatten"})
    features = shape[0] * shape[1] * shape[2]
    for i in range(draw(st.integers(1, 2))):
        if i:
            layers.append(draw(activation((features,)))[0])
        features = draw(st.integers(1, 8))
        if draw(st.integers(0, 3)):
            layers.append({"type": "linear", "out": features, **({} if draw(st.booleans()) else {"bias": False})})
        else:  # LeNet-5's output: fixed centres, a squared distance per unit
            layers.append({"type": "rbf", "out": features})
    return layers, (features,)


@st.composite
def token_head(draw, shape):
    """A transformer's head on the image: its positions as tokens (flatten, transpose), an optional class token
    and position embedding, a layer norm, self-attention, an optional softmax over the features, then one token
    or the mean of them, and a linear layer."""
    c, h, w = shape
    layers = [{"type": "flatten", "start": 1}, {"type": "permute", "dims": [1, 0]}]
    tokens = h * w
    if draw(st.booleans()):
        layers.append({"type": "class_token"})
        tokens += 1
    if draw(st.booleans()):
        layers.append({"type": "position_embedding"})
    layers.append({"type": "layer_norm"})
    attention = {"type": "multihead_attention", "heads": draw(st.sampled_from(divisors(c)))}
    put(draw, attention, "bias", draw(st.booleans()), True)
    layers.append(attention)
    if draw(st.booleans()):
        layers.append({"type": "softmax", "axis": -1})
    if draw(st.booleans()):
        layers.append({"type": "mean"})
    else:
        layers.append({"type": "select_token", "index": draw(st.integers(-tokens, tokens - 1))})
    features = draw(st.integers(1, 8))
    layers.append({"type": "linear", "out": features})
    return layers, (features,)


@st.composite
def stacks(draw) -> Stack:
    stack = draw(body())
    if not draw(st.booleans()):
        return stack
    c, h, w = stack.output
    tokens = h * w <= 256 and c * h * w <= 4096 and not draw(st.integers(0, 3))
    layers, out = draw(token_head(stack.output) if tokens else head(stack.output))
    return Stack(stack.layers + layers, stack.input, stack.batch, out, stack.shapes)


# ---- torch, built layer by layer on the tensor that reaches each layer ----------------------

class Cat(torch.nn.Module):
    def forward(self, *xs):
        return torch.cat(xs, dim=1)


class Concat(torch.nn.Module):
    def __init__(self, branches: list):
        super().__init__()
        for i, b in enumerate(branches):
            self.add_module(str(i), b)
        self.count = len(branches)
        self.add_module("concat", Cat())

    def forward(self, x):
        return self.concat(*(self._modules[str(i)](x) for i in range(self.count)))


class SamePadding(torch.nn.Module):
    """Zero padding to ceil(N/S) outputs, the odd pixel at the bottom/right: torch's padding='same'
    at stride 1, TensorFlow's at any stride (torch refuses 'same' at stride > 1)."""

    def __init__(self, kernel, stride, dilation):
        super().__init__()
        self.kernel, self.stride, self.dilation = kernel, stride, dilation

    def forward(self, x):
        if min(self.stride) < 1:
            return x  # for the convolution to refuse
        pads = []
        for n, k, s, d in zip(x.shape[2:], self.kernel, self.stride, self.dilation):
            total = max((-(-n // s) - 1) * s + d * (k - 1) + 1 - n, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        return torch.nn.functional.pad(x, (left, right, top, bottom))


def tup(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def torch_layer(layer: dict, c: int, x=None):
    kind, get = layer["type"], lambda key, default=None: tup(layer.get(key, default))
    if kind == "conv2d":
        kernel, stride, dilation = pair2(get("kernel")), pair2(get("stride", 1)), pair2(get("dilation", 1))
        padding = get("padding", 0)
        same = padding == "same"
        numeric = 0 if padding in ("same", "valid") else padding  # fvcore counts 0 for torch's string padding
        conv = nn.Conv2d(c, layer["out"], kernel, stride, numeric, dilation, get("groups", 1), get("bias", True))
        return nn.Sequential(SamePadding(kernel, stride, dilation), conv) if same else conv
    if kind == "conv_transpose2d":
        return nn.ConvTranspose2d(c, layer["out"], get("kernel"), get("stride", 1), get("padding", 0),
                                  get("output_padding", 0), get("groups", 1), get("bias", True), get("dilation", 1))
    if kind in ("max_pool2d", "avg_pool2d"):
        padding = get("padding", 0)
        numeric = 0 if padding in ("same", "valid") else padding
        if kind == "max_pool2d":
            pool = nn.MaxPool2d(get("kernel"), get("stride"), numeric, get("dilation", 1), ceil_mode=get("ceil_mode", False))
        else:
            pool = nn.AvgPool2d(get("kernel"), get("stride"), numeric, get("ceil_mode", False), get("count_include_pad", True))
        if padding != "same":
            return pool
        kernel = pair2(get("kernel"))
        return nn.Sequential(SamePadding(kernel, pair2(get("stride") or kernel), pair2(get("dilation", 1))), pool)
    if kind == "batch_norm2d":
        return nn.BatchNorm2d(c, eps=get("eps", 1e-5), affine=get("affine", True))
    if kind == "linear":
        return nn.Linear(c, layer["out"], get("bias", True))
    if kind == "rbf":
        return RBF(c, layer["out"])
    if kind == "dropout":
        return nn.Dropout(get("p", 0.5))
    if kind == "layer_norm2d":  # LayerNorm over the channels of every position
        return ChannelsLast(nn.LayerNorm(c, eps=get("eps", 1e-6)))
    if kind == "lrn":
        return nn.LocalResponseNorm(get("size", 5), get("alpha", 1e-4), get("beta", 0.75), get("k", 1.0))
    if kind == "layer_scale":
        return Scale(c, get("init", 1e-6))
    if kind == "softmax":
        return nn.Softmax(dim=get("axis", 0) + 1 if get("axis", 0) >= 0 else get("axis"))
    if kind == "group_norm":
        return nn.GroupNorm(layer["groups"], c, affine=get("affine", True))
    if kind == "upsample":
        return nn.Upsample(scale_factor=tuple(float(s) for s in layer["scale"]),
                           mode="bilinear" if layer["bilinear"] else "nearest")
    if kind == "mean":
        return SpatialMean() if x is None or x.dim() == 4 else TokenMean()
    if kind == "window_attention":
        return WindowAttention(c, layer)
    if kind == "patch_merging":
        return PatchMerging(c, get("norm_after", False))
    if kind == "layer_norm":  # over the last axis, as linear: `c` is the last axis' size
        return nn.LayerNorm(c, elementwise_affine=get("affine", True), bias=get("affine", True))
    if kind == "permute":
        return Permuted(layer["dims"])
    if kind == "multihead_attention":
        return SelfAttention(nn.MultiheadAttention(c, layer["heads"], bias=get("bias", True), batch_first=True))
    if kind == "class_token":
        return ClassToken(c)
    if kind == "position_embedding":
        return PositionEmbedding(x.shape[1], c)
    if kind == "select_token":
        return Select(get("index", 0))
    if kind == "reshape":
        return Reshaped(layer["shape"])
    if kind == "stochastic_depth":  # the identity at inference
        return nn.Identity()
    if kind == "channel_shuffle":
        return nn.ChannelShuffle(get("groups", 2))
    if kind == "slice":
        return ChannelSlice(get("start", 0), layer["stop"])
    if kind == "flatten":
        return nn.Flatten(get("start", 0) + 1)
    if kind == "adaptive_avg_pool2d":
        return nn.AdaptiveAvgPool2d(get("output", 1))
    if kind == "adaptive_max_pool2d":
        return nn.AdaptiveMaxPool2d(get("output", 1))
    return ACTIVATIONS[kind]()


class ChannelsLast(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class WindowAttention(nn.Module):
    """torchvision's shifted_window_attention (Swin v1, and v2's cosine attention with its position bias MLP)
    and MaxViT's grid partition, on an NCHW tensor, written out from their source."""

    def __init__(self, c: int, layer: dict):
        super().__init__()
        self.heads, self.grid, self.v2 = layer["heads"], layer.get("grid", False), layer.get("v2", False)
        self.window, self.shift = pair2(tup(layer["window"])), pair2(tup(layer.get("shift", 0)))
        self.qkv = nn.Linear(c, 3 * c, bias=layer.get("qkv_bias", True))
        self.proj = nn.Linear(c, c, bias=layer.get("proj_bias", True))
        wh, ww = self.window
        if self.v2:
            hidden = layer.get("mlp_hidden", 512)
            self.logit_scale = nn.Parameter(torch.log(10 * torch.ones(self.heads, 1, 1)))
            self.cpb_mlp = nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, self.heads, bias=False))
        else:
            self.table = nn.Parameter(torch.randn((2 * wh - 1) * (2 * ww - 1), self.heads) * 0.02)

    def position_bias(self):
        wh, ww = self.window
        ys, xs = (t.flatten() for t in torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij"))
        index = (ys[:, None] - ys[None, :] + wh - 1) * (2 * ww - 1) + (xs[:, None] - xs[None, :] + ww - 1)
        if not self.v2:
            return self.table[index].permute(2, 0, 1)
        dy = torch.arange(-(wh - 1), wh).float() / max(wh - 1, 1)
        dx = torch.arange(-(ww - 1), ww).float() / max(ww - 1, 1)
        coords = torch.stack(torch.meshgrid(dy, dx, indexing="ij"), -1).view(-1, 2) * 8
        coords = torch.sign(coords) * torch.log2(coords.abs() + 1.0) / 3.0
        return 16 * torch.sigmoid(self.cpb_mlp(coords)[index].permute(2, 0, 1))

    def forward(self, x):
        b, c, h, w = x.shape
        (wh, ww), heads = self.window, self.heads
        t = x.permute(0, 2, 3, 1)
        if self.grid:
            ph, pw, shift = h, w, [0, 0]
            t = t.reshape(b, wh, h // wh, ww, w // ww, c).permute(0, 2, 4, 1, 3, 5)
        else:
            t = F.pad(t, (0, 0, 0, (ww - w % ww) % ww, 0, (wh - h % wh) % wh))
            ph, pw = t.shape[1:3]
            shift = [0 if wh >= ph else self.shift[0], 0 if ww >= pw else self.shift[1]]
            t = torch.roll(t, (-shift[0], -shift[1]), (1, 2))
            t = t.view(b, ph // wh, wh, pw // ww, ww, c).permute(0, 1, 3, 2, 4, 5)
        n = wh * ww
        windows = t.reshape(-1, n, c)
        q, k, v = self.qkv(windows).reshape(-1, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        if self.v2:
            attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
            attn = attn * torch.clamp(self.logit_scale, max=math.log(100.0)).exp()
        else:
            attn = (q * (c // heads) ** -0.5) @ k.transpose(-2, -1)
        attn = attn + self.position_bias()
        if sum(shift):
            mask = torch.zeros(ph, pw)
            label = 0
            for hs in ((0, -wh), (-wh, -shift[0]), (-shift[0], None)):
                for ws in ((0, -ww), (-ww, -shift[1]), (-shift[1], None)):
                    mask[hs[0]:hs[1], ws[0]:ws[1]] = label
                    label += 1
            mask = mask.view(ph // wh, wh, pw // ww, ww).permute(0, 2, 1, 3).reshape(-1, n)
            mask = (mask[:, None, :] - mask[:, :, None]).ne(0) * -100.0
            attn = (attn.view(b, -1, heads, n, n) + mask[None, :, None]).view(-1, heads, n, n)
        y = self.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(-1, n, c))
        if self.grid:
            y = y.view(b, h // wh, w // ww, wh, ww, c).permute(0, 3, 1, 4, 2, 5).reshape(b, h, w, c)
        else:
            y = y.view(b, ph // wh, pw // ww, wh, ww, c).permute(0, 1, 3, 2, 4, 5).reshape(b, ph, pw, c)
            y = torch.roll(y, (shift[0], shift[1]), (1, 2))[:, :h, :w]
        return y.permute(0, 3, 1, 2)


class PatchMerging(nn.Module):
    """torchvision's PatchMerging (norm before the reduction) and PatchMergingV2 (after), on NCHW."""

    def __init__(self, c: int, norm_after: bool):
        super().__init__()
        self.norm_first = not norm_after
        self.reduction = nn.Linear(4 * c, 2 * c, bias=False)
        self.norm = nn.LayerNorm(4 * c if self.norm_first else 2 * c)

    def forward(self, x):
        t = x.permute(0, 2, 3, 1)
        t = F.pad(t, (0, 0, 0, t.shape[2] % 2, 0, t.shape[1] % 2))
        t = torch.cat([t[:, 0::2, 0::2], t[:, 1::2, 0::2], t[:, 0::2, 1::2], t[:, 1::2, 1::2]], -1)
        t = self.reduction(self.norm(t)) if self.norm_first else self.norm(self.reduction(t))
        return t.permute(0, 3, 1, 2)


class Permuted(nn.Module):
    def __init__(self, dims):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return x.permute(0, *(d + 1 for d in self.dims))


class Reshaped(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.shape = shape

    def forward(self, x):
        return x.reshape(x.shape[0], *self.shape)


class Select(nn.Module):
    def __init__(self, index: int):
        super().__init__()
        self.index = index

    def forward(self, x):
        return x[:, self.index]



class SelfAttention(nn.Module):
    def __init__(self, attention):
        super().__init__()
        self.attention = attention

    def forward(self, x):
        """Off torch's fused fast path (eval, no grad), which fvcore cannot see into: the projections are counted."""
        enabled = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            return self.attention(x, x, x, need_weights=False)[0]
        finally:
            torch.backends.mha.set_fastpath_enabled(enabled)


class ClassToken(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.token = nn.Parameter(torch.randn(1, 1, d))

    def forward(self, x):
        return torch.cat([self.token.expand(x.shape[0], -1, -1), x], dim=1)


class PositionEmbedding(nn.Module):
    def __init__(self, tokens: int, d: int):
        super().__init__()
        self.embedding = nn.Parameter(torch.randn(1, tokens, d))

    def forward(self, x):
        return x + self.embedding


LAST_AXIS = {"linear", "layer_norm", "multihead_attention", "class_token", "position_embedding"}  # built for the
# size of the last axis, not of the channels
ON_GRIDS = {"window_attention", "patch_merging"}  # layers that take an image or a channels-last grid


def channels_last_input(before: list[dict]) -> bool:
    """Whether the layers before leave a channels-last grid: the last permute took an image to HxWxC."""
    permutes = [layer["dims"] for layer in before if layer["type"] == "permute"]
    return bool(permutes) and list(permutes[-1]) == [1, 2, 0]


class ChannelsFirst(nn.Module):
    """A reference written for NCHW, run on a channels-last grid."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class RBF(nn.Module):
    def __init__(self, features: int, units: int):
        super().__init__()
        self.register_buffer("centres", torch.randn(units, features))

    def forward(self, x):
        return torch.cdist(x, self.centres) ** 2


class ChannelSlice(nn.Module):
    def __init__(self, start: int, stop: int):
        super().__init__()
        self.start, self.stop = start, stop

    def forward(self, x):
        return x[:, self.start:self.stop]


class SpatialMean(nn.Module):
    def forward(self, x):
        return x.mean((2, 3))


class TokenMean(nn.Module):
    def forward(self, x):
        return x.mean(1)


class Scale(nn.Module):
    def __init__(self, c: int, init: float):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((c, 1, 1), float(init)))

    def forward(self, x):
        return x * self.gamma


def pair2(value: Any) -> tuple[int, int]:
    return value if isinstance(value, tuple) else (value, value)


def build(layers: list, x, prefix: str, shapes: dict):
    """(nn.Sequential named like the calculator's rows, its output); records every output shape."""
    sequence = nn.Sequential()
    for i, layer in enumerate(layers):
        path = f"{prefix}.{i}" if prefix else str(i)
        if layer["type"] == "concat":
            built = [build(b, x, f"{path}.{j}", shapes) for j, b in enumerate(layer["branches"])]
            module = Concat([m for m, _ in built]).eval()
            x = module.concat(*(y for _, y in built))
            shapes[f"{path}.concat"] = tuple(x.shape[1:])
        elif layer["type"] in ON_GRIDS and channels_last_input(layers[:i]):
            module = ChannelsFirst(torch_layer(layer, x.shape[-1])).eval()  # the reference runs on NCHW
            x = module(x)
        else:
            module = torch_layer(layer, x.shape[-1] if layer["type"] in LAST_AXIS else x.shape[1], x).eval()
            x = module(x)
        shapes[path] = tuple(x.shape[1:])
        sequence.add_module(str(i), module)
    shapes[prefix] = tuple(x.shape[1:])
    return sequence, x


def reference_names(analysis) -> dict:
    """Each row of the analysis with the name of its module in the reference model (`build`), which nests a
    concat's branches as `i.j.k` and names its op `i.concat` (archcalc names the branches' nodes beside it)."""
    names: dict = {}

    def walk(node, prefix: str) -> None:
        for i, child in enumerate(node.children):
            path = f"{prefix}.{i}" if prefix else str(i)
            if isinstance(child, Layer):
                names[child.path] = path
                continue
            for j, branch in enumerate(child.children):
                walk(branch, f"{path}.{j}")
            names[child.path] = f"{path}.concat"

    walk(analysis.network.root, "")
    return [(row, names[key]) for key, row in rows_by_key(analysis).items()]


def torch_side(stack: Stack):
    """The model, the input, and the output shape of every module path."""
    torch.manual_seed(0)
    x = torch.randn(stack.batch, *stack.input)
    shapes: dict = {}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, _ = build(stack.layers, x, "", shapes)
    return model.eval(), x, shapes


def fvcore_counts(model, x) -> dict[str, int]:
    analysis = (FlopCountAnalysis(model, x).unsupported_ops_warnings(False)
                .uncalled_modules_warnings(False).tracer_warnings("none"))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {k: int(v) for k, v in analysis.by_module().items()}


def count(module, buffers: bool = False) -> int:
    if buffers:  # the stored ones (a state dict's): constants of the layout, kept out of it, are not counted
        stored = module.state_dict(keep_vars=True)
        return sum(b.numel() for name, b in module.named_buffers()
                   if name in stored and not name.endswith("num_batches_tracked"))
    return sum(p.numel() for p in module.parameters())


def once_per_pass(analysis, batch: int):
    """What torchvision counts fewer than archcalc under a path: Swin v2's position bias MLP runs once per
    pass, on the (2*wh - 1) x (2*ww - 1) offsets, 2 -> hidden -> heads; archcalc counts it per image."""
    def layers(node):
        yield from [node] if not hasattr(node, "children") else (n for c in node.children for n in layers(c))

    extra = {}
    for node in layers(analysis.network.root):
        a = node.attrs
        if node.type == "window_attention" and a["v2"]:
            wh, ww = pair2(a["window"])
            extra[node.path] = (batch - 1) * (2 * wh - 1) * (2 * ww - 1) * (2 + a["heads"]) * a["mlp_hidden"]
    return lambda path: sum(v for p, v in extra.items() if not path or p == path or p.startswith(path + "."))


def remember(test: str, stack: Stack) -> None:
    SEEN[test].add(json.dumps([stack.spec, stack.batch], sort_keys=True))
    note(f"run seed {RUN_SEED!r}: rerun with ARCHCALC_PROPERTY_SEED={RUN_SEED} or --hypothesis-seed={RUN_SEED}")
    note(f"spec: {json.dumps(stack.spec)} (batch {stack.batch})")


# ---- the properties ----------------------------------------------------------------------

@seed(RUN_SEED)
@settings(max_examples=VALID_EXAMPLES, **PROPERTY_SETTINGS)
@hypothesis.given(stacks())
# A ceil_mode window may overhang the input by less than a stride: torch gives one output.
@example(Stack([{"type": "max_pool2d", "kernel": [1, 2], "ceil_mode": True}], (1, 1, 1), 1, (1, 1, 1), ((1, 1, 1),)))
@example(Stack([{"type": "avg_pool2d", "kernel": 3, "stride": 2, "ceil_mode": True}], (2, 2, 2), 2, (2, 1, 1),
               ((2, 2, 2),)))
def test_valid_stacks_agree_with_torch_and_fvcore(stack):
    remember("valid", stack)
    analysis = analyze(resolve(stack.spec, "random", "<drawn>"), batch=stack.batch)
    model, x, shapes = torch_side(stack)
    flops = fvcore_counts(model, x)
    modules = dict(model.named_modules())
    once = once_per_pass(analysis, stack.batch)
    for row, name in reference_names(analysis):  # every layer and merge
        module = modules[name]
        got = (shapes[name], count(module), count(module, buffers=True), flops.get(name, 0))
        assert got == (row.output_shape, row.params, row.non_trainable,
                       row.fvcore_flops * stack.batch - once(row.path)), row.path
    totals = analysis.totals
    assert analysis.output_shape == shapes[""] == stack.output
    assert (count(model), count(model, buffers=True), flops[""]) == \
        (totals.params, totals.non_trainable, totals.fvcore_flops * stack.batch - once(""))
    # archcalc's own builder makes the same network.
    with torch.no_grad():
        built = build_torch(analysis).eval()
        assert tuple(built(x).shape[1:]) == stack.output
    assert (count(built), count(built, buffers=True)) == (totals.params, totals.non_trainable)


# ---- receptive fields: window stacks against the widest gradient support ---------------------

RF_EXAMPLES = 30
RF_SIZE = 48  # input side: large enough that most fields leave interior units to measure


@st.composite
def window_stacks(draw) -> list[dict]:
    """1 to 4 of: conv (stride, padding, dilation), max/avg pooling (ceil_mode), transposed conv."""
    layers, n = [], RF_SIZE
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["conv2d", "conv2d", "pool", "conv_transpose2d"]))
        k, s = draw(st.integers(1, 4)), draw(st.integers(1, 2))
        if kind == "conv_transpose2d" and n <= 32:
            p = draw(st.integers(0, (k - 1) // 2))
            layers.append({"type": kind, "out": 1, "kernel": k, "stride": s, "padding": p})
            n = (n - 1) * s - 2 * p + k
        elif kind == "pool":
            p, ceil = draw(st.integers(0, k // 2)), draw(st.booleans())
            if window_out(n, k, s, p, 1, ceil) < 2:
                continue
            layers.append({"type": draw(st.sampled_from(["max_pool2d", "avg_pool2d"])), "kernel": k, "stride": s,
                           "padding": p, "ceil_mode": ceil})
            n = window_out(n, k, s, p, 1, ceil)
        else:
            d = draw(st.integers(1, 2))
            p = draw(st.integers(0, d * (k - 1)))
            if window_out(n, k, s, p, d) < 2:
                continue
            layers.append({"type": "conv2d", "out": 1, "kernel": k, "stride": s, "padding": p, "dilation": d})
            n = window_out(n, k, s, p, d)
    return layers or [{"type": "conv2d", "out": 1, "kernel": 3}]


def support_truth(layers: list[dict]):
    """Widest (h, w) gradient support of the stack's output units on the diagonal, off the borders;
    and how many units were measured. Max pooling passes its gradient to one input of each window,
    so it is measured as the average pooling of the same windows."""
    modules = []
    for layer in layers:
        if layer["type"] == "max_pool2d":
            layer = {**layer, "type": "avg_pool2d"}
        module = torch_layer(layer, 1)
        with torch.no_grad():
            for name, p in module.named_parameters():
                p.fill_(1.0 if name == "weight" else 0.0)
        modules.append(module)
    model = nn.Sequential(*modules).double().requires_grad_(False)
    x = torch.ones(1, 1, RF_SIZE, RF_SIZE, dtype=torch.float64, requires_grad=True)
    out = model(x)
    # A unit is measured where every input its field could hold lies inside the input: further from each
    # border than `reach`, a bound on any field's extent (a tap in the padding has no gradient, and a
    # strided field has holes, so the pixels a unit touches do not show that it reaches the border).
    reach, jump = 1, Fraction(1)
    for layer in layers:
        k, d, s = layer["kernel"], layer.get("dilation", 1), layer.get("stride", layer["kernel"])
        reach += math.ceil(k * d * jump)
        jump = jump / s if layer["type"] == "conv_transpose2d" else jump * s
    widest, measured = [0, 0], 0
    side = min(out.shape[2], out.shape[3])
    for t in range(max(0, side // 2 - 8), min(side, side // 2 + 8)):  # 16 units about the centre
        (grad,) = torch.autograd.grad(out[0, 0, t, t], x, retain_graph=True)
        mask = grad[0, 0] != 0
        rows, cols = torch.nonzero(mask.any(1)).flatten().tolist(), torch.nonzero(mask.any(0)).flatten().tolist()
        if rows and min(rows[0], cols[0]) >= reach and max(rows[-1], cols[-1]) <= RF_SIZE - 1 - reach:
            measured += 1
            widest = [max(widest[0], rows[-1] - rows[0] + 1), max(widest[1], cols[-1] - cols[0] + 1)]
    return tuple(widest), measured


@seed(RUN_SEED)
@settings(max_examples=RF_EXAMPLES, **PROPERTY_SETTINGS)
@hypothesis.given(window_stacks())
@example([{"type": "conv_transpose2d", "out": 1, "kernel": 4, "stride": 2, "padding": 1}] * 3)
def test_receptive_field_is_the_widest_gradient_support(layers):
    note(f"run seed {RUN_SEED!r}; layers: {json.dumps(layers)}")
    rf = analyze(resolve({"input": [1, RF_SIZE, RF_SIZE], "layers": layers}, "random", "<drawn>")).leaves()[-1].rf
    widest, measured = support_truth(layers)
    period = max(axis.period for axis in rf.strict)
    if measured >= period:  # every phase of the field has an interior unit: the widest is exact
        assert rf.size == widest
    else:
        assert all(c >= m for c, m in zip(rf.size, widest))


# ---- broken stacks: a valid prefix, then one layer the calculator and torch must refuse -----

@st.composite
def oversized_kernel(draw, shape):
    """A convolution kernel wider than the padded input along one axis."""
    k, p = [1, 1], [draw(st.integers(0, 2)), draw(st.integers(0, 2))]
    d, i = [draw(st.integers(1, 2)), draw(st.integers(1, 2))], draw(st.integers(0, 1))
    k[i] = (shape[1 + i] + 2 * p[i] - 1) // d[i] + 2 + draw(st.integers(0, 2))
    return [{"type": "conv2d", "out": draw(st.integers(1, 8)), "kernel": k, "padding": p, "dilation": d,
             "stride": draw(st.integers(1, 3))}]


@st.composite
def bad_groups(draw, shape):
    """groups that do not divide the input channels, or the output channels."""
    c = shape[0]
    layer, _ = draw(st.sampled_from([conv2d, conv_transpose2d]).flatmap(lambda s: s(shape)))
    options = [("in", g) for g in range(2, 10) if c % g] + [("out", g) for g in divisors(c) if g > 1]
    which, g = draw(st.sampled_from(options))
    extra = draw(st.integers(1, g - 1)) if which == "out" else 0
    return [{**layer, "groups": g, "out": g * draw(st.integers(1, 2)) + extra}]


def replace_axis(layer: dict, key: str, i: int, value: int, default: Any) -> dict:
    values = [axis(layer.get(key), j, default) for j in range(2)]
    values[i] = value
    return {**layer, key: values}


@st.composite
def bad_output_padding(draw, shape):
    layer, _ = draw(conv_transpose2d(shape))
    i = draw(st.integers(0, 1))
    s, d = axis(layer.get("stride"), i, 1), axis(layer.get("dilation"), i, 1)
    return [replace_axis(layer, "output_padding", i, max(s, d) + draw(st.integers(0, 1)), 0)]


@st.composite
def empty_transpose(draw, shape):
    """A transposed convolution whose padding leaves no output along one axis."""
    layer, _ = draw(conv_transpose2d(shape))
    i = draw(st.integers(0, 1))
    s, d, k, op = (axis(layer.get(key), i, default) for key, default in
                   [("stride", 1), ("dilation", 1), ("kernel", 1), ("output_padding", 0)])
    p = ((shape[1 + i] - 1) * s + d * (k - 1) + op) // 2 + 1 + draw(st.integers(0, 2))
    return [replace_axis(layer, "padding", i, p, 0)]


@st.composite
def bad_pool_padding(draw, shape):
    layer, _ = draw(pool2d(shape))
    i = draw(st.integers(0, 1))
    return [replace_axis(layer, "padding", i, axis(layer["kernel"], i, 1) // 2 + 1 + draw(st.integers(0, 1)), 0)]


@st.composite
def empty_pool(draw, shape):
    """A pooling window that gives no output along one axis, in floor or ceil mode."""
    i, k, p, s = draw(st.integers(0, 1)), [1, 1], [0, 0], [1, 1]
    p[i], s[i] = draw(st.integers(0, 1)), draw(st.integers(1, 3))
    k[i] = shape[1 + i] + 2 * p[i] + s[i] + draw(st.integers(0, 2))
    return [{"type": draw(st.sampled_from(["max_pool2d", "avg_pool2d"])), "kernel": k, "stride": s, "padding": p,
             "ceil_mode": draw(st.booleans())}]


@st.composite
def mismatched_concat(draw, shape):
    keep, _ = draw(branch(shape, False))
    shift = [draw(st.integers(0, 2)), draw(st.integers(0, 2))]
    if shift == [0, 0]:
        shift[draw(st.integers(0, 1))] = 1
    other = [{"type": "conv2d", "out": draw(st.integers(1, 4)), "kernel": 1, "padding": shift}]
    if max(shape[1:]) > 1 and draw(st.booleans()):
        other = [{"type": "max_pool2d", "kernel": 1, "stride": 2}]
    branches = [keep, other] if draw(st.booleans()) else [other, keep]
    return [{"type": "concat", "branches": branches}]


@st.composite
def image_layer_after_flatten(draw, shape):
    layer = draw(st.sampled_from([
        {"type": "batch_norm2d"}, {"type": "conv2d", "out": 2, "kernel": 1},
        {"type": "conv_transpose2d", "out": 2, "kernel": 1}, {"type": "max_pool2d", "kernel": 1},
        {"type": "avg_pool2d", "kernel": 1}, {"type": "adaptive_max_pool2d"},
        {"type": "adaptive_avg_pool2d", "output": 2},  # output 1 is a torch quirk: see the module docstring
    ]))
    return [{"type": "flatten"}, layer]


@st.composite
def out_of_range_field(draw, shape):
    """A zero kernel, stride or dilation, or a negative padding or output_padding, along one axis."""
    kind = draw(st.sampled_from(["conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d"]))
    make = {"conv2d": conv2d, "conv_transpose2d": conv_transpose2d}.get(kind, lambda s: pool2d(s, kind))
    layer, _ = draw(make(shape))
    keys = ["kernel", "stride", "padding"] + (["dilation"] if kind != "avg_pool2d" else []) + \
        (["output_padding"] if kind == "conv_transpose2d" else [])
    key = draw(st.sampled_from(keys))
    if isinstance(layer.get(key), str):  # 'same' or 'valid'
        layer = {**layer, key: 0}
    if key == "stride" and "stride" not in layer:  # a pooling stride defaults to the kernel
        layer = {**layer, "stride": layer["kernel"]}
    bad, default = (-1, 0) if key in ("padding", "output_padding") else (0, 1)
    return [replace_axis(layer, key, draw(st.integers(0, 1)), bad, default)]


BREAKS = [oversized_kernel, bad_groups, bad_output_padding, empty_transpose, bad_pool_padding, empty_pool,
          mismatched_concat, image_layer_after_flatten, out_of_range_field]


@st.composite
def broken_stacks(draw) -> tuple[Stack, int]:
    """(stack, index of the broken layer): a valid prefix of a drawn stack, then the break."""
    stack = draw(body())
    cut = draw(st.sampled_from([i for i, shape in enumerate((*stack.shapes, stack.output)) if shape is not None]))
    shape = stack.shapes[cut] if cut < len(stack.layers) else stack.output
    tail = draw(st.sampled_from(BREAKS).flatmap(lambda make: make(shape)))
    layers = stack.layers[:cut] + tail
    return Stack(layers, stack.input, stack.batch, (), stack.shapes[:cut]), len(layers) - 1


@seed(RUN_SEED)
@settings(max_examples=INVALID_EXAMPLES, **PROPERTY_SETTINGS)
@hypothesis.given(broken_stacks())
@example((Stack([{"type": "flatten"}, {"type": "batch_norm2d"}], (1, 1, 1), 1, (), ()), 1))
def test_broken_stacks_are_refused_by_the_calculator_and_by_torch(drawn):
    stack, broken = drawn
    remember("broken", stack)
    with pytest.raises(SpecError) as refused:
        analyze(resolve(stack.spec, "random", "<drawn>"), batch=stack.batch)
    assert f"$.layers[{broken}]" in str(refused.value)  # the broken layer, not the valid prefix
    try:
        _, _, shapes = torch_side(stack)
    except (RuntimeError, ValueError, IndexError) as exc:
        note(f"calculator: {refused.value}; torch: {type(exc).__name__}: {exc}")
    else:  # a stated rule, or torch's quirk: a transposed convolution with no output may return an empty tensor
        stated = [rule for rule, pattern in STATED_RULES.items() if re.search(pattern, str(refused.value))]
        assert stated or (stack.layers[broken]["type"] == "conv_transpose2d" and 0 in shapes[""]), \
            f"torch accepted it: {shapes}"


# ---- mutants: a valid stack with one field set to another value, often out of its domain ---------

MUTANT_EXAMPLES = 1700
MIN_ACCEPTED_MUTANTS = 1000
MUTANT_VALUES = {  # mostly inside the field's domain (so that most mutants are accepted), some outside
    "kernel": [1, 2, 3, 4, 5, [1, 4], [3, 1], 0], "stride": [1, 2, 3, [2, 1], [1, 3], 0],
    "padding": [0, 1, 2, "same", "valid", [0, 1], [1, 0], -1], "dilation": [1, 2, 3, [1, 2], 0],
    "groups": [1, 2, 3, 4, 0], "out": [1, 2, 3, 8, 0], "bias": [True, False, True, False, 0, "false"],
    "p": [0, 0.3, 0.5, 0.999, 1, -0.1], "eps": [1e-3, 1e-5, 1e-12, 0.1, 0, -1e-5],
    "output": [1, 2, 3, [1, 3], [3, 1], 0], "ceil_mode": [True, False, 1], "output_padding": [0, 1, 2, -1],
    "count_include_pad": [True, False], "affine": [True, False],
}
MUTATED_FIELDS = {
    "conv2d": ["out", "kernel", "stride", "padding", "dilation", "groups", "bias"],
    "conv_transpose2d": ["out", "kernel", "stride", "padding", "output_padding", "dilation", "groups", "bias"],
    "max_pool2d": ["kernel", "stride", "padding", "dilation", "ceil_mode"],
    "avg_pool2d": ["kernel", "stride", "padding", "ceil_mode", "count_include_pad"],
    "batch_norm2d": ["eps", "affine"], "dropout": ["p"], "linear": ["out", "bias"],
    "adaptive_avg_pool2d": ["output"], "adaptive_max_pool2d": ["output"],
}
# Refusals of archcalc's own, where torch builds the module anyway (each is listed in docs/limits.md,
# section "Stated rules"): the phrase there, and the message that shows the rule.
STATED_RULES = {
    "sizes are at least 1": r"\.(out|output): must be at least 1",
    "dropout p below 1": r"\.p: must be less than 1, got 1\b",
    "eps above 0": r"\.eps: must be greater than 0",
    "booleans are JSON true or false": r"expected true or false|is a string; use the JSON value",
    "no 'same' padding for transposed convolutions": r"the padding mode 'same' is not defined",
    "a group norm group holds more than one value": r"groups hold(s)? one value",
    "dilation is at least 1": r"\.dilation: must be at least 1, got 0",
}
# archcalc computes pooling with TensorFlow's 'same' padding, but torch's pooling pads both sides
# alike and by at most half the kernel: archcalc.torch.build (and so verify) refuses what it cannot express.
BUILDER_LIMIT = r"(max|avg)_pool2d: (asymmetric 'same' padding has no torch equivalent|padding \d+ must be at most half)"
MUTANTS: Counter = Counter()


@st.composite
def mutated_stacks(draw) -> tuple[Stack, str]:
    """(stack, what was changed): one field of one layer (inside a concat branch too) set anew."""
    stack = draw(stacks())
    layers = json.loads(json.dumps(stack.layers))
    spots = [(layers, i) for i, layer in enumerate(layers) if layer["type"] in MUTATED_FIELDS]
    spots += [(branch, i) for layer in layers if layer["type"] == "concat" for branch in layer["branches"]
              for i, inner in enumerate(branch) if inner["type"] in MUTATED_FIELDS]
    if not spots:
        return Stack(layers, stack.input, stack.batch, (), ()), "nothing"
    container, i = draw(st.sampled_from(spots))
    key = draw(st.sampled_from(MUTATED_FIELDS[container[i]["type"]]))
    value = draw(st.sampled_from(MUTANT_VALUES[key]))
    container[i] = {**container[i], key: value}
    return Stack(layers, stack.input, stack.batch, (), ()), f"{container[i]['type']}.{key} = {value!r}"


@seed(RUN_SEED)
@settings(max_examples=MUTANT_EXAMPLES, **PROPERTY_SETTINGS)
@hypothesis.given(mutated_stacks())
def test_mutants_agree_with_torch_or_are_refused_by_both(drawn):
    """Accepted: torch builds the same shapes and parameters; refused: torch refuses too, or a stated rule."""
    stack, change = drawn
    note(f"run seed {RUN_SEED!r}; change {change}; spec {json.dumps(stack.spec)} (batch {stack.batch})")
    try:
        analysis = analyze(resolve(stack.spec, "random", "<drawn>"), batch=stack.batch)
    except SpecError as refused:
        MUTANTS["refused"] += 1
        rules = [rule for rule, pattern in STATED_RULES.items() if re.search(pattern, str(refused))]
        if rules:
            MUTANTS[f"rule: {rules[0]}"] += 1
            return
        # (nn.MultiheadAttention refuses heads that do not divide the width with an assert)
        with pytest.raises((RuntimeError, ValueError, TypeError, IndexError, OverflowError, AssertionError)):
            _, _, shapes = torch_side(stack)
            if any(0 in shape for shape in shapes.values()):  # torch's quirk: an empty tensor, not an error (see above)
                raise RuntimeError("empty output")
        return
    MUTANTS["accepted"] += 1
    SEEN["mutant"].add(json.dumps([stack.spec, stack.batch], sort_keys=True))
    model, x, shapes = torch_side(stack)
    modules = dict(model.named_modules())
    for row, name in reference_names(analysis):
        module = modules[name]
        assert (shapes[name], count(module), count(module, buffers=True)) == \
            (row.output_shape, row.params, row.non_trainable), row.path
    assert (analysis.output_shape, count(model), count(model, buffers=True)) == \
        (shapes[""], analysis.totals.params, analysis.totals.non_trainable)
    with torch.no_grad():  # archcalc's own builder: the same parameters and output
        try:
            built = build_torch(analysis).eval()
        except SpecError as limit:  # stated in docs/limits.md too: computed, but not built
            assert re.search(BUILDER_LIMIT, str(limit)), limit
            MUTANTS["not built: 'same' pooling"] += 1
            return
        assert tuple(built(x).shape[1:]) == analysis.output_shape
    assert (count(built), count(built, buffers=True)) == (analysis.totals.params, analysis.totals.non_trainable)


def test_enough_accepted_mutants_ran(request):
    if not MUTANTS:
        pytest.skip("the mutant property did not run in this session")
    if request.session.testsfailed:
        pytest.skip("a property failed, so hypothesis stopped early")
    print(f"mutants: {dict(MUTANTS)}")
    assert len(SEEN["mutant"]) >= MIN_ACCEPTED_MUTANTS, (dict(MUTANTS), RUN_SEED)


def test_stated_rules_are_in_the_docs():
    limits = (Path(__file__).parent.parent / "docs" / "limits.md").read_text()
    assert "\n## Stated rules\n" in limits
    section = limits.split("\n## Stated rules\n", 1)[1]
    for rule in STATED_RULES:
        assert rule in section, rule


def test_enough_distinct_examples_ran(request):
    """Runs after the two properties above (pytest keeps the file's order)."""
    if not {"valid", "broken"} <= set(SEEN):
        pytest.skip("the property tests did not run in this session")
    if request.session.testsfailed:
        pytest.skip("a property failed, so hypothesis stopped early")
    counts = {name: len(specs) for name, specs in SEEN.items() if name != "mutant"}
    assert sum(counts.values()) >= MIN_EXAMPLES, (counts, RUN_SEED)


def test_the_generator_covers_every_layer_type():
    """Every registered layer type turns up in the random stacks (and so is cross-checked with torch).

    Drawn by hypothesis itself under the run's seed (`.example()` would pick from one small cached batch)."""
    from archcalc.layers import REGISTRY

    seen: set[str] = set()

    def collect(layers: list) -> None:
        for layer in layers:
            seen.add(layer["type"])
            for branch in layer.get("branches", []):
                collect(branch)

    @seed(RUN_SEED)
    @settings(max_examples=400, database=None, phases=[Phase.generate], **{
        k: v for k, v in PROPERTY_SETTINGS.items() if k in ("deadline", "suppress_health_check")})
    @hypothesis.given(stacks())
    def draw(stack) -> None:
        collect(stack.layers)

    draw()
    # `measured` is what an import measured of an op archcalc cannot compute: opaque, its figures given, nothing
    # of its own to cross-check (tests/test_importers_torch.py measures it against FlopCounterMode)
    assert sorted(set(REGISTRY) - seen - {"measured"}) == [], RUN_SEED
