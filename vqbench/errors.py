"""The one error type for a user's mistake.

A ``UserError`` says what was expected and what came; the ``vqbench`` command prints it and exits 2.
Any other exception is a bug in vqbench or a plugin, and the command shows its traceback (exit 1).
It is a ``ValueError``, so code that catches bad values keeps working.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input from the user: a name, a file, an option or a setting."""


class UnknownNameError(UserError, KeyError):
    """A name that no registry holds; the message lists the close matches."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class MissingFileError(UserError, FileNotFoundError):
    """A file the user named (a profile, a quantizer reference, a data or config file) is not there."""
