"""The errors of the result store: a file that cannot be used, a run that another process writes."""

from __future__ import annotations

from vqbench.errors import UserError


class StoreError(UserError, RuntimeError):
    """The store file cannot be used: not a vqbench store, corrupt, unwritable or too new.

    The user can act on it (another path, other permissions), so it is a ``UserError``; it stays a
    ``RuntimeError`` for code that caught it as one.
    """


class RunBusyError(StoreError):
    """The run is being written by a live process: it cannot be resumed or imported into."""


__all__ = ["RunBusyError", "StoreError"]
