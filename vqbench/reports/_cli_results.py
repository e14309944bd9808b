"""List stored runs, print a run's figures, export a run, or import result files.

Examples:
  vqbench results                          # the runs in the store
  vqbench results latest                   # the figures of the latest run, per benchmark
  vqbench results RUN --quantizer 'fsq*' --benchmark usage
  vqbench results RUN --export run.parquet # also .json, .csv
  vqbench results RUN --export run.bmf.json  # Bencher Metric Format, for `bencher run --file`
  vqbench results --import .benchmarks/Linux-CPython-3.11-64bit/0001_bench.json
  vqbench results --import run.json --new-id  # the run id is taken: import it under a new one
  vqbench results RUN --declare-died       # it shows as running, but its host or container is gone
  vqbench results RUN --remove             # the run and its rows leave the store

A file never merges into a stored run. Imported runs enter the nightly history only with
`vqbench nightly --include-imported`.
"""

from __future__ import annotations

import argparse

from vqbench._cli_options import add_store_option
from vqbench.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``vqbench results``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "run_id",
        nargs="?",
        default=None,
        metavar="RUN",
        help="run id, unique prefix or 'latest': print its figures (default: list the runs)",
    )
    parser.add_argument("--benchmark", default=None, metavar="NAME", help="only this benchmark")
    parser.add_argument(
        "--quantizer", default=None, metavar="GLOB", help="only quantizers matching this glob"
    )
    parser.add_argument(
        "--export",
        default=None,
        metavar="PATH",
        help="write the run (default: latest) to PATH: .json, .csv, .parquet or .bmf.json "
        "(Bencher Metric Format)",
    )
    parser.add_argument(
        "--import",
        dest="import_files",
        nargs="+",
        default=None,
        metavar="FILE",
        help="import vqbench JSON exports or pytest-benchmark JSON files into the store",
    )
    parser.add_argument(
        "--new-id",
        action="store_true",
        help="with --import: store an export whose run id is already taken under a new id "
        "(its origin is recorded); without it such a file is refused",
    )
    parser.add_argument(
        "--declare-died",
        action="store_true",
        help="mark RUN, shown as running though its process is gone (it ran on another host or "
        "in a container), as interrupted, so that it can be resumed or gated",
    )
    parser.add_argument(
        "--remove",
        action="store_true",
        help="remove RUN (its whole id) and all its rows from the store",
    )
    parser.add_argument(
        "--limit", type=int, default=30, metavar="N", help="runs to list (default: 30, newest)"
    )
    add_store_option(parser)


def _list_runs(store, console, limit: int) -> None:
    from rich.table import Table
    from rich.text import Text

    runs = store.runs()
    if runs.empty:
        console.print(f"no runs in {store.path}; `vqbench run` makes one")
        return
    from vqbench._text import printable
    from vqbench.reports.render_terminal import whole_width

    shown = runs.tail(limit)
    table = Table(title=f"runs in {store.path}")
    # run ids (what `report` and `compare` take) and statuses stay whole; the rest wraps
    for col in ("run", "suite", "status", "started", "duration", "rows", "errors", "environment"):
        justify = "right" if col in ("rows", "errors", "duration") else "left"
        if col in ("run", "status"):
            values = shown["run_id"] if col == "run" else shown["status"]
            table.add_column(col, justify=justify, no_wrap=True, min_width=whole_width(values))
        else:
            table.add_column(col, justify=justify, overflow="fold")
    for rec in shown.to_dict("records"):
        duration = ""
        started = rec["started"]
        started = "?" if started != started else started.strftime("%Y-%m-%d %H:%M:%S")  # NaT: unreadable
        if started != "?" and rec["finished"] is not None and rec["finished"] == rec["finished"]:
            duration = f"{(rec['finished'] - rec['started']).total_seconds():.0f} s"
        styles = {"finished": "green", "interrupted": "yellow", "died": "red", "running": "cyan"}
        style = styles.get(rec["status"], "")
        table.add_row(
            Text(rec["run_id"]),
            Text(printable(rec["suite"])),  # escaped before layout, so its column fits it whole
            Text(rec["status"], style=style),
            Text(started),
            duration,
            str(rec["n_rows"]),
            Text(str(rec["n_errors"]), style="red" if rec["n_errors"] else ""),
            Text(rec["env_hash"]),
        )
    console.print(table)
    for rec in runs.tail(limit).to_dict("records"):
        if rec["status"] == "died":
            console.print(
                Text(
                    f"run {rec['run_id']} died (its process is gone); continue it with "
                    f"`vqbench run --resume {rec['run_id']}`",
                    style="yellow",
                )
            )


def run(args: argparse.Namespace) -> int:
    """List, show, export or import."""
    import fnmatch

    from vqbench._console import make_console
    from vqbench.reports.document import Document, Section
    from vqbench.reports.render_terminal import figures_table, print_document
    from vqbench.results import open_store

    console = make_console()
    changes = args.declare_died or args.remove
    if changes and (args.run_id is None or args.import_files or args.export):
        raise UserError("--declare-died and --remove take one RUN (its whole id) and no --import or --export")
    with open_store(args.store, readonly=not (args.import_files or changes)) as store:
        if args.declare_died:
            store.declare_died(args.run_id)
            console.print(
                f"run {args.run_id} marked interrupted; resume it with `vqbench run --resume {args.run_id}`",
                highlight=False,
            )
        if args.remove:
            removed = store.remove_run(args.run_id)
            console.print(f"run {args.run_id} removed with its {removed} rows", highlight=False)
        if changes:
            return 0
        if args.import_files:
            for path in args.import_files:
                run_id = store.import_file(path, new_id=args.new_id)
                console.print(f"{path}: run {run_id}", highlight=False)
            return 0
        if args.export:
            run_id = store.resolve_run(args.run_id or "latest")
            path = store.export(run_id, args.export)
            console.print(f"run {run_id} written to {path}", highlight=False)
            return 0
        if args.run_id is None:
            _list_runs(store, console, args.limit)
            return 0
        from vqbench.reports.report import load_run, summary_blocks

        data = load_run(store, args.run_id)
        rows = data.rows
        if args.benchmark:
            rows = rows[rows["benchmark"] == args.benchmark]
        if args.quantizer:
            rows = rows[[fnmatch.fnmatchcase(q, args.quantizer) for q in rows["quantizer"]]]
        if rows.empty:
            raise UserError(
                f"run {data.run_id} has no rows for benchmark={args.benchmark!r} quantizer={args.quantizer!r}"
            )
        doc = Document(
            f"vqbench results · {data.run_id}", data.stamp, [Section("Summary", summary_blocks(data))]
        )
        print_document(doc, console)
        for bench in dict.fromkeys(rows["benchmark"]):
            console.print(figures_table(rows[rows["benchmark"] == bench], f"{bench} · {data.stamp}"))
    return 0
