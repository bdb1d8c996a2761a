"""benchmarks/calc_speed.py in its quick mode: every measurement runs, on the installed wheel, and is written."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from archcalc import zoo_index

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("speed")
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "calc_speed.py"), "--quick", "--out-dir", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads((out / "calc_speed.json").read_text()), (out / "calc_speed.md").read_text()


def test_every_pair_is_timed_alternately_with_its_spread(quick_run):
    result, _ = quick_run
    names = [p["name"] for p in result["pairs"]]
    assert names == ["archcalc table vgg16 vs start-up", "archcalc check --claims vs start-up", "archcalc list vs start-up",
                     "import click vs start-up", "standard modules vs start-up", "import torch vs start-up",
                     "fvcore vs archcalc, resnet18 3x240x320",
                     "torchinfo vs archcalc, resnet18 3x240x320", "archcalc table vgg16: input 4096 vs 224",
                     "archcalc table vgg16: batch 4096 vs 1"]
    for p in result["pairs"]:
        for side in (p["a"], p["b"]):
            assert 0 < side["wall_s"]["min"] <= side["wall_s"]["median"] <= side["wall_s"]["max"]
            assert side["peak_rss_mib"] > 1
        assert p["ratio"]["n"] == 1
    torch = result["pairs"][names.index("import torch vs start-up")]
    assert torch["b"]["peak_rss_mib"] > torch["a"]["peak_rss_mib"] + 50  # torch's import shows in the child's RSS


def test_the_reference_network_counts_what_published_resnet18_has(quick_run):
    # torchvision's resnet18: 11,689,512 parameters; fvcore traces the plain-torch copy independently.
    agree = quick_run[0]["agreement"]
    assert agree["fvcore"]["params"] == agree["torchinfo"]["params"] == 11_689_512
    assert agree["params_agree"] and agree["fvcore_flops_agree"]


def test_generated_specs_have_the_rows_they_are_built_with(quick_run):
    sequential, larger, residual = quick_run[0]["generated"]
    assert sequential["rows"] == 1 + 2 * 100  # the input row, then conv and relu per pair
    assert larger["rows"] == 1 + 2 * 1000
    assert residual["rows"] == 1 + 4 * 100  # block, conv, relu and the sum's own row per block (branches have none)
    assert quick_run[0]["zoo"]["networks"] == len(zoo_index())


def test_the_report_quotes_targets_and_ratios(quick_run):
    result, text = quick_run
    assert text.startswith("# How fast the calculator answers")
    assert "--quick" in text and "python -c pass" in text and "fvcore" in text and "torchinfo" in text
    assert len(result["targets"]) == 15 and all(isinstance(t["met"], bool) for t in result["targets"])
    assert "ViT-H/14 at 518x518" in text and result["zoo"]["vit_h_14_analyze_s"]["median"] > 0
    assert "`archcalc fit NAME --memory 24GiB" in text and result["zoo"]["fit_slowest_network"] in zoo_index()
