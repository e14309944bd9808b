"""The Slurm executor: long-lived workers as Slurm jobs, submitted through submitit.

Each job runs one worker that connects back to the coordinator over TCP and serves cells until
the run ends, so torch is imported once per job. The run's random key reaches the jobs in a file
only the user can read (mode 0600, in the job folder, mode 0700), never inside submitit's job
pickle; each side proves it holds the key (HMAC challenges) before any message, and every message
after that is schema-checked JSON, so nothing a connection sends can run code here. Connections
are accepted on a thread of their own and authenticated each on its own, under a timeout, so an
idle or foreign connection delays no worker. The listener binds the address that the jobs reach
(``host``: this machine's name as the cluster resolves it), not every interface, unless ``bind``
says otherwise; submitit's local cluster binds 127.0.0.1. Rows travel back over that connection:
workers never open the result store (SQLite over a network file system corrupts). A job that is
preempted, cancelled, hits its time limit or is lost with its node takes its cell with it: the cell
is run again once on another job, then recorded as an error; a new job replaces the lost one. Job
folders (logs, pickles) live under ``folder``.

``cluster="local"`` runs the same jobs through submitit's local executor (processes on this machine,
real job folders and pickling): the tests use it, and so can a machine without Slurm.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import secrets
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

from .. import _wire, _worker
from ._base import MissingExtraError
from ._connections import ConnectionPool, Slot

#: Connections being authenticated at once; more are closed at once.
MAX_PENDING_HANDSHAKES = 64

#: Job states of a job that waits for its turn (its start timeout restarts).
_WAITING = ("PENDING", "REQUEUED", "REQUEUE_HOLD", "CONFIGURING", "RESIZING", "SUSPENDED")
#: Seconds between two checks of a job's state while it has not connected (the first after this too).
_STATE_POLL_S = 15.0


def _submitit() -> Any:
    try:
        import submitit
    except ImportError as exc:
        raise MissingExtraError("slurm", "submitit", "slurm") from exc
    return submitit


class SlurmExecutor(ConnectionPool):
    """Workers as Slurm (or submitit-local) jobs that connect back over TCP."""

    kind = "slurm"
    lost_retries = 1

    def __init__(self, settings: Any, setup: _worker.WorkerSetup, workers: int) -> None:
        super().__init__(workers, start_timeout=settings.start_timeout)
        submitit = _submitit()
        self.settings = settings
        if (settings.cluster or "slurm") == "slurm" and shutil.which("sbatch") is None:
            raise RuntimeError(
                "the slurm executor submits jobs with sbatch, which is not on PATH here: run on a "
                "Slurm login node (or set cluster = 'local' in [executor] to run the jobs on this machine)"
            )
        self.folder = Path(settings.folder or Path(".vqbench") / "slurm").expanduser().resolve()
        self.cluster = settings.cluster or "slurm"
        self.engine = submitit.AutoExecutor(folder=self.folder / "%j", cluster=self.cluster)
        self.engine.update_parameters(**self._parameters())
        threads = setup.threads or settings.cpus_per_job
        env = dict(setup.env)
        if threads:
            env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        self.setup = dataclasses.replace(setup, env=env, threads=threads, executor="slurm")
        self.key_file: Path | None = None
        self.authkey = b""
        self.listener: socket.socket | None = None
        self.address: tuple[str, int] | None = None
        self.arrived: queue.Queue = queue.Queue()
        self.by_token: dict[str, Slot] = {}
        self.refused: list[str] = []  # why connections were refused (for tests and the curious)
        self._pending = threading.BoundedSemaphore(MAX_PENDING_HANDSHAKES)

    def _parameters(self) -> dict[str, Any]:
        s = self.settings
        params: dict[str, Any] = {"name": "vqbench-worker", "timeout_min": int(s.time_limit)}
        if s.gpus_per_job:
            params["gpus_per_node"] = int(s.gpus_per_job)
        if s.cpus_per_job:
            params["cpus_per_task"] = int(s.cpus_per_job)
        if self.cluster == "slurm":
            if s.partition:
                params["slurm_partition"] = s.partition
            if s.account:
                params["slurm_account"] = s.account
            if s.sbatch:
                params["slurm_additional_parameters"] = dict(s.sbatch)
        return params

    # -- TCP -----------------------------------------------------------------------------------
    def _addresses(self) -> tuple[str, str]:
        """(the address to bind, the address jobs connect to)."""
        s = self.settings
        if self.cluster != "slurm":  # submitit's local jobs run on this machine
            host = s.host or "127.0.0.1"
            return s.bind or host, host
        host = s.host or socket.gethostname()
        if s.bind:
            return s.bind, host
        try:
            ip = socket.gethostbyname(host)
        except OSError as exc:
            raise RuntimeError(
                f"the slurm executor binds the address that jobs reach, {host!r}, which does not resolve "
                f"here ({exc}); set host (and bind) in [executor]"
            ) from exc
        if ip.startswith("127.") and not s.host:  # the hostname is a loopback alias here: the routed address
            ip = _routed_address() or ip
            return ip, ip
        return ip, host

    def start(self) -> None:
        self._listen()
        super().start()

    def _listen(self) -> None:
        """Write the key file and listen; jobs are submitted after this."""
        bind, host = self._addresses()
        self.key_file, self.authkey = _wire.write_key(self.folder)
        listener = socket.create_server((bind, 0), backlog=64)
        listener.settimeout(0.5)
        self.listener = listener
        self.address = (host, listener.getsockname()[1])
        accept = threading.Thread(target=self._accept, args=(listener,), name="vqbench-accept", daemon=True)
        accept.start()

    def _accept(self, listener: socket.socket) -> None:
        """Accept connections and hand each to a thread of its own: none waits on another."""
        while self.listener is listener:
            try:
                sock, peer = listener.accept()
            except TimeoutError:
                continue
            except OSError:  # closed: the run is over
                return
            if not self._pending.acquire(blocking=False):
                self.refused.append(f"{peer}: too many connections being authenticated")
                sock.close()
                continue
            threading.Thread(target=self._authenticate, args=(sock, peer), daemon=True).start()

    def _authenticate(self, sock: socket.socket, peer: Any) -> None:
        try:
            token = _wire.serve_handshake(sock, self.authkey)
            if token not in self.by_token:
                raise _wire.ProtocolError(f"unknown job token {token!r:.40}")
            self.arrived.put((token, _wire.connection(sock)))
        except (OSError, ValueError, UnicodeDecodeError) as exc:  # wrong key, garbage, timeout
            self.refused.append(f"{peer}: {type(exc).__name__}: {exc}")
            sock.close()
        finally:
            self._pending.release()

    def _poll_new(self) -> None:
        while True:
            try:
                token, conn = self.arrived.get_nowait()
            except queue.Empty:
                return
            slot = self.by_token.get(token)
            if slot is None or slot not in self.slots or slot.conn is not None:
                conn.close()  # a job that was already given up, or a second connection
            else:
                slot.conn = conn

    # -- jobs ----------------------------------------------------------------------------------
    def _spawn(self, number: int) -> Slot:
        token = f"{number}-{secrets.token_hex(8)}"
        slot = Slot(handle=None, checked=time.monotonic())
        self.by_token[token] = slot  # before the job exists: a quick job finds its token known
        try:
            slot.handle = self.engine.submit(
                _worker.connect_and_serve, self.address, str(self.key_file), token, self.setup
            )
        except BaseException:
            del self.by_token[token]
            raise
        return slot

    def _terminate(self, slot: Slot) -> None:
        job = slot.handle
        with contextlib.suppress(Exception):
            job.cancel(check=False)
        process = getattr(job, "_process", None)  # submitit's local jobs: make sure it is gone
        if process is not None:
            with contextlib.suppress(Exception):
                process.wait(timeout=5)
            with contextlib.suppress(Exception):
                process.kill()

    def _ended(self, slot: Slot) -> str | None:
        now = time.monotonic()
        if slot.conn is not None and slot.ready:
            return None  # a live connection says enough; its loss is noticed at once
        if now - slot.checked < _STATE_POLL_S:
            return None
        slot.checked = now
        job = slot.handle
        try:
            if not job.done():
                return None
            state = job.state
        except Exception as exc:  # sacct hiccups: ask again later
            return None if now - slot.spawned < self.start_timeout else f"job state unknown: {exc}"
        return f"{self.cluster} job {job.job_id} ended ({state}); its log: {self.folder / str(job.job_id)}"

    def _start_overdue(self, slot: Slot, now: float) -> bool:
        """Time in the queue does not count: only a job that runs and has not connected is late."""
        if now - slot.spawned <= self.start_timeout:
            return False
        try:
            state = str(slot.handle.state)
        except Exception:
            state = "UNKNOWN"
        if state in _WAITING:
            slot.spawned = now
            return False
        return True

    def _closed_why(self, slot: Slot) -> str:
        job = slot.handle
        return (
            f"the worker's connection closed: {self.cluster} job {job.job_id} was lost (killed, "
            f"preempted, out of memory or past its time limit); its log: {self.folder / str(job.job_id)}"
        )

    def _let_finish(self) -> None:
        end = time.monotonic() + 10
        for slot in self.slots:
            with contextlib.suppress(Exception):
                while not slot.handle.done() and time.monotonic() < end:
                    time.sleep(0.2)

    def close(self, cancel: bool = False) -> None:
        try:
            super().close(cancel)
        finally:
            listener, self.listener = self.listener, None
            if listener is not None:
                with contextlib.suppress(Exception):
                    listener.close()
            if self.key_file is not None:
                self.key_file.unlink(missing_ok=True)

    def describe(self) -> str:
        s = self.settings
        bits = [f"{self.workers} job(s)"]
        if self.cluster != "slurm":
            bits.append(f"submitit {self.cluster} cluster")
        named = (("partition", s.partition), ("account", s.account), ("gpus/job", s.gpus_per_job))
        for label, value in named:
            if value:
                bits.append(f"{label} {value}")
        bits.append(f"time limit {s.time_limit} min, job folders in {self.folder}")
        return f"slurm executor, {', '.join(bits)}"


def _routed_address() -> str | None:
    """This machine's address on the interface of its default route (no packet is sent)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.255.255.255", 9))
        ip = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if ip.startswith("127.") or ip == "0.0.0.0" else ip


def require() -> None:
    """Fail early, naming the extra to install, when submitit is missing."""
    _submitit()


def build(settings: Any, setup: Any, cells: list, *, workers: int | None, threads: int | None):
    """Slurm jobs (submitit) that connect back to this coordinator."""
    return SlurmExecutor(settings, setup, min(workers or 1, max(1, len(cells))))


__all__ = ["SlurmExecutor", "build", "require"]
