"""List the registered quantizers and what their default operating points measure.

Each quantizer is built with its defaults and run on a tiny batch: codebook size, dim, codebooks
and bits per token are read from the built module; round trip (indices_to_codes(indices) against
the codes), aux loss (a train-mode loss that carries gradient) and learned codebook (decoded codes
move after one training step) are measured. A plugin that fails to import or run shows its error.
"""

from __future__ import annotations

import argparse
import json

from vqbench.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "pattern",
        nargs="?",
        default=None,
        help="glob pattern(s) and file or module references, comma-separated, e.g. 'fsq*,vq,my_fsq.py:MyFSQ'",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    parser.add_argument(
        "--no-measure", action="store_true", help="registry entries only: do not build or run the quantizers"
    )


def run(args: argparse.Namespace) -> int:
    from ._describe import describe_quantizers
    from ._registry import list_quantizers

    infos = describe_quantizers(args.pattern, measure=not args.no_measure)
    if not infos:
        raise UserError(
            f"no registered quantizer matches {args.pattern!r}; registered: {', '.join(list_quantizers())}"
        )
    if args.json:
        print(json.dumps([info.as_dict() for info in infos], indent=2))
        return 0
    _print_table(infos, measured=not args.no_measure)
    return 0


def _print_table(infos, measured: bool) -> None:
    from rich.table import Table
    from rich.text import Text

    from vqbench._console import make_console

    console = make_console()
    table = Table(title="vqbench quantizers", title_justify="left")
    # names stay whole at any terminal width (they are what the other commands take); the rest wraps
    longest = max((len(info.name) for info in infos), default=4)
    table.add_column("name", style="bold", no_wrap=True, min_width=max(4, longest))
    table.add_column("family", overflow="fold")
    table.add_column("source", overflow="fold")
    if measured:
        for header in ("codebook", "dim", "books", "bits/token"):
            table.add_column(header, justify="right", overflow="fold")
        table.add_column("round trip", overflow="fold")
        table.add_column("aux loss", overflow="fold")
        table.add_column("learned", overflow="fold")
    table.add_column("notes", overflow="fold")

    failed = 0
    for info in infos:
        cells = [info.name, info.family, info.source]
        if measured:
            cells += [
                _num(info.codebook_size),
                _num(info.dim),
                _num(info.num_codebooks),
                "" if info.bits_per_token is None else f"{info.bits_per_token:.2f}",
                info.round_trip or "",
                _yes_no(info.aux_loss),
                _yes_no(info.learned_codebook),
            ]
        if info.error:
            failed += 1
            cells.append(Text(f"error: {info.error}", style="red"))
        else:
            cells.append(info.description)
        table.add_row(*cells)
    console.print(table)
    footer = f"{len(infos)} quantizer{'s' if len(infos) != 1 else ''}"
    if failed:
        footer += f", {failed} with errors"
    if measured:
        footer += "; figures of the default operating point (others: create_quantizer(name, codebook_size=N))"
    console.print(footer, highlight=False)


def _num(value) -> str:
    return "" if value is None else str(value)


def _yes_no(value) -> str:
    return "" if value is None else ("yes" if value else "no")
