"""Options shared by the report commands: where the report goes, its formats, the ratio baseline."""

from __future__ import annotations

import argparse
from pathlib import Path

from vqbench.errors import UserError


def add_out_option(parser: argparse.ArgumentParser, what: str, folder: str = "reports") -> None:
    """``--out DIR`` (default ``.vqbench/<folder>/<run id>``)."""
    parser.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help=f"folder for the {what} (default: .vqbench/{folder}/<run id>)",
    )


def add_format_option(parser: argparse.ArgumentParser) -> None:
    """``--format md,html``."""
    parser.add_argument(
        "--format",
        default="md,html",
        metavar="LIST",
        help="comma-separated output formats among md, html (default: md,html)",
    )


def add_output(parser: argparse.ArgumentParser, what: str) -> None:
    """``--out DIR`` and ``--format md,html``."""
    add_out_option(parser, what)
    add_format_option(parser)


def add_baseline_option(parser: argparse.ArgumentParser) -> None:
    """``--baseline NAME``: the quantizer that ratios are taken to; read it with ``baseline_name``."""
    parser.add_argument(
        "--baseline",
        default="fsq",
        metavar="NAME",
        help="quantizer that ratios are taken to (default: fsq; 'none' for no ratios)",
    )


def baseline_name(text: str | None) -> str | None:
    """The ``--baseline`` value, or None for 'none' or an empty one."""
    return None if str(text).lower() in ("", "none") else text


def formats(text: str) -> tuple[str, ...]:
    """The ``--format`` list, checked."""
    items = tuple(dict.fromkeys(p.strip().lower() for p in text.split(",") if p.strip()))
    bad = [i for i in items if i not in ("md", "html")]
    if bad or not items:
        raise UserError(f"--format must list md and/or html, got {text!r}")
    return items


def out_dir(arg: str | None, name: str, folder: str = "reports") -> Path:
    """``--out`` or ``.vqbench/<folder>/<name>`` in the working folder."""
    return Path(arg) if arg else Path(".vqbench") / folder / name


def split_names(text: str | None) -> list[str]:
    """A comma-separated list of names, stripped, without empties or repeats."""
    if not text:
        return []
    return list(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))


__all__ = [
    "add_baseline_option",
    "add_format_option",
    "add_out_option",
    "add_output",
    "baseline_name",
    "formats",
    "out_dir",
    "split_names",
]
