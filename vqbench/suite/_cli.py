"""Run a benchmark suite (default: quick, on the CPU) and store its rows.

Examples:
  vqbench run                                   # the quick suite, every default quantizer
  vqbench run --suite standard --quantizers 'fsq*,vq'
  vqbench run --suite my_profile.toml --store results.sqlite
  vqbench run --quantizers path/to/my_quant.py:MyQuantizer
  vqbench run --resume 20260101-120000-abc123   # only the cells that have no rows yet

Exit codes: 0 every cell measured (skipped cells, such as a dataset not present here, are fine);
1 some cells failed (their errors are listed); 3 nothing was measured at all; 2 bad input
(nothing ran); 130 interrupted (finished cells are stored; resume with --resume).
"""

from __future__ import annotations

import argparse

EXIT_CELLS_FAILED = 1
EXIT_NOTHING_MEASURED = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``vqbench run``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--suite",
        default=None,
        metavar="NAME|PATH",
        help="built-in profile (quick, standard, full) or a TOML profile path (default: quick)",
    )
    parser.add_argument(
        "--quantizers",
        default=None,
        metavar="PATTERNS",
        help="comma-separated names or globs ('fsq*,vq'), 'default', or file.py:Name references",
    )
    parser.add_argument(
        "--datasets",
        default=None,
        metavar="NAMES",
        help="comma-separated datasets, replacing those of every benchmark that uses one",
    )
    parser.add_argument(
        "--device", default=None, metavar="DEVICES", help="cpu, cuda, cuda:N (comma-separated)"
    )
    parser.add_argument(
        "--backend",
        default=None,
        metavar="BACKENDS",
        help="eager, compile, or a quantizer's own backend (comma-separated)",
    )
    parser.add_argument(
        "--store",
        default=None,
        metavar="PATH",
        help="SQLite result store (default: $VQBENCH_STORE or .vqbench/results.sqlite)",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed for every cell, replacing the profile's")
    parser.add_argument(
        "--resume",
        default=None,
        metavar="RUN_ID",
        help="continue a stored run: run only its cells that have no rows yet",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="per-cell time limit, replacing the profile's",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Run the suite, print the run id, a summary table and where the results are."""
    from rich.text import Text

    from vqbench._console import make_console
    from vqbench.results import open_store

    from .runner import RunInterrupted, run_suite
    from .summary import print_summary

    if args.resume and args.suite:
        raise ValueError("--resume continues a stored run with its own suite and settings; drop --suite")
    console = make_console()
    store = open_store(args.store)  # a corrupt or unwritable store fails here, before anything runs
    try:
        try:
            run_id = run_suite(
                args.suite,
                quantizers=args.quantizers,
                datasets=args.datasets,
                devices=args.device,
                backends=args.backend,
                store=store,
                seed=args.seed,
                resume=args.resume,
                timeout=args.timeout,
                progress=not args.no_progress,
            )
        except RunInterrupted as exc:
            console.print(Text(str(exc), style="yellow"))
            console.print(f"finished cells are in {store.path}")
            return 130
        console.print(Text("run id: ") + Text(run_id, style="bold"))
        print_summary(store, run_id, console)
        rows = store.rows(run_id)
        errors = int((rows["status"] == "error").sum()) if len(rows) else 0
        skipped = int((rows["status"] == "skipped").sum()) if len(rows) else 0
        console.print(
            f"{len(rows) - errors - skipped} figures, {errors} errors, {skipped} skipped; results in "
            f"{store.path} (`vqbench results {run_id}`, `vqbench report {run_id}`)",
        )
        measured = len(rows) - errors - skipped
        if measured == 0:
            console.print(Text("nothing was measured (exit 3)", style="bold red"))
            return EXIT_NOTHING_MEASURED
        return EXIT_CELLS_FAILED if errors else 0
    finally:
        store.close_or_discard()
