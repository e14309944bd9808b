"""Options shared by the report commands."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_store(parser: argparse.ArgumentParser) -> None:
    """``--store PATH``."""
    parser.add_argument(
        "--store",
        default=None,
        metavar="PATH",
        help="SQLite result store (default: $VQBENCH_STORE or .vqbench/results.sqlite)",
    )


def add_output(parser: argparse.ArgumentParser, what: str) -> None:
    """``--out DIR`` and ``--format md,html``."""
    parser.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help=f"folder for the {what} (default: .vqbench/reports/<run id>)",
    )
    parser.add_argument(
        "--format",
        default="md,html",
        metavar="LIST",
        help="comma-separated output formats among md, html (default: md,html)",
    )


def formats(text: str) -> tuple[str, ...]:
    """The ``--format`` list, checked."""
    items = tuple(dict.fromkeys(p.strip().lower() for p in text.split(",") if p.strip()))
    bad = [i for i in items if i not in ("md", "html")]
    if bad or not items:
        raise ValueError(f"--format must list md and/or html, got {text!r}")
    return items


def out_dir(arg: str | None, name: str) -> Path:
    """``--out`` or ``.vqbench/reports/<name>`` in the working folder."""
    return Path(arg) if arg else Path(".vqbench") / "reports" / name


def split_names(text: str | None) -> list[str]:
    """A comma-separated list of names, stripped, without empties or repeats."""
    if not text:
        return []
    return list(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))


__all__ = ["add_output", "add_store", "formats", "out_dir", "split_names"]
