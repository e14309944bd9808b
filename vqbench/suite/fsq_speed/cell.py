"""The FSQ speed benchmark (``vqbench.suite.fsq_speed``) as a suite engine: ``measure(cell)``.

One cell runs :func:`~vqbench.suite.fsq_speed.run` on the cell's device and turns every figure into rows:
``{section}.vectors_per_s``, ``{section}.ratio`` (against eager upstream FSQ, higher is better) and
``{section}.ratio_compiled`` (against upstream under ``torch.compile``) per contender, levels and
size, ``{section}.compile_time`` of the compiled contenders, plus ``goal.*`` rows (1 = met) for
the speed goals. The contender, its path, levels and size go to ``extra`` and into the metric
name, so that runs compare like for like.
The cell's quantizer names what is measured (``fsq``); its config is not used.

Parameters (``PARAMS``): ``vectors`` (1M), ``sweep`` (sizes of the [8,5,5,5] sweep), ``rounds``,
``min_run_time`` and ``threads`` (CPU), ``sections`` and ``compiled`` (compiled upstream as a
contender), as in ``python -m vqbench.suite.fsq_speed``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vqbench.results.vocabulary import metric_name

from .._common import figure, resolve_params

if TYPE_CHECKING:
    from ..cells import Cell

PARAMS: dict[str, Any] = {
    "vectors": 1_000_000,
    "sweep": [2**12, 2**16, 2**18, 2**20, 2**22],
    "rounds": 3,
    "min_run_time": 0.3,
    "threads": None,
    "sections": ["inference", "encode", "decode", "training", "model"],
    "compiled": True,
}


def _name(f: Any, figure_name: str) -> str:
    """``{section}.{figure}.{contender}[{levels}]@{vectors}``: one contender, levels and size."""
    levels = "x".join(str(n) for n in f.levels)
    return metric_name(figure_name, operation=f.section, variant=f"{f.contender}[{levels}]", size=f.vectors)


def measure(cell: Cell) -> list[dict]:
    """Run the FSQ speed benchmark on ``cell.device``; one figure per measured value."""
    from .run import run

    p = resolve_params(cell, PARAMS)
    result = run(
        device=cell.device.split(":")[0],
        threads=p["threads"],
        vectors=int(p["vectors"]),
        sweep=tuple(int(n) for n in p["sweep"]),
        rounds=int(p["rounds"]),
        min_run_time=float(p["min_run_time"]),
        sections=tuple(p["sections"]),
        compiled=bool(p["compiled"]),
    )
    out = []
    for f in result["figures"]:
        extra = {
            "contender": f.contender,
            "path": f.path,
            "levels": f.levels,
            "vectors": f.vectors,
            "median_s": f.median_s,
            **f.extra,
        }
        if f.vectors_per_s is not None:
            out.append(
                figure(
                    _name(f, "vectors_per_s"),
                    f.vectors_per_s,
                    "vectors/s",
                    True,
                    spread=f.vectors / f.median_s**2 * f.iqr_s if f.iqr_s else None,
                    n=f.repeats,
                    extra=extra,
                )
            )
        if f.ratio is not None:
            out.append(
                figure(_name(f, "ratio"), f.ratio, "x upstream", True, n=f.repeats or None, extra=extra)
            )
        if f.ratio_compiled is not None:
            out.append(
                figure(
                    _name(f, "ratio_compiled"),
                    f.ratio_compiled,
                    "x upstream compiled",
                    True,
                    n=f.repeats or None,
                    extra=extra,
                )
            )
        if f.compile_s is not None:
            out.append(figure(_name(f, "compile_time"), f.compile_s, "s", False, n=1, extra=extra))
    for goal in result["goals"]:
        out.append(
            figure(
                metric_name(goal["goal"], operation="goal"),
                1.0 if goal["met"] else 0.0,
                "met",
                True,
                extra={"value": goal["value"], "target": goal["target"], "auto_path": result["auto_path"]},
            )
        )
    return out


__all__ = ["PARAMS", "measure"]
