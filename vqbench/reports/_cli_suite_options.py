"""Suite options shared by ``vqbench compare --candidate`` and ``vqbench nightly``."""

from __future__ import annotations

import argparse


def add_suite_options(parser: argparse.ArgumentParser, default_suite: str) -> None:
    """The runner's selection options, passed through to ``run_suite``."""
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
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="per-cell time limit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def suite_kwargs(args: argparse.Namespace) -> dict:
    """Keyword arguments for ``run_suite_for`` from the parsed options."""
    return {
        "datasets": args.datasets,
        "devices": args.device,
        "backends": args.backend,
        "seed": args.seed,
        "timeout": args.timeout,
        "progress": not args.no_progress,
    }


__all__ = ["add_suite_options", "suite_kwargs"]
