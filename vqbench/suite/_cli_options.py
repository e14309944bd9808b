"""The suite's command-line options, shared by ``vqbench run``, ``compare --candidate`` and ``nightly``."""

from __future__ import annotations

import argparse

from vqbench.quantizers._plugins import add_plugins_option

from ._precision_names import add_dtype_option
from .executors._options import add_executor_options


def add_selection_options(
    parser: argparse.ArgumentParser, default_suite: str | None = None, quantizers: bool = True
) -> None:
    """What runs: ``--suite``, ``--quantizers`` (unless ``quantizers`` is false), ``--datasets``,
    ``--device``, ``--backend``, ``--dtype`` and ``--plugins``."""
    parser.add_argument(
        "--suite",
        default=default_suite,
        metavar="NAME|PATH",
        help="built-in profile (quick, standard, full) or a TOML profile path "
        f"(default: {default_suite or 'quick'})",
    )
    if quantizers:
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
    add_dtype_option(parser)
    add_plugins_option(parser)


def add_cell_options(parser: argparse.ArgumentParser) -> None:
    """How each cell runs: ``--seed``, ``--timeout`` and ``--no-progress``."""
    parser.add_argument("--seed", type=int, default=None, help="seed for every cell, replacing the profile's")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="per-cell time limit, replacing the profile's",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_suite_options(
    parser: argparse.ArgumentParser, default_suite: str | None = None, quantizers: bool = True
) -> None:
    """The selection, cell and executor options: everything a suite run takes."""
    add_selection_options(parser, default_suite, quantizers=quantizers)
    add_cell_options(parser)
    add_executor_options(parser)


__all__ = ["add_cell_options", "add_selection_options", "add_suite_options"]
