"""Documents for ``vqbench compare``: run A against run B, or a candidate against baselines."""

from __future__ import annotations

import math
from typing import Any

from vqbench.reports._data import metric_label
from vqbench.reports._format import fmt_delta, fmt_value
from vqbench.reports.compare import (
    NOT_COMPARED,
    SINGLE_SEED,
    SINGLE_SEED_CODEBOOK_FRACTIONS,
    SINGLE_SEED_TOLERANCES,
    UNEQUAL_RATE,
    candidate_failures,
    codebook_mismatches,
    compare_candidate,
    compare_rows,
    rate_mismatches,
    verdict_counts,
)
from vqbench.reports.document import Callout, Document, Paragraph, Section, Table, TableCell

_ORDER = {
    "worse": 0,
    "error": 1,
    "better": 2,
    "missing": 3,
    "within noise": 4,
    SINGLE_SEED: 5,
    "no direction": 6,
    "view": 7,
}
_SHOWN = {"view": "view (not counted)", UNEQUAL_RATE: f"{UNEQUAL_RATE} (not counted)"}


def verdict_notes() -> list[str]:
    """What the verdicts mean, read from the comparison's own constants."""
    tolerances = ", ".join(f"{k} {v:g}" for k, v in SINGLE_SEED_TOLERANCES.items())
    tolerances += ", " + ", ".join(
        f"{k} {v:g} x the codebook size" for k, v in SINGLE_SEED_CODEBOOK_FRACTIONS.items()
    )
    return [
        "↑ higher is better, ↓ lower is better; the verdict reads each change in its metric's own direction.",
        "within noise: the change is inside the stored spreads (IQR) of the two figures.",
        f"{SINGLE_SEED}: a quality figure measured on one seed has no spread; it counts only beyond an "
        f"absolute tolerance ({tolerances}; vqbench.reports.compare.SINGLE_SEED_TOLERANCES).",
        "One verdict per effect: an operation's timing is judged on its relative time (operation / "
        "interleaved control); vectors/s, time, GB/s, copy fraction and wall-clock times are views, "
        "shown and not counted. " + " and ".join(NOT_COMPARED) + " measure the machine and are not compared.",
    ]


def _value_cell(value: float, spread: float, status: str, message: str, unit: str) -> TableCell:
    if status == "missing":
        return TableCell("—", kind="missing")
    if status != "ok":
        return TableCell(status, kind="error" if status == "error" else "skipped", title=message)
    note = "" if spread is None or math.isnan(spread) else f"IQR {fmt_value(spread, unit)}"
    return TableCell(fmt_value(value, unit), note=note)


def comparison_table(
    result: Any, title: str, caption: str, a_name: str, b_name: str, with_baseline: bool = False
) -> Table:
    """A table of compared figures, the ones that got worse first."""
    frame = result.copy()
    frame["_order"] = [_ORDER.get(v, 9) for v in frame["verdict"]]
    frame = frame.sort_values(["_order", "benchmark", "quantizer", "metric"], kind="stable")
    rows = []
    for rec in frame.to_dict("records"):
        unit = rec["unit"] if isinstance(rec["unit"], str) else ""
        setting = " · ".join(str(rec[k]) for k in ("backend", "device") if rec.get(k))
        label = [
            TableCell(str(rec["benchmark"]), kind="label"),
            TableCell(str(rec["quantizer"]), kind="label"),
        ]
        if with_baseline:
            label.append(TableCell(str(rec["baseline"]), kind="label"))
        label += [
            TableCell(str(rec["config_label"] or ""), kind="label"),
            TableCell(setting, kind="label"),
            TableCell(str(rec["dataset"] or ""), kind="label"),
            TableCell(str(rec["variant"] or ""), kind="label"),
            TableCell(metric_label(rec["metric"], unit), kind="label"),
        ]
        direction = rec["direction"]
        arrow = "" if direction is None else (" ↑" if direction else " ↓")
        label[-1].text += arrow
        verdict = rec["verdict"]
        rows.append(
            label
            + [
                _value_cell(rec["value_a"], rec["spread_a"], rec["status_a"], rec["message_a"], unit),
                _value_cell(rec["value_b"], rec["spread_b"], rec["status_b"], rec["message_b"], unit),
                TableCell(fmt_delta(rec["rel_delta"], rec["delta"], unit)),
                TableCell(
                    _SHOWN.get(verdict, verdict),
                    kind="error" if verdict == "error" else "verdict",
                    verdict=verdict if verdict in ("better", "worse", "within noise", SINGLE_SEED) else "",
                ),
            ]
        )
    columns = ["benchmark", "quantizer"] + (["baseline"] if with_baseline else [])
    columns += [
        "config",
        "backend · device",
        "dataset",
        "variant",
        "metric",
        a_name,
        b_name,
        "change",
        "verdict",
    ]
    # label columns that are empty, or the same on every line, leave the table (the latter for a note)
    labels = columns.index("metric")
    empty = [i for i in range(labels) if rows and all(not r[i].text for r in rows)]
    same = [
        i for i in range(labels) if len(rows) > 1 and i not in empty and len({r[i].text for r in rows}) == 1
    ]
    notes = verdict_notes()
    if same:
        notes.insert(0, "All lines: " + "; ".join(f"{columns[i]} {rows[0][i].text}" for i in same) + ".")
    drop = set(empty) | set(same)
    columns = [c for i, c in enumerate(columns) if i not in drop]
    rows = [[cell for i, cell in enumerate(r) if i not in drop] for r in rows]
    return Table(title, columns, rows, caption=caption, notes=notes)


def failures_table(failures: Any, caption: str) -> Table:
    """The candidate's failed cells: quantizer, benchmark, cell and the error, in full."""
    rows = [
        [
            TableCell(str(rec["quantizer"]), kind="label"),
            TableCell(str(rec["benchmark"]), kind="label"),
            TableCell(str(rec["cell"]), kind="label"),
            TableCell(str(rec["error"]), kind="error"),
        ]
        for rec in failures.to_dict("records")
    ]
    return Table("Failed candidate cells", ["quantizer", "benchmark", "cell", "error"], rows, caption=caption)


def _summary(result: Any, what: str) -> Callout:
    counts = verdict_counts(result)
    text = (
        f"{what}: " + ", ".join(f"{n} {v}" for v, n in counts.items())
        if counts
        else f"{what}: nothing to compare"
    )
    worse, better = counts.get("worse", 0), counts.get("better", 0)
    if counts.get("error") or worse > better:
        level = "error"
    elif worse:
        level = "warning"  # mixed: as many or more effects improved as got worse
    else:
        level = "ok" if better else "info"
    return Callout(text, level)


def compare_runs_document(store: Any, run_a: str, run_b: str, noise_k: float = 1.0) -> tuple[Document, Any]:
    """Run A against run B (B is the new one): the document and the comparison frame."""
    from vqbench.reports.report import environment_block, load_run

    a, b = load_run(store, run_a), load_run(store, run_b)
    result = compare_rows(a.rows, b.rows, noise_k=noise_k)
    stamp = f"A: {a.stamp} | B: {b.stamp}"
    doc = Document(title=f"vqbench compare · {a.run_id} → {b.run_id}", subtitle=stamp)
    blocks: list[Any] = [_summary(result, "B against A")]
    if a.env_hash != b.env_hash:
        blocks.append(
            Callout(
                f"The runs come from different environments ({a.env_hash} vs {b.env_hash}); "
                "timing differences may come from the machine, not the code.",
                "warning",
            )
        )
    if a.suite != b.suite:
        blocks.append(
            Callout(f"Different suites: {a.suite!r} vs {b.suite!r}; only shared figures compare.", "info")
        )
    doc.sections.append(Section("Summary", blocks))
    doc.sections.append(
        Section("Figures compared", [comparison_table(result, "", stamp, f"A {a.run_id}", f"B {b.run_id}")])
    )
    doc.sections.append(Section("Environment of A", [environment_block(a, "")]))
    doc.sections.append(Section("Environment of B", [environment_block(b, "")]))
    return doc, result


def candidate_document(
    store: Any, run_id: str, candidate: str, baselines: list[str], noise_k: float = 1.0
) -> tuple[Document, Any]:
    """A candidate against baselines in one run: the comparison first, then the full run report.

    The comparison frame carries the candidate's failed cells in ``frame.attrs["failures"]``
    (see ``compare.candidate_failures``); the document shows them as a table."""
    import pandas as pd

    from vqbench.reports.report import build_report, load_run

    run = load_run(store, run_id)
    failures = candidate_failures(run.rows, candidate)
    try:
        result = compare_candidate(run.rows, candidate, baselines, noise_k=noise_k)
    except KeyError:
        if failures.empty:
            raise
        result = pd.DataFrame(columns=["baseline", "verdict", "counted"])
    result.attrs["failures"] = failures
    doc = build_report(store, run.run_id, baseline=baselines[0] if baselines else None)
    doc.title = f"vqbench compare · {candidate} against {', '.join(baselines)}"
    blocks: list[Any] = []
    if not failures.empty:
        blocks.append(
            Callout(
                f"{len(failures)} cell(s) of {candidate} failed; their figures are missing from the "
                "comparison (the command exits 1).",
                "error",
            )
        )
        blocks.append(failures_table(failures, run.stamp))
    for base in baselines:
        part = result[result["baseline"] == base]
        if part.empty:
            blocks.append(Callout(f"{candidate} against {base}: no figures at the same settings.", "warning"))
        else:
            blocks.append(_summary(part, f"{candidate} against {base}"))
        for asked, (bits_c, bits_b) in rate_mismatches(run.rows, candidate, base).items():
            blocks.append(
                Callout(
                    f"At codebook size {int(asked)}, {candidate} codes "
                    f"{' / '.join(f'{b:g}' for b in bits_c)} bits per token and {base} "
                    f"{' / '.join(f'{b:g}' for b in bits_b)}: its figures there "
                    f"are marked '{UNEQUAL_RATE}' and not counted (compare at matched bits per token).",
                    "warning",
                )
            )
        for asked, built_c, built_b in codebook_mismatches(run.rows, candidate, base):
            blocks.append(
                Callout(
                    f"At codebook size {asked}, {candidate} built {' / '.join(map(str, built_c))} codes "
                    f"and {base} built {' / '.join(map(str, built_b))}: counts (dead codes, perplexity) "
                    "differ by construction; utilization and perplexity ratio are shares of each one's "
                    "own codebook.",
                    "warning",
                )
            )
    if len(result):
        blocks.append(
            Paragraph("'better' means the candidate is better than the baseline at the same setting.")
        )
        blocks.append(comparison_table(result, "", run.stamp, "baseline", candidate, with_baseline=True))
    doc.sections.insert(0, Section(f"{candidate} against the baselines", blocks))
    return doc, result


__all__ = [
    "candidate_document",
    "compare_runs_document",
    "comparison_table",
    "failures_table",
    "verdict_notes",
]
