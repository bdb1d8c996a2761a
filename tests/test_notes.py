"""The output-size warning: a warning when the rounding drops input pixels, a note when it does not.

Truth from torch: the input rows a layer reads (the support of the gradient of its summed
output, positive weights) on the input, against those it reads on an input one stride longer
(one more window): a row read only there is one the rounding dropped.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import cli_runner

import archcalc
from archcalc.cli import main
from archcalc.core.spec import resolve

torch = pytest.importorskip("torch")
nn = torch.nn
FIXTURES = Path(__file__).parent / "fixtures"


def rows_read(module, n: int) -> set[int]:
    x = torch.rand(1, 1, n, n, dtype=torch.float64).add_(0.5).requires_grad_(True)
    module(x).sum().backward()
    return set(torch.nonzero(x.grad[0, 0].abs().sum(1)).flatten().tolist())


def dropped_by_torch(module, n: int, stride: int) -> tuple[int, ...]:
    module = module.double()
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(1.0)
    read, longer = rows_read(module, n), rows_read(module, n + stride)
    return tuple(sorted(r for r in longer - read if r < n))


def notes(layer: dict, n: int):
    analysis = archcalc.analyze(resolve({"input": [1, n, n], "layers": [{"name": "x", **layer}]}, "t", "t.json"))
    return analysis.warnings


@pytest.mark.parametrize("layer, module, n, dropped", [
    # k3 s2 on 8: windows at 0, 2, 4 read rows 0..6; a fourth, at 6, would read row 7.
    ({"type": "conv2d", "out": 1, "kernel": 3, "stride": 2}, nn.Conv2d(1, 1, 3, 2), 8, (7,)),
    # k3 s2 p1 on 8: (8 + 2 - 3)/2 + 1 = 4.5; the unread position is the right padding.
    ({"type": "conv2d", "out": 1, "kernel": 3, "stride": 2, "padding": 1}, nn.Conv2d(1, 1, 3, 2, 1), 8, ()),
    # 1x1 s2 on 8: row 7 is never read, but neither would a next window read it: the stride skips it.
    ({"type": "conv2d", "out": 1, "kernel": 1, "stride": 2}, nn.Conv2d(1, 1, 1, 2), 8, ()),
    # k4 s3 dilation 2 on 12: (12 - 7)/3 + 1 = 2.67; windows at 0 and 3 read 0, 2, 4, 6 and 3, 5, 7, 9;
    # a third, at 6, would read 6, 8, 10 (and 12, past the end): 8 and 10 are dropped, 11 is skipped anyway.
    ({"type": "conv2d", "out": 1, "kernel": 4, "stride": 3, "dilation": 2}, nn.Conv2d(1, 1, 4, 3, 0, 2), 12, (8, 10)),
    # AlexNet's conv1 at 224 without padding: (224 - 11)/4 + 1 = 54.25, the last row unread.
    ({"type": "conv2d", "out": 1, "kernel": 11, "stride": 4}, nn.Conv2d(1, 1, 11, 4), 224, (223,)),
    # pooling windows (average pooling reads what max pooling compares), floor and ceil mode
    ({"type": "max_pool2d", "kernel": 3, "stride": 2}, nn.AvgPool2d(3, 2), 8, (7,)),
    ({"type": "max_pool2d", "kernel": 3, "stride": 2, "ceil_mode": True}, nn.AvgPool2d(3, 2, ceil_mode=True), 8, ()),
])
def test_dropped_rows_against_torch(layer, module, n, dropped):
    assert dropped_by_torch(module, n, layer.get("stride", 1)) == dropped
    (note,) = notes(layer, n)
    assert note.detail.dropped == dropped
    assert note.drops_input == bool(dropped) and note.kind == ("drops_input" if dropped else "padding_unused")
    assert note.axes == "H and W"


def test_warning_text_says_which_rows_are_dropped():
    (warning,) = notes({"type": "conv2d", "out": 1, "kernel": 11, "stride": 4}, 224)
    assert warning.message == ("conv2d: H and W: (224 + 0 - 11)/4 + 1 = 54.25 is not whole; floor gives 54: "
                               "the last row and column of its input are never read")
    (note,) = notes({"type": "conv2d", "out": 1, "kernel": 3, "stride": 2, "padding": 1}, 224)
    assert note.message.endswith("= 112.5 is not whole; floor gives 112; the rounding drops no input pixel")
    (dilated,) = notes({"type": "conv2d", "out": 1, "kernel": 4, "stride": 3, "dilation": 2}, 12)
    assert dilated.message.endswith(": rows and columns 8, 10 of its input are never read")


def run(args: list[str]):
    result = cli_runner().invoke(main, args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_resnet50_at_224_warns_of_nothing():
    # Every stride-2 layer of ResNet-50 has an inexact size, and every one drops only padding
    # (or pixels a 1x1 stride-2 projection skips anyway): torch reads every row with one window less.
    assert dropped_by_torch(nn.Conv2d(1, 1, 7, 2, 3), 224, 2) == ()  # conv1
    assert dropped_by_torch(nn.AvgPool2d(3, 2, 1), 112, 2) == ()  # the stem's pooling windows
    assert dropped_by_torch(nn.Conv2d(1, 1, 1, 2), 56, 2) == ()  # a projection shortcut
    result = run(["table", "resnet50"])
    assert result.stderr == "" and "warning" not in result.stdout
    notes_shown = run(["table", "resnet50", "--all-warnings"]).stderr.splitlines()
    assert len(notes_shown) == 8 and all(line.startswith("note: ") for line in notes_shown)
    assert notes_shown[0] == ("note: conv1: conv2d: H and W: (224 + 6 - 7)/2 + 1 = 112.5 is not whole; floor gives "
                              "112; the rounding drops no input pixel")


def test_alexnet_at_224():
    # torchvision's AlexNet pads conv1 by 2: (224 + 4 - 11)/4 + 1 = 55.25 drops only padding: no warning.
    assert dropped_by_torch(nn.Conv2d(1, 1, 11, 4, 2), 224, 4) == ()
    assert run(["table", "alexnet"]).stderr == ""
    # The paper's layout (no padding) at 224 drops the last row and column, then again at each pooling.
    result = run(["table", "alexnet_paper", "--input", "224"])
    lines = result.stderr.splitlines()
    assert lines[0].startswith("warning: features.0: conv2d: H and W: (224 + 0 - 11)/4 + 1 = 54.25")
    assert all(line.startswith("warning: ") for line in lines) and "warning" not in result.stdout
    doc = __import__("json").loads(run(["table", "alexnet_paper", "--input", "224", "--format", "json"]).stdout)
    first = doc["warnings"][0]
    assert (first["kind"], first["dropped"], first["size"], first["stride"]) == ("drops_input", [223], 224, 4)


def test_dropped_pixels_are_solved_not_searched():
    """The closed form against a search over every window and tap, and a kernel too large to search."""
    import itertools

    from archcalc.layers.base import unread_by_rounding

    def searched(size, kernel, stride, pad, dilation, out):
        read = {i * stride + j * dilation for i in range(out) for j in range(kernel)}
        nxt = (out * stride + j * dilation for j in range(kernel))
        return tuple(sorted({p - pad for p in nxt if pad <= p < pad + size and p not in read}))

    for size, kernel, stride, pad, dilation in itertools.product(range(1, 12), range(1, 5), range(1, 5), range(3), range(1, 4)):
        span = dilation * (kernel - 1) + 1
        if size + 2 * pad >= span:
            out = (size + 2 * pad - span) // stride + 1
            assert unread_by_rounding(size, kernel, stride, pad, dilation, out) == searched(size, kernel, stride, pad, dilation, out)
    # kernel 10**6 with stride 3 on 10**6 + 2 pixels: one window reads 0 .. 10**6 - 1, the last 2 are dropped
    assert unread_by_rounding(10**6 + 2, 10**6, 3, 0, 1, 1) == (10**6, 10**6 + 1)
