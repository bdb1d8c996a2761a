"""Lazy access to the optional packages: torch and fvcore (verify, bench, import), onnx, pandas, matplotlib.

Each `require_*` imports on first use and raises MissingDependency with an install line that works
anywhere (the torch pin is given inline, so no constraints file is needed).
"""
from __future__ import annotations

import importlib

from .errors import MissingDependency

TORCH_PIN = "torch==2.13.0"
EXTRAS = {
    "torch": ("torch", f'pip install "archcalc[torch]" "{TORCH_PIN}"'),
    "fvcore": ("torch and fvcore", f'pip install "archcalc[torch]" "{TORCH_PIN}"'),
    "onnx": ("onnx", 'pip install "archcalc[onnx]"'),
    "pandas": ("pandas", 'pip install "archcalc[dataframe]"'),
    "matplotlib": ("matplotlib", 'pip install "archcalc[report]"'),
}


def require(package: str, extra: str | None = None, purpose: str = "this command"):
    """The module `package`, or MissingDependency naming what to install (the line of `extra`)."""
    try:
        return importlib.import_module(package)
    except ImportError:
        what, line = EXTRAS.get(extra or package.split(".")[0], (package, f"pip install {package}"))
        raise MissingDependency(f"{purpose} needs {what}: {line}") from None


def require_torch():
    return require("torch")


def require_fvcore():
    require("torch", "fvcore")
    return require("fvcore.nn", "fvcore")
