"""The FSQ speed benchmark's measurements: each section timed with every contender, interleaved in rounds.

Timing comes from :mod:`vqbench.suite.timing` (``torch.utils.benchmark`` blocks on the CPU, CUDA
events after warm-up with the L2 flushed on a GPU); the per-call section counts the calling
thread's CPU time over blocks of calls.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from vqbench.suite.timing import copy_bandwidth, iqr, peak_memory, time_cuda, time_first_call, time_fn

from .common import COMPILED, CUDA_OPS, CUDA_SIZES, PER_CALL_OPS, UPSTREAM, Figure
from .contenders import (
    Contender,
    codes_of,
    cuda_contenders,
    indices_of,
    inputs,
    model_contenders,
    path_of,
    per_call_contenders,
    section_contenders,
    upstream_fsq,
    vqbench_fsq,
)


def _time(fn: Callable[[], object], device: str, threads: int, min_run_time: float) -> list[float]:
    """Seconds per call of every repeat (CPU: benchmark blocks; GPU: one event pair per call).

    On a GPU the L2 is flushed before each call: 1M vectors in and out fit in an H200's L2.
    """
    timing = time_fn(
        fn, device, threads=threads, min_run_time=min_run_time, warmup=10, repeats=50, flush_l2=True
    )
    return list(timing.times)


def _interleaved(
    contenders: dict[str, Contender], device: str, threads: int, rounds: int, min_run_time: float
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Time every contender in turn, ``rounds`` times over; pool each one's repeat times.

    Returns the times and the first-call seconds of the compiled contenders.
    """
    times: dict[str, list[float]] = {name: [] for name in contenders}
    first: dict[str, float] = {}
    for name, c in contenders.items():  # warm-up: compile, thresholds, kernel build, allocator
        seconds = time_first_call(c.fn, device)
        if c.compiled:
            first[name] = seconds
        c.fn()
    for _ in range(rounds):
        for name, c in contenders.items():
            times[name] += _time(c.fn, device, threads, min_run_time)
    return times, first


def _figures(section, levels, n, contenders, times, first) -> list[Figure]:
    out = []
    eager = statistics.median(times[UPSTREAM]) if UPSTREAM in times else None
    comp = statistics.median(times[COMPILED]) if COMPILED in times else None
    for name, ts in times.items():
        med = statistics.median(ts)
        out.append(
            Figure(
                section=section,
                levels=list(levels),
                vectors=n,
                contender=name,
                path=path_of(contenders[name]),
                median_s=med,
                iqr_s=iqr(ts),
                repeats=len(ts),
                vectors_per_s=n / med,
                ratio=(eager / med) if eager else None,
                ratio_compiled=(comp / med) if comp else None,
                compile_s=first.get(name),
            )
        )
    return out


def bench(section, levels, n, device, threads, rounds, min_run_time, paths, compiled=True) -> list[Figure]:
    """One section at one levels and size: every contender, interleaved."""
    if compiled:
        torch._dynamo.reset()  # fresh compile caches: each section compiles its own shapes
    contenders = section_contenders(section, list(levels), n, device, paths, compiled)
    times, first = _interleaved(contenders, device, threads, rounds, min_run_time)
    return _figures(section, levels, n, contenders, times, first)


def bench_inference(levels, n, device, threads, rounds, min_run_time, paths, compiled=True) -> list[Figure]:
    """Forward without grad, float32."""
    return bench("inference", levels, n, device, threads, rounds, min_run_time, paths, compiled)


def runs_fused_op(fn: Callable[[], object]) -> bool:
    """Whether one call of ``fn`` dispatches vqbench's custom operator (seen by the profiler)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return any(e.key.startswith("vqbench::fsq_quantize") for e in prof.key_averages())


def bench_model(levels, n, device, threads, rounds, min_run_time) -> list[Figure]:
    """The small model compiled whole, forward and training step; whether the fused operator ran."""
    figures = []
    for section, train in (("model-inference", False), ("model-training", True)):
        torch._dynamo.reset()
        contenders = model_contenders(list(levels), n, device, train)
        times, first = _interleaved(contenders, device, threads, rounds, min_run_time)
        fused = runs_fused_op(contenders["vqbench-compiled"].fn)
        contenders["vqbench-compiled"].path = "compiled, fused op" if fused else "compiled, no fused op"
        new = _figures(section, levels, n, contenders, times, first)  # vs compiled: the upstream model
        for f in new:
            f.extra["fused_op"] = fused
        figures += new
    return figures


def bench_memory(levels, n, device, paths) -> list[Figure]:
    """Peak bytes allocated by one inference call, against the bytes of its outputs."""
    modules = {UPSTREAM: upstream_fsq(levels, device)}
    modules.update({f"vqbench:{name}": vqbench_fsq(levels, device, name) for name in paths})
    x = inputs(n, len(levels), device)
    out = []
    with torch.no_grad():
        for name, m in modules.items():
            result = m(x)
            codes, indices = codes_of(result), indices_of(result)
            outputs = codes.numel() * codes.element_size() + indices.numel() * indices.element_size()
            peak = peak_memory(lambda m=m: m(x), device)
            out.append(
                Figure(
                    section="memory",
                    levels=list(levels),
                    vectors=n,
                    contender=name,
                    path=str(getattr(m, "last_backend", None) or UPSTREAM),
                    extra={"peak_bytes": peak, "output_bytes": outputs, "extra_bytes": peak - outputs},
                )
            )
    base = next(f for f in out if f.contender == UPSTREAM).extra["peak_bytes"]
    for f in out:
        f.ratio = base / f.extra["peak_bytes"] if f.extra["peak_bytes"] else None
    return out


def bench_host_time(levels, n, path, calls: int = 200) -> list[Figure]:
    """Host seconds per forward call on the GPU: ``calls`` calls issued with no synchronization.

    With a small input the device finishes each call before the host issues the next, so the wall
    time of the issuing loop is the host's own work per call (checks, dispatch, launches).
    """
    m = vqbench_fsq(levels, "cuda", path)
    x = inputs(n, len(levels), "cuda")
    with torch.no_grad():
        for _ in range(10):
            m(x)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(calls):
            m(x)
        host = (time.perf_counter() - start) / calls
        torch.cuda.synchronize()
    figure = Figure(
        "host", list(levels), n, f"vqbench:{path}", str(m.last_backend), median_s=host, repeats=calls
    )
    figure.extra["host_us_per_call"] = host * 1e6
    return [figure]


def bench_gpu_bandwidth(levels, n, paths, compiled=True) -> list[Figure]:
    """Effective bandwidth (input read + codes and indices written) against a device copy."""
    figures = bench_inference(levels, n, "cuda", torch.get_num_threads(), 1, 0.0, paths, compiled)
    copy = copy_bandwidth("cuda")
    moved = n * len(levels) * 4 * 2 + n * 4  # float32 in, float32 codes out, int32 index out
    for f in figures:
        gbps = moved / f.median_s / 1e9
        f.extra.update({"effective_GBps": gbps, "copy_GBps": copy, "copy_fraction": gbps / copy})
    return figures


# -- per call: the sizes where a tokenizer calls FSQ once per step ---------------------------------


def _thread_seconds_per_call(fn: Callable[[], object], calls: int) -> float:
    """Thread CPU seconds per call over ``calls`` calls (with 1 thread, all of a call's work)."""
    start = time.thread_time_ns()
    for _ in range(calls):
        fn()
    return (time.thread_time_ns() - start) / 1e9 / calls


def bench_per_call(
    levels, sizes, device: str, rounds: int, block_s: float = 0.02, compiled: bool = True
) -> list[Figure]:
    """Per-call time of forward with grad and of a training step, interleaved, in thread CPU time.

    Every round times each contender in turn over a block of calls (about ``block_s`` seconds, the
    same count of calls for every round); the median over rounds is the figure. Thread CPU time
    counts the calling thread's work only, so run with 1 thread (``--threads 1``).
    """
    if device != "cpu":
        raise ValueError(f"the per-call section times thread CPU time on the CPU, got device {device!r}")
    figures = []
    for n in sizes:
        for op in PER_CALL_OPS:
            torch._dynamo.reset()
            contenders = per_call_contenders(op, list(levels), n, device, compiled)
            first, blocks = {}, {}
            for name, c in contenders.items():
                first[name] = time_first_call(c.fn, device)
                for _ in range(3):
                    c.fn()
                one = _thread_seconds_per_call(c.fn, 5)
                blocks[name] = max(1, min(20000, int(block_s / max(one, 1e-7))))
            times: dict[str, list[float]] = {name: [] for name in contenders}
            for _ in range(rounds):
                for name, c in contenders.items():
                    times[name].append(_thread_seconds_per_call(c.fn, blocks[name]))
            compiled_first = {k: v for k, v in first.items() if contenders[k].compiled}
            new = _figures(f"per-call {op}", levels, n, contenders, times, compiled_first)
            for f in new:
                f.extra["calls_per_block"] = blocks[f.contender]
                f.extra["clock"] = "thread CPU time"
            figures += new
    return figures


# -- CUDA: device time with L2 flushed, steady state, host time ------------------------------------


def cuda_call_times(fn: Callable[[], object], *, repeats: int = 100, steady_calls: int = 200) -> dict:
    """Seconds per call of ``fn`` on the current CUDA device, three ways (after warm-up).

    - ``device_s``: median of one event pair per call, each call after a write of twice the L2
      (``vqbench.suite.timing.time_cuda``, as ``triton.testing.do_bench`` does), so no call finds
      its input in L2; the flush also queues work ahead of the call, so the host's launch cost
      stays hidden;
    - ``steady_s``: ``steady_calls`` calls back to back between two events, per call (L2 warm,
      host and device overlapping: what a training loop sees);
    - ``host_s``: the wall time of issuing ``steady_calls`` calls without waiting, per call.
    """
    device_s = statistics.median(time_cuda(fn, warmup=5, repeats=repeats, flush_l2=True).times)
    begin, finish = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    begin.record()
    host_start = time.perf_counter()
    for _ in range(steady_calls):
        fn()
    host_s = (time.perf_counter() - host_start) / steady_calls
    finish.record()
    torch.cuda.synchronize()
    steady_s = begin.elapsed_time(finish) / 1e3 / steady_calls
    return {"device_s": device_s, "steady_s": steady_s, "host_s": host_s}


def _device_copy_seconds(nbytes: int, repeats: int = 50) -> float:
    """Device seconds of one copy that reads and writes ``nbytes`` in all, L2 flushed before each."""
    src = torch.empty(nbytes // 2, dtype=torch.int8, device="cuda")
    dst = torch.empty_like(src)
    return cuda_call_times(lambda: dst.copy_(src), repeats=repeats, steady_calls=20)["device_s"]


def bench_cuda(levels, sizes=CUDA_SIZES, ops=CUDA_OPS) -> list[Figure]:
    """Each CUDA operation and size: device, steady-state and host time per call vs compiled upstream."""
    figures = []
    for n in sizes:
        for op in ops:
            torch._dynamo.reset()
            contenders = cuda_contenders(op, list(levels), n)
            measured = {name: cuda_call_times(c.fn) for name, c in contenders.items()}
            base = measured[COMPILED]
            for name, t in measured.items():
                f = Figure(f"cuda {op}", list(levels), n, name, path_of(contenders[name]), t["device_s"])
                f.vectors_per_s = n / t["device_s"]
                f.ratio_compiled = base["device_s"] / t["device_s"]
                f.extra.update(
                    {k: v for k, v in t.items()}
                    | {
                        "steady_ratio_compiled": base["steady_s"] / t["steady_s"],
                        "host_us": t["host_s"] * 1e6,
                    }
                )
                if op == "inference" and n == max(sizes):
                    moved = n * len(levels) * 4 * 2 + n * 4  # float32 in, codes out, int32 index out
                    f.extra["copy_fraction"] = _device_copy_seconds(moved) / t["device_s"]
                figures.append(f)
    return figures


__all__ = [
    "bench",
    "bench_cuda",
    "bench_gpu_bandwidth",
    "bench_host_time",
    "bench_inference",
    "bench_memory",
    "bench_model",
    "bench_per_call",
    "cuda_call_times",
    "runs_fused_op",
]
