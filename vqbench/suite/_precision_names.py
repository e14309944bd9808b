"""Precision names and the ``--dtype`` option, without torch (the CLI parser imports this)."""

from __future__ import annotations

import argparse
import difflib
from typing import Any

from vqbench.errors import UserError

PRECISIONS = ("float32", "bfloat16", "float16", "autocast-bfloat16", "autocast-float16")


def check_precisions(values: Any, where: str) -> tuple[str, ...]:
    """``values`` (a list or a comma-separated string) as a tuple of known precisions, or a
    ``ValueError`` naming ``where``, what was expected and what came."""
    items = values.split(",") if isinstance(values, str) else values
    if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) for v in items):
        raise UserError(f"{where}: expected a list of precisions among {list(PRECISIONS)}, got {values!r}")
    out = tuple(dict.fromkeys(v.strip() for v in items if v.strip()))
    if not out:
        raise UserError(f"{where}: expected at least one precision among {list(PRECISIONS)}, got {values!r}")
    bad = [v for v in out if v not in PRECISIONS]
    if bad:
        close = difflib.get_close_matches(bad[0], PRECISIONS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(
            f"{where}: unknown precision {bad[0]!r}{hint}; expected some of {', '.join(PRECISIONS)}"
        )
    return out


def _dtype_list(text: str) -> str:
    try:
        return ",".join(check_precisions(text, "--dtype"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--dtype: ")) from None


def add_dtype_option(parser: argparse.ArgumentParser) -> None:
    """``--dtype PRECISIONS``: checked when parsed, before anything runs."""
    parser.add_argument(
        "--dtype",
        default=None,
        type=_dtype_list,
        metavar="PRECISIONS",
        help=f"precisions, comma-separated, replacing the profile's dtypes: {', '.join(PRECISIONS)}",
    )


__all__ = ["PRECISIONS", "add_dtype_option", "check_precisions"]
