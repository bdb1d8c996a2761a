"""Shared test helpers."""
from __future__ import annotations

import pytest
from click.testing import CliRunner


@pytest.fixture(autouse=True)
def _rules_as_they_are_now():
    """Each test analyses with the layer rules as it finds them: some replace one (monkeypatch), and the
    calculator keeps a layer's sums from one analysis to the next."""
    from archcalc.core.calc import forget_layer_sums

    forget_layer_sums()
    yield
    forget_layer_sums()


def cli_runner() -> CliRunner:
    """A runner that keeps stdout and stderr apart, on every click version."""
    try:
        return CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        return CliRunner()  # click >= 8.2 keeps them apart


# The zoo networks the suite builds and runs in torch (verify, the receptive-field probe, the torch.fx round
# trip): every lecture network, and for each family, layer type, merge and layout of the zoo, the cheapest
# network (fewest MACs) of it or using it. `archcalc verify --all` runs the whole zoo.
LECTURE_FAMILIES = {"lenet", "alexnet", "vgg", "inception", "googlenet"}


def zoo_sample() -> list[str]:
    from archcalc.core.calc import analyze
    from archcalc.core.spec import Group, load, zoo_index
    from archcalc.layers.layout import layout_of

    def kinds(node, out: set) -> set:
        if isinstance(node, Group):
            out.add(f"merge:{node.kind}")
            for child in node.children:
                kinds(child, out)
        else:
            out.add(f"layer:{node.type}")
        return out

    cost, used, chosen = {}, {}, []
    for name in zoo_index():
        network = load(name)
        analysis = analyze(network)
        cost[name] = analysis.totals.macs
        used[name] = kinds(network.root, {f"family:{network.family}"}) | {f"layout:{layout_of(row.output_shape).name}"
                                                   for row in analysis.rows}
        if network.family in LECTURE_FAMILIES:
            chosen.append(name)
    for kind in sorted(set().union(*used.values())):
        cheapest = min((name for name in used if kind in used[name]), key=lambda name: (cost[name], name))
        if cheapest not in chosen:
            chosen.append(cheapest)
    return chosen
