"""Layers that rearrange or select channels: channel shuffle (ShuffleNet) and a channel slice.

Both work position by position, so their receptive-field probe stand-in is the default identity
(the probe runs on one channel, where a shuffle or a slice of channels has nothing to select).
"""
from __future__ import annotations

import functools
from typing import Any

from .. import fmt
from ..errors import SpecError
from .base import RF, Attrs, Field, LayerType, Shape, Warn, register, rf_working


@functools.cache
def _torch_classes():
    """The channel slice as a torch module (torch.nn has ChannelShuffle but no slice)."""
    from ..deps import require_torch

    nn = require_torch().nn

    class ChannelSlice(nn.Module):
        """x[:, start:stop]: a view of the input, as torchvision's x.chunk(2, dim=1) gives."""

        def __init__(self, start: int, stop: int):
            super().__init__()
            self.start, self.stop = start, stop

        def forward(self, x):
            return x[:, self.start:self.stop]

        def extra_repr(self) -> str:
            return f"start={self.start}, stop={self.stop}"

    return (ChannelSlice,)


def _channels(name: str, shape: Shape) -> int:
    if len(shape) not in (1, 3):
        raise SpecError(f"{name} needs a CxHxW or flat input, got {fmt.shape(shape)}")
    return shape[0]


@register
class ChannelShuffle(LayerType):
    name = "channel_shuffle"
    doc = (
        "ShuffleNet's channel shuffle: the C channels read as `groups` rows of C/groups, transposed "
        "(channel g*(C/groups) + j goes to j*groups + g). The shape is kept; no parameters, no MACs, "
        "fvcore counts 0. torch makes a new tensor (view, transpose, contiguous copy), so it allocates "
        "its output. Each output channel is one input channel at the same position: the field is unchanged."
    )
    fields = {"groups": Field("int", 2, "groups the channels are split into before the transpose", minimum=1)}

    def output_shape(self, a: Attrs, shape: Shape, warn: Warn) -> Shape:
        channels = _channels(self.name, shape)
        if channels % a["groups"]:
            raise SpecError(f"channel_shuffle: groups {a['groups']} does not divide the {channels} channels")
        return shape

    def label(self, a: Attrs) -> str:
        return f"shuffle g{a['groups']}"

    def working(self, a: Attrs, shape: Shape, out: Shape, rf: RF = RF()) -> list[str]:
        c, g = shape[0], a["groups"]
        return [f"output = input: {fmt.shape(out)} ({g} groups of {c // g} channels, transposed)",
                "params = 0, MACs = 0 (a copy)", rf_working(rf, self.receptive_field(a, rf, shape))]

    def torch_module(self, a: Attrs, shape: Shape):
        from .base import torch_nn

        return torch_nn().ChannelShuffle(a["groups"])

    torch_modules = ("ChannelShuffle",)
    torch_functions = ("channel_shuffle",)  # torch.channel_shuffle; the importers' fold of view, transpose, view

    def import_fields(self, op: Any) -> dict | None:
        groups = op.attrs.get("groups")
        return {"groups": int(groups)} if groups else None


@register
class ChannelSlice(LayerType):
    name = "slice"
    doc = (
        "Channels [start, stop) of the input (x[:, start:stop], one of the halves of ShuffleNet's "
        "x.chunk(2, dim=1)): a view, so no new memory; the tensor it views stays alive while the slice "
        "does. No parameters, no MACs; the field is unchanged."
    )
    fields = {
        "start": Field("int", 0, "first channel taken", minimum=0),
        "stop": Field("int", doc="one past the last channel taken", minimum=1),
    }
    allocates = False
    returns_input = True

    def output_shape(self, a: Attrs, shape: Shape, warn: Warn) -> Shape:
        channels = _channels(self.name, shape)
        start, stop = a["start"], a["stop"]
        if not start < stop <= channels:
            raise SpecError(f"slice: channels [{start}, {stop}) are not a non-empty range of the {channels} channels")
        return (stop - start, *shape[1:])

    def label(self, a: Attrs) -> str:
        return f"channels {a['start']}:{a['stop']}"

    def working(self, a: Attrs, shape: Shape, out: Shape, rf: RF = RF()) -> list[str]:
        return [f"output {fmt.shape(shape)} -> {fmt.shape(out)}: channels [{a['start']}, {a['stop']}), "
                f"{a['stop']} - {a['start']} = {out[0]}", "params = 0, MACs = 0 (a view)",
                rf_working(rf, self.receptive_field(a, rf, shape))]

    def torch_module(self, a: Attrs, shape: Shape):
        return _torch_classes()[0](a["start"], a["stop"])

    torch_modules = ("ChannelSlice",)
    torch_functions = ("chunk", "split", "tensor_split")  # one piece, taken by x.chunk(2, dim=1)[i] and the like
    onnx_ops = ("Split", "Slice")  # one output of a Split along the channels, a Slice of them

    def import_fields(self, op: Any) -> dict | None:
        start, stop = op.attrs.get("start"), op.attrs.get("stop")
        if not isinstance(start, int) or not isinstance(stop, int):
            return None
        return {"stop": stop} if start == 0 else {"start": start, "stop": stop}
