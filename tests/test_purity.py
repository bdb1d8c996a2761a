"""The calculator is pure: importing archcalc and `archcalc table` load no heavy library.

Nor the standard modules that cost start-up and that the calculator does without (docs/performance.md):
dataclasses (its records are named tuples), pathlib, csv (only for --format csv) and shutil
(only to measure a terminal)."""
from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["torch", "fvcore", "onnx", "pandas", "matplotlib"]
START_UP = ["dataclasses", "pathlib", "csv", "shutil"]

SCRIPT = """
import contextlib, io, json, sys
already = set(sys.modules)  # an editable install's finder imports pathlib at start-up
import archcalc
after_import = sorted(m for m in {heavy} if m in sys.modules)
network = archcalc.analyze(archcalc.load("vgg16"))
archcalc.render(network, "text")
calculator = sorted(m for m in {start_up} if m in sys.modules and m not in already)
from archcalc.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    main(["table", "vgg16"], standalone_mode=False)
assert "138,357,544" in out.getvalue()
after_table = sorted(m for m in {heavy} if m in sys.modules)
table = sorted(m for m in {start_up} if m in sys.modules and m not in already)
print(json.dumps([after_import, after_table, calculator, table]))
"""


def test_import_and_table_load_no_heavy_library():
    script = SCRIPT.format(heavy=HEAVY, start_up=START_UP)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    after_import, after_table, calculator, table = json.loads(result.stdout.strip().splitlines()[-1])
    assert after_import == []
    assert after_table == []
    assert calculator == []
    assert table == []


def test_the_check_can_fail():
    # The same probe notices a heavy import: guards against a test that can never fail.
    probe = "import sys, json; import pandas; print(json.dumps(sorted(m for m in %r if m in sys.modules)))" % HEAVY
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert json.loads(result.stdout) == ["pandas"]
