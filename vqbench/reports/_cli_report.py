"""Write the report of a run: a table per benchmark (units, best marked, ratios to a baseline),
seaborn figures, errors and the environment, as Markdown (+ PNG files) and one self-contained HTML.

Examples:
  vqbench report                          # the latest run
  vqbench report 20260101-120000-abc123 --baseline fsq --out reports/
  vqbench report latest --format html
"""

from __future__ import annotations

import argparse

from vqbench._cli_options import add_store_option
from vqbench.reports._cli_common import add_baseline_option, add_output, baseline_name, formats, out_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``vqbench report``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "run_id",
        nargs="?",
        default="latest",
        metavar="RUN",
        help="run id, unique prefix, or 'latest' (default)",
    )
    add_baseline_option(parser)
    parser.add_argument("--no-figures", action="store_true", help="tables only")
    add_store_option(parser)
    add_output(parser, "report")


def run(args: argparse.Namespace) -> int:
    """Build and write the report; print where it is."""
    from vqbench._console import make_console
    from vqbench.reports.report import build_report, write_report
    from vqbench.results import open_store

    fmts = formats(args.format)
    baseline = baseline_name(args.baseline)
    console = make_console()
    with open_store(args.store, readonly=True) as store:
        run_id = store.resolve_run(args.run_id)
        doc = build_report(store, run_id, baseline=baseline, figures=not args.no_figures)
    paths = write_report(doc, out_dir(args.out, run_id), formats=fmts)
    for kind, path in paths.items():
        console.print(f"{kind}: {path}", highlight=False)
    return 0
