"""The consoles of the ``vqbench`` command: readable in a terminal, whole in a pipe or a CI log.

In a terminal, rich fits tables to the window. Anywhere else (a pipe, a file, a CI log), rich would
assume 80 columns and cut or fold ids, commands and messages; there the console is as wide as the
widest line, so every value stays whole. Markup is off: every string is printed as it is, so that
user text (names, error messages with ``[/x]``) is never parsed; styles come from ``Text`` objects.
"""

from __future__ import annotations

from typing import Any

#: The width of a console that is not a terminal: wide enough for any line vqbench prints.
PIPE_WIDTH = 100_000


def make_console(*, stderr: bool = False) -> Any:
    """A rich Console: the terminal's width in a terminal, unlimited elsewhere; no markup."""
    from rich.console import Console

    probe = Console(stderr=stderr)
    if probe.is_terminal:
        return Console(stderr=stderr, markup=False, highlight=False)
    return Console(stderr=stderr, width=PIPE_WIDTH, markup=False, highlight=False)


def rule(console: Any, title: str) -> None:
    """A section heading: a rich rule in a terminal, a plain ``== title ==`` line elsewhere."""
    from rich.text import Text

    if console.is_terminal:
        console.rule(Text(title))
    else:
        console.print(Text(f"== {title} =="))


__all__ = ["PIPE_WIDTH", "make_console", "rule"]
