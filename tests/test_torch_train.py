"""The training figures against torch on the CPU (archcalc.torch.train): saved_tensors_hooks for the bytes
autograd keeps, FlopCounterMode over the backward, p.grad and optimizer.state after a step, the step's peak."""
import pytest

pytest.importorskip("torch")

from test_training import PARAMS, SAVED_VALUES, THREE_LAYERS  # noqa: E402

from archcalc.core import training  # noqa: E402
from archcalc.core.calc import analyze  # noqa: E402
from archcalc.core.spec import load, resolve  # noqa: E402
from archcalc.torch.train import checks, measure  # noqa: E402

# Networks whose every layer type archcalc counts exactly (docs/conventions.md lists the approximate ones), at
# a small input and batch 2: plain and batch-normalised convs, max and adaptive pooling, dropout, residual adds,
# squeeze-and-excitation products, depthwise and grouped convs, concatenations, hardswish, channel shuffles and
# slices (a view keeps its whole storage). The token layers in TOKENS (`verify --train vit_b_32` agrees too).
TOKENS = {"input": [10, 48], "layers": [
    {"type": "linear", "out": 32}, {"type": "layer_norm"}, {"type": "multihead_attention", "heads": 4},
    {"type": "dropout", "p": 0.0}, {"type": "gelu"}, {"type": "multihead_attention", "heads": 2, "dropout": 0.1},
    {"type": "linear", "out": 5},
]}
EXACT = {"lenet5": None, "lenet5_paper": None, "resnet18": (3, 64, 64), "squeezenet1_1": (3, 64, 64), "mobilenet_v2": (3, 64, 64),
         "mobilenet_v3_small": (3, 64, 64), "shufflenet_v2_x0_5": (3, 64, 64)}  # `verify --train` agrees on more


def test_the_three_layer_network_measured_by_torch_is_the_hand_count():
    analysis = analyze(resolve(THREE_LAYERS, "t", "t.json"), batch=2)
    measured = measure(analysis, "adamw")
    assert measured.saved_bytes == 2 * SAVED_VALUES * 4
    assert measured.gradient_bytes == PARAMS * 4
    assert measured.optimizer_state_bytes == 2 * PARAMS * 4 + 4 * 4
    assert measured.backward_macs == 2 * (4 * 8 * 8 * 27 + 2 * 2560)  # batch 2; no gradient of the network input


@pytest.mark.parametrize("name", sorted(EXACT))
def test_training_figures_agree_with_torch(name):
    analysis = analyze(load(name), EXACT[name], batch=2)
    found = checks(analysis, "adam")
    assert [c for c in found if not c.ok] == []


WINDOWS = {"input": [3, 20, 20], "layers": [  # 10x10 in windows of 4: padded to 12x12, shifted by 2
    {"type": "conv2d", "out": 16, "kernel": 2, "stride": 2}, {"type": "window_attention", "heads": 2, "window": 4},
    {"type": "window_attention", "heads": 2, "window": 4, "shift": 2}, {"type": "patch_merging"},
]}


WINDOWS_V2 = {"input": [3, 20, 20], "layers": [  # Swin v2: cosine attention, logit scale, position bias MLP
    {"type": "conv2d", "out": 16, "kernel": 2, "stride": 2},
    {"type": "window_attention", "heads": 2, "window": 4, "v2": True, "mlp_hidden": 24},
    {"type": "window_attention", "heads": 2, "window": 4, "shift": 2, "v2": True, "mlp_hidden": 24},
    {"type": "patch_merging", "norm_after": True},
]}
LRN = {"input": [3, 16, 16], "layers": [  # AlexNet's order: conv, ReLU (its output kept once), LRN, max pooling
    {"type": "conv2d", "out": 8, "kernel": 3}, {"type": "relu"}, {"type": "lrn", "size": 5},
    {"type": "max_pool2d", "kernel": 2, "stride": 2}, {"type": "conv2d", "out": 4, "kernel": 3}, {"type": "lrn", "size": 4},
]}


@pytest.mark.parametrize("spec", [TOKENS, WINDOWS, WINDOWS_V2, LRN], ids=["tokens", "windows", "windows_v2", "lrn"])
def test_token_layers_agree_with_torch(spec):
    found = checks(analyze(resolve(spec, "t", "t.json"), batch=2), "adamw")
    assert [c for c in found if not c.ok and not c.tolerance] == []  # the exact ones (the peak: on networks above)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adamw"])
def test_optimizer_state_is_what_torch_keeps(optimizer):
    analysis = analyze(load("lenet5"), batch=2)
    [state] = [c for c in checks(analysis, optimizer) if c.what.startswith("optimizer")]
    assert state.ok and (state.torch == 0) == (optimizer == "sgd")


NORMS = {"input": [3, 12, 12], "layers": [  # each norm whose statistics torch's CPU kernels keep in bf16
    {"type": "conv2d", "out": 8, "kernel": 3}, {"type": "batch_norm2d"}, {"type": "relu"},
    {"type": "group_norm", "groups": 2}, {"type": "layer_norm2d"}, {"type": "conv2d", "out": 4, "kernel": 3},
]}


def test_bf16_norm_statistics_are_kept_in_bf16_on_the_cpu():
    """archcalc counts the norms' mean and inverse deviation in fp32 (torch's CUDA kernels); torch's CPU
    kernels keep them in the model's dtype, which verify takes into account: 2 bytes fewer a statistic."""
    analysis = analyze(resolve(NORMS, "t", "t.json"), batch=2, dtype="bf16")
    [saved] = [c for c in checks(analysis, "adam") if c.what.startswith("saved")]
    assert saved.ok and "as on the CPU" in saved.what
    # two statistics: BN's per channel once per batch; GN's per group and LN's per position, per image (2 images)
    statistics = 2 * 8 + 2 * (2 * 2) + 2 * (2 * 10 * 10)
    with training.counting(training.Setup(), "bf16"):
        ours = training.breakdown(analyze(resolve(NORMS, "t", "t.json"), batch=2, dtype="bf16")).saved
    assert ours - saved.torch == statistics * 2


@pytest.mark.parametrize("name", ["lenet5"])
def test_bf16_training_figures_agree_with_a_bf16_model(name):
    """Weights, gradients, Adam's moments and the kept activations in bf16 (no master weights): half of fp32's."""
    analysis = analyze(load(name), EXACT[name], batch=2, dtype="bf16")
    found = checks(analysis, "adam")
    assert [c for c in found if not c.ok] == []
    fp32 = {c.what: c.torch for c in checks(analysis.scaled(dtype="fp32"), "adam")}
    [grads] = [c for c in found if c.what.startswith("gradients")]
    assert 2 * grads.torch == fp32[grads.what]


def test_autocast_keeps_bf16_activations_and_a_bf16_copy_of_each_weight():
    """CPU autocast to bf16 (fp32 model): what it keeps is archcalc's `--dtype bf16 --master fp32` figure (the
    activations in bf16) plus the bf16 copy of each conv and linear weight that autocast makes and the
    backward reads (docs/conventions.md, "Mixed precision"); gradients stay fp32, as the parameters."""
    with training.counting(training.check_setup("adamw", "fp32"), "bf16"):
        mixed = training.breakdown(analyze(resolve(THREE_LAYERS, "t", "t.json"), batch=2, dtype="bf16"))
    assert mixed.saved == 2 * SAVED_VALUES * 2
    weight_copies = (4 * 3 * 9 + 256 * 10) * 2  # the biases are not cast for the backward
    measured = measure(analyze(resolve(THREE_LAYERS, "t", "t.json"), batch=2), "adamw", autocast=True)
    assert measured.saved_bytes == mixed.saved + weight_copies
    assert measured.gradient_bytes == PARAMS * 4 == 2 * mixed.gradients


def test_verify_all_runs_each_network_at_the_smallest_input_it_takes():
    from archcalc.torch.train import small_input

    # AlexNet (the paper's layout, 227 input): conv 11/4, then three 3/2 max poolings around 5x5 and 3x3 convs
    # that keep the size. At 64: 14, pooled to 6, then 2, where the last pooling has no 3x3 window; at 96: 22, 10, 4, 1.
    assert small_input(load("alexnet_paper")) == (3, 96, 96)
    assert small_input(load("resnet18")) == (3, 32, 32)
    assert small_input(load("lenet5")) == (1, 32, 32)  # its own: nothing smaller is tried
    assert small_input(load("googlenet_aux1")) == (512, 14, 14)  # at 32 or more: larger than its own
