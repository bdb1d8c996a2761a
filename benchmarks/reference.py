"""ResNet-18 written in plain torch (torchvision's layout), counted the way users of torch do.

    python benchmarks/reference.py fvcore     --input 3x240x320   # import + build + FlopCountAnalysis
    python benchmarks/reference.py torchinfo  --input 3x240x320   # import + build + torchinfo.summary

Prints one JSON line: the tool, its parameter count and its operation count. The calculator's
counterpart is `archcalc table resnet18 --input 3x240x320`; calc_speed.py times both end to end,
in fresh processes, and checks that the parameter counts (and fvcore's flops) agree.
Written without archcalc's builder so that the comparison owes nothing to archcalc.
"""
from __future__ import annotations

import argparse
import json
import sys


def resnet18(num_classes: int = 1000):
    from torch import nn

    class BasicBlock(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int):
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
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + identity)

    stages, cin = [], 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        stages.append(nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
        cin = cout
    return nn.Sequential(
        nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1),
        *stages,
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, num_classes),
    )


def count(tool: str, dims: tuple[int, ...]) -> dict:
    import torch

    model = resnet18().eval()
    params = sum(p.numel() for p in model.parameters())
    if tool == "fvcore":
        from fvcore.nn import FlopCountAnalysis

        analysis = FlopCountAnalysis(model, torch.zeros(1, *dims))
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        return {"tool": tool, "params": params, "flops": int(analysis.total())}
    from torchinfo import summary

    stats = summary(model, input_size=(1, *dims), verbose=0)
    return {"tool": tool, "params": int(stats.total_params), "mult_adds": int(stats.total_mult_adds)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tool", choices=["fvcore", "torchinfo"])
    parser.add_argument("--input", default="3x240x320", help="CxHxW")
    args = parser.parse_args(argv)
    dims = tuple(int(d) for d in args.input.split("x"))
    print(json.dumps(count(args.tool, dims)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
