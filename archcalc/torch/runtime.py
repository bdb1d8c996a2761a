"""Lazy access to torch, and the two small modules torch.nn does not provide."""
from __future__ import annotations

import functools

from ..errors import SpecError

INSTALL_HINT = 'pip install "archcalc[torch]" -c constraints.txt'


def require_torch():
    try:
        import torch
    except ImportError:
        raise SpecError(f"this command needs torch and fvcore: {INSTALL_HINT}") from None
    return torch


@functools.cache
def _classes():
    torch = require_torch()
    nn = torch.nn

    class LayerNorm2d(nn.LayerNorm):
        """LayerNorm over the channels of an NCHW tensor (as torchvision's ConvNeXt)."""

        def forward(self, x):
            x = x.permute(0, 2, 3, 1)
            x = nn.functional.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
            return x.permute(0, 3, 1, 2)

    class LayerScale(nn.Module):
        def __init__(self, channels: int, init: float):
            super().__init__()
            self.gamma = nn.Parameter(torch.full((channels, 1, 1), float(init)))

        def forward(self, x):
            return x * self.gamma

    return LayerNorm2d, LayerScale


def layer_norm2d(channels: int, eps: float):
    return _classes()[0](channels, eps=eps)


def layer_scale(channels: int, init: float):
    return _classes()[1](channels, init)
