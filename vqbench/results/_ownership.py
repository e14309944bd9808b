"""Who writes a run: the owner recorded with it, and whether that process still lives."""

from __future__ import annotations

import os
import re
import secrets
import socket
from datetime import datetime, timezone
from typing import Any


def _process_start(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), to tell a reused pid."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[-1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def owner() -> dict:
    """The process that writes a run: pid, host and start time, to tell a died run from a running one."""
    found: dict[str, Any] = {"pid": os.getpid(), "host": socket.gethostname()}
    start = _process_start(os.getpid())
    if start is not None:
        found["start"] = start
    return found


def owner_alive(config: dict) -> bool:
    """False when the run's process is known to be gone: same host, no such pid (or the pid now
    belongs to a process started later). Runs started elsewhere, or before owners were recorded,
    count as alive (nothing here can tell)."""
    owner = config.get("owner") if isinstance(config, dict) else None
    if not isinstance(owner, dict) or owner.get("host") != socket.gethostname():
        return True
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return True
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    start = owner.get("start")
    if isinstance(start, int) and _process_start(pid) not in (None, start):
        return False  # the pid was reused by a newer process
    try:  # a zombie (killed, not yet reaped by its parent) is gone too
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def busy_message(run_id: str, config: dict) -> str:
    """Why run ``run_id`` cannot be taken over: the live process that writes it."""
    owner = config.get("owner") or {}
    return (
        f"run {run_id} is still being written by process {owner.get('pid')} on host "
        f"{owner.get('host')!r}; wait until it ends (or stop it) before resuming it"
    )


_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_run_id(run_id: object, where: str = "run_id") -> str:
    """``run_id`` when it can name a run (and the report folder made from it): 1-100 letters,
    digits, ``.``, ``_`` or ``-``, starting with a letter or digit; else a ``UserError``."""
    from vqbench.errors import UserError

    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise UserError(
            f"{where} must be 1-100 letters, digits, '.', '_' or '-' starting with a letter or "
            f"digit (it names a report folder), got {run_id!r}"
        )
    return run_id


def new_run_id() -> str:
    """A fresh run id: the UTC start time and a random suffix."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{secrets.token_hex(3)}"


__all__ = ["busy_message", "check_run_id", "new_run_id", "owner", "owner_alive"]
