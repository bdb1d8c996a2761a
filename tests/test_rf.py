"""Receptive fields against torch: the widest gradient support over all output positions.

Every truth here is measured on torch modules written out in the test (positive weights, so a
gradient is non-zero exactly where an output depends on the input), never taken from archcalc.
"""
from __future__ import annotations

import pytest

from archcalc import analyze
from archcalc.core.spec import resolve
from archcalc.layers import RF

torch = pytest.importorskip("torch")
nn = torch.nn


def positive(model, value: float = 1.0):
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)
    return model.double().requires_grad_(False)


def widest_1d(model, length: int) -> int:
    """Widest support, over every output position whose support stays off the input's ends."""
    x = torch.ones(1, 1, length, dtype=torch.float64, requires_grad=True)
    out = model(x)
    widest = 0
    for o in range(out.shape[-1]):
        (grad,) = torch.autograd.grad(out[0, :, o].sum(), x, retain_graph=True)
        support = torch.nonzero(grad[0].sum(0)).flatten().tolist()
        if support and support[0] > 0 and support[-1] < length - 1:
            widest = max(widest, support[-1] - support[0] + 1)
    return widest


def widest_2d(model, shape) -> tuple[int, int]:
    """Widest (h, w) support along the diagonal of the output: every row and every column position."""
    x = torch.ones(1, *shape, dtype=torch.float64, requires_grad=True)
    out = model(x)
    best = [0, 0]
    for t in range(max(out.shape[2], out.shape[3])):
        h, w = min(t, out.shape[2] - 1), min(t, out.shape[3] - 1)
        (grad,) = torch.autograd.grad(out[0, :, h, w].sum(), x, retain_graph=True)
        mask = grad[0].abs().sum(0) > 0
        rows = torch.nonzero(mask.any(1)).flatten().tolist()
        cols = torch.nonzero(mask.any(0)).flatten().tolist()
        if rows and rows[0] > 0 and cols[0] > 0 and rows[-1] < shape[1] - 1 and cols[-1] < shape[2] - 1:
            best = [max(best[0], rows[-1] - rows[0] + 1), max(best[1], cols[-1] - cols[0] + 1)]
    return tuple(best)


def fields(layers: list[dict], input_shape: list[int]) -> list:
    analysis = analyze(resolve({"input": input_shape, "layers": layers}, "t", "t.json"))
    return [row.rf for row in analysis.leaves()[1:]]


def transposed(k, s, p, **extra):
    return {"type": "conv_transpose2d", "out": 1, "kernel": k, "stride": s, "padding": p, **extra}


# ---- transposed convolutions --------------------------------------------------------

def test_three_k4_s2_p1_transposed_convs_in_1d():
    model = positive(nn.Sequential(*[nn.ConvTranspose1d(1, 1, 4, 2, 1, bias=False) for _ in range(3)]))
    truth = [widest_1d(model[:n], 12) for n in (1, 2, 3)]
    assert truth == [2, 3, 3]
    spec = [transposed([1, 4], [1, 2], [0, 1])] * 3
    assert [rf.size[1] for rf in fields(spec, [1, 1, 12])] == truth


def test_three_k3_s2_p1_transposed_convs_in_2d():
    model = positive(nn.Sequential(*[nn.ConvTranspose2d(2, 2, 3, 2, 1, bias=False) for _ in range(3)]))
    truth = [widest_2d(model[:n], (2, 8, 8)) for n in (1, 2, 3)]
    assert truth == [(2, 2)] * 3
    assert [rf.size for rf in fields([{**transposed(3, 2, 1), "out": 2}] * 3, [2, 8, 8])] == truth


def test_dcgan_generator_field():
    # 100x1x1 -> k4 s1 p0 -> four k4 s2 p1: the field of the full, unclipped input (measured on 1x10).
    layers = [nn.ConvTranspose1d(1, 1, 4, 1, 0, bias=False)] + [nn.ConvTranspose1d(1, 1, 4, 2, 1, bias=False)] * 4
    model = positive(nn.Sequential(*layers))
    truth = [widest_1d(model[:n], 10) for n in range(1, 6)]
    assert truth == [4, 5, 6, 6, 6]
    spec = [{**transposed(4, 1, 0), "out": 64}] + [{**transposed(4, 2, 1), "out": 64}] * 4
    assert [rf.size for rf in fields(spec, [100, 1, 1])] == [(n, n) for n in truth]


def test_grouped_dilated_transposed_then_conv_and_pool():
    torch_layers = [nn.ConvTranspose2d(4, 4, 3, 2, 1, groups=2, dilation=2, bias=False),
                    nn.Conv2d(4, 4, 3, 2, 1, bias=False), nn.AvgPool2d(2, 1)]
    model = positive(nn.Sequential(*torch_layers))
    truth = [widest_2d(model[:n], (4, 10, 10)) for n in (1, 2, 3)]
    spec = [{**transposed(3, 2, 1), "out": 4, "groups": 2, "dilation": 2},
            {"type": "conv2d", "out": 4, "kernel": 3, "stride": 2, "padding": 1},
            {"type": "avg_pool2d", "kernel": 2, "stride": 1}]
    assert [rf.size for rf in fields(spec, [4, 10, 10])] == truth


def test_the_jump_of_a_transposed_conv_is_an_exact_fraction():
    from fractions import Fraction

    rf = RF().transposed((4, 4), (2, 2), (1, 1), (1, 1)).transposed((4, 4), (2, 2), (1, 1), (1, 1))
    assert rf.jump == (Fraction(1, 4), Fraction(1, 4))
    assert rf.window((3, 3), (4, 4)).jump == (1, 1)  # a stride-4 conv after it: back on the input grid


# ---- squeeze-and-excitation, flatten ---------------------------------------------------

SE = [{"type": "conv2d", "out": 4, "kernel": 3, "padding": 1},
      {"name": "se", "type": "mul", "branches": [[], [
          {"type": "adaptive_avg_pool2d"}, {"type": "conv2d", "out": 2, "kernel": 1}, {"type": "relu"},
          {"type": "conv2d", "out": 4, "kernel": 1}, {"type": "sigmoid"}]]},
      {"name": "after", "type": "conv2d", "out": 4, "kernel": 3, "padding": 1}]


class SqueezeExcite(nn.Module):
    def __init__(self, hold_gate: bool):
        super().__init__()
        self.conv, self.after = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(4, 2, 1), nn.ReLU(), nn.Conv2d(2, 4, 1), nn.Sigmoid())
        self.hold_gate = hold_gate

    def forward(self, x):
        x = self.conv(x)
        gate = self.gate(x)
        return self.after(x * (gate.detach() if self.hold_gate else gate))


def test_squeeze_excitation_strict_and_spatial_fields():
    spatial = widest_2d(positive(SqueezeExcite(hold_gate=True)), (1, 12, 12))
    assert spatial == (5, 5)
    x = torch.ones(1, 1, 12, 12, dtype=torch.float64, requires_grad=True)
    model = positive(SqueezeExcite(hold_gate=False), 0.01)  # small weights: the sigmoid does not saturate
    model(x)[0, :, 6, 6].sum().backward()
    assert bool((x.grad != 0).all())  # without the gate held, the centre unit sees every pixel
    analysis = analyze(resolve({"input": [1, 12, 12], "layers": SE}, "t", "t.json"))
    after = analysis.row("after").rf
    assert after.size is None and after.spatial_size == spatial
    assert after.gate == "se" and after.label() == "global" and after.spatial_label() == "5"
    assert analysis.row("0").rf.gate is None and analysis.row("0").rf.spatial_size == (3, 3)


def test_flatten_keeps_each_elements_field_and_linear_makes_it_global():
    layers = [{"type": "conv2d", "out": 2, "kernel": 3}, {"type": "max_pool2d", "kernel": 2},
              {"name": "flat", "type": "flatten"}, {"name": "fc", "type": "linear", "out": 3}]
    analysis = analyze(resolve({"input": [1, 12, 12], "layers": layers}, "t", "t.json"))
    model = positive(nn.Sequential(nn.Conv2d(1, 2, 3), nn.AvgPool2d(2), nn.Flatten()))
    x = torch.ones(1, 1, 12, 12, dtype=torch.float64, requires_grad=True)
    out = model(x)  # 2x5x5 flattened: element 12 is channel 0, position (2, 2)
    out[0, 12].backward()
    mask = x.grad[0, 0] != 0
    rows, cols = torch.nonzero(mask.any(1)).flatten(), torch.nonzero(mask.any(0)).flatten()
    assert analysis.row("flat").rf.size == (int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)) == (4, 4)
    assert analysis.row("fc").rf.size is None


# ---- closed forms against the table walk they shortcut ---------------------------------------

def test_one_interval_fields_through_windows_and_unions_equal_the_table_walk():
    """Axis.window and _union take a closed form for one-interval fields; the tabulated walk
    (Axis.through over every tap, the hull over every position) must give the same field."""
    import itertools

    from archcalc.layers.rf import Axis, _hull, _union, _window_taps

    fields = [Axis(), Axis(1, 2, ((-1, 3),)), Axis(1, 3, ((0, 6),)), Axis(1, 1, (None,))]
    for axis, k, s, d, p in itertools.product(fields, (1, 2, 3, 7), (1, 2, 3), (1, 2), (0, 1, 3)):
        walked = axis.through(_window_taps(s, d, p, k), 1, s)
        assert axis.window(k, s, d, p) == walked and axis.window(k, s, d, p).widest == walked.widest, (axis, k, s, d, p)
    for a, b in itertools.product(fields, repeat=2):
        if a.shift == b.shift:
            period = 1
            spans = tuple(_hull(x.at(o) for x in (a, b)) for o in range(period))
            assert _union([a, b]) == Axis(1, a.shift, spans), (a, b)


def _stepped_transposed_taps(stride: int, dilation: int, padding: int, kernel: int, o: int) -> list[int]:
    """The definition, tap by tap: the inputs i with i*S - P + j*D = o for some j < K."""
    return sorted((o + padding - j * dilation) // stride for j in range(kernel)
                  if (o + padding - j * dilation) % stride == 0)


def test_transposed_taps_in_closed_form_equal_the_tap_by_tap_definition():
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies
    from archcalc.layers.rf import Axis, _transposed_taps

    @hypothesis.settings(max_examples=1500, deadline=None, database=None)
    @hypothesis.given(st.integers(1, 12), st.integers(1, 12), st.integers(0, 15), st.integers(1, 40), st.integers(-30, 60))
    def check(s, d, p, k, o):
        assert sorted(_transposed_taps(s, d, p, k)(o)) == _stepped_transposed_taps(s, d, p, k, o)

    check()
    # and the whole field through it, from periodic fields, against the field the stepped taps give
    axes = [Axis(), Axis(2, 3, ((0, 1), (1, 4))), Axis(3, 2, ((0, 0), None, (-1, 2)))]
    for axis in axes:
        for s, d, p, k in [(1, 1, 0, 5), (2, 1, 1, 4), (3, 2, 2, 7), (4, 6, 0, 9), (5, 3, 4, 13), (2, 2, 0, 3)]:
            closed = axis.through(_transposed_taps(s, d, p, k), s, 1)
            stepped = axis.through(lambda o: _stepped_transposed_taps(s, d, p, k, o), s, 1)
            assert closed == stepped, (axis, s, d, p, k)


def test_a_huge_transposed_kernel_takes_no_time_or_memory():
    """Kernel 10^12, stride 2: output o gathers every other tap, so the widest field is 5*10^11 + 1 inputs
    (the taps j = 0, 2, ..., 10^12). Stepping through the taps took minutes and gigabytes."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = ("import resource; resource.setrlimit(resource.RLIMIT_CPU, (10, 11));"
            "resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30));"
            "from archcalc import analyze; from archcalc.core.spec import resolve;"
            "layer = {'type': 'conv_transpose2d', 'out': 1, 'kernel': [1, 10**12 + 1], 'stride': [1, 2], 'padding': [0, 3]};"
            "print(analyze(resolve({'input': [1, 1, 8], 'layers': [layer]}, 't', 't.json')).leaves()[-1].rf.size)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)})
    assert (result.returncode, result.stdout.strip()) == (0, f"(1, {5 * 10**11 + 1})"), result.stderr[-2000:]
