"""The FSQ speed benchmark's printed tables: figures per section, per call, memory, GPU, goals."""

from __future__ import annotations

import sys
from typing import Any

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


def print_result(result: dict[str, Any]) -> None:
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


__all__ = ["print_result"]
