"""FSQ speed benchmark: vqbench's FSQ against ``vector_quantize_pytorch.FSQ``, eager and compiled.

``python -m vqbench.suite.fsq_speed`` measures, in one process and interleaved in rounds so that a
busy machine slows every contender alike, each operation through the public classes:

- ``inference``: forward without grad, float32, on 1M vectors for levels [8,5,5,5], [8,8,8,6,5]
  and [8,8,8,5,5,5] (every vqbench path), and a size sweep for [8,5,5,5];
- ``encode``: indices only (upstream's forward indices, compiled on their own so that the
  compiler may drop the codes; vqbench's ``FSQ.encode``, whose kernels write no codes);
- ``decode``: ``indices_to_codes`` at 1M and 4096 indices;
- ``training``: forward + backward through the straight-through estimator;
- ``model``: a small model (linear -> FSQ -> linear) compiled whole with ``torch.compile``, with
  vqbench's FSQ and with upstream's, forward and training step;
- peak memory of inference against the bytes of its outputs;
- on a GPU (``--device cuda``): the fused kernel's effective bandwidth against a device copy
  measured in the same process, at 16M vectors, and the host time per forward call.

The anchor is upstream under ``torch.compile`` (default mode, one compiled callable per
operation, levels and size, so every shape is compiled static); its compile time (the first call)
is reported apart. Each figure carries its ratio against eager upstream (``ratio``) and against
compiled upstream (``ratio_compiled``), and a goals table prints each ratio against its goal.
CPU times come from ``torch.utils.benchmark`` with the thread count fixed and printed; GPU times
from CUDA events after warm-up (``vqbench.suite.timing``). ``--json PATH`` writes every figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from vqbench.suite.timing import copy_bandwidth, iqr, peak_memory, time_cpu, time_cuda

PRESETS = ([8, 5, 5, 5], [8, 8, 8, 6, 5], [8, 8, 8, 5, 5, 5])
SECTIONS = ("inference", "encode", "decode", "training", "model", "per-call")
#: The per-call section: sizes where a tokenizer calls FSQ once per step (16: the fixed cost alone).
PER_CALL_SIZES = (16, 1024, 4096, 65536)
PER_CALL_OPS = ("forward-grad", "training")
#: Per-call goals on the CPU (1 thread, [8,5,5,5]): (op, vectors) -> anchor -> ratio.
PER_CALL_GOALS = {
    ("forward-grad", 16): {"upstream": 3.0},
    ("training", 16): {"upstream": 2.0},
    ("training", 4096): {"upstream": 2.0, "upstream-compiled": 2.0},
    ("training", 65536): {"upstream": 2.5},
}
#: CUDA: sizes and operations of the device-time section, each against compiled upstream.
CUDA_SIZES = (4096, 2**20, 2**24)
CUDA_OPS = ("inference", "forward-grad", "training", "encode", "decode")
DECODE_SMALL = 4096
MODEL_VECTORS = 2**18
MODEL_WIDTH = 64
GOALS = {
    "cpu": {"inference": 4.0, "encode": 4.0, "decode": 3.0, "decode_small": 1.0, "training": 2.0},
    "cuda": {"inference": 1.2, "encode": 1.2, "decode": 1.2, "decode_small": 1.2, "training": 1.2},
    "model": 1.0,
    "gpu_copy_fraction": 0.80,
    "gpu_vs_eager": 5.0,
    "gpu_host_us": 20.0,
}
UPSTREAM = "upstream"
COMPILED = "upstream-compiled"


@dataclass
class Figure:
    """One measured figure of one contender."""

    section: str
    levels: list[int]
    vectors: int
    contender: str
    path: str  # the path that ran (vqbench's ``last_backend``; "upstream" for the reference package)
    median_s: float | None = None
    iqr_s: float | None = None
    repeats: int = 0
    vectors_per_s: float | None = None
    ratio: float | None = None  # against eager upstream in the same section, levels and size
    ratio_compiled: float | None = None  # against compiled upstream there
    compile_s: float | None = None  # first call of a compiled contender, compile included
    extra: dict[str, Any] = field(default_factory=dict)


# -- contenders ------------------------------------------------------------------------------


def _upstream(levels: list[int], device: str) -> torch.nn.Module:
    from vector_quantize_pytorch import FSQ as UpstreamFSQ

    return UpstreamFSQ(levels).to(device)


def _ours(levels: list[int], device: str, path: str = "auto") -> torch.nn.Module:
    from vqbench.quantizers.fsq import FSQ

    return FSQ(levels, backend=path).to(device)


def _codes(out):
    """Codes of an FSQ call: ``(out, indices)`` of upstream and of vqbench's FSQ, or a named output."""
    return out[0]


def _indices(out):
    return out[1]


@dataclass
class Contender:
    """A timed callable and what to report about it."""

    fn: Callable[[], object]
    module: torch.nn.Module | None = None  # read for vqbench's ``last_backend`` after the calls
    path: str = UPSTREAM
    compiled: bool = False


def _path_of(c: Contender) -> str:
    if c.module is not None and hasattr(c.module, "last_backend"):
        return str(getattr(c.module, "last_backend", None) or "?")
    return c.path


def _compile(fn):
    """``torch.compile`` in its default mode, specialised to the one shape it is timed on."""
    return torch.compile(fn, dynamic=False)


def _decode_path(name: str, device: str) -> str:
    """Which decode runs for vqbench's path ``name``: the fused kernel where one can run."""
    from vqbench.quantizers.fsq import cpu as _fsq_cpu
    from vqbench.quantizers.fsq import triton as _fsq_triton

    if name == "reference":
        return "reference"
    if device == "cpu" and _fsq_cpu.available():
        return "fsq_decode: C kernel"
    if device == "cuda" and _fsq_triton.available(device):
        return "fsq_decode: Triton"
    return "fsq_decode: torch"


def _inputs(n: int, d: int, device: str, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(1, n, d, generator=gen) * 1.5).to(device)


def _no_grad(fn: Callable[[], object]) -> Callable[[], object]:
    def run():
        with torch.no_grad():
            return fn()

    return run


def _contenders(section: str, levels: list[int], n: int, device: str, paths: list[str], compiled: bool):
    """The contenders of one section, levels and size (upstream eager, upstream compiled, vqbench)."""
    d = len(levels)
    up = _upstream(levels, device)
    out: dict[str, Contender] = {}
    if section in ("inference", "encode"):
        x = _inputs(n, d, device)
        pick = (lambda o: o) if section == "inference" else _indices
        out[UPSTREAM] = Contender(_no_grad(lambda: pick(up(x))))
        if compiled:
            step = _compile(lambda t: pick(up(t)))
            out[COMPILED] = Contender(_no_grad(lambda: step(x)), path=COMPILED, compiled=True)
        for name in paths:
            m = _ours(levels, device, name)
            call = m.encode if section == "encode" else (lambda t, m=m: pick(m(t)))  # encode: no codes
            out[f"vqbench:{name}"] = Contender(_no_grad(lambda call=call: call(x)), m)
    elif section == "decode":
        with torch.no_grad():
            idx = up(_inputs(n, d, device))[1]
        out[UPSTREAM] = Contender(_no_grad(lambda: up.indices_to_codes(idx)))
        if compiled:
            dec = _compile(up.indices_to_codes)
            out[COMPILED] = Contender(_no_grad(lambda: dec(idx)), path=COMPILED, compiled=True)
        for name in paths:
            m = _ours(levels, device, name)
            fn = _no_grad(lambda m=m: m.indices_to_codes(idx))
            out[f"vqbench:{name}"] = Contender(fn, path=_decode_path(name, device))
    elif section == "training":
        x = _inputs(n, d, device).requires_grad_()
        grad = _inputs(n, d, device, seed=1)

        def train(call):
            def step():
                x.grad = None
                _codes(call(x)).backward(grad)

            return step

        out[UPSTREAM] = Contender(train(up.train()))
        if compiled:
            out[COMPILED] = Contender(train(_compile(up)), path=COMPILED, compiled=True)
        for name in paths:
            m = _ours(levels, device, name).train()
            out[f"vqbench:{name}"] = Contender(train(m), m)
    else:
        raise ValueError(f"unknown section {section!r}; expected one of {SECTIONS}")
    return out


class SmallModel(torch.nn.Module):
    """linear -> FSQ -> linear: the smallest model that puts a quantizer between two layers."""

    def __init__(self, fsq: torch.nn.Module, width: int, d: int) -> None:
        super().__init__()
        self.encoder = torch.nn.Linear(width, d)
        self.fsq = fsq
        self.decoder = torch.nn.Linear(d, width)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        codes, indices = self.fsq(self.encoder(x))[:2]
        return self.decoder(codes), indices


def _model_contenders(levels: list[int], n: int, device: str, train: bool) -> dict[str, Contender]:
    """Both models compiled whole (same seed, same weights); vqbench's must run its fused operator."""
    out = {}
    x = _inputs(n, MODEL_WIDTH, device, seed=2)
    grad = _inputs(n, MODEL_WIDTH, device, seed=3)
    for name, fsq in ((COMPILED, _upstream(levels, device)), ("vqbench-compiled", _ours(levels, device))):
        torch.manual_seed(0)
        model = SmallModel(fsq, MODEL_WIDTH, len(levels)).to(device)
        model.train(train)
        compiled = _compile(model)
        if train:

            def fn(c=compiled, m=model):
                m.zero_grad(set_to_none=True)
                c(x)[0].backward(grad)

        else:
            fn = _no_grad(lambda c=compiled: c(x))
        out[name] = Contender(fn, path=name, compiled=True)
    return out


# -- timing ------------------------------------------------------------------------------------


def _time(fn: Callable[[], object], device: str, threads: int, min_run_time: float) -> list[float]:
    """Seconds per call of every repeat (CPU: benchmark blocks; GPU: one event pair per call)."""
    if device == "cuda":
        # L2 flushed before each call: 1M vectors in and out fit in an H200's L2
        return list(time_cuda(fn, warmup=10, repeats=50, flush_l2=True).times)
    return list(time_cpu(fn, threads=threads, min_run_time=min_run_time).times)


def _first_call(fn: Callable[[], object], device: str) -> float:
    """Seconds of the first call (for a compiled contender: compile and run)."""
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _interleaved(
    contenders: dict[str, Contender], device: str, threads: int, rounds: int, min_run_time: float
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Time every contender in turn, ``rounds`` times over; pool each one's repeat times.

    Returns the times and the first-call seconds of the compiled contenders.
    """
    times: dict[str, list[float]] = {name: [] for name in contenders}
    first: dict[str, float] = {}
    for name, c in contenders.items():  # warm-up: compile, thresholds, kernel build, allocator
        seconds = _first_call(c.fn, device)
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
                path=_path_of(contenders[name]),
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
    contenders = _contenders(section, list(levels), n, device, paths, compiled)
    times, first = _interleaved(contenders, device, threads, rounds, min_run_time)
    return _figures(section, levels, n, contenders, times, first)


def bench_inference(levels, n, device, threads, rounds, min_run_time, paths, compiled=True) -> list[Figure]:
    """Forward without grad, float32."""
    return bench("inference", levels, n, device, threads, rounds, min_run_time, paths, compiled)


def _runs_fused_op(fn: Callable[[], object]) -> bool:
    """Whether one call of ``fn`` dispatches vqbench's custom operator (seen by the profiler)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return any(e.key.startswith("vqbench::fsq_quantize") for e in prof.key_averages())


def bench_model(levels, n, device, threads, rounds, min_run_time) -> list[Figure]:
    """The small model compiled whole, forward and training step; whether the fused operator ran."""
    figures = []
    for section, train in (("model-inference", False), ("model-training", True)):
        torch._dynamo.reset()
        contenders = _model_contenders(list(levels), n, device, train)
        times, first = _interleaved(contenders, device, threads, rounds, min_run_time)
        fused = _runs_fused_op(contenders["vqbench-compiled"].fn)
        contenders["vqbench-compiled"].path = "compiled, fused op" if fused else "compiled, no fused op"
        new = _figures(section, levels, n, contenders, times, first)  # vs compiled: the upstream model
        for f in new:
            f.extra["fused_op"] = fused
        figures += new
    return figures


def bench_memory(levels, n, device, paths) -> list[Figure]:
    """Peak bytes allocated by one inference call, against the bytes of its outputs."""
    modules = {UPSTREAM: _upstream(levels, device)}
    modules.update({f"vqbench:{name}": _ours(levels, device, name) for name in paths})
    x = _inputs(n, len(levels), device)
    out = []
    with torch.no_grad():
        for name, m in modules.items():
            result = m(x)
            codes, indices = _codes(result), _indices(result)
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
    m = _ours(levels, "cuda", path)
    x = _inputs(n, len(levels), "cuda")
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


def _per_call_contenders(op: str, levels: list[int], n: int, device: str, compiled: bool):
    """vqbench (auto), eager upstream and compiled upstream for one operation at one size."""
    d = len(levels)
    x = _inputs(n, d, device).requires_grad_()
    grad = _inputs(n, d, device, seed=1)
    modules = {UPSTREAM: _upstream(levels, device).train(), "vqbench": _ours(levels, device).train()}
    calls: dict[str, Callable] = dict(modules)
    if compiled:
        calls[COMPILED] = _compile(modules[UPSTREAM])
    out = {}
    for name, call in calls.items():
        if op == "forward-grad":

            def fn(call=call):
                return call(x)

        elif op == "training":

            def fn(call=call):
                x.grad = None
                _codes(call(x)).backward(grad)

        else:
            raise ValueError(f"unknown per-call operation {op!r}; expected one of {PER_CALL_OPS}")
        module = modules.get(name) if name == "vqbench" else None
        out[name] = Contender(fn, module, path=name, compiled=name == COMPILED)
    return out


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
            contenders = _per_call_contenders(op, list(levels), n, device, compiled)
            first, blocks = {}, {}
            for name, c in contenders.items():
                first[name] = _first_call(c.fn, device)
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


def _per_call_verdicts(figures) -> list[dict[str, Any]]:
    out = []
    for (op, n), anchors in PER_CALL_GOALS.items():
        f = _pick(figures, f"per-call {op}", "vqbench", PRESETS[0], n)
        if f is None:
            continue
        for anchor, target in anchors.items():
            value = f.ratio if anchor == UPSTREAM else f.ratio_compiled
            out.append(_goal(f"per call: {op} {n:,} vectors vs {anchor}", value, target, "x"))
    return out


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


def _cuda_contenders(op: str, levels: list[int], n: int):
    """vqbench (auto) and compiled upstream (and eager upstream) for one CUDA operation."""
    d = len(levels)
    x = _inputs(n, d, "cuda")
    xg = x.clone().requires_grad_()
    grad = _inputs(n, d, "cuda", seed=1)
    up, ours = _upstream(levels, "cuda").train(), _ours(levels, "cuda").train()
    with torch.no_grad():
        idx = up(x)[1]

    def make(m, compile_it: bool):
        if op == "inference":
            call = _compile(m) if compile_it else m
            return _no_grad(lambda: call(x))
        if op == "encode":
            enc = getattr(m, "encode", None) or (lambda t: m(t)[1])
            call = _compile(enc) if compile_it else enc
            return _no_grad(lambda: call(x))
        if op == "decode":
            call = _compile(m.indices_to_codes) if compile_it else m.indices_to_codes
            return _no_grad(lambda: call(idx))
        call = _compile(m) if compile_it else m
        if op == "forward-grad":
            return lambda: call(xg)

        def step():
            xg.grad = None
            _codes(call(xg)).backward(grad)

        return step

    return {
        "vqbench": Contender(make(ours, False), ours, path="vqbench"),
        UPSTREAM: Contender(make(up, False)),
        COMPILED: Contender(make(up, True), path=COMPILED, compiled=True),
    }


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
            contenders = _cuda_contenders(op, list(levels), n)
            measured = {name: cuda_call_times(c.fn) for name, c in contenders.items()}
            base = measured[COMPILED]
            for name, t in measured.items():
                f = Figure(f"cuda {op}", list(levels), n, name, _path_of(contenders[name]), t["device_s"])
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


def _cuda_verdicts(figures) -> list[dict[str, Any]]:
    out = []
    for f in figures:
        if not f.section.startswith("cuda ") or f.contender != "vqbench":
            continue
        what = f"{f.section} {f.vectors:,}"
        out.append(
            _goal(f"{what}: device time (L2 flushed) vs compiled upstream", f.ratio_compiled, 1.2, "x")
        )
        steady = f.extra["steady_ratio_compiled"]
        out.append(_goal(f"{what}: steady-state time per call vs compiled upstream", steady, 1.2, "x"))
        if f.section == "cuda inference" and f.vectors == 4096:
            us = f.extra["host_us"]
            out.append(
                {
                    "goal": "CUDA host time per forward call (4,096 vectors)",
                    "value": f"{us:.1f} us",
                    "target": f"<= {GOALS['gpu_host_us']:g} us",
                    "met": us <= GOALS["gpu_host_us"],
                }
            )
        if "copy_fraction" in f.extra:
            out.append(
                _goal(
                    f"{what}: forward against a device copy of its bytes", f.extra["copy_fraction"], 0.8, ""
                )
            )
    return out


def _environment(threads: int, device: str) -> dict[str, Any]:
    from vqbench.quantizers.fsq import cpu as _fsq_cpu
    from vqbench.quantizers.fsq import triton as _fsq_triton

    env: dict[str, Any] = {"threads": threads, "device": device, "torch": torch.__version__}
    try:
        from vqbench.results import environment_fingerprint

        fp = environment_fingerprint(threads=threads)
        keys = ("cpu", "cpu_count", "gpu", "vector_quantize_pytorch", "git_sha")
        env.update({k: fp[k] for k in keys if fp.get(k) is not None})
    except Exception as exc:  # the fingerprint is a nicety here, never a reason to fail
        env["fingerprint_error"] = f"{type(exc).__name__}: {exc}"
    env["cpu_kernel"] = "available" if _fsq_cpu.available() else _fsq_cpu.unavailable_reason()
    env["triton_kernel"] = "available" if _fsq_triton.available("cuda") else _fsq_triton.unavailable_reason()
    return env


# -- the run -----------------------------------------------------------------------------------


def run(
    *,
    device: str = "cpu",
    threads: int | None = None,
    vectors: int = 1_000_000,
    sweep: tuple[int, ...] = (2**12, 2**16, 2**18, 2**20, 2**22),
    rounds: int = 3,
    min_run_time: float = 0.3,
    sections: tuple[str, ...] = SECTIONS,
    compiled: bool = True,
    per_call_rounds: int = 21,
    per_call_sizes: tuple[int, ...] = PER_CALL_SIZES,
) -> dict[str, Any]:
    """Measure everything; return the environment, the figures and the goal verdicts.

    ``sections`` picks among :data:`SECTIONS` (inference and memory always run); ``compiled=False``
    leaves out the compiled contenders (and the compiled model), e.g. for a quick smoke run.
    """
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown sections {sorted(unknown)}; expected some of {SECTIONS}")
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _run(
            device,
            torch.get_num_threads(),
            vectors,
            sweep,
            rounds,
            min_run_time,
            tuple(sections),
            compiled,
            per_call_rounds,
            tuple(per_call_sizes),
        )
    finally:
        torch.set_num_threads(previous)


def _run(
    device, threads, vectors, sweep, rounds, min_run_time, sections, compiled, per_call_rounds, per_call_sizes
) -> dict[str, Any]:
    from vqbench.quantizers.fsq import FSQ

    paths = FSQ.available_backends(device)
    probe = FSQ(PRESETS[0]).to(device)
    with torch.no_grad():
        probe(_inputs(16, len(PRESETS[0]), device))
    auto_path = str(probe.last_backend)  # what backend="auto" runs here
    timing = dict(threads=threads, rounds=rounds, min_run_time=min_run_time)
    figures: list[Figure] = []
    for levels in PRESETS:
        figures += bench("inference", levels, vectors, device, paths=paths, compiled=compiled, **timing)
    sweep_paths = sorted({"torch", auto_path}, key=paths.index)
    for n in sweep:
        if n != vectors:
            figures += bench(
                "inference", PRESETS[0], n, device, paths=sweep_paths, compiled=compiled, **timing
            )
    for section in ("encode", "decode", "training"):
        if section not in sections:
            continue
        for levels in PRESETS:
            figures += bench(section, levels, vectors, device, paths=[auto_path], compiled=compiled, **timing)
            if section == "decode" and vectors != DECODE_SMALL:
                figures += bench(
                    section, levels, DECODE_SMALL, device, paths=[auto_path], compiled=compiled, **timing
                )
    if "model" in sections and compiled:
        figures += bench_model(PRESETS[0], min(vectors, MODEL_VECTORS), device, **timing)
    if "per-call" in sections and device == "cpu":
        figures += bench_per_call(PRESETS[0], per_call_sizes, device, per_call_rounds, compiled=compiled)
    figures += bench_memory(PRESETS[0], vectors, device, paths)
    if device == "cuda":
        figures += bench_gpu_bandwidth(PRESETS[0], 16 * 2**20, paths, compiled)
        figures += bench_host_time(PRESETS[0], DECODE_SMALL, auto_path)
        if "per-call" in sections:
            figures += bench_cuda(PRESETS[0])
    goals = _verdicts(figures, auto_path, vectors, device) + _per_call_verdicts(figures)
    return {
        "environment": _environment(threads, device),
        "auto_path": auto_path,
        "figures": figures,
        "goals": goals + _cuda_verdicts(figures),
    }


# -- goals -------------------------------------------------------------------------------------


def _pick(figures, section, contender, levels=PRESETS[0], vectors=None):
    for f in figures:
        if f.section == section and f.contender == contender and f.levels == list(levels):
            if vectors is None or f.vectors == vectors:
                return f
    return None


def _verdicts(figures, auto_path, vectors, device) -> list[dict[str, Any]]:
    name = f"vqbench:{auto_path}"
    goals = GOALS["cuda" if device == "cuda" else "cpu"]
    out = []
    for section in ("inference", "encode", "decode", "training"):
        sizes = [(vectors, goals[section])]
        if section == "decode" and vectors != DECODE_SMALL:
            sizes.append((DECODE_SMALL, goals["decode_small"]))
        for levels in PRESETS:
            for n, target in sizes:
                f = _pick(figures, section, name, levels, n)
                if f is not None:  # without the compiled anchor: listed as not measured
                    what = f"{section} [{','.join(map(str, levels))}] {n:,} vs upstream compiled"
                    out.append(_goal(what, f.ratio_compiled, target, "x"))
    for section in ("model-inference", "model-training"):
        f = _pick(figures, section, "vqbench-compiled")
        if f is not None:
            what = f"{section}: compiled model, vqbench's FSQ vs upstream's"
            if not f.extra.get("fused_op"):
                what += " (the fused operator did NOT run)"
            out.append(_goal(what, f.ratio_compiled, GOALS["model"], "x"))
    mem = _pick(figures, "memory", name)
    extra, outputs = mem.extra["extra_bytes"], mem.extra["output_bytes"]
    out.append(
        {
            "goal": "inference: no intermediate larger than the outputs",
            "value": f"{extra / 2**20:.1f} MiB above {outputs / 2**20:.1f} MiB of outputs",
            "target": "extra <= outputs",
            "met": extra <= outputs,
        }
    )
    if device == "cuda":
        gpu = _pick(figures, "inference", name, vectors=16 * 2**20)
        out.append(
            _goal(
                "GPU 16M: fraction of copy bandwidth",
                gpu.extra["copy_fraction"],
                GOALS["gpu_copy_fraction"],
                "",
            )
        )
        out.append(_goal("GPU inference 16M vs upstream eager", gpu.ratio, GOALS["gpu_vs_eager"], "x"))
        host = _pick(figures, "host", name, vectors=DECODE_SMALL)
        us = host.extra["host_us_per_call"]
        out.append(
            {
                "goal": f"GPU host time per forward call ({DECODE_SMALL:,} vectors)",
                "value": f"{us:.1f} us",
                "target": f"<= {GOALS['gpu_host_us']:g} us",
                "met": us <= GOALS["gpu_host_us"],
            }
        )
    return out


def _goal(what: str, value: float | None, target: float, unit: str) -> dict[str, Any]:
    return {
        "goal": what,
        "value": "not measured" if value is None else f"{value:.2f}{unit}",
        "target": f">= {target:g}{unit}",
        "met": value is not None and value >= target,
    }


# -- printing ----------------------------------------------------------------------------------

_TITLES = {
    "inference": "Inference (forward, no grad, float32)",
    "encode": "Encode (indices only)",
    "decode": "Decode (indices_to_codes)",
    "training": "Training step (forward + backward)",
    "model-inference": "Model linear -> FSQ -> linear, compiled whole: forward",
    "model-training": "Model linear -> FSQ -> linear, compiled whole: training step",
}


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _print(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 150, highlight=False)
    env = result["environment"]
    console.print(
        "vqbench FSQ speed  " + "  ".join(f"{k}={v}" for k, v in env.items() if v not in (None, "")),
        markup=False,
    )
    console.print(f"vqbench's FSQ with backend='auto' runs the {result['auto_path']} path here", markup=False)
    for section, title in _TITLES.items():
        rows = [f for f in result["figures"] if f.section == section and "copy_fraction" not in f.extra]
        if not rows:
            continue
        table = Table(title=title)
        cols = ("levels", "vectors", "contender", "path ran", "median ms", "IQR ms", "n", "M vec/s")
        cols += ("vs eager", "vs compiled", "compile s")
        for col in cols:
            table.add_column(
                col,
                justify="left" if col in ("contender", "path ran", "levels") else "right",
                overflow="fold",  # wrap, never cut with an ellipsis
            )
        for f in rows:
            table.add_row(
                ",".join(map(str, f.levels)),
                f"{f.vectors:,}",
                f.contender,
                f.path,
                f"{f.median_s * 1e3:.3f}",
                f"{f.iqr_s * 1e3:.3f}",
                str(f.repeats),
                f"{f.vectors_per_s / 1e6:.1f}",
                _fmt(f.ratio, ".2f") + ("x" if f.ratio is not None else ""),
                _fmt(f.ratio_compiled, ".2f") + ("x" if f.ratio_compiled is not None else ""),
                _fmt(f.compile_s, ".1f"),
            )
        console.print(table)
    _print_per_call(console, result["figures"])
    vectors = next((f.vectors for f in result["figures"] if f.section == "memory"), 0)
    table = Table(title=f"Peak memory of one inference call ({vectors:,} vectors, levels 8,5,5,5)")
    for col in ("contender", "path ran", "peak MiB", "outputs MiB", "extra MiB", "upstream / this"):
        table.add_column(col)
    for f in result["figures"]:
        if f.section == "memory":
            e = f.extra
            table.add_row(
                f.contender,
                f.path,
                f"{e['peak_bytes'] / 2**20:.2f}",
                f"{e['output_bytes'] / 2**20:.2f}",
                f"{e['extra_bytes'] / 2**20:.2f}",
                "" if f.ratio is None else f"{f.ratio:.2f}x",
            )
    console.print(table)
    gpu = [f for f in result["figures"] if "copy_fraction" in f.extra]
    if gpu:
        table = Table(title="GPU, 16M vectors: effective bandwidth against a device copy")
        for col in ("contender", "path ran", "median ms", "GB/s", "copy GB/s", "of copy", "vs eager"):
            table.add_column(col)
        for f in gpu:
            e = f.extra
            table.add_row(
                f.contender,
                f.path,
                f"{f.median_s * 1e3:.3f}",
                f"{e['effective_GBps']:.0f}",
                f"{e['copy_GBps']:.0f}",
                f"{e['copy_fraction']:.0%}",
                "" if f.ratio is None else f"{f.ratio:.2f}x",
            )
        console.print(table)
    table = Table(title=f"Goals of the fast FSQ paths ({env.get('device')}, {env.get('threads')} threads)")
    for col in ("goal", "measured", "target", "met"):
        table.add_column(col, overflow="fold")
    for g in result["goals"]:
        table.add_row(g["goal"], str(g["value"]), g["target"], "yes" if g["met"] else "NO")
    console.print(table)


def _print_per_call(console, figures) -> None:
    from rich.table import Table

    rows = [f for f in figures if f.section.startswith("per-call ")]
    if rows:
        table = Table(title="Per call (thread CPU time, median of interleaved rounds), levels 8,5,5,5")
        for col in ("operation", "vectors", "contender", "us per call", "calls per block", "rounds"):
            table.add_column(col, justify="left" if col in ("operation", "contender") else "right")
        table.add_column("vs eager", justify="right")
        table.add_column("vs compiled", justify="right")
        for f in rows:
            table.add_row(
                f.section.removeprefix("per-call "),
                f"{f.vectors:,}",
                f.contender,
                f"{f.median_s * 1e6:.1f}",
                str(f.extra.get("calls_per_block", "")),
                str(f.repeats),
                _fmt(f.ratio, ".2f") + ("x" if f.ratio is not None else ""),
                _fmt(f.ratio_compiled, ".2f") + ("x" if f.ratio_compiled is not None else ""),
            )
        console.print(table)
    rows = [f for f in figures if f.section.startswith("cuda ")]
    if rows:
        table = Table(title="CUDA per call: device time (L2 flushed), steady state, host, levels 8,5,5,5")
        cols = ("operation", "vectors", "contender", "device us", "steady us", "host us", "vs compiled")
        for col in cols + ("steady vs compiled", "of copy"):
            table.add_column(col)
        for f in rows:
            e = f.extra
            table.add_row(
                f.section.removeprefix("cuda "),
                f"{f.vectors:,}",
                f.contender,
                f"{e['device_s'] * 1e6:.1f}",
                f"{e['steady_s'] * 1e6:.1f}",
                f"{e['host_us']:.1f}",
                f"{f.ratio_compiled:.2f}x",
                f"{e['steady_ratio_compiled']:.2f}x",
                f"{e['copy_fraction']:.0%}" if "copy_fraction" in e else "",
            )
        console.print(table)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m vqbench.suite.fsq_speed``; exit 0 when every goal is met, else 1."""
    parser = argparse.ArgumentParser(
        prog="python -m vqbench.suite.fsq_speed", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's current)")
    parser.add_argument("--vectors", type=int, default=1_000_000, help="vectors for the headline ratios")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds per contender")
    parser.add_argument("--min-run-time", type=float, default=0.3, help="seconds per timing block (CPU)")
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated, among {','.join(SECTIONS)} (inference always runs)",
    )
    parser.add_argument("--no-compile", action="store_true", help="leave out the compiled contenders")
    parser.add_argument(
        "--per-call-rounds", type=int, default=21, help="interleaved rounds of the per-call section"
    )
    parser.add_argument("--quick", action="store_true", help="one round, a short sweep (a smoke run)")
    parser.add_argument("--json", default=None, help="write every figure to this JSON file")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.vectors < 1:
        parser.error(f"--vectors must be >= 1, got {args.vectors}")
    sections = tuple(s.strip() for s in args.sections.split(",") if s.strip())
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"--sections: unknown {unknown}; expected some of {','.join(SECTIONS)}")
    options: dict[str, Any] = dict(
        device=args.device,
        threads=args.threads,
        vectors=args.vectors,
        rounds=args.rounds,
        min_run_time=args.min_run_time,
        sections=sections,
        compiled=not args.no_compile,
        per_call_rounds=args.per_call_rounds,
    )
    if args.per_call_rounds < 1:
        parser.error(f"--per-call-rounds must be >= 1, got {args.per_call_rounds}")
    if args.quick:
        options.update(
            rounds=1,
            min_run_time=min(args.min_run_time, 0.1),
            sweep=(2**12, 2**16),
            per_call_rounds=3,
            per_call_sizes=(16, 4096),
        )
    result = run(**options)
    _print(result)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(
                {**result, "figures": [asdict(f) for f in result["figures"]]}, fh, indent=2, default=str
            )
    return 0 if all(g["met"] for g in result["goals"]) else 1


if __name__ == "__main__":
    sys.exit(main())
