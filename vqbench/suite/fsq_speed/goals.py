"""The FSQ speed benchmark's goals: each measured ratio against its target, as verdict rows."""

from __future__ import annotations

from typing import Any

from .common import DECODE_SMALL, GOALS, PER_CALL_GOALS, PRESETS, UPSTREAM


def _pick(figures, section, contender, levels=PRESETS[0], vectors=None):
    for f in figures:
        if f.section == section and f.contender == contender and f.levels == list(levels):
            if vectors is None or f.vectors == vectors:
                return f
    return None


def verdicts(figures, auto_path, vectors, device) -> list[dict[str, Any]]:
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


def per_call_verdicts(figures) -> list[dict[str, Any]]:
    out = []
    for (op, n), anchors in PER_CALL_GOALS.items():
        f = _pick(figures, f"per-call {op}", "vqbench", PRESETS[0], n)
        if f is None:
            continue
        for anchor, target in anchors.items():
            value = f.ratio if anchor == UPSTREAM else f.ratio_compiled
            out.append(_goal(f"per call: {op} {n:,} vectors vs {anchor}", value, target, "x"))
    return out


def cuda_verdicts(figures) -> list[dict[str, Any]]:
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


__all__ = ["cuda_verdicts", "per_call_verdicts", "verdicts"]
