"""A real one-node Slurm cluster on this machine, for the Slurm executor's test.

Uses Debian's ``slurm-wlm`` and ``munge`` packages: a generated ``slurm.conf`` (proctrack/linuxproc,
no cgroups, no accounting, this host as the only node), its own ``munged`` with a fresh key and
socket, then ``slurmctld`` and ``slurmd``, all under one folder and stopped afterwards. It needs
root (slurmd launches jobs as their user). Also a script: ``python tests/slurm_cluster.py`` starts
a cluster, runs ``sinfo`` and a trivial job, and stops it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo")
SBIN = ("/usr/sbin", "/sbin")


def _which(name: str) -> str | None:
    return shutil.which(name) or next(
        (f"{d}/{name}" for d in SBIN if os.access(f"{d}/{name}", os.X_OK)), None
    )


def unavailable_reason() -> str | None:
    """Why a local Slurm cannot start here (None when it can)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "a local Slurm needs root (slurmd starts jobs as their user); run as root, as CI does"
    missing = [b for b in BINARIES if _which(b) is None]
    if missing:
        return (
            f"Slurm or munge binaries missing ({', '.join(missing)}); "
            "install them with: apt-get install slurm-wlm munge (.ci/run does)"
        )
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalSlurm:
    """Start and stop munged, slurmctld and slurmd under ``root``; ``env`` points clients at it."""

    def __init__(self, root: Path, cpus: int | None = None) -> None:
        self.root = Path(root)
        self.host = socket.gethostname().split(".")[0]
        self.cpus = cpus or os.cpu_count() or 1
        self.procs: list[subprocess.Popen] = []
        self.conf = self.root / "slurm.conf"
        self.socket = self.root / "munge" / "munge.socket"

    @property
    def env(self) -> dict[str, str]:
        """Environment for Slurm's client commands (sbatch, squeue, scancel) to use this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def _write_config(self) -> None:
        r = self.root
        for d in ("munge", "state", "spool", "log"):
            (r / d).mkdir(parents=True, exist_ok=True)
        os.chmod(r / "munge", 0o700)
        key = r / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o600)
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
        self.conf.write_text(
            f"""ClusterName=vqbench
SlurmctldHost={self.host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.socket}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
StateSaveLocation={r / "state"}
SlurmdSpoolDir={r / "spool"}
SlurmctldPidFile={r / "slurmctld.pid"}
SlurmdPidFile={r / "slurmd.pid"}
SlurmctldLogFile={r / "log" / "slurmctld.log"}
SlurmdLogFile={r / "log" / "slurmd.log"}
SlurmdParameters=config_overrides
KillWait=5
InactiveLimit=0
MinJobAge=300
NodeName={self.host} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={max(memory // 2, 512)} State=UNKNOWN
PartitionName=debug Nodes={self.host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
"""
        )

    def start(self, timeout: float = 60) -> LocalSlurm:
        """Start the daemons and wait until the node takes jobs; raise with their logs if not."""
        self._write_config()
        r = self.root
        munge = r / "munge"
        self._spawn(
            [
                _which("munged"),
                "--foreground",
                "--force",
                f"--socket={self.socket}",
                f"--key-file={munge / 'munge.key'}",
                f"--pid-file={munge / 'munged.pid'}",
                f"--log-file={r / 'log' / 'munged.log'}",
                f"--seed-file={munge / 'munge.seed'}",
            ]
        )
        self._wait(lambda: self.socket.exists(), 15, "munged did not create its socket")
        self._spawn([_which("slurmctld"), "-D", "-i", "-f", str(self.conf)])
        self._spawn([_which("slurmd"), "-D", "-f", str(self.conf), "-N", self.host])
        self._wait(self._node_idle, timeout, "the Slurm node did not become idle")
        return self

    def _spawn(self, argv: list) -> None:
        log = open(self.root / "log" / f"{Path(argv[0]).name}.out", "w")  # noqa: SIM115
        self.procs.append(
            subprocess.Popen(
                [str(a) for a in argv],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        )

    def _node_idle(self) -> bool:
        for proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args[0]} exited with code {proc.returncode}\n{self.logs()}")
        out = subprocess.run(
            [_which("sinfo"), "-h", "-o", "%T"], env=self.env, capture_output=True, text=True
        ).stdout
        return out.strip().startswith("idle")

    def _wait(self, ready, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if ready():
                return
            time.sleep(0.5)
        raise RuntimeError(f"{what} within {timeout:g} s\n{self.logs()}")

    def logs(self) -> str:
        """The tails of the daemons' logs (for error messages)."""
        parts = []
        for path in sorted((self.root / "log").glob("*")):
            text = path.read_text(errors="replace").strip().splitlines()[-15:]
            parts.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(parts)

    def stop(self) -> None:
        """Cancel every job, stop the daemons (slurmd, slurmctld, munged) and wait for them."""
        if self.conf.exists() and self.procs:
            subprocess.run([_which("scancel"), "--full", "-u", "root"], env=self.env, capture_output=True)
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.procs.clear()

    def __enter__(self) -> LocalSlurm:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    import sys
    import tempfile

    why = unavailable_reason()
    if why:
        sys.exit(why)
    with tempfile.TemporaryDirectory() as tmp, LocalSlurm(Path(tmp)) as cluster:
        print(subprocess.run(["sinfo"], env=cluster.env, capture_output=True, text=True).stdout)
        out = subprocess.run(
            ["srun", "-N1", "hostname"], env=cluster.env, capture_output=True, text=True, timeout=60
        )
        print("srun hostname:", out.stdout.strip(), out.stderr.strip())
