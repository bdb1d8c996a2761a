"""The torch builder: modules named like the calculator's rows, built as the spec says, trainable."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import archcalc  # noqa: E402
from archcalc.core.calc import analyze  # noqa: E402
from archcalc.core.spec import load  # noqa: E402
from archcalc.torch.build import build_torch  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
MIRROR = str(FIXTURES / "mirror.json")
BRANCHING = str(FIXTURES / "branching.json")


def conv(cin, cout, kernel, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1, bias=True):
    return {"class": nn.Conv2d, "in_channels": cin, "out_channels": cout, "kernel_size": kernel, "stride": stride,
            "padding": padding, "dilation": dilation, "groups": groups, "bias": bias}


def se(prefix: str) -> dict:
    """The squeeze-excitation gate of tests/fixtures/mirror.json, c = 8, squeeze = c // 4 = 2."""
    return {
        f"{prefix}.pool": {"class": nn.AdaptiveAvgPool2d, "output_size": 1},
        f"{prefix}.reduce": conv(8, 2, (1, 1)),
        f"{prefix}.act": {"class": nn.ReLU},
        f"{prefix}.expand": conv(2, 8, (1, 1)),
        f"{prefix}.sigmoid": {"class": nn.Sigmoid},
        f"{prefix}.gate": {"class": "Mul"},  # a merge's module: named by the merge, its branches beside it
    }


def residual(prefix: str) -> dict:
    return {
        f"{prefix}.conv": conv(8, 8, (3, 3), padding=(2, 2), dilation=(2, 2), groups=2, bias=False),
        f"{prefix}.bn": {"class": nn.BatchNorm2d, "num_features": 8},
        **se(f"{prefix}.se"),
        f"{prefix}.type": {"class": nn.ReLU},
    }


# Every layer of tests/fixtures/mirror.json, read off the spec by hand. The stem's 'same'
# padding at stride 2 on 12x16: output 6x8, padding (6-1)*2+3-12 = 1 along H and
# (8-1)*2+3-16 = 1 along W, which TensorFlow puts on the bottom/right: a ZeroPad2d before the conv.
MIRROR_LAYERS = {
    "forward": {"class": nn.ReLU},
    **residual("stage.res0"),
    **residual("stage.res1"),
    "wide": conv(8, 4, (1, 5), padding=(0, 2)),
    "pool": {"class": nn.MaxPool2d, "kernel_size": (3, 3), "stride": (1, 1), "padding": (1, 1)},
    "mix": {"class": "Concat"},
    "stage.res0.sum": {"class": "Add"},  # the residual sums: a row each, computed by the merge's module
    "stage.res1.sum": {"class": "Add"},
    "head.pool": {"class": nn.AdaptiveAvgPool2d, "output_size": 1},
    "head.flat": {"class": nn.Flatten},
    "head.drop": {"class": nn.Dropout, "p": 0.2},
    "head.fc": {"class": nn.Linear, "in_features": 8 + 8 + 4, "out_features": 5},
}
# the sequences holding merges, and the merges' combining modules beside their branches' modules
MIRROR_GRAPHS = {"stage.res0": ["conv", "bn", "se", "sum", "type"],
                 "stage.res0.se": ["pool", "reduce", "act", "expand", "sigmoid", "gate"],
                 "": ["stem", "forward", "stage", "wide", "pool", "mix", "head"]}


def value(module, attr):
    got = getattr(module, attr)
    if attr == "bias":
        return got is not None
    if attr == "output_size" and isinstance(got, tuple):
        return got[0] if got[0] == got[1] else got
    return got


@pytest.fixture(scope="module")
def mirror():
    network = load(MIRROR)
    torch.manual_seed(0)
    return network, build_torch(network)


def test_every_leaf_row_is_the_module_of_that_name(mirror):
    network, model = mirror
    leaves = [row for row in analyze(network).leaves() if row.label != "input"]
    assert {row.path for row in leaves} == set(MIRROR_LAYERS) | {"stem"}
    for row in leaves:
        module = model.get_submodule(row.path)
        if row.path == "stem":
            continue
        expected = MIRROR_LAYERS[row.path]
        kind = expected["class"]
        if isinstance(kind, str):
            assert type(module).__name__ == kind, row.path
        else:
            assert type(module) is kind, (row.path, module)
        for attr, want in expected.items():
            if attr != "class":
                assert value(module, attr) == want, (row.path, attr, value(module, attr), want)


def test_asymmetric_same_padding_is_a_zero_pad_before_the_conv(mirror):
    _, model = mirror
    stem = model.get_submodule("stem")
    pad, conv2d = stem[0], stem[1]
    assert isinstance(pad, nn.ZeroPad2d) and pad.padding == (0, 1, 0, 1)  # left, right, top, bottom
    assert (conv2d.in_channels, conv2d.out_channels, conv2d.kernel_size, conv2d.stride, conv2d.padding) == \
        (3, 8, (3, 3), (2, 2), (0, 0))
    assert tuple(model.get_submodule("stem")(torch.zeros(1, 3, 12, 16)).shape) == (1, 8, 6, 8)


def test_same_padding_follows_the_input_size():
    # 13x17 at stride 2: output 7x9, padding (7-1)*2+3-13 = 2 = (9-1)*2+3-17: one on each side.
    stem = build_torch(analyze(load(MIRROR), (3, 13, 17))).get_submodule("stem")
    assert isinstance(stem, nn.Conv2d) and stem.padding == (1, 1)


def test_groups_are_merges_and_sequences_named_like_the_rows(mirror):
    network, model = mirror
    for path, children in MIRROR_GRAPHS.items():
        group = model.get_submodule(path)
        assert type(group).__name__ == "Graph" and [name for name, _ in group.named_children()] == children
    names = {name for name, _ in model.named_modules()}
    rows = {row.path for row in analyze(network).rows if row.label != "input"}
    # Nothing is matched by position: torch's module names are exactly the calculator's row
    # paths, plus the root and the two halves of the padded stem.
    assert names == rows | {"", "stem.0", "stem.1"}


def test_names_that_shadow_torch_methods_still_resolve(mirror):
    _, model = mirror
    assert isinstance(model.get_submodule("forward"), nn.ReLU)
    assert isinstance(model.get_submodule("stage.res1.type"), nn.ReLU)
    assert callable(model.type) and callable(model.forward)  # the methods are untouched
    model.eval()
    model.train()


def _module_attributes() -> list[str]:
    """The names a spec may give a layer that are attributes of torch's modules, as torch itself lists them."""
    import re

    module = nn.Sequential()
    names = set(vars(module)) | {n for n in dir(module) if not callable(getattr(module, n, None))}
    return sorted(n for n in names if re.fullmatch(r"[A-Za-z0-9_]+", n))


def test_names_that_are_attributes_of_torch_modules_build_and_run():
    """`training` (which Module.train() assigns), `_parameters`, `_modules`...: table accepts them, so the
    build does too: the child is reachable by its name and the module still trains, evaluates and runs."""
    names = _module_attributes()
    assert {"training", "_modules", "_parameters", "dump_patches"} <= set(names)
    layers = [{"name": name, "type": "conv2d", "out": 2, "kernel": 1} for name in names]
    network = archcalc.core.spec.resolve({"input": [2, 4, 4], "layers": layers}, "clash", "clash.json")
    model = build_torch(network)
    for name in names:
        assert isinstance(model.get_submodule(name), nn.Conv2d), name
    assert [n for n, _ in model.named_children()] == names
    model.eval()
    assert model.training is False and not any(m.training for m in model.modules())
    model.train()
    assert model.training is True
    assert sum(p.numel() for p in model.parameters()) == len(names) * (2 * 2 + 2)
    assert model(torch.ones(1, 2, 4, 4)).shape == (1, 2, 4, 4)


def test_a_layer_named_training_verifies(tmp_path):
    from click.testing import CliRunner

    from archcalc.cli import main

    path = tmp_path / "clash.json"
    path.write_text(json.dumps({"input": [1, 6, 6], "layers": [{"name": "training", "type": "conv2d", "out": 2, "kernel": 3}]}))
    result = CliRunner().invoke(main, ["verify", str(path)])
    assert result.exit_code == 0, result.output


def test_a_layer_that_shares_uses_the_same_tensors(tmp_path):
    """conv, relu, the conv again, then a batch norm used twice: torch counts each tensor once."""
    spec = {"input": [4, 6, 6], "layers": [
        {"name": "conv", "type": "conv2d", "out": 4, "kernel": 3, "padding": 1}, {"name": "bn", "type": "batch_norm2d"},
        {"type": "relu"}, {"name": "again", "type": "conv2d", "out": 4, "kernel": 3, "padding": 1, "shares": "conv"},
        {"name": "bn2", "type": "batch_norm2d", "shares": "bn"}]}
    network = archcalc.core.spec.resolve(spec, "tied", "tied.json")
    model = build_torch(network).eval()
    conv, again = model.get_submodule("conv"), model.get_submodule("again")
    assert conv is not again and conv.weight is again.weight and conv.bias is again.bias
    assert model.get_submodule("bn").running_mean is model.get_submodule("bn2").running_mean
    assert sum(p.numel() for p in model.parameters()) == 4 * 4 * 9 + 4 + 2 * 4 == analyze(network).totals.params
    assert sum(b.numel() for n, b in model.named_buffers() if "num_batches" not in n) == 8 == analyze(network).totals.non_trainable
    x = torch.randn(1, 4, 6, 6)
    with torch.no_grad():
        bn = model.get_submodule("bn")
        assert torch.equal(model(x), bn(conv(torch.relu(bn(conv(x))))))


def test_forward_pass_on_batch_and_non_square_input(mirror):
    network, model = mirror
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(3, 3, 12, 16))
    assert tuple(out.shape) == (3, 5)
    # 3*8*9 + 8 (stem) + 2*(8*4*9 + 16 + 8*2+2 + 2*8+8) (residuals) + 8*4*5 + 4 (wide) + 20*5 + 5 (fc)
    assert sum(p.numel() for p in model.parameters()) == 224 + 2 * (288 + 16 + 18 + 24) + 164 + 105


def test_build_torch_is_in_the_package_api_and_lazy():
    script = (
        "import sys, archcalc\n"
        "f = archcalc.build_torch\n"
        "print('torch' in sys.modules)\n"
        "m = f(archcalc.load('lenet5'))\n"
        "print('torch' in sys.modules, type(m).__module__)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True", "archcalc.torch.build"]
    assert archcalc.build_torch is build_torch
    with pytest.raises(AttributeError):
        archcalc.no_such_thing  # noqa: B018


def test_a_built_module_trains_one_step():
    torch.manual_seed(0)
    model = archcalc.build_torch(load(BRANCHING))
    assert model.training  # torch's default mode
    x, target = torch.randn(4, 4, 8, 8), torch.tensor([0, 3, 7, 9])
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = nn.functional.cross_entropy(model(x), target)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    optimizer.step()
    weights = [name for name, _ in model.named_parameters() if name.endswith("weight")]
    assert weights == ["0.weight", "1.weight", "3.weight", "4.weight", "fc.weight"]  # the branches' convs: 3, 4
    # (the first conv's bias feeds batch norm, which removes any constant: its gradient is 0)
    assert all(not torch.equal(before[name], p) for name, p in model.named_parameters() if name in weights)
    assert model.get_submodule("1").num_batches_tracked.item() == 1  # the BN layer saw one batch
    with torch.no_grad():
        assert nn.functional.cross_entropy(model(x), target) < loss


def test_zoo_modules_match_the_rows_by_type():
    classes = {"conv2d": nn.Conv2d, "batch_norm2d": nn.BatchNorm2d, "relu": nn.ReLU, "max_pool2d": nn.MaxPool2d,
               "adaptive_avg_pool2d": nn.AdaptiveAvgPool2d, "flatten": nn.Flatten, "linear": nn.Linear,
               "dropout": nn.Dropout}
    for name in ("googlenet", "resnet18"):
        network = load(name)
        model = build_torch(network)
        leaves = [row for row in analyze(network).leaves() if row.label != "input"]
        seen = set()
        for row in leaves:
            module = model.get_submodule(row.path)
            if row.label in classes:
                assert type(module) is classes[row.label], (name, row.path, module)
            elif row.label in ("concat", "add"):
                assert type(module).__name__ == row.label.capitalize(), (name, row.path)
            else:
                raise AssertionError(f"{name}: unexpected layer type {row.label} at {row.path}")
            seen.add(row.label)
        assert {"conv2d", "batch_norm2d", "linear"} <= seen
    # torchvision's GoogLeNet: inception3a's 3x3 branch is a 1x1 reduce to 96 then a 3x3 to 128.
    model = build_torch(load("googlenet"))
    convs = [m for n, m in model.named_modules() if n.startswith("inception3a.") and isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [
        (64, (1, 1)), (96, (1, 1)), (128, (3, 3)), (16, (1, 1)), (32, (3, 3)), (32, (1, 1))]


ON_TOKENS = {"layer_norm", "multihead_attention", "class_token", "position_embedding", "select_token"}  # layer types sampled on 5 tokens of 6 features
SAMPLE_FIELDS = {"dims": [1, 2, 0], "shape": [24, -1],
                 "op": "Mystery", "at": [4, 6, 6], "output": [3, 5, 5]}  # a measured op, at the sample's input


def _one_layer_spec(name: str) -> dict:
    layer_type = archcalc.layers.REGISTRY[name]
    required = {key: SAMPLE_FIELDS.get(key, 4 if key == "out" else 1) for key, f in layer_type.fields.items()
                if f.default is archcalc.layers.base.REQUIRED}
    flat = layer_type.weight_layer and layer_type.kind == "linear" and name not in ("window_attention", "patch_merging")
    shape = [6] if flat else [5, 6] if name in ON_TOKENS else [4, 6, 6]
    return {"input": shape, "layers": [{"name": "x", "type": name, **required}]}


@pytest.mark.parametrize("name", sorted(archcalc.layers.REGISTRY))
def test_every_layer_type_has_a_torch_module_of_the_computed_shape_and_size(name):
    import torch

    from archcalc.core.spec import resolve

    analysis = analyze(resolve(_one_layer_spec(name), name, f"{name}.json"))
    model = build_torch(analysis).eval()
    with torch.no_grad():
        out = model(torch.randn(2, *analysis.input_shape))
    row = analysis.row("x")
    assert tuple(out.shape[1:]) == row.output_shape
    assert sum(p.numel() for p in model.parameters()) == row.params
