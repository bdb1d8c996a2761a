"""Stand-ins for the receptive-field probe (archcalc.torch.rf_probe), built from a layer's torch module.

The probe runs the network on one channel in float64 with every weight replaced by a window
of ones, so a gradient is non-zero exactly where an output depends on the input. Each layer
type says, through `LayerType.probe_module`, how its torch module becomes such a stand-in:
`keep` it (average pooling, flatten), make it the `identity` (per-position layers: activations,
normalisations, scales), or a `window_sum` of ones with the module's own kernel, stride,
padding, dilation and ceil_mode (convolutions, max pooling). torch is imported only here.
"""
from __future__ import annotations

import functools

from ..deps import require_torch


def identity(module):
    return require_torch().nn.Identity()


def keep(module):
    return module


@functools.cache
def _classes():
    torch = require_torch()
    nn, F = torch.nn, torch.nn.functional
    pair = nn.modules.utils._pair

    class WindowSum(nn.Module):
        """The windows of a convolution or max pooling, summed with weight one, on any channels."""

        def __init__(self, kernel, stride, padding, dilation, ceil_mode=False, transposed=False, output_padding=0):
            super().__init__()
            self.kernel, self.stride, self.padding = pair(kernel), pair(stride), pair(padding)
            self.dilation, self.ceil_mode, self.transposed = pair(dilation), ceil_mode, transposed
            self.output_padding = pair(output_padding)

        def forward(self, x):
            ones = torch.ones(x.shape[1], 1, *self.kernel, dtype=x.dtype, device=x.device)
            if self.transposed:  # output_padding only adds rows no input reaches
                return F.conv_transpose2d(x, ones, None, self.stride, self.padding, self.output_padding,
                                          x.shape[1], self.dilation)
            (ph, pw), (sh, sw) = self.padding, self.stride
            extra = (sh, sw) if self.ceil_mode else (0, 0)  # room for a last window that overhangs
            padded = F.pad(x, [pw, pw + extra[1], ph, ph + extra[0]])
            if self.dilation == (1, 1):  # the same support, computed faster: the mean of each window
                out = F.avg_pool2d(padded, self.kernel, self.stride)
            else:
                out = F.conv2d(padded, ones, None, self.stride, 0, self.dilation, x.shape[1])
            if self.ceil_mode:  # torch's rule: the last window starts inside the input or its left padding
                rows, cols = (_ceil_size(n, k, s, p, d) for n, k, s, p, d in
                              zip(x.shape[2:], self.kernel, self.stride, self.padding, self.dilation))
                out = out[..., :rows, :cols]
            return out

    return WindowSum


def _ceil_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    span = dilation * (kernel - 1) + 1
    out = -(-(size + 2 * padding - span) // stride) + 1
    return out - 1 if (out - 1) * stride >= size + padding else out


def window_sum(module):
    """A convolution, transposed convolution or max pooling (possibly behind a ZeroPad2d) as a window of ones."""
    nn = require_torch().nn
    window_sum_class = _classes()
    if isinstance(module, nn.Sequential):
        return nn.Sequential(*(child if isinstance(child, nn.ZeroPad2d) else window_sum(child) for child in module))
    if isinstance(getattr(module, "pieces", None), nn.ModuleList):  # a connection table: one window for every piece
        return window_sum(module.pieces[0])
    if isinstance(module, nn.ConvTranspose2d):
        return window_sum_class(module.kernel_size, module.stride, module.padding, module.dilation,
                                transposed=True, output_padding=module.output_padding)
    if isinstance(module, nn.Conv2d):
        return window_sum_class(module.kernel_size, module.stride, module.padding, module.dilation)
    if isinstance(module, nn.MaxPool2d):
        return window_sum_class(module.kernel_size, module.stride, module.padding, module.dilation, module.ceil_mode)
    raise TypeError(f"no window for {type(module).__name__}")  # pragma: no cover


def window_cells(module):
    """Window attention as the sum over each window, put back at every position of the window; windows start
    at the shift (torchvision's rolled windows with their mask); grid attention as the sum over the whole map."""
    torch = require_torch()
    nn, F = torch.nn, torch.nn.functional
    w, size, channels_last = module.w, module.size, module.channels_last

    class Cells(nn.Module):
        def forward(self, x):
            if channels_last:  # a channels-last grid: the same sums on its image view
                return self.sums(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
            return self.sums(x)

        def sums(self, x):
            if w.grid:
                return x.sum((2, 3), keepdim=True).expand_as(x)
            (wh, ww), (sh, sw) = w.window, w.shift
            top, left = (wh - sh) % wh, (ww - sw) % ww  # the first window boundary at the shift
            bottom, right = -(size[0] + top) % wh, -(size[1] + left) % ww
            padded = F.pad(x, (left, right, top, bottom))
            sums = F.avg_pool2d(padded, (wh, ww)).repeat_interleave(wh, 2).repeat_interleave(ww, 3)
            return sums[..., top:top + size[0], left:left + size[1]]

    return Cells()


def channels_last(module):
    """A stand-in for images run on a channels-last grid (its image view, permuted back)."""
    nn = require_torch().nn

    class ChannelsLast(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = module

        def forward(self, x):
            return self.inner(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)

    return ChannelsLast()


def adaptive_average(module):
    """Adaptive max pooling reads the same windows as adaptive average pooling."""
    return require_torch().nn.AdaptiveAvgPool2d(module.output_size)
