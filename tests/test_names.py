"""Row paths are torch's module names: a merge's branches add no part to a path, a merge's row is named by
the merge (a functional op: `layer1.0.add`), a module called again keeps its one name on every row.

The expected names are torchvision 0.28's `named_modules()` (and its functional calls, named after their
module and op), written out by hand from torchvision's model code: torchvision is not installed here.
"""
from __future__ import annotations

import json
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
    # torchvision's EfficientNet: features.0 the stem (Conv2dNormActivation), features.1 ... 7 the stages
    # (nn.Sequential of MBConv), an MBConv's `block` an nn.Sequential of its Conv2dNormActivations and the
    # SqueezeExcitation (expand absent at ratio 1), its `stochastic_depth`, `result += input`: `add`
    "efficientnet_b0": ["features.0.0", "features.0.1", "features.0.2", "features.1.0.block.0.0", "features.1.0.block.0.1",
                        "features.1.0.block.0.2", "features.1.0.block.1.avgpool", "features.1.0.block.1.fc1",
                        "features.1.0.block.1.activation", "features.1.0.block.1.fc2",
                        "features.1.0.block.1.scale_activation", "features.1.0.block.1.mul", "features.1.0.block.2.0",
                        "features.1.0.block.2.1", "features.2.0.block.0.0"],
    "efficientnet_b0 ": ["features.2.1.block.3.0", "features.2.1.block.3.1", "features.2.1.stochastic_depth",
                         "features.2.1.add", "features.3.0.block.0.0"],
    "efficientnet_b0  ": ["features.8.0", "features.8.1", "features.8.2", "avgpool", "flatten", "classifier.0",
                          "classifier.1"],
    # FusedMBConv: block.0 the fused 3x3 Conv2dNormActivation, block.1 the 1x1 projection when it expands
    "efficientnet_v2_s": ["features.1.0.block.0.0", "features.1.0.block.0.1", "features.1.0.block.0.2",
                          "features.1.0.stochastic_depth", "features.1.0.add", "features.1.1.block.0.0"],
    "efficientnet_v2_s ": ["features.2.0.block.0.0", "features.2.0.block.0.1", "features.2.0.block.0.2",
                           "features.2.0.block.1.0", "features.2.0.block.1.1", "features.2.1.block.0.0"],
    # ConvNeXt: features.0 the stem, stages at 1, 3, 5, 7 and their downsampling at 2, 4, 6; CNBlock's `block`
    # holds dwconv (0), permute (1), norm (2), Linear (3), GELU (4), Linear (5), permute (6); `layer_scale` is its
    # parameter
    "convnext_tiny": ["features.0.0", "features.0.1", "features.1.0.block.0", "features.1.0.block.2",
                      "features.1.0.block.3", "features.1.0.block.4", "features.1.0.block.5", "features.1.0.layer_scale",
                      "features.1.0.stochastic_depth", "features.1.0.add", "features.1.1.block.0"],
    "convnext_tiny ": ["features.1.2.add", "features.2.0", "features.2.1", "features.3.0.block.0"],
    "convnext_tiny  ": ["features.7.2.add", "avgpool", "classifier.0", "classifier.1", "classifier.2"],
    # Swin: features.0 the patch embedding (Conv2d, Permute, LayerNorm), stages at 1, 3, 5, 7 and PatchMerging at
    # 2, 4, 6; a block's MLP is Linear (0), GELU (1), Dropout (2), Linear (3), Dropout (4)
    "swin_t": ["features.0.0", "features.0.1", "features.0.2", "features.1.0.norm1", "features.1.0.attn",
               "features.1.0.stochastic_depth", "features.1.0.add", "features.1.0.norm2", "features.1.0.mlp.0",
               "features.1.0.mlp.1", "features.1.0.mlp.2", "features.1.0.mlp.3", "features.1.0.mlp.4",
               "features.1.0.stochastic_depth", "features.1.0.add",
               "features.1.1.norm1"],
    "swin_t ": ["features.1.1.mlp.3", "features.1.1.mlp.4", "features.1.1.stochastic_depth", "features.1.1.add", "features.2",
                "features.3.0.norm1"],
    "swin_t  ": ["features.7.1.mlp.3", "features.7.1.mlp.4", "features.7.1.stochastic_depth", "features.7.1.add", "norm", "permute",
                 "avgpool", "flatten", "head"],
    "swin_v2_t": ["features.1.0.attn", "features.1.0.norm1", "features.1.0.stochastic_depth", "features.1.0.add",
                  "features.1.0.mlp.0"],
    # AlexNet and VGG: make_layers' nn.Sequential numbered through, the classifier's Dropout/Linear/ReLU too
    "alexnet": ["features.0", "features.1", "features.2", "features.3", "features.4", "features.5", "features.6",
                "features.7", "features.8", "features.9", "features.10", "features.11", "features.12", "avgpool",
                "flatten", "classifier.0", "classifier.1", "classifier.2", "classifier.3", "classifier.4",
                "classifier.5", "classifier.6"],
    "vgg11_bn": ["features.0", "features.1", "features.2", "features.3", "features.4", "features.5", "features.6",
                 "features.7", "features.8", "features.9", "features.10", "features.11", "features.12", "features.13",
                 "features.14"],
    "vgg11_bn ": ["features.27", "features.28", "avgpool", "flatten", "classifier.0", "classifier.1", "classifier.2",
                  "classifier.3", "classifier.4", "classifier.5", "classifier.6"],
    # ShuffleNet v2: conv1 and conv5 Sequentials, maxpool, stages of InvertedResidual with branch1 and branch2
    "shufflenet_v2_x0_5": ["conv1.0", "conv1.1", "conv1.2", "maxpool", "stage2.0.branch1.0", "stage2.0.branch1.1",
                           "stage2.0.branch1.2", "stage2.0.branch1.3", "stage2.0.branch1.4", "stage2.0.branch2.0"],
    "shufflenet_v2_x0_5 ": ["conv5.0", "conv5.1", "conv5.2", "mean", "fc"],
    # RegNet: the stem a Conv2dNormActivation, trunk_output's AnyStage `block1` holding ResBottleneckBlock
    # `block1-0` (torchvision's f"block{stage_index}-{i}"), its `proj` and its BottleneckTransform `f`
    "regnet_y_400mf": ["stem.0", "stem.1", "stem.2", "trunk_output.block1.block1-0.proj.0",
                       "trunk_output.block1.block1-0.proj.1", "trunk_output.block1.block1-0.f.a.0",
                       "trunk_output.block1.block1-0.f.a.1", "trunk_output.block1.block1-0.f.a.2",
                       "trunk_output.block1.block1-0.f.b.0", "trunk_output.block1.block1-0.f.b.1",
                       "trunk_output.block1.block1-0.f.b.2", "trunk_output.block1.block1-0.f.se.avgpool",
                       "trunk_output.block1.block1-0.f.se.fc1", "trunk_output.block1.block1-0.f.se.activation",
                       "trunk_output.block1.block1-0.f.se.fc2", "trunk_output.block1.block1-0.f.se.scale_activation",
                       "trunk_output.block1.block1-0.f.se.mul", "trunk_output.block1.block1-0.f.c.0",
                       "trunk_output.block1.block1-0.f.c.1", "trunk_output.block1.block1-0.add",
                       "trunk_output.block1.block1-0.activation"],
    # MaxViT: two Conv2dNormActivation in the stem; blocks.i.layers.j.layers the MaxVitLayer's nn.Sequential
    "maxvit_t": ["stem.0.0", "stem.0.1", "stem.0.2", "stem.1.0", "blocks.0.layers.0.layers.MBconv.layers.pre_norm"],
    "squeezenet1_0": ["features.3.squeeze", "features.3.squeeze_activation", "features.3.expand1x1",
                      "features.3.expand1x1_activation", "features.3.expand3x3", "features.3.expand3x3_activation",
                      "features.3.cat"],
}


def paths(name: str) -> list[str]:
    return [row.path for row in analyze(load(name)).leaves()[1:]]


@pytest.mark.parametrize("name", list(TORCHVISION_NAMES))
def test_zoo_rows_follow_torchvision_module_names(name):
    found = paths(name.strip())  # a name with spaces: another stretch of the same network
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

@pytest.mark.parametrize("name", ["resnet18", "googlenet", "densenet121", "mobilenet_v3_small", "maxvit_t",
                                  "efficientnet_b0", "efficientnet_v2_s", "convnext_tiny", "swin_t", "swin_v2_t",
                                  "alexnet_paper", "vgg11_bn", "shufflenet_v2_x0_5", "regnet_y_400mf"])
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


def imported(class_name: str, image: tuple[int, int, int]):
    """A plain-torch model of tests/handwritten_models.py and the analysis of its import at `image`."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("fvcore")
    from archcalc.importers.torch_fx import import_torch

    sys.path.insert(0, str(Path(__file__).parent))
    import handwritten_models

    torch.manual_seed(0)
    model = getattr(handwritten_models, class_name)().eval()
    document = import_torch(model, image, "tiny", f"handwritten_models:{class_name}")
    return model, analyze(resolve(document, "tiny", "t.json"))


def test_a_plain_torch_resnet_imports_with_torch_names():
    model, analysis = imported("TinyResNet", (3, 32, 32))
    found = [row.path for row in analysis.leaves()]
    block0 = ["layer1.0.conv1", "layer1.0.bn1", "layer1.0.relu", "layer1.0.conv2", "layer1.0.bn2", "layer1.0.add",
              "layer1.0.relu"]
    block1 = ["layer1.1.conv1", "layer1.1.bn1", "layer1.1.relu", "layer1.1.conv2", "layer1.1.bn2",
              "layer1.1.downsample.0", "layer1.1.downsample.1", "layer1.1.add", "layer1.1.relu"]
    # the stem and the head are functional calls on the model's own parameters: named by their op
    assert found == ["input", "conv2d", "relu", "max_pool2d", *block0, *block1, "adaptive_avg_pool2d", "flatten",
                     "linear"]
    assert {n for n, m in model.named_modules() if n and not list(m.children())} <= set(found)


def test_a_plain_torch_densenet_imports_with_torch_names():
    """torchvision's DenseNet layout: each dense layer concatenates the list of every earlier output, so the graph is
    not series-parallel; its modules still keep their names, only a dense layer's concatenation of outer tensors
    sits beside its layer (`denselayer2_cat`)."""
    model, analysis = imported("TinyDenseNet", (3, 8, 8))
    found = [row.path for row in analysis.leaves()]
    layer = ["norm1", "relu1", "conv1", "norm2", "relu2", "conv2"]
    block = "features.denseblock1"
    assert found == ["input", "features.conv0", "features.norm0", "features.relu0",
                     f"{block}.denselayer1.cat",  # the first layer's cat of its one input, inside its module
                     *(f"{block}.denselayer1.{m}" for m in layer),
                     f"{block}.denselayer2_cat", *(f"{block}.denselayer2.{m}" for m in layer),
                     f"{block}.denselayer3_cat", *(f"{block}.denselayer3.{m}" for m in layer),
                     f"{block}.cat", "features.transition1.0", "features.transition1.1", "features.transition1.2",
                     "features.transition1.3", "relu", "adaptive_avg_pool2d", "flatten", "classifier"]
    assert {n for n, m in model.named_modules() if n and not list(m.children())} <= set(found)
    # the growing concatenations: 8 + 4 + 4 channels into the third layer, 8 + 3 * 4 out of the block
    assert analysis.row(f"{block}.denselayer3_cat").output_shape == (16, 8, 8)
    assert analysis.row(f"{block}.cat").output_shape == (20, 8, 8)
    assert analysis.totals.params == sum(p.numel() for p in model.parameters())


def test_a_name_may_hold_a_hyphen_as_torch_names_do(tmp_path):
    # RegNet's `block1-0`: named, taken by `from`, pinned by an expect, printed as it is
    spec = {"name": "hyphen", "input": [4, 8, 8], "layers": [
        {"name": "stem", "type": "conv2d", "out": 4, "kernel": 1},
        {"name": "block1-0", "type": "conv2d", "out": 4, "kernel": 3, "padding": 1},
        {"name": "add", "type": "add", "from": ["stem", "block1-0"]}],
        "expect": [{"what": "params", "layer": "block1-0", "value": 4 * 4 * 9 + 4, "source": "4*4*9 + 4"}]}
    analysis = analyze(resolve(spec, "hyphen", "hyphen.json"))
    assert [r.path for r in analysis.leaves()] == ["input", "stem", "block1-0", "add"]
    assert analysis.row("block1-0").params == 148
    from click.testing import CliRunner

    from archcalc.cli import main

    path = tmp_path / "hyphen.json"
    path.write_text(json.dumps(spec))
    checked = CliRunner().invoke(main, ["check", str(path)])
    assert checked.exit_code == 0 and "1 ok" in checked.output
    table = CliRunner().invoke(main, ["table", str(path), "--format", "markdown"])
    assert "| block1-0 | conv2d |" in table.output
    with pytest.raises(SpecError, match=r"'block\+1' may hold only letters, digits, underscores and hyphens"):
        resolve({"input": [4, 8, 8], "layers": [{"name": "block+1", "type": "relu"}]}, "t", "t.json")
