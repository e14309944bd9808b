"""Run a suite, store it, compare it with the history of comparable runs, and gate on regressions.

History: the last --window finished runs of the same suite with the same environment fingerprint;
a run whose fingerprint differs from the last runs' in package versions alone (torch,
vector-quantize-pytorch, python, CUDA) is judged against the runs before that upgrade, and the
report says which figures the upgrade moved.
{gate_text}; a figure that measured before and fails now regresses. These are the built-in
settings; thresholds per metric and per quantizer pattern come from a TOML file (--config; see
vqbench.reports.thresholds), and --threshold sets the one for other timing figures.

Writes nightly.html, nightly.md (+ figures) and summary.json. Exit codes: 0 pass; 1 a regression;
4 the run cannot be judged whole (it is not finished, figures that its history measured are
missing, some of its cells or seeds failed, or it measured nothing); 2 bad input.

A run with a regression stays out of the history, so a lasting slowdown is flagged every night
(never silently the new baseline) until it is accepted: `vqbench nightly --accept RUN` records
that in the store, and from then on that run (and a step change it shows) is the baseline.
Imported runs (`vqbench results --import`) join the history only with --include-imported.

Examples:
  vqbench nightly --suite full
  vqbench nightly --suite standard --config thresholds.toml --out /srv/nightly/$(date +%F)
  vqbench nightly --run latest            # gate a stored run without running anything
  vqbench nightly --accept 20260102-030405-abc123   # the slowdown is intended: the new baseline
"""

from __future__ import annotations

import argparse

from vqbench._cli_options import add_store_option
from vqbench._commands import suite_options
from vqbench._commands.suite_options import suite_kwargs
from vqbench.errors import UserError
from vqbench.reports._cli_common import add_baseline_option, add_out_option, baseline_name, out_dir
from vqbench.reports.thresholds import gate_text, relative_time_threshold
from vqbench.suite._cli_options import add_suite_options


def _help_text(doc: str) -> str:
    """The docstring with the thresholds the gate applies, read from its settings, in the paragraph
    that names them (wrapped again, since the help keeps the docstring's lines)."""
    import textwrap

    head, rest = doc.split("\n\n", 1)
    paragraph, tail = rest.split("\n\n", 1)
    filled = textwrap.fill(" ".join(paragraph.replace("{gate_text}", gate_text()).split()), width=98)
    return f"{head}\n\n{filled}\n\n{tail}"


__doc__ = _help_text(__doc__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``vqbench nightly``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_suite_options(parser, "full")
    parser.add_argument(
        "--run",
        dest="existing_run",
        default=None,
        metavar="RUN",
        help="gate this stored run instead of running the suite",
    )
    parser.add_argument(
        "--accept",
        default=None,
        metavar="RUN",
        help="accept RUN's figures as the new baseline (recorded in the store); runs nothing else",
    )
    parser.add_argument(
        "--include-imported",
        action="store_true",
        help="let runs imported from files join the history",
    )
    parser.add_argument("--config", default=None, metavar="TOML", help="gate thresholds (window, rules, ...)")
    parser.add_argument("--window", type=int, default=None, metavar="N", help="history runs to compare with")
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        metavar="FRACTION",
        help="threshold of timing figures that no rule sets, e.g. 0.1 for 10%% (overrides the config "
        f"file); relative times keep their rule's {relative_time_threshold() * 100:.0f}%% "
        "(a [[rule]] with metric = 'relative_time*' in --config sets it)",
    )
    add_baseline_option(parser)
    add_out_option(parser, "nightly report", folder="nightly")
    parser.add_argument(
        "--site",
        default=None,
        metavar="URL",
        help="where the history site (`vqbench publish`) is served or lies, e.g. "
        "https://ci.example.org/vqbench or ../site: the report links each figure to its page there",
    )
    parser.add_argument(
        "--no-remeasure",
        action="store_true",
        help="report timing suspects without re-measuring their cells first",
    )
    add_store_option(parser)


def run(args: argparse.Namespace) -> int:
    """Run (or take) a run, gate it, write the outputs; 1 on regression, else 0."""

    from rich.text import Text

    from vqbench._console import make_console
    from vqbench.reports.nightly import (
        EXIT_INCOMPLETE,
        gate_run,
        nightly_document,
        nightly_summary,
        suspect_cells,
        write_nightly,
    )
    from vqbench.reports.render_terminal import rich_table
    from vqbench.reports.thresholds import load_gate_config

    config = load_gate_config(args.config)
    if args.window is not None:
        if args.window < 1:
            raise UserError(f"--window must be >= 1, got {args.window}")
        config.window = args.window
    if args.threshold is not None:
        if not 0 <= args.threshold < 10:
            raise UserError(f"--threshold must be a fraction such as 0.1, got {args.threshold}")
        config.threshold = args.threshold
    console = make_console()
    if args.accept:
        return _accept(args, console)
    store = _open_for_gate(args.store, args.existing_run)
    try:
        if args.existing_run:
            run_id = store.resolve_run(args.existing_run)
            if store.rows(run_id).empty:
                console.print(
                    Text(
                        f"run {run_id} ({store.run_info(run_id)['status']}) holds no rows: nothing to gate. "
                        f"Gate: fail (exit {EXIT_INCOMPLETE})",
                        style="bold red",
                    )
                )
                return EXIT_INCOMPLETE
        else:
            quantizers = args.quantizers.split(",") if args.quantizers else None
            run_id = suite_options.run_suite_for(store, args.suite, quantizers, **suite_kwargs(args))
        outcome = gate_run(store, run_id, config, include_imported=args.include_imported)
        suspects = suspect_cells(outcome)
        if suspects and not args.no_remeasure and not args.existing_run:
            from vqbench.suite.remeasure import remeasure_cells

            console.print(f"re-measuring {len(suspects)} suspect cell(s) before reporting", highlight=False)
            confirm = remeasure_cells(store, run_id, suspects, progress=not args.no_progress)
            outcome = gate_run(
                store, run_id, config, confirm_run=confirm, include_imported=args.include_imported
            )
        baseline = baseline_name(args.baseline)
        doc = nightly_document(store, outcome, baseline=baseline, site=args.site)
        _record_verdict(store, run_id, outcome)
    finally:
        store.close_or_discard()
    summary = nightly_summary(outcome, site=args.site)
    paths = write_nightly(doc, summary, out_dir(args.out, run_id, folder="nightly"))
    verdict = doc.sections[0].blocks[0]
    failed = summary["exit_code"] != 0
    console.print(Text(verdict.text, style="bold red" if failed else "green"))
    if outcome.upgrade:
        console.print(Text(outcome.gate.notes[0]))
    console.print("States: " + ", ".join(f"{n} {s}" for s, n in summary["states"].items()), highlight=False)
    for title in ("Regressions", "Improvements"):
        for section in doc.sections:
            if section.title == title:
                console.print(rich_table(section.blocks[0]))
    for kind, path in paths.items():
        console.print(f"{kind}: {path}", highlight=False)
    return summary["exit_code"]


def _open_for_gate(path, existing_run: str | None):
    """The store, writable; a stored run (``--run``) in a store this user cannot write is gated
    read-only (its verdict is then in summary.json only)."""
    from vqbench.results import StoreError, open_store

    try:
        return open_store(path)
    except StoreError:
        if not existing_run:
            raise
        return open_store(path, readonly=True)


def _record_verdict(store, run_id: str, outcome) -> None:
    """Keep the verdict with the run: a flagged run stays out of later histories until accepted."""
    from vqbench.results import StoreError
    from vqbench.results._schema import utc_now

    gate = outcome.gate
    status = "regression" if gate.regressed else ("incomplete" if gate.incomplete else "pass")
    try:
        verdict = {"status": status, "time": utc_now(), "history": len(gate.history_runs)}
        store.update_config(run_id, gate=verdict)
    except StoreError:  # a read-only store: the verdict is in summary.json
        pass


def _accept(args, console) -> int:
    """``--accept RUN``: record that RUN's figures are the intended new level."""
    from vqbench.results import open_store
    from vqbench.results._schema import utc_now

    with open_store(args.store) as store:
        if not store.path.exists():
            raise UserError(f"no result store at {store.path}; pass --store PATH")
        run_id = store.resolve_run(args.accept)
        info = store.run_info(run_id)
        if info["status"] != "finished":
            raise UserError(f"run {run_id} is {info['status']}: only a finished run can be accepted")
        block = _flagged_block(store, run_id, info)
        now = utc_now()
        for rid in block[:-1]:
            store.update_config(rid, accepted={"time": now, "with": run_id})
        store.update_config(run_id, accepted={"time": now, "from": block[0]})
    console.print(
        f"run {run_id} accepted ({len(block)} run(s) at its level, from {block[0]}): they join the "
        "history, and from now on the history starts at that level",
        highlight=False,
    )
    return 0


def _flagged_block(store, run_id: str, info: dict) -> list[str]:
    """``run_id`` and the runs flagged just before it (same suite and environment): one new level."""
    from vqbench.reports.history import run_marks

    runs = store.runs().sort_values("started")
    runs = runs[(runs["suite"] == info["suite"]) & (runs["env_hash"] == info["env_hash"])]
    runs = runs[runs["status"] == "finished"]
    ids, configs = runs["run_id"].tolist(), runs["config"].tolist()
    at = ids.index(run_id)
    block = [run_id]
    for rid, config in zip(reversed(ids[:at]), reversed(configs[:at]), strict=True):
        marks = run_marks(config)
        if not marks["flagged"] or marks["accepted"]:
            break
        block.insert(0, rid)
    return block
