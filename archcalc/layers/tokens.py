"""Layers of token sequences (L, D): multi-head self-attention, the class token, learned position
embeddings and the selection of one token.

Attention's MAC convention (docs/conventions.md): the q/k/v and output projections (4·L·D² with one
head size d = D/h) and the two matrix products of activations, Q·Kᵀ and A·V, h·L·L·d each; the
softmax, the scaling and the biases are not counted. torchvision's `_ops` for ViT count the same.
"""
from __future__ import annotations

import functools
from typing import Any

from ..errors import SpecError
from ..kinds import Integer, Number
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
)


def need_tokens(name: str, shape: Shape) -> tuple[int, int]:
    return layout.need(name, shape, layout.TOKENS)  # type: ignore[return-value]


@functools.cache
def _torch_classes():
    """The torch modules of the token layers, the batch axis in front (batch_first)."""
    from ..deps import require_torch

    torch = require_torch()
    nn = torch.nn

    class SelfAttention(nn.MultiheadAttention):
        """torch's nn.MultiheadAttention as self-attention on (N, L, D), need_weights=False, always computed on
        the non-fused path with the math kernel of scaled_dot_product_attention (Q·Kᵀ, softmax, A·V as
        separate products): the attention matrices are allocated on every device, and FlopCounterMode sees
        both products. Its weights, and so its parameters and output, are nn.MultiheadAttention's."""

        def forward(self, x):
            from torch.nn.attention import SDPBackend, sdpa_kernel

            q = x.transpose(0, 1)  # what nn.MultiheadAttention does for batch_first self-attention
            with sdpa_kernel(SDPBackend.MATH):
                out, _ = nn.functional.multi_head_attention_forward(
                    q, q, q, self.embed_dim, self.num_heads, self.in_proj_weight, self.in_proj_bias, None, None,
                    False, self.dropout, self.out_proj.weight, self.out_proj.bias, training=self.training,
                    need_weights=False)
            return out.transpose(0, 1)

    class ClassToken(nn.Module):
        """A learned D-vector put in front of the tokens (torchvision's VisionTransformer.class_token)."""

        def __init__(self, features: int):
            super().__init__()
            self.class_token = nn.Parameter(torch.zeros(1, 1, features))

        def forward(self, x):
            return torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)

    class PositionEmbedding(nn.Module):
        """A learned (L, D) tensor added to the tokens (torchvision's Encoder.pos_embedding)."""

        def __init__(self, tokens: int, features: int):
            super().__init__()
            self.pos_embedding = nn.Parameter(torch.empty(1, tokens, features).normal_(std=0.02))

        def forward(self, x):
            return x + self.pos_embedding

    class SelectToken(nn.Module):
        def __init__(self, index: int):
            super().__init__()
            self.index = index

        def forward(self, x):
            return x[:, self.index]

    class GlobalMix(nn.Module):
        """The probe's stand-in for attention: every token the sum of all of them."""

        def forward(self, x):
            return x.sum(1, keepdim=True).expand_as(x)

    class ProbeClassToken(nn.Module):
        """The probe's class token: a token that depends on no pixel."""

        def forward(self, x):
            return torch.cat([torch.zeros_like(x[:, :1]), x], dim=1)

    return SelfAttention, ClassToken, PositionEmbedding, SelectToken, GlobalMix, ProbeClassToken


@register
class MultiheadAttention(LayerType):
    name = "multihead_attention"
    kind = "linear"
    doc = ("Multi-head self-attention on tokens LxD (torch's nn.MultiheadAttention, batch_first, need_weights=False). "
           "params 4D² + 4D (q/k/v and output projections, with bias); MACs 4·L·D² (projections) + 2·h·L·L·d "
           "(Q·Kᵀ and A·V, d = D/h), softmax not counted. fvcore counts the projections only (no handle for "
           "scaled_dot_product_attention); verify compares the MACs with torch's FlopCounterMode. Every output "
           "token sees every input token: the field is global.")
    fields = {"heads": Field("int", doc="attention heads h; D/h features each", minimum=1),
              "bias": Field("bool", True, "biases of the projections"),
              "dropout": Field(Number(minimum=0, below=1), 0.0, "dropout on the attention weights in training")}
    counted_by = "torch"

    def label(self, a: Attrs) -> str:
        return f"attention {a['heads']}h"

    def output_shape(self, a: Attrs, shape: Shape, warn: Warn) -> Shape:
        _, features = need_tokens(self.name, shape)
        if features % a["heads"]:
            raise SpecError(f"{a['heads']} heads do not divide the {features} features")
        return shape

    def params(self, a: Attrs, shape: Shape) -> int:
        features = shape[-1]
        return 4 * features * features + (4 * features if a["bias"] else 0)

    def param_tensors(self, a: Attrs, shape: Shape) -> int:
        return 4 if a["bias"] else 2  # the input projection's weight and bias, the output projection's

    saves_input = True  # the input projection's

    def saved_values(self, a: Attrs, shape: Shape, out: Shape) -> int:
        """Its input; q, k and v in one tensor; q and k scaled (the math kernel); the attention weights (and,
        with dropout, its mask and their product); the heads' output, the output projection's input."""
        tokens, features = numel(shape[:-1]), shape[-1]
        weights = a["heads"] * tokens * tokens
        return tokens * features * (1 + 3 + 2 + 1) + weights * (3 if a["dropout"] > 0 else 1)

    def attention_macs(self, a: Attrs, shape: Shape) -> int:
        """Q·Kᵀ and A·V: h·L·L·d each, h·d = D."""
        tokens, features = shape
        return 2 * tokens * tokens * features

    def macs(self, a: Attrs, shape: Shape, out: Shape) -> int:
        tokens, features = shape
        return 4 * tokens * features * features + self.attention_macs(a, shape)

    def fvcore_flops(self, a: Attrs, shape: Shape, out: Shape) -> int:
        tokens, features = shape
        return 4 * tokens * features * features  # its linear handle; scaled_dot_product_attention is not counted

    def receptive_field(self, a: Attrs, rf: RF, shape: Shape) -> RF:
        return GLOBAL_RF

    def live_bytes(self, a: Attrs, shape: Shape, out: Shape, value_bytes: int) -> int:
        """What torch holds on the math path, its input left out (n = L·D, A = h·L·L): the packed q/k/v
        projection and its contiguous copy (6n); then, in the attention, the copy, the scaled K, the scores
        and their softmax (4n + 2A); then the copy, the scaled K, the weights and A·V (5n + A)."""
        tokens, features = shape
        n, scores = tokens * features, a["heads"] * tokens * tokens
        return max(6 * n, 4 * n + 2 * scores, 5 * n + scores) * value_bytes

    def working(self, a: Attrs, shape: Shape, out: Shape, rf: RF = RF()) -> list[str]:
        tokens, features = shape
        h = a["heads"]
        bias = f" + 4×{features}" if a["bias"] else ""
        return [
            f"output = input: {tokens} tokens × {features}, {h} heads of {features // h}",
            f"params = 4D² + bias = 4×{features}²{bias} = {self.params(a, shape):,}",
            f"MACs = 4·L·D² + 2·h·L·L·d = 4×{tokens}×{features}² + 2×{h}×{tokens}×{tokens}×{features // h} = "
            f"{self.macs(a, shape, out):,}",
            rf_working(rf, GLOBAL_RF),
        ]

    def probe_module(self, module):
        return _torch_classes()[4]()

    def torch_module(self, a: Attrs, shape: Shape):
        return _torch_classes()[0](shape[-1], a["heads"], dropout=a["dropout"], bias=a["bias"], batch_first=True)

    torch_modules = ("SelfAttention", "MultiheadAttention")  # the module torch_module builds; torch's, batch first

    def import_fields(self, op: Any) -> dict | None:
        a = op.attrs
        if not a.get("batch_first", True) or not a.get("_qkv_same_embed_dim", True):
            return None
        return {"heads": a["num_heads"], "bias": a["in_proj_bias"] is not None, "dropout": float(a["dropout"])}


@register
class ClassToken(LayerType):
    name = "class_token"
    doc = "A learned D-vector put in front of the tokens: L x D to (L+1) x D, D parameters (a new tensor)."

    def output_shape(self, a: Attrs, shape: Shape, warn: Warn) -> Shape:
        tokens, features = need_tokens(self.name, shape)
        return (tokens + 1, features)

    def params(self, a: Attrs, shape: Shape) -> int:
        return shape[-1]

    def working(self, a: Attrs, shape: Shape, out: Shape, rf: RF = RF()) -> list[str]:
        return [f"tokens {shape[0]} + 1 = {out[0]}", f"params = D = {shape[-1]:,}, MACs = 0",
                rf_working(rf, rf)]

    def probe_module(self, module):
        return _torch_classes()[5]()

    def torch_module(self, a: Attrs, shape: Shape):
        return _torch_classes()[1](shape[-1])

    torch_modules = ("ClassToken",)
    torch_functions = ("cat",)  # torch.cat([token.expand(n, -1, -1), x], dim=1): one input is a parameter
    onnx_ops = ("Concat",)  # its export: a Concat of the tokens and a constant (1, 1, D)

    def import_fields(self, op: Any) -> dict | None:
        if op.origin == "module":
            return {}
        tokens = op.input
        axis = op.attrs.get("axis") if op.origin == "onnx" else op.attrs.get("dim")
        fits = len(tokens) == 2 and op.output == (tokens[0] + 1, tokens[1]) and axis in (1, -2)
        return {} if fits else None


@register
class PositionEmbedding(LayerType):
    name = "position_embedding"
    doc = "A learned L x D tensor added to the tokens (a new tensor): L·D parameters, no MACs."

    def output_shape(self, a: Attrs, shape: Shape, warn: Warn) -> Shape:
        return need_tokens(self.name, shape)

    def params(self, a: Attrs, shape: Shape) -> int:
        return numel(shape)

    def working(self, a: Attrs, shape: Shape, out: Shape, rf: RF = RF()) -> list[str]:
        return ["output = input", f"params = L·D = {shape[0]}×{shape[1]} = {numel(shape):,}, MACs = 0",
                rf_working(rf, rf)]

    def torch_module(self, a: Attrs, shape: Shape):
        return _torch_classes()[2](*shape)

    torch_modules = ("PositionEmbedding",)
    torch_functions = ("add",)  # x + self.pos_embedding, a (1, L, D) parameter
    onnx_ops = ("Add",)  # its export: an Add of a constant (1, L, D)

    def import_fields(self, op: Any) -> dict | None:
        if op.origin == "module":
            return {}
        return {} if len(op.input) == 2 and [tuple(w[-2:]) for w in op.weights] == [tuple(op.input)] else None


@register
class SelectToken(LayerType):
    name = "select_token"
    doc = "One token of L x D as a flat D-vector (`index` 0: the class token), as x[:, index]: a view."
    fields = {"index": Field(Integer(), 0, "the token (negative from the end)")}
    allocates = False
    returns_input = True

    def label(self, a: Attrs) -> str:
        return f"token {a['index']}"

    def output_shape(self, a: Attrs, shape: Shape, warn: Warn) -> Shape:
        tokens, features = need_tokens(self.name, shape)
        if not -tokens <= a["index"] < tokens:
            raise SpecError(f"token {a['index']} is not one of the {tokens} tokens")
        return (features,)

    def probe_module(self, module):
        from . import probe

        return probe.keep(module)

    def torch_module(self, a: Attrs, shape: Shape):
        return _torch_classes()[3](a["index"])

    torch_modules = ("SelectToken",)
    torch_functions = ("getitem",)  # x[:, 0]

    def import_fields(self, op: Any) -> dict | None:
        if op.origin == "module":
            return {"index": op.attrs["index"]}
        key = (op.attrs.get("args") or (None,))[0]
        whole = slice(None)
        if len(op.input) == 2 and isinstance(key, tuple) and len(key) == 2 and key[0] == whole and isinstance(key[1], int):
            return {"index": key[1]}
        return None
