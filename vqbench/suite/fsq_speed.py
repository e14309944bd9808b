"""FSQ speed benchmark: vqbench's FSQ paths and ``vector_quantize_pytorch.FSQ``, side by side.

``python -m vqbench.suite.fsq_speed`` measures, in one process and interleaved in rounds so that a
busy machine slows every contender alike:

- inference (forward, no grad, float32) on 1M vectors for levels [8,5,5,5], [8,8,8,6,5] and
  [8,8,8,5,5,5], and a size sweep for [8,5,5,5];
- a training step (forward + backward through the straight-through estimator);
- peak memory of inference against the bytes of its outputs;
- on a GPU (``--device cuda``): the fused kernel's effective bandwidth against a device copy
  measured in the same process, at 16M vectors.

It prints each ratio against upstream and whether the goals hold (inference >= 4x, training
>= 2x, no intermediate larger than the outputs; on a GPU >= 70% of copy bandwidth and >= 5x).
CPU times come from ``torch.utils.benchmark`` with the thread count fixed and printed; GPU times
from CUDA events after warm-up (``vqbench.suite.timing``). ``--json PATH`` writes every figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from vqbench.suite.timing import copy_bandwidth, iqr, peak_memory, time_cpu, time_cuda

PRESETS = ([8, 5, 5, 5], [8, 8, 8, 6, 5], [8, 8, 8, 5, 5, 5])
GOALS = {"inference": 4.0, "training": 2.0, "gpu_copy_fraction": 0.70, "gpu_inference": 5.0}
UPSTREAM = "upstream"


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
    ratio: float | None = None  # against upstream in the same section, levels and size
    extra: dict[str, Any] = field(default_factory=dict)


def _contenders(levels: list[int], device: str, paths: list[str]) -> dict[str, torch.nn.Module]:
    from vector_quantize_pytorch import FSQ as UpstreamFSQ

    from vqbench.quantizers.fsq import FSQ

    out: dict[str, torch.nn.Module] = {UPSTREAM: UpstreamFSQ(levels).to(device)}
    for name in paths:
        out[f"vqbench:{name}"] = FSQ(levels, backend=name).to(device)
    return out


def _call(module: torch.nn.Module, x: torch.Tensor):
    """Upstream takes (b, n, d) only; vqbench's FSQ takes it too."""
    return module(x)


def _path_of(name: str, module: torch.nn.Module) -> str:
    return UPSTREAM if name == UPSTREAM else str(getattr(module, "last_backend", "?"))


def _time(fn: Callable[[], object], device: str, threads: int, min_run_time: float) -> list[float]:
    """Seconds per call of every repeat (CPU: benchmark blocks; GPU: one event pair per call)."""
    if device == "cuda":
        return list(time_cuda(fn, warmup=3, repeats=10, flush_l2=False).times)
    return list(time_cpu(fn, threads=threads, min_run_time=min_run_time).times)


def _interleaved(
    fns: dict[str, Callable[[], object]], device: str, threads: int, rounds: int, min_run_time: float
) -> dict[str, list[float]]:
    """Time every callable in turn, ``rounds`` times over; pool each one's repeat times."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():  # warm-up: thresholds, kernel build, allocator
        fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name] += _time(fn, device, threads, min_run_time)
    return times


def _figures(section, levels, n, modules, times, extra=None) -> list[Figure]:
    out = []
    base = statistics.median(times[UPSTREAM]) if UPSTREAM in times else None
    for name, ts in times.items():
        med = statistics.median(ts)
        out.append(
            Figure(
                section=section,
                levels=list(levels),
                vectors=n,
                contender=name,
                path=_path_of(name, modules[name]),
                median_s=med,
                iqr_s=iqr(ts),
                repeats=len(ts),
                vectors_per_s=n / med,
                ratio=(base / med) if base else None,
                extra=dict(extra or {}),
            )
        )
    return out


def _inputs(n: int, d: int, device: str, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(1, n, d, generator=gen) * 1.5).to(device)


def bench_inference(levels, n, device, threads, rounds, min_run_time, paths) -> list[Figure]:
    """Forward without grad, float32."""
    modules = _contenders(levels, device, paths)
    x = _inputs(n, len(levels), device)

    def make(m):
        def fn():
            with torch.no_grad():
                return _call(m, x)

        return fn

    fns = {name: make(m) for name, m in modules.items()}
    times = _interleaved(fns, device, threads, rounds, min_run_time)
    return _figures("inference", levels, n, modules, times)


def bench_training(levels, n, device, threads, rounds, min_run_time, paths) -> list[Figure]:
    """Forward + backward of the codes (a fixed output gradient), input gradient only."""
    modules = _contenders(levels, device, paths)
    x = _inputs(n, len(levels), device).requires_grad_()
    grad = _inputs(n, len(levels), device, seed=1)

    def make(m):
        def fn():
            x.grad = None
            codes = _call(m, x)[0]
            codes.backward(grad)

        return fn

    fns = {name: make(m.train()) for name, m in modules.items()}
    times = _interleaved(fns, device, threads, rounds, min_run_time)
    return _figures("training", levels, n, modules, times)


def bench_memory(levels, n, device, paths) -> list[Figure]:
    """Peak bytes allocated by one inference call, against the bytes of its outputs."""
    modules = _contenders(levels, device, paths)
    x = _inputs(n, len(levels), device)
    out = []
    with torch.no_grad():
        for name, m in modules.items():
            codes, indices = _call(m, x)[:2]
            outputs = codes.numel() * codes.element_size() + indices.numel() * indices.element_size()
            peak = peak_memory(lambda m=m: _call(m, x), device)
            out.append(
                Figure(
                    section="memory",
                    levels=list(levels),
                    vectors=n,
                    contender=name,
                    path=_path_of(name, m),
                    extra={"peak_bytes": peak, "output_bytes": outputs, "extra_bytes": peak - outputs},
                )
            )
    base = next(f for f in out if f.contender == UPSTREAM).extra["peak_bytes"]
    for f in out:
        f.ratio = base / f.extra["peak_bytes"] if f.extra["peak_bytes"] else None
    return out


def bench_gpu_bandwidth(levels, n, paths) -> list[Figure]:
    """Effective bandwidth (input read + codes and indices written) against a device copy."""
    figures = bench_inference(levels, n, "cuda", torch.get_num_threads(), 1, 0.0, paths)
    copy = copy_bandwidth("cuda")
    moved = n * len(levels) * 4 * 2 + n * 4  # float32 in, float32 codes out, int32 index out
    for f in figures:
        gbps = moved / f.median_s / 1e9
        f.extra.update({"effective_GBps": gbps, "copy_GBps": copy, "copy_fraction": gbps / copy})
    return figures


def _environment(threads: int, device: str) -> dict[str, Any]:
    from vqbench.quantizers import _fsq_cpu, _fsq_triton

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


def run(
    *,
    device: str = "cpu",
    threads: int | None = None,
    vectors: int = 1_000_000,
    sweep: tuple[int, ...] = (2**12, 2**16, 2**18, 2**20, 2**22),
    rounds: int = 3,
    min_run_time: float = 0.3,
) -> dict[str, Any]:
    """Measure everything; return the environment, the figures and the goal verdicts."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _run(device, torch.get_num_threads(), vectors, sweep, rounds, min_run_time)
    finally:
        torch.set_num_threads(previous)


def _run(device, threads, vectors, sweep, rounds, min_run_time) -> dict[str, Any]:
    from vqbench.quantizers.fsq import FSQ

    paths = FSQ.available_backends(device)
    probe = FSQ(PRESETS[0]).to(device)
    with torch.no_grad():
        probe(_inputs(16, len(PRESETS[0]), device))
    auto_path = str(probe.last_backend)  # what backend="auto" runs here
    figures: list[Figure] = []
    for levels in PRESETS:
        figures += bench_inference(levels, vectors, device, threads, rounds, min_run_time, paths)
    sweep_paths = sorted({"torch", auto_path}, key=paths.index)
    for n in sweep:
        if n != vectors:
            figures += bench_inference(PRESETS[0], n, device, threads, rounds, min_run_time, sweep_paths)
    figures += bench_training(PRESETS[0], vectors, device, threads, rounds, min_run_time, paths)
    figures += bench_memory(PRESETS[0], vectors, device, paths)
    if device == "cuda":
        figures += bench_gpu_bandwidth(PRESETS[0], 16 * 2**20, paths)
    verdicts = _verdicts(figures, auto_path, vectors, device)
    return {
        "environment": _environment(threads, device),
        "auto_path": auto_path,
        "figures": figures,
        "goals": verdicts,
    }


def _pick(figures, section, contender, levels=PRESETS[0], vectors=None):
    for f in figures:
        if f.section == section and f.contender == contender and f.levels == list(levels):
            if vectors is None or f.vectors == vectors:
                return f
    return None


def _verdicts(figures, auto_path, vectors, device) -> list[dict[str, Any]]:
    name = f"vqbench:{auto_path}"
    out = []
    inf = _pick(figures, "inference", name, vectors=vectors)
    out.append(_goal("inference [8,5,5,5] 1M vs upstream", inf.ratio, GOALS["inference"], "x"))
    train = _pick(figures, "training", name)
    out.append(_goal("training step vs upstream", train.ratio, GOALS["training"], "x"))
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
                "GPU fraction of copy bandwidth", gpu.extra["copy_fraction"], GOALS["gpu_copy_fraction"], ""
            )
        )
        out.append(_goal("GPU inference vs upstream eager", gpu.ratio, GOALS["gpu_inference"], "x"))
    return out


def _goal(what: str, value: float | None, target: float, unit: str) -> dict[str, Any]:
    return {
        "goal": what,
        "value": None if value is None else f"{value:.2f}{unit}",
        "target": f">= {target:g}{unit}",
        "met": value is not None and value >= target,
    }


def _print(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 132)
    env = result["environment"]
    console.print(
        "[bold]vqbench FSQ speed[/bold]  "
        + "  ".join(f"{k}={v}" for k, v in env.items() if v not in (None, ""))
    )
    console.print(f"vqbench's FSQ with backend='auto' runs the [bold]{result['auto_path']}[/bold] path here")
    for section, title in (
        ("inference", "Inference (forward, no grad, float32)"),
        ("training", "Training step"),
    ):
        table = Table(title=title)
        for col in (
            "levels",
            "vectors",
            "contender",
            "path ran",
            "median ms",
            "IQR ms",
            "n",
            "M vectors/s",
            "vs up",
        ):
            table.add_column(
                col, justify="right" if col not in ("contender", "path ran", "levels") else "left"
            )
        for f in result["figures"]:
            if f.section != section or "copy_fraction" in f.extra:
                continue
            table.add_row(
                ",".join(map(str, f.levels)),
                f"{f.vectors:,}",
                f.contender,
                f.path,
                f"{f.median_s * 1e3:.2f}",
                f"{f.iqr_s * 1e3:.2f}",
                str(f.repeats),
                f"{f.vectors_per_s / 1e6:.1f}",
                "" if f.ratio is None else f"{f.ratio:.2f}x",
            )
        console.print(table)
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
        for col in ("contender", "path ran", "median ms", "GB/s", "copy GB/s", "of copy", "vs up"):
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
    table = Table(title="Goals of the fast FSQ paths")
    for col in ("goal", "measured", "target", "met"):
        table.add_column(col)
    for g in result["goals"]:
        table.add_row(
            g["goal"], str(g["value"]), g["target"], "[green]yes[/green]" if g["met"] else "[red]no[/red]"
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
    parser.add_argument("--quick", action="store_true", help="one round, a short sweep (a smoke run)")
    parser.add_argument("--json", default=None, help="write every figure to this JSON file")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.vectors < 1:
        parser.error(f"--vectors must be >= 1, got {args.vectors}")
    options: dict[str, Any] = dict(
        device=args.device,
        threads=args.threads,
        vectors=args.vectors,
        rounds=args.rounds,
        min_run_time=args.min_run_time,
    )
    if args.quick:
        options.update(rounds=1, min_run_time=min(args.min_run_time, 0.1), sweep=(2**12, 2**16))
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
