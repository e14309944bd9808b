"""The suite's options as ``vqbench compare --candidate`` and ``vqbench nightly`` pass them on, and the
one place where those commands start a suite run."""

from __future__ import annotations

import argparse
from typing import Any

from vqbench.suite.executors._options import executor_overrides


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
    """Run ``suite`` (default quick) through the suite's runner into ``store``; return the run id.
    ``candidates`` (in ``options``) are measured wherever the other quantizers are."""
    from vqbench.suite import run_suite

    return run_suite(
        suite or "quick",
        quantizers=",".join(quantizers) if quantizers else None,
        store=store,
        **options,
    )


def print_dry_run(store_path: Any, suite: str | None, quantizers: list[str], **options: Any) -> None:
    """Plan ``suite`` with these quantizers against the store's history (read-only) and print the
    plan (``vqbench run --dry-run``); nothing runs."""
    from pathlib import Path

    from vqbench._console import make_console
    from vqbench.results import default_store_path, open_store
    from vqbench.suite._dry_run import print_plan
    from vqbench.suite.prepare import prepare_run

    options.pop("progress", None)
    path = Path(store_path) if store_path else default_store_path()
    store = open_store(path, readonly=True) if path.exists() else None
    try:
        prepared = prepare_run(
            store,
            suite or "quick",
            quantizers=",".join(quantizers),
            check_devices_here=False,
            **options,
        )
        print_plan(prepared, store, make_console())
    finally:
        if store is not None:
            store.close()


__all__ = ["print_dry_run", "run_suite_for", "suite_kwargs"]
