"""Run a suite, store it, compare it with the history of comparable runs, and gate on regressions.

History: the last --window finished runs of the same suite with the same environment fingerprint.
A timing figure regresses when it is worse by more than the threshold (default 10%) AND beyond
the history's noise band; quality figures (usage, PSNR, MSE) regress beyond absolute tolerances;
a figure that measured before and fails now regresses. Thresholds per metric and per quantizer
pattern come from a TOML file (--config; see vqbench.reports.thresholds).

Writes nightly.html, nightly.md (+ figures) and summary.json; exits 1 on a regression, else 0.

Examples:
  vqbench nightly --suite full
  vqbench nightly --suite standard --config thresholds.toml --out /srv/nightly/$(date +%F)
  vqbench nightly --run latest            # gate a stored run without running anything
"""

from __future__ import annotations

import argparse

from vqbench._commands import suite_options
from vqbench._commands.suite_options import add_suite_options, suite_kwargs
from vqbench.reports._cli_common import add_store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``vqbench nightly``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_suite_options(parser, "full")
    parser.add_argument(
        "--quantizers", default=None, metavar="PATTERNS", help="replace the profile's quantizers"
    )
    parser.add_argument(
        "--run",
        dest="existing_run",
        default=None,
        metavar="RUN",
        help="gate this stored run instead of running the suite",
    )
    parser.add_argument("--config", default=None, metavar="TOML", help="gate thresholds (window, rules, ...)")
    parser.add_argument("--window", type=int, default=None, metavar="N", help="history runs to compare with")
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        metavar="FRACTION",
        help="timing threshold, e.g. 0.1 for 10%% (overrides the config file)",
    )
    parser.add_argument(
        "--baseline", default="fsq", metavar="NAME", help="ratios in the run tables (default fsq)"
    )
    parser.add_argument(
        "--out", default=None, metavar="DIR", help="output folder (default: .vqbench/nightly/<run>)"
    )
    parser.add_argument(
        "--no-remeasure",
        action="store_true",
        help="report timing suspects without re-measuring their cells first",
    )
    add_store(parser)


def run(args: argparse.Namespace) -> int:
    """Run (or take) a run, gate it, write the outputs; 1 on regression, else 0."""
    from pathlib import Path

    from rich.text import Text

    from vqbench._console import make_console
    from vqbench.reports.nightly import (
        gate_run,
        nightly_document,
        nightly_summary,
        suspect_cells,
        write_nightly,
    )
    from vqbench.reports.render_terminal import rich_table
    from vqbench.reports.thresholds import load_gate_config
    from vqbench.results import open_store

    config = load_gate_config(args.config)
    if args.window is not None:
        if args.window < 1:
            raise ValueError(f"--window must be >= 1, got {args.window}")
        config.window = args.window
    if args.threshold is not None:
        if not 0 <= args.threshold < 10:
            raise ValueError(f"--threshold must be a fraction such as 0.1, got {args.threshold}")
        config.threshold = args.threshold
    console = make_console()
    store = open_store(args.store)
    try:
        if args.existing_run:
            run_id = store.resolve_run(args.existing_run)
        else:
            quantizers = args.quantizers.split(",") if args.quantizers else None
            run_id = suite_options.run_suite_for(store, args.suite, quantizers, **suite_kwargs(args))
        outcome = gate_run(store, run_id, config)
        suspects = suspect_cells(outcome)
        if suspects and not args.no_remeasure and not args.existing_run:
            from vqbench.suite.remeasure import remeasure_cells

            console.print(f"re-measuring {len(suspects)} suspect cell(s) before reporting", highlight=False)
            confirm = remeasure_cells(store, run_id, suspects, progress=not args.no_progress)
            outcome = gate_run(store, run_id, config, confirm_run=confirm)
        baseline = None if str(args.baseline).lower() in ("", "none") else args.baseline
        doc = nightly_document(store, outcome, baseline=baseline)
    finally:
        store.close_or_discard()
    summary = nightly_summary(outcome)
    paths = write_nightly(doc, summary, Path(args.out) if args.out else Path(".vqbench") / "nightly" / run_id)
    verdict = doc.sections[0].blocks[0]
    console.print(Text(verdict.text, style="bold red" if outcome.gate.regressed else "green"))
    for title in ("Regressions", "Improvements"):
        for section in doc.sections:
            if section.title == title:
                console.print(rich_table(section.blocks[0]))
    for kind, path in paths.items():
        console.print(f"{kind}: {path}", highlight=False)
    return summary["exit_code"]
