"""Compare two runs, or run a candidate quantizer beside baselines and compare them.

Each effect's change is judged in its metric's own direction, with a noise-aware verdict:
better, worse, or within noise (the change stays inside the figures' stored spreads). Timing is
judged once per operation, on its relative time; the other timing views are shown, not counted,
and machine probes (copy bandwidth, the control workload) are not compared. A quality figure of one
seed is "within noise (1 seed)" unless it moved beyond an absolute tolerance
(vqbench.reports.compare.SINGLE_SEED_TOLERANCES). Exit 1 when a candidate's cell failed (the failed
cells are printed as a table), or with --fail-on-worse when an effect got worse.

With --env twice, the suite runs under two dependency sets (pip requirements; each environment is
built once and cached beside the store), every cell alternating between them on the same cores,
and the second is compared with the first: what an upgrade moved.

Examples:
  vqbench compare RUN_A RUN_B                       # B against A (B is the new one)
  vqbench compare --env 'vector-quantize-pytorch==1.32.0' --env 'vector-quantize-pytorch==1.34.1'
  vqbench compare --candidate my_fsq.py:MyFSQ --baselines fsq,vq,lfq --suite quick
  vqbench compare --candidate fsq-upstream --baselines fsq --run RUN   # no new run: use a stored one
  vqbench compare --candidate my_fsq.py:MyFSQ --suite standard --dry-run  # the cells; runs nothing

The candidate is measured wherever a baseline is: a benchmark or sweep with its own quantizer list
(standard's rate_distortion sweep, quick's usage sweep) gets the candidate added.
"""

from __future__ import annotations

import argparse

from vqbench._cli_options import add_store_option
from vqbench._commands import suite_options
from vqbench._commands.suite_options import suite_kwargs
from vqbench.errors import UserError
from vqbench.reports._cli_common import add_output, formats, out_dir, split_names
from vqbench.suite._cli_options import add_suite_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``vqbench compare``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "runs", nargs="*", metavar="RUN", help="two run ids (or prefixes, or 'latest'): A then B"
    )
    parser.add_argument(
        "--candidate",
        default=None,
        metavar="NAME",
        help="a quantizer (registry name or file.py:Name) to run beside the baselines",
    )
    parser.add_argument(
        "--baselines",
        default="fsq,vq,lfq",
        metavar="NAMES",
        help="comma-separated baselines for --candidate (default: fsq,vq,lfq)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=None,
        metavar="REQUIREMENTS",
        help="pip requirements of a dependency environment; twice: run the suite under both and "
        "compare the second with the first",
    )
    parser.add_argument(
        "--run",
        dest="existing_run",
        default=None,
        metavar="RUN",
        help="with --candidate: compare within this stored run instead of running the suite",
    )
    parser.add_argument(
        "--noise-k",
        type=float,
        default=1.0,
        metavar="K",
        help="noise band: K x the mean of the two spreads (IQR) (default: 1)",
    )
    parser.add_argument("--fail-on-worse", action="store_true", help="exit 1 when any figure got worse")
    add_suite_options(parser, "quick")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="with --candidate: print the cells the suite would run (the candidate in every benchmark "
        "and sweep that measures a baseline), cost and wall time; run nothing",
    )
    add_store_option(parser)
    add_output(parser, "comparison report")


def run(args: argparse.Namespace) -> int:
    """Compare, print the table, write the report."""
    from vqbench._console import make_console
    from vqbench.reports.compare import verdict_counts
    from vqbench.reports.compare_report import candidate_document, compare_runs_document
    from vqbench.reports.document import Document
    from vqbench.reports.render_terminal import print_document
    from vqbench.reports.report import write_report
    from vqbench.results import open_store

    fmts = formats(args.format)
    if args.noise_k < 0:
        raise UserError(f"--noise-k must be >= 0, got {args.noise_k}")
    console = make_console()
    if args.quantizers and not args.env:
        raise UserError("--quantizers selects the quantizers of an --env comparison; use --baselines")
    if args.env:
        if args.candidate or args.runs or args.existing_run:
            raise UserError("--env compares two dependency sets; give no runs, --candidate or --run")
        if len(args.env) != 2:
            raise UserError(f"--env must be given twice (old, then new), got {len(args.env)}")
        names = split_names(args.quantizers) if args.quantizers else None
        with open_store(args.store) as store:
            a, b = suite_options.run_suite_for(
                store, args.suite, names, environments=args.env, **suite_kwargs(args)
            )
            doc, result = compare_runs_document(store, a, b, noise_k=args.noise_k)
        name = f"compare-{a}-{b}"
    elif args.candidate:
        if args.runs:
            raise UserError("give either two runs or --candidate, not both")
        baselines = split_names(args.baselines)
        if not baselines:
            raise UserError("--baselines must name at least one quantizer, e.g. fsq,vq,lfq")
        if args.dry_run:
            if args.existing_run:
                raise UserError("--dry-run plans a new run; drop --run")
            suite_options.print_dry_run(
                args.store,
                args.suite,
                [args.candidate, *baselines],
                candidates=[args.candidate],
                **suite_kwargs(args),
            )
            return 0
        with open_store(args.store) as store:
            if args.existing_run:
                run_id = store.resolve_run(args.existing_run)
            else:
                names = [args.candidate, *baselines]
                run_id = suite_options.run_suite_for(
                    store, args.suite, names, candidates=[args.candidate], **suite_kwargs(args)
                )
            doc, result = candidate_document(store, run_id, args.candidate, baselines, noise_k=args.noise_k)
        name = f"compare-{run_id}"
    else:
        if args.dry_run:
            raise UserError("--dry-run plans a candidate's run; give --candidate NAME")
        if len(args.runs) != 2:
            raise UserError(f"compare needs two runs (A B) or --candidate NAME; got {len(args.runs)} run(s)")
        with open_store(args.store, readonly=True) as store:
            a, b = (store.resolve_run(r) for r in args.runs)
            doc, result = compare_runs_document(store, a, b, noise_k=args.noise_k)
        name = f"compare-{a}-{b}"
    # the candidate's full run report goes to the files; the terminal gets the comparison
    shown = Document(doc.title, doc.subtitle, doc.sections[:1]) if args.candidate else doc
    print_document(shown, console)
    paths = write_report(doc, out_dir(args.out, name), stem="compare", formats=fmts)
    for kind, path in paths.items():
        console.print(f"{kind}: {path}", highlight=False)
    counts = verdict_counts(result)
    failures = result.attrs.get("failures")
    if failures is not None and len(failures):
        return 1
    return 1 if args.fail_on_worse and (counts.get("worse") or counts.get("error")) else 0
