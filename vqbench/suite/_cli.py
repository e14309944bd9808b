"""Run a benchmark suite (default: quick, on the CPU) and store its rows.

Examples:
  vqbench run                                   # the quick suite, every default quantizer
  vqbench run --suite standard --quantizers 'fsq*,vq'
  vqbench run --suite my_profile.toml --store results.sqlite
  vqbench run --quantizers path/to/my_quant.py:MyQuantizer
  vqbench run --plugins my_pkg.quantizers --quantizers my-fsq,fsq   # @register_quantizer names
  vqbench run --resume 20260101-120000-abc123   # only the cells that have no rows yet
  vqbench run --suite full --dry-run            # cells, missing data, cost, wall time; runs nothing
  vqbench run --suite full --executor slurm --workers 16 --partition gpu --gpus-per-job 1
  vqbench run --suite full --executor ray --address auto

Exit codes: 0 every cell measured (skipped cells, such as a dataset not present here, are fine);
1 some cells failed (their errors are listed); 3 nothing was measured at all; 2 bad input
(nothing ran: also a candidate or plugin quantizer that fails its pre-flight check, see
`vqbench check`); 130 interrupted (finished cells are stored; resume with --resume).
"""

from __future__ import annotations

import argparse

from vqbench._cli_options import add_store_option
from vqbench.errors import UserError

from ._cli_options import add_suite_options
from .executors._options import executor_overrides

EXIT_CELLS_FAILED = 1
EXIT_NOTHING_MEASURED = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``vqbench run``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_suite_options(parser)
    add_store_option(parser)
    parser.add_argument(
        "--resume",
        default=None,
        metavar="RUN_ID",
        help="continue a stored run: run only its cells that have no rows yet",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the cells, missing datasets, estimated cost and wall time; run nothing",
    )


def run(args: argparse.Namespace) -> int:
    """Run the suite, print the run id, a summary table and where the results are."""
    from rich.text import Text

    from vqbench._console import make_console
    from vqbench.results import open_store

    from .runner import RunInterrupted, run_suite
    from .summary import print_summary

    if args.resume and args.suite:
        raise UserError("--resume continues a stored run with its own suite and settings; drop --suite")
    console = make_console()
    if args.dry_run:
        return _dry_run(args, console)
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
                executor=executor_overrides(args),
                workers=args.workers,
                plugins=args.plugins,
                dtypes=args.dtype,
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


def _dry_run(args: argparse.Namespace, console: object) -> int:
    """Plan the run against the store's history (read-only), print it, run nothing."""
    from pathlib import Path

    from vqbench.results import default_store_path, open_store

    from ._dry_run import print_plan
    from .prepare import prepare_run

    path = Path(args.store) if args.store else default_store_path()
    store = open_store(path, readonly=True) if path.exists() or args.resume else None
    try:
        prepared = prepare_run(
            store,
            args.suite,
            quantizers=args.quantizers,
            datasets=args.datasets,
            devices=args.device,
            backends=args.backend,
            seed=args.seed,
            resume=args.resume,
            timeout=args.timeout,
            executor=executor_overrides(args),
            workers=args.workers,
            check_devices_here=False,
            plugins=args.plugins,
            dtypes=args.dtype,
        )
        print_plan(prepared, store, console)
    finally:
        if store is not None:
            store.close()
    return 0
