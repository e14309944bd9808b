"""The precision section of a run report: speed per dtype, index agreement, bf16 training.

Rows of any precision but float32 (``extra["precision"]``, or a cell's ``params["dtype"]``) and
the agreement benchmark's rows are kept out of the run report's other tables, findings and
figures (they compare float32 cells); this section reads them beside their float32 counterparts:

- speed per dtype: vectors/s of each throughput operation per precision, the speed ratio to float32
  with its spread and a verdict (``speed_ratio``: from the relative times' per-round ratios where
  both cells have them), and the dtype that the forward computed in (measured, ``ran_dtype``);
- index agreement: per quantizer and precision, the share of tokens whose index changes against
  float32 on the same inputs, the code error (max, mean) and the dtype that ran; a quantizer that
  refused a precision shows its error;
- training under autocast: utilization and PSNR (reconstruction) or utilization (usage) under each
  autocast precision beside float32 with the same seeds, and a finding per quantizer: whether the
  autocast training changed utilization beyond the seeds' spread (the difference of the means
  exceeds ``NOISE_K`` standard errors and the seeds' ranges do not overlap).

Reads prepared rows only (``_data.prepare``).
"""

from __future__ import annotations

import math
from typing import Any

from vqbench.engines import with_view
from vqbench.reports.document import Callout, Document, Paragraph, Section, Table, TableCell
from vqbench.results.vocabulary import parse_metric

REFERENCE = "float32"
#: A difference of means counts when it exceeds this many standard errors of the difference.
NOISE_K = 2.0


def row_precision(ext: dict) -> str:
    """The precision a row was measured in: ``extra["precision"]``, else its cell's ``dtype``."""
    if ext.get("precision"):
        return str(ext["precision"])
    params = ext.get("params") if isinstance(ext.get("params"), dict) else {}
    return str(params.get("dtype") or REFERENCE)


def _precisions(rows: Any) -> list[str]:
    return [row_precision(e) for e in rows["ext"]]


def is_precision_row(rows: Any) -> Any:
    """A boolean Series: rows of another precision than float32, or of the agreement benchmark."""
    import pandas as pd

    if rows.empty:
        return pd.Series([], dtype=bool, index=rows.index)
    prec = pd.Series(_precisions(rows), index=rows.index)
    return prec.ne(REFERENCE) | rows["benchmark"].eq("agreement")


def float32_rows(rows: Any) -> Any:
    """``rows`` without the ok rows of other precisions (their errors stay, for the errors table)."""
    if rows.empty:
        return rows
    return rows[~(is_precision_row(rows) & rows["status"].eq("ok"))]


def _fmt_rate(value: float) -> str:
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= div:
            return f"{value / div:.3g}{suffix}"
    return f"{value:.3g}"


def _ran_text(ext: dict) -> str:
    ran = ext.get("ran_dtype")
    if not ran:
        return "—"
    shares = ext.get("dtype_shares") or {}
    others = [f"{k} {100 * v:.0f}%" for k, v in shares.items() if k != ran and v >= 0.005]
    return ran + (f" ({', '.join(others)})" if others else "")


def _operation_at_size(metric: str) -> str:
    """``forward@4096`` for ``forward.vectors_per_s@4096``: the operation and size of a rate."""
    parsed = parse_metric(metric)
    return (parsed.operation or parsed.figure) + ("" if parsed.size is None else f"@{parsed.size}")


def _order(precisions: set[str]) -> list[str]:
    from_engine = ["float32", "bfloat16", "float16", "autocast-bfloat16", "autocast-float16"]
    return [p for p in from_engine if p in precisions] + sorted(precisions - set(from_engine))


def speed_ratio(reference: list[float], other: list[float]) -> tuple[float, float, float, str]:
    """Speed of a precision against float32 from the two cells' per-round relative times (each
    operation / its interleaved control): ``(ratio, low, high, verdict)``, ratio > 1 when faster.
    The ratio is float32's lower quartile over the other's; the interval pairs their quartiles
    (float32's first over the other's third, and the reverse); the verdict is "faster" or
    "slower" by ``compare.judge_rounds`` (a one-sided Mann-Whitney test and a change beyond
    ``compare.MIN_TIMING_CHANGE``), else "within noise"."""
    import numpy as np

    from vqbench.reports.compare import judge_rounds

    (ref, ref_q3), (oth, oth_q3) = (
        np.quantile(np.asarray(v, dtype=float), [0.25, 0.75]) for v in (reference, other)
    )
    low, high = ref / oth_q3, ref_q3 / oth
    verdict = judge_rounds(ref, oth, tuple(reference), tuple(other))
    shown = {"better": "faster", "worse": "slower"}.get(verdict, verdict)
    return float(ref / oth), float(low), float(high), shown


def _rounds(rows: Any, metric: str) -> list[float]:
    """The per-round relative times stored with the relative time of a vectors/s ``metric``."""
    from vqbench.reports.timing_gate import relative_metric

    name = relative_metric(metric)
    out: list[float] = []
    for ext in rows.loc[rows["metric"] == name, "ext"]:
        out += [float(v) for v in ext.get("samples") or [] if v is not None and v > 0]
    return out


def speed_table(rows: Any, stamp: str) -> Table | None:
    """vectors/s per operation and precision, with the ratio to float32 and the dtype that ran."""
    timed = rows[rows["benchmark"].eq("throughput") & rows["status"].eq("ok")]
    ok = timed[timed["base_metric"].eq("vectors_per_s")]
    if ok.empty:
        return None
    prec = _precisions(ok)
    if set(prec) == {REFERENCE}:
        return None
    ok = ok.assign(precision=prec)
    timed = timed.assign(precision=_precisions(timed))
    order = _order(set(prec))
    body = []
    keys = ["quantizer", "config_label", "backend", "device", "metric"]
    for key, group in ok.groupby(keys, sort=False):
        quantizer, label, backend, device, metric = key
        by = {p: g for p, g in group.groupby("precision")}
        if set(by) == {REFERENCE}:
            continue
        ref = float(by[REFERENCE]["value"].mean()) if REFERENCE in by else None
        cells = [
            TableCell(quantizer, kind="label"),
            TableCell(f"{label} · {backend} · {device}", kind="label"),
            TableCell(_operation_at_size(metric), kind="label"),
        ]
        for p in order:
            if p not in by:
                cells.append(TableCell("—", kind="missing"))
                continue
            value = float(by[p]["value"].mean())
            ratio = f"{value / ref:.2f}x (no spread)" if ref and p != REFERENCE else ""
            same = timed[
                timed["quantizer"].eq(quantizer)
                & timed["config_label"].eq(label)
                & timed["backend"].eq(backend)
                & timed["device"].eq(device)
            ]
            ref_rounds = _rounds(same[same["precision"] == REFERENCE], metric)
            rounds = _rounds(same[same["precision"] == p], metric)
            if p != REFERENCE and len(ref_rounds) >= 3 and len(rounds) >= 3:
                r, low, high, verdict = speed_ratio(ref_rounds, rounds)
                ratio = f"{r:.2f}x ({low:.2f}-{high:.2f}), {verdict}"
            cells.append(
                TableCell(_fmt_rate(value), note=ratio, title=f"ran in {_ran_text(by[p]['ext'].iloc[0])}")
            )
        ran = [f"{p}: {_ran_text(by[p]['ext'].iloc[0])}" for p in order if p in by and p != REFERENCE]
        cells.append(TableCell("; ".join(ran), kind="label"))
        body.append(cells)
    if not body:
        return None
    return Table(
        "Speed per precision (vectors/s; speed ratio to float32 with its spread and verdict)",
        ["quantizer", "config · backend · device", "operation@size", *order, "computed in (measured)"],
        body,
        caption=stamp,
        notes=[
            "Input in the dtype named (autocast-*: float32 input under torch.autocast). "
            "'computed in': the dtype of most floating-point elements that the forward's ops "
            "wrote, measured, with the others' shares.",
            "Speed ratio: float32's relative time (operation / interleaved control, lower "
            "quartile over rounds) over this precision's; in brackets the ratio of their "
            "quartiles; 'faster'/'slower' only where the per-round times differ by a one-sided "
            "Mann-Whitney test (p < 0.01) and by more than 5%, else 'within noise'.",
        ],
    )


def agreement_table(rows: Any, stamp: str) -> Table | None:
    """Per quantizer and precision: tokens whose index changes, code error, the dtype that ran."""
    sel = rows[rows["benchmark"].eq("agreement")]
    if sel.empty:
        return None
    sel = sel.assign(precision=_precisions(sel))
    body = []
    for (quantizer, label, precision), group in sel.groupby(
        ["quantizer", "config_label", "precision"], sort=False
    ):
        bad = group[group["status"].ne("ok")]
        head = [
            TableCell(quantizer, kind="label"),
            TableCell(label, kind="label"),
            TableCell(precision, kind="label"),
        ]
        if not bad.empty:
            status = str(bad["status"].iloc[0])
            text = str(bad["message"].iloc[0]) or "(no message)"
            body.append(
                head
                + [TableCell(text, kind="error" if status == "error" else "skipped")]
                + [TableCell("", kind="missing")] * 4
            )
            continue
        value = {m: float(v) for m, v in zip(group["metric"], group["value"], strict=True)}
        ext = group["ext"].iloc[0]
        share = value.get("index_change_share")
        body.append(
            head
            + [
                TableCell(
                    "—" if share is None else f"{100 * share:.3f}%",
                    title=f"{ext.get('changed_tokens', '')} of {ext.get('tokens', '')} tokens",
                ),
                TableCell(_num(value.get("code_error_max"))),
                TableCell(_num(value.get("code_error_mean"))),
                TableCell(_ran_text(ext), kind="label"),
                TableCell(str(ext.get("output_dtype") or "—"), kind="label"),
            ]
        )
    return Table(
        "Index agreement against float32 (same inputs)",
        [
            "quantizer",
            "config",
            "precision",
            "tokens whose index changes",
            "code error max",
            "code error mean",
            "computed in (measured)",
            "codes dtype",
        ],
        body,
        caption=stamp,
        notes=[
            "Standard-normal inputs in eval mode after one training-mode pass that seeds a learned "
            "codebook from data; a token of several codebooks changes when any of its indices does."
        ],
    )


def _num(value: float | None) -> str:
    return "—" if value is None or value != value else f"{value:.3g}"


def _stat(values: list[float]) -> tuple[float, float, int, float, float]:
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, sd, n, min(values), max(values)


def _stat_text(values: list[float], unit: str) -> str:
    mean, sd, n, lo, hi = _stat(values)
    if unit == "ratio":
        text = f"{100 * mean:.1f}%" + (f" ± {100 * sd:.1f} [{100 * lo:.1f}-{100 * hi:.1f}]" if n > 1 else "")
    else:
        text = f"{mean:.2f} dB" + (f" ± {sd:.2f} [{lo:.2f}-{hi:.2f}]" if n > 1 else "")
    return f"{text} (n={n})"


def beyond_spread(ref: list[float], other: list[float]) -> bool | None:
    """Whether ``other``'s mean differs from ``ref``'s beyond the seeds' spread: by more than
    ``NOISE_K`` standard errors of the difference, with ranges that do not overlap (None: fewer
    than two seeds on either side)."""
    if len(ref) < 2 or len(other) < 2:
        return None
    m1, s1, n1, lo1, hi1 = _stat(ref)
    m2, s2, n2, lo2, hi2 = _stat(other)
    se = math.sqrt(s1**2 / n1 + s2**2 / n2)
    apart = hi2 < lo1 or lo2 > hi1
    return apart and abs(m2 - m1) > NOISE_K * se


def _training_groups(rows: Any) -> list[dict[str, Any]]:
    """Per training benchmark, dataset, quantizer, codebook size and autocast precision: the
    utilization and PSNR values of float32 and of that precision over the seeds both measured."""
    sel = rows[
        rows["benchmark"].isin(with_view("training"))
        & rows["status"].eq("ok")
        & rows["metric"].isin(["utilization", "psnr"])
    ]
    if sel.empty:
        return []
    sel = sel.assign(precision=_precisions(sel))
    if set(sel["precision"]) == {REFERENCE}:
        return []
    out = []
    keys = ["benchmark", "dataset", "quantizer", "codebook_size"]
    for key, group in sel.groupby(keys, sort=False, dropna=False):
        ref = group[group["precision"].eq(REFERENCE)]
        for precision in _order(set(group["precision"]) - {REFERENCE}):
            low = group[group["precision"].eq(precision)]
            seeds = sorted(set(ref["seed"].dropna()) & set(low["seed"].dropna()))
            entry = dict(zip(keys, key, strict=True), precision=precision, seeds=[int(s) for s in seeds])
            for metric in ("utilization", "psnr"):
                for name, part in (("ref", ref), ("low", low)):
                    got = part[part["metric"].eq(metric) & part["seed"].isin(seeds)]
                    entry[f"{name}_{metric}"] = [float(v) for v in got["value"]]
                    entry[f"{name}_{metric}_by_seed"] = {
                        int(seed): float(v) for seed, v in zip(got["seed"], got["value"], strict=True)
                    }
                    if metric == "utilization":
                        entry[f"{name}_converged"] = sum(bool(e.get("converged")) for e in got["ext"])
            out.append(entry)
    return out


def training_table(groups: list[dict[str, Any]], stamp: str) -> Table | None:
    """Utilization and PSNR after training under autocast beside float32 (same seeds)."""
    if not groups:
        return None
    body = []
    for g in groups:
        size = g["codebook_size"]
        size_text = (
            "—"
            if size is None or size != size
            else f"2^{int(math.log2(size))}"
            if int(size) & (int(size) - 1) == 0
            else str(int(size))
        )
        cells = [
            TableCell(g["quantizer"], kind="label"),
            TableCell(f"{g['benchmark']} · {g['dataset']}", kind="label"),
            TableCell(size_text, kind="label"),
            TableCell(g["precision"], kind="label"),
        ]
        for metric, unit in (("utilization", "ratio"), ("psnr", "dB")):
            for side in ("ref", "low"):
                values = g[f"{side}_{metric}"]
                cells.append(
                    TableCell(_stat_text(values, unit)) if values else TableCell("—", kind="missing")
                )
        n = len(g["seeds"])
        cells.append(TableCell(f"{g['ref_converged']}/{n} · {g['low_converged']}/{n}", kind="label"))
        verdict = beyond_spread(g["ref_utilization"], g["low_utilization"])
        text = {
            None: "not measured (fewer than 2 seeds)",
            True: "beyond the seeds' spread",
            False: "within the seeds' spread",
        }[verdict]
        cells.append(TableCell(text, kind="verdict", verdict="worse" if verdict else "within noise"))
        body.append(cells)
    return Table(
        "Training under autocast against float32 (same seeds)",
        [
            "quantizer",
            "benchmark · dataset",
            "K",
            "precision",
            "utilization float32",
            "utilization autocast",
            "PSNR float32",
            "PSNR autocast",
            "converged (f32 · autocast)",
            "utilization change",
        ],
        body,
        caption=stamp,
        notes=[
            "mean ± sd [min-max] over the seeds that both precisions measured; evaluation runs in the "
            "training's precision. 'beyond the seeds' spread': the means differ by more than "
            f"{NOISE_K:g} standard errors and the seeds' ranges do not overlap."
        ],
    )


def training_findings(groups: list[dict[str, Any]]) -> list[Any]:
    """One statement per quantizer and setting: does autocast training change its utilization?"""
    blocks: list[Any] = []
    for g in groups:
        ref, low = g["ref_utilization"], g["low_utilization"]
        where = f"{g['quantizer']} ({g['benchmark']}, {g['dataset']}"
        size = g["codebook_size"]
        if size is not None and size == size:
            where += f", {int(size)} codes"
        where += ")"
        verdict = beyond_spread(ref, low)
        if verdict is None:
            blocks.append(
                Callout(
                    f"{where}: whether {g['precision']} training changes utilization is not measured: "
                    f"{len(g['seeds'])} seed(s) measured both precisions, 2 or more are needed.",
                    "info",
                )
            )
            continue
        m_ref, m_low = _stat(ref)[0], _stat(low)[0]
        change = f"{100 * m_ref:.1f}% -> {100 * m_low:.1f}% over seeds {', '.join(map(str, g['seeds']))}"
        by_ref, by_low = g["ref_utilization_by_seed"], g["low_utilization_by_seed"]
        deltas = [100 * (by_low[s] - by_ref[s]) for s in g["seeds"] if s in by_ref and s in by_low]
        if deltas:
            change += "; per seed " + ", ".join(f"{d:+.1f}" for d in deltas) + " points"
        n = len(g["seeds"])
        unconverged = (n - g["ref_converged"]) + (n - g["low_converged"])
        caveat = (
            f"; {unconverged} of these {2 * n} cells stopped at the step cap, unconverged"
            if unconverged
            else ""
        )
        what = "changes utilization beyond" if verdict else "leaves utilization within"
        text = f"{where}: {g['precision']} training {what} the seeds' spread ({change}{caveat})."
        blocks.append(Callout(text, "warning" if verdict else "info" if unconverged else "ok"))
    return blocks


def refusals(rows: Any) -> list[Any]:
    """A callout per quantizer and precision whose cells failed (refused or crashed)."""
    sel = rows[is_precision_row(rows) & rows["status"].eq("error")] if not rows.empty else rows
    if sel.empty:
        return []
    sel = sel.assign(precision=_precisions(sel))
    seen = sel.drop_duplicates(["quantizer", "benchmark", "precision"])
    return [
        Callout(f"{q} in {p} ({b}): {m or '(no message)'}", "error")
        for q, b, p, m in zip(
            seen["quantizer"], seen["benchmark"], seen["precision"], seen["message"], strict=True
        )
    ]


def precision_section(rows: Any, stamp: str) -> tuple[Section | None, list[Any]]:
    """The precision section of ``rows`` (all rows of a run) and the findings on training, or
    ``(None, [])`` when the run measured no precision but float32."""
    if rows.empty or not is_precision_row(rows).any():
        return None, []
    groups = _training_groups(rows)
    blocks: list[Any] = [
        Paragraph(
            "Each quantizer in the precisions this run measured, beside float32. A quantizer may compute "
            "in another dtype than its input's: 'computed in' is measured, not assumed."
        )
    ]
    blocks += refusals(rows)
    for table in (speed_table(rows, stamp), agreement_table(rows, stamp), training_table(groups, stamp)):
        if table is not None:
            blocks.append(table)
    return Section("Precision", blocks), training_findings(groups)


def add_precision_section(doc: Document, rows: Any, stamp: str) -> None:
    """Append the precision section to ``doc`` and its training findings to the Findings section
    (made after the summary when the run has none)."""
    section, found = precision_section(rows, stamp)
    if section is None:
        return
    if found:
        findings = next((s for s in doc.sections if s.title == "Findings"), None)
        if findings is None:
            findings = Section("Findings", [])
            doc.sections.insert(1, findings)
        findings.blocks += [Paragraph("Training under autocast against float32:"), *found]
    doc.sections.append(section)


__all__ = [
    "add_precision_section",
    "agreement_table",
    "beyond_spread",
    "float32_rows",
    "is_precision_row",
    "precision_section",
    "row_precision",
    "speed_table",
    "training_findings",
    "training_table",
]
