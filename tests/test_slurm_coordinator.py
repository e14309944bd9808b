"""The Slurm coordinator over a real socket on 127.0.0.1: who may talk to it, and what it accepts.

The jobs are submitit's local jobs (real processes, real job folders and pickles); no Slurm is
needed. The attacker in these tests has read access to the job folder (as on a shared file
system) and a TCP connection to the coordinator.
"""

from __future__ import annotations

import os
import pickle
import socket
import stat
import struct
import time
from pathlib import Path

import pytest

from vqbench.suite import _wire
from vqbench.suite._worker import WorkerSetup
from vqbench.suite.executors import ExecutorSettings
from vqbench.suite.executors._base import Done, StartFailed
from vqbench.suite.executors._connections import Slot

pytest.importorskip("submitit")

from vqbench.suite.executors.slurm import SlurmExecutor  # noqa: E402


class _Job:
    """A job handle that never ends (the tests drive the connections themselves)."""

    job_id = "fake"
    state = "RUNNING"

    def done(self) -> bool:
        return False

    def cancel(self, check: bool = False) -> None:
        pass


def _coordinator(tmp_path: Path, setup: WorkerSetup | None = None, **kw) -> SlurmExecutor:
    settings = ExecutorSettings(kind="slurm", cluster="local", folder=str(tmp_path / "jobs"), **kw)
    executor = SlurmExecutor(settings, setup or WorkerSetup(engines={}), 1)
    executor._listen()
    return executor


def _fake_slot(executor: SlurmExecutor, token: str = "0-fake") -> Slot:
    slot = Slot(handle=_Job(), checked=time.monotonic())
    executor.by_token[token] = slot
    executor.slots.append(slot)
    return slot


def _frame(data: bytes) -> bytes:
    return struct.pack("!i", len(data)) + data


class _Marker:
    """Unpickling this object writes a file: proof that code ran in the coordinator."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.write_text, (Path(self.path), "pwned"))


def _wait_until(check, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.05)
    return False


def _events(executor: SlurmExecutor, seconds: float) -> list:
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        out += executor.wait(0.1, more=False)
    return out


def test_key_travels_in_a_private_file_and_the_listener_binds_loopback(tmp_path):
    executor = _coordinator(tmp_path)
    try:
        folder = tmp_path / "jobs"
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert stat.S_IMODE(executor.key_file.stat().st_mode) == 0o600
        assert executor.key_file.parent == folder
        assert executor.listener.getsockname()[0] == "127.0.0.1"
        assert executor.address[0] == "127.0.0.1"
    finally:
        executor.close(cancel=True)
    assert not executor.key_file.exists()  # gone with the run


def test_default_bind_is_the_address_jobs_reach_never_every_interface(tmp_path):
    executor = _coordinator(tmp_path)
    executor.close(cancel=True)
    executor.cluster = "slurm"  # as on a real cluster
    executor.settings = ExecutorSettings(kind="slurm", host="localhost")
    assert executor._addresses() == ("127.0.0.1", "localhost")
    executor.settings = ExecutorSettings(kind="slurm")  # this machine's name, as jobs resolve it
    bind, host = executor._addresses()
    assert bind != "0.0.0.0"
    socket.create_server((bind, 0)).close()  # an address of this machine
    executor.settings = ExecutorSettings(kind="slurm", host="login1", bind="0.0.0.0")
    assert executor._addresses() == ("0.0.0.0", "login1")  # only when asked


def test_a_pickle_with_reduce_runs_nothing_and_is_refused(tmp_path):
    marker = tmp_path / "marker"
    payload = pickle.dumps(("hello", _Marker(str(marker))))
    executor = _coordinator(tmp_path)
    try:
        slot = _fake_slot(executor)
        # without the key: the payload in place of the handshake answer
        with socket.create_connection(executor.address) as sock:
            sock.settimeout(10)
            challenge = sock.recv(4 + 32)
            assert len(challenge) == 36
            sock.sendall(_frame(payload))
            assert sock.recv(10) == b""  # closed on us
        # with the key and a valid token (the worst case): the payload as a message
        key = _wire.read_key(executor.key_file)
        sock = socket.create_connection(executor.address)
        _wire.client_handshake(sock, key, "0-fake")
        assert _wait_until(lambda: (executor._poll_new(), slot.conn is not None)[1], 10)
        sock.sendall(_frame(payload))
        events = _events(executor, 1.0)
        assert [type(e) for e in events] == [StartFailed]
        assert "outside the protocol" in events[0].message
        assert slot not in executor.slots  # dropped
        sock.close()
    finally:
        executor.close(cancel=True)
    assert not marker.exists()
    assert any("key" in why for why in executor.refused)


def test_forged_results_from_a_wrong_key_or_token_store_nothing(tmp_path):
    executor = _coordinator(tmp_path)
    forged = _wire.encode(
        {
            "type": "result",
            "index": 0,
            "outcome": {"status": "ok", "seconds": 1.0, "figures": [{"metric": "m", "value": 1e9}]},
        }
    )
    try:
        slot = _fake_slot(executor)
        slot.ready, slot.task = True, (0, None)
        for key, token in ((b"\0" * 32, "0-fake"), (_wire.read_key(executor.key_file), "0-guessed")):
            sock = socket.create_connection(executor.address)
            try:
                _wire.client_handshake(sock, key, token)
                sock.sendall(_frame(forged))
            except (OSError, _wire.ProtocolError):
                pass  # refused during the handshake
            assert _wait_until(lambda s=sock: not _recv_open(s), 10)
            sock.close()
        assert _events(executor, 1.0) == []
        assert slot.conn is None and slot.task == (0, None)
        assert len(executor.refused) == 2
        assert "unknown job token" in executor.refused[1]
    finally:
        executor.close(cancel=True)


def _recv_open(sock: socket.socket) -> bool:
    """False once the peer closed the connection."""
    sock.settimeout(0.2)
    try:
        return sock.recv(4096) != b""
    except TimeoutError:
        return True
    except OSError:
        return False


def test_idle_connections_do_not_delay_a_real_worker(tmp_path):
    """Three silent connections are held open while a real submitit job starts and connects."""
    executor = _coordinator(tmp_path, start_timeout=240)
    idle = [socket.create_connection(executor.address) for _ in range(3)]
    try:
        executor._fill()  # submit the real job
        started = time.monotonic()
        events: list = []
        while not any(s.ready for s in executor.slots) and time.monotonic() - started < 240:
            events += executor.wait(0.5, more=False)
        assert not [e for e in events if isinstance(e, StartFailed)], events
        assert any(s.ready for s in executor.slots), "the worker never became ready"
        assert all(_recv_open(s) for s in idle)  # still connected (within their handshake time)
        # the job's pickle, readable in the job folder, holds no key
        key = _wire.read_key(executor.key_file)
        pickles = list((tmp_path / "jobs").rglob("*.pkl"))
        assert pickles
        for path in pickles:
            data = path.read_bytes()
            assert key not in data and key.hex().encode() not in data
    finally:
        for s in idle:
            s.close()
        executor.close()


def test_a_cell_round_trips_as_json_through_a_real_job(tmp_path):
    from vqbench.suite.cells import Cell

    executor = _coordinator(tmp_path, WorkerSetup(threads=1), start_timeout=240)
    cell = Cell(
        suite="t",
        benchmark="usage",
        quantizer="fsq",
        config={"codebook_size": 256},
        dataset="gaussian",
        params={"train_steps": 2, "batch": 64},
    )
    try:
        executor._fill()
        done: list = []
        end = time.monotonic() + 300
        submitted = False
        while not done and time.monotonic() < end:
            if not submitted and executor.has_idle():
                submitted = executor.try_submit(0, cell)
            done += [e for e in executor.wait(0.5, more=False) if isinstance(e, Done)]
        assert done, "no result came back"
        outcome = done[0].outcome
        assert outcome["status"] == "ok", outcome
        assert {f["metric"] for f in outcome["figures"]} >= {"utilization", "perplexity"}
        assert done[0].worker["executor"] == "slurm"
    finally:
        executor.close()


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_an_existing_job_folder_is_made_private(tmp_path):
    folder = tmp_path / "jobs"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    executor = _coordinator(tmp_path)
    executor.close(cancel=True)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
