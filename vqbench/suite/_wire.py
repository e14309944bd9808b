"""What crosses between coordinator and workers: JSON messages, schema-checked; and the TCP handshake.

No message is ever unpickled. Each message is one JSON object in a length-prefixed frame
(``Connection.send_bytes``); :func:`decode` refuses anything that is not one of the messages below,
with the fields and types it expects:

- worker to coordinator: ``{"type": "ready", "info": {...}}``, ``{"type": "result", "index": int,
  "outcome": {...}}`` (``outcome`` as ``vqbench.suite._worker`` describes), ``{"type": "fatal",
  "message": str}``;
- coordinator to worker: ``{"type": "cell", "index": int, "cell": {...}}`` (``Cell.to_dict()``),
  ``{"type": "stop"}``.

A TCP worker proves it holds the run's key before it may send anything (:func:`serve_handshake`
and :func:`client_handshake`: an HMAC-SHA256 challenge each way over raw bytes, then a JSON
``hello`` with the job's token), all under a timeout, so a silent or foreign connection costs a
thread for a few seconds and nothing else.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import secrets
import socket
import struct
import time
from pathlib import Path
from typing import Any

#: Largest frame accepted from a worker (a cell's figures, with their samples).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: Largest frame during the handshake.
MAX_HANDSHAKE_BYTES = 4096
HANDSHAKE_TIMEOUT_S = 20.0
_NONCE = 32


class ProtocolError(ValueError):
    """A message that is not one of the protocol's, or a failed handshake."""


def _plain(value: Any) -> Any:
    """numpy and torch scalars and arrays as plain numbers and lists (for ``json.dumps``)."""
    if hasattr(value, "tolist"):  # numpy arrays and scalars, torch tensors
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    raise TypeError(f"{type(value).__name__} {value!r:.80} is not plain data (numbers, text, lists, dicts)")


def encode(message: dict[str, Any]) -> bytes:
    """One message as JSON bytes (NaN and infinities are kept)."""
    return json.dumps(message, default=_plain, separators=(",", ":")).encode("utf-8")


def _need(obj: dict, key: str, kinds: type | tuple[type, ...], what: str) -> Any:
    value = obj.get(key)
    wrong = not isinstance(value, kinds) or (isinstance(value, bool) and bool not in _tuple(kinds))
    if wrong:
        raise ProtocolError(f"{what}: field {key!r} must be {_names(kinds)}, got {type(value).__name__}")
    return value


def _tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def _names(kinds: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in _tuple(kinds))


_OUTCOME_STATUSES = ("ok", "skipped", "error")


def _check_outcome(outcome: dict) -> None:
    what = "result outcome"
    status = outcome.get("status")
    if status not in _OUTCOME_STATUSES:
        raise ProtocolError(f"{what}: status must be one of {_OUTCOME_STATUSES}, got {status!r:.80}")
    if status == "ok":
        figures = _need(outcome, "figures", list, what)
        if not figures or not all(isinstance(f, dict) for f in figures):
            raise ProtocolError(f"{what}: figures must be a non-empty list of objects")
        for fig in figures:
            if not isinstance(fig.get("metric"), str):
                raise ProtocolError(f"{what}: every figure needs a text 'metric'")
            value = fig.get("value")
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ProtocolError(f"{what}: figure {fig['metric']!r:.80} has a non-numeric value")
        seconds = outcome.get("seconds")
        if seconds is not None and (not isinstance(seconds, (int, float)) or not math.isfinite(seconds)):
            raise ProtocolError(f"{what}: seconds must be a number")
    else:
        _need(outcome, "message", str, what)
    for key in ("traceback",):
        if key in outcome and not isinstance(outcome[key], str):
            raise ProtocolError(f"{what}: {key} must be text")
    warnings = outcome.get("warnings", [])
    if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
        raise ProtocolError(f"{what}: warnings must be a list of text")


def decode(data: bytes, *, sender: str = "worker") -> dict[str, Any]:
    """A message from ``sender`` ("worker" or "coordinator"), checked against the protocol."""
    try:
        message = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"a {sender} message is not JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise ProtocolError(f"a {sender} message must be a JSON object, got {type(message).__name__}")
    kind = message.get("type")
    if sender == "worker":
        if kind == "ready":
            _need(message, "info", dict, "ready")
        elif kind == "result":
            _need(message, "index", int, "result")
            _check_outcome(_need(message, "outcome", dict, "result"))
        elif kind == "fatal":
            _need(message, "message", str, "fatal")
        else:
            raise ProtocolError(f"unknown worker message type {kind!r:.80}; expected ready, result or fatal")
    else:
        if kind == "cell":
            _need(message, "index", int, "cell")
            _need(message, "cell", dict, "cell")
        elif kind != "stop":
            raise ProtocolError(f"unknown coordinator message type {kind!r:.80}; expected cell or stop")
    return message


def send(conn: Any, message: dict[str, Any]) -> None:
    """Send one message over a ``multiprocessing`` connection."""
    conn.send_bytes(encode(message))


def receive(conn: Any, *, sender: str = "worker") -> dict[str, Any]:
    """Receive and check one message (``EOFError``/``OSError`` when the connection closed)."""
    return decode(conn.recv_bytes(MAX_MESSAGE_BYTES), sender=sender)


# -- the key and the handshake -------------------------------------------------------------------
def write_key(folder: Path) -> tuple[Path, bytes]:
    """A new random key in a file only this user can read, in ``folder`` (made mode 0700)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if folder.stat().st_uid == os.getuid():
        folder.chmod(0o700)
    key = secrets.token_bytes(32)
    path = folder / f"coordinator-{os.getpid()}-{secrets.token_hex(4)}.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex())
    return path, key


def read_key(path: str | Path) -> bytes:
    """The key that :func:`write_key` wrote."""
    text = Path(path).read_text().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError as exc:
        raise ProtocolError(f"{path} does not hold a vqbench coordinator key") from exc
    if len(key) != 32:
        raise ProtocolError(f"{path} does not hold a vqbench coordinator key")
    return key


def _send_frame(sock: socket.socket, data: bytes) -> None:
    sock.sendall(struct.pack("!i", len(data)) + data)


def _recv_exact(sock: socket.socket, n: int, deadline: float | None = None) -> bytes:
    """``n`` bytes; with a ``deadline`` (``time.monotonic()``) for all of them, not for each read,
    so that a peer sending a byte now and then cannot hold the handshake open."""
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the handshake did not finish in time")
            sock.settimeout(left)
        chunk = sock.recv(n - got)
        if not chunk:
            raise ProtocolError("the connection closed during the handshake")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _recv_frame(sock: socket.socket, deadline: float | None = None) -> bytes:
    (size,) = struct.unpack("!i", _recv_exact(sock, 4, deadline))
    if not 0 <= size <= MAX_HANDSHAKE_BYTES:
        raise ProtocolError(f"a handshake frame of {size} bytes (at most {MAX_HANDSHAKE_BYTES})")
    return _recv_exact(sock, size, deadline)


def _mac(key: bytes, role: bytes, nonce: bytes) -> bytes:
    return hmac.new(key, role + nonce, hashlib.sha256).digest()


def serve_handshake(sock: socket.socket, key: bytes, timeout: float = HANDSHAKE_TIMEOUT_S) -> str:
    """The coordinator's side: check that the peer holds ``key``, prove that we do, return its token.

    Nothing the peer sends is deserialized before its key is checked; the ``hello`` after it is
    JSON. ``timeout`` bounds the whole handshake. Raises :class:`ProtocolError` (or ``OSError``,
    ``TimeoutError``) otherwise."""
    deadline = time.monotonic() + timeout
    sock.settimeout(timeout)
    challenge = secrets.token_bytes(_NONCE)
    _send_frame(sock, challenge)
    answer = _recv_frame(sock, deadline)
    if len(answer) != 32 + _NONCE or not hmac.compare_digest(answer[:32], _mac(key, b"worker", challenge)):
        raise ProtocolError("the peer does not hold the run's key")
    _send_frame(sock, _mac(key, b"coordinator", answer[32:]))
    hello = json.loads(_recv_frame(sock, deadline).decode("utf-8"))
    if not isinstance(hello, dict) or hello.get("type") != "hello" or not isinstance(hello.get("token"), str):
        raise ProtocolError("the first message after the handshake must be a hello with a token")
    sock.settimeout(None)
    return hello["token"]


def client_handshake(
    sock: socket.socket, key: bytes, token: str, timeout: float = HANDSHAKE_TIMEOUT_S
) -> None:
    """The worker's side of :func:`serve_handshake`."""
    sock.settimeout(timeout)
    challenge = _recv_frame(sock)
    nonce = secrets.token_bytes(_NONCE)
    _send_frame(sock, _mac(key, b"worker", challenge) + nonce)
    proof = _recv_frame(sock)
    if not hmac.compare_digest(proof, _mac(key, b"coordinator", nonce)):
        raise ProtocolError("the coordinator did not prove that it holds the run's key")
    _send_frame(sock, json.dumps({"type": "hello", "token": token}).encode("utf-8"))
    sock.settimeout(None)


def connection(sock: socket.socket) -> Any:
    """A ``multiprocessing`` connection over a handshaken socket (for ``wait`` and framing)."""
    from multiprocessing.connection import Connection

    sock.setblocking(True)
    return Connection(sock.detach())


__all__ = [
    "HANDSHAKE_TIMEOUT_S",
    "MAX_MESSAGE_BYTES",
    "ProtocolError",
    "client_handshake",
    "connection",
    "decode",
    "encode",
    "read_key",
    "receive",
    "send",
    "serve_handshake",
    "write_key",
]
