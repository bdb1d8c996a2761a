"""`archcalc verify`: the calculator against a torch build traced by fvcore, and measured receptive fields."""
from __future__ import annotations

import math
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import zoo_sample

torch = pytest.importorskip("torch")
pytest.importorskip("fvcore")

import archcalc  # noqa: E402
import archcalc.core.spec  # noqa: E402
from archcalc.cli import main  # noqa: E402
from archcalc.core.calc import analyze  # noqa: E402
from archcalc.core.spec import load  # noqa: E402
from archcalc.layers import REGISTRY  # noqa: E402
from archcalc.torch.rf_probe import MAX_PIXELS, gradient_support, receptive_field_check  # noqa: E402
from archcalc.torch.verify import verify_network  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
ZOO = list(archcalc.zoo_index())
SAMPLE = zoo_sample()  # built and run in torch here; `archcalc verify --all` runs the whole zoo
UNITS = {"K": 10**3, "M": 10**6, "G": 10**9}


def runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        return CliRunner()


def fixture(name: str) -> str:
    return str(FIXTURES / f"{name}.json")


# ---- every zoo network, layer by layer against torch + fvcore ----------------------------

def torch_params(report, layer: str | None) -> int:
    """Parameters torch counted on the module at `layer` (a leaf, or the sum of the leaves under a group)."""
    if layer is None:
        return report.totals[0].torch_params
    inside = [c.torch_params for c in report.layers if c.path == layer or c.path.startswith(layer + ".")]
    assert inside and None not in inside, layer
    return sum(inside)


def rounds_to(count: int, value, unit: str, significant: int | None = None) -> bool:
    decimals = max(0, -Decimal(str(value)).as_tuple().exponent)
    if significant:  # "60 M" to one significant digit: rounded to the tens of millions
        decimals = significant - len(str(int(value)))
    return round(count / UNITS[unit], decimals) == value


# Networks whose run at their own size would not fit the suite's time (ViT-L at 224: 62 GMACs, traced twice;
# ViT-H/14 at 518: 1 TMAC and 2.5 GB of weights): traced at a small input here, at their own size by `verify --all`.
AT_A_SMALL_INPUT = {"vit_l_16": (3, 64, 64), "vit_l_32": (3, 64, 64), "vit_h_14": (3, 56, 56)}


@pytest.mark.parametrize("name", SAMPLE)
def test_zoo_network_agrees_with_torch_and_fvcore(name):
    network = load(name)
    report = verify_network(analyze(network, AT_A_SMALL_INPUT.get(name)), receptive_field=False)
    assert report.analysis.input_shape == AT_A_SMALL_INPUT.get(name, network.input)  # traced at the spec's own size
    problems = [f"{c.path} ({c.type}): {c.problems()}" for c in report.disagreeing]
    assert not problems, "\n".join(problems)
    assert report.ok
    for check in report.layers:  # every row found its module, by name
        assert None not in (check.torch_shape, check.torch_params, check.torch_flops), check.path
    total, buffers = report.totals
    assert total.torch_flops == total.flops == report.analysis.totals.fvcore_flops  # fvcore's own total, exactly
    # the peak of live activations: torch's allocations in one inference pass, to the byte
    assert report.peak_live == (report.analysis.peak_activation_bytes,) * 2
    assert total.torch_params == report.analysis.totals.params
    assert buffers.torch_params == report.analysis.totals.non_trainable
    # The torch module against the published parameter counts (torchvision num_params, papers, Keras).
    for e in network.expect if name not in AT_A_SMALL_INPUT else ():  # (a position embedding follows the input)
        if e.wrong or e.what not in ("params", "params_keras"):
            continue
        count = torch_params(report, e.layer)
        if e.what == "params_keras":  # Keras counts BN's moving mean and variance as parameters
            assert e.layer is None
            count += buffers.torch_params
        if e.unit is None:
            assert count == e.value, (e.what, e.layer, count, e.value, e.source)
        else:
            assert rounds_to(count, e.value, e.unit, e.figure.significant), (e.what, e.layer, count, e.value, e.unit, e.source)


def test_fvcore_counts_vgg16_as_torchvision_macs_plus_its_average_pool():
    # torchvision's _ops for VGG16 is 15.47 GMACs: the 13 convs and 3 linear layers, by hand.
    stages = [[64, 64], [128, 128], [256] * 3, [512] * 3, [512] * 3]
    macs, cin = 0, 3
    for k, widths in enumerate(stages):
        side = 224 >> k
        for cout in widths:
            macs += cout * side * side * cin * 9
            cin = cout
    macs += 512 * 7 * 7 * 4096 + 4096 * 4096 + 4096 * 1000
    assert round(macs / 1e9, 2) == 15.47
    report = verify_network(analyze(load("vgg16")), receptive_field=False)
    # fvcore adds one flop per input element of the adaptive average pool (512x7x7); ReLU
    # and max pooling count nothing.
    assert report.totals[0].torch_flops == macs + 512 * 7 * 7
    assert report.unsupported == {"aten::max_pool2d": 5}


def test_every_merge_kind_on_a_batch_of_non_square_images():
    # tests/fixtures/mirror.json: asymmetric 'same' padding, a dilated grouped conv, squeeze-excitation
    # (mul), residual additions, a concat with an identity branch; input 3x12x16, batch 2.
    report = verify_network(analyze(load(fixture("mirror")), batch=2))
    assert report.ok, [c.path for c in report.disagreeing]
    checks = {c.path: c for c in report.layers}
    conv = checks["stage.res0.conv"]
    assert conv.torch_shape == (8, 6, 8)  # stem: ceil(12/2) x ceil(16/2)
    assert conv.torch_flops == 2 * (8 * 6 * 8) * (8 // 2) * 3 * 3  # batch x outputs x (Cin/groups) x 3 x 3
    assert checks["stage.res0.se.pool"].torch_flops == 2 * 8 * 6 * 8  # fvcore: 1 per input element
    assert checks["mix"].torch_shape == (4 + 8 + 8, 6, 8)
    assert report.rf is not None and not report.rf.clipped and report.rf.measured == report.rf.expected


def test_adds_that_broadcast_agree_with_torch():
    # tests/fixtures/broadcast_add.json on 8x5x14: x + conv(x) with one channel out (1x5x14 broadcast over the
    # channels), conv(x) + x (the first branch smaller than the sum: a new tensor), and x + a pooled context
    # (8x1x1, broadcast over the positions); shapes, counts, peak memory and the field as torch measures them
    report = verify_network(analyze(load(fixture("broadcast_add")), batch=2))
    assert report.ok, [c.path for c in report.disagreeing]
    checks = {c.path: c for c in report.layers}
    assert checks["res2"].torch_shape == tuple((torch.zeros(2, 1, 5, 14) + torch.zeros(2, 8, 5, 14)).shape[1:])
    assert report.peak_live is not None and report.peak_live[0] == report.peak_live[1]
    assert report.rf is not None and report.rf.measured == report.rf.expected


# ---- the command ----------------------------------------------------------------------

def test_cli_agrees_on_a_network_with_receptive_field():
    result = runner().invoke(main, ["verify", "lenet5"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "params: calculator 61,706, torch 61,706: ok" in result.stdout  # LeCun et al. 1998 via mnchapel
    assert re.search(r"receptive field at \S+ \(input 1x\d+x\d+\): calculator 32, gradient support 32: agrees",
                     result.stdout)
    assert result.stdout.rstrip().endswith("all agree")


def test_cli_batch_and_non_square_input():
    result = runner().invoke(main, ["verify", "resnet18", "--input", "3x240x320", "--batch", "4", "--no-rf"])
    assert result.exit_code == 0, (result.output, result.exception)
    out = result.stdout
    assert out.startswith("resnet18: calculator vs torch + fvcore, input 3x240x320, batch 4, fp32\n")
    # conv1 (7x7, stride 2, padding 3) gives 64x120x160; the hook saw the same; fvcore counts
    # 4 images x 64*120*160 outputs x 3*7*7 multiply-adds.
    conv1 = next(line for line in out.splitlines() if line.startswith("conv1 "))
    assert conv1.split()[2:4] == ["64x120x160", "64x120x160"]
    assert conv1.count(f"{4 * 64 * 120 * 160 * 3 * 49:,}") == 2
    last = [line for line in out.splitlines() if line.startswith("layer4.")][-1]
    assert last.split()[2:4] == ["512x8x10", "512x8x10"]  # 240/32 x 320/32
    match = re.search(r"fvcore flops \(one multiply-add = 1; batch 4\): calculator ([\d,]+), fvcore ([\d,]+): ok", out)
    assert match and match[1] == match[2]
    # fvcore's count for a batch of 4 is four times its count for one image.
    single = verify_network(analyze(load("resnet18"), (3, 240, 320)), receptive_field=False).totals[0].torch_flops
    assert int(match[2].replace(",", "")) == 4 * single
    assert "params: calculator 11,689,512, torch 11,689,512: ok" in out  # torchvision num_params
    assert "receptive field" not in out and out.rstrip().endswith("all agree")


def verify_disagrees(target: str):
    """Run `archcalc verify TARGET` expecting exit 1; the result and its `disagrees:` lines."""
    result = runner().invoke(main, ["verify", target, "--no-rf"])
    assert result.exit_code == 1, (result.output, result.exception)
    return result, [line for line in result.stdout.splitlines() if line.startswith("disagrees:")]


def test_cli_names_every_disagreeing_layer(monkeypatch):
    linear = REGISTRY["linear"]
    monkeypatch.setattr(linear, "params", lambda a, shape: shape[0] * a["out"])  # forgets the bias
    result, disagree = verify_disagrees("lenet5")
    # LeNet-5's two fully connected layers (F6, and the output layer after C5 and the flatten) and the total.
    assert disagree == [
        "disagrees: classifier.F6 (linear): params",
        "disagrees: classifier.output (linear): params",
        "disagrees: (total) (params): params",
    ]
    f6 = next(line for line in result.stdout.splitlines() if line.startswith("classifier.F6 "))
    assert f6.split()[5:8] == ["10,080", "10,164", "DIFF"]  # 120*84 without and with the 84 biases
    assert "all agree" not in result.stdout


def test_cli_names_layers_whose_torch_module_differs(monkeypatch):
    nn = torch.nn
    monkeypatch.setattr(REGISTRY["relu"], "torch_module", lambda a, shape: nn.Conv2d(shape[0], shape[0], 1, bias=False))
    result, disagree = verify_disagrees(fixture("branching"))
    # branching.json has two ReLUs: `2` (8x8x8) and `5` (4x8x8, in a branch of `mix`); a 1x1 conv adds C*C
    # weights and C*C*8*8 multiply-adds to each.
    assert disagree == [
        "disagrees: 2 (relu): params, flops",
        "disagrees: 5 (relu): params, flops",
        "disagrees: (total) (params): params, flops",
    ]
    relu = next(line for line in result.stdout.splitlines() if line.startswith("2 "))
    assert f"{8 * 8:,}" in relu.split() and f"{8 * 8 * 8 * 8:,}" in relu.split()


def test_cli_verify_all_progress_and_summary(monkeypatch):
    real = archcalc.core.spec.zoo_index()
    small = {name: real[name] for name in ("lenet5", "inception_naive")}
    monkeypatch.setattr(archcalc.core.spec, "zoo_index", lambda: small)
    result = runner().invoke(main, ["verify", "--all"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "verifying" in result.stderr and "verifying" not in result.stdout
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("lenet5: ok (input 1x32x32, batch 1, fp32, params 61,706,")
    assert lines[0].endswith("RF 32 ok)")
    assert lines[1].startswith("inception_naive: ok (input 256x28x28")
    assert lines[2] == "2 agree, 0 disagree"


def test_cli_verify_all_counts_failures(monkeypatch):
    real = archcalc.core.spec.zoo_index()
    small = {name: real[name] for name in ("lenet5", "inception_naive")}
    monkeypatch.setattr(archcalc.core.spec, "zoo_index", lambda: small)
    monkeypatch.setattr(REGISTRY["linear"], "params", lambda a, shape: shape[0] * a["out"])
    result = runner().invoke(main, ["verify", "--all", "--no-rf"])
    assert result.exit_code == 1, (result.output, result.exception)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("lenet5: DIFF classifier.F6, classifier.output, (total) (")
    assert lines[1].startswith("inception_naive: ok ")  # no linear layer
    assert lines[-1] == "1 agree, 1 disagree"


@pytest.mark.parametrize("args, message", [
    (["verify"], "archcalc: verify needs a network: a TARGET (a zoo NAME, a spec, a torch: or .onnx model; see --help), "
                 "or --all"),
    (["verify", "lenet5", "--all"], "archcalc: verify takes a network (TARGET) or --all, not both"),
])
def test_cli_verify_needs_one_target_or_all(args, message):
    result = runner().invoke(main, args)
    assert result.exit_code == 2
    assert result.stderr.startswith(message) and result.stdout == ""


def test_cli_verify_all_one_line_per_network_when_stderr_is_not_a_terminal(monkeypatch):
    real = archcalc.core.spec.zoo_index()
    monkeypatch.setattr(archcalc.core.spec, "zoo_index", lambda: {name: real[name] for name in ("lenet5", "inception_naive")})
    result = runner().invoke(main, ["verify", "--all", "--no-rf"])
    progress = result.stderr.splitlines()
    assert len(progress) == 3 and "\r" not in result.stderr
    assert progress[0].endswith("0/2 verifying lenet5") and progress[1].endswith("1/2 verifying inception_naive")


def test_cli_verify_all_ctrl_c_keeps_what_was_measured(monkeypatch):
    import archcalc.torch.verify as verify_module

    real = archcalc.core.spec.zoo_index()
    monkeypatch.setattr(archcalc.core.spec, "zoo_index",
                        lambda: {name: real[name] for name in ("lenet5", "inception_naive", "alexnet")})
    genuine, calls = verify_module.verify_network, []

    def interrupted_on_the_second(analysis, **kwargs):
        calls.append(analysis.network.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return genuine(analysis, **kwargs)

    monkeypatch.setattr(verify_module, "verify_network", interrupted_on_the_second)
    result = runner().invoke(main, ["verify", "--all", "--no-rf"])
    assert result.exit_code == 130
    lines = result.stdout.splitlines()
    assert lines[0].startswith("lenet5: ok ") and lines[-1] == "1 agree, 0 disagree"
    assert "archcalc: interrupted; 1 of 3 networks verified" in result.stderr
    assert calls == ["lenet5", "inception_naive"]


def test_cli_verify_batches_and_dtypes():
    result = runner().invoke(main, ["verify", "lenet5", "--batch", "1,3", "--dtype", "fp32,bf16", "--no-rf"])
    assert result.exit_code == 0, result.output
    heads = [line for line in result.stdout.splitlines() if "calculator vs torch" in line]
    assert [h.split("input 1x32x32, ")[1] for h in heads] == ["batch 1, fp32", "batch 3, fp32", "batch 1, bf16", "batch 3, bf16"]
    # LeNet-5's 416,520 MACs per image (C1 117,600 + C3 240,000 + C5 48,000 + F6 10,080 + output 840), x 3
    assert "fvcore flops (one multiply-add = 1; batch 3): calculator 1,249,560, fvcore 1,249,560: ok" in result.stdout


MISSING = """
import sys
sys.modules[{module!r}] = None  # `import {module}` now raises ImportError
from archcalc.cli import main
main(["verify", "lenet5"])
"""


@pytest.mark.parametrize("module", ["torch", "fvcore"])
def test_missing_torch_or_fvcore_says_how_to_install(module):
    result = subprocess.run([sys.executable, "-c", MISSING.format(module=module)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert "torch and fvcore" in lines[0] and "pip install" in lines[0] and "archcalc[torch]" in lines[0]


# ---- receptive fields, measured as the support of a gradient ----------------------------

def hand_rf(layers: list[tuple[int, int]]) -> int:
    """Field of a stack of (kernel, stride) windows: r += (k - 1) * jump; jump *= stride."""
    size, jump = 1, 1
    for kernel, stride in layers:
        size += (kernel - 1) * jump
        jump *= stride
    return size


def vgg_rf(convs_per_stage: list[int]) -> int:
    """VGG's features: 3x3 convs (stride 1), then a 2x2 max pool (stride 2) per stage."""
    return hand_rf([w for n in convs_per_stage for w in [(3, 1)] * n + [(2, 2)]])


# torchvision's AlexNet features: conv 11/4, pool 3/2, conv 5, pool 3/2, 3 x conv 3, pool 3/2.
ALEXNET = hand_rf([(11, 4), (3, 2), (5, 1), (3, 2), (3, 1), (3, 1), (3, 1), (3, 2)])
HAND = {
    "lenet5": 32,  # C5 (5x5 on S4's 5x5) sees the whole 32x32 input
    "lenet5_keras": hand_rf([(5, 1), (2, 2), (5, 1), (2, 2)]),  # S4, the last map before the flatten
    "alexnet": ALEXNET, "alexnet_paper": ALEXNET, "alexnet_keras": ALEXNET,
    "vgg11": vgg_rf([1, 1, 2, 2, 2]), "vgg13": vgg_rf([2, 2, 2, 2, 2]),
    "vgg16": vgg_rf([2, 2, 3, 3, 3]), "vgg19": vgg_rf([2, 2, 4, 4, 4]),
    "vgg16_c": vgg_rf([2, 2, 2, 2, 2]),  # configuration C: the third conv of stages 3-5 is 1x1, adding nothing
    "inception_naive": 5, "inception_bottleneck": 5,  # the widest branch, 5x5, on a 1x1 (or no) reduction
}
for _name in ("vgg11", "vgg13", "vgg16", "vgg19"):
    HAND[f"{_name}_bn"] = HAND[_name]
HAND["vgg11_lrn"] = HAND["vgg11"]

SEQUENTIAL = ["lenet5", "lenet5_keras", "alexnet", "alexnet_paper", "alexnet_keras",
              "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn", "vgg11_lrn", "vgg16_c"]
BRANCHING_ZOO = ["googlenet", "inception_naive", "inception_bottleneck"]


def test_hand_figures():
    assert HAND["vgg16"] == 212 and ALEXNET == 195  # VGG16 pool5, AlexNet pool5 (widely quoted figures)
    assert hand_rf([(3, 1)] * 3) == 7 and hand_rf([(5, 1), (2, 2), (5, 1), (2, 2), (5, 1)]) == 32  # LeNet-5 C5
    assert HAND["lenet5_keras"] == 16


CI_BOUND = 1_100_000  # input pixels: the networks whose field fits are measured here, the rest by `verify --all`


@pytest.mark.parametrize("name", SAMPLE)
def test_zoo_receptive_field_is_the_widest_gradient_support(name):
    check = receptive_field_check(load(name), max_pixels=CI_BOUND)
    assert check is not None
    if check.beyond_bound:  # the only reason not to measure: the grown input would exceed the bound
        assert math.prod(check.input_shape[1:]) > CI_BOUND and not check.clipped
        assert name not in SEQUENTIAL + BRANCHING_ZOO
        return
    assert not check.clipped, check.describe()
    assert check.expected == check.measured, check.describe()
    assert check.ok and check.positions >= 2
    if name in HAND:
        assert check.expected == (HAND[name], HAND[name]), check.describe()


def test_every_zoo_field_fits_the_default_bound():
    # `verify --all` grows the input up to MAX_PIXELS: every zoo network's field fits it, so none is skipped.
    for name in ZOO:
        check = receptive_field_check(load(name), max_pixels=0)  # says the input it would grow to
        if check is not None and check.beyond_bound:
            assert math.prod(check.input_shape[1:]) <= MAX_PIXELS, name


def test_lenet5_c5_sees_the_whole_input():
    # C5 on the 32x32 input: one unit, depending on every pixel (the field exactly fills the input).
    assert gradient_support(load("lenet5"), (1, 32, 32), "features.C5") == ((32, 32), True)
    check = receptive_field_check(load("lenet5"), path="features.C5")
    assert (check.expected, check.measured, check.clipped) == ((32, 32), (32, 32), False)
    assert check.input_shape[1] > 32  # grown until the field fits with a margin


@pytest.mark.parametrize("name, path, size", [
    ("rf_stack3", "conv3", (7, 7)),  # 1 + 3 * 2
    ("rf_stack3", "conv1", (3, 3)),
    ("rf_dilated", "d4", (15, 15)),  # 1 + 2 * (1 + 2 + 4)
    ("rf_dilated", "d2", (7, 7)),  # 1 + 2 * (1 + 2)
    # H: 3, pool +1 (jump 1), conv +2*2 = 8; W: 5 (jump 2), pool +1*2, conv +2*4 = 15
    ("rf_nonsquare", "conv2", (8, 15)),
])
def test_receptive_field_by_hand(name, path, size):
    check = receptive_field_check(load(fixture(name)), path=path)
    assert (check.expected, check.measured, check.clipped) == (size, size, False)


def test_a_field_larger_than_the_input_is_reported_clipped_not_measured():
    network = load(fixture("rf_stack3"))
    assert gradient_support(network, (1, 5, 5), "conv3")[1] is True
    check = receptive_field_check(network, (1, 5, 5), path="conv3", tries=1)
    assert check.clipped and check.input_shape == (1, 5, 5)
    assert "not measured" in check.describe()


def test_a_wrong_receptive_field_is_caught(monkeypatch):
    # Pretend a 3x3 conv grows the field by 3 instead of 2: 10, where the gradient reaches 7 pixels.
    monkeypatch.setattr(REGISTRY["conv2d"], "receptive_field", lambda a, rf, shape: rf.grow((4, 4), (1, 1)))
    check = receptive_field_check(load(fixture("rf_stack3")))
    assert (check.expected, check.measured, check.clipped) == ((10, 10), (7, 7), False)
    assert not check.ok and "DISAGREES" in check.describe()
    result = runner().invoke(main, ["verify", fixture("rf_stack3")])
    assert result.exit_code == 1, (result.output, result.exception)
    assert "disagrees: conv3: receptive field" in result.stdout.splitlines()


def spec_network(layers: list[dict], input_shape: list[int]):
    return archcalc.core.spec.resolve({"input": input_shape, "layers": layers}, "t", "t.json")


def test_a_grouped_transposed_conv_passes_verify():
    # k3 s2 p0: even outputs gather 2 input pixels, odd ones 1 (by hand: o = 2i + j, j < 3).
    network = spec_network([{"name": "up", "type": "conv_transpose2d", "out": 4, "kernel": 3, "stride": 2, "groups": 2}],
                           [4, 6, 6])
    report = verify_network(analyze(network))
    assert report.ok, report.rf.describe()
    assert report.rf.expected == report.rf.measured == (2, 2) and report.rf.positions >= 2


def test_the_one_channel_probe_measures_what_the_full_module_does():
    # The probe collapses the channels; the real module, every weight positive, has the same supports.
    layers = [{"type": "conv2d", "out": 6, "kernel": 3, "stride": 2, "padding": 1}, {"type": "relu"},
              {"type": "conv_transpose2d", "out": 4, "kernel": 4, "stride": 2, "padding": 1, "groups": 2},
              {"type": "avg_pool2d", "kernel": 3, "stride": 1, "padding": 1},
              {"name": "mix", "type": "concat", "branches": [
                  [{"type": "conv2d", "out": 2, "kernel": 1}],
                  [{"type": "conv2d", "out": 2, "kernel": 3, "padding": 2, "dilation": 2}]]}]
    network = spec_network(layers, [3, 24, 24])
    check = receptive_field_check(network, path="mix")
    analysis = analyze(network, check.input_shape)
    model = archcalc.build_torch(analysis).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(0.5, 1.0)
    x = torch.rand(1, *check.input_shape, dtype=torch.float64).add_(0.5).requires_grad_(True)
    out = model(x)  # the concat is the last layer
    supports = []
    h0, w0 = out.shape[2] // 2, out.shape[3] // 2
    for t in range(check.positions):
        (grad,) = torch.autograd.grad(out[0, :, h0 + t, w0 + t].sum(), x, retain_graph=True)
        mask = grad[0].abs().sum(0) > 0
        rows, cols = torch.nonzero(mask.any(1)).flatten(), torch.nonzero(mask.any(0)).flatten()
        supports.append((int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)))
    assert check.measured == check.expected
    assert (max(s[0] for s in supports), max(s[1] for s in supports)) == check.measured


def test_report_shows_a_spec_s_names_as_text():
    from dataclasses import replace

    from hostile_text import BLOCK, BLOCK_SHOWN, HOSTILE, NAME, controls

    from archcalc.torch.verify_render import render_report, summary_line

    report = verify_network(analyze(load(str(HOSTILE))), receptive_field=False)
    assert report.ok
    differing = replace(report.layers[0], type=BLOCK, torch_params=None)  # as a block's row would read
    report = replace(report, layers=(differing, *report.layers[1:]))
    text = render_report(report)
    assert controls(text) == [] and text.startswith(f"{NAME}: calculator vs torch")
    assert f"disagrees: stem.conv ({BLOCK_SHOWN}): params" in text
    assert controls(summary_line(report)) == [] and "\n" not in summary_line(report)


@pytest.mark.parametrize("fused", [False, True])
def test_attention_written_by_hand_agrees_with_torch(fused):
    # matmul merges are counted by fvcore's matmul handle; scaled_dot_product_attention, which fvcore cannot
    # count, against FlopCounterMode: 2 x (2 heads x 10 x 10 x 8) MACs per image, batch 2
    from test_calc import attention_by_hand

    from archcalc.core.spec import resolve

    report = verify_network(analyze(resolve(attention_by_hand(10, 16, 2, fused), "t", "t.json"), batch=2))
    assert report.ok, [(c.path, c.problems()) for c in report.disagreeing]
    products = [c for c in report.layers if c.type in ("matmul", "scaled_dot_product_attention")]
    assert [c.counter for c in products] == (["torch"] if fused else ["fvcore", "fvcore"])
    assert sum(c.torch_flops for c in products) == 2 * 2 * (2 * 10 * 10 * 8)
    assert report.peak_live is not None and report.peak_live[0] == report.peak_live[1]


@pytest.mark.parametrize("bias", [True, False])
def test_a_network_of_tokens_agrees_with_torch_and_has_no_field_in_pixels(bias):
    from archcalc.core.spec import resolve

    layers = [{"type": "layer_norm"}, {"type": "multihead_attention", "heads": 4, "bias": bias},
              {"type": "linear", "out": 8}]
    report = verify_network(analyze(resolve({"input": [65, 16], "layers": layers}, "t", "t.json"), batch=3))
    assert report.ok, [(c.path, c.problems()) for c in report.disagreeing]
    assert report.rf is None  # its input is not an image
    assert report.peak_live is not None and report.peak_live[0] == report.peak_live[1]
