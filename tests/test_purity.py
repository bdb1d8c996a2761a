"""The calculator is pure: importing archcalc and `archcalc table` load no heavy library."""
from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["torch", "fvcore", "onnx", "pandas", "matplotlib"]

SCRIPT = """
import contextlib, io, json, sys
import archcalc
after_import = sorted(m for m in {heavy} if m in sys.modules)
from archcalc.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    main(["table", "vgg16"], standalone_mode=False)
assert "138,357,544" in out.getvalue()
after_table = sorted(m for m in {heavy} if m in sys.modules)
print(json.dumps([after_import, after_table]))
"""


def test_import_and_table_load_no_heavy_library():
    result = subprocess.run([sys.executable, "-c", SCRIPT.format(heavy=HEAVY)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    after_import, after_table = json.loads(result.stdout.strip().splitlines()[-1])
    assert after_import == []
    assert after_table == []


def test_the_check_can_fail():
    # The same probe notices a heavy import: guards against a test that can never fail.
    probe = "import sys, json; import pandas; print(json.dumps(sorted(m for m in %r if m in sys.modules)))" % HEAVY
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert json.loads(result.stdout) == ["pandas"]
