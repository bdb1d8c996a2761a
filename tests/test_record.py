"""archcalc.torch.record: one run of a torch module through forward hooks and fvcore, read by `verify` and `verify --model`."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("fvcore")

from torch import nn  # noqa: E402

from archcalc.torch.record import Call, buffer_count, parameter_count, record  # noqa: E402


def test_a_two_layer_module_is_recorded_call_by_call():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 5)).eval()
    recording = record(model, torch.randn(2, 3, 8, 8))
    # a 3x3 convolution without padding: 8x8 -> 6x6; flattened, 4 x 6 x 6 = 144 values
    assert recording.calls == {
        "": [Call((3, 8, 8), (5,))],
        "0": [Call((3, 8, 8), (4, 6, 6))],
        "1": [Call((4, 6, 6), (4, 6, 6))],
        "2": [Call((4, 6, 6), (144,))],
        "3": [Call((144,), (5,))],
    }
    assert recording.weighted == ["0", "1", "3"]
    assert recording.output("") == (5,) and recording.output("absent") is None
    # fvcore, batch 2: a multiply-add per weight and output value; batch norm in eval mode 2 per element
    conv, norm, linear = 2 * (4 * 6 * 6) * (3 * 3 * 3), 2 * 2 * (4 * 6 * 6), 2 * 144 * 5
    assert [recording.flops[name] for name in ("0", "1", "2", "3", "")] == [conv, norm, 0, linear, conv + norm + linear]
    # weights and biases: (4 x 27 + 4) + (4 + 4) + (144 x 5 + 5); the running mean and variance
    assert parameter_count(model) == 112 + 8 + 725
    assert buffer_count(model) == 4 + 4
    assert parameter_count(model[1], recurse=False) == 8 and parameter_count(model, recurse=False) == 0


def test_a_module_called_twice_is_two_calls_and_its_weights_count_once():
    conv = nn.Conv2d(3, 3, 3, padding=1)
    model = nn.Sequential(conv, nn.ReLU(), conv).eval()
    recording = record(model, torch.randn(1, 3, 5, 5))
    assert recording.calls["0"] == [Call((3, 5, 5), (3, 5, 5))] * 2
    assert "2" not in recording.calls  # torch names a module once: under its first name
    assert recording.weighted == ["0"]
    assert recording.flops["0"] == 2 * (3 * 5 * 5) * (3 * 3 * 3)
    counted: set[int] = set()
    assert parameter_count(conv, counted) == 3 * 27 + 3
    assert parameter_count(model, counted) == 0  # met already
    assert parameter_count(model) == 84
