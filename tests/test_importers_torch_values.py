"""The import's trace without real data (archcalc.importers.torch_values): meta and fake tensors, the concrete
trace of code that torch.fx's symbolic tracing cannot follow."""
from __future__ import annotations

import time

import pytest

torch = pytest.importorskip("torch")

import handwritten_models  # noqa: E402  (tests/ is on the path under pytest)

from archcalc.core.calc import analyze  # noqa: E402
from archcalc.core.spec import resolve  # noqa: E402
from archcalc.importers.torch_fx import import_torch  # noqa: E402


def imported(model, shape, name="m"):
    document = import_torch(model.eval(), shape, name, "handwritten_models")
    return document, analyze(resolve(document, name, f"{name}.json"))


def test_the_import_never_runs_the_model_on_real_data():
    handwritten_models.SeesItsInput.seen.clear()
    _, analysis = imported(handwritten_models.SeesItsInput(), (3, 12, 12))
    assert handwritten_models.SeesItsInput.seen == ["meta"]
    # 16 x 144 outputs of 27 MACs, the head 16 x 10
    assert analysis.totals.macs == 16 * 144 * 27 + 160


def test_a_model_too_big_to_run_imports_in_a_second():
    # a real pass at 3x4096x4096 would keep 64 channels of 16.8 M positions (4.3 GB a tensor); meta tensors
    # hold no values at all
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(64, 64, 3, padding=1))
    start = time.perf_counter()
    _, analysis = imported(model, (3, 4096, 4096))
    assert time.perf_counter() - start < 5
    assert analysis.totals.macs == 4096 * 4096 * 64 * (27 + 576)


def test_control_flow_on_shapes_and_flags_is_traced_at_the_given_input():
    from torch.utils.flop_counter import FlopCounterMode

    for shape, twice in [((3, 32, 32), True), ((3, 12, 12), False)]:
        model = handwritten_models.ControlFlow(twice).eval()
        with pytest.raises(torch.fx.proxy.TraceError):
            torch.fx.symbolic_trace(model)
        document, analysis = imported(model, shape)
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(torch.randn(1, *shape))
        side = 16 if shape[-1] > 16 else shape[-1]
        # conv1 3 -> 8 (27 MACs a value), conv2 8 -> 8 (72) when the flag is set, the head 8 -> 5
        assert analysis.totals.macs == side * side * 8 * (27 + (72 if twice else 0)) + 40
        assert analysis.totals.macs == counter.get_total_flops() // 2
        assert analysis.totals.params == sum(p.numel() for p in model.parameters()) - (0 if twice else 584)
        names = {row.path.split(".")[-1] for row in analysis.leaves()}  # how branches are named is not tested here
        assert {"conv1", "head"} <= names and ("pool" in names) == (shape[-1] > 16) and ("conv2" in names) == twice


def test_an_optional_argument_left_at_its_default_is_not_an_input():
    document, analysis = imported(handwritten_models.OptionalMask(), (3, 10, 10))
    assert [row.path for row in analysis.leaves()] == ["input", "conv", "norm", "relu"]
    assert analysis.output_shape == (6, 8, 8)
    # 6 x 64 outputs of 27 MACs
    assert analysis.totals.macs == 6 * 64 * 27


CONCRETE = {"tiny_resnet": (handwritten_models.TinyResNet, (3, 32, 32)),
            "tiny_convnext": (handwritten_models.TinyConvNeXt, (3, 32, 40)),
            "tiny_vit": (handwritten_models.TinyViT, (3, 8, 8)),
            "shuffle": (lambda: handwritten_models.ShuffleUnit(8), (8, 6, 6)),
            "mobile_se": (handwritten_models.MobileSE, (3, 48, 40))}


@pytest.mark.parametrize("name", list(CONCRETE))
def test_the_concrete_trace_gives_the_graph_symbolic_tracing_gives(name, monkeypatch):
    # models torch.fx traces: forced through the concrete trace, each must give the same spec
    from archcalc.importers import torch_fx

    build, shape = CONCRETE[name]
    model = build().eval()
    by_fx = import_torch(model, shape, name, "handwritten_models")
    real_tracer = torch_fx._leaf_tracer

    def failing(torch_module):
        tracer = real_tracer(torch_module)
        tracer.trace = lambda root: (_ for _ in ()).throw(RuntimeError("no symbolic trace"))
        return tracer

    monkeypatch.setattr(torch_fx, "_leaf_tracer", failing)
    assert import_torch(model, shape, name, "handwritten_models") == by_fx


def test_code_that_reads_values_runs_on_data_within_the_budget():
    # meta tensors refuse .item(), fake tensors too (the value is not known): the last resort is one real pass
    handwritten_models.SeesItsInput.seen.clear()
    _, analysis = imported(handwritten_models.ReadsValues(), (3, 6, 6))
    assert handwritten_models.SeesItsInput.seen[-1] == "Tensor"
    assert analysis.totals.macs == 4 * 16 * 27


def test_an_op_of_two_activations_is_measured_with_its_inputs_named():
    from torch.utils.flop_counter import FlopCounterMode

    import archcalc

    model = handwritten_models.TwoInputEinsum().eval()
    document, analysis = imported(model, (3, 6, 7), "pair")
    measured = [item for item in document["layers"] if item.get("type") == "measured"]
    assert [(m["op"], m["from"], m["at"], m["output"]) for m in measured] == [("einsum", ["q", "k"], [4, 6, 7], [4, 5])]
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.randn(1, 3, 6, 7))
    # q: 4 x 42 outputs of 3 MACs, k: 5 x 42 of 3; the scores 4 x 5 sums of 42 products; the head 20 x 3
    assert analysis.totals.macs == 4 * 42 * 3 + 5 * 42 * 3 + 4 * 5 * 42 + 60 == counter.get_total_flops() // 2
    assert analysis.totals.params == 16 + 20 + 63 == sum(p.numel() for p in model.parameters())
    assert analysis.output_shape == (3,)
    with pytest.raises(archcalc.SpecError, match=r"measured op einsum was measured on an input 4x6x7, not 4x8x8"):
        analyze(resolve(document, "pair", "pair.json"), (3, 8, 8))


def test_strict_refuses_an_op_of_two_activations():
    import archcalc

    with pytest.raises(archcalc.SpecError, match="2 tensor inputs; archcalc layers take one"):
        import_torch(handwritten_models.TwoInputEinsum().eval(), (3, 6, 7), "pair", "handwritten_models", strict=True)


def test_a_reshape_read_by_a_module_of_images_gives_an_image():
    document, analysis = imported(handwritten_models.TokensBackToImage(), (3, 4, 5), "back")
    reshape = next(item for item in document["layers"] if item.get("type") == "reshape")
    assert (reshape["shape"], reshape.get("layout")) == ([8, 4, 5], "image")
    # 8 x 20 outputs of 27 MACs; the batch norm's 16 parameters
    assert analysis.totals.macs == 8 * 20 * 27
    assert analysis.totals.params == 8 * 28 + 16


def test_a_constant_made_in_forward_runs_on_fake_tensors():
    handwritten_models.SeesItsInput.seen.clear()
    _, analysis = imported(handwritten_models.ConstantInForward(), (3, 6, 6))
    assert handwritten_models.SeesItsInput.seen == ["meta", "FakeTensor"]  # no real pass
    assert analysis.output_shape == (4, 4, 4)
    assert analysis.totals.macs == 4 * 16 * 27  # the convolution; FlopCounterMode counts nothing for the scale
