"""Suite and executor options shared by ``vqbench compare --candidate`` and ``vqbench nightly``,
and the one place where those commands start a suite run."""

from __future__ import annotations

import argparse
from typing import Any

from vqbench.quantizers._plugins import add_plugins_option
from vqbench.suite._precision_names import add_dtype_option
from vqbench.suite.executors._options import add_executor_options, executor_overrides


def add_suite_options(parser: argparse.ArgumentParser, default_suite: str) -> None:
    """The runner's selection and executor options, passed through to ``run_suite``."""
    parser.add_argument(
        "--suite",
        default=default_suite,
        metavar="NAME|PATH",
        help=f"built-in profile or TOML profile path (default: {default_suite})",
    )
    parser.add_argument("--datasets", default=None, metavar="NAMES", help="comma-separated datasets")
    parser.add_argument(
        "--device", default=None, metavar="DEVICES", help="cpu, cuda, cuda:N (comma-separated)"
    )
    parser.add_argument(
        "--backend", default=None, metavar="BACKENDS", help="eager, compile, ... (comma-separated)"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed for every cell")
    add_dtype_option(parser)
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="per-cell time limit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_plugins_option(parser)
    add_executor_options(parser)


def suite_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for ``run_suite_for`` from the parsed options."""
    return {
        "datasets": args.datasets,
        "devices": args.device,
        "backends": args.backend,
        "seed": args.seed,
        "dtypes": args.dtype,
        "timeout": args.timeout,
        "progress": not args.no_progress,
        "executor": executor_overrides(args) or None,
        "workers": args.workers,
        "plugins": args.plugins,
    }


def run_suite_for(
    store: Any,
    suite: str | None,
    quantizers: list[str] | None = None,
    **options: Any,
) -> str:
    """Run ``suite`` (default quick) through the suite's runner into ``store``; return the run id."""
    from vqbench.suite import run_suite

    return run_suite(
        suite or "quick",
        quantizers=",".join(quantizers) if quantizers else None,
        store=store,
        **options,
    )


__all__ = ["add_suite_options", "run_suite_for", "suite_kwargs"]
