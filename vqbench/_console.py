"""The consoles of the ``vqbench`` command: readable in a terminal, whole in a pipe or a CI log.

In a terminal, rich fits tables to the window. Anywhere else (a pipe, a file, a CI log), rich would
assume 80 columns and cut or fold ids, commands and messages; there the console is as wide as the
widest line, so every value stays whole. Markup is off: every string is printed as it is, so that
user text (names, error messages with ``[/x]``) is never parsed; styles come from ``Text`` objects.
Control characters in any text are shown as escapes (``vqbench._text.printable``), so that text
from plugins, stores or imported files cannot steer the terminal; rich's own styles still apply.
"""

from __future__ import annotations

from typing import Any

#: The width of a console that is not a terminal: wide enough for any line vqbench prints.
PIPE_WIDTH = 100_000


def safe_console_class() -> Any:
    """A rich ``Console`` whose rendered text has its control characters escaped."""
    global _SAFE
    if _SAFE is None:
        from rich.console import Console
        from rich.segment import Segment

        from vqbench._text import printable

        class SafeConsole(Console):
            """Escapes control characters in the text it renders (never in its own styles)."""

            def render(self, renderable: Any, options: Any = None) -> Any:
                for seg in super().render(renderable, options):
                    if seg.control is None and seg.text:
                        text = printable(seg.text)
                        yield seg if text == seg.text else Segment(text, seg.style)
                    else:
                        yield seg

        _SAFE = SafeConsole
    return _SAFE


_SAFE: Any = None


def make_console(*, stderr: bool = False) -> Any:
    """A rich Console: the terminal's width in a terminal, unlimited elsewhere; no markup."""
    console = safe_console_class()
    probe = console(stderr=stderr)
    if probe.is_terminal:
        return console(stderr=stderr, markup=False, highlight=False)
    return console(stderr=stderr, width=PIPE_WIDTH, markup=False, highlight=False)


def rule(console: Any, title: str) -> None:
    """A section heading: a rich rule in a terminal, a plain ``== title ==`` line elsewhere."""
    from rich.text import Text

    if console.is_terminal:
        console.rule(Text(title))
    else:
        console.print(Text(f"== {title} =="))


__all__ = ["PIPE_WIDTH", "make_console", "rule", "safe_console_class"]
