"""Check quantizers against the protocol as the suite's pre-flight does; nothing is run or stored.

Each quantizer (a registered name, path/to/file.py:Class or package.module:Class) is imported in a
worker-like spawned process, built with each set of arguments that the suite passes (codebook_size=
from the profile's codebook sizes, and the [quantizers.NAME] settings, dim= among them where set),
called once on a tiny (2, 4, dim) input in training and in eval mode, and its indices decoded. One
line per check: ok, FAIL (with what came against what was expected) or skip.

`vqbench run`, `compare` and `nightly` run the same check on every candidate and plugin quantizer
before any cell, and stop (exit 2, nothing stored) when it fails.

Examples:
  vqbench check my_fsq.py:MyFSQ                    # built as the quick suite builds it
  vqbench check my_fsq.py:MyFSQ --suite standard
  vqbench check my_pkg.quantizers:MyFSQ --codebook-size 256,4096
  vqbench check my-fsq --plugins my_pkg.quantizers # a @register_quantizer name

Exit codes: 0 every check passed; 1 a check failed; 2 bad input.
"""

from __future__ import annotations

import argparse

from vqbench.errors import UserError
from vqbench.quantizers._plugins import add_plugins_option


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``vqbench check``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "quantizers", nargs="+", metavar="NAME", help="registered name, path/to/file.py:Class or module:Class"
    )
    parser.add_argument(
        "--suite",
        default="quick",
        metavar="NAME|PATH",
        help="build with the arguments this profile passes (default: quick)",
    )
    parser.add_argument(
        "--codebook-size",
        default=None,
        metavar="SIZES",
        help="check at these codebook sizes (comma-separated) instead of the profile's",
    )
    add_plugins_option(parser)


def run(args: argparse.Namespace) -> int:
    """Check, print one line per check, exit 1 when one failed."""
    from rich.text import Text

    from vqbench._console import make_console
    from vqbench.quantizers._plugins import add_import_path, import_plugins, plugin_names
    from vqbench.suite.expand import expand_profile, quantizer_config, resolve_quantizers
    from vqbench.suite.preflight import Target, import_path, run_checks, targets
    from vqbench.suite.profiles import load_profile

    console = make_console()
    profile = load_profile(args.suite)
    plugins = tuple(dict.fromkeys(profile.plugins + plugin_names(args.plugins)))
    here = import_path([])
    add_import_path(here)
    import_plugins(plugins, here)
    names = resolve_quantizers(args.quantizers, "NAME")
    if args.codebook_size is not None:
        sizes = _sizes(args.codebook_size)
        todo = [Target(n, {**quantizer_config(profile, n), "codebook_size": k}) for n in names for k in sizes]
        paths = here
    else:
        plan = expand_profile(profile, quantizers=names)
        todo = targets(plan.cells, builtins=True)
        paths = import_path(plan.cells)
        missing = [n for n in names if not any(t.quantizer == n for t in todo)]
        todo += [Target(n, quantizer_config(profile, n)) for n in missing]  # the profile builds none
    add_import_path(paths)
    outcomes = run_checks(todo, plugins, paths)
    failed = 0
    shown: set[str] = set()
    for outcome in outcomes:
        t = outcome.target
        header = Text(f"{t.quantizer} ({_args(t.config)}) on {t.device}: ", style="bold")
        if outcome.ok and t.quantizer in shown:
            console.print(header + Text(f"all {len(outcome.checks)} checks ok", style="green"))
            continue
        shown.add(t.quantizer)
        failed += not outcome.ok
        console.print(header + (Text("ok", style="green") if outcome.ok else Text("FAIL", style="bold red")))
        skipped = [c["step"] for c in outcome.checks if c["status"] == "skip"]
        for check in outcome.checks:
            if check["status"] == "skip":
                continue
            mark = (
                Text("  ok    ", style="green")
                if check["status"] == "ok"
                else Text("  FAIL  ", style="bold red")
            )
            console.print(mark + Text(f"{check['step']:<11}{check['detail']}"))
        if skipped:
            console.print(Text(f"  skip  {', '.join(skipped)} (after the failure)", style="yellow"))
    total = len(outcomes)
    verdict = f"{failed} of {total} config(s) failed" if failed else f"all {total} config(s) passed"
    console.print(
        Text(
            f"vqbench check ({profile.name} suite's arguments): {verdict}",
            style="bold red" if failed else "bold green",
        )
    )
    return 1 if failed else 0


def _args(config: dict) -> str:
    from vqbench.quantizers._check import call_args

    return call_args(config) or "no arguments"


def _sizes(text: str) -> list[int]:
    sizes = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            value = int(item)
        except ValueError:
            raise UserError(f"--codebook-size: expected integers such as 256,4096, got {item!r}") from None
        if value < 2:
            raise UserError(f"--codebook-size: expected sizes >= 2, got {value}")
        sizes.append(value)
    if not sizes:
        raise UserError("--codebook-size: expected at least one size, got none")
    return sizes
