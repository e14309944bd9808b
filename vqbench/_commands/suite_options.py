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
    """Run ``suite`` (default quick) through the suite's runner into ``store``; return the run id."""
    from vqbench.suite import run_suite

    return run_suite(
        suite or "quick",
        quantizers=",".join(quantizers) if quantizers else None,
        store=store,
        **options,
    )


__all__ = ["run_suite_for", "suite_kwargs"]
