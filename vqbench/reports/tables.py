"""Per-benchmark comparison tables: a row per quantizer setting, a column per figure with its unit.

Operations (forward, train_step, ...) become columns, so a throughput table reads as one row per
quantizer and backend. The best value (★) is marked on each benchmark's primary figure only
(``PRIMARY_FIGURES``), among rows with the same bits per token, dataset, variant and device, in the
metric's own direction; each value can carry its ratio to a baseline quantizer, and error or
skipped cells say so instead of showing a number.
"""

from __future__ import annotations

import math
from typing import Any

from vqbench.engines import engine_names, primary_figures
from vqbench.reports._data import metric_label
from vqbench.reports._format import fmt_ratio, fmt_value
from vqbench.reports.compare import NOT_COMPARED
from vqbench.reports.document import Table, TableCell

ENTITY = ("quantizer", "config_label", "backend", "device", "dataset", "row_variant", "seed_label")
_HEADERS = {
    "quantizer": "quantizer",
    "config_label": "config",
    "backend": "backend",
    "device": "device",
    "dataset": "dataset",
    "row_variant": "variant",
    "seed_label": "seed",
}
_MATCH = ("backend", "device", "dataset", "row_variant", "seed_label")


def bits_per_token(frame: Any) -> dict[tuple[str, str], float]:
    """(quantizer, config) -> bits per token: the measured ``bits_per_token`` figure where a run
    holds one, else log2(codebook size) x the number of codebooks or residual levels."""
    out: dict[tuple[str, str], float] = {}
    measured = frame[(frame["metric"] == "bits_per_token") & frame["status"].eq("ok")]
    for q, c, v in zip(measured["quantizer"], measured["config"], measured["value"], strict=True):
        out.setdefault((q, c), float(v))
    for q, c, cfg, size in zip(
        frame["quantizer"], frame["config"], frame["cfg"], frame["codebook_size"], strict=True
    ):
        if (q, c) in out or size is None or size != size or size <= 0:
            continue
        books = cfg.get("num_quantizers") or cfg.get("num_codebooks") or 1
        if isinstance(books, int) and not isinstance(books, bool) and books > 0:
            out[(q, c)] = math.log2(size) * books
    return out


def ordered_benchmarks(frame: Any) -> list[str]:
    """The benchmarks present, registered ones first in registration order."""
    present = list(dict.fromkeys(frame["benchmark"].tolist()))
    order = engine_names()
    return [b for b in order if b in present] + [b for b in present if b not in order]


def _with_seed_label(frame: Any) -> Any:
    """Rows of several seeds fold into one row per setting: values are the mean ± sd over seeds."""
    frame = frame.copy()
    seeds = frame["seed"].dropna().unique()
    frame["seed_label"] = f"mean ± sd over {len(seeds)} seeds" if len(seeds) > 1 else ""
    return frame


def _over_seeds(got: Any) -> tuple[float, float | None, int]:
    """The value of a table cell: the mean over seeds and their sd (None for one seed), and n seeds."""
    per_seed = got.groupby("seed", dropna=False)["value"].median()
    if len(per_seed) < 2:
        return float(got["value"].median()), None, 1
    return float(per_seed.mean()), float(per_seed.std(ddof=1)), len(per_seed)


def _baseline_value(
    ok: Any, entity: dict, column: tuple, baseline: str, codebook: float | None
) -> float | None:
    metric, operation = column
    base = ok[(ok["quantizer"] == baseline) & (ok["base_metric"] == metric) & (ok["operation"] == operation)]
    cand = base
    for key in _MATCH:
        cand = cand[cand[key] == entity[key]]
    if cand.empty:  # a baseline measured on its default backend only still anchors the ratio
        cand = base
        for key in _MATCH:
            cand = cand[cand[key] == ("eager" if key == "backend" else entity[key])]
    if cand.empty:
        return None
    if codebook is not None:
        same = cand[cand["codebook_size"] == codebook]
        if not same.empty:
            cand = same
    if cand["config_label"].nunique() > 1:
        return None  # ambiguous: several baseline configs and none at this codebook size
    value = float(cand["value"].median())
    return value if value != 0 and not math.isnan(value) else None


def _column_title(column: tuple, unit: str, with_operation: bool, single_metric: bool) -> str:
    metric, operation = column
    if with_operation and single_metric:
        return operation or "all"  # the table's title names the metric and unit
    label = metric_label(metric, unit)
    return f"{operation or 'all'} · {label}" if with_operation else label


def benchmark_table(
    frame: Any, benchmark: str, caption: str, baseline: str | None = None, metrics: list[str] | None = None
) -> Table:
    """The table of one benchmark from prepared rows (see ``_data.prepare``).

    ``metrics`` limits the columns to those base metrics (``_data.base_metric_of``)."""
    rows = _with_seed_label(frame[frame["benchmark"] == benchmark])
    if metrics is not None:
        rows = rows[rows["base_metric"].isin(metrics) | rows["status"].ne("ok")]
    ok = rows[rows["status"] == "ok"]
    columns = list(dict.fromkeys(zip(ok["base_metric"], ok["operation"], strict=True)))
    with_operation = any(op for _, op in columns)
    metric_order = list(dict.fromkeys(ok["base_metric"]))
    op_order = {"forward": 0, "train": 1, "train_step": 1, "encode": 2, "decode": 3}
    columns.sort(key=lambda c: (metric_order.index(c[0]), op_order.get(c[1], 9), c[1]))
    units = {
        c: ok.loc[(ok["base_metric"] == c[0]) & (ok["operation"] == c[1]), "unit"].iloc[0] for c in columns
    }
    entities = list(dict.fromkeys(tuple(r) for r in rows[list(ENTITY)].itertuples(index=False)))
    label_cols = [c for c in ENTITY if c == "quantizer" or rows[c].nunique() > 1]
    constant = [
        f"{_HEADERS[c]}: {rows[c].iloc[0]}"
        for c in ENTITY
        if c not in label_cols and not rows.empty and rows[c].iloc[0] != ""
    ]

    best: set[tuple] = set()
    primary = primary_figures().get(benchmark)
    bits = bits_per_token(frame)
    for column in columns:
        if column[0] != primary:
            continue
        sub = ok[(ok["base_metric"] == column[0]) & (ok["operation"] == column[1])].copy()
        direction = sub["direction"].iloc[0]
        if direction is None:
            continue
        # equal bits per token, to whole bits (FSQ's 240 codes at K=2^8 carry 7.9 bits)
        sub["_bits"] = [
            round(bits[(q, c)]) if (q, c) in bits else math.nan
            for q, c in zip(sub["quantizer"], sub["config"], strict=True)
        ]
        sub = sub[sub["_bits"].notna()]
        for _, group in sub.groupby(["dataset", "row_variant", "device", "_bits"], dropna=False):
            values = group.groupby(list(ENTITY), dropna=False)["value"].median().dropna()
            if len(values) < 2 or values.nunique() < 2:
                continue
            target = values.max() if direction else values.min()
            best.update((idx, column) for idx, v in values.items() if v == target)

    table_rows = []
    for ent in entities:
        ent_d = dict(zip(ENTITY, ent, strict=True))
        mine = rows[(rows[list(ENTITY)] == list(ent)).all(axis=1)]
        errors = mine[mine["status"] == "error"]
        skipped = mine[mine["status"] == "skipped"]
        full_config = str(mine["config"].iloc[0])
        cells = [
            TableCell(str(ent_d[c]), kind="label", title=full_config if c == "config_label" else "")
            for c in label_cols
        ]
        codebook = next((c for c in mine["codebook_size"] if c is not None and c == c), None)
        for column in columns:
            got = mine[
                (mine["base_metric"] == column[0])
                & (mine["operation"] == column[1])
                & (mine["status"] == "ok")
            ]
            unit = units[column]
            if not got.empty:
                value, seed_sd, n_seeds = _over_seeds(got)
                spread, n = got["spread"].dropna(), got["n"].dropna()
                title = "; ".join(
                    filter(
                        None,
                        [
                            f"IQR {fmt_value(float(spread.iloc[0]), unit)}" if len(spread) else "",
                            f"n={int(n.iloc[0])}" if len(n) else "",
                            f"mean ± sd over {n_seeds} seeds" if seed_sd is not None else "",
                        ],
                    )
                )
                note = ""
                # the machine's probes (copy bandwidth, the control's time) get no ratio to a quantizer
                if baseline and ent_d["quantizer"] != baseline and column[0] not in NOT_COMPARED:
                    base = _baseline_value(ok, ent_d, column, baseline, codebook)
                    if base is not None:
                        note = f"{fmt_ratio(value / base)} {baseline}"
                text = fmt_value(value, unit)
                if seed_sd is not None:
                    text = f"{text} ± {fmt_value(seed_sd, unit)}"
                cells.append(TableCell(text, best=(ent, column) in best, note=note, title=title))
            elif not errors.empty:
                cells.append(TableCell("error", kind="error", title=str(errors["message"].iloc[0])))
            elif not skipped.empty:
                cells.append(TableCell("skipped", kind="skipped", title=str(skipped["message"].iloc[0])))
            else:
                cells.append(TableCell("—", kind="missing"))
        if not errors.empty:
            message = str(errors["message"].iloc[0]) or "error"
            cells.append(TableCell(f"error: {message.splitlines()[0][:160]}", kind="error", title=message))
        elif not skipped.empty:
            cells.append(TableCell(f"skipped: {skipped['message'].iloc[0]}", kind="skipped"))
        else:
            cells.append(TableCell("ok", kind="label"))
        if errors.empty and skipped.empty and all(c.kind == "missing" for c in cells[len(label_cols) : -1]):
            continue  # nothing of this table's figures for this setting
        table_rows.append(cells)
    headers = (
        [_HEADERS[c] for c in label_cols]
        + [_column_title(c, units[c], with_operation, len(metric_order) == 1) for c in columns]
        + ["status"]
    )
    notes = []
    warned: dict[str, list[str]] = {}
    for quantizer, label, ext in zip(ok["quantizer"], ok["config_label"], ok["ext"], strict=True):
        found = [ext.get("warning")] + list(ext.get("warnings") or [])
        for text in filter(None, found):
            who = warned.setdefault(str(text), [])
            name = f"{quantizer} {label}".strip()
            if name not in who:
                who.append(name)
    for text, who in list(warned.items())[:6]:
        notes.append(f"Warning ({', '.join(who[:4])}{' ...' if len(who) > 4 else ''}): {text}")
    if constant:
        notes.append("All rows: " + "; ".join(constant) + ".")
    if best:
        shown = set(frame["benchmark"])
        notes.append(
            f"★ best {primary} in its column among rows with the same bits per token (to whole bits), "
            "dataset, variant and device; only each benchmark's primary figure "
            f"({', '.join(f'{b}: {m}' for b, m in primary_figures().items() if b in shown)}) is starred."
        )
    if baseline:
        if (ok["quantizer"] == baseline).any():
            notes.append(f"Small figures beside values: ratio to baseline {baseline!r} at the same setting.")
        else:
            notes.append(f"Baseline {baseline!r} has no ok figures in this benchmark; no ratios shown.")
    title = benchmark
    if metrics is not None and len(metrics) == 1 and columns:
        title = f"{benchmark} · {metric_label(metrics[0], units[columns[0]])}"
    return Table(title=title, columns=headers, rows=table_rows, caption=caption, notes=notes)


_PER_OPERATION_ORDER = (
    "vectors_per_s",
    "effective_gbps",
    "copy_fraction",
    "time",
    "compile_time",
    "peak_memory",
)


#: Figure columns per table: a benchmark with more figures gets several tables, each with the
#: quantizer columns, so that every table fits a page without scrolling sideways.
MAX_VALUE_COLUMNS = 10
# figures read first, in this order (the primary figure of each benchmark leads its first table)
_HEADLINE = (
    "psnr",
    "mse",
    "utilization",
    "perplexity_ratio",
    "perplexity",
    "entropy_bits",
    "dead_codes",
    "bits_per_token",
)


def _split_columns(frame: Any, bench: str, caption: str, baseline: str | None, metrics: list[str]) -> list:
    """One table of the benchmark's figures, or several of at most ``MAX_VALUE_COLUMNS`` each."""
    if len(metrics) <= MAX_VALUE_COLUMNS:
        return [benchmark_table(frame, bench, caption, baseline)]
    primary = primary_figures().get(bench)
    order = [primary, *_HEADLINE] if primary else list(_HEADLINE)
    metrics = sorted(metrics, key=lambda m: order.index(m) if m in order else len(order))
    parts = math.ceil(len(metrics) / MAX_VALUE_COLUMNS)
    size = math.ceil(len(metrics) / parts)
    chunks = [metrics[i : i + size] for i in range(0, len(metrics), size)]
    out = []
    for i, chunk in enumerate(chunks):
        table = benchmark_table(frame, bench, caption, baseline, metrics=chunk)
        table.title = (
            f"{bench} ({i + 1} of {len(chunks)}: {', '.join(chunk[:3])}{', ...' if len(chunk) > 3 else ''})"
        )
        out.append(table)
    return out


def benchmark_tables(frame: Any, caption: str, baseline: str | None = None) -> list[Table]:
    """Tables of every benchmark in the prepared rows: one per benchmark, or, where figures come per
    operation (throughput), one per metric with the operations as columns."""
    tables = []
    for bench in ordered_benchmarks(frame):
        ok = frame[(frame["benchmark"] == bench) & (frame["status"] == "ok")]
        per_op = ok[ok["operation"] != ""]
        if per_op.empty:
            tables += _split_columns(frame, bench, caption, baseline, list(dict.fromkeys(ok["base_metric"])))
            continue
        found = list(dict.fromkeys(per_op["base_metric"]))
        found.sort(key=lambda m: _PER_OPERATION_ORDER.index(m) if m in _PER_OPERATION_ORDER else 99)
        for metric in found:
            tables.append(benchmark_table(frame, bench, caption, baseline, metrics=[metric]))
        rest = list(dict.fromkeys(ok.loc[ok["operation"] == "", "base_metric"]))
        if rest:
            tables.append(benchmark_table(frame, bench, caption, baseline, metrics=rest))
    return tables


__all__ = ["benchmark_table", "benchmark_tables", "bits_per_token", "ordered_benchmarks"]
