"""The ``vqbench`` command.

Each sub-command lives in the room it belongs to, as a module with ``add_arguments(parser)`` and
``run(args) -> int``; modules import heavy packages (torch, pandas) inside ``run`` only.

A ``vqbench.errors.UserError`` (bad input) is printed as one line and exits 2; any other exception
is a bug and shows its traceback (exit 1).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from vqbench.errors import UserError

# name: (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "list": ("vqbench.quantizers._cli", "list registered quantizers"),
    "check": ("vqbench._commands.check", "check a quantizer (name or file.py:Class) against the protocol"),
    "datasets": ("vqbench.datasets._cli", "list datasets and whether they are available"),
    "run": ("vqbench.suite._cli", "run a benchmark suite and store its results"),
    "results": ("vqbench.reports._cli_results", "list stored runs and their figures"),
    "report": ("vqbench.reports._cli_report", "write a report of a run (Markdown and HTML)"),
    "compare": ("vqbench._commands.compare", "compare two runs, or a candidate with baselines"),
    "nightly": ("vqbench._commands.nightly", "run a suite, compare with history, exit 1 on regression"),
    "bisect": ("vqbench._commands.bisect", "find the commit that slowed a figure between two revisions"),
    "publish": ("vqbench.reports.site", "write a static history site of every figure over the nights"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported, so ``vqbench --help`` stays fast."""
    from vqbench import __version__

    parser = argparse.ArgumentParser(
        prog="vqbench",
        description="Benchmark suite for the discrete bottlenecks of tokenizers and VQ-VAEs.",
    )
    parser.add_argument("--version", action="version", version=f"vqbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        if name != command:
            sub.add_parser(name, help=help_text)
            continue
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=module.__doc__)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except UserError as exc:
        from vqbench._text import printable

        print(f"vqbench {args.command}: error: {printable(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
