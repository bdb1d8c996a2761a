"""Every torchvision classification model through ONNX, from both of torch's exporters, at its published eval crop.

    python benchmarks/import_onnx.py                 # writes reports/measured/import_onnx.md and .json
    python benchmarks/import_onnx.py --only resnet50 --exporters dynamo --cache-dir /tmp/onnx

Each model (torchvision installed with --no-deps, see import_torchvision.py) is built with random positive values
in every parameter and buffer (torch's dynamo exporter drops a bias of zeros and merges initializers of equal
values, which a freshly made model has and trained weights do not), exported with
`torch.onnx.export(..., dynamo=False)` ("legacy") and the default `dynamo=True` ("dynamo") at the weights' eval
crop, and imported with `archcalc import onnx`, each in a fresh process with its memory and time capped. The
parameters of the initializers are compared with the weights' `num_params`, less what folding batch norm takes:
a batch norm folded into the convolution before it leaves C bias values for its 2C weights (-C; -2C where the
convolution had a bias of its own, VGG's, which takes the norm's in); one that stays
(no convolution before it) keeps its running statistics, counted as non-trainable. MACs are compared with
`_ops` (GMACs, 3 decimals). A relative position bias (Swin v1's, MaxViT's) is in the file as the exporters'
constant folding gathered it from its table (heads x N x N values for the table's (2w - 1)^2 x heads), also
taken into the comparison. --cache-dir keeps the exported files (and their export times) for another run.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from import_torchvision import published, run_child, torchvision  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXPORTERS = ("legacy", "dynamo")
ONNX_LIMIT = 2**31  # protobuf's limit for one file without external data
DYNAMO_SAMPLE = ("alexnet", "convnext_tiny", "densenet121", "efficientnet_b0", "efficientnet_v2_s", "googlenet",
                 "inception_v3", "maxvit_t", "mnasnet0_5", "mobilenet_v2", "mobilenet_v3_small", "regnet_x_400mf",
                 "regnet_y_400mf", "resnet18", "resnext50_32x4d", "shufflenet_v2_x0_5", "squeezenet1_0", "swin_t",
                 "swin_v2_t", "vgg11", "vit_b_16", "wide_resnet50_2")
""" one model of each family, for the dynamo exporter when there is no time for all 80 """


def randomize(model) -> None:
    """Random positive values in every parameter and buffer: the dynamo exporter drops a bias of zeros (a freshly
    made classifier's; the bias a folded default batch norm leaves) and merges initializers of equal values (the
    layer scales of a ConvNeXt stage), which trained weights do not have."""
    import torch

    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for tensor in (*model.parameters(), *model.buffers()):
            if tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)


def _read_tensors(model, image) -> tuple[list[tuple[str, str]], set[int]]:
    """The leaf modules one eval forward pass calls, in order, each with the leaf module that made its input, and the ids of the tensors its torch calls read (a
    module's weights passed to a function, as torchvision's Swin passes its `qkv.weight` to F.linear)."""
    import torch
    from torch.overrides import TorchFunctionMode

    class Reads(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.seen: set[int] = set()

        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            for value in (*args, *kwargs.values()):
                values = value if isinstance(value, (list, tuple)) else (value,)
                self.seen.update(id(v) for v in values if isinstance(v, torch.Tensor))
            return func(*args, **kwargs)

    calls: list[tuple[str, str]] = []  # the module, and the module that made its first input ("" for none)

    def called(module, inputs, output, name):
        calls.append((name, getattr(inputs[0], "made_by", "") if inputs else ""))
        if isinstance(output, torch.Tensor):
            output.made_by = name  # a tag on the tensor: ids of freed tensors are reused

    leaves = {name: m for name, m in model.named_modules() if not list(m.children())}
    hooks = [m.register_forward_hook(lambda *a, name=name: called(*a, name)) for name, m in leaves.items()]
    reads = Reads()
    with torch.no_grad(), reads:
        model(image)
    for hook in hooks:
        hook.remove()
    return calls, reads.seen


def not_run(model, image) -> dict:
    """What one eval forward pass leaves out (Inception v3's auxiliary head): the parameters of the modules
    that neither run nor have their weights read, by name, and the channels of the batch norms that run."""
    import torch

    calls, seen = _read_tensors(model, image)
    leaves = {name: m for name, m in model.named_modules() if not list(m.children())}
    ran = {name for name, _ in calls}
    idle = {name: sum(p.numel() for p in m.parameters()) for name, m in leaves.items()
            if name not in ran and not any(id(p) in seen for p in m.parameters())}
    heads = sorted({name.split(".")[0] for name, count in idle.items() if count})
    channels = sum(m.num_features for name, m in leaves.items() if name in ran and isinstance(m, torch.nn.BatchNorm2d))
    # a norm that alone reads the output of a convolution with a bias of its own (VGG's) folds into that bias: -2C,
    # not -C; where other modules read that output too (MaxViT's stem feeds its first block's norm and shortcut), not
    readers: dict[str, int] = {}
    for _, made_by in calls:
        readers[made_by] = readers.get(made_by, 0) + 1
    biased = sum(leaves[name].num_features for name, made_by in calls
                 if isinstance(leaves[name], torch.nn.BatchNorm2d) and isinstance(leaves.get(made_by), torch.nn.Conv2d)
                 and leaves[made_by].bias is not None and readers[made_by] == 1)
    return {"bn_channels": channels, "bn_after_biased_conv": biased,
            "not_run": {h: sum(c for n, c in idle.items() if n.split(".")[0] == h) for h in heads}}


def gathered_biases(model) -> int:
    """What the exporters' constant folding adds to a relative position bias (Swin v1's, MaxViT's): the file holds
    the bias gathered from the table by its fixed index (heads x N x N for a window of N positions) where the model
    has the table ((2w - 1)^2 x heads); the difference, summed over the model's attentions."""
    added = 0
    for module in model.modules():
        table, index = getattr(module, "relative_position_bias_table", None), getattr(module, "relative_position_index", None)
        if table is not None and index is not None:
            added += index.numel() * table.shape[-1] - table.numel()
    return added


def export(name: str, exporter: str, path: Path, crop: int) -> dict:
    """Export `name` to `path`; the seconds it took and the batch norm channels of the model."""
    import warnings

    import torch

    tv = torchvision()
    model = tv.models.get_model(name).eval()
    randomize(model)
    image = torch.randn(1, 3, crop, crop)
    facts = {**not_run(model, image), "model_params": sum(p.numel() for p in model.parameters()),
             "gathered": gathered_biases(model)}
    start = time.perf_counter()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (image,), str(path), dynamo=exporter == "dynamo")
    return {"export_s": time.perf_counter() - start, **facts}


def _built(name: str):
    model = torchvision().models.get_model(name).eval()
    randomize(model)
    return model


def _image(crop: int):
    import torch

    return torch.randn(1, 3, crop, crop)


def one(name: str, exporter: str, cache: Path | None) -> dict:
    """Export (or take from the cache) and import; what came out, or the one line that stopped it."""
    facts = published(name)
    folder = cache or Path(tempfile.mkdtemp(prefix="archcalc-onnx-"))
    path, record = folder / f"{name}.{exporter}.onnx", folder / f"{name}.{exporter}.json"
    if not (path.exists() and record.exists()):
        record.write_text(json.dumps(export(name, exporter, path, facts["crop"])))
    exported = json.loads(record.read_text())
    if exported.get("not_run") or "gathered" not in exported:  # a record from before these were counted
        model = _built(name)
        exported.update({**not_run(model, _image(facts["crop"])), "gathered": gathered_biases(model)})
    base = {**facts, **exported, "name": name, "exporter": exporter, "bytes": path.stat().st_size}
    if path.stat().st_size >= ONNX_LIMIT:
        return {**base, "result": "skipped", "message": "the file is over 2 GiB (external data): not read"}
    import onnx

    import archcalc
    from archcalc.errors import ArchcalcError
    from archcalc.importers.onnx_graph import import_onnx

    kept_bn = _kept_norm_channels(onnx, path)
    folded = exported["bn_channels"] - kept_bn + exported.get("bn_after_biased_conv", 0)
    start = time.perf_counter()
    try:
        document = import_onnx(path)
        analysis = archcalc.analyze(archcalc.load(document))
    except ArchcalcError as exc:
        return {**base, "result": "refused", "message": str(exc), "import_s": time.perf_counter() - start}
    seconds = time.perf_counter() - start
    expect = {e["what"]: e["value"] for e in document["expect"]}
    params, macs = analysis.totals.params, analysis.totals.macs
    idle = sum(exported["not_run"].values())
    if exported.get("model_params", facts["num_params"]) != facts["num_params"]:  # not in num_params (GoogLeNet's)
        exported["not_run"], idle = {}, 0
    wanted = facts["num_params"] - folded - idle + exported["gathered"]
    exact = params == wanted and expect["params"] == wanted and round(macs / 1e9, 3) == facts["ops"]
    return {**base, "result": "exact" if exact else "differs", "params": params, "initializers": expect["params"],
            "non_trainable": expect["non_trainable"], "folded_bn": folded, "not_run": exported["not_run"],
            "gathered": exported["gathered"], "macs": macs,
            "import_s": seconds, "measured": _measured_rows(document["layers"]),
            "comment": document.get("comment", "")}


def _measured_rows(layers: list) -> int:
    """The `measured` rows of a spec's layers (module scopes archcalc read as no layer types)."""
    count = 0
    for item in layers:
        count += item.get("type") == "measured"
        count += _measured_rows(item.get("layers", [])) + sum(_measured_rows(b) for b in item.get("branches", []))
    return count


def _kept_norm_channels(onnx, path: Path) -> int:
    """The channels of the BatchNormalization nodes the file keeps (not folded by the exporter)."""
    model = onnx.load(str(path), load_external_data=False)
    dims = {i.name: int(i.dims[0]) for i in model.graph.initializer if len(i.dims) == 1}
    return sum(dims.get(n.input[1], 0) for n in model.graph.node if n.op_type == "BatchNormalization")


def run_one(name: str, exporter: str, cache: Path | None, timeout: int, memory_gib: float) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--one", name, "--exporters", exporter]
    if cache is not None:
        command += ["--cache-dir", str(cache)]
    return run_child(command, {"name": name, "exporter": exporter}, timeout, memory_gib)


def table(results: list[dict]) -> str:
    head = ("| model | exporter | crop | result | params (initializers) | num_params | difference | GMACs | _ops | "
            "export s | import s |\n| --- | --- | ---: | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
    lines = [head]
    for r in results:
        result = r["result"] if "message" not in r else f"{r['result']}: {r['message']}".replace("|", "\\|")
        if r.get("measured"):
            result += f" ({r['measured']} measured rows)"
        if "params" in r:
            diff = r["params"] - r["num_params"]
            parts = [f"BN folded: -{r['folded_bn']:,}"] if r["folded_bn"] else []
            parts += [f"{head} not run in eval: -{count:,}" for head, count in r["not_run"].items()]
            if r.get("gathered"):
                parts.append(f"position biases gathered from their tables: +{r['gathered']:,}")
            rest = diff + r["folded_bn"] + sum(r["not_run"].values()) - r.get("gathered", 0)
            if rest:
                parts.append(f"other: {rest:+,}")
            named = f"{diff:+,}" + (f" ({'; '.join(parts)})" if parts else "")
            if r["non_trainable"]:
                named += f"; running stats {r['non_trainable']:,} non-trainable"
            cells = [f"{r['params']:,}", f"{r['num_params']:,}", named, f"{r['macs'] / 1e9:.3f}", str(r["ops"])]
        else:
            cells = ["-", f"{r.get('num_params', '-'):,}" if "num_params" in r else "-", "-", "-", str(r.get("ops", "-"))]
        times = [f"{r['export_s']:.1f}" if "export_s" in r else "-", f"{r['import_s']:.1f}" if "import_s" in r else "-"]
        lines.append("| " + " | ".join([r["name"], r["exporter"], str(r.get("crop", "-")), result, *cells, *times]) + " |")
    counts: dict[str, int] = {}
    for r in results:
        key = f"{r['exporter']} {r['result']}"
        counts[key] = counts.get(key, 0) + 1
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    return "\n".join(lines) + f"\n\n{len(results)} imports; {summary}.\n"


def merge(runs: list[list[dict]]) -> list[dict]:
    """The records of several runs, one per model and exporter (the last run's), by exporter then model."""
    latest = {(r["exporter"], r["name"]): r for run in runs for r in run}
    return [latest[key] for key in sorted(latest, key=lambda k: (EXPORTERS.index(k[0]), k[1]))]


def write(results: list[dict], out: Path, note: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "import_onnx.json").write_text(json.dumps(results, indent=1) + "\n")
    text = (f"# torchvision's classification models through ONNX (`archcalc import onnx`)\n\n"
            f"`python benchmarks/import_onnx.py` on {platform.node() or 'this machine'} "
            f"({platform.processor() or platform.machine()}), Python {platform.python_version()}: each model built "
            f"with random positive values in every parameter and buffer (the dynamo exporter drops biases of zeros and "
            f"merges equal initializers, which trained weights do not have), exported by torch's two exporters at its weights' "
            f"eval crop and imported. \"params\" is what the initializers hold (trainable); it differs from "
            f"`num_params` by what the exporter's folding of batch norm takes (a folded batch norm of C channels "
            f"leaves a bias of C for its weight and bias of 2C: -C; -2C where the convolution has a bias of its own, as "
            f"VGG's), named in the difference column. MACs against "
            f"`_ops` (GMACs, 3 decimals). \"exact\": params equal `num_params` less the folded batch norms, and the "
            f"MACs equal `_ops`. A module that does not run in eval is not in the file: its parameters "
            f"are named in the difference too where `num_params` holds them (Inception v3's `AuxLogits`; not "
            f"GoogLeNet's aux heads, which its `num_params` leaves out). The exporters' constant folding gathers "
            f"each relative position bias of Swin v1 and MaxViT from its table by the fixed index: the file holds "
            f"heads x N x N values (a window of N positions) where the model has the table ((2w - 1)^2 x heads), "
            f"named in the difference too and taken into \"exact\"; what else differs is \"other\". A model "
            f"whose attentions archcalc reads as no layer types says how many rows it measured (module scopes: "
            f"docs/import.md).{note}\n\n{table(results)}")
    (out / "import_onnx.md").write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--only", nargs="*", help="these models only")
    parser.add_argument("--exporters", nargs="*", default=list(EXPORTERS), choices=EXPORTERS)
    parser.add_argument("--dynamo-sample", action="store_true",
                        help="the dynamo exporter on one model of each family only (it is slow)")
    parser.add_argument("--skip", nargs="*", default=[], help="models left out (named in the record)")
    parser.add_argument("--note", default="", help="a sentence added to the record")
    parser.add_argument("--cache-dir", help="keep the exported files here and reuse them")
    parser.add_argument("--merge", nargs="*", metavar="JSON",
                        help="write the record from the .json records of earlier runs (a later record of a model "
                             "and exporter replaces an earlier one), running nothing")
    parser.add_argument("--out-dir", default=str(ROOT / "reports" / "measured"))
    parser.add_argument("--timeout", type=int, default=600, help="seconds per model and exporter")
    parser.add_argument("--memory-gib", type=float, default=8.0, help="address space per model and exporter")
    args = parser.parse_args()
    cache = Path(args.cache_dir) if args.cache_dir else None
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    if args.one:
        sys.path.insert(0, str(ROOT))
        print(json.dumps(one(args.one, args.exporters[0], cache)))
        return
    note = ""
    if args.skip:
        note += f" Left out: {', '.join(args.skip)}."
    if args.dynamo_sample and "dynamo" in args.exporters:
        note += f" The dynamo exporter ran on one model of each family only: {', '.join(DYNAMO_SAMPLE)}."
    if args.note:
        note += f" {args.note}"
    if args.merge:
        merged = merge([json.loads(Path(f).read_text()) for f in args.merge])
        write(merged, Path(args.out_dir), note + f" Merged from {len(args.merge)} runs over the same cache of files.")
        return
    tv = torchvision()
    names = args.only or sorted(tv.models.list_models(module=tv.models))
    results = []
    for exporter in args.exporters:
        for name in names:
            if name in args.skip or (exporter == "dynamo" and args.dynamo_sample and name not in DYNAMO_SAMPLE):
                continue
            result = run_one(name, exporter, cache, args.timeout, args.memory_gib)
            results.append(result)
            print(f"{name} {exporter}: {result['result']} {result.get('message', '')}", flush=True)
            write(results, Path(args.out_dir), note)


if __name__ == "__main__":
    main()
