"""Timing helpers shared by the engines: CPU and CUDA timers, copy bandwidth, peak memory.

CPU: ``torch.utils.benchmark.Timer`` with the thread count fixed and recorded
(``blocked_autorange`` by default, ``adaptive_autorange`` on request).
CUDA: warm-up, synchronize, then one pair of ``torch.cuda.Event`` per repeat, with the L2 cache
flushed before each repeat when the inputs are small enough to stay cached.
Times are seconds per call; the spread is the interquartile range (IQR) of the repeats.
"""

from __future__ import annotations

import contextlib
import functools
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

#: The CPU clock (seconds); tests may replace it with a clock that counts work instead.
clock: Callable[[], float] = time.perf_counter
#: CPU time of the calling thread (seconds): what other processes on the machine cannot move.
thread_clock: Callable[[], float] = time.thread_time

#: Bytes of the copy used to probe a device's bandwidth (well beyond CPU caches and a GPU's L2).
COPY_PROBE_BYTES = {"cpu": 64 * 2**20, "cuda": 512 * 2**20}


@dataclass(frozen=True)
class Timing:
    """The result of timing one callable: seconds per call, median and IQR over repeats."""

    median: float
    iqr: float
    times: tuple[float, ...]  # seconds per call, one entry per repeat (block)
    calls_per_repeat: int
    device: str
    threads: int
    method: str
    extra: dict = field(default_factory=dict)

    @property
    def repeats(self) -> int:
        """Number of repeats that the median and IQR are taken over."""
        return len(self.times)

    def as_dict(self) -> dict:
        """Plain fields for a figure's ``extra``."""
        return {
            "median_s": self.median,
            "iqr_s": self.iqr,
            "repeats": self.repeats,
            "calls_per_repeat": self.calls_per_repeat,
            "threads": self.threads,
            "timer": self.method,
            **self.extra,
        }


def device_type(device: str | torch.device) -> str:
    """``"cpu"`` or ``"cuda"`` for a device spec; anything else is an error."""
    kind = torch.device(device).type
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"expected device 'cpu' or 'cuda', got {device!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available in this torch build/host")
    return kind


def iqr(values: list[float] | tuple[float, ...]) -> float:
    """Interquartile range (0 for fewer than two values)."""
    if len(values) < 2:
        return 0.0
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[2] - q[0]


def fix_threads(threads: int | None = None) -> int:
    """Fix torch's intra-op thread count (``None`` keeps the current one) and return it."""
    if threads is not None:
        if not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def time_cpu(
    fn: Callable[[], object],
    *,
    threads: int | None = None,
    min_run_time: float = 0.2,
    method: str = "blocked",
    max_run_time: float = 10.0,
) -> Timing:
    """Time ``fn()`` on the CPU with ``torch.utils.benchmark`` and a fixed thread count.

    ``method="blocked"`` runs ``blocked_autorange(min_run_time)``; ``"adaptive"`` runs
    ``adaptive_autorange`` until the IQR/median falls under 0.1 or ``max_run_time`` passes.
    """
    from torch.utils import benchmark

    threads = fix_threads(threads)
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads, timer=clock)
    if method == "blocked":
        m = timer.blocked_autorange(min_run_time=min_run_time)
    elif method == "adaptive":
        m = timer.adaptive_autorange(threshold=0.1, min_run_time=min_run_time, max_run_time=max_run_time)
    else:
        raise ValueError(f"timing method must be 'blocked' or 'adaptive', got {method!r}")
    times = tuple(float(t) for t in m.times)
    return Timing(
        median=float(m.median),
        iqr=iqr(times),
        times=times,
        calls_per_repeat=int(m.number_per_run),
        device="cpu",
        threads=threads,
        method=f"torch.utils.benchmark.{method}_autorange",
    )


#: Elements of the control workload's buffer (1 MiB of float32: stays in a CPU's L2/L3).
CONTROL_ELEMENTS = 2**18


def control_workload(device: str | torch.device = "cpu") -> Callable[[], object]:
    """A fixed workload timed beside every operation: tanh, scale and round over a fixed buffer.

    It does what quantizers do (elementwise maths over a buffer) and never changes, so its time
    moves only with the machine (load, clock, other jobs); an operation's time divided by it,
    measured in the same moments, is what the nightly gate judges.
    """
    gen = torch.Generator().manual_seed(0)
    buf = torch.randn(CONTROL_ELEMENTS, generator=gen).to(device)
    out = torch.empty_like(buf)

    def control() -> object:
        torch.tanh(buf, out=out)
        out.mul_(3.5)
        return out.round_()

    return control


#: The quantile of each series' per-round times that the relative time is taken on.
LOW_QUANTILE = 0.25


def low_quantile(values: list[float] | tuple[float, ...], q: float = LOW_QUANTILE) -> float:
    """The ``q`` quantile of ``values`` (linear interpolation)."""
    import numpy as np

    return float(np.quantile(np.asarray(values, dtype=float), q))


#: The most that ``load_factor`` stretches a limit by.
MAX_LOAD_FACTOR = 8.0


def load_factor(seconds: float = 0.25) -> float:
    """How much slower than on an idle core work runs here now: the control workload's wall time
    over its thread CPU time for ``seconds`` (the share of a core this process gets), 1 to
    ``MAX_LOAD_FACTOR``. Time limits are multiplied by it so that a loaded machine does not
    time out cells that an idle one finishes."""
    work = control_workload("cpu")
    with torch.inference_mode():
        w0, c0 = clock(), thread_clock()
        while clock() - w0 < seconds:
            work()
        wall, cpu = clock() - w0, thread_clock() - c0
    if cpu <= 0:
        return 1.0
    return min(MAX_LOAD_FACTOR, max(1.0, wall / cpu))


@dataclass(frozen=True)
class Interleaved:
    """An operation and the control timed in alternating blocks; ``ratios`` pairs one of each
    (elapsed time), ``cpu_ratios`` the same on the calling thread's CPU clock (CPU only)."""

    op: Timing
    control: Timing
    ratios: tuple[float, ...]
    cpu_ratios: tuple[float, ...] | None = None

    @property
    def relative(self) -> float:
        """Operation time / control time on elapsed time: the ratio of the two series' lower
        quartiles over rounds (time taken by other processes only adds to a block, so each series'
        low quantile approaches its unloaded time; interleaving divides out what slows both)."""
        return low_quantile(self.op.times) / low_quantile(self.control.times)

    @property
    def cpu_relative(self) -> float | None:
        """The same ratio on the thread's CPU clock (None on CUDA): a diagnostic; where it differs
        from ``relative``, the operation waits (sleep, I/O, a lock, other threads) rather than computes."""
        return None if self.cpu_ratios is None else statistics.median(self.cpu_ratios)


def time_interleaved(
    fn: Callable[[], object],
    control: Callable[[], object],
    device: str | torch.device = "cpu",
    *,
    threads: int | None = None,
    min_run_time: float = 0.2,
    rounds: int = 9,
) -> Interleaved:
    """Time ``fn`` and ``control`` in ``rounds`` alternating blocks (ABBA order), each block about
    ``min_run_time / rounds / 2`` seconds, so that both see the same moments of the machine.

    Every block is timed on elapsed time, what a user waits for: the wall clock on the CPU; on
    CUDA the wall clock between two synchronizes, i.e. device time plus the host's time per call.
    On the CPU each block is also timed on the calling thread's CPU clock (``cpu_ratios``), a
    diagnostic that tells waiting from computing; it never makes the verdict.
    """
    if not isinstance(rounds, int) or rounds < 3:
        raise ValueError(f"rounds must be an integer >= 3, got {rounds!r}")
    block = max(min_run_time / rounds / 2, 1e-3)
    cuda = device_type(device) == "cuda"
    threads = fix_threads(threads)
    if cuda:

        def run_block(f: Callable[[], object], n: int) -> tuple[float, float]:
            torch.cuda.synchronize(device)
            w0 = clock()
            for _ in range(n):
                f()
            torch.cuda.synchronize(device)
            t = (clock() - w0) / n
            return t, t

        method = "interleaved blocks, wall clock between synchronizes"
    else:

        def run_block(f: Callable[[], object], n: int) -> tuple[float, float]:
            w0, c0 = clock(), thread_clock()
            for _ in range(n):
                f()
            return (clock() - w0) / n, (thread_clock() - c0) / n

        method = "interleaved blocks, wall clock (thread CPU time kept as a diagnostic)"

    def calls(f: Callable[[], object]) -> int:
        one = min(run_block(f, 1)[0] for _ in range(3))
        return max(1, min(100_000, int(round(block / max(one, 1e-9)))))

    n_fn, n_ctl = calls(fn), calls(control)
    op_times, ctl_times, op_cpu, ctl_cpu = [], [], [], []
    for r in range(rounds):
        order = ((fn, n_fn), (control, n_ctl)) if r % 4 in (0, 3) else ((control, n_ctl), (fn, n_fn))
        for f, n in order:
            wall, cpu = run_block(f, n)
            if f is fn:
                op_times.append(wall)
                op_cpu.append(cpu)
            else:
                ctl_times.append(wall)
                ctl_cpu.append(cpu)
    if min(ctl_times) <= 0:
        raise RuntimeError("the control workload took no measurable time; the clock does not advance")
    ratios = tuple(a / b for a, b in zip(op_times, ctl_times, strict=True))
    cpu_ratios = None
    if not cuda and min(ctl_cpu) > 0:
        cpu_ratios = tuple(a / b for a, b in zip(op_cpu, ctl_cpu, strict=True))

    def pack(times: list[float], n: int) -> Timing:
        return Timing(
            median=statistics.median(times),
            iqr=iqr(times),
            times=tuple(times),
            calls_per_repeat=n,
            device="cpu" if not cuda else str(torch.device(device)),
            threads=threads,
            method=method,
            extra={
                "rounds": rounds,
                "ratio_clock": "wall",
                "ratio_estimator": f"q{LOW_QUANTILE:g} / q{LOW_QUANTILE:g}",
            },
        )

    return Interleaved(
        op=pack(op_times, n_fn), control=pack(ctl_times, n_ctl), ratios=ratios, cpu_ratios=cpu_ratios
    )


def l2_cache_bytes(device: str | torch.device = "cuda") -> int:
    """The GPU's L2 size in bytes (0 where unknown)."""
    props = torch.cuda.get_device_properties(torch.device(device))
    return int(getattr(props, "L2_cache_size", 0) or 0)


def time_cuda(
    fn: Callable[[], object],
    *,
    device: str | torch.device = "cuda",
    warmup: int = 5,
    repeats: int = 50,
    flush_l2: bool = True,
) -> Timing:
    """Time ``fn()`` on a GPU with CUDA events after ``warmup`` calls.

    Each repeat is one call between a pair of events on the current stream; with ``flush_l2``
    a buffer twice the L2 size is overwritten before each repeat (outside the events), so that
    small inputs are read from device memory as they would be in a model.
    """
    if warmup < 0 or repeats < 1:
        raise ValueError(f"expected warmup >= 0 and repeats >= 1, got warmup={warmup}, repeats={repeats}")
    device = torch.device(device)
    flush = None
    if flush_l2:
        size = max(2 * l2_cache_bytes(device), 8 * 2**20)
        flush = torch.empty(size, dtype=torch.uint8, device=device)
    with torch.cuda.device(device):
        for _ in range(warmup):
            fn()
        torch.cuda.synchronize(device)
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
        for start, end in zip(starts, ends, strict=True):
            if flush is not None:
                flush.zero_()
            start.record()
            fn()
            end.record()
        torch.cuda.synchronize(device)
    times = tuple(s.elapsed_time(e) / 1e3 for s, e in zip(starts, ends, strict=True))
    return Timing(
        median=statistics.median(times),
        iqr=iqr(times),
        times=times,
        calls_per_repeat=1,
        device=str(device),
        threads=torch.get_num_threads(),
        method="cuda.Event",
        extra={"warmup": warmup, "l2_flushed": flush is not None},
    )


def time_fn(
    fn: Callable[[], object],
    device: str | torch.device = "cpu",
    *,
    threads: int | None = None,
    min_run_time: float = 0.2,
    method: str = "blocked",
    warmup: int = 5,
    repeats: int = 50,
    flush_l2: bool = True,
) -> Timing:
    """Time ``fn()`` on ``device`` with the timer that suits it (CPU or CUDA)."""
    if device_type(device) == "cuda":
        return time_cuda(fn, device=device, warmup=warmup, repeats=repeats, flush_l2=flush_l2)
    return time_cpu(fn, threads=threads, min_run_time=min_run_time, method=method)


def time_first_call(fn: Callable[[], object], device: str | torch.device = "cpu") -> float:
    """Wall seconds of one call, synchronized on a GPU (for compile time, measured apart)."""
    cuda = device_type(device) == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
    t0 = clock()
    fn()
    if cuda:
        torch.cuda.synchronize(device)
    return clock() - t0


@functools.lru_cache(maxsize=8)
def _copy_bandwidth(device: str, nbytes: int, threads: int) -> float:
    src = torch.ones(nbytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    t = time_fn(lambda: dst.copy_(src), device, threads=threads, min_run_time=0.2, repeats=20, flush_l2=False)
    return 2 * nbytes / t.median / 1e9  # read the source, write the destination


def copy_bandwidth(device: str | torch.device = "cpu", nbytes: int | None = None) -> float:
    """A device's copy bandwidth in GB/s (bytes read + written per second), measured here once.

    The probe is a ``copy_`` of ``nbytes`` (default ``COPY_PROBE_BYTES``), timed like every other
    operation in this process, at the current thread count; the median is returned and cached.
    """
    kind = device_type(device)
    nbytes = int(nbytes or COPY_PROBE_BYTES[kind])
    name = "cpu" if kind == "cpu" else str(torch.device(device))
    return _copy_bandwidth(name, nbytes, torch.get_num_threads())


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence C++ writes to fd 2 (the profiler logs its start and stop there)."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def _cpu_peak_bytes(fn: Callable[[], object]) -> int | None:
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    try:  # the allocation records of the profiler's kineto results (not a stable API)
        events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
        events.sort(key=lambda e: e.start_ns())
        cpu = torch.autograd.DeviceType.CPU
        current = peak = 0
        for e in events:
            if e.device_type() == cpu:
                current += e.nbytes()
                peak = max(peak, current)
    except (AttributeError, TypeError):
        return None
    return peak


def peak_memory(fn: Callable[[], object], device: str | torch.device = "cpu") -> int | None:
    """Peak bytes allocated by one call of ``fn()`` above what was allocated before it.

    CUDA: ``torch.cuda.max_memory_allocated`` after a reset. CPU: the allocation timeline that
    ``torch.profiler`` records with ``profile_memory=True`` (tensor memory only, not Python objects);
    None where this torch's profiler does not expose it.
    """
    if device_type(device) == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return max(0, int(torch.cuda.max_memory_allocated(device)) - base)
    return _cpu_peak_bytes(fn)


__all__ = [
    "CONTROL_ELEMENTS",
    "COPY_PROBE_BYTES",
    "Interleaved",
    "control_workload",
    "time_interleaved",
    "Timing",
    "copy_bandwidth",
    "device_type",
    "fix_threads",
    "iqr",
    "l2_cache_bytes",
    "peak_memory",
    "time_cpu",
    "time_cuda",
    "time_first_call",
    "time_fn",
]
