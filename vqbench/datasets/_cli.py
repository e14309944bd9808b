"""List the datasets: kind, shape, source, and whether each is available here (and how to get it if not).

Each dataset is loaded with its default options (or those given with --option), so the shapes (and,
with --checksums, the checksums) shown are those a run would use.
"""

from __future__ import annotations

import argparse
import ast
from typing import Any

from vqbench.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="dataset names or glob patterns (default: all); a .npy / .pt path loads that file as latents",
    )
    parser.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a loader option for the datasets that accept it, e.g. -o dim=32 -o path=/data/fmnist",
    )
    parser.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    parser.add_argument(
        "--checksums", action="store_true", help="add each dataset's checksum (first 16 hex digits)"
    )


def parse_options(items: list[str]) -> dict[str, Any]:
    """``["dim=32", "path=/x"]`` -> ``{"dim": 32, "path": "/x"}`` (Python literals where they parse)."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--option expects KEY=VALUE, got {item!r}")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        options[key.strip()] = value
    return options


def select(names: list[str]) -> list[str]:
    """Registered names matching the patterns, in order; unknown plain names raise with close matches."""
    from . import get_dataset_spec, list_datasets
    from ._registry import is_latents_path

    if not names:
        return list_datasets()
    chosen: list[str] = []
    for name in names:
        if is_latents_path(name):
            matched = [name]
        elif any(c in name for c in "*?["):
            matched = list_datasets(name)
            if not matched:
                raise UserError(f"no dataset matches {name!r}; registered: {', '.join(list_datasets())}")
        else:
            get_dataset_spec(name)  # raises for an unknown name
            matched = [name]
        chosen += [m for m in matched if m not in chosen]
    return chosen


def run(args: argparse.Namespace) -> int:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from vqbench._console import make_console

    from . import DatasetUnavailableError, get_dataset_spec, load_dataset

    names = select(args.names)
    options = parse_options(args.option)
    specs = {name: get_dataset_spec(name) for name in names}
    accepted = {name: set(spec.options()) for name, spec in specs.items()}
    for name, spec in specs.items():
        if spec.accepts_any_option():
            accepted[name] |= set(options)
    unused = [k for k in options if not any(k in opts for opts in accepted.values())]
    if unused:
        raise UserError(f"no selected dataset takes option(s) {', '.join(unused)}; check the names")

    table = Table(title="vqbench datasets", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("Name", no_wrap=True, min_width=max(map(len, names)))
    for column in ("Kind", "Train/eval", "Sample", "Source"):
        table.add_column(column, no_wrap=True)
    table.add_column("Available", no_wrap=True, min_width=9)
    if args.checksums:
        table.add_column("Checksum", no_wrap=True)  # the first 16 hex digits of the SHA-256
    notes: list[str] = []
    for name in names:
        spec = specs[name]
        given = {k: v for k, v in options.items() if k in accepted[name]}
        try:
            ds = load_dataset(name, seed=args.seed, **given)
            extra = [ds.checksum[:16]] if args.checksums else []
        except Exception as exc:  # unavailable, a broken file or a bad option value: show it, go on
            extra = [""] if args.checksums else []
            unavailable = isinstance(exc, DatasetUnavailableError)
            notes.append(
                f"[{len(notes) + 1}] " + (str(exc) if unavailable else f"{name}: {type(exc).__name__}: {exc}")
            )
            state = Text("no" if unavailable else "error", style="red") + f" [{len(notes)}]"
            table.add_row(name, spec.kind, "", "", spec.source, state, *extra)
            continue
        counts = f"{len(ds.train)}/{len(ds.eval)}"
        shape = "x".join(str(n) for n in ds.sample_shape)
        available = Text("yes", style="green")
        if "path" in ds.meta:
            notes.append(f"[{len(notes) + 1}] {name}: read from {ds.meta['path']}")
            available += f" [{len(notes)}]"
        table.add_row(name, ds.kind, counts, shape, spec.source, available, *extra)
    console = make_console()
    console.print(table)
    for note in notes:
        console.print(note, markup=False, highlight=False, soft_wrap=True)
    return 0
