"""The calculator is pure: importing archcalc and `archcalc table` load no heavy library. (Which
standard modules they load is left to clarity; start-up speed is held by benchmarks/calc_speed.py.)

And layered: the value kinds and budgets below the layer types, those below the calculator, the
calculator below the formats; no import goes up a layer or closes a cycle, imports inside functions
counted."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

HEAVY = ["torch", "fvcore", "onnx", "pandas", "matplotlib"]

SCRIPT = """
import contextlib, io, json, sys
import archcalc
after_import = sorted(m for m in {heavy} if m in sys.modules)
network = archcalc.analyze(archcalc.load("vgg16"))
archcalc.render(network, "text")
from archcalc.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    main(["table", "vgg16"], standalone_mode=False)
assert "138,357,544" in out.getvalue()
after_table = sorted(m for m in {heavy} if m in sys.modules)
print(json.dumps([after_import, after_table]))
"""


def test_import_and_table_load_no_heavy_library():
    script = SCRIPT.format(heavy=HEAVY)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    after_import, after_table = json.loads(result.stdout.strip().splitlines()[-1])
    assert after_import == []
    assert after_table == []


def test_the_check_can_fail():
    # The same probe notices a heavy import: guards against a test that can never fail.
    probe = "import sys, json; import pandas; print(json.dumps(sorted(m for m in %r if m in sys.modules)))" % HEAVY
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert json.loads(result.stdout) == ["pandas"]



# ---- layering: which package may import which, imports inside functions counted ---------------------

PACKAGE = Path(__file__).parent.parent / "archcalc"
# A module may import those of its own layer and of the layers below it, never one above.
LAYERS = (
    ("archcalc.errors", "archcalc.fmt", "archcalc.deps", "archcalc.budget", "archcalc.kinds", "archcalc.files",
     "archcalc.progress"),
    ("archcalc.layers",),
    ("archcalc.core",),
    ("archcalc.render", "archcalc.notebook"),
    ("archcalc.report", "archcalc.torch", "archcalc.importers", "archcalc.targets", "archcalc.commands", "archcalc.cli"),
)


def module_imports(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Each module of `package` and the modules of it it imports, wherever the import statement is (in a
    function too); an import for type checkers only (`if TYPE_CHECKING:`) is none."""
    names = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    found: dict[str, set[str]] = {}
    for name, path in names.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
                node.body = []
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = ".".join(here[:len(here) - node.level + 1] + [node.module or ""]).strip(".") if node.level \
                    else node.module or ""
                targets |= {f"{base}.{a.name}" if f"{base}.{a.name}" in names else base for a in node.names}
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
        found[name] = {t for t in targets if t in names and t != name}
    return found


def layer_of(module: str) -> int | None:
    return next((i for i, layer in enumerate(LAYERS) for top in layer if module == top or module.startswith(top + ".")),
                None)


def upward(imports: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((module, target) for module, targets in imports.items() for target in targets
                  if None not in (layer_of(module), layer_of(target)) and layer_of(target) > layer_of(module))


def cycles(imports: dict[str, set[str]]) -> list[list[str]]:
    done: set[str] = set()

    def cycle_from(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return path[path.index(module):] + [module]
        if module in done:
            return None
        for target in sorted(imports[module]):
            found = cycle_from(target, path + [module])
            if found:
                return found
        done.add(module)
        return None

    return [cycle for module in sorted(imports) if (cycle := cycle_from(module, []))]


def test_no_module_imports_a_layer_above_its_own():
    assert upward(module_imports()) == []


def test_the_imports_have_no_cycle():
    assert cycles(module_imports()) == []


def test_the_layering_checks_can_fail(tmp_path):
    # A kind asking the loader for a suggestion inside a function, as archcalc.kinds once did.
    package = tmp_path / "archcalc"
    (package / "core").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "core" / "__init__.py").write_text("")
    (package / "kinds.py").write_text("def check():\n    from .core.spec import suggest\n")
    (package / "core" / "spec.py").write_text("from ..kinds import check\n")
    imports = module_imports(package)
    assert upward(imports) == [("archcalc.kinds", "archcalc.core.spec")]
    assert cycles(imports)[0] == ["archcalc.core.spec", "archcalc.kinds", "archcalc.core.spec"]
