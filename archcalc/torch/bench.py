"""`archcalc bench`: measured latency, throughput and memory next to archcalc's own figures.

Every configuration (network, dtype, batch) is warmed up (a minimum number of iterations AND
a minimum time), then timed once per repetition: on CUDA with a pair of
`torch.cuda.Event(enable_timing=True)` around each forward pass, read after one synchronize;
on CPU with `time.perf_counter_ns` (wall clock, monotonic). The same timer measures an empty
region (the benchmark's own overhead) and a square matmul at each dtype (the device's dense
peak in this run). Achieved FLOP/s use archcalc's MACs (2 FLOPs per MAC, conv + linear only).
torch is imported only here, when a benchmark runs.
"""
from __future__ import annotations

import datetime
import gc
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from ..core.calc import Analysis
from ..deps import require_torch
from ..errors import SpecError, UsageError
from ..layers import Shape

DTYPES = ("fp32", "fp16", "bf16")
NOISE_FACTOR = 5  # a median below this many empty-region medians is mostly timer overhead
MATMUL_SIZE = {"cuda": 8192, "cpu": 1024}


@dataclass(frozen=True)
class Settings:
    device: str = "cpu"
    channels_last: bool = False
    compile: bool = False
    cuda_graph: bool = False
    l2_flush: bool = False
    warmup_iters: int = 10
    warmup_seconds: float = 1.0
    iters: int = 50
    matmul_size: int | None = None  # None: MATMUL_SIZE[device]
    threads: int | None = None  # CPU threads of torch; None: the physical cores (on CPU)

    @property
    def timer(self) -> str:
        if self.device == "cuda":
            return "CUDA events around each repetition (GPU time), read after synchronize"
        return "time.perf_counter_ns around each repetition (CPU wall clock, monotonic)"


@dataclass(frozen=True)
class Stats:
    """Latency of one timed region over its repetitions, in milliseconds."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    min_ms: float
    max_ms: float
    samples: int

    @classmethod
    def of(cls, samples_ms: Sequence[float]) -> "Stats":
        ordered = sorted(samples_ms)
        return cls(percentile(ordered, 50), percentile(ordered, 10), percentile(ordered, 90),
                   ordered[0], ordered[-1], len(ordered))


def percentile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default) of sorted samples."""
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class MatmulPeak:
    dtype: str
    size: int
    latency: Stats

    @property
    def tflops(self) -> float:
        return 2 * self.size**3 / (self.latency.median_ms / 1e3) / 1e12


@dataclass(frozen=True)
class Result:
    network: str
    batch: int
    dtype: str
    input_shape: Shape
    latency: Stats
    macs_per_image: int
    peak_tflops: float | None  # the matmul peak at this dtype, measured in the same run
    peak_allocated_bytes: int | None  # None on CPU: not measured
    resident_bytes: int | None  # allocated before the forward pass: weights and input
    weights_bytes: int
    activation_bytes: int
    peak_activation_bytes: int
    overhead_ms: float

    @property
    def flops(self) -> int:
        return 2 * self.macs_per_image * self.batch

    @property
    def images_per_s(self) -> float:
        return self.batch / (self.latency.median_ms / 1e3)

    @property
    def achieved_tflops(self) -> float:
        return self.flops / (self.latency.median_ms / 1e3) / 1e12

    @property
    def percent_of_peak(self) -> float | None:
        return None if not self.peak_tflops else 100 * self.achieved_tflops / self.peak_tflops

    @property
    def estimate_bytes(self) -> int:
        return self.weights_bytes + self.activation_bytes

    @property
    def noisy(self) -> bool:
        return self.latency.median_ms < NOISE_FACTOR * self.overhead_ms


@dataclass(frozen=True)
class Failure:
    network: str
    batch: int
    dtype: str
    message: str


@dataclass(frozen=True)
class Run:
    environment: dict[str, Any]
    settings: Settings
    planned: int  # configurations asked for
    overhead: Stats | None = None
    peaks: tuple[MatmulPeak, ...] = ()
    results: tuple[Result, ...] = ()
    failures: tuple[Failure, ...] = ()
    interrupted: bool = False

    def peak(self, dtype: str) -> MatmulPeak | None:
        return next((p for p in self.peaks if p.dtype == dtype), None)


def check_settings(torch, settings: Settings) -> None:
    """Refuse what this machine or device cannot do, as one line."""
    if settings.device == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device cuda: torch {torch.__version__} sees no CUDA GPU on this machine; use --device cpu")
    if settings.device == "cpu" and (settings.cuda_graph or settings.l2_flush):
        flag = "--cuda-graph" if settings.cuda_graph else "--l2-flush"
        raise UsageError(f"{flag} needs --device cuda (it flushes or replays on the GPU)")


# ---- devices and timing ----------------------------------------------------------------

class Device:
    """Timing and memory on one device: CPU here, CUDA in CudaDevice."""

    name = "cpu"

    def __init__(self, torch, settings: Settings):
        self.torch = torch
        self.settings = settings

    def sync(self) -> None:
        pass

    def samples(self, fn: Callable[[], Any], iters: int) -> list[float]:
        out = []
        for _ in range(iters):
            start = time.perf_counter_ns()
            fn()
            end = time.perf_counter_ns()
            out.append((end - start) / 1e6)
        return out

    def memory(self, fn: Callable[[], Any]) -> tuple[int | None, int | None]:
        return None, None  # not measured on CPU

    def release(self) -> None:
        gc.collect()


class CudaDevice(Device):
    name = "cuda"

    def __init__(self, torch, settings: Settings):
        super().__init__(torch, settings)
        torch.backends.cudnn.benchmark = True  # pick the fastest kernels for the fixed shapes timed here
        self.flush_bytes = 0
        self.flush = None
        if settings.l2_flush:
            l2 = getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 0) or 128 * 2**20
            self.flush_bytes = max(2 * l2, 64 * 2**20)
            self.flush = torch.empty(self.flush_bytes, dtype=torch.uint8, device="cuda")

    def sync(self) -> None:
        self.torch.cuda.synchronize()

    def samples(self, fn: Callable[[], Any], iters: int) -> list[float]:
        event = self.torch.cuda.Event
        pairs = [(event(enable_timing=True), event(enable_timing=True)) for _ in range(iters)]
        for start, end in pairs:
            if self.flush is not None:
                self.flush.zero_()  # overwrite more than the L2 holds, outside the timed region
            start.record()
            fn()
            end.record()
        self.torch.cuda.synchronize()
        return [start.elapsed_time(end) for start, end in pairs]

    def memory(self, fn: Callable[[], Any]) -> tuple[int | None, int | None]:
        cuda = self.torch.cuda
        cuda.synchronize()
        resident = cuda.memory_allocated() - self.flush_bytes  # the flush buffer is not the network's
        cuda.reset_peak_memory_stats()
        fn()
        cuda.synchronize()
        return resident, cuda.max_memory_allocated() - self.flush_bytes

    def release(self) -> None:
        gc.collect()
        self.torch.cuda.empty_cache()


def make_device(torch, settings: Settings) -> Device:
    return CudaDevice(torch, settings) if settings.device == "cuda" else Device(torch, settings)


def warm_up(device: Device, fn: Callable[[], Any], settings: Settings) -> None:
    began, done = time.perf_counter(), 0
    while done < settings.warmup_iters or time.perf_counter() - began < settings.warmup_seconds:
        fn()
        device.sync()
        done += 1


def time_region(device: Device, fn: Callable[[], Any], settings: Settings) -> Stats:
    """Warm up, then time each of `settings.iters` repetitions of fn."""
    warm_up(device, fn, settings)
    return Stats.of(device.samples(fn, settings.iters))


# ---- what is timed ---------------------------------------------------------------------

def torch_dtype(torch, dtype: str):
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]


def measure_matmul(torch, device: Device, dtype: str, settings: Settings) -> MatmulPeak:
    size = settings.matmul_size or MATMUL_SIZE[device.name]
    operands = [torch.randn(size, size, device=device.name, dtype=torch_dtype(torch, dtype)) for _ in range(2)]
    stats = time_region(device, lambda: torch.mm(*operands), settings)
    operands.clear()  # free the operands before the next measurement
    device.release()
    return MatmulPeak(dtype, size, stats)


def forward(torch, model, x, settings: Settings) -> Callable[[], Any]:
    """The callable that one repetition runs: eager, compiled, or a CUDA graph replay."""
    if settings.compile:
        model = torch.compile(model, mode="reduce-overhead" if settings.cuda_graph else None)
        return lambda: model(x)
    if not settings.cuda_graph:
        return lambda: model(x)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # capture needs warmed-up kernels, on a side stream
        for _ in range(3):
            model(x)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_output = model(x)

    def replay():
        graph.replay()
        return static_output  # held here so that the captured output's memory stays reserved

    return replay


def measure_config(torch, device: Device, analysis: Analysis, settings: Settings, build: Callable,
                   overhead_ms: float, peak: MatmulPeak | None) -> Result:
    network, shape, batch, dtype = analysis.network, analysis.input_shape, analysis.batch, analysis.dtype
    torch.manual_seed(0)
    model = build(analysis).eval().to(device=device.name, dtype=torch_dtype(torch, dtype))
    x = torch.randn((batch, *shape), device=device.name, dtype=torch_dtype(torch, dtype))
    if settings.channels_last and x.dim() == 4:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    fn = forward(torch, model, x, settings)
    warm_up(device, fn, settings)
    resident, peak_bytes = device.memory(fn)
    stats = time_region(device, fn, replace(settings, warmup_iters=0, warmup_seconds=0.0))
    return Result(
        network.name, batch, dtype, tuple(shape), stats, analysis.totals.macs,
        peak.tflops if peak else None, peak_bytes, resident, analysis.weights_bytes,
        analysis.activation_bytes, analysis.peak_activation_bytes, overhead_ms,
    )


# ---- the run ---------------------------------------------------------------------------

def environment(torch, settings: Settings) -> dict[str, Any]:
    from .. import __version__

    env: dict[str, Any] = {
        "device": settings.device, "archcalc": __version__, "torch": torch.__version__,
        "python": platform.python_version(), "platform": platform.platform(),
        "time_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "timer": settings.timer, "threads": torch.get_num_threads(),
    }
    if settings.device == "cuda":
        props = torch.cuda.get_device_properties(0)
        env.update({
            "device_name": torch.cuda.get_device_name(0), "capability": f"{props.major}.{props.minor}",
            "gpu_memory_bytes": props.total_memory, "l2_bytes": getattr(props, "L2_cache_size", None),
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(), "driver": nvidia_driver(),
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32,
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
        })
    else:
        env["device_name"] = cpu_name()
    return env


def nvidia_driver() -> str | None:
    tool = shutil.which("nvidia-smi")
    if not tool:
        return None
    try:
        done = subprocess.run([tool, "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip().splitlines()[0] if done.stdout.strip() else None


def physical_cores() -> int:
    """Physical CPU cores (hyper-threads not counted), from /proc/cpuinfo; else the logical count."""
    import os

    cores, socket = set(), "0"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "physical id":
                socket = value.strip()
            elif key.strip() == "core id":
                cores.add((socket, value.strip()))
    except OSError:
        pass
    return len(cores) or os.cpu_count() or 1


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


Progress = Callable[[int, int, str], None]


def run(analyses: Sequence[Analysis], batches: Sequence[int], dtypes: Sequence[str], settings: Settings,
        build: Callable | None = None, progress: Progress | None = None) -> Run:
    """Measure every (network, dtype, batch) of the analysed networks; on Ctrl-C, return what was measured so far.

    `build` makes the torch module from an analysis (archcalc.torch.build.build_torch by default).
    """
    torch = require_torch()
    check_settings(torch, settings)
    if build is None:
        from .build import build_torch

        build = build_torch
    if settings.device == "cpu":
        settings = replace(settings, threads=settings.threads or physical_cores())
        torch.set_num_threads(settings.threads)
    device = make_device(torch, settings)
    state = Run(environment(torch, settings), settings, len(analyses) * len(batches) * len(dtypes))
    configs = [a.scaled(b, d) for a in analyses for d in dtypes for b in batches]
    try:
        with torch.inference_mode():
            overhead = time_region(device, lambda: None, settings)
            state = replace(state, overhead=overhead)
            for dtype in dtypes:
                state = replace(state, peaks=(*state.peaks, measure_matmul(torch, device, dtype, settings)))
            for done, config in enumerate(configs):
                if progress:
                    progress(done, len(configs), f"{config.network.name} batch {config.batch} {config.dtype}")
                state = _one(torch, device, state, config, build, overhead.median_ms)
            if progress:
                progress(len(configs), len(configs), "done")
    except KeyboardInterrupt:
        state = replace(state, interrupted=True)
    finally:
        device.release()
    return state


def _one(torch, device: Device, state: Run, analysis: Analysis, build: Callable, overhead_ms: float) -> Run:
    network, batch, dtype = analysis.network, analysis.batch, analysis.dtype
    try:
        result = measure_config(torch, device, analysis, state.settings, build, overhead_ms, state.peak(dtype))
    except (RuntimeError, NotImplementedError, SpecError) as exc:  # out of memory, an op missing at a dtype
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return replace(state, failures=(*state.failures, Failure(network.name, batch, dtype, message)))
    finally:
        if state.settings.compile:
            torch._dynamo.reset()
        device.release()
    return replace(state, results=(*state.results, result))
