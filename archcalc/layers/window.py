"""Attention within windows of a feature map, and patch merging (Swin v1/v2, MaxViT).

`window_attention` is multi-head self-attention among the positions of each window of a
map, channels first (C, H, W) or channels last (H, W, C, torchvision's Swin layout), with a
relative position bias: Swin's windows (shifted every other block, the map padded at the
bottom/right to whole windows, as torchvision does), Swin v2's cosine
attention with a learned logit scale and its continuous position bias MLP, and MaxViT's
block attention (windows without a shift) and grid attention (`grid`: the positions at the
same place of each of window x window equal blocks attend to each other).

MACs follow torchvision's published `_ops` (what torch's FlopCounterMode counts, halved):
the q/k/v and output projections over every padded position, the two attention matmuls
(q·kᵀ and attn·v, N x N x C per window each), and Swin v2's position bias MLP once per image
(torchvision runs it once per batch: at batch B that is (B - 1) x its MACs fewer);
softmax, the bias, the mask, the scale, the normalisation and the rolls are not counted.
"""
import functools
import math
from typing import Any, NamedTuple

from .. import fmt
from ..errors import SpecError
from ..kinds import Number
from . import layout
from .base import GLOBAL_RF, RF, Attrs, Field, LayerType, Shape, Warn, numel, pair, register, rf_working


def channels_sizes(name: str, shape: Shape) -> tuple[int, int, int, bool]:
    """(C, H, W) of an image or a channels-last grid, and whether it is the grid."""
    layout.need(name, shape, layout.IMAGE, layout.GRID)
    if layout.layout_of(shape) == layout.GRID:
        return shape[2], shape[0], shape[1], True
    return shape[0], shape[1], shape[2], False


class Windows(NamedTuple):
    """How window attention cuts a map: torchvision's rules, worked out once."""

    padded: tuple[int, int]  # the map padded at the bottom/right to whole windows
    window: tuple[int, int]  # a window's extent (grid: the grid's size, g x g positions P apart)
    shift: tuple[int, int]  # the shift applied (0 where the window covers the padded map)
    number: int  # windows (grid: groups of positions) per image
    tokens: int  # positions in one window: N
    grid: bool


def windows(a: Attrs, shape: Shape) -> Windows:
    channels, height, width, _ = channels_sizes("window_attention", shape)
    (wh, ww), (sh, sw) = pair(a["window"]), pair(a["shift"])
    if channels % a["heads"]:
        raise SpecError(f"heads={a['heads']} must divide the channels ({channels})")
    if a["grid"]:
        if (sh, sw) != (0, 0):
            raise SpecError(f"grid attention takes no shift, got shift {fmt.shape((sh, sw))}")
        if height % wh or width % ww:
            raise SpecError(f"grid attention needs the map {height}x{width} to be a multiple of the grid {wh}x{ww}")
        return Windows((height, width), (wh, ww), (0, 0), height // wh * (width // ww), wh * ww, True)
    if sh >= wh or sw >= ww:
        raise SpecError(f"shift {fmt.shape((sh, sw))} must be smaller than the window {fmt.shape((wh, ww))}")
    ph, pw = -(-height // wh) * wh, -(-width // ww) * ww
    shift = (0 if wh >= ph else sh, 0 if ww >= pw else sw)  # torchvision: no shift where one window covers the map
    return Windows((ph, pw), (wh, ww), shift, ph // wh * (pw // ww), wh * ww, False)


def bias_table(a: Attrs) -> int:
    """Entries of the relative position table: one per offset between two positions of a window."""
    wh, ww = pair(a["window"])
    return (2 * wh - 1) * (2 * ww - 1)


@register
class WindowAttention(LayerType):
    name = "window_attention"
    kind = "linear"
    weight_layer = True
    field_depends_on_size = True  # the shift is dropped, and grid attention spans the map, by the map's size
    doc = (
        "Multi-head self-attention within windows of an image or a channels-last grid, with a relative position bias: Swin's "
        "(shifted) windows, the map padded to whole windows; Swin v2's cosine attention, logit scale and "
        "position bias MLP (`v2`); MaxViT's block and grid (`grid`) attention. Params: q/k/v and output "
        "projections, the bias table (v1) or the logit scale and the MLP (v2). MACs: the projections over "
        "every padded position, q·kᵀ and attn·v (N·N·C per window each), and v2's MLP once per image."
    )
    fields = {
        "heads": Field("int", doc="attention heads; divides the channels", minimum=1),
        "window": Field("pair", doc="window size (grid: the grid's size)", minimum=1),
        "shift": Field("pair", 0, "cyclic shift of the windows (Swin: window // 2 every other block)"),
        "grid": Field("bool", False, "MaxViT's grid attention: the positions P apart, P = size / window"),
        "v2": Field("bool", False, "Swin v2: cosine attention, learned logit scale, position bias MLP"),
        "mlp_hidden": Field("int", 512, "hidden width of v2's position bias MLP", minimum=1),
        "qkv_bias": Field("bool", True),
        "proj_bias": Field("bool", True),
    }

    def biases(self, a: Attrs) -> int:
        return 0  # the channel count is not a field; the bias values are counted in params

    def label(self, a: Attrs) -> str:
        wh, ww = pair(a["window"])
        kind = "grid" if a["grid"] else "window"
        shift = f", shift {fmt.shape(pair(a['shift']))}" if pair(a["shift"]) != (0, 0) else ""
        return f"{kind} attention {wh}x{ww}, {a['heads']} heads{shift}"

    def output_shape(self, a: Attrs, shape: Shape, warn: Warn) -> Shape:
        windows(a, shape)
        return shape

    def params(self, a: Attrs, shape: Shape) -> int:
        c, heads = channels_sizes(self.name, shape)[0], a["heads"]
        projections = 4 * c * c + 3 * c * a["qkv_bias"] + c * a["proj_bias"]
        if a["v2"]:  # logit scale per head; MLP 2 -> hidden (bias) -> heads (no bias)
            return projections + heads + 3 * a["mlp_hidden"] + a["mlp_hidden"] * heads
        return projections + bias_table(a) * heads

    def saved_values(self, a: Attrs, shape: Shape, out: Shape) -> int:
        """The windows (padded) as the qkv projection's input; q, k and v in one tensor; the attention weights;
        the heads' output, the output projection's input. v2 keeps more: q and k normalised and, per head and
        position, their norms twice (the norm's result and the clamped divisor); the attention before the
        logit scale multiplies it in place (a copy); the position bias MLP's input and hidden layer, and the
        bias gathered from its output table (the sigmoid's result)."""
        w, c, heads = windows(a, shape), channels_sizes(self.name, shape)[0], a["heads"]
        positions = w.number * w.tokens
        attention = heads * positions * w.tokens
        if not a["v2"]:
            return 5 * positions * c + attention
        mlp = bias_table(a) * (2 + a["mlp_hidden"]) + heads * w.tokens * w.tokens
        return 7 * positions * c + 4 * heads * positions + 2 * attention + mlp

    def saved_batch_bytes(self, a: Attrs, shape: Shape) -> int:
        return 4 * a["heads"] if a["v2"] else 0  # v2: the logit scale's exponential, once, in fp32 (the builder's)

    def backward_macs(self, a: Attrs, shape: Shape, out: Shape) -> int:
        """v2's position bias MLP reads constant coordinates: its first layer has no input gradient."""
        return 2 * self.macs(a, shape, out) - (2 * bias_table(a) * a["mlp_hidden"] if a["v2"] else 0)

    def param_tensors(self, a: Attrs, shape: Shape) -> int:
        projections = 2 + a["qkv_bias"] + a["proj_bias"]
        return projections + (4 if a["v2"] else 1)  # v2: the logit scale and the MLP's three; else the bias table

    def position_mlp_macs(self, a: Attrs) -> int:
        return bias_table(a) * (2 + a["heads"]) * a["mlp_hidden"] if a["v2"] else 0

    def macs(self, a: Attrs, shape: Shape, out: Shape) -> int:
        w = windows(a, shape)
        positions, c = w.number * w.tokens, channels_sizes(self.name, shape)[0]
        return positions * 4 * c * c + 2 * w.number * w.tokens * w.tokens * c + self.position_mlp_macs(a)

    def activations(self, a: Attrs, shape: Shape, out: Shape) -> int:
        w = windows(a, shape)
        return numel(out) + w.number * a["heads"] * w.tokens * w.tokens  # the output and the attention matrices

    def steps(self, a: Attrs, shape: Shape) -> list[int]:
        """The values alive after each allocation of the torch module's forward (per image, its input
        left out), which archcalc.torch.memory measures: position bias P, the windows T (the padded map),
        q/k/v 3T, the attention matrices A, the output O."""
        w = windows(a, shape)
        c, heads, n = channels_sizes(self.name, shape)[0], a["heads"], w.tokens
        t, att, out, bias = w.number * n * c, w.number * heads * n * n, numel(shape), heads * n * n
        steps = []
        if a["v2"]:  # the offsets' coordinates, the MLP's hidden layer, its output table, the bias gathered
            coords, hidden, table = bias_table(a) * 2, bias_table(a) * a["mlp_hidden"], bias_table(a) * heads
            steps += [coords, coords + hidden, coords + hidden + table, table + bias]  # the MLP's call holds its input
        else:
            steps.append(bias)
        padded = w.padded != shape[1:]
        rolls = sum(1 for s in w.shift if s)
        held = 0  # the map in hand: at first a view of the input
        for _ in range(padded + rolls + 1):  # padded, rolled (one axis at a time), cut into windows: a copy each
            steps.append(bias + held + t)
            held = t
        steps += [bias + 4 * t, bias + 6 * t]  # q/k/v; q/k/v with the heads apart
        if a["v2"]:  # q and k normalised: a norm per position and head, then the quotient
            norms = t // (c // heads)
            steps += [bias + 4 * t + norms, bias + 5 * t + norms, bias + 5 * t + att, bias + 3 * t + att + 2 * heads]
        else:
            steps.append(bias + 3 * t + att)
        steps += [3 * t + 2 * att, 4 * t + att, 2 * t, 2 * t, 2 * t]  # softmax; attn·v; heads merged; projection; un-windowed
        steps += [2 * t] * rolls
        steps.append(t + out)
        return steps

    def live_bytes(self, a: Attrs, shape: Shape, out: Shape, value_bytes: int) -> int:
        return max(self.steps(a, shape)) * value_bytes

    def receptive_field(self, a: Attrs, rf: RF, shape: Shape) -> RF:
        w = windows(a, shape)
        if w.grid and w.number > 1:
            return GLOBAL_RF  # every group holds one position of each block: it spans the map
        return rf.partitioned(w.window, w.shift)

    def working(self, a: Attrs, shape: Shape, out: Shape, rf: RF = RF()) -> list[str]:
        w = windows(a, shape)
        c, height, _, _ = channels_sizes(self.name, shape)
        heads, n = a["heads"], w.tokens
        lines = [f"output = input: {fmt.shape(out)}"]
        if w.grid:
            lines.append(f"{w.number} groups of {n} positions {height // w.window[0]} apart")
        else:
            lines.append(f"map padded to {w.padded[0]}x{w.padded[1]}: {w.number} windows of {n} positions"
                         + (f", shifted by {fmt.shape(w.shift)}" if w.shift != (0, 0) else ""))
        extra = (f" + v2 (logit scale {heads} + MLP 3×{a['mlp_hidden']} + {a['mlp_hidden']}×{heads})" if a["v2"]
                 else f" + bias table {bias_table(a)}×{heads}")
        lines.append(f"params = 4C² + biases = 4×{c}²{extra} = {self.params(a, shape):,}")
        mlp = f" + MLP {self.position_mlp_macs(a):,}" if a["v2"] else ""
        lines.append(f"MACs = positions×4C² + 2×windows×N²×C = {w.number * n}×4×{c}² + 2×{w.number}×{n}²×{c}{mlp}"
                     f" = {self.macs(a, shape, out):,}")
        return [*lines, rf_working(rf, self.receptive_field(a, rf, shape))]

    def torch_module(self, a: Attrs, shape: Shape):
        c, height, width, channels_last = channels_sizes(self.name, shape)
        return _torch_classes().WindowAttention(a, c, (height, width), channels_last, windows(a, shape))

    # archcalc's own module, and torchvision's Swin attention (v1 and v2), run on a channels-last grid
    torch_modules = ("WindowAttention", "ShiftedWindowAttention", "ShiftedWindowAttentionV2")

    def import_fields(self, op: Any) -> dict | None:
        m = op.attrs
        own = m.get("spec_fields")
        if own is not None:
            return dict(own)
        qkv, proj = m.get("qkv"), m.get("proj")
        if qkv is None or proj is None or m.get("window_size") is None:
            return None
        fields = {"heads": int(m["num_heads"]), "window": [int(v) for v in m["window_size"]],
                  "shift": [int(v) for v in m["shift_size"]], "qkv_bias": qkv.bias is not None,
                  "proj_bias": proj.bias is not None}
        if op.target == "ShiftedWindowAttentionV2":
            fields.update(v2=True, mlp_hidden=int(m["cpb_mlp"][0].out_features))
        return fields

    def probe_module(self, module):
        from . import probe

        return probe.window_cells(module)


@register
class PatchMerging(LayerType):
    name = "patch_merging"
    kind = "linear"
    weight_layer = True
    doc = (
        "Swin's patch merging: each 2x2 block of positions (the map padded to even sizes) concatenated to "
        "4C channels, layer-normalised and reduced to 2C by a linear map without bias (v1), on an image or a "
        "channels-last grid (torchvision's layout); v2 normalises "
        "after the reduction (`norm_after`). MACs = H'·W'·4C·2C; fvcore adds 5 per normalised value."
    )
    fields = {
        "norm_after": Field("bool", False, "layer norm after the reduction (v2) instead of before it (v1)"),
        "eps": Field(Number(above=0), 1e-5, "added to the variance; > 0"),
    }

    def label(self, a: Attrs) -> str:
        return "patch merging"

    def output_shape(self, a: Attrs, shape: Shape, warn: Warn) -> Shape:
        c, h, w, channels_last = channels_sizes(self.name, shape)
        if channels_last:
            return layout.laid(layout.GRID, (-(-h // 2), -(-w // 2), 2 * c))
        return (2 * c, -(-h // 2), -(-w // 2))

    def normalised(self, a: Attrs, shape: Shape) -> int:
        """Channels the layer norm works on: 4C before the reduction, 2C after."""
        c = channels_sizes(self.name, shape)[0]
        return 2 * c if a["norm_after"] else 4 * c

    def positions(self, shape: Shape) -> int:
        """H'·W': the 2x2 blocks of the map padded to even sizes."""
        _, h, w, _ = channels_sizes(self.name, shape)
        return -(-h // 2) * -(-w // 2)

    def params(self, a: Attrs, shape: Shape) -> int:
        c = channels_sizes(self.name, shape)[0]
        return 8 * c * c + 2 * self.normalised(a, shape)

    def param_tensors(self, a: Attrs, shape: Shape) -> int:
        return 3  # the reduction's weight, the norm's weight and bias

    def saved_values(self, a: Attrs, shape: Shape, out: Shape) -> int:
        """The reduction's input (4C per position) and the norm's (4C before the reduction, 2C after it)."""
        return self.positions(shape) * (4 * channels_sizes(self.name, shape)[0] + self.normalised(a, shape))

    def saved_fixed_bytes(self, a: Attrs, shape: Shape, out: Shape) -> int:
        return 2 * self.positions(shape) * 4  # the norm's mean and inverse deviation per position, fp32

    def macs(self, a: Attrs, shape: Shape, out: Shape) -> int:
        c = channels_sizes(self.name, shape)[0]
        return self.positions(shape) * 8 * c * c

    def fvcore_flops(self, a: Attrs, shape: Shape, out: Shape) -> int:
        return self.macs(a, shape, out) + 5 * self.positions(shape) * self.normalised(a, shape)

    def live_bytes(self, a: Attrs, shape: Shape, out: Shape, value_bytes: int) -> int:
        c, h, w, channels_last = channels_sizes(self.name, shape)
        positions = self.positions(shape)
        padded = 4 * positions * c if (h % 2 or w % 2) else 0
        merged, result, stats = 4 * c * positions, numel(out), 2 * positions
        if not a["norm_after"]:  # cat; norm (+ its statistics); reduction
            steps = [padded, padded + merged, 2 * merged + stats, merged + result]
        else:  # cat; reduction; norm (+ statistics)
            steps = [padded, padded + merged, merged + result, 2 * result + stats]
        if not channels_last:
            steps.append(2 * result)  # back to CxHxW: a copy
        return max(steps) * value_bytes

    def receptive_field(self, a: Attrs, rf: RF, shape: Shape) -> RF:
        return rf.window((2, 2), (2, 2))

    def working(self, a: Attrs, shape: Shape, out: Shape, rf: RF = RF()) -> list[str]:
        c, norm = channels_sizes(self.name, shape)[0], self.normalised(a, shape)
        where = "after" if a["norm_after"] else "before"
        return [f"output {fmt.shape(shape)} -> {fmt.shape(out)} (2x2 blocks to 4C, reduced to 2C)",
                f"params = 4C×2C + 2×{norm} (layer norm {where}) = 8×{c}² + {2 * norm} = {self.params(a, shape):,}",
                f"MACs = H'×W'×4C×2C = {self.positions(shape)}×8×{c}² = {self.macs(a, shape, out):,}",
                rf_working(rf, self.receptive_field(a, rf, shape), (2, 2), (2, 2))]  # type: ignore[arg-type]

    def torch_module(self, a: Attrs, shape: Shape):
        c, _, _, channels_last = channels_sizes(self.name, shape)
        return _torch_classes().PatchMerging(c, not a["norm_after"], a["eps"], channels_last)

    torch_modules = ("PatchMerging", "PatchMergingV2")  # archcalc's and torchvision's

    def import_fields(self, op: Any) -> dict | None:
        reduction, norm = op.attrs.get("reduction"), op.attrs.get("norm")
        if reduction is None or norm is None or reduction.bias is not None:
            return None
        return {"norm_after": norm.normalized_shape[0] == reduction.out_features, "eps": float(norm.eps)}

    def probe_module(self, module):
        from . import probe

        window = probe.window_sum(module.as_window())
        return probe.channels_last(window) if module.channels_last else window


@functools.cache
def _torch_classes():
    """The torch modules, written so that each step allocates what `WindowAttention.steps` says."""
    from ..deps import require_torch

    torch = require_torch()
    nn, F = torch.nn, torch.nn.functional

    def copy(t):
        """A contiguous copy, always (reshape and contiguous() copy or not depending on the sizes)."""
        return t.clone(memory_format=torch.contiguous_format)

    def relative_index(wh: int, ww: int):
        """For each pair of positions of a window, the row of their offset in the bias table."""
        coords = torch.stack(torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij")).flatten(1)
        offset = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
        return ((offset[..., 0] + wh - 1) * (2 * ww - 1) + offset[..., 1] + ww - 1).flatten()

    def shift_mask(w: Windows):
        """-100 between positions of one window that come from different parts of the map (the shifted
        windows wrap around): torchvision's mask, per window."""
        labels = []
        for size, window, shift in zip(w.padded, w.window, w.shift):
            label = torch.zeros(size, dtype=torch.long)
            if shift:
                label[size - window:size - shift], label[size - shift:] = 1, 2
            labels.append(label)
        region = labels[0][:, None] * 3 + labels[1][None, :]
        (ph, pw), (wh, ww) = w.padded, w.window
        region = region.view(ph // wh, wh, pw // ww, ww).permute(0, 2, 1, 3).reshape(w.number, wh * ww)
        differ = region[:, None, :] != region[:, :, None]
        return torch.zeros(differ.shape).masked_fill(differ, -100.0)

    def log_coords(wh: int, ww: int):
        """v2's log-spaced relative coordinates, in [-8, 8] before the log (torchvision)."""
        h = torch.arange(-(wh - 1), wh, dtype=torch.float32) / max(wh - 1, 1)
        w = torch.arange(-(ww - 1), ww, dtype=torch.float32) / max(ww - 1, 1)
        table = torch.stack(torch.meshgrid(h, w, indexing="ij"), -1) * 8
        return torch.sign(table) * torch.log2(table.abs() + 1.0) / 3.0

    def constants(w: Windows, v2: bool) -> dict:
        """The layout's constants, made on the CPU whatever device the module is built on."""
        with torch.device("cpu"):
            made = {"relative_index": relative_index(*w.window)}
            if v2:
                made["coords_table"] = log_coords(*w.window)
            if w.shift != (0, 0):
                made["mask"] = shift_mask(w)
        return made

    class WindowAttention(nn.Module):
        def __init__(self, a: Attrs, c: int, size: tuple[int, int], channels_last: bool, w: Windows):
            super().__init__()
            heads = a["heads"]
            self.size, self.w, self.heads, self.v2, self.channels_last = size, w, heads, a["v2"], channels_last
            self.spec_fields = dict(a)  # what an import of it reads back
            self.qkv = nn.Linear(c, 3 * c, bias=a["qkv_bias"])
            self.proj = nn.Linear(c, c, bias=a["proj_bias"])
            if a["v2"]:
                self.logit_scale = nn.Parameter(torch.log(10 * torch.ones(heads, 1, 1)))
                self.cpb_mlp = nn.Sequential(nn.Linear(2, a["mlp_hidden"]), nn.ReLU(inplace=True),
                                             nn.Linear(a["mlp_hidden"], heads, bias=False))
            else:
                self.bias_table = nn.Parameter(torch.randn(bias_table(a), heads) * 0.02)
            for name, value in constants(w, a["v2"]).items():
                self.register_buffer(name, value.to(self.qkv.weight.device), persistent=False)

        def _apply(self, fn, recurse=True):
            """Moved, cast or emptied (to_empty) as every module is, the constants then made again: they are
            derived from the layout, and uninitialised memory would index out of the table."""
            super()._apply(fn, recurse)
            for name, value in constants(self.w, self.v2).items():
                old = self._buffers[name]
                self._buffers[name] = value.to(old.device, old.dtype if old.is_floating_point() else value.dtype)
            return self

        def position_bias(self, b: int):
            """(B, heads, N, N): made for every image, as the calculator counts it (torchvision makes one for
            the batch; the same values)."""
            n = self.w.tokens
            if self.v2:
                table = self.cpb_mlp(copy(self.coords_table.expand(b, -1, -1, -1))).view(b, -1, self.heads)
                bias = table[:, self.relative_index]
                del table
                torch.sigmoid_(bias).mul_(16)
            else:
                bias = self.bias_table.expand(b, -1, -1)[:, self.relative_index]
            return bias.view(b, n, n, self.heads).permute(0, 3, 1, 2)

        def partition(self, x):
            """(B, C, H, W) or (B, H, W, C) to (B·windows, N, C): the map padded and rolled as torchvision does."""
            w, (h, wd) = self.w, self.size
            (ph, pw), (wh, ww), (sh, sw) = w.padded, w.window, w.shift
            t = x if self.channels_last else x.permute(0, 2, 3, 1)
            b, c = t.shape[0], t.shape[3]
            if (ph, pw) != (h, wd):
                t = F.pad(t, (0, 0, 0, pw - wd, 0, ph - h))
            if sh:
                t = t.roll(-sh, 1)
            if sw:
                t = t.roll(-sw, 2)
            if w.grid:  # position k·P + r: grouped by r, attending over k
                t = t.reshape(b, wh, ph // wh, ww, pw // ww, c).permute(0, 2, 4, 1, 3, 5)
            else:
                t = t.reshape(b, ph // wh, wh, pw // ww, ww, c).permute(0, 1, 3, 2, 4, 5)
            return copy(t).view(b * w.number, w.tokens, c)

        def departition(self, y, b: int, c: int):
            w, (h, wd) = self.w, self.size
            (ph, pw), (wh, ww), (sh, sw) = w.padded, w.window, w.shift
            if w.grid:
                y = y.view(b, ph // wh, pw // ww, wh, ww, c).permute(0, 3, 1, 4, 2, 5)
            else:
                y = y.view(b, ph // wh, pw // ww, wh, ww, c).permute(0, 1, 3, 2, 4, 5)
            y = copy(y).view(b, ph, pw, c)
            if sh:
                y = y.roll(sh, 1)
            if sw:
                y = y.roll(sw, 2)
            y = y[:, :h, :wd, :]
            return copy(y if self.channels_last else y.permute(0, 3, 1, 2))

        def forward(self, x):
            b, c = x.shape[0], x.shape[3 if self.channels_last else 1]
            heads, n = self.heads, self.w.tokens
            bias = self.position_bias(b)
            t = self.partition(x)
            qkv = self.qkv(t)
            del t
            qkv = copy(qkv.view(-1, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4))
            q, k, v = qkv.unbind(0)
            del qkv
            if self.v2:
                q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True).clamp_min_(1e-12)
                k = k / torch.linalg.vector_norm(k, dim=-1, keepdim=True).clamp_min_(1e-12)
                attn = q @ k.transpose(-2, -1)
                del q, k
                # the scale's exponential in fp32 whatever the model's dtype (autocast's rule for exp): what
                # autograd keeps of it is the same 4 bytes a head in every dtype
                attn.mul_(torch.clamp(self.logit_scale, max=math.log(100.0)).float().exp())
            else:
                attn = q @ k.transpose(-2, -1)
                del q, k
                attn.mul_((c // heads) ** -0.5)
            attn.view(b, self.w.number, heads, n, n).add_(bias[:, None])
            del bias
            if self.w.shift != (0, 0):
                attn.view(b, self.w.number, heads, n, n).add_(self.mask.view(1, self.w.number, 1, n, n))
            attn = attn.softmax(-1)
            y = attn @ v
            del attn, v
            y = copy(y.transpose(1, 2)).view(-1, n, c)
            y = self.proj(y)
            return self.departition(y, b, c)

    class PatchMerging(nn.Module):
        def __init__(self, channels: int, norm_first: bool, eps: float, channels_last: bool):
            super().__init__()
            self.norm_first, self.channels_last = norm_first, channels_last
            self.reduction = nn.Linear(4 * channels, 2 * channels, bias=False)
            self.norm = nn.LayerNorm(4 * channels if norm_first else 2 * channels, eps=eps)

        def as_window(self):
            """For the receptive-field probe: a 2x2 window, stride 2."""
            return nn.MaxPool2d(2, 2, ceil_mode=True)

        def forward(self, x):
            t = x if self.channels_last else x.permute(0, 2, 3, 1)
            h, w = t.shape[1:3]
            if h % 2 or w % 2:
                t = F.pad(t, (0, 0, 0, w % 2, 0, h % 2))
            t = torch.cat([t[:, 0::2, 0::2], t[:, 1::2, 0::2], t[:, 0::2, 1::2], t[:, 1::2, 1::2]], -1)
            for step in (self.norm, self.reduction) if self.norm_first else (self.reduction, self.norm):
                t = step(t)  # each intermediate freed as soon as the next step has it
            return t if self.channels_last else copy(t.permute(0, 3, 1, 2))

    class Classes(NamedTuple):
        WindowAttention: type
        PatchMerging: type

    return Classes(WindowAttention, PatchMerging)
