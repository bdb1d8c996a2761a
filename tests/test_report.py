"""`archcalc report`: golden page, lecture claims against hand calculations, determinism, staleness."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from click.testing import CliRunner

from archcalc import claims as claimslib
from archcalc import load, spec
from archcalc.cli import main
from archcalc.report import build, generate, network_page, stale

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"


# ---- golden page ---------------------------------------------------------------------------

def test_golden_page_of_a_small_network():
    page = network_page(load(str(FIXTURES / "report_tiny.json")))
    assert page == (FIXTURES / "report_tiny.md").read_text(encoding="utf-8")


def test_golden_page_numbers_by_hand():
    page = network_page(load(str(FIXTURES / "report_tiny.json")))
    conv_params, fc_params = 3 * 3 * 3 * 16 + 16, 16 * 16 * 16 * 10 + 10
    conv_macs, fc_macs = 16 * 32 * 32 * 3 * 3 * 3, 4096 * 10
    activations = 3 * 32 * 32 + 16 * 32 * 32 + 16 * 16 * 16 + 10
    assert re.search(rf"\|\s+{conv_params + fc_params:,}\s+\|", page)
    assert f"{conv_macs + fc_macs:,}" in page and f"{2 * (conv_macs + fc_macs):,}" in page
    assert f"{activations:,}" in page
    assert f"{(conv_params + fc_params) * 4 / 2**20:.2f}" in page  # 0.16 MiB
    conv_row = next(line for line in page.splitlines() if line.startswith("| conv "))
    assert [c.strip() for c in conv_row.strip("|").split("|")] == ["conv", "conv2d", "16x32x32", f"{conv_params:,}", f"{conv_macs:,}", "16,384", "3"]
    pool_row = next(line for line in page.splitlines() if line.startswith("| pool "))
    assert pool_row.strip("|").split("|")[-1].strip() == "4"  # 3 + (2 - 1) * 1


# ---- claims against hand calculations -------------------------------------------------------

def _hand() -> dict[str, object]:
    """What each claim should compute to, by hand (the claims file never holds these)."""
    h: dict[str, object] = {
        "out7_s1": [(7 - 3) // 1 + 1] * 2, "out7_s2": [(7 - 3) // 2 + 1] * 2, "out7_p1": [(7 + 2 - 3) // 1 + 1] * 2,
        "alexnet_conv1_size": [(227 - 11) // 4 + 1] * 2,
        "flat_200": 200 * 200 * 3, "flat_100": 100 * 100 * 3,
        "cifar_conv": [12, 32, 32], "cifar_pool": [12, 16, 16], "cifar_fc": [10],
        "lenet5_C1_shape": [6, 28, 28], "lenet5_S2_shape": [6, 14, 14], "lenet5_C3_shape": [16, 10, 10], "lenet5_S4_shape": [16, 5, 5],
        "alexnet_conv1_outputs": 55 * 55 * 96, "alexnet_conv1_filter": 11 * 11 * 3, "alexnet_conv1_weights": 96 * 11 * 11 * 3,
        "alexnet_conv1_biases": 96, "alexnet_conv1_keras": 96 * 11 * 11 * 3 + 96,
        "lenet5_60k": (25 + 1) * 6 + (150 + 1) * 16 + (400 + 1) * 120 + (120 + 1) * 84 + (84 + 1) * 10,
        "lenet_keras_total": (25 + 1) * 6 + (150 + 1) * 16 + (784 + 1) * 120 + (120 + 1) * 84 + (84 + 1) * 10,
        "googlenet_5m": 6_624_904, "googlenet_4m": 6_624_904,  # torchvision GoogLeNet_Weights num_params
        "googlenet_12x": Fraction(61_100_840, 6_624_904),
        "inception_naive_854m": 28 * 28 * 256 * (128 + 192 * 9 + 96 * 25),
        "inception_bottleneck_353m": 28 * 28 * (64 * 256 * 3 + 128 * 256 + 192 * 9 * 64 + 96 * 25 * 64),
        "inception_bottleneck_358m": 271_351_808,
        "fcconv_224_features": [512, 7, 7], "fcconv_224_out": [1000, 1, 1], "fcconv_384_features": [512, 12, 12],
        "fcconv_384_out": [1000, (12 - 7) // 1 + 1, (12 - 7) // 1 + 1],
        "stack7_27c2": 27, "one7_49c2": 49, "stack5_18": 18, "one5_25": 25,
        "saving5_28": 100 * (1 - Fraction(18, 25)), "saving7_44": 100 * (1 - Fraction(27, 49)),
        "rf_3x3_x2": [5, 5], "rf_3x3_x3": [7, 7], "alexnet_depth": 8, "vgg16_depth": 16, "vgg19_depth": 19,
    }
    alexnet_keras = [(11 * 11 * 3 + 1) * 96, (5 * 5 * 96 + 1) * 256, (9 * 256 + 1) * 384, (9 * 384 + 1) * 384,
                     (9 * 384 + 1) * 256, (9216 + 1) * 4096, (4096 + 1) * 4096, (4096 + 1) * 1000]
    h["alexnet_keras_total"] = sum(alexnet_keras)
    for name, value in zip(["conv2.conv", "conv3.conv", "conv4.conv", "conv5.conv", "fc6.linear", "fc7.linear", "fc8"], alexnet_keras[1:]):
        prefix = "features." if name.startswith("conv") else "classifier."
        h[f"alexnet_keras_{prefix}{name}"] = value
    for path, value in {"features.C1": 156, "features.C3": 16 * (5 * 5 * 6 + 1), "classifier.F5": 120 * 785,
                        "classifier.F6": 84 * 121, "classifier.output": 10 * 85}.items():
        h[f"lenet_keras_{path}"] = value
    # VGG16: 13 convolutions (Cin, Cout, size), then FC 25088->4096->4096->1000
    convs = [(3, 64, 224), (64, 64, 224), (64, 128, 112), (128, 128, 112), (128, 256, 56), (256, 256, 56), (256, 256, 56),
             (256, 512, 28), (512, 512, 28), (512, 512, 28), (512, 512, 14), (512, 512, 14), (512, 512, 14)]
    paths = [f"features.stage{s}.conv{j}.conv" for s, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)) for j in range(1, n + 1)]
    fcs = [(25088, 4096), (4096, 4096), (4096, 1000)]
    h["vgg16_memory_input"] = 224 * 224 * 3
    for path, (cin, cout, size) in zip(paths, convs):
        h[f"vgg16_memory_{path}"] = size * size * cout
        h[f"vgg16_weights_{path}"] = 9 * cin * cout
        h[f"vgg16_keras_{path}"] = 9 * cin * cout + cout
    for s, (c, size) in enumerate(((64, 112), (128, 56), (256, 28), (512, 14), (512, 7)), start=1):
        h[f"vgg16_memory_features.stage{s}.pool"] = c * size * size
    for path, (i, o) in zip(("classifier.0", "classifier.3", "classifier.6"), fcs):
        h[f"vgg16_memory_{path}"] = o
        h[f"vgg16_weights_{path}"] = i * o
        h[f"vgg16_keras_{path}"] = i * o + o
    vgg16 = sum(9 * cin * cout + cout for cin, cout, _ in convs) + sum(i * o + o for i, o in fcs)
    assert vgg16 == 138_357_544  # the Keras summary of lecture 001
    table_rows = 224 * 224 * 3 + sum(size * size * cout for _, cout, size in convs) + sum(
        c * size * size for c, size in ((64, 112), (128, 56), (256, 28), (512, 14), (512, 7))) + 4096 + 4096 + 1000
    h.update({
        "alexnet_60m": 61_100_840,  # torchvision AlexNet_Weights num_params
        "vgg16_keras_total": vgg16, "vgg16_140m": vgg16, "vgg16_138_4m": vgg16, "vgg16_total_weights": vgg16,
        "fcconv_params": vgg16, "vgg16_528mb": 4 * vgg16,
        "vgg19_143_7m": 143_667_240, "vgg19_549mb": 4 * 143_667_240,
        "vgg16_fc1_share": 100 * Fraction(25088 * 4096 + 4096, vgg16),
        "vgg16_total_memory": table_rows, "vgg16_total_memory_bytes": 4 * table_rows,
    })
    assert table_rows == 15_237_608
    return h


HAND = _hand()


@pytest.mark.parametrize("claim", claimslib.claims(), ids=lambda c: c.id)
def test_claim_matches_hand_calculation(claim):
    assert claim.id in HAND, f"no hand calculation for {claim.id}"
    result = claimslib.judge(claim)
    if result.verdict == "unavailable":
        pytest.skip(f"{claim.ref.network} is not in the zoo")
    assert result.computed == HAND[claim.id]
    assert result.ok, f"{claim.id}: {result.verdict}, marked wrong: {claim.wrong}"


def test_claims_have_sources_quotes_and_conventions():
    seeds = {"000_12de7eca9a6f8a84.txt", "001_f722223972e2077b.txt", "002_7bcb16c13aee3109.txt",
             "003_814164eb272a992a.txt", "004_5313b15ce488b0b1.txt"}
    for claim in claimslib.claims():
        assert claim.quote and claim.convention and claim.sources
        assert all(any(seed in source for seed in seeds) for source in claim.sources), claim.id


def _claim(value, unit=None, **extra) -> claimslib.Claim:
    ref = claimslib.Ref("alexnet_keras", "activations", "features.conv1.conv")  # 290,400 values
    return claimslib.Claim("t", "t", ("s",), "q", "c", value, unit, ref, **extra)


@pytest.mark.parametrize("value, unit, extra, verdict", [
    (290400, None, {}, "exact"),
    (290.4, "K", {}, "exact"),
    (0.3, "M", {}, "rounds"),
    (0.2, "M", {}, "truncates"),
    (300, "K", {"significant": 1}, "rounds"),
    (280, "K", {}, "off"),
])
def test_verdicts(value, unit, extra, verdict):
    assert claimslib.judge(_claim(value, unit, **extra)).verdict == verdict


def test_off_percent_and_wrong_marking():
    result = claimslib.judge(_claim(24, "M", wrong=True))
    assert result.verdict == "off" and result.ok
    assert result.off_percent == pytest.approx((24e6 - 290400) / 290400 * 100)
    assert not claimslib.judge(_claim(290400, wrong=True)).ok  # marked wrong but it adds up


# ---- determinism and staleness ---------------------------------------------------------------

def test_report_is_deterministic():
    first, second = build(), build()
    assert first.keys() == second.keys()
    assert {"README.md", "zoo.md", "claims.md", "tricks.md", "plots/zoo_params_macs.svg", "plots/zoo_params_macs.png"} <= first.keys()
    assert [p for p in first if first[p] != second[p]] == []


def test_committed_reports_are_up_to_date():
    assert stale(ROOT / "reports") == [], "reports/ is stale: run `archcalc report`"


@pytest.fixture
def zoo_copy(tmp_path, monkeypatch):
    copy = tmp_path / "specs"
    shutil.copytree(spec.zoo_dir(), copy)
    monkeypatch.setattr(spec, "zoo_dir", lambda: copy)
    return copy


def test_check_finds_a_page_made_stale_by_a_spec_edit(zoo_copy, tmp_path):
    out = tmp_path / "reports"
    generate(out, "lenet5")
    assert stale(out, "lenet5") == []
    path = zoo_copy / "lenet.json"
    path.write_text(path.read_text(encoding="utf-8").replace('"out": 120', '"out": 121', 1), encoding="utf-8")
    assert stale(out, "lenet5") == ["networks/lenet5.md (differs)"]
    result = CliRunner().invoke(main, ["report", "lenet5", "--check", "--out", str(out)])
    assert result.exit_code == 1 and "networks/lenet5.md" in result.output


def test_cli_writes_one_network(tmp_path):
    result = CliRunner().invoke(main, ["report", "lenet5", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "networks" / "lenet5.md").read_text(encoding="utf-8")
    assert re.search(r"\|\s+61,706\s+\|", page)  # 156 + 2,416 + 48,120 + 10,164 + 850
    assert CliRunner().invoke(main, ["report", "lenet5", "--check", "--out", str(tmp_path)]).exit_code == 0


def test_report_modules_do_not_import_matplotlib():
    code = "import sys, archcalc.report, archcalc.cli; print('matplotlib' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
