"""The one place where reports start a suite run (``vqbench compare --candidate``, ``vqbench nightly``)."""

from __future__ import annotations

from typing import Any


def run_suite_for(
    store: Any,
    suite: str | None,
    quantizers: list[str] | None = None,
    *,
    datasets: str | None = None,
    devices: str | None = None,
    backends: str | None = None,
    seed: int | None = None,
    timeout: float | None = None,
    progress: bool = True,
) -> str:
    """Run ``suite`` through the suite's runner into ``store``; returns the new run id."""
    from vqbench.suite import run_suite

    return run_suite(
        suite or "quick",
        quantizers=",".join(quantizers) if quantizers else None,
        datasets=datasets,
        devices=devices,
        backends=backends,
        store=store,
        seed=seed,
        timeout=timeout,
        progress=progress,
    )


__all__ = ["run_suite_for"]
