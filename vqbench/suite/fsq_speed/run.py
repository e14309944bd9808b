"""One run of the FSQ speed benchmark: every section in order, the environment, the goal verdicts."""

from __future__ import annotations

from typing import Any

import torch

from .common import DECODE_SMALL, MODEL_VECTORS, PER_CALL_SIZES, PRESETS, SECTIONS, Figure
from .contenders import inputs
from .goals import cuda_verdicts, per_call_verdicts, verdicts
from .sections import (
    bench,
    bench_cuda,
    bench_gpu_bandwidth,
    bench_host_time,
    bench_memory,
    bench_model,
    bench_per_call,
)


def _environment(threads: int, device: str) -> dict[str, Any]:
    from vqbench.quantizers.fsq import cpu as cpu_kernel
    from vqbench.quantizers.fsq import triton as gpu_kernel

    env: dict[str, Any] = {"threads": threads, "device": device, "torch": torch.__version__}
    try:
        from vqbench.results import environment_fingerprint

        fp = environment_fingerprint(threads=threads)
        keys = ("cpu", "cpu_count", "gpu", "vector_quantize_pytorch", "git_sha")
        env.update({k: fp[k] for k in keys if fp.get(k) is not None})
    except Exception as exc:  # the fingerprint is a nicety here, never a reason to fail
        env["fingerprint_error"] = f"{type(exc).__name__}: {exc}"
    env["cpu_kernel"] = "available" if cpu_kernel.available() else cpu_kernel.unavailable_reason()
    env["triton_kernel"] = "available" if gpu_kernel.available("cuda") else gpu_kernel.unavailable_reason()
    return env


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
        probe(inputs(16, len(PRESETS[0]), device))
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
    goals = verdicts(figures, auto_path, vectors, device) + per_call_verdicts(figures)
    return {
        "environment": _environment(threads, device),
        "auto_path": auto_path,
        "figures": figures,
        "goals": goals + cuda_verdicts(figures),
    }


__all__ = ["run"]
