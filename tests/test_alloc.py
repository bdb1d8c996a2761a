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


IMPORT_PROBE = """
import gc, sys
class Cell:
    pass
made_before = Cell()
made_before.me = made_before  # a cycle of the caller's, garbage once the name is gone
collections = []
gc.collect()  # the count of young objects starts at 0: what the import allocates decides alone
gc.callbacks.append(lambda phase, info: phase == "start" and collections.append(info["generation"]))
{switch}
import archcalc.cli
del made_before
print(gc.isenabled(), gc.get_freeze_count(), list(collections), gc.collect() >= 2, sep=";")
"""


@pytest.mark.parametrize("switch, enabled", [("", "True"), ("gc.disable()", "False")])
def test_importing_collects_nothing_and_leaves_the_collector_as_it_was(switch, enabled):
    import compileall
    import subprocess
    import sys
    from pathlib import Path

    import archcalc

    # the import reads bytecode, as an installed archcalc does: compiling a module's source allocates too
    compileall.compile_dir(str(Path(archcalc.__file__).parent), quiet=1)
    probe = IMPORT_PROBE.format(switch=switch)
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    on, frozen, collections, collected = result.stdout.strip().split(";")
    assert on == enabled
    assert frozen == "0"  # nothing is left out of later collections
    assert collections == "[]"  # the import (click's too) walked nothing
    assert collected == "True"  # the caller's cycle made before the import is still found (the object and its dict)


def test_importing_leaves_what_the_caller_froze_frozen():
    import subprocess
    import sys

    probe = ("import gc\nkept = [[] for _ in range(1000)]\ngc.freeze()\nfrozen = gc.get_freeze_count()\n"
             "import archcalc.cli\nprint(gc.get_freeze_count() > frozen // 2 > 0)")  # thawed: 0
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "True"
