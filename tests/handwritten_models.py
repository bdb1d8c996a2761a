"""Networks written by hand in plain PyTorch (not built by archcalc), for the import tests.

Each is the kind of `forward` code people write: functional calls, `+=` and `torch.cat`,
squeeze-and-excitation gates, a U-Net with skips, transposed, grouped, depthwise, dilated and
asymmetric convolutions, explicit pads.
"""
from __future__ import annotations

import sys

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    """torchvision's: one ReLU module used twice, `out += identity`, an optional downsample."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class TinyResNet(nn.Module):
    """The stem and the classifier as functional calls on parameters of the module."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem_weight = nn.Parameter(torch.randn(16, 3, 3, 3) * 0.1)
        self.stem_bias = nn.Parameter(torch.zeros(16))
        self.layer1 = nn.Sequential(BasicBlock(16, 16), BasicBlock(16, 32, stride=2))
        self.fc_weight = nn.Parameter(torch.randn(classes, 32) * 0.1)
        self.fc_bias = nn.Parameter(torch.zeros(classes))

    def forward(self, x):
        x = F.relu(F.conv2d(x, self.stem_weight, self.stem_bias, padding=1))
        x = F.max_pool2d(x, 3, stride=2, padding=1)
        x = self.layer1(x)
        x = F.adaptive_avg_pool2d(x, 1)
        return F.linear(torch.flatten(x, 1), self.fc_weight, self.fc_bias)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, squeeze: int, hard: bool):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.hard = hard

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        s = self.fc2(F.relu(self.fc1(s)))
        return x * (F.hardsigmoid(s) if self.hard else torch.sigmoid(s))


class MobileBlock(nn.Module):
    """Expand 1x1, depthwise 3x3 (groups = channels), SE, project; ReLU6 written three ways."""

    def __init__(self, cin: int, cout: int, expand: int, stride: int, hard: bool):
        super().__init__()
        mid = cin * expand
        self.expand = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn0 = nn.BatchNorm2d(mid)
        self.depthwise = nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.act = nn.Hardtanh(0.0, 6.0)
        self.se = SqueezeExcite(mid, max(1, cin // 4), hard)
        self.project = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = F.relu6(self.bn0(self.expand(x)))
        y = self.act(self.bn1(self.depthwise(y)))
        y = self.se(y).clamp(0, 6)
        y = self.bn2(self.project(y))
        return x + y if self.residual else y


class MobileSE(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.Hardswish())
        self.blocks = nn.Sequential(MobileBlock(16, 16, 2, 1, False), MobileBlock(16, 24, 3, 2, True),
                                    MobileBlock(24, 24, 3, 1, True))
        self.grouped = nn.Conv2d(24, 48, 3, padding=1, groups=4)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(48, 5))

    def forward(self, x):
        x = self.blocks(self.stem(x))
        x = F.silu(self.grouped(x))
        return self.head(F.adaptive_avg_pool2d(x, (1, 1))).softmax(dim=1)


def double_conv(cin: int, cout: int, groups: int = 4) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(groups, cout), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.GroupNorm(groups, cout), nn.ReLU())


class UNet(nn.Module):
    """Two levels down, two up: transposed-conv and bilinear upsampling, skips joined by torch.cat."""

    def __init__(self, channels: int = 3, classes: int = 2, width: int = 8):
        super().__init__()
        self.enc1 = double_conv(channels, width)
        self.enc2 = double_conv(width, 2 * width)
        self.mid = double_conv(2 * width, 4 * width)
        self.up2 = nn.ConvTranspose2d(4 * width, 2 * width, 2, stride=2)
        self.dec2 = double_conv(4 * width, 2 * width)
        self.reduce = nn.Conv2d(2 * width, width, 1)
        self.dec1 = double_conv(2 * width, width)
        self.out = nn.Conv2d(width, classes, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        m = self.mid(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(m), e2], dim=1))
        up = F.interpolate(self.reduce(d2), scale_factor=2, mode="bilinear", align_corners=False)
        d1 = self.dec1(torch.cat([up, e1], dim=1))
        return self.out(d1)


class Asymmetric(nn.Module):
    """Factorised 1x7 / 7x1 kernels in an Inception-style concat, a TensorFlow-style explicit pad,
    dilation, a dense-style concat, pooling with ceil_mode and count_include_pad=False, LRN."""

    def __init__(self):
        super().__init__()
        self.pad = nn.ZeroPad2d((0, 1, 0, 1))
        self.stem = nn.Conv2d(3, 12, 3, stride=2)
        self.lrn = nn.LocalResponseNorm(5)
        self.branch_a = nn.Conv2d(12, 8, (1, 7), padding=(0, 3))
        self.branch_b = nn.Sequential(nn.Conv2d(12, 8, (7, 1), padding=(3, 0)), nn.ReLU(),
                                      nn.Conv2d(8, 8, 3, padding=2, dilation=2))
        self.pool = nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
        self.dense = nn.Conv2d(16, 4, 3, padding=1)
        self.upsample = nn.Upsample(scale_factor=2)
        self.wide = nn.ConvTranspose2d(20, 6, 3, stride=2, padding=1, output_padding=1, groups=2)
        self.fc = nn.Linear(6 * 4 * 4, 3)

    def forward(self, x):
        x = self.lrn(torch.tanh(self.stem(self.pad(x))))
        x = torch.cat([self.branch_a(x), self.branch_b(x)], 1)
        x = self.pool(x)
        x = torch.cat([x, F.relu(self.dense(x))], 1)
        x = F.max_pool2d(self.upsample(x), kernel_size=2, ceil_mode=True)
        x = F.adaptive_max_pool2d(self.wide(x), 4)
        return self.fc(x.view(x.size(0), -1))


def tiny_resnet() -> nn.Module:
    return TinyResNet()


def broken() -> nn.Module:
    raise RuntimeError("no weights here")


def exits() -> nn.Module:
    sys.exit(3)


class ExitsInForward(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        sys.exit(4)


def upsamples_a_thousandfold() -> nn.Module:
    """A small input, activations of 3 x 8,000 x 8,000 x 4 bytes = 768 MB per upsampling, 100 of them: 76.8 GB."""
    return nn.Sequential(*[nn.Sequential(nn.Upsample(scale_factor=1000), nn.MaxPool2d(1000)) for _ in range(100)])


def shared_conv() -> nn.Module:
    """One convolution used twice: its weights are counted once (torch's parameters(), fvcore's count)."""
    conv = nn.Conv2d(3, 3, 3, padding=1)
    return nn.Sequential(conv, nn.ReLU(), conv)


class TiedConvs(nn.Module):
    """Two convolutions with one set of weights (b's are a's), and a batch norm used twice."""

    def __init__(self, tie_bias: bool = True):
        super().__init__()
        self.a, self.b = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.b.weight = self.a.weight
        if tie_bias:
            self.b.bias = self.a.bias

    def forward(self, x):
        return self.bn(self.b(F.relu(self.bn(self.a(x)))))


class FunctionalTwice(nn.Module):
    """One weight and bias, applied twice by F.conv2d."""

    def __init__(self):
        super().__init__()
        self.w, self.b = nn.Parameter(torch.randn(4, 4, 3, 3)), nn.Parameter(torch.zeros(4))

    def forward(self, x):
        x = F.conv2d(F.relu(F.conv2d(x, self.w, self.b, padding=1)), self.w, self.b, padding=1)
        return F.relu(x)


class NotSeriesParallel(nn.Module):
    """b reads a's output and the input: the two paths from the input cross."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 3, 1)
        self.b = nn.Conv2d(3, 3, 1)
        self.c = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        a = self.a(x)
        b = self.b(x) + a
        return self.c(a) + b


class Unsupported(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.norm = nn.InstanceNorm2d(4)

    def forward(self, x):
        return self.norm(self.conv(x))


class LeNet5(nn.Module):
    """LeNet-5 as it is usually typed in: other names than archcalc's zoo spec, the same layers."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 5)
        self.c3 = nn.Conv2d(6, 16, 5)
        self.c5 = nn.Conv2d(16, 120, 5)
        self.f6 = nn.Linear(120, 84)
        self.out = nn.Linear(84, 10)

    def forward(self, x):
        x = F.avg_pool2d(torch.tanh(self.c1(x)), 2)
        x = F.avg_pool2d(torch.tanh(self.c3(x)), 2)
        x = torch.flatten(torch.tanh(self.c5(x)), 1)
        return self.out(torch.tanh(self.f6(x)))


class ConvNeXtBlock(nn.Module):
    """The ConvNeXt block as its authors wrote it: the MLP as Linear layers on a channels-last tensor,
    the layer scale a (C,) parameter multiplied before the permute back."""

    def __init__(self, dim: int, layer_scale: float = 1e-6):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(layer_scale * torch.ones(dim))

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return x + (self.gamma * y).permute(0, 3, 1, 2)


class ChannelsFirstNorm(nn.Module):
    """LayerNorm over the channels of an NCHW tensor, written with torch.permute and F.layer_norm."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        x = torch.permute(x, (0, 2, 3, 1))
        return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, 1e-6).permute([0, 3, 1, 2])


class TinyConvNeXt(nn.Module):
    """A patchify stem, two blocks, a downsampling layer, one block, a linear head."""

    def __init__(self, classes: int = 5):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 4, stride=4), ChannelsFirstNorm(16))
        self.stage1 = nn.Sequential(ConvNeXtBlock(16), ConvNeXtBlock(16))
        self.downsample = nn.Sequential(ChannelsFirstNorm(16), nn.Conv2d(16, 32, 2, stride=2))
        self.stage2 = ConvNeXtBlock(32)
        self.head = nn.Linear(32, classes)

    def forward(self, x):
        x = self.stage2(self.downsample(self.stage1(self.stem(x))))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class StrayPermute(nn.Module):
    """A permute to channels-last that is never undone: the linear layer reads the image's width."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        return self.fc(self.conv(x).permute(0, 1, 3, 2))


class NormOverTheImage(nn.Module):
    """LayerNorm over C, H and W of an NCHW tensor: not a norm over the channels of each position."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.norm = nn.LayerNorm([4, 6, 6])

    def forward(self, x):
        return self.norm(self.conv(x))


@torch.fx.wrap
def stochastic_depth(x, p: float, mode: str, training: bool = True):
    """torchvision.ops.stochastic_depth's signature: a per-sample drop in training, the identity at inference."""
    if not training or p == 0.0:
        return x
    keep = torch.empty([x.shape[0]] + [1] * (x.ndim - 1)).bernoulli_(1 - p)
    return x * keep / (1 - p)


class StochasticDepth(nn.Module):
    """torchvision.ops.StochasticDepth as a module: its class name and `p` are what the import reads."""

    def __init__(self, p: float, mode: str = "row"):
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, x):
        return stochastic_depth(x, self.p, self.mode, self.training)


class DropPathBlocks(nn.Module):
    """Two residual blocks whose branches end in stochastic depth: as a module, then as the function."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1)
        self.drop1 = StochasticDepth(0.1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        x = x + self.drop1(self.conv1(x))
        return x + stochastic_depth(self.conv2(x), 0.2, "row", self.training)


def channel_shuffle(x, groups: int):
    """ShuffleNet's shuffle as torchvision writes it: view, transpose, contiguous, view."""
    batch, channels, height, width = x.size()
    x = x.view(batch, groups, channels // groups, height, width)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(batch, -1, height, width)


class ShuffleUnit(nn.Module):
    """A ShuffleNet v2 unit: half the channels pass, the other half go through a branch, then a shuffle;
    it returns a tuple (the prediction first) as detection-style heads do."""

    def __init__(self, channels: int = 8):
        super().__init__()
        half = channels // 2
        self.branch = nn.Sequential(nn.Conv2d(half, half, 1), nn.ReLU(), nn.Conv2d(half, half, 3, padding=1, groups=half))

    def forward(self, x):
        x1, x2 = x.chunk(2, dim=1)
        out = channel_shuffle(torch.cat((x1, self.branch(x2)), dim=1), 2)
        return out, x1


class TokenMixer(nn.Module):
    """Permutes, transposes and flattens over axes: an image to tokens and back, as an MLP-Mixer writes it."""

    def __init__(self, channels: int = 4, tokens: int = 48):
        super().__init__()
        self.mix = nn.Linear(tokens, tokens)
        self.norm = nn.LayerNorm(channels)

    def forward(self, x):
        n, c, h, w = x.shape
        t = x.flatten(2)                   # C x L
        t = self.mix(t).transpose(1, 2)    # L x C
        t = self.norm(t)
        return t.permute(0, 2, 1).reshape(n, c, h, w)


class TinyViT(nn.Module):
    """A Vision Transformer as torchvision writes one: patches by a strided conv, reshape and permute to tokens,
    a class token concatenated, a position embedding added, nn.MultiheadAttention, the class token read out."""

    def __init__(self, dim: int = 8, heads: int = 2, patch: int = 4, image: int = 8, classes: int = 3):
        super().__init__()
        self.dim = dim
        self.conv_proj = nn.Conv2d(3, dim, patch, stride=patch)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.zeros(1, (image // patch) ** 2 + 1, dim))
        self.ln = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        n = x.shape[0]
        x = self.conv_proj(x).reshape(n, self.dim, -1).permute(0, 2, 1)
        x = torch.cat([self.class_token.expand(n, -1, -1), x], dim=1) + self.pos_embedding
        y = self.ln(x)
        y, _ = self.attention(y, y, y, need_weights=False)
        return self.head((x + y)[:, 0])


class ChannelMixEinsum(nn.Module):
    """A convolution, then channels mixed by torch.einsum with a weight of the module's: an op archcalc has no
    layer type for."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.mix = nn.Parameter(torch.randn(5, 4))

    def forward(self, x):
        return torch.einsum("bchw,dc->bdhw", self.conv(x), self.mix)


class WithAuxHead(nn.Module):
    """An auxiliary classifier that runs in training only, as Inception v3's: its parameters are the model's,
    but no op of an inference pass uses them."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.aux = nn.Sequential(nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        x = self.conv(x)
        if self.training:
            return self.head(x), self.aux(x)
        return self.head(x)


class SplitWidth(nn.Module):
    """x.chunk(2, dim=-1): halves along the width, which no layer type takes, added back together."""

    def forward(self, x):
        left, right = x.chunk(2, dim=-1)
        return left + right


class ControlFlow(nn.Module):
    """Python control flow on the input's shape and on a flag, which torch.fx's symbolic tracing cannot follow:
    a large image is pooled first, a small one is not; the flag adds a second convolution."""

    def __init__(self, twice: bool = True):
        super().__init__()
        self.twice = twice
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        if x.shape[-1] > 16:
            x = self.pool(x)
        x = F.relu(self.conv1(x))
        if self.twice:
            x = x + self.conv2(x)
        return self.head(x.mean((2, 3)))


class OptionalMask(nn.Module):
    """An optional argument that defaults to None (an attention mask), with code only for when it is given."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3)
        self.norm = nn.BatchNorm2d(6)

    def forward(self, x, mask=None):
        x = self.norm(self.conv(x))
        if mask is not None:
            x = x.masked_fill(mask, 0.0)
        return F.relu(x)


class SeesItsInput(nn.Module):
    """Records the kind of tensor each call of its forward gets (real, meta or fake): an import must not hand
    it real data."""

    seen: list[str] = []

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        SeesItsInput.seen.append("meta" if x.is_meta else type(x).__name__)
        return self.fc(F.relu(self.conv(x)).mean((2, 3)))


class ReadsValues(nn.Module):
    """Code that reads a tensor's value (`.item()`): it runs on neither meta nor fake tensors, only on data."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        SeesItsInput.seen.append("meta" if x.is_meta else type(x).__name__)
        if self.conv.weight.abs().sum().item() >= 0:
            x = self.conv(x)
        return x


class TwoInputEinsum(nn.Module):
    """MaxViT's attention scores in small: an `einsum` of two activations (queries and keys), which no layer
    type takes: a measured op with two inputs."""

    def __init__(self):
        super().__init__()
        self.q = nn.Conv2d(3, 4, 1)
        self.k = nn.Conv2d(3, 5, 1)
        self.head = nn.Linear(20, 3)

    def forward(self, x):
        scores = torch.einsum("bchw,bdhw->bcd", self.q(x), self.k(x))
        return self.head(scores.flatten(1))


class TokensBackToImage(nn.Module):
    """Tokens reshaped back into an image for a BatchNorm2d, as MaxViT's departition does before its next block."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.BatchNorm2d(8)

    def forward(self, x):
        b, c, h, w = x.shape[0], 8, x.shape[2], x.shape[3]
        tokens = self.conv(x).flatten(2)
        return self.norm(tokens.reshape(b, c, h, w))


class ConstantInForward(nn.Module):
    """A tensor made on the CPU inside `forward` (a per-channel scale): the meta device refuses to mix it with a
    meta tensor, torch's fake tensors take it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        SeesItsInput.seen.append("meta" if x.is_meta else type(x).__name__)
        return self.conv(x) * torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 4, 1, 1)


class DenseLayer(nn.Module):
    """torchvision's _DenseLayer: the list of earlier outputs concatenated, BN-ReLU-1x1, BN-ReLU-3x3."""

    def __init__(self, cin: int, growth: int):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(cin, 2 * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(2 * growth)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(2 * growth, growth, 3, padding=1, bias=False)

    def forward(self, features):
        x = torch.cat(features, 1)
        return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))


class DenseBlock(nn.ModuleDict):
    """torchvision's _DenseBlock: each layer reads every earlier output; the block returns them all, joined."""

    def __init__(self, layers: int, cin: int, growth: int):
        super().__init__({f"denselayer{i + 1}": DenseLayer(cin + i * growth, growth) for i in range(layers)})

    def forward(self, x):
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class TinyDenseNet(nn.Module):
    """torchvision's DenseNet layout, small: a stem, a dense block of three layers, a transition, a head."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential()
        self.features.add_module("conv0", nn.Conv2d(3, 8, 3, padding=1, bias=False))
        self.features.add_module("norm0", nn.BatchNorm2d(8))
        self.features.add_module("relu0", nn.ReLU())
        self.features.add_module("denseblock1", DenseBlock(3, 8, 4))
        self.features.add_module("transition1", nn.Sequential(
            nn.BatchNorm2d(20), nn.ReLU(), nn.Conv2d(20, 10, 1, bias=False), nn.AvgPool2d(2, 2)))
        self.classifier = nn.Linear(10, 5)

    def forward(self, x):
        x = F.adaptive_avg_pool2d(F.relu(self.features(x)), 1)
        return self.classifier(torch.flatten(x, 1))
