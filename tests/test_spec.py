"""The spec format, feature by feature, on the small specs in tests/fixtures/."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from archcalc import SpecError, analyze, load
from archcalc.core.spec import Group, zoo_index

FIXTURES = Path(__file__).parent / "fixtures"
FEATURES = str(FIXTURES / "features.json")


def paths(node) -> list[str]:
    """Every node's path, pre-order."""
    out = [node.path]
    if isinstance(node, Group):
        for child in node.children:
            out.extend(paths(child))
    return out


@pytest.fixture(scope="module")
def tiny_a():
    return load(f"{FEATURES}:tiny_a")


@pytest.fixture(scope="module")
def tiny_b():
    return load(f"{FEATURES}:tiny_b")


def test_family_and_variant(tiny_a, tiny_b):
    assert (tiny_a.name, tiny_a.family, tiny_a.title) == ("tiny_a", "tiny", "A small family exercising the spec format")
    assert tiny_b.title == "Deeper"
    assert tiny_a.input == (3, 15, 15)
    assert tiny_b.input == (1, 31, 31)  # a variant overrides the input


def test_block_with_default_and_given_args(tiny_a):
    stem = tiny_a.root.children[0]
    assert isinstance(stem, Group) and stem.label == "cbr" and stem.path == "stem"
    conv = stem.children[0]
    assert conv.path == "stem.conv"
    assert conv.attrs["out"] == 8  # widths[0]
    assert conv.attrs["stride"] == (2, 2)  # given, normalised to (h, w)
    assert conv.attrs["kernel"] == (3, 3)  # the block's default
    assert conv.attrs["padding"] == (1, 1)  # "kernel // 2"
    assert conv.attrs["bias"] is False


def test_spliced_repeat_with_names_and_merge_with_identity(tiny_a):
    top = [child.path for child in tiny_a.root.children]
    assert top == ["stem", "res1", "res2", "stages", "pool", "5", "fc"]
    res1 = tiny_a.root.children[1]
    assert res1.label == "res"
    merge = res1.children[0]
    assert (merge.path, merge.kind) == ("res1.sum", "add")
    assert [b.label for b in merge.children] == ["branch", "branch"]  # no path part: their nodes sit beside the merge
    assert merge.children[0].children[0].path == "res1.0"  # the block in the first branch, first of the scope
    assert merge.children[1].children == ()  # the identity branch
    assert merge.children[0].children[0].children[0].attrs["out"] == 8  # the required arg c


def test_a_spliced_sequence_joins_the_enclosing_one_numbered_on():
    # torchvision's make_layers: per stage, each width's conv (+ bn) and relu, then a pool, in one nn.Sequential
    spec = {"input": [3, 8, 8], "params": {"stages": [[4], [8, 8]]}, "layers": [{"name": "features", "layers": [
        {"repeat": "stages", "as": "widths", "index": "s", "splice": True, "layers": [
            {"repeat": "widths", "as": "w", "splice": True, "layers": [
                {"type": "conv2d", "out": "w", "kernel": 3, "padding": 1},
                {"type": "batch_norm2d", "when": "s > 0"}, {"type": "relu"}]},
            {"type": "max_pool2d", "kernel": 2}]}]}]}
    features = load(spec).root.children[0]
    assert [(c.path, c.type) for c in features.children] == [
        ("features.0", "conv2d"), ("features.1", "relu"), ("features.2", "max_pool2d"),
        ("features.3", "conv2d"), ("features.4", "batch_norm2d"), ("features.5", "relu"),
        ("features.6", "conv2d"), ("features.7", "batch_norm2d"), ("features.8", "relu"), ("features.9", "max_pool2d")]
    unspliced = {**spec, "layers": [{"name": "features", "layers": [{**spec["layers"][0]["layers"][0], "splice": False}]}]}
    assert [c.path for c in load(unspliced).root.children[0].children] == ["features.0", "features.1"]  # a group each


def test_named_repeat_over_a_list_with_as_and_index(tiny_a, tiny_b):
    stages = tiny_a.root.children[3]
    assert isinstance(stages, Group) and stages.label == "repeat"
    assert [c.path for c in stages.children] == ["stages.stage0", "stages.stage1"]
    assert [c.attrs["out"] for c in stages.children] == [8, 16]
    assert [c.attrs["out"] for c in tiny_b.root.children[3].children] == [4, 8, 12]


def test_when_and_positional_names(tiny_a, tiny_b):
    assert "extra" not in paths(tiny_a.root)
    extra = tiny_b.root.children[4]
    assert extra.path == "extra"
    assert extra.attrs["out"] == 24  # param "last" = widths[-1] * 2, evaluated after widths
    # positional names count the nodes that exist: the flatten moves from 5 to 6
    assert [c.path for c in tiny_b.root.children][-2] == "6"


def test_totals_by_hand(tiny_a):
    t = analyze(tiny_a).totals
    # stem conv 8*3*9 + bn 16; two residual convs 8*8*9 + bn 16 each; 1x1 convs 8*8+8, 16*8+16; fc 16*10+10
    assert t.params == 216 + 16 + 2 * (576 + 16) + 72 + 144 + 170 == 1802
    assert t.non_trainable == 3 * 16
    # stem 8*8*8*27; residual convs 8*8*8*72 each; 1x1 convs 8*8*8*8 and 16*8*8*8; fc 160
    assert t.macs == 13_824 + 2 * 36_864 + 4_096 + 8_192 + 160 == 100_000


def test_variant_params_change_the_network(tiny_b):
    a = analyze(tiny_b)
    assert a.row("stem.conv").output_shape == (4, 16, 16)  # (31 + 2 - 3)/2 + 1
    assert a.row("extra").params == 12 * 24 + 24
    assert a.output_shape == (10,)


def test_splice_versus_named_group():
    net = load(str(FIXTURES / "splice.json"))
    top = net.root.children
    # two spliced repeats put four convs at the top level, then two named groups, then one relu
    assert [c.path for c in top] == ["0", "1", "2", "3", "group", "named", "6"]
    assert [c.attrs["out"] for c in top[2:4]] == [3, 5]  # repeat over a list, "as": "k"
    assert [c.path for c in top[4].children] == ["group.0", "group.1"]
    assert [c.path for c in top[5].children] == ["named.act0", "named.act1"]


def test_repeat_without_as_binds_i(tmp_path):
    spec = tmp_path / "net.json"
    spec.write_text(json.dumps({"input": [1, 4, 4], "layers": [
        {"repeat": 3, "names": "c{i}", "type": "conv2d", "out": "i + 1", "kernel": 1}]}))
    net = load(str(spec))
    assert [(c.path, c.attrs["out"]) for c in net.root.children] == [("c0", 1), ("c1", 2), ("c2", 3)]


def test_merge_branch_may_be_a_single_node(tmp_path):
    spec = tmp_path / "net.json"
    spec.write_text(json.dumps({"input": [2, 4, 4], "layers": [
        {"name": "m", "type": "concat", "branches": [{"type": "conv2d", "out": 3, "kernel": 1}, []]}]}))
    assert analyze(load(str(spec))).row("m").output_shape == (5, 4, 4)


def test_mul_broadcasts(tmp_path):
    spec = tmp_path / "net.json"
    spec.write_text(json.dumps({"input": [8, 4, 4], "layers": [{"name": "se", "type": "mul", "branches": [
        [], [{"type": "adaptive_avg_pool2d"}, {"type": "conv2d", "out": 8, "kernel": 1}, {"type": "sigmoid"}]]}]}))
    assert analyze(load(str(spec))).row("se").output_shape == (8, 4, 4)


def test_unknown_variant_param():
    with pytest.raises(SpecError, match=r"\$\.variants\.small\.params: 'widht' is not a family parameter \(did you mean 'width'\?\)"):
        load(str(Path(__file__).parent / "bad_specs" / "unknown_variant_param.json"))


def test_required_block_arg():
    with pytest.raises(SpecError, match="block 'conv' needs argument 'out'"):
        load(str(Path(__file__).parent / "bad_specs" / "missing_block_arg.json"))


def test_input_override_through_load():
    net = load(f"{FEATURES}:tiny_a")
    assert analyze(net, (3, 31, 31)).row("stem.conv").output_shape == (8, 16, 16)


def test_padding_keywords_are_not_expressions(tmp_path):
    spec = tmp_path / "net.json"
    spec.write_text(json.dumps({"input": [1, 9, 9], "params": {"tf": True}, "layers": [
        {"name": "a", "type": "conv2d", "out": 1, "kernel": 3, "padding": "same"},
        {"name": "b", "type": "conv2d", "out": 1, "kernel": 3, "padding": "'same' if tf else 0"},
        {"name": "c", "type": "conv2d", "out": 1, "kernel": 3, "padding": "valid"}]}))
    a = analyze(load(str(spec)))
    assert [a.row(p).output_shape for p in "abc"] == [(1, 9, 9), (1, 9, 9), (1, 7, 7)]


def test_expect_and_meta_of_a_variant():
    net = load("vgg16")
    assert net.meta["year"] == 2014
    assert {"params", "macs"} <= {e.what for e in net.expect}
    assert all(e.source for e in net.expect)


def test_zoo_index_names_every_variant():
    index = zoo_index()
    assert index["vgg16"].name == "vgg.json"
    assert "schema" not in index


# ---- the input shape: completed by the spec's own rank --------------------------------

def test_with_input_completes_by_rank():
    image, flat = load("vgg16"), load(str(FIXTURES / "mlp.json"))
    assert image.with_input((64, 64)) == (3, 64, 64)  # HxW takes the spec's channels
    assert image.with_input((100,)) == (3, 100, 100)  # N is NxN
    assert image.with_input((1, 32, 32)) == (1, 32, 32)
    assert image.with_input(None) == (3, 224, 224)
    assert flat.with_input((100,)) == (100,)  # a flat spec takes N features
    with pytest.raises(SpecError, match=r"input 10x10 does not fit the spec's input 784: give N \(features\)"):
        flat.with_input((10, 10))
    with pytest.raises(SpecError, match="positive integers"):
        image.with_input((0, 5))


def test_flat_spec_at_another_width():
    # 100 -> 100 -> 10: (100*100 + 100) + (100*10 + 10) parameters, by hand
    analysis = analyze(load(str(FIXTURES / "mlp.json")), (100,))
    assert analysis.input_shape == (100,)
    assert analysis.totals.params == 100 * 100 + 100 + 100 * 10 + 10


# ---- a block expanded once and used again -------------------------------------------------

def _stage(uses: int, out: str = "c") -> dict:
    """`uses` uses of one block of a conv and a relu; the block reads `c` (the outer loop's value) if asked."""
    return {"input": [3, 8, 8], "params": {"c": 4},
            "blocks": {"unit": {"args": {"w": None},
                                "layers": [{"name": "conv", "type": "conv2d", "out": "w", "kernel": 1}, {"type": "relu"}]}},
            "layers": [{"name": "s", "repeat": [1, 2, 3][:uses] if uses <= 3 else uses, "as": "i",
                        "layers": [{"name": "u{i}", "block": "unit", "args": {"w": out}}]}]}


def test_a_block_used_again_sits_at_its_own_path():
    network = load(_stage(3))
    paths = [row.path for row in analyze(network).rows if row.kind == "layer"]
    assert paths == ["s.0.u1.conv", "s.0.u1.1", "s.1.u2.conv", "s.1.u2.1", "s.2.u3.conv", "s.2.u3.1"]


def test_a_block_reading_a_changing_value_is_expanded_for_each():
    rows = analyze(load(_stage(3, out="c * i"))).rows
    assert [r.output_shape[0] for r in rows if r.label == "conv2d"] == [4, 8, 12]


def test_a_block_used_again_counts_against_the_node_budget():
    from archcalc import Budget

    # each use: the repeat's item (a sequence), the block's group, the conv and the relu: 4 nodes;
    # and the repeat's own group
    load(_stage(12), budget=Budget(nodes=4 * 12 + 1))
    with pytest.raises(SpecError, match="grows past"):
        load(_stage(13), budget=Budget(nodes=4 * 12 + 1))


def test_a_block_used_again_deeper_meets_the_depth_budget():
    from archcalc import Budget

    unit = {"args": {}, "layers": [{"name": "conv", "type": "conv2d", "out": 4, "kernel": 1}]}
    deep = {"input": [3, 8, 8], "blocks": {"unit": unit},
            "layers": [{"name": "a", "block": "unit"},  # a (1), a.conv (2)
                       {"name": "b", "layers": [{"name": "c", "layers": [{"name": "d", "block": "unit"}]}]}]}  # b.c.d.conv: 4
    load(deep, budget=Budget(depth=4))
    with pytest.raises(SpecError, match="nest deeper than"):
        load(deep, budget=Budget(depth=3))


def test_a_nested_blocks_default_reads_the_value_at_each_use():
    # A uses B, whose default `out` reads the loop's x: the convs have 2 * 1 and 2 * 2 channels
    doc = {"input": [3, 8, 8],
           "blocks": {"B": {"args": {"out": "x * 2"}, "layers": [{"type": "conv2d", "out": "out", "kernel": 1}]},
                      "A": {"layers": [{"block": "B"}]}},
           "layers": [{"repeat": [1, 2], "as": "x", "block": "A"}]}
    rows = analyze(load(doc)).rows
    assert [(r.path, r.output_shape[0]) for r in rows if r.label == "conv2d"] == [("0.0.0", 2), ("1.0.0", 4)]


def test_a_sequence_repeated_is_made_once_and_sits_at_each_path():
    # a repeat of a sequence (DenseNet's dense layers): a conv of 4 channels and its comment, three times
    doc = {"input": [3, 8, 8], "params": {"w": 4},
           "layers": [{"name": "s", "repeat": 3, "names": "layer{i + 1}",
                       "layers": [{"name": "conv", "type": "conv2d", "out": "w", "kernel": 1, "comment": "a note"}]}]}
    network = load(doc)
    first, *others = network.root.children[0].children
    assert all(other.origin is first.origin is not None for other in others)
    rows = analyze(network).rows
    assert [r.path for r in rows if r.kind == "layer"] == ["s.layer1.conv", "s.layer2.conv", "s.layer3.conv"]
    assert analyze(network).totals.params == (3 * 4 + 4) + 2 * (4 * 4 + 4)  # 3 channels in, then 4 (one origin)


def test_a_block_with_comments_is_expanded_once():
    block = {"comment": "a unit", "layers": [{"name": "conv", "type": "conv2d", "out": 4, "kernel": 1,
                                              "comment": "the text of a comment is no expression: (it does not parse"}]}
    network = load({"input": [3, 8, 8], "blocks": {"unit": block},
                    "layers": [{"name": "a", "block": "unit"}, {"name": "b", "block": "unit"}]})
    a, b = network.root.children
    assert a.origin is b.origin is not None
    assert [child.path for child in b.children] == ["b.conv"]


def test_every_zoo_network_resolves_as_it_does_with_nothing_made_once(monkeypatch):
    # what the resolver makes once and moves (blocks, sequences, layers' fields by the values they read) against
    # a resolution that makes every node anew
    from archcalc.core import spec
    from archcalc.core.spec import read_json, resolve, zoo_file

    made_once = {name: load(name) for name in zoo_index()}
    monkeypatch.setattr(spec, "_keyed", lambda what, values: None)
    monkeypatch.setattr(spec._Context, "layer_key", lambda self, raw, env: None)
    for name, network in made_once.items():
        path = zoo_file(name)
        anew = resolve(read_json(path), name, str(path))
        assert _layers(network.root) == _layers(anew.root), name
        assert paths(network.root) == paths(anew.root), name


# ---- the variants of a zoo file share what they expand -------------------------------------

def _layers(node) -> list[tuple]:
    """Every layer as (path, type, fields, JSON path), pre-order."""
    if isinstance(node, Group):
        return [layer for child in node.children for layer in _layers(child)]
    return [(node.path, node.type, dict(node.attrs), node.where)]


def test_variants_resolved_one_after_another_equal_each_resolved_alone():
    from archcalc.core.spec import read_json, resolve, zoo_file

    names = ["resnet50", "resnet50_v1", "resnet101", "resnet18", "plain34", "efficientnet_b0", "efficientnet_b3"]
    for name in names:
        shared = load(name)  # after the others: the file's expansions are used again
        path = zoo_file(name)
        alone = resolve(read_json(path), name, str(path))  # a fresh expansion of its own
        assert _layers(shared.root) == _layers(alone.root), name
        assert paths(shared.root) == paths(alone.root), name


def test_a_variant_after_another_still_meets_the_node_budget():
    from archcalc import Budget

    def nodes(node) -> int:
        return 1 + sum(nodes(c) for c in node.children) if isinstance(node, Group) else 1

    small, large = nodes(load("resnet18").root) - 1, nodes(load("resnet34").root) - 1  # the root is no node made
    budget = Budget(nodes=small)
    load("resnet18", budget=budget)  # fills the file's expansions under this budget
    with pytest.raises(SpecError, match="grows past"):
        load("resnet34", budget=budget)
    assert large > small
