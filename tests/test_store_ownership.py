"""One run cannot take from another: store creation, resume of a live run, imports, foreign files.

Each test is written the way a user meets the problem: real processes on one store, real export
files, the ``vqbench`` command.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from _report_synth import store_row

from vqbench.cli import main
from vqbench.results import ResultStore, StoreError

ENV = {"torch": "2.13.0", "cpu": "test cpu", "threads": 2, "git_sha": "abc"}
ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return env


def _wait_for(path: Path, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > end:
            raise AssertionError(f"{path} did not appear within {timeout} s")
        time.sleep(0.05)


_row = store_row


# -- defect 1: a refused run deletes the store that another run writes ---------------------------
_REFUSED_RUN = textwrap.dedent(
    """
    # `vqbench run` whose profile read waits until the other process has opened the store
    import os, pathlib, sys, time
    import vqbench.suite.prepare as prepare
    from vqbench.cli import main
    gate = pathlib.Path(os.environ["GATE_DIR"])
    load = prepare.load_profile

    def slow_load(*args, **kwargs):
        (gate / "a_loading").touch()
        while not (gate / "b_open").exists():
            time.sleep(0.05)
        return load(*args, **kwargs)

    prepare.load_profile = slow_load
    sys.exit(main(sys.argv[1:]))
    """
)
_OTHER_RUN = textwrap.dedent(
    """
    import os, pathlib, sys, time
    from vqbench.results import ResultStore
    gate = pathlib.Path(os.environ["GATE_DIR"])
    while not (gate / "a_loading").exists():
        time.sleep(0.05)
    st = ResultStore(sys.argv[1])
    (gate / "b_open").touch()
    while not (gate / "a_done").exists():
        time.sleep(0.05)
    run = st.start_run("quick", {"cpu": "x"})
    st.write_rows([{"benchmark": "usage", "quantizer": "fsq", "metric": "m", "value": 1.0, "cell_id": "c"}])
    st.finish_run(run)
    st.close()
    print(run)
    """
)


def test_a_refused_run_never_removes_the_store_another_run_writes(tmp_path):
    gate = tmp_path / "gate"
    gate.mkdir()
    refuser = tmp_path / "refused_run.py"
    refuser.write_text(_REFUSED_RUN)
    script = tmp_path / "other_run.py"
    script.write_text(_OTHER_RUN)
    store = tmp_path / "new.sqlite"
    env = {**_env(), "GATE_DIR": str(gate)}
    other = subprocess.Popen(
        [sys.executable, str(script), str(store)], env=env, stdout=subprocess.PIPE, text=True
    )
    refused = subprocess.run(
        [
            sys.executable,
            str(refuser),
            "run",
            "--store",
            str(store),
            "--no-progress",
            "--suite",
            str(tmp_path / "no-such-profile.toml"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    (gate / "a_done").touch()
    out, _ = other.communicate(timeout=120)
    assert refused.returncode == 2, refused.stderr
    assert other.returncode == 0
    run_id = out.strip()
    assert store.is_file(), "the refused run removed the store that the other run wrote"
    with ResultStore(store, readonly=True) as st:
        assert st.runs()["run_id"].tolist() == [run_id]
        assert len(st.rows(run_id)) == 1


def test_a_refused_run_leaves_no_store_file(tmp_path):
    store = tmp_path / "new.sqlite"
    assert main(["run", "--store", str(store), "--no-progress", "--quantizers", "no-such-quantizer"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# -- defect 2: --resume of a run that another process still writes -------------------------------
_LIVE_RUN = textwrap.dedent(
    """
    import sys, time
    from vqbench.results import ResultStore
    from vqbench.suite.cells import Cell
    st = ResultStore(sys.argv[1])
    cell = Cell(suite="quick", benchmark="usage", quantizer="fsq", config={"codebook_size": 256})
    run = st.start_run("quick", {"cpu": "x"}, config={"cells": [cell.to_dict()], "timeouts": {}})
    print(run, flush=True)
    time.sleep(600)
    """
)


def test_resume_of_a_run_that_is_still_being_written_is_refused(tmp_path, capsys):
    script = tmp_path / "live.py"
    script.write_text(_LIVE_RUN)
    store = tmp_path / "s.sqlite"
    live = subprocess.Popen(
        [sys.executable, str(script), str(store)], env=_env(), stdout=subprocess.PIPE, text=True
    )
    try:
        run_id = live.stdout.readline().strip()
        assert run_id
        code = main(["run", "--resume", run_id, "--store", str(store), "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2
        assert "still being written by process" in err and str(live.pid) in err
        with ResultStore(store) as st:  # the atomic claim refuses too, not only the early check
            from vqbench.results import RunBusyError

            with pytest.raises(RunBusyError):
                st.start_run("quick", {"cpu": "x"}, run_id=run_id)
            assert st.rows(run_id).empty
    finally:
        live.send_signal(signal.SIGKILL)
        live.wait(timeout=30)
    with ResultStore(store) as st:  # its writer is gone: now it may be taken over
        assert st.run_info(run_id)["status"] == "died"
        assert st.start_run("quick", {"cpu": "x"}, run_id=run_id) == run_id


def test_of_two_resumes_at_once_one_wins(tmp_path):
    path = tmp_path / "s.sqlite"
    with ResultStore(path) as st:
        run = st.start_run("quick", ENV)
        st.finish_run(run, "interrupted")
    script = tmp_path / "claim.py"
    script.write_text(
        textwrap.dedent(
            """
        import sys, time
        from vqbench.results import ResultStore
        from vqbench.results import RunBusyError
        st = ResultStore(sys.argv[1])
        try:
            st.start_run("quick", {}, run_id=sys.argv[2])
        except RunBusyError:
            print("refused", flush=True)
            sys.exit(0)
        print("claimed", flush=True)
        time.sleep(20)
        """
        )
    )
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(path), run], env=_env(), stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    try:
        answers = sorted(p.stdout.readline().strip() for p in procs)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert answers == ["claimed", "refused", "refused"]


# -- defect 3: imports that merge, and what a failed import leaves -------------------------------
def _finished_run(path: Path, rows: int = 3) -> str:
    with ResultStore(path) as st:
        run = st.start_run("quick", ENV, {"argv": ["run"]})
        st.write_rows([_row(cell_id=f"c{i}", value=0.1 * i) for i in range(rows)])
        st.finish_run(run)
    return run


def test_import_of_an_existing_run_id_is_refused_and_changes_nothing(tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    run = _finished_run(store)
    export = tmp_path / "run.json"
    with ResultStore(store) as st:
        st.export(run, export)
    doc = json.loads(export.read_text())
    doc["run"]["suite"] = "standard"
    doc["run"]["status"] = "interrupted"
    for r in doc["rows"]:
        r["value"] = 9.0
        r["time"] = "2030-01-01T00:00:00+00:00"
    doctored = tmp_path / "doctored.json"
    doctored.write_text(json.dumps(doc))
    before = store.read_bytes()
    assert main(["results", "--store", str(store), "--import", str(doctored)]) == 2
    assert "already exists" in capsys.readouterr().err
    with ResultStore(store, readonly=True) as st:
        assert len(st.rows(run)) == 3 and st.run_info(run)["status"] == "finished"
        assert st.rows(run)["value"].max() < 1
    assert store.read_bytes() == before
    # asked for, it is stored under a new id that says where it came from
    assert main(["results", "--store", str(store), "--import", str(doctored), "--new-id"]) == 0
    with ResultStore(store, readonly=True) as st:
        runs = st.runs()
        assert len(runs) == 2
        new = [r for r in runs["run_id"] if r != run][0]
        info = st.run_info(new)
        assert info["config"]["imported"]["run_id"] == run
        assert info["config"]["imported"]["file"] == "doctored.json"
        assert info["suite"] == "standard" and info["status"] == "interrupted"
        assert len(st.rows(new)) == 3 and len(st.rows(run)) == 3


def test_a_failed_import_leaves_no_run_behind(tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    run = _finished_run(store)
    with ResultStore(store) as st:
        st.export(run, tmp_path / "run.json")
    doc = json.loads((tmp_path / "run.json").read_text())
    doc["run"]["run_id"] = "other-run"
    doc["rows"][2]["metric"] = None  # the last row is bad
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    assert main(["results", "--store", str(store), "--import", str(bad)]) == 2
    with ResultStore(store, readonly=True) as st:
        assert st.runs()["run_id"].tolist() == [run]
    assert main(["report", "--store", str(store), "--out", str(tmp_path / "rep")]) == 0
    # into a new store path, a failed import leaves no file at all
    fresh = tmp_path / "fresh.sqlite"
    assert main(["results", "--store", str(fresh), "--import", str(bad)]) == 2
    assert not fresh.exists()


def test_report_of_a_run_without_rows_says_so(tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    with ResultStore(store) as st:
        run = st.start_run("quick", ENV)
        st.finish_run(run, "interrupted")
    assert main(["report", run, "--store", str(store), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert "holds no rows" in err and "pyarrow" not in err
    assert main(["results", run, "--store", str(store)]) == 2
    assert "holds no rows" in capsys.readouterr().err


# -- foreign and empty files ----------------------------------------------------------------------
def _listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("kind", ["empty-sqlite", "zero-bytes", "foreign-wal"])
def test_an_empty_or_foreign_file_is_never_adopted_or_altered(tmp_path, kind):
    path = tmp_path / "results.sqlite"
    if kind == "zero-bytes":
        path.write_bytes(b"")
    else:
        conn = sqlite3.connect(path)
        if kind == "foreign-wal":
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE notes (x)")
            conn.commit()
        else:
            conn.execute("CREATE TABLE t (x)")
            conn.execute("DROP TABLE t")
            conn.commit()
        conn.close()
    before = _listing(tmp_path)
    with pytest.raises(StoreError, match="not a vqbench result store|empty file"):
        ResultStore(path)
    with pytest.raises(StoreError, match="not a vqbench result store|empty file"):
        ResultStore(path, readonly=True)
    assert main(["run", "--store", str(path), "--no-progress", "--quantizers", "fsq"]) == 2
    assert _listing(tmp_path) == before  # not altered, no -wal/-shm beside it


def test_a_corrupt_store_gets_no_journal_files_beside_it(tmp_path):
    path = tmp_path / "s.sqlite"
    with ResultStore(path) as st:
        st.start_run("quick", ENV)
        st.write_rows([_row(cell_id=str(i), extra={"pad": "y" * 500}) for i in range(400)])
    raw = bytearray(path.read_bytes())
    for off in range(2 * 4096, len(raw) - 4096, 4096):  # scribble over interior pages
        raw[off + 8 : off + 64] = b"\xff" * 56
    path.write_bytes(bytes(raw))
    before = _listing(tmp_path)
    with pytest.raises(StoreError):
        ResultStore(path)
    assert _listing(tmp_path) == before


# -- a valid store in a folder this user cannot write ---------------------------------------------
def test_a_store_in_a_read_only_folder_is_read_by_results_and_report(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "shared"
    folder.mkdir()
    store = folder / "results.sqlite"
    run = _finished_run(store)
    before = _listing(folder)
    if os.geteuid() == 0:  # permissions do not bind root: the folder is read-only as far as vqbench asks
        import vqbench.results._connection as store_module

        real = os.access
        monkeypatch.setattr(
            store_module.os,
            "access",
            lambda p, mode: False if Path(p).resolve() == folder.resolve() else real(p, mode),
        )
    else:
        folder.chmod(0o555)
    try:
        assert main(["results", "--store", str(store)]) == 0
        assert main(["results", run, "--store", str(store)]) == 0
        assert main(["report", run, "--store", str(store), "--out", str(tmp_path / "r")]) == 0
        err = capsys.readouterr().err
        assert "corrupt" not in err
        assert (tmp_path / "r" / "report.md").is_file()
        assert _listing(folder) == before  # nothing written beside it
        assert main(["run", "--store", str(store), "--no-progress"]) == 2  # writing is refused, clearly
        assert "not writable" in capsys.readouterr().err
    finally:
        folder.chmod(0o755)
