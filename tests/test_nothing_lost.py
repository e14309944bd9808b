"""Nothing lost, nothing forged: overlapping resumes, imports, dead runs, removed runs, the gate.

Each test reproduces a defect the way a user meets it, on a real store.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from _report_synth import store_row
from _runner_profile import profile

from vqbench.cli import main
from vqbench.results import ResultStore
from vqbench.suite import run_suite
from vqbench.suite.prepare import prepare_run
from vqbench.suite.runner import _run

ENV = {"torch": "2.13.0", "cpu": "test cpu", "threads": 2, "git_sha": "abc"}


_row = store_row


def test_two_overlapping_resumes_store_each_missing_cell_once(tmp_path):
    store = tmp_path / "r.sqlite"
    run_id = run_suite(profile(tmp_path, ["fsq", "vq"]), store=store, progress=False)
    with ResultStore(store) as st:
        first = st.rows(run_id)
    # the run died with its vq cell unmeasured
    with sqlite3.connect(store) as conn:
        conn.execute("DELETE FROM results WHERE run_id = ? AND quantizer = 'vq'", (run_id,))
        conn.execute("UPDATE runs SET status = 'interrupted' WHERE run_id = ?", (run_id,))
    with ResultStore(store) as st:
        late = prepare_run(st, resume=run_id, preflight=False)  # worked out its cells first
        assert [c.quantizer for c in late.todo] == ["vq"]
        # meanwhile another resume of the same run measured the missing cell and finished
        assert run_suite(store=store, resume=run_id, progress=False) == run_id
        _run(st, late, progress=False)
        rows = st.rows(run_id)
        assert st.run_info(run_id)["status"] == "finished"
    assert len(rows) == len(first)
    assert rows.groupby("cell_id").size().nunique() == 1  # no cell measured twice


# -- imports: duplicates, repeated files, ids that are paths, dates, marks -----------------------
def _export(tmp_path: Path, rows: int = 3, **run_fields) -> Path:
    """A finished run exported to JSON, with ``run_fields`` written over its run record."""
    src = tmp_path / "src.sqlite"
    with ResultStore(src) as st:
        run = st.start_run("quick", ENV, {"argv": ["run"]})
        st.write_rows([_row(cell_id=f"c{i}", value=0.1 * i) for i in range(rows)])
        st.finish_run(run)
        out = st.export(run, tmp_path / f"{run}.json")
    doc = json.loads(out.read_text())
    doc["run"].update(run_fields)
    out.write_text(json.dumps(doc))
    return out


def _runs(store: Path):
    with ResultStore(store, readonly=True) as st:
        return st.runs()


def test_an_import_with_repeated_rows_is_refused_whole(tmp_path, capsys):
    path = _export(tmp_path)
    doc = json.loads(path.read_text())
    doc["rows"] = doc["rows"] + [{k: v for k, v in doc["rows"][0].items() if k != "row_id"}]
    path.write_text(json.dumps(doc))
    store = tmp_path / "s.sqlite"
    assert main(["results", "--import", str(path), "--store", str(store)]) == 2
    assert "repeats row #0" in capsys.readouterr().err
    assert not store.exists() or _runs(store).empty


def test_the_same_file_imported_with_new_id_again_is_stored_once(tmp_path):
    path = _export(tmp_path)
    store = tmp_path / "s.sqlite"
    for _ in range(3):
        assert main(["results", "--import", str(path), "--store", str(store), "--new-id"]) == 0
    assert len(_runs(store)) == 1


@pytest.mark.parametrize("bad_id", ["/tmp/escape", "../../escape", "a" * 300, ".hidden", "a b"])
def test_an_imported_run_id_that_is_not_a_plain_name_is_refused(tmp_path, capsys, bad_id):
    path = _export(tmp_path, run_id=bad_id)
    store = tmp_path / "s.sqlite"
    assert main(["results", "--import", str(path), "--store", str(store)]) == 2
    assert "letters, digits" in capsys.readouterr().err
    assert not store.exists() or _runs(store).empty


@pytest.mark.parametrize(
    ("started", "said"), [("yesterday", "ISO 8601"), ("2999-01-01T00:00:00+00:00", "future")]
)
def test_an_import_with_a_bad_or_future_start_is_refused(tmp_path, capsys, started, said):
    path = _export(tmp_path, started=started)
    store = tmp_path / "s.sqlite"
    assert main(["results", "--import", str(path), "--store", str(store)]) == 2
    assert said in capsys.readouterr().err
    assert not store.exists() or _runs(store).empty


def test_an_imported_run_brings_no_gate_marks_into_the_history(tmp_path):
    path = _export(tmp_path, config={"accepted": {"time": "x", "from": "y"}, "gate": {"status": "ok"}})
    store = tmp_path / "s.sqlite"
    assert main(["results", "--import", str(path), "--store", str(store)]) == 0
    with ResultStore(store, readonly=True) as st:
        config = st.run_info(st.resolve_run("latest"))["config"]
    assert "accepted" not in config and "gate" not in config and config["imported"]


def test_a_stored_run_with_an_unreadable_time_does_not_break_listing(tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    with ResultStore(store) as st:
        run = st.start_run("quick", ENV)
        st.write_rows([_row()])
        st.finish_run(run)
    with sqlite3.connect(store) as conn:  # as an older vqbench stored an import
        conn.execute("UPDATE runs SET started = 'last tuesday' WHERE run_id = ?", (run,))
    assert main(["results", "--store", str(store)]) == 0
    assert run in capsys.readouterr().out


# -- a run that died on another host, and removing a run ----------------------------------------
def _running_elsewhere(store: Path) -> str:
    with ResultStore(store) as st:
        run = st.start_run("quick", ENV)
        st.write_rows([_row()])
    with sqlite3.connect(store) as conn:  # its process ran in a container that is gone
        owner = {"pid": 1, "host": "ci-container-4f2a"}
        conn.execute("UPDATE runs SET config = ? WHERE run_id = ?", (json.dumps({"owner": owner}), run))
    return run


def test_a_run_that_died_on_another_host_can_be_declared_died_and_resumed(tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    run = _running_elsewhere(store)
    with ResultStore(store) as st:
        assert st.run_info(run)["status"] == "running"
    assert main(["results", run, "--declare-died", "--store", str(store)]) == 0
    assert f"vqbench run --resume {run}" in capsys.readouterr().out
    with ResultStore(store) as st:
        assert st.run_info(run)["status"] == "interrupted"
        assert len(st.rows(run)) == 1  # nothing it measured is lost
    assert main(["results", run, "--declare-died", "--store", str(store)]) == 2  # once is enough
    assert "not running" in capsys.readouterr().err
    with ResultStore(store) as st:
        assert st.start_run("quick", ENV, run_id=run) == run  # a resume may take it now


def test_a_live_run_of_this_host_is_neither_declared_died_nor_removed(tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    with ResultStore(store) as st:
        run = st.start_run("quick", ENV)  # this process writes it
    for option in ("--declare-died", "--remove"):
        assert main(["results", run, option, "--store", str(store)]) == 2
        assert "still being written" in capsys.readouterr().err
    with ResultStore(store) as st:
        assert st.run_info(run)["status"] == "running"


def test_remove_takes_one_whole_run_and_its_rows(tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    with ResultStore(store) as st:
        keep = st.start_run("quick", ENV)
        st.write_rows([_row()])
        st.finish_run(keep)
        gone = st.start_run("quick", ENV)
        st.write_rows([_row(cell_id=f"c{i}") for i in range(4)])
        st.finish_run(gone)
    assert main(["results", gone[:10], "--remove", "--store", str(store)]) == 2  # a prefix is not enough
    assert "whole id" in capsys.readouterr().err
    assert main(["results", gone, "--remove", "--store", str(store)]) == 0
    assert "4 rows" in capsys.readouterr().out
    with ResultStore(store) as st:
        assert st.runs()["run_id"].tolist() == [keep]
        assert len(st.rows()) == 1
    assert main(["results", "--remove", "--store", str(store)]) == 2  # which run?


# -- the gate passes only what ran ---------------------------------------------------------------
def _night(st: ResultStore, statuses: list[str]) -> str:
    """A finished run of one usage figure over three seeds, each seed's row of ``statuses``."""
    run = st.start_run("full", ENV)
    rows = []
    for seed, status in enumerate(statuses):
        row = _row(cell_id=f"c{seed}", seed=seed, value=0.9 + 0.001 * seed, status=status)
        if status != "ok":
            row.update(value=None, message="dataset absent" if status == "skipped" else "boom")
        rows.append(row)
    st.write_rows(rows)
    st.finish_run(run)
    return run


@pytest.mark.parametrize(
    ("tonight", "said"),
    [(["skipped"] * 3, "measured nothing"), (["ok", "error", "error"], "2 cell(s)")],
)
def test_a_night_that_did_not_run_everything_never_passes(tmp_path, tonight, said):
    from vqbench.reports.nightly import gate_run, nightly_summary

    with ResultStore(tmp_path / "h.sqlite") as st:
        for _ in range(3):
            _night(st, ["ok"] * 3)
        run = _night(st, tonight)
        summary = nightly_summary(gate_run(st, run))
    assert summary["exit_code"] == 4
    assert any(said in why for why in summary["incomplete"])


def test_a_whole_night_passes(tmp_path):
    from vqbench.reports.nightly import gate_run, nightly_summary

    with ResultStore(tmp_path / "h.sqlite") as st:
        for _ in range(3):
            _night(st, ["ok"] * 3)
        run = _night(st, ["ok"] * 3)
        summary = nightly_summary(gate_run(st, run))
    assert summary["exit_code"] == 0 and not summary["incomplete"]


# -- a plugin that calls exit() while being imported --------------------------------------------
@pytest.mark.parametrize("how", ["file", "module"])
def test_a_plugin_that_exits_on_import_fails_the_run(tmp_path, monkeypatch, capsys, how):
    (tmp_path / "quitter.py").write_text("import sys\nsys.exit(0)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    store = tmp_path / "s.sqlite"
    args = ["run", "--store", str(store), "--no-progress", "--suite", str(profile(tmp_path, ["fsq"]))]
    if how == "file":
        args += ["--quantizers", f"{tmp_path / 'quitter.py'}:Q"]
    else:
        args += ["--plugins", "quitter"]
    assert main(args) == 2
    assert "exit(0) while being imported" in capsys.readouterr().err
    assert not store.exists()


# -- a plugin under a built-in's name is checked like any plugin --------------------------------
def test_a_plugin_in_a_built_in_s_place_is_not_taken_for_the_built_in():
    import torch

    from vqbench.quantizers import register_quantizer
    from vqbench.quantizers._registry import REGISTRY
    from vqbench.suite.preflight import is_builtin

    class Fast(torch.nn.Module):
        """Claims to be vqbench's FSQ."""

    assert is_builtin("fsq") and is_builtin("vq")
    state = REGISTRY.snapshot()
    try:
        REGISTRY.remove("fsq")
        register_quantizer(
            "fsq", Fast, family="fsq", memory="linear", settings={}, description="x", builtin=True
        )
        register_quantizer(
            "fsq-fast", Fast, family="fsq", memory="linear", settings={}, description="x", builtin=True
        )
        assert not is_builtin("fsq") and not is_builtin("fsq-fast")
    finally:
        REGISTRY.restore(state)
    assert is_builtin("fsq")


# -- listing a large store reads little ----------------------------------------------------------
def test_listing_runs_reads_only_the_marks_of_each_config(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as st:
        cells = [{"quantizer": "fsq", "seed": i} for i in range(1000)]
        run = st.start_run("quick", ENV, config={"cells": cells, "imported": {"file": "f.json"}})
        listed = json.loads(st.runs()["config"].iloc[0])
        assert "cells" not in listed and listed["imported"] == {"file": "f.json"}
        assert listed["owner"]["pid"] > 0 and st.runs()["status"].iloc[0] == "running"
        assert len(st.run_info(run)["config"]["cells"]) == 1000  # the whole config is still there


# -- a store whose newest rows are in its write-ahead log, in a read-only folder -----------------
def test_rows_in_the_write_ahead_log_never_vanish_in_a_read_only_folder(tmp_path, monkeypatch, capsys):
    import os
    import shutil

    import vqbench.results._connection as store_module

    folder = tmp_path / "shared"
    folder.mkdir()
    store = folder / "results.sqlite"
    with ResultStore(store) as st:
        run = st.start_run("quick", ENV)
        st.write_rows([_row()])
        st.finish_run(run)
        # a copy taken while the writer holds the store open: the rows are still in the -wal file
        shutil.copy(store, tmp_path / "copy.sqlite")
        shutil.copy(f"{store}-wal", tmp_path / "copy.sqlite-wal")
    copy = tmp_path / "copy.sqlite"
    assert Path(f"{copy}-wal").stat().st_size > 0 and not Path(f"{copy}-shm").exists()
    real = os.access  # the folder is read-only as far as vqbench asks (permissions do not bind root)
    monkeypatch.setattr(
        store_module.os, "access", lambda p, mode: False if Path(p).resolve() == tmp_path else real(p, mode)
    )
    assert main(["results", "--store", str(copy)]) == 2
    assert "write-ahead log" in capsys.readouterr().err


# -- a core-lock folder that someone else planted -----------------------------------------------
@pytest.mark.parametrize("planted", ["other user", "world-writable", "link"])
def test_a_planted_core_lock_folder_is_not_trusted(tmp_path, planted):
    import os

    from vqbench.suite.executors.local import CoreClaims

    folder = tmp_path / "vqbench-cores-1000"
    if planted == "link":
        target = tmp_path / "elsewhere"
        target.mkdir(mode=0o700)
        folder.symlink_to(target)
    else:
        folder.mkdir()
        folder.chmod(0o777 if planted == "world-writable" else 0o700)
        if planted == "other user":
            if os.geteuid() != 0:
                pytest.skip("only root can give a folder to another user")
            os.chown(folder, 65534, 65534)
    claims = CoreClaims(folder)
    try:
        assert claims.grab_free([0]) == [0]
        own = tmp_path / "vqbench-cores-1000-1"
        assert (own / "core-0.lock").is_file()
        assert not (folder / "core-0.lock").exists()
        assert os.stat(own).st_uid == os.getuid() and not os.stat(own).st_mode & 0o077
        other = CoreClaims(folder)  # this user's next run finds the same locks
        assert other.grab_free([0]) == []
    finally:
        claims.release()


# -- a figure with a badly typed field is one error row, not a failed run -----------------------
@pytest.mark.parametrize(
    "bad", [{"unit": 5}, {"extra": "x"}, {"n": "many"}, {"higher_is_better": "yes"}, {"time": []}]
)
def test_a_badly_typed_figure_is_an_error_row_and_the_run_goes_on(tmp_path, bad):
    from vqbench.suite.cells import Cell
    from vqbench.suite.progress import ProgressBar
    from vqbench.suite.run_loop import CellLoop

    cells = [Cell(suite="t", benchmark="usage", quantizer=q, dataset="gaussian") for q in ("fsq", "vq")]
    good = {"metric": "utilization", "value": 0.5, "unit": "", "higher_is_better": True}
    with ResultStore(tmp_path / "s.sqlite") as st:
        run = st.start_run("t", ENV)
        with ProgressBar(2, False, "t") as bar:
            loop = CellLoop(None, st, run, cells, bar, None)
            loop._record(cells[0], {"status": "ok", "figures": [{**good, **bad}]}, 0)
            loop._record(cells[1], {"status": "ok", "figures": [good]}, 1)
        rows = st.rows(run).set_index("quantizer")
    assert rows.loc["fsq", "status"] == "error"
    assert "could not be stored" in rows.loc["fsq", "message"]
    assert rows.loc["vq", "status"] == "ok" and loop.done == 2


def test_nightly_gates_a_stored_run_in_a_read_only_folder(tmp_path, monkeypatch):
    import os

    import vqbench.results._connection as store_module

    folder = tmp_path / "shared"
    folder.mkdir()
    store = folder / "results.sqlite"
    with ResultStore(store) as st:
        for _ in range(3):
            _night(st, ["ok"] * 3)
    before = sorted(p.name for p in folder.iterdir())
    real = os.access  # the folder is read-only as far as vqbench asks (permissions do not bind root)
    monkeypatch.setattr(
        store_module.os, "access", lambda p, mode: False if Path(p).resolve() == folder else real(p, mode)
    )
    out = tmp_path / "n"
    assert main(["nightly", "--run", "latest", "--store", str(store), "--out", str(out)]) == 0
    assert json.loads((out / "summary.json").read_text())["exit_code"] == 0
    assert sorted(p.name for p in folder.iterdir()) == before


# -- a peer that sends a byte now and then cannot hold a handshake slot -------------------------
def test_the_handshake_time_limit_covers_the_whole_handshake():
    import socket
    import threading
    import time

    from vqbench.suite import _wire

    here, peer = socket.socketpair()
    stop = threading.Event()

    def drip() -> None:  # one byte every 0.2 s: each read is quick, the handshake never ends
        peer.recv(1024)  # the challenge
        for byte in b"\x00\x00\x00\x30" + b"\x01" * 0x30:  # a whole answer frame, slowly
            if stop.wait(0.2):
                return
            try:
                peer.send(bytes([byte]))
            except OSError:
                return

    threading.Thread(target=drip, daemon=True).start()
    start = time.monotonic()
    try:
        with pytest.raises(TimeoutError):
            _wire.serve_handshake(here, b"k" * 32, timeout=1.0)
        assert time.monotonic() - start < 3.0
    finally:
        stop.set()
        here.close()
        peer.close()


# -- a failure in float32 is not a precision refusal ---------------------------------------------
def test_a_failure_in_float32_says_what_failed_not_that_float32_is_refused():
    from vqbench.suite.precision import refusal_named

    with pytest.raises(ZeroDivisionError), refusal_named("mine", "float32"):
        raise ZeroDivisionError("division by zero")
    with pytest.raises(RuntimeError, match="refuses precision 'float16': ZeroDivisionError"):
        with refusal_named("mine", "float16"):
            raise ZeroDivisionError("division by zero")


def test_an_import_with_a_badly_typed_value_is_refused_in_one_line(tmp_path, capsys):
    path = _export(tmp_path)
    doc = json.loads(path.read_text())
    doc["rows"][1]["higher_is_better"] = "yes"
    path.write_text(json.dumps(doc))
    store = tmp_path / "s.sqlite"
    assert main(["results", "--import", str(path), "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert "row #1" in err and "higher_is_better" in err and "Traceback" not in err
    assert not store.exists() or _runs(store).empty


def test_a_dataset_larger_than_memory_is_refused_before_the_run(tmp_path, capsys):
    path = profile(tmp_path, ["fsq"])
    path.write_text(path.read_text().replace("n_train = 256", "n_train = 100000000000"))
    store = tmp_path / "s.sqlite"
    assert main(["run", "--suite", str(path), "--store", str(store), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "datasets.gaussian.n_train" in err and "GiB" in err
    assert not store.exists()
