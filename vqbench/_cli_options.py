"""Command-line options that commands of several rooms share: the result store."""

from __future__ import annotations

import argparse


def add_store_option(parser: argparse.ArgumentParser) -> None:
    """``--store PATH``."""
    parser.add_argument(
        "--store",
        default=None,
        metavar="PATH",
        help="SQLite result store (default: $VQBENCH_STORE or .vqbench/results.sqlite)",
    )


__all__ = ["add_store_option"]
