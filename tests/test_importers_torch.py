"""`archcalc import torch`: specs from torch modules, against the spec they were built from and against fvcore."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import zoo_sample
from jsonschema import Draft202012Validator

torch = pytest.importorskip("torch")
pytest.importorskip("fvcore")

import archcalc  # noqa: E402
from archcalc.core.calc import analyze  # noqa: E402
from archcalc.core.spec import load, resolve  # noqa: E402
from archcalc.importers.graph import to_spec  # noqa: E402
from archcalc.importers.torch_fx import trace_graph  # noqa: E402
from archcalc.torch.build import build_torch  # noqa: E402

ZOO = list(archcalc.zoo_index())
SAMPLE = zoo_sample()  # built and run in torch here; `archcalc verify --all` runs the whole zoo
SCHEMA = json.loads((Path(__file__).parent.parent / "specs" / "schema.json").read_text())
# imported specs checked against specs/schema.json: every kind of node, and quick to validate
VALIDATED = {"lenet5_keras", "lenet5_paper", "alexnet_paper", "resnet18", "googlenet", "efficientnet_b0", "convnext_tiny"}
ROW_FIELDS = ("output_shape", "params", "non_trainable", "macs", "fvcore_flops", "allocated", "rf")


def rows_differ(original, imported) -> list:
    """The rows of one path that differ, call by call (a module called again has a row per call)."""
    def by_path(analysis) -> dict:
        found: dict = {}
        for row in analysis.leaves():
            found.setdefault(row.path, []).append(row)
        return found

    ours, theirs = by_path(original), by_path(imported)
    problems: list = [path for path in ours if len(ours[path]) != len(theirs.get(path, []))]
    problems += [(row.path, f, getattr(row, f), getattr(other, f)) for path in ours if path in theirs
                 for row, other in zip(ours[path], theirs[path]) for f in ROW_FIELDS if getattr(row, f) != getattr(other, f)]
    problems += [path for path in theirs if path not in ours]
    return problems


@pytest.mark.parametrize("name", SAMPLE)
def test_zoo_round_trip_through_torch(name):
    # build_torch(spec) -> torch.fx -> spec: the same rows (paths, shapes, counts, receptive fields)
    # and the same totals, peak live activations included.
    network = load(name)
    shape = network.input
    with torch.device("meta"):  # the weights' values do not matter, only their shapes
        model = build_torch(analyze(network, shape))
    graph, _ = trace_graph(model.eval(), shape)  # on meta tensors: shapes without arithmetic
    document = to_spec(graph, name, name, "zoo")
    if name in VALIDATED:
        assert list(Draft202012Validator(SCHEMA).iter_errors(document)) == []
    original, imported = analyze(network, shape), analyze(resolve(document, name, f"{name}.json"))
    assert rows_differ(original, imported) == []
    assert imported.totals == original.totals


# ---- networks written by hand in plain PyTorch ----------------------------------------------

HANDWRITTEN = {
    "tiny_resnet": (lambda: handwritten_models.TinyResNet(), (3, 32, 32)),
    "mobile_se": (lambda: handwritten_models.MobileSE(), (3, 48, 40)),
    "unet": (lambda: handwritten_models.UNet(), (3, 32, 48)),
    "asymmetric": (lambda: handwritten_models.Asymmetric(), (3, 16, 16)),
    "tiny_convnext": (lambda: handwritten_models.TinyConvNeXt(), (3, 32, 40)),
    "drop_path": (lambda: handwritten_models.DropPathBlocks(), (4, 12, 10)),
    "token_mixer": (lambda: handwritten_models.TokenMixer(), (4, 6, 8)),
}
# modules that run on a channels-last tensor (between the permutes of a ConvNeXt block): their hooks
# see (H, W, C), the spec's rows (C, H, W)
CHANNELS_LAST = {"tiny_convnext": re.compile(r"stage\d(\.\d)?\.(norm|pwconv1|act|pwconv2)")}

import handwritten_models  # noqa: E402  (tests/ is on the path under pytest)


def hooked_run(model, shape):
    """Output shapes of every module call (by module name, in call order), parameters and fvcore's total."""
    fvnn = pytest.importorskip("fvcore.nn")
    calls: dict[str, list[tuple[int, ...]]] = {}
    handles = [m.register_forward_hook(lambda m, i, o, name=name: calls.setdefault(name, []).append(tuple(o.shape[1:])))
               for name, m in model.named_modules() if not list(m.children())]
    x = torch.randn(1, *shape)
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    flops = fvnn.FlopCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return calls, sum(p.numel() for p in model.parameters()), flops.total()


@pytest.mark.parametrize("name", list(HANDWRITTEN))
def test_handwritten_network_counts_equal_fvcore_and_hooks(name):
    from archcalc.importers.match import by_name
    from archcalc.importers.torch_fx import import_torch

    build, shape = HANDWRITTEN[name]
    torch.manual_seed(0)
    model = build().eval()
    calls, params, flops = hooked_run(model, shape)
    document = import_torch(model, shape, name, f"handwritten_models:{name}")
    analysis = analyze(resolve(document, name, f"{name}.json"))
    assert analysis.totals.params == params
    assert analysis.totals.fvcore_flops == flops
    rows = by_name(analysis, set(calls))
    # every module that ran is a row of the spec, none dropped; an explicit pad is the next conv's padding
    assert set(calls) - set(rows) == ({"pad"} if name == "asymmetric" else set())
    channels_last = CHANNELS_LAST.get(name, re.compile("$^"))
    for module, shapes in calls.items():
        if module not in rows:
            continue
        if channels_last.fullmatch(module):
            shapes = [(c, h, w) for h, w, c in shapes]
        assert [row.output_shape for row in rows[module]] == shapes, module
    expected = {"what": "params", "value": params, "source": f"imported from handwritten_models:{name} at "
                f"{shape[0]}x{shape[1]}x{shape[2]}"}
    assert expected in document["expect"]


def test_stochastic_depth_is_read_with_its_probability():
    from archcalc.importers.torch_fx import import_torch

    document = import_torch(handwritten_models.DropPathBlocks().eval(), (4, 12, 10), "drop_path", "handwritten_models")
    found = []

    def visit(items):
        for item in items:
            if item.get("type") == "stochastic_depth":
                found.append(item.get("p"))
            for branch in item.get("branches", []):
                visit(branch)
            visit(item.get("layers", []))

    visit(document["layers"])
    assert found == [0.1, 0.2]  # the module's p, then the function's argument


def spec_items(items):
    """Every node of a spec document's layers, depth first."""
    for item in items:
        yield item
        for branch in item.get("branches", []):
            yield from spec_items(branch)
        yield from spec_items(item.get("layers", []))


def test_chunk_pieces_shuffle_and_a_tuple_output():
    from archcalc.importers.torch_fx import import_torch

    model = handwritten_models.ShuffleUnit(8).eval()
    document = import_torch(model, (8, 6, 6), "shuffle", "handwritten_models")
    items = list(spec_items(document["layers"]))
    assert [(i["type"], i.get("start", 0), i["stop"]) for i in items if i.get("type") == "slice"] == [
        ("slice", 0, 4), ("slice", 4, 8)]  # x.chunk(2, dim=1) of 8 channels: [0, 4) and [4, 8)
    assert [i.get("groups", 2) for i in items if i.get("type") == "channel_shuffle"] == [2]
    assert "the first, the prediction" in document["comment"]
    analysis = analyze(resolve(document, "shuffle", "shuffle.json"))
    # 1x1 conv 4 -> 4 with bias (20) and a depthwise 3x3 with bias (4 * 10): 60
    assert analysis.totals.params == 20 + 40 == sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        assert analysis.output_shape == tuple(model(torch.randn(1, 8, 6, 6))[0].shape[1:])
    # the shuffle is torch's: the built spec moves channel 1 to 2, as the hand-written view/transpose/view does
    built = build_torch(resolve(document, "shuffle", "shuffle.json")).eval()
    x = torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        for mine, theirs in zip(built.parameters(), model.parameters(), strict=True):  # the same order
            mine.copy_(theirs)
        assert torch.allclose(built(x), model(x)[0], atol=1e-6)


def test_a_vision_transformer_written_in_plain_torch():
    from archcalc.importers.torch_fx import import_torch

    model = handwritten_models.TinyViT().eval()
    document = import_torch(model, (3, 8, 8), "vit", "handwritten_models")
    types = [i.get("type") for i in spec_items(document["layers"]) if "type" in i]
    assert {"class_token", "position_embedding", "multihead_attention", "select_token", "permute", "reshape"} <= set(types)
    analysis = analyze(resolve(document, "vit", "vit.json"))
    assert analysis.totals.params == sum(p.numel() for p in model.parameters())
    # patches: 4 tokens of 8 from 3x4x4 = 48 inputs each; attention on 5 tokens of 8: 4*L*D^2 + 2*L*L*D;
    # the head: 8 x 3
    assert analysis.totals.macs == 4 * 8 * 48 + (4 * 5 * 64 + 2 * 5 * 5 * 8) + 8 * 3
    assert analysis.output_shape == (3,)


def test_an_op_without_a_layer_type_is_measured_at_the_import_input():
    from torch.utils.flop_counter import FlopCounterMode

    from archcalc.importers.torch_fx import import_torch

    model = handwritten_models.ChannelMixEinsum().eval()
    document = import_torch(model, (3, 10, 9), "mix", "handwritten_models")
    measured = [i for i in spec_items(document["layers"]) if i.get("type") == "measured"]
    assert [(i["op"], i["at"], i["output"], i["params"]) for i in measured] == [("einsum", [4, 8, 7], [5, 8, 7], 20)]
    assert "measured at 3x10x9" in document["comment"]
    analysis = analyze(resolve(document, "mix", "mix.json"))
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.randn(1, 3, 10, 9))
    # conv: 4 x 8 x 7 outputs of 27 MACs; the mix: 5 x 8 x 7 outputs of 4 MACs each
    assert analysis.totals.macs == 4 * 56 * 27 + 5 * 56 * 4 == counter.get_total_flops() // 2
    assert analysis.totals.params == 4 * 28 + 20 == sum(p.numel() for p in model.parameters())
    with pytest.raises(archcalc.SpecError, match=r"measured op einsum was measured on an input 4x8x7, not 4x14x14"):
        analyze(resolve(document, "mix", "mix.json"), (3, 16, 16))


def test_strict_refuses_an_op_without_a_layer_type():
    from archcalc.importers.torch_fx import import_torch

    with pytest.raises(archcalc.SpecError, match="torch call einsum has no archcalc layer type"):
        import_torch(handwritten_models.ChannelMixEinsum().eval(), (3, 10, 9), "mix", "handwritten_models", strict=True)


def test_modules_that_do_not_run_are_named_with_their_parameters():
    from archcalc.importers.torch_fx import import_torch

    document = import_torch(handwritten_models.WithAuxHead().eval(), (3, 8, 8), "aux", "handwritten_models")
    # the auxiliary head: 144 x 10 weights and 10 biases
    assert "not run in this pass, so not in the spec: aux (1,450 parameters)" in document["comment"]


def test_a_graph_that_is_not_series_parallel_is_written_with_from():
    from archcalc.importers.torch_fx import import_torch

    model = handwritten_models.NotSeriesParallel().eval()
    document = import_torch(model, (3, 8, 8), "crossed", "handwritten_models")
    froms = {item["name"]: item.get("from") for item in document["layers"]}
    # b reads the input, c reads a, each add joins the two tensors it adds
    assert froms == {"a": None, "b": "input", "add": ["b", "a"], "c": "a", "add_1": ["c", "add"]}
    analysis = analyze(resolve(document, "crossed", "crossed.json"))
    _, params, flops = hooked_run(model, (3, 8, 8))
    # three 1x1 convolutions 3 -> 3 with bias: 3 * 12 parameters, 3 * 64 positions * 9 MACs
    assert analysis.totals.params == params == 36
    assert analysis.totals.fvcore_flops == flops == 3 * 64 * 9


def test_pieces_of_a_chunk_along_another_axis_are_measured():
    from archcalc.importers.torch_fx import import_torch

    document = import_torch(handwritten_models.SplitWidth().eval(), (2, 4, 6), "halves", "handwritten_models")
    pieces = [i for i in spec_items(document["layers"]) if i.get("type") == "measured"]
    assert [(i["op"], i["at"], i["output"]) for i in pieces] == [("chunk", [2, 4, 6], [2, 4, 3])] * 2
    assert analyze(resolve(document, "halves", "halves.json")).output_shape == (2, 4, 3)
