"""`archcalc bench`: latency and throughput on the machine's accelerator (CUDA events) or CPU."""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from ..errors import UsageError
from .common import (
    TIMED_DTYPES,
    batch_option,
    dtype_option,
    format_option,
    input_option,
    load_target,
    out_option,
    takes_target,
    write_outputs,
)

if TYPE_CHECKING:
    pass


@click.command()
@click.argument("names", nargs=-1, metavar="[TARGET]...")
@click.option("--all", "every", is_flag=True, help="Every network of the zoo.")
@input_option
@batch_option("Comma-separated batch sizes, e.g. 1,32,256.")
@dtype_option(TIMED_DTYPES, "The dtype the model runs in.")
@click.option("--channels-last", is_flag=True, help="Model and input in channels_last memory format.")
@click.option("--device", type=click.Choice(["cuda", "cpu"]), default=None, help="Default: cuda when torch sees a GPU, else cpu.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads of torch on --device cpu (default: the physical cores); the output states it.")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model (with --cuda-graph: mode reduce-overhead).")
@click.option("--cuda-graph", is_flag=True, help="Capture one forward pass in a CUDA graph and time its replay.")
@click.option("--l2-flush", is_flag=True, help="Overwrite a buffer larger than the GPU's L2 before each repetition.")
@click.option("--warmup-iters", type=click.IntRange(min=0), default=10, show_default=True,
              help="Untimed iterations before timing (at least this many, and --warmup-seconds).")
@click.option("--warmup-seconds", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Seconds of untimed iterations before timing (at least this long, and --warmup-iters).")
@click.option("--iters", type=click.IntRange(min=1), default=50, show_default=True, help="Timed repetitions.")
@click.option("--matmul-size", type=click.IntRange(min=16), default=None, help="Side of the peak matmul (default 8192 on CUDA, 1024 on CPU).")
@format_option
@out_option
@takes_target()
def bench(names: tuple[str, ...], every: bool, dims: tuple[int, ...] | None, batches: tuple[int, ...], dtypes: tuple[str, ...],
          channels_last: bool, device: str | None, threads: int | None, compile_: bool, cuda_graph: bool, l2_flush: bool,
          warmup_iters: int, warmup_seconds: float, iters: int, matmul_size: int | None, out_format: str,
          outs: tuple[str, ...], kwargs_text: str | None) -> None:
    """Measure latency, images/s, TFLOP/s and memory of networks, next to archcalc's figures.

    Ctrl-C stops cleanly: what was measured is printed and written (--out), and the exit code is 130.
    """
    from ..core.calc import analyze
    from ..core.spec import zoo_index
    from ..deps import require_torch
    from ..files import check_writable
    from ..progress import ProgressBar
    from ..targets import refuse_stray_kwargs
    from ..torch.bench import NOISE_FACTOR, Settings, run
    from ..torch.bench_render import render

    if bool(names) == every:
        raise UsageError("bench takes TARGETs (see --help) or --all, not both and not neither")
    refuse_stray_kwargs(kwargs_text, names)
    for path in outs:  # before minutes of measuring
        check_writable(path)
    analyses = [analyze(*load_target(name, dims, kwargs_text, alone=False)) for name in (names or tuple(zoo_index()))]
    torch = require_torch()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if threads is not None and device != "cpu":
        raise UsageError("--threads applies to --device cpu")
    settings = Settings(device, channels_last, compile_, cuda_graph, l2_flush, warmup_iters, warmup_seconds, iters,
                        matmul_size, threads=threads)
    result = run(analyses, batches, dtypes, settings, progress=ProgressBar(sys.stderr))
    click.echo(render(result, out_format), nl=False)
    write_outputs(outs, lambda kind: render(result, kind), out_format)
    for r in result.results:
        if r.noisy:
            click.echo(f"WARNING: {r.network} batch {r.batch} {r.dtype}: median {r.latency.median_ms:.4f} ms is within "
                       f"{NOISE_FACTOR}x of the empty timed region ({r.overhead_ms:.4f} ms): mostly timer overhead", err=True)
    if result.interrupted:
        click.echo(f"archcalc: interrupted; {len(result.results)} of {result.planned} configurations measured"
                   + (f", written to {', '.join(outs)}" if outs else ""), err=True)
        sys.exit(130)
