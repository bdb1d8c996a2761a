"""archcalc.summary / archcalc.load of an nn.Module handed over in Python, against hand counts and torch."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("fvcore")

from torch import nn  # noqa: E402

import archcalc  # noqa: E402
from archcalc.errors import UsageError  # noqa: E402


def small() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))


def test_summary_of_a_module():
    model = small().train()
    analysis = archcalc.summary(model, input_size=(3, 32, 32), batch=4, dtype="fp16")
    # conv 8 * (27 + 1) = 224, BN 2 * 8 = 16, linear 8 * 10 + 10 = 90
    assert analysis.totals.params == 224 + 16 + 90 == sum(p.numel() for p in model.parameters())
    # conv: 8 x 32 x 32 outputs of 27 MACs each; linear 8 x 10
    assert analysis.totals.macs == 8 * 32 * 32 * 27 + 80
    assert analysis.output_shape == (10,)
    assert (analysis.batch, analysis.dtype) == (4, "fp16")
    assert model.training  # put back in the mode it was in


def test_summary_takes_torchinfos_batch_first_size():
    analysis = archcalc.summary(small(), input_size=(2, 3, 16, 16))
    assert analysis.batch == 2 and analysis.input_shape == (3, 16, 16)


def test_load_of_a_module_names_rows_by_module():
    network = archcalc.load(small(), input_size=(3, 8, 8))
    paths = [row.path for row in archcalc.analyze(network).leaves()[1:]]
    assert paths == [name for name, m in small().named_modules() if name and not list(m.children())]


def test_a_module_needs_its_input_size():
    with pytest.raises(UsageError, match="input_size"):
        archcalc.summary(small())
    with pytest.raises(UsageError, match="input_size"):
        archcalc.summary(small(), input_size=(3, 0, 8))


def test_a_spec_is_summarised_at_its_input():
    # AlexNet at 227: conv1 gives 64 x 56 x 56 ((227 + 4 - 11) / 4 + 1 = 56)
    analysis = archcalc.summary("alexnet", input_size=(3, 227, 227))
    assert analysis.row("features.0").output_shape == (64, 56, 56)  # conv1
