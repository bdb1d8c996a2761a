"""The garbage collector is paused only while the calculator builds, and as the caller left it."""
from __future__ import annotations

import gc

import pytest

from archcalc import SpecError, analyze, load


def test_the_collector_is_off_while_building_and_on_again_after_an_error():
    seen = []

    def watch(phase, info):
        seen.append(phase)

    broken = {"input": [3, 8, 8], "layers": [{"type": "conv2d", "out": 4, "kernel": 9}]}  # wider than the input
    gc.callbacks.append(watch)
    try:
        assert gc.isenabled()
        with pytest.raises(SpecError, match="larger than the padded input"):
            analyze(load(broken))
        assert gc.isenabled()
        network = load("resnet50")
        seen.clear()
        analyze(network)
        assert seen == []  # no collection while it built the rows
    finally:
        gc.callbacks.remove(watch)


def test_a_collector_the_caller_switched_off_stays_off():
    gc.disable()
    try:
        analyze(load("vgg16"))
        assert not gc.isenabled()
    finally:
        gc.enable()
