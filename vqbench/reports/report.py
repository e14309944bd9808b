"""The report of one run: summary, a table per benchmark, figures, errors and the environment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vqbench.engines import with_view
from vqbench.errors import UserError
from vqbench.reports._data import prepare
from vqbench.reports.document import Callout, Document, KeyValues, Paragraph, Section, Table, TableCell

ENV_ORDER = (
    "vqbench",
    "git_sha",
    "torch",
    "cuda",
    "cudnn",
    "gpu",
    "gpu_count",
    "driver",
    "cpu",
    "cpu_count",
    "threads",
    "python",
    "system",
    "machine",
    "vector_quantize_pytorch",
    "numpy",
)


@dataclass
class RunData:
    """A run's info and its prepared rows, as the report builders use them."""

    run_id: str
    suite: str
    status: str
    started: str
    finished: str
    environment: dict
    env_hash: str
    config: dict
    rows: Any  # prepared DataFrame

    @property
    def stamp(self) -> str:
        """The line every table and figure carries: run, suite and environment fingerprint."""
        return f"run {self.run_id} · suite {self.suite} · env {self.env_hash}"


def load_run(store: Any, run_id: str | None = "latest") -> RunData:
    """Read one run (an id, a unique prefix or "latest") from an open store."""
    run_id = store.resolve_run(run_id)
    info = store.run_info(run_id)
    rows = store.rows(run_id)
    if rows.empty:
        raise UserError(
            f"run {run_id} ({info['status']}) holds no rows yet: nothing to report"
            + ("; it is still running" if info["status"] == "running" else "")
        )
    return RunData(
        run_id=run_id,
        suite=info["suite"],
        status=info["status"],
        started=info["started"] or "",
        finished=info["finished"] or "",
        environment=info["environment"],
        env_hash=info["env_hash"],
        config=info["config"],
        rows=prepare(rows),
    )


def environment_block(run: RunData, title: str = "Environment") -> KeyValues:
    """The environment fingerprint as a key/value list, known keys first."""
    env = run.environment
    keys = [k for k in ENV_ORDER if k in env] + sorted(k for k in env if k not in ENV_ORDER)
    items = [("env_hash", run.env_hash)] + [(k, "—" if env[k] is None else str(env[k])) for k in keys]
    return KeyValues(title, items)


def errors_table(run: RunData) -> Table | None:
    """Every error and skipped row with its full message."""
    bad = run.rows[run.rows["status"].ne("ok")]
    if bad.empty:
        return None
    seen = bad.drop_duplicates(
        ["benchmark", "quantizer", "config_label", "backend", "device", "dataset", "status", "message"]
    )
    rows = [
        [
            TableCell(b, kind="label"),
            TableCell(q, kind="label"),
            TableCell(c, kind="label"),
            TableCell(f"{be} · {d}", kind="label"),
            TableCell(ds, kind="label"),
            TableCell(s, kind="error" if s == "error" else "skipped"),
            TableCell(m or "(no message)", kind="error" if s == "error" else "skipped"),
        ]
        for b, q, c, be, d, ds, s, m in zip(
            seen["benchmark"],
            seen["quantizer"],
            seen["config_label"],
            seen["backend"],
            seen["device"],
            seen["dataset"],
            seen["status"],
            seen["message"],
            strict=True,
        )
    ]
    return Table(
        "Errors and skipped cells",
        ["benchmark", "quantizer", "config", "backend · device", "dataset", "status", "message"],
        rows,
        caption=run.stamp,
    )


def settings_table(run: RunData) -> Table | None:
    """Each quantizer's configs exactly as measured (JSON), so a reader sees what was compared."""
    rows = run.rows
    if rows.empty:
        return None
    seen = rows.drop_duplicates(["quantizer", "config"])
    body = [
        [
            TableCell(q, kind="label"),
            TableCell(label, kind="label"),
            TableCell(
                ", ".join(
                    dict.fromkeys(rows.loc[(rows["quantizer"] == q) & (rows["config"] == c), "benchmark"])
                ),
                kind="label",
            ),
            TableCell(c, kind="label"),
        ]
        for q, label, c in zip(seen["quantizer"], seen["config_label"], seen["config"], strict=True)
    ]
    return Table(
        "",
        ["quantizer", "label", "benchmarks", "config (as passed to create_quantizer)"],
        body,
        caption=run.stamp,
    )


def worker_hosts(rows: Any) -> dict[str, int]:
    """Cells per host of the workers that measured them (from each row's ``extra["worker"]``)."""
    cells: dict[str, set] = {}
    if "ext" not in rows:
        return {}
    for cell_id, ext in zip(rows["cell_id"], rows["ext"], strict=True):
        worker = ext.get("worker") if isinstance(ext, dict) else None
        if isinstance(worker, dict) and worker.get("host"):
            cells.setdefault(str(worker["host"]), set()).add(cell_id)
    return {host: len(ids) for host, ids in sorted(cells.items())}


def summary_blocks(run: RunData) -> list[Any]:
    """Counts of rows, quantizers and errors, with a callout when something failed."""
    rows = run.rows
    n_err = int((rows["status"] == "error").sum())
    n_skip = int((rows["status"] == "skipped").sum())
    blocks: list[Any] = []
    if run.status != "finished":
        blocks.append(
            Callout(f"Run status: {run.status} (it did not finish; figures may be missing).", "warning")
        )
    if n_err:
        names = sorted(set(rows.loc[rows["status"] == "error", "quantizer"]))
        blocks.append(
            Callout(
                f"{n_err} error row(s), in: {', '.join(names)}. They are shown as errors below, "
                "never as numbers.",
                "error",
            )
        )
    elif rows.empty:
        blocks.append(Callout("This run holds no rows.", "warning"))
    else:
        blocks.append(Callout("Every cell of this run measured without error.", "ok"))
    hosts = worker_hosts(rows)
    executor = (run.config.get("executor") or {}).get("kind", "local")
    if len(hosts) > 1:
        blocks.append(
            Callout(
                f"This run's cells came from {len(hosts)} hosts ({executor} executor): "
                + ", ".join(f"{h} ({n} cells)" for h, n in hosts.items())
                + ". Timings compare fairly only between cells of the same host and GPU.",
                "warning",
            )
        )
    seeds = sorted({int(s) for s in rows["seed"].dropna()}) if "seed" in rows else []
    seed_items = (
        [("seeds", f"{', '.join(map(str, seeds))} (tables show mean ± sd)")] if len(seeds) > 1 else []
    )
    blocks.append(
        KeyValues(
            "",
            [
                ("run", run.run_id),
                ("suite", run.suite),
                ("status", run.status),
                ("started", run.started),
                ("finished", run.finished or "—"),
                ("benchmarks", ", ".join(dict.fromkeys(rows["benchmark"])) or "—"),
                ("quantizers", ", ".join(dict.fromkeys(rows["quantizer"])) or "—"),
                ("rows", f"{len(rows)} ({n_err} error, {n_skip} skipped)"),
                ("environment", run.env_hash),
                ("executor", executor),
                ("hosts", ", ".join(hosts) or "—"),
            ]
            + seed_items,
        )
    )
    return blocks


def build_report(
    store: Any, run_id: str | None = "latest", baseline: str | None = None, figures: bool = True
) -> Document:
    """The report of one run of ``store`` as a ``Document``; ``baseline`` adds ratios to that quantizer."""
    from vqbench.reports.plots import run_plots
    from vqbench.reports.tables import benchmark_tables

    run = load_run(store, run_id)
    doc = Document(title=f"vqbench report · {run.suite}", subtitle=run.stamp)
    doc.sections.append(Section("Summary", summary_blocks(run)))
    from vqbench.reports.precision import add_precision_section, float32_rows

    every_row, run.rows = run.rows, float32_rows(run.rows)  # other precisions: their own section
    if baseline and not (run.rows["quantizer"] == baseline).any():
        doc.sections[0].blocks.append(
            Callout(f"Baseline {baseline!r} is not in this run; no ratios.", "warning")
        )
    from vqbench.reports.findings import findings_blocks

    if run.rows["benchmark"].isin(with_view("training")).any():
        doc.sections.append(Section("Findings", findings_blocks(run.rows, run.suite, run.stamp)))
    add_precision_section(doc, every_row, run.stamp)
    from vqbench.reports.tokens import tokens_section

    tokens = tokens_section(run.rows, run.stamp, figures)
    if tokens is not None:
        doc.sections.append(tokens)
    sections: dict[str, Section] = {}
    for table in benchmark_tables(run.rows, run.stamp, baseline):
        bench = table.title.split(" · ", 1)[0]
        if bench not in sections:
            sections[bench] = Section(f"Benchmark: {bench}")
            doc.sections.append(sections[bench])
        sections[bench].blocks.append(table)
    if figures:
        figs = run_plots(run.rows, run.stamp)
        if figs:
            doc.sections.append(Section("Figures", list(figs)))
    settings = settings_table(run)
    if settings is not None:
        doc.sections.append(Section("Quantizer settings", [settings]))
    errors = errors_table(run)
    if errors is not None:
        doc.sections.append(Section("Errors", [errors]))
    doc.sections.append(
        Section(
            "Environment",
            [
                Paragraph("Runs compare only with runs of the same environment fingerprint (env_hash)."),
                environment_block(run, ""),
            ],
        )
    )
    return doc


def write_report(
    doc: Document, out_dir: str | Path, stem: str = "report", formats: tuple[str, ...] = ("md", "html")
) -> dict[str, Path]:
    """Write ``doc`` as ``<stem>.md`` (+ figure files) and/or ``<stem>.html`` into ``out_dir``."""
    from vqbench.reports.render_html import write_html
    from vqbench.reports.render_markdown import write_markdown

    unknown = sorted(set(formats) - {"md", "html"})
    if unknown:
        raise UserError(f"report formats must be among 'md', 'html', got {unknown}")
    out = Path(out_dir)
    paths = {}
    if "md" in formats:
        paths["md"] = write_markdown(doc, out / f"{stem}.md")
    if "html" in formats:
        paths["html"] = write_html(doc, out / f"{stem}.html")
    return paths


__all__ = ["RunData", "build_report", "environment_block", "load_run", "write_report"]
