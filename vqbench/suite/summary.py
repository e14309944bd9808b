"""The summary printed after a run: headline figures per quantizer, then the cells that failed."""

from __future__ import annotations

import json
import math
from typing import Any

from vqbench.engines import ENGINES

from .cells import short_name


def headlines() -> list[tuple[str, str, str, str]]:
    """(benchmark, metric or metric prefix ending in "@", short label, format) of every engine's
    summary columns; a prefix picks the largest size measured (``forward.vectors_per_s@65536``)."""
    return [
        (name, c.metric, c.label, c.style) for name, spec in ENGINES.specs().items() for c in spec.summary
    ]


def _fmt(value: float, style: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if style == "pct":
        return f"{value:.1%}"
    if style == "f1":
        return f"{value:.1f}"
    mag = abs(value)
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if mag >= scale:
            return f"{value / scale:.3g}{prefix}"
    return f"{value:.3g}"


def _codebook(config: str) -> str:
    try:
        cfg = json.loads(config) if isinstance(config, str) else dict(config or {})
    except (ValueError, TypeError):
        return ""
    size = cfg.get("codebook_size")
    if not isinstance(size, int) or size < 1:
        return ""
    return f"2^{int(math.log2(size))}" if size & (size - 1) == 0 else str(size)


def _loads(text: Any) -> dict:
    try:
        value = json.loads(text) if isinstance(text, str) and text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _metric_for(ok: Any, bench: str, metric: str) -> str | None:
    names = set(ok.loc[ok["benchmark"] == bench, "metric"])
    if not metric.endswith("@"):
        return metric if metric in names else None
    sized = [
        (int(m.rpartition("@")[2]), m) for m in names if m.startswith(metric) and m[len(metric) :].isdigit()
    ]
    return max(sized)[1] if sized else None


def pick_columns(ok: Any) -> list[tuple[str, str | None, str, str, str]]:
    """(benchmark, dataset, metric, label, format) columns for the headline metrics present in ``ok``.

    ``ok["dataset"]`` holds "" for cells without a dataset.
    """
    columns = []
    for bench, prefix, label, style in headlines():
        metric = _metric_for(ok, bench, prefix)
        if metric is None:
            continue
        datasets = list(
            dict.fromkeys(ok.loc[(ok["benchmark"] == bench) & (ok["metric"] == metric), "dataset"])
        )
        for dataset in datasets:
            shown = f"{label}\n{dataset}" if len(datasets) > 1 and dataset else label
            columns.append((bench, dataset, metric, shown, style))
    return columns


def _caption(columns: list[tuple[str, str | None, str, str, str]]) -> str:
    """What the columns are: each benchmark with its size or datasets."""
    parts: dict[str, list[str]] = {}
    for bench, dataset, metric, _label, _style in columns:
        where = parts.setdefault(bench, [])
        what = f"{metric.rpartition('@')[2]} vectors" if "@" in metric else dataset
        if what and what not in where:
            where.append(what)
    names = {name: spec.legend or name for name, spec in ENGINES.specs().items()}
    return "; ".join(
        f"{names.get(b, b)} ({', '.join(w)})" if w else names.get(b, b) for b, w in parts.items()
    )


def summary_renderables(rows: Any, run: dict[str, Any] | None = None) -> list[Any]:
    """Rich tables for a run's rows (a DataFrame from ``ResultStore.rows``)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    out: list[Any] = []
    if rows is None or len(rows) == 0:
        return out
    rows = rows.copy()
    rows["K"] = [_codebook(c) for c in rows["config"]]
    rows["where"] = (rows["device"] + "/" + rows["backend"]).astype(object)
    rows["dataset"] = rows["dataset"].astype(object).where(rows["dataset"].notna(), "")
    ok = rows[rows["status"] == "ok"]
    ok = ok[ok["extra"].map(lambda e: not _loads(e).get("precision")).astype(bool)]  # float32 cells
    title = "vqbench run"
    if run:
        title += f" {run['run_id']} ({run.get('suite', '')}, {run.get('status', '')})"
    columns = pick_columns(ok) if len(ok) else []
    one_place = ok["where"].nunique() == 1
    if one_place and len(ok):
        title += f" on {ok['where'].iloc[0]}"
    out.append(Text(title, style="bold"))
    if columns:
        table = Table(
            box=box.SIMPLE_HEAD,
            pad_edge=False,
        )
        table.add_column("quantizer", no_wrap=True)
        table.add_column("K", no_wrap=True)
        if not one_place:
            table.add_column("where", no_wrap=True)
        for *_, label, _style in columns:
            table.add_column(label, justify="right")
        keys = list(dict.fromkeys(zip(ok["quantizer"], ok["K"], ok["where"], strict=True)))
        for q, k, where in keys:
            mine = ok[(ok["quantizer"] == q) & (ok["K"] == k) & (ok["where"] == where)]
            cells = []
            for bench, dataset, metric, _label, style in columns:
                hit = mine[(mine["benchmark"] == bench) & (mine["metric"] == metric)]
                hit = hit[hit["dataset"] == dataset]
                cells.append(_fmt(float(hit["value"].iloc[0]), style) if len(hit) else "")
            if any(cells):
                table.add_row(Text(short_name(q)), k, *([] if one_place else [Text(where)]), *cells)
        out.append(table)
        out.append(Text(_caption(columns), style="dim"))
    bad = rows[rows["status"] != "ok"]
    if len(bad):
        out.append(Text(f"{len(bad)} cell(s) not measured", style="bold"))
        table = Table(box=box.SIMPLE_HEAD)
        table.add_column("status", no_wrap=True)
        table.add_column("cell", no_wrap=True)
        table.add_column("message", overflow="fold")
        for _, r in bad.iterrows():
            message = str(r["message"]).splitlines()[0] if r["message"] else ""
            cell = " ".join(
                p for p in (r["benchmark"], short_name(r["quantizer"]), r["K"], r["dataset"]) if p
            )
            table.add_row(Text(r["status"]), Text(cell), Text(message))
        out.append(table)
    return out


def print_summary(store: Any, run_id: str, console: Any = None) -> None:
    """Print the summary tables of ``run_id`` from ``store``."""
    from vqbench._console import make_console

    console = console or make_console()
    run = store.run_info(run_id)
    for renderable in summary_renderables(store.rows(run_id), run):
        console.print(renderable)


__all__ = ["headlines", "print_summary", "short_name", "summary_renderables"]
