"""The zoo's row paths against torchvision's module names, for every zoo network that claims a torchvision model.

    python benchmarks/zoo_names.py                    # every such network; exit 1 if any differs
    python benchmarks/zoo_names.py efficientnet_b0 swin_t

A network claims a torchvision model when its name is one of torchvision's classification models and its
`expect` pins torchvision's `num_params`. Its rows are compared with the model's `named_modules()`: each
row with parameters must be a module (or a parameter: ConvNeXt's `layer_scale`) of that name, and each
module holding parameters of its own must be a row, inside one (a layer type's own parts: window
attention's qkv) or hold one. The differences known and why are in KNOWN: printed, not counted.
torchvision (installed with --no-deps) is imported with an empty `torchvision._meta_registrations`; the
models are built on the meta device, so nothing is allocated.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from import_torchvision import torchvision  # noqa: E402

# (network prefix, row or module path prefix): why the names differ
KNOWN = {
    ("googlenet", "aux"): "the auxiliary heads, which evaluation does not run: the specs googlenet_aux1 and _aux2",
    ("inception_v3", "AuxLogits."): "the auxiliary head, which evaluation does not run: the spec inception_v3_aux",
    ("vit_", "cat"): "the class token is a parameter of the model itself, concatenated by a functional call",
    ("vit_", "encoder.add"): "the position embedding is a parameter of the encoder, added by a functional call",
}


def known(name: str, line: str) -> str | None:
    """Why the difference `line` of `name` is expected, if it is."""
    path = line.split()[1]
    return next((why for (net, prefix), why in KNOWN.items() if name.startswith(net) and path.startswith(prefix)),
                None)


def claims_torchvision(network) -> bool:
    return any("torchvision" in e.source and "num_params" in e.source for e in network.expect)


def claimed() -> list[str]:
    """The zoo networks that are torchvision models by name and pin torchvision's num_params."""
    from archcalc import load
    from archcalc.core.spec import zoo_index

    models = set(torchvision().models.list_models(module=torchvision().models))
    return [name for name in sorted(zoo_index()) if name in models and claims_torchvision(load(name))]


def torch_names(name: str) -> tuple[set[str], set[str]]:
    """torchvision's module and parameter names, and the names of the modules that hold parameters of their
    own (a module's parameter that is no module, ConvNeXt's `layer_scale`, is named as its parameter)."""
    import torch

    tv = torchvision()
    with torch.device("meta"), _widths_on_cpu(tv):
        model = tv.models.get_model(name)
    modules = dict(model.named_modules())
    weighted = {n for n, m in modules.items() if n and list(m.parameters(recurse=False))}
    return set(modules) - {""} | {n for n, _ in model.named_parameters()}, weighted


@contextlib.contextmanager
def _widths_on_cpu(tv):
    """RegNet computes its widths with torch on the default device: on the CPU here, not on meta."""
    params = tv.models.regnet.BlockParams
    original = params.__dict__["from_init_params"]

    def on_cpu(cls, *args, **kwargs):
        import torch

        with torch.device("cpu"):
            return original.__func__(cls, *args, **kwargs)

    params.from_init_params = classmethod(on_cpu)
    try:
        yield
    finally:
        params.from_init_params = original


def differences(name: str) -> list[str]:
    """One line per row with parameters that torchvision names otherwise, and per torchvision module with
    parameters that no row is (or holds)."""
    from archcalc import analyze, load

    rows = analyze(load(name)).leaves()[1:]
    modules, weighted = torch_names(name)
    paths = {row.path for row in rows}
    lines = [f"row {row.path} ({row.params:,} parameters): torchvision has no module of that name"
             for row in rows if row.params and row.path not in modules]
    lines += [f"module {m}: no row is or holds it" for m in sorted(weighted)
              if m not in paths and not any(m.startswith(p + ".") or p.startswith(m + ".") for p in paths)]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="zoo networks (default: every one that claims a torchvision model)")
    parser.add_argument("--limit", type=int, default=8, help="differences printed per network")
    args = parser.parse_args(argv)
    names = args.names or claimed()
    differing = 0
    for name in names:
        found = differences(name)
        named = [(line, why) for line in found if (why := known(name, line))]
        found = [line for line in found if not known(name, line)]
        differing += bool(found)
        print(f"{name}: {f'{len(found)} differences' if found else 'same names'}"
              f"{f' ({len(named)} known)' if named else ''}")
        for line in found[:args.limit]:
            print(f"  {line}")
        if len(found) > args.limit:
            print(f"  ... and {len(found) - args.limit} more")
        for why in dict.fromkeys(why for _, why in named):
            print(f"  known: {why}")
    print(f"{len(names) - differing} of {len(names)} networks name their rows as torchvision does (known "
          "differences aside)")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
