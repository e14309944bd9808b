"""The nightly gate over a stored run: history, checks, history plots, and the written outputs.

``gate_run`` compares a run with its history; ``nightly_document`` and ``nightly_summary`` turn the
outcome into a report (HTML/Markdown) and a JSON summary; ``write_nightly`` writes all three.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vqbench.reports._data import metric_label
from vqbench.reports._format import fmt_delta, fmt_value
from vqbench.reports.compare import collapse
from vqbench.reports.document import Callout, Document, Paragraph, Plot, Section, Table, TableCell
from vqbench.reports.gate import STATES, GateResult, evaluate_gate
from vqbench.reports.history import (
    accepted_runs,
    figure_page,
    history_run_ids,
    upgrade_history,
    upgrade_note,
)
from vqbench.reports.report import RunData, build_report, load_run
from vqbench.reports.steps import step_changes
from vqbench.reports.thresholds import GateConfig, gate_text, relative_time_threshold
from vqbench.results.vocabulary import KEY_COLUMNS

MAX_HISTORY_PANELS = 12
#: Exit codes of the gate: pass, a regression, the run cannot be judged whole (not finished, or
#: figures its history has are missing).
EXIT_PASS, EXIT_REGRESSION, EXIT_INCOMPLETE = 0, 1, 4


@dataclass
class NightlyOutcome:
    """A gated run: the run, its gate result, and each figure's series over history + this run."""

    run: RunData
    gate: GateResult
    series: Any  # DataFrame: KEY_COLUMNS + run_id, started, value, spread, status
    upgrade: dict = field(default_factory=dict)  # package -> [before, after] when judged across an upgrade


def gate_run(
    store: Any,
    run_id: str | None = "latest",
    config: GateConfig | None = None,
    confirm_run: str | None = None,
    include_imported: bool = False,
) -> NightlyOutcome:
    """Compare a stored run with the recent comparable runs of ``store`` (see ``history``);
    ``confirm_run`` holds its suspect cells re-measured (see ``suspect_cells``). Imported runs
    join the history only with ``include_imported``."""
    import pandas as pd

    from vqbench.reports._data import prepare

    cfg = config or GateConfig()
    run = load_run(store, run_id)
    runs = store.runs()
    hist_ids = history_run_ids(runs, run.run_id, run.suite, run.env_hash, cfg.window, include_imported)
    upgrade: dict = {}
    if not hist_ids:  # a new environment: an upgrade of packages is judged against the runs before it
        hist_ids, upgrade = upgrade_history(
            runs, run.run_id, run.suite, run.environment, cfg.window, include_imported
        )
    started = dict(zip(runs["run_id"], runs["started"], strict=True))
    frames, series = [], []
    for rid in hist_ids:
        rows = prepare(store.rows(rid))
        frames.append(rows)
        series.append(collapse(rows).assign(run_id=rid, started=started[rid]))
    series.append(collapse(run.rows).assign(run_id=run.run_id, started=started[run.run_id]))
    history = pd.concat(frames, ignore_index=True) if frames else None
    confirm = prepare(store.rows(confirm_run)) if confirm_run else None
    gate = evaluate_gate(
        run.rows, history, run.run_id, hist_ids, cfg, confirm=confirm, accepted=accepted_runs(runs)
    )
    status = dict(zip(runs["run_id"], runs["status"], strict=True)).get(run.run_id, run.status)
    if status != "finished":
        gate.incomplete.append(
            f"run {run.run_id} is {status}, not finished: the gate judges whole runs only"
            + (
                f" (continue it with `vqbench run --resume {run.run_id}`)"
                if status in ("interrupted", "died")
                else ""
            )
        )
    ran = run.rows["status"].value_counts()
    if not ran.get("ok", 0):
        gate.incomplete.append(
            f"run {run.run_id} measured nothing ({ran.get('skipped', 0)} skipped and "
            f"{ran.get('error', 0)} failed row(s)): a night that ran nothing never passes"
        )
    elif ran.get("error", 0):
        failed = run.rows[run.rows["status"] == "error"]
        gate.incomplete.append(
            f"{failed['cell_id'].nunique()} cell(s) of run {run.run_id} failed (e.g. "
            f"{failed.iloc[0]['quantizer']} {failed.iloc[0]['benchmark']}): a figure with failed "
            "cells or seeds is not judged on the rest"
        )
    missing = gate.checks[gate.checks["status"] == "missing"] if not gate.checks.empty else gate.checks
    if len(missing):
        gate.incomplete.append(
            f"{len(missing)} figure(s) that the history measured are missing from this run "
            f"(e.g. {missing.iloc[0]['quantizer']} {missing.iloc[0]['metric']})"
        )
    if upgrade:
        gate.notes.insert(0, upgrade_note(upgrade, gate.checks))
    return NightlyOutcome(run, gate, pd.concat(series, ignore_index=True), upgrade)


def exit_code(gate: GateResult) -> int:
    """1 on a regression, else 4 when the run is incomplete, else 0."""
    if gate.regressed:
        return EXIT_REGRESSION
    return EXIT_INCOMPLETE if gate.incomplete else EXIT_PASS


def suspect_cells(outcome: NightlyOutcome) -> list[str]:
    """The cell ids of the timing figures that are suspects, to be re-measured before reporting."""
    checks = outcome.gate.checks
    if checks.empty or "suspect" not in checks:
        return []
    flagged = checks[checks["suspect"].eq(True)]
    rows = outcome.run.rows
    ids: list[str] = []
    for rec in flagged.to_dict("records"):
        keys = rows[list(KEY_COLUMNS)].astype(object).fillna("")
        mask = (keys == [rec[k] for k in KEY_COLUMNS]).all(axis=1)
        ids += [c for c in rows.loc[mask, "cell_id"] if c and c not in ids]
    return ids


def _page_url(site: str | None, line: dict) -> str:
    return f"{site.rstrip('/')}/{figure_page(tuple(line[k] for k in KEY_COLUMNS))}" if site else ""


def _record(line: dict, site: str | None = None) -> dict:
    def num(v: Any) -> float | None:
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

    out = {k: (None if line.get(k) in ("", None) else str(line[k])) for k in KEY_COLUMNS}
    out.update(
        config=line.get("config_label") or None,
        unit=line.get("unit") or "",
        kind="timing" if line.get("timing") else "quality",
        higher_is_better=line.get("direction"),
        status=line["status"],
        state=line["state"],
        value=num(line.get("value")),
        baseline=num(line.get("baseline")),
        change=num(line.get("change")),
        rel_change=num(line.get("rel_change")),
        noise_band=num(line.get("band")),
        limit=num(line.get("limit")),
        history_n=int(line.get("history_n") or 0),
        reason=line.get("reason") or "",
    )
    if site:
        out["page"] = _page_url(site, line)
    return out


def nightly_summary(outcome: NightlyOutcome, site: str | None = None) -> dict:
    """The JSON summary: verdict, history, regressions, improvements, errors and missing figures;
    each figure with its four-state ``state`` and, given the ``site``'s URL, its ``page`` there.

    ``status``: ``regression``, ``incomplete``, ``no-history`` (the first run), ``timing-not-gated``
    (fewer history runs than timing needs: quality and errors were checked) or ``ok``.
    """
    gate, run = outcome.gate, outcome.run
    checks = gate.checks
    picked = lambda *states: checks[checks["status"].isin(states)].to_dict("records")  # noqa: E731
    pick = lambda *states: [_record(r, site) for r in picked(*states)]  # noqa: E731
    if gate.regressed:
        status = "regression"
    elif gate.incomplete:
        status = "incomplete"
    elif not gate.history_runs:
        status = "no-history"
    elif len(gate.history_runs) < gate.config.min_timing_history:
        status = "timing-not-gated"  # quality and errors checked; timing waits for enough history
    else:
        status = "ok"
    return {
        "status": status,
        "exit_code": exit_code(gate),
        "incomplete": list(gate.incomplete),
        "run_id": run.run_id,
        "suite": run.suite,
        "env_hash": run.env_hash,
        "environment": run.environment,
        "history_runs": gate.history_runs,
        "upgrade": outcome.upgrade,  # package -> [before, after] when the history is the runs before it
        "settings": {
            "window": gate.config.window,
            "min_history": gate.config.min_history,
            "min_timing_history": gate.config.min_timing_history,
            "threshold": gate.config.threshold,
            "noise_k": gate.config.noise_k,
            "rel_tolerance": gate.config.rel_tolerance,
            "source": gate.config.source,
        },
        "counts": {k: int(v) for k, v in checks["status"].value_counts().items()} if not checks.empty else {},
        "states": {s: int((checks["state"] == s).sum()) if not checks.empty else 0 for s in STATES},
        "site": site,
        "regressions": pick("regression", "new error"),
        "improvements": pick("improvement"),
        "errors": pick("error"),
        "missing": pick("missing"),
        "checks": [_record(r, site) for r in checks.to_dict("records")],  # every figure and why
        "notes": gate.notes,
    }


def _checks_table(lines: Any, title: str, caption: str, site: str | None = None) -> Table:
    rows = []
    for rec in lines.to_dict("records"):
        unit = rec["unit"] or ""
        setting = " · ".join(x for x in (rec["backend"], rec["device"]) if x)
        bad = rec["status"] in ("regression", "new error")
        rows.append(
            [
                TableCell(str(rec["benchmark"]), kind="label"),
                TableCell(str(rec["quantizer"]), kind="label"),
                TableCell(str(rec["config_label"] or ""), kind="label"),
                TableCell(setting, kind="label"),
                TableCell(" ".join(x for x in (rec["dataset"], rec["variant"]) if x), kind="label"),
                TableCell(metric_label(rec["metric"], unit), kind="label", link=_page_url(site, rec)),
                TableCell(fmt_value(rec["baseline"], unit)),
                TableCell(
                    fmt_value(rec["value"], unit) if rec["status"] != "new error" else "error",
                    kind="error" if rec["status"] == "new error" else "value",
                ),
                TableCell(fmt_delta(rec["rel_change"], rec["change"], unit)),
                TableCell(rec["status"], kind="verdict", verdict="worse" if bad else "better"),
                TableCell(rec["state"], kind="label"),
                TableCell(str(rec["reason"]), kind="label"),
            ]
        )
    columns = [
        "benchmark",
        "quantizer",
        "config",
        "backend · device",
        "dataset / variant",
        "metric",
        "history median",
        "tonight",
        "change",
        "status",
        "state",
        "why",
    ]
    return Table(title, columns, rows, caption=caption)


def _series_of(outcome: NightlyOutcome, line: dict) -> Any:
    s = outcome.series
    mask = (s[list(KEY_COLUMNS)] == [line[k] for k in KEY_COLUMNS]).all(axis=1)
    return s[mask].sort_values("started")


def history_plot(outcome: NightlyOutcome, lines: Any, stamp: str) -> Plot | None:
    """One panel per flagged figure: its value over the history, the band, steps and tonight's point."""
    from vqbench.reports._plot_layout import new_figure, png

    lines = lines.head(MAX_HISTORY_PANELS)
    if lines.empty:
        return None
    ncols = min(3, len(lines))
    nrows = math.ceil(len(lines) / ncols)
    fig = new_figure(4.2 * ncols, 3.0 * nrows + 0.5)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    cfg = outcome.gate.config
    for ax in axes.flat[len(lines) :]:
        ax.set_axis_off()
    for ax, rec in zip(axes.flat, lines.to_dict("records"), strict=False):
        ser = _series_of(outcome, rec)
        ok = ser[ser["status"] == "ok"]
        x = list(range(len(ser)))
        xs = [x[i] for i, st in enumerate(ser["status"]) if st == "ok"]
        ax.plot(xs, ok["value"], marker="o", color="#4a7cc2", lw=1.5)
        spreads = ok["spread"].fillna(0.0)
        ax.errorbar(xs, ok["value"], yerr=spreads / 2, fmt="none", ecolor="#9db4d8", capsize=2)
        base = rec["baseline"]
        if base == base and base is not None:
            width = rec["band"] if rec["timing"] else rec["limit"]
            if rec["timing"]:
                width = max(width if width == width else 0.0, cfg.threshold * abs(base))
            if width == width:
                ax.axhspan(base - width, base + width, color="#2f9e44", alpha=0.12, lw=0)
            ax.axhline(base, color="#2f9e44", lw=1, ls=":")
        for step in step_changes(ser["value"].tolist(), cfg.threshold, cfg.noise_k):
            ax.axvline(step - 0.5, color="#e8590c", ls="--", lw=1.2)
        if ser["status"].iloc[-1] == "ok":
            bad = rec["status"] in ("regression", "new error")
            ax.plot([x[-1]], [ser["value"].iloc[-1]], marker="o", ms=9, color="#c92a2a" if bad else "#2f9e44")
        for i, st in enumerate(ser["status"]):
            if st != "ok":
                ax.axvline(i, color="#c92a2a", lw=6, alpha=0.25)
        ax.set_xticks(x, ["" if i < len(x) - 1 else "tonight" for i in x], fontsize=7)
        title = f"{rec['quantizer']} · {rec['metric']}"
        sub = " ".join(str(v) for v in (rec["backend"], rec["variant"] or rec["dataset"]) if v)
        ax.set_title(f"{title}\n{sub}"[:90], fontsize=8.5)
        ax.set_ylabel(rec["unit"] or rec["metric"], fontsize=8)
    fig.suptitle("History of flagged figures (dashed: step changes; band: threshold / noise / tolerance)")
    caption = (
        "Each panel: the figure over the comparable past runs (oldest left) and tonight's run (big dot: "
        "red when it regressed, green otherwise). The shaded band is the history median ± max(threshold, "
        "noise band) for timing "
        "figures and ± the tolerance for quality figures; dashed lines mark detected step changes; red "
        "stripes are runs where the figure failed."
    )
    return Plot(
        "history",
        "History of flagged figures",
        png(fig, stamp),
        caption=f"{caption} {stamp}",
        alt="line charts of flagged figures across runs",
    )


def overview_plot(outcome: NightlyOutcome, stamp: str) -> Plot | None:
    """Every gated figure relative to its history median across runs, flagged ones in colour."""
    from vqbench.reports._plot_layout import new_figure, png

    s = outcome.series
    runs = list(dict.fromkeys(s.sort_values("started")["run_id"]))
    if len(runs) < 2:
        return None
    checks = outcome.gate.checks
    fig = new_figure(8.0, 4.2)
    ax = fig.subplots()
    flagged = checks[checks["status"].isin(["regression", "improvement", "new error"])]
    flagged_keys = {tuple(r[k] for k in KEY_COLUMNS): r["status"] for r in flagged.to_dict("records")}
    drawn = 0
    coloured = {"regression": 0, "improvement": 0}
    for key, group in s[s["status"] == "ok"].groupby(list(KEY_COLUMNS), sort=False, dropna=False):
        group = group.sort_values("started")
        base = group["value"].iloc[:-1].median() if len(group) > 1 else math.nan
        if not base or base != base:
            continue
        xs = [runs.index(r) for r in group["run_id"]]
        status = flagged_keys.get(tuple(key))
        color = {"regression": "#c92a2a", "improvement": "#2f9e44"}.get(status, "#adb5bd")
        if status in coloured:
            coloured[status] += 1
        ax.plot(
            xs,
            group["value"] / base,
            color=color,
            lw=2 if status else 0.8,
            alpha=1 if status else 0.5,
            zorder=3 if status else 1,
        )
        drawn += 1
    if not drawn:
        return None
    band = relative_time_threshold(outcome.gate.config)
    ax.axhspan(1 - band, 1 + band, color="#2f9e44", alpha=0.08, lw=0)
    ax.set_xticks(range(len(runs)), ["" if i < len(runs) - 1 else "tonight" for i in range(len(runs))])
    ax.set_ylabel("value / history median")
    shown = [
        f"{colour}: {what} ({n})"
        for colour, what, n in (
            ("red", "regressed", coloured["regression"]),
            ("green", "improved", coloured["improvement"]),
        )
        if n
    ]
    legend = "; ".join(shown) if shown else "none regressed or improved, all grey"
    ax.set_title(f"All {drawn} figures relative to their history median", fontsize=10)
    caption = (
        "Each line is one figure across the comparable runs, divided by its median over the past runs; "
        f"grey lines were not flagged ({legend}). The band is ±{band * 100:.0f}%, the threshold of the "
        "gated timing figure (relative time)."
    )
    return Plot(
        "history_overview",
        "History overview",
        png(fig, stamp),
        caption=f"{caption} {stamp}",
        alt="overview of all figures relative to their history",
    )


def nightly_document(
    store: Any, outcome: NightlyOutcome, baseline: str | None = None, site: str | None = None
) -> Document:
    """The nightly report: the verdict, what regressed or improved, history plots, then the run
    report; each figure's metric links to its page on the history ``site`` (a URL) if given."""
    gate, run = outcome.gate, outcome.run
    checks = gate.checks
    stamp = run.stamp
    regress = checks[checks["status"].isin(["regression", "new error"])]
    improve = checks[checks["status"] == "improvement"]
    blocks: list[Any] = []
    if gate.regressed:
        blocks.append(
            Callout(
                f"REGRESSION: {len(regress)} figure(s) regressed against the last "
                f"{len(gate.history_runs)} comparable run(s). Gate: fail (exit 1). This run stays out "
                f"of the history, and a lasting change stays flagged, until `vqbench nightly --accept "
                f"{run.run_id}`.",
                "error",
            )
        )
    elif gate.incomplete:
        blocks.append(
            Callout(
                "INCOMPLETE: " + "; ".join(gate.incomplete) + f". Gate: fail (exit {EXIT_INCOMPLETE}).",
                "error",
            )
        )
    elif not gate.history_runs:
        blocks.append(Callout("No comparable history yet: this run starts it. Gate: pass.", "info"))
    elif len(gate.history_runs) < gate.config.min_timing_history:
        n, need = len(gate.history_runs), gate.config.min_timing_history
        blocks.append(
            Callout(
                f"Not gated yet: {n} of {need} history runs. Timing figures are judged once {need} "
                f"comparable runs tell the run-to-run noise; quality figures and errors were checked "
                f"against the {n} run(s) there are, and none regressed. Gate: pass (exit 0).",
                "info",
            )
        )
    else:
        blocks.append(
            Callout(
                f"No regression against the last {len(gate.history_runs)} comparable run(s). "
                "Gate: pass (exit 0).",
                "ok",
            )
        )
    cfg = gate.config
    where = (
        "of the environment before the package upgrade"
        if outcome.upgrade
        else f"with environment {run.env_hash}"
    )
    blocks.append(
        Paragraph(
            f"History: finished runs of suite {run.suite!r} {where}, "
            f"the last {cfg.window}, without runs a nightly flagged (until accepted) and imported runs. "
            f"{gate_text(cfg)}. Settings: {cfg.source}."
        )
    )
    for note in gate.notes:
        blocks.append(Paragraph(note))
    counts = checks["status"].value_counts().to_dict() if not checks.empty else {}
    blocks.append(Paragraph("Checks: " + ", ".join(f"{n} {s}" for s, n in counts.items())))
    states = checks["state"].value_counts().to_dict() if not checks.empty else {}
    blocks.append(Paragraph("States: " + ", ".join(f"{states.get(s, 0)} {s}" for s in STATES)))
    if site:
        blocks.append(Paragraph(f"History of every figure: {site.rstrip('/')}/index.html"))
    doc = Document(title=f"vqbench nightly · {run.suite}", subtitle=stamp)
    doc.sections.append(Section("Verdict", blocks))
    if not regress.empty:
        doc.sections.append(Section("Regressions", [_checks_table(regress, "", stamp, site)]))
    if not improve.empty:
        doc.sections.append(Section("Improvements", [_checks_table(improve, "", stamp, site)]))
    figs = [
        f
        for f in (
            history_plot(outcome, regress, stamp),
            history_plot(outcome, improve, stamp),
            overview_plot(outcome, stamp),
        )
        if f is not None
    ]
    if len(figs) > 1 and figs[0].name == figs[1].name:
        figs[1].name = "history-improvements"
        figs[1].title = "History of improved figures"
    if figs:
        doc.sections.append(Section("History", list(figs)))
    if not checks.empty:
        doc.sections.append(
            Section(
                "Every figure",
                [
                    _checks_table(
                        checks,
                        "",
                        "Every figure of tonight's run with the gate's verdict and why: which test decided "
                        "(threshold, noise band, Mann-Whitney p-value, re-measurement) or why it is not "
                        f"gated. {stamp}",
                        site,
                    )
                ],
            )
        )
    report = build_report(store, run.run_id, baseline=baseline)
    for section in report.sections:
        section.title = f"Tonight · {section.title}"
        doc.sections.append(section)
    return doc


def write_nightly(doc: Document, summary: dict, out_dir: str | Path) -> dict[str, Path]:
    """Write ``nightly.html``, ``nightly.md`` (+ figures) and ``summary.json`` into ``out_dir``."""
    from vqbench.reports.report import write_report

    out = Path(out_dir)
    paths = write_report(doc, out, stem="nightly")
    buf = io.StringIO()
    json.dump(summary, buf, indent=1, allow_nan=False, default=str)
    paths["json"] = out / "summary.json"
    paths["json"].write_text(buf.getvalue() + "\n", encoding="utf-8")
    return paths


__all__ = [
    "EXIT_INCOMPLETE",
    "EXIT_PASS",
    "EXIT_REGRESSION",
    "NightlyOutcome",
    "exit_code",
    "suspect_cells",
    "gate_run",
    "history_plot",
    "nightly_document",
    "nightly_summary",
    "overview_plot",
    "write_nightly",
]
