"""Terminal tables at 80 columns: run ids and quantizer names stay whole, other columns wrap.

The commands run in a real pseudo-terminal 80 columns wide (rich fits tables to it) and through a
pipe with COLUMNS=80 (every line stays whole there).
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from _report_synth import add_run

from vqbench.results import ResultStore

ROOT = str(Path(__file__).resolve().parents[1])
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _env(columns: int) -> dict:
    path = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH", "")]))
    return {**os.environ, "COLUMNS": str(columns), "PYTHONPATH": path, "TERM": "xterm-256color"}


def in_terminal(args: list[str], cwd: Path, columns: int = 80) -> str:
    """What ``vqbench ARGS`` prints in a pseudo-terminal ``columns`` wide (styles removed)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "vqbench.cli", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=cwd,
        env=_env(columns),
        close_fds=True,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed its side
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=300) == 0, b"".join(chunks).decode(errors="replace")[-2000:]
    os.close(master)
    return ANSI.sub("", b"".join(chunks).decode("utf-8", errors="replace")).replace("\r\n", "\n")


def in_pipe(args: list[str], cwd: Path, columns: int = 80) -> str:
    got = subprocess.run(
        [sys.executable, "-m", "vqbench.cli", *args],
        cwd=cwd,
        env=_env(columns),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return got.stdout


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("terminal")
    with ResultStore(folder / "s.sqlite") as st:
        runs = [add_run(st, samples=False, seed=s) for s in range(2)]
    return folder, runs


@pytest.mark.parametrize("where", [in_terminal, in_pipe])
def test_results_keeps_every_run_id_whole_at_80_columns(store, where):
    folder, runs = store
    out = where(["results", "--store", "s.sqlite"], folder)
    for run in runs:
        assert run in out, f"run id {run} is cut:\n{out}"
    if where is in_terminal:
        assert max(len(line) for line in out.splitlines()) <= 80
        assert any(len(line) >= 70 for line in out.splitlines())  # the table does fill the width


@pytest.mark.parametrize("where", [in_terminal, in_pipe])
def test_list_keeps_every_name_whole_at_80_columns(tmp_path, where):
    import json

    # the names the command itself knows (this test process may hold other tests' registrations)
    names = [q["name"] for q in json.loads(in_pipe(["list", "--no-measure", "--json"], tmp_path))]
    assert len(names) >= 10
    out = where(["list", "--no-measure"], tmp_path)
    words = set(re.findall(r"[\w.-]+", out))
    for name in names:
        assert name in words, f"{name} is cut or wrapped:\n{out}"
    if where is in_terminal:
        assert max(len(line) for line in out.splitlines()) <= 80


def test_report_tables_keep_quantizer_names_whole_in_a_terminal(store):
    folder, runs = store
    out = in_terminal(["results", runs[0], "--store", "s.sqlite", "--benchmark", "usage"], folder)
    words = set(re.findall(r"[\w.-]+", out))
    assert {"fsq", "vq", "lfq", "residual-vq"} <= words, out
    assert max(len(line) for line in out.splitlines()) <= 80
