"""Text from plugins, stores and imported files, made safe to show: no control characters.

An error message, a quantizer name or an imported run id may hold escape sequences (a window
title, a cleared screen, colours) or bidirectional overrides that would steer a terminal or hide
text in a Markdown file. :func:`printable` shows each such character as a visible escape
(``\\x1b``, ``\\u202e``); tabs and newlines stay where a caller allows them.
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, and the bidirectional embedding, override and isolate marks
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_WITH_BREAKS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object, *, newlines: bool = True) -> str:
    """``text`` with every control character shown as an escape; ``newlines=False`` escapes
    tabs and newlines too."""
    return (_UNSAFE if newlines else _UNSAFE_WITH_BREAKS).sub(_visible, str(text))


__all__ = ["printable"]
