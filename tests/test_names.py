"""Row paths are torch's module names: a merge's branches add no part to a path, a merge's row is named by
the merge (a functional op: `layer1.0.add`), a module called again keeps its one name on every row.

The expected names are torchvision 0.28's `named_modules()` (and its functional calls, named after their
module and op), written out by hand from torchvision's model code: torchvision is not installed here.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from archcalc import SpecError, analyze, load
from archcalc.core.spec import resolve

# (network, rows torchvision names so: modules by named_modules(), functional calls by module and op)
TORCHVISION_NAMES = {
    "resnet50": ["conv1", "bn1", "relu", "maxpool", "layer1.0.conv1", "layer1.0.bn1", "layer1.0.relu",
                 "layer1.0.conv2", "layer1.0.bn2", "layer1.0.relu", "layer1.0.conv3", "layer1.0.bn3",
                 "layer1.0.downsample.0", "layer1.0.downsample.1", "layer1.0.add", "layer1.0.relu", "layer1.1.conv1"],
    "googlenet": ["inception3a.branch1.conv", "inception3a.branch1.bn", "inception3a.branch1.relu",
                  "inception3a.branch2.0.conv", "inception3a.branch2.0.bn", "inception3a.branch2.0.relu",
                  "inception3a.branch2.1.conv"],
    "inception_v3": ["Mixed_5b.branch1x1.conv", "Mixed_5b.branch1x1.bn", "Mixed_5b.branch1x1.relu",
                     "Mixed_5b.branch5x5_1.conv"],
    "densenet121": ["features.denseblock1.denselayer1.norm1", "features.denseblock1.denselayer1.relu1",
                    "features.denseblock1.denselayer1.conv1", "features.denseblock1.denselayer1.norm2",
                    "features.denseblock1.denselayer1.relu2", "features.denseblock1.denselayer1.conv2"],
    "mobilenet_v2": ["features.2.conv.0.0", "features.2.conv.0.1", "features.2.conv.0.2", "features.2.conv.1.0",
                     "features.2.conv.1.1", "features.2.conv.1.2", "features.2.conv.2", "features.2.conv.3",
                     "features.3.conv.0.0"],
    "mobilenet_v3_small": ["features.1.block.0.0", "features.1.block.0.1", "features.1.block.0.2", "features.1.block.1.avgpool", "features.1.block.1.fc1",
                           "features.1.block.1.activation", "features.1.block.1.fc2", "features.1.block.1.scale_activation",
                           "features.1.block.1.mul", "features.1.block.2.0"],
    "vit_b_16": ["conv_proj", "reshape", "permute", "cat", "encoder.add", "encoder.dropout",
                 "encoder.layers.encoder_layer_0.ln_1", "encoder.layers.encoder_layer_0.self_attention",
                 "encoder.layers.encoder_layer_0.dropout", "encoder.layers.encoder_layer_0.add",
                 "encoder.layers.encoder_layer_0.ln_2", "encoder.layers.encoder_layer_0.mlp.0",
                 "encoder.layers.encoder_layer_0.mlp.1", "encoder.layers.encoder_layer_0.mlp.2",
                 "encoder.layers.encoder_layer_0.mlp.3", "encoder.layers.encoder_layer_0.mlp.4",
                 "encoder.layers.encoder_layer_0.add"],
    "squeezenet1_0": ["features.3.squeeze", "features.3.squeeze_activation", "features.3.expand1x1",
                      "features.3.expand1x1_activation", "features.3.expand3x3", "features.3.expand3x3_activation",
                      "features.3.cat"],
}


def paths(name: str) -> list[str]:
    return [row.path for row in analyze(load(name)).leaves()[1:]]


@pytest.mark.parametrize("name", list(TORCHVISION_NAMES))
def test_zoo_rows_follow_torchvision_module_names(name):
    found = paths(name)
    expected = TORCHVISION_NAMES[name]
    start = found.index(expected[0])
    assert found[start:start + len(expected)] == expected
    # no row has a part of its own for a branch or a merge group
    assert not [p for p in found if ".residual" in p or ".branches" in p or ".0.add." in p]


def test_a_merge_is_named_by_its_op_and_its_branches_sit_beside_it():
    rows = paths("maxvit_t")
    block = "blocks.0.layers.0.layers"
    mbconv = [p for p in rows if p.startswith(f"{block}.MBconv.") and ".conv_" not in p]
    assert mbconv == [f"{block}.MBconv.{n}" for n in (
        "layers.pre_norm", "layers.squeeze_excitation.avgpool", "layers.squeeze_excitation.fc1",
        "layers.squeeze_excitation.activation", "layers.squeeze_excitation.fc2",
        "layers.squeeze_excitation.scale_activation", "layers.squeeze_excitation.mul", "stochastic_depth",
        "proj.0", "proj.1", "add")]
    # MaxViT's PartitionAttentionLayer adds twice and calls its one stochastic depth module twice: one name each
    window = [p for p in rows if p.startswith(f"{block}.window_attention.")]
    assert window == [f"{block}.window_attention.{n}" for n in (
        "attn_layer.0", "attn_layer.1", "stochastic_dropout", "add",
        "mlp_layer.0", "mlp_layer.1", "mlp_layer.2", "mlp_layer.3", "stochastic_dropout", "add")]


def test_a_module_called_again_has_one_name_and_counts_its_parameters_once():
    # torchvision's Bottleneck calls its one ReLU three times; a conv called twice is written with `shares`
    spec = {"input": [4, 8, 8], "layers": [{"name": "block", "layers": [
        {"name": "conv", "type": "conv2d", "out": 4, "kernel": 3, "padding": 1},
        {"name": "relu", "type": "relu"},
        {"name": "conv", "type": "conv2d", "out": 4, "kernel": 3, "padding": 1, "shares": "block.conv"},
        {"name": "relu", "type": "relu"}]}]}
    analysis = analyze(resolve(spec, "t", "t.json"))
    assert [r.path for r in analysis.leaves()] == ["input", "block.conv", "block.relu", "block.conv", "block.relu"]
    assert [r.params for r in analysis.leaves()] == [0, 4 * 4 * 9 + 4, 0, 0, 0]  # counted once, at the first call
    assert [r.macs for r in analysis.leaves()][1:4:2] == [4 * 64 * 36, 4 * 64 * 36]  # each call computes


def test_a_layer_with_weights_named_again_without_shares_is_refused():
    spec = {"input": [4, 8, 8], "layers": [{"name": "conv", "type": "conv2d", "out": 4, "kernel": 1},
                                           {"name": "conv", "type": "conv2d", "out": 4, "kernel": 1}]}
    with pytest.raises(SpecError, match=r"\$.layers\[1\].name: 'conv' names two nodes of one group"):
        resolve(spec, "t", "t.json")


def test_two_branches_naming_one_path_are_refused():
    with pytest.raises(SpecError) as caught:
        load(str(Path(__file__).parent / "bad_specs" / "branch_name_clash.json"))
    assert "$.layers[0].branches[1][0].name: 'conv' names two nodes at the path 'conv'" in str(caught.value)


# ---- torch: the built model's names, and an import of plain torch code ----------------------------------

@pytest.mark.parametrize("name", ["resnet18", "googlenet", "densenet121", "mobilenet_v3_small", "maxvit_t"])
def test_the_built_model_names_its_modules_as_the_rows(name):
    torch = pytest.importorskip("torch")
    from archcalc.torch.build import build_torch

    analysis = analyze(load(name))
    with torch.device("meta"):
        model = build_torch(analysis)
    modules = dict(model.named_modules())
    rows = {row.path for row in analysis.leaves()[1:]}
    assert rows <= set(modules)  # every row is a module of that name (a merge: its combining module)
    # and every module is a row or inside one (a layer's own parts: window attention's qkv and proj)
    assert not [n for n, m in modules.items() if n and not list(m.children())
                and not any(n == r or n.startswith(r + ".") for r in rows)]


def test_a_plain_torch_resnet_imports_with_torch_names():
    torch = pytest.importorskip("torch")
    pytest.importorskip("fvcore")
    from archcalc.importers.torch_fx import import_torch

    sys.path.insert(0, str(Path(__file__).parent))
    import handwritten_models

    torch.manual_seed(0)
    model = handwritten_models.TinyResNet().eval()
    document = import_torch(model, (3, 32, 32), "tiny_resnet", "handwritten_models:TinyResNet")
    found = [row.path for row in analyze(resolve(document, "tiny_resnet", "t.json")).leaves()]
    block0 = ["layer1.0.conv1", "layer1.0.bn1", "layer1.0.relu", "layer1.0.conv2", "layer1.0.bn2", "layer1.0.add",
              "layer1.0.relu"]
    block1 = ["layer1.1.conv1", "layer1.1.bn1", "layer1.1.relu", "layer1.1.conv2", "layer1.1.bn2",
              "layer1.1.downsample.0", "layer1.1.downsample.1", "layer1.1.add", "layer1.1.relu"]
    # the stem and the head are functional calls on the model's own parameters: named by their op
    assert found == ["input", "conv2d", "relu", "max_pool2d", *block0, *block1, "adaptive_avg_pool2d", "flatten",
                     "linear"]
    assert {n for n, m in model.named_modules() if n and not list(m.children())} <= set(found)
