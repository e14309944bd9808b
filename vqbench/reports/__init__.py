"""Reports: comparison tables, seaborn figures, Markdown/HTML, run comparisons and the nightly gate.

Reports read results through ``vqbench.results`` and need no quantizer code. The main entry points:

- ``build_report(store, run_id, baseline)`` -> ``Document``; ``write_report(doc, out_dir)`` writes
  ``report.md`` (+ PNG files) and a self-contained ``report.html``;
- ``compare_rows(rows_a, rows_b)`` / ``compare_candidate(rows, candidate, baselines)``: noise-aware
  verdicts per figure in each metric's own direction;
- ``gate_run(store, run_id, config)`` -> ``NightlyOutcome``; ``nightly_summary`` (the JSON summary)
  and ``nightly_document`` (the nightly report); ``load_gate_config(path)`` reads thresholds (TOML).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Document": "vqbench.reports.document",
    "build_report": "vqbench.reports.report",
    "write_report": "vqbench.reports.report",
    "load_run": "vqbench.reports.report",
    "compare_rows": "vqbench.reports.compare",
    "compare_candidate": "vqbench.reports.compare",
    "compare_runs_document": "vqbench.reports.compare_report",
    "candidate_document": "vqbench.reports.compare_report",
    "gate_run": "vqbench.reports.nightly",
    "nightly_document": "vqbench.reports.nightly",
    "nightly_summary": "vqbench.reports.nightly",
    "write_nightly": "vqbench.reports.nightly",
    "GateConfig": "vqbench.reports.thresholds",
    "load_gate_config": "vqbench.reports.thresholds",
    "render_html": "vqbench.reports.render_html",
    "render_markdown": "vqbench.reports.render_markdown",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vqbench.reports' has no attribute {name!r}")
