"""Shared test helpers."""
from __future__ import annotations

from click.testing import CliRunner


def cli_runner() -> CliRunner:
    """A runner that keeps stdout and stderr apart, on every click version."""
    try:
        return CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        return CliRunner()  # click >= 8.2 keeps them apart
