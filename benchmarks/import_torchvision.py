"""Every torchvision classification model through `archcalc import torch`, at its published eval crop.

    python benchmarks/import_torchvision.py                 # writes reports/measured/import_torchvision.md and .json
    python benchmarks/import_torchvision.py --only resnet50 convnext_tiny --out-dir /tmp/tv

torchvision (installed with --no-deps; its compiled ops do not load against this torch) is imported with
an empty `torchvision._meta_registrations`. Each model is imported in a fresh process (memory capped by
--memory-gib, time by --timeout), through the same code as `archcalc import torch`; the spec's parameters
are compared with the weights' published `num_params` and its MACs with `_ops` (GMACs, 3 decimals).
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def torchvision():
    import types

    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    import torchvision as tv

    return tv


def published(name: str) -> dict:
    """The default weights' published figures and eval crop."""
    tv = torchvision()
    weights = tv.models.get_model_weights(name).DEFAULT
    crop = weights.transforms.keywords.get("crop_size", 224)
    crop = crop[0] if isinstance(crop, (list, tuple)) else crop
    return {"weights": str(weights), "num_params": weights.meta["num_params"], "ops": weights.meta["_ops"], "crop": crop}


def builder_kwargs(name: str, crop: int) -> dict:
    """A ViT is built for one image size (its position embedding's length): the crop its weights were trained
    at (vit_h_14's SWAG weights: 518), not the builder's default 224."""
    return {"image_size": crop} if name.startswith("vit_") and crop != 224 else {}


def one(name: str) -> dict:
    """Import `name` in this process; what came out, or the one line that stopped it."""
    facts = published(name)
    tv = torchvision()
    import archcalc
    from archcalc.errors import ArchcalcError

    start = time.perf_counter()
    model = tv.models.get_model(name, **builder_kwargs(name, facts["crop"])).eval()
    built = time.perf_counter() - start
    try:
        analysis = archcalc.summary(model, input_size=(3, facts["crop"], facts["crop"]))
    except ArchcalcError as exc:
        return {**facts, "name": name, "result": "refused", "message": str(exc), "build_s": built,
                "import_s": time.perf_counter() - start - built}
    seconds = time.perf_counter() - start - built
    params, macs = analysis.totals.params, analysis.totals.macs
    exact = params == facts["num_params"] and round(macs / 1e9, 3) == facts["ops"]
    notes = [note.text for note in analysis.warnings if hasattr(note, "text")][:3]
    return {**facts, "name": name, "result": "exact" if exact else "differs", "params": params, "macs": macs,
            "build_s": built, "import_s": seconds, "notes": notes}


def run_one(python: str, name: str, timeout: int, memory_gib: float) -> dict:
    return run_child([python, str(Path(__file__).resolve()), "--one", name], {"name": name}, timeout, memory_gib)


def run_child(command: list[str], record: dict, timeout: int, memory_gib: float) -> dict:
    """The JSON record the child prints last, or `record` marked skipped with the reason: over `timeout`
    seconds, over `memory_gib` of address space (a cap below any hard limit), or a crash."""
    limit = int(memory_gib * 2**30)

    def cap():
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))

    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, preexec_fn=cap, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {**record, "result": "skipped", "message": f"over {timeout} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = " ".join(done.stderr.strip().splitlines()[-1:])[:300]
        memory = "MemoryError" in done.stderr or "bad_alloc" in done.stderr or done.returncode < 0
        reason = f"over {memory_gib:g} GiB of memory" if memory else f"crashed: {tail}"
        return {**record, "result": "skipped", "message": reason}
    return json.loads(lines[-1])


def table(results: list[dict]) -> str:
    head = ("| model | crop | result | params | num_params | GMACs | _ops | import s |\n"
            "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    lines = [head]
    for r in results:
        got = r.get("params")
        gmacs = f"{r['macs'] / 1e9:.3f}" if "macs" in r else "-"
        result = r["result"] if "message" not in r else f"{r['result']}: {r['message']}".replace("|", "\\|")
        lines.append(f"| {r['name']} | {r.get('crop', '-')} | {result} | {got:,} |" if got is not None else
                     f"| {r['name']} | {r.get('crop', '-')} | {result} | - |")
        lines[-1] += (f" {r.get('num_params', 0):,} | {gmacs} | {r.get('ops', '-')} | "
                      f"{r['import_s']:.1f} |" if "import_s" in r else f" {r.get('num_params', '-')} | {gmacs} | {r.get('ops', '-')} | - |")
    counts: dict[str, int] = {}
    for r in results:
        counts[r["result"]] = counts.get(r["result"], 0) + 1
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    return "\n".join(lines) + f"\n\n{len(results)} models; {summary}.\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--only", nargs="*", help="these models only")
    parser.add_argument("--out-dir", default=str(ROOT / "reports" / "measured"))
    parser.add_argument("--timeout", type=int, default=600, help="seconds per model")
    parser.add_argument("--memory-gib", type=float, default=8.0, help="address space per model")
    args = parser.parse_args()
    if args.one:
        sys.path.insert(0, str(ROOT))
        print(json.dumps(one(args.one)))
        return
    tv = torchvision()
    names = args.only or sorted(tv.models.list_models(module=tv.models))
    results = []
    for name in names:
        result = run_one(sys.executable, name, args.timeout, args.memory_gib)
        results.append(result)
        print(f"{name}: {result['result']} {result.get('message', '')}", flush=True)
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "import_torchvision.json").write_text(json.dumps(results, indent=1) + "\n")
        text = (f"# torchvision's classification models through `archcalc import torch`\n\n"
                f"`python benchmarks/import_torchvision.py` on {platform.node() or 'this machine'} "
                f"({platform.processor() or platform.machine()}), Python {platform.python_version()}: each model "
                f"built with random weights, imported at its weights' eval crop; params against the weights' "
                f"`num_params`, MACs against `_ops` (GMACs to 3 decimals). \"exact\": both equal.\n\n{table(results)}")
        (out / "import_torchvision.md").write_text(text)


if __name__ == "__main__":
    main()
