"""Specs whose nodes name what they take (`from`): graphs that are not series-parallel.

tests/fixtures/hrnet_exchange.json is an HRNet-style exchange of two resolutions (each branch feeds
both fused outputs), checked against the same network written here in plain torch: shapes,
parameters, fvcore's counts, the receptive field (the gradient of a unit of the output) and the peak
of live activations (torch's allocations). The liveness of a small graph is worked out by hand.
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pytest

from archcalc import SpecError, analyze, load
from archcalc.core.spec import resolve

HRNET = str(Path(__file__).parent / "fixtures" / "hrnet_exchange.json")
F = 4  # bytes per fp32 value


def net(layers: list[dict], input_shape=(1, 8, 8)):
    return resolve({"input": list(input_shape), "layers": layers}, "t", "t.json")


def conv(name: str, out: int, kernel: int = 1, **extra) -> dict:
    return {"name": name, "type": "conv2d", "out": out, "kernel": kernel, "padding": kernel // 2, "bias": False,
            **extra}


# ---- liveness by hand -------------------------------------------------------------------------

# input x: 1x8x8 (p = 64 positions); a: 4p, b: 2p, c: 2p; j joins a and c: 6p. `a` is read by b, its
# next reader, and again by j: it must outlive b and c.
DENSE = [conv("a", 4), conv("b", 2), conv("c", 2), {"name": "j", "type": "concat", "from": ["a", "c"]}]
P = 64


def test_a_tensor_outlives_its_next_reader_until_its_last():
    analysis = analyze(net(DENSE))
    # a runs: x + a = 5p. b runs: x, a (held for j), b = 7p. c runs: x, a, b (its input), c = 9p; then b
    # is dropped. j runs: x, a, c and the concatenation 6p = 13p.
    assert analysis.totals.peak_activations == 13 * P
    assert analysis.peak_activation_bytes == 13 * P * F
    # Were a dropped after b, its next reader, c would run beside x, b, c only (5p) and j could not run.
    assert analysis.scaled(dtype="fp16").peak_activation_bytes == 13 * P * 2


def test_the_graph_of_a_dense_layer_is_the_tree_of_one():
    # concat[[], [b, c]] after a: the same network written with branches.
    tree = analyze(net([conv("a", 4), {"name": "j", "type": "concat", "branches": [[], [conv("b", 2), conv("c", 2)]]}]))
    graph = analyze(net(DENSE))
    assert graph.totals == tree.totals
    assert graph.output_shape == tree.output_shape == (6, 8, 8)
    assert graph.rows[-1].rf == tree.rows[-1].rf


def test_a_tensor_nobody_reads_is_dropped_where_it_is_made():
    # a: 4p, then `side` (8p) that nothing reads, then b from a (2p). Side runs beside x and a: 13p; b beside
    # x and a: 7p. Side's output is gone by then: were it kept, b would see 15p.
    layers = [conv("a", 4), conv("side", 8), conv("b", 2, **{"from": "a"})]
    analysis = analyze(net(layers))
    assert analysis.totals.peak_activations == 13 * P
    assert analysis.output_shape == (2, 8, 8)


def test_rows_of_a_graph():
    rows = {row.path: row for row in analyze(net(DENSE)).rows}
    assert list(rows) == ["input", "a", "b", "c", "j"]
    assert rows["j"].kind == "merge" and rows["j"].leaf
    assert rows["j"].input_shape == (4, 8, 8)  # the first tensor it joins
    assert rows["j"].activations == 6 * P  # the concatenation is a new tensor
    assert rows["c"].input_shape == (2, 8, 8)


def test_input_names_the_sequences_input():
    # a: conv 3x3 on x; then `skip` a 1x1 conv on x itself; added: fields 3 and 1 meet in a 3.
    layers = [conv("a", 2, 3), conv("skip", 2, 1, **{"from": "input"}), {"name": "sum", "type": "add", "from": ["a", "skip"]}]
    analysis = analyze(net(layers))
    rows = {row.path: row for row in analysis.rows}
    assert rows["skip"].input_shape == (1, 8, 8)
    assert rows["skip"].rf.size == (1, 1)
    assert rows["sum"].rf.size == (3, 3)
    assert analysis.totals.params == 2 * 9 + 2 * 1


def test_templates_in_from_follow_the_repeat():
    # three stages halve the size; a head reads each stage's output: head{i} from stage{i}
    layers = [
        {"repeat": 3, "names": "stage{i}", "type": "conv2d", "out": 4, "kernel": 3, "stride": 2, "padding": 1},
        {"repeat": 3, "names": "head{i}", "from": "stage{i}", "type": "conv2d", "out": 1, "kernel": 1},
    ]
    rows = {row.path: row for row in analyze(net(layers, (1, 32, 32))).rows}
    assert [rows[f"head{i}"].output_shape for i in range(3)] == [(1, 16, 16), (1, 8, 8), (1, 4, 4)]
    assert [rows[f"head{i}"].rf.size for i in range(3)] == [(3, 3), (7, 7), (15, 15)]


def test_from_inside_a_branch_and_a_block_is_scoped_to_its_sequence():
    document = {
        "input": [2, 8, 8],
        "blocks": {"pair": {"layers": [conv("p", 2), conv("q", 2), {"name": "s", "type": "add", "from": ["input", "q"]}]}},
        "layers": [
            {"name": "one", "block": "pair"},
            {"name": "two", "block": "pair"},
            {"name": "m", "type": "add", "branches": [[conv("u", 2), {"name": "back", "type": "mul", "from": ["input", "u"]}], []]},
        ],
    }
    rows = {row.path: row for row in analyze(resolve(document, "t", "t.json")).rows}
    assert rows["two.s"].output_shape == (2, 8, 8) and rows["back"].kind == "merge"  # a branch adds no path part
    with pytest.raises(SpecError, match=r"\$\.layers\[1\]\.from: 'p' is not the name of an earlier node of this sequence"):
        net([{"name": "one", "layers": [conv("p", 1)]}, conv("x", 1, **{"from": "p"})])


@pytest.mark.parametrize("layers, message", [
    ([conv("a", 1), conv("b", 1, **{"from": "aa"})], r"\$\.layers\[1\]\.from: 'aa' is not the name of an earlier node "
                                                     r"of this sequence, nor 'input' \(did you mean 'a'\?\)"),
    ([conv("a", 1, **{"from": "b"}), conv("b", 1, **{"from": "input"})],
     r"\$\.layers\[0\]\.from: 'b' is a later node \(\$\.layers\[1\]\)"),
    ([conv("a", 1, **{"from": "b"}), conv("b", 1)], r"\$\.layers\[0\]\.from: 'b' makes a cycle: 'a' <- 'b' <- 'a'"),
    ([conv("a", 1, **{"from": "a"})], r"\$\.layers\[0\]\.from: 'a' is this node itself"),
    ([conv("a", 1), {"type": "add", "from": ["a", "input", "zz"]}], r"\$\.layers\[1\]\.from\[2\]: 'zz' is not"),
    ([conv("a", 1), {"type": "add", "from": "a"}], r"\$\.layers\[1\]: add needs 'branches', or a list"),
    ([conv("a", 1), {"type": "add", "from": ["a", "input"], "branches": [[], []]}],
     r"\$\.layers\[1\]\.from: a merge with branches takes one name"),
    ([conv("a", 1, **{"from": ["input"]})], r"\$\.layers\[0\]\.from: expected a non-empty string, got \[\"input\"\]"),
])
def test_what_from_may_not_name(layers, message):
    with pytest.raises(SpecError, match=message):
        net(layers)


@pytest.fixture(scope="module")
def exchange():
    return analyze(load(HRNET))


def test_the_figure_and_the_page_say_what_each_node_takes(exchange):
    from archcalc.report import diagram, html

    figure = diagram.render(exchange)
    assert "low: conv_bn ← stem" in figure and "concat ← down, fuse_low" in figure
    twins = analyze(net([conv("a", 2), conv("b", 2), {"name": "s", "type": "add", "from": ["a", "b"]},
                         {"name": "t", "type": "add", "from": ["b", "a"]}]))
    assert "add ← a, b" in diagram.render(twins) and "add ← b, a" in diagram.render(twins)  # not folded into one
    found = html.workings(exchange)
    assert found["fuse_low"][0] == "add of high_to_low, low: 16x16x16"
    # low's convolution receives the stem's field (3), not high's (5): 3 + 2 = 5
    assert html.input_fields(exchange.network.root, {r.path: r for r in exchange.rows})["low"].size == (3, 3)


# ---- the HRNet-style exchange against plain torch ------------------------------------------------------

def plain_exchange(torch):
    """tests/fixtures/hrnet_exchange.json in plain torch: the module names are the spec's paths."""
    nn = torch.nn

    def conv_bn(cin, cout, kernel=3, stride=1, relu=True):
        parts = [("conv", nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)), ("bn", nn.BatchNorm2d(cout))]
        return nn.Sequential(OrderedDict(parts + ([("relu", nn.ReLU())] if relu else [])))

    class Exchange(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = conv_bn(3, 8)
            self.high = conv_bn(8, 8)
            self.low = conv_bn(8, 16, stride=2)
            self.high_to_low = conv_bn(8, 16, stride=2, relu=False)  # high -> low: a strided conv
            self.low_to_high = nn.Sequential(OrderedDict(  # low -> high: a 1x1 conv and an upsampling
                conv=nn.Conv2d(16, 8, 1, bias=False), bn=nn.BatchNorm2d(8), up=nn.Upsample(scale_factor=2)))
            self.down = conv_bn(8, 16, stride=2, relu=False)
            self.relu = nn.ReLU()
            self.joined: dict[str, tuple] = {}  # the shapes of the sums and the concatenation

        def forward(self, x):
            stem = self.stem(x)
            high = self.high(stem)
            low = self.low(stem)
            del stem  # each tensor is dropped after its last reader
            high_to_low = self.high_to_low(high)
            low_to_high = self.low_to_high(low)
            fuse_high = high + low_to_high
            del high, low_to_high
            fuse_low = high_to_low + low
            del high_to_low, low
            down = self.down(fuse_high)
            del fuse_high
            head = torch.cat([down, fuse_low], 1)
            del down, fuse_low
            self.joined["head"] = tuple(head.shape[1:])
            return self.relu(head)

    return Exchange()


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def test_exchange_shapes_and_params_are_the_plain_modules(torch, exchange):
    model = plain_exchange(torch).eval()
    modules = dict(model.named_modules())
    seen: dict[str, tuple] = {}
    def hook(name):
        def record(module, inputs, output):
            seen[name] = tuple(output.shape[1:])
        return record

    for name, module in modules.items():
        module.register_forward_hook(hook(name))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
    rows = {row.path: row for row in exchange.rows}
    for path, module in modules.items():
        if path:
            assert rows[path].output_shape == seen[path], path
            assert rows[path].params == sum(p.numel() for p in module.parameters()), path
    assert rows["head"].output_shape == model.joined["head"] == (32, 16, 16)
    assert exchange.output_shape == tuple(out.shape[1:])
    assert exchange.totals.params == sum(p.numel() for p in model.parameters()) == 4_520
    assert exchange.totals.non_trainable == sum(b.numel() for n, b in model.named_buffers() if "running" in n)


def test_exchange_fvcore_counts_are_the_plain_modules(torch, exchange):
    fvcore = pytest.importorskip("fvcore.nn")
    model = plain_exchange(torch).eval()
    counter = fvcore.FlopCountAnalysis(model, torch.randn(1, 3, 32, 32))
    counter.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    by_module = counter.by_module()
    for row in exchange.leaves()[1:]:
        assert row.fvcore_flops == by_module.get(row.path, 0), row.path
    assert exchange.totals.fvcore_flops == counter.total()
    # its convolutions alone: torchvision's MACs
    convs = sum(v for k, v in by_module.items() if k.endswith(".conv"))
    assert exchange.totals.macs == convs == 1_728_512


def test_exchange_receptive_field_is_the_gradients_support(torch, exchange):
    # every weight 1, batch norm at its initial statistics (a positive scale): the gradient of an output
    # unit is non-zero exactly on the input pixels it depends on
    model = plain_exchange(torch).double().eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.weight.fill_(1.0)
    size = 64
    x = torch.ones(1, 3, size, size, dtype=torch.float64, requires_grad=True)
    out = model(x)
    widest = (0, 0)
    units = range(12, 20)  # along the diagonal: the fields of neighbouring units differ after the strides
    for t in units:
        (grad,) = torch.autograd.grad(out[0, :, t, t].sum(), x, retain_graph=t < units[-1])
        mask = grad[0].abs().sum(0) != 0
        rows, cols = mask.any(1).nonzero().flatten().tolist(), mask.any(0).nonzero().flatten().tolist()
        assert 0 < rows[0] and rows[-1] < size - 1 and 0 < cols[0] and cols[-1] < size - 1  # inside the input
        widest = max(widest, (rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1))
    assert widest == exchange.row("relu").rf.size == (8, 8)


def test_exchange_peak_memory_is_the_plain_modules(torch, exchange):
    from archcalc.torch.memory import module_peak_bytes

    model = plain_exchange(torch).eval()
    assert module_peak_bytes(model, torch.zeros(1, 3, 32, 32)) == exchange.peak_activation_bytes
    batched = analyze(load(HRNET), batch=2)
    assert module_peak_bytes(model, torch.zeros(2, 3, 32, 32)) == batched.peak_activation_bytes


def test_exchange_verifies(torch, exchange):
    pytest.importorskip("fvcore")
    from archcalc.torch.verify import verify_network

    report = verify_network(exchange)
    assert report.disagreeing == []
    assert report.rf is not None and report.rf.ok and report.rf.measured_ok and report.rf.path == "relu"
    assert report.peak_live is not None and report.peak_live[0] == report.peak_live[1]
    assert report.ok


def test_the_small_graphs_peak_is_what_torch_allocates(torch):
    from archcalc.torch.memory import peak_live_bytes

    for layers in (DENSE, [conv("a", 4), conv("side", 8), conv("b", 2, **{"from": "a"})]):
        analysis = analyze(net(layers))
        assert peak_live_bytes(analysis) == analysis.peak_activation_bytes == 13 * P * F


@pytest.mark.parametrize("merge, accepted", [
    ({"type": "add", "from": ["a", "b"]}, True),
    ({"type": "add", "from": "b", "branches": [[], []]}, True),
    ({"type": "add", "branches": [[], []]}, True),
    ({"type": "add", "from": ["a", "b"], "branches": [[], []]}, False),
    ({"type": "add", "from": "b"}, False),
    ({"type": "add", "from": ["a"]}, False),
    ({"type": "add"}, False),
])
def test_loader_and_schema_agree_on_what_a_merge_takes(merge, accepted):
    jsonschema = pytest.importorskip("jsonschema")
    from archcalc.core.schema import build_schema

    document = {"input": [2, 8, 8], "layers": [conv("a", 2), conv("b", 2), merge]}
    try:
        resolve(document, "t", "t.json")
        loaded = True
    except SpecError:
        loaded = False
    assert loaded == jsonschema.Draft202012Validator(build_schema()).is_valid(document) == accepted


def random_graph(seed: int) -> list[dict]:
    """A random graph of 3 to 9 nodes on 6x6 maps (every size kept): convolutions, activations, dropout
    (which returns its input), nested sequences and merges, joins of two or three earlier outputs, each
    node taking the previous output or, half the time, a random earlier one or the input."""
    import random

    rng = random.Random(seed)
    channels = {"input": 3}
    names: list[str] = []
    layers = []
    for k in range(rng.randint(3, 9)):
        name = f"n{k}"
        source = rng.choice(["input", *names]) if names and rng.random() < 0.5 else (names[-1] if names else "input")
        c = channels[source]
        kind = rng.choice(["conv", "conv", "relu", "dropout", "nested", "residual", "join"])
        if kind == "join" and len(names) >= 2:
            joined = rng.sample(["input", *names], rng.randint(2, 3))
            if rng.random() < 0.5 and len({channels[j] for j in joined}) == 1:
                node, out = {"type": "add", "from": joined}, channels[joined[0]]
            else:
                node, out = {"type": "concat", "from": joined}, sum(channels[j] for j in joined)
        elif kind in ("relu", "dropout"):
            node, out = {"type": kind}, c
        elif kind == "nested":
            width = rng.randint(1, 5)
            node, out = {"layers": [conv("a", width, 3), {"name": "r", "type": "relu"}]}, width
        elif kind == "residual":
            node, out = {"type": "add", "branches": [[conv(f"{name}_a", c, 3)], []]}, c  # a branch adds no path part
        else:
            width = rng.randint(1, 5)
            node, out = conv("c", width, rng.choice([1, 3])), width
        node = {**node, "name": name}
        if source != (names[-1] if names else "input") or rng.random() < 0.2:
            if "branches" in node or "from" not in node:
                node["from"] = source
        channels[name] = out
        names.append(name)
        layers.append(node)
    return layers


@pytest.mark.parametrize("seed", range(40))
def test_random_graphs_peak_is_what_torch_allocates(torch, seed):
    from archcalc.torch.memory import peak_live_bytes

    analysis = analyze(net(random_graph(seed), (3, 6, 6)))
    assert peak_live_bytes(analysis) == analysis.peak_activation_bytes
    fp16 = analysis.scaled(dtype="fp16", batch=2)
    assert peak_live_bytes(fp16) == fp16.peak_activation_bytes
