"""A metric renamed since it was stored is read under its new name, on every read path."""

from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest

from vqbench.errors import UserError
from vqbench.results import ResultStore, RunBusyError, StoreError, load_results, read_export
from vqbench.results._renames import current_names
from vqbench.results.vocabulary import RENAMED_METRICS

ENV = {"torch": "2.13.0", "cpu": "test cpu", "threads": 2}


def _row(benchmark, metric, value=1.0, **kw):
    return {"benchmark": benchmark, "quantizer": "fsq", "metric": metric, "value": value, "unit": "s", **kw}


def _old_run(path):
    """A store as a vqbench before the rename wrote it: usage figures named fit_time."""
    with ResultStore(path) as st:
        run = st.start_run("quick", ENV)
        st.write_rows(
            [
                _row("usage", "fit_time", 3.0, cell_id="u"),
                _row("usage", "train.fit_time.ema@4096", 4.0, cell_id="u"),
                _row("usage", "utilization", 0.5, cell_id="u"),
                _row("reconstruction", "fit_time", 5.0, cell_id="r"),
            ]
        )
        st.finish_run(run)
    return run


def test_the_rename_is_declared():
    assert RENAMED_METRICS[("usage", "fit_time")] == "train_time"


def test_rows_written_under_the_old_name_are_read_under_the_new(tmp_path):
    path = tmp_path / "s.sqlite"
    run = _old_run(path)
    frame = load_results(run, store=path)
    got = dict(zip(frame["benchmark"] + "/" + frame["metric"], frame["value"], strict=True))
    assert got == {
        "usage/train_time": 3.0,
        "usage/train.train_time.ema@4096": 4.0,  # operation, variant and size stay
        "usage/utilization": 0.5,
        "reconstruction/fit_time": 5.0,  # another benchmark's figure of that name is not renamed
    }
    assert str(frame["metric"].dtype) == "string"
    with ResultStore(path, readonly=True) as st:
        assert list(st.rows()["metric"]) == list(frame["metric"])


def test_rows_an_old_version_wrote_in_raw_sql_are_renamed(tmp_path):
    path = tmp_path / "s.sqlite"
    with ResultStore(path) as st:
        run = st.start_run("quick", ENV)
        st.finish_run(run)
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO results (run_id, time, suite, benchmark, quantizer, config, config_hash, backend, "
        "device, metric, value, unit, cell_id, status, message, extra) VALUES "
        "(?, '2025-01-01T00:00:00+00:00', 'quick', 'usage', 'vq', '{}', 'h', 'eager', 'cpu', "
        "'fit_time', 2.0, 's', 'c', 'ok', '', '{}')",
        (run,),
    )
    conn.commit()
    conn.close()
    assert list(load_results(run, store=path)["metric"]) == ["train_time"]


def test_history_before_the_rename_compares_with_runs_after_it(tmp_path):
    path = tmp_path / "s.sqlite"
    _old_run(path)
    with ResultStore(path) as st:
        new = st.start_run("quick", ENV)
        st.write_rows([_row("usage", "train_time", 3.3, cell_id="u")])
        st.finish_run(new)
        rows = st.rows()
    usage = rows[(rows["benchmark"] == "usage") & (rows["metric"] == "train_time")]
    assert len(usage) == 2 and usage["run_id"].nunique() == 2


def test_exports_of_old_runs_read_back_renamed(tmp_path):
    path = tmp_path / "s.sqlite"
    run = _old_run(path)
    with ResultStore(path) as st:
        out = st.export(run, tmp_path / "run.json")
    doc = json.loads(out.read_text())
    for row in doc["rows"]:  # write an old export by hand: the stored name before the rename
        if row["benchmark"] == "usage" and row["metric"] == "train_time":
            row["metric"] = "fit_time"
    out.write_text(json.dumps(doc))
    assert "usage/train_time" in set(read_export(out).pipe(lambda f: f["benchmark"] + "/" + f["metric"]))


def test_renaming_a_large_frame_maps_each_distinct_name_once(monkeypatch):
    import vqbench.results._renames as renames

    calls = []
    real = renames.current_metric
    monkeypatch.setattr(renames, "current_metric", lambda b, m: calls.append((b, m)) or real(b, m))
    n = 200_000
    frame = pd.DataFrame(
        {
            "benchmark": pd.Series(["usage", "throughput"] * (n // 2), dtype="string"),
            "metric": pd.Series(["fit_time", "fit_time"] * (n // 2), dtype="string"),
        }
    )
    out = current_names(frame)
    assert calls == [("usage", "fit_time")]
    assert (out["metric"][::2] == "train_time").all() and (out["metric"][1::2] == "fit_time").all()
    assert (frame["metric"] == "fit_time").all()  # the input is left as it was


def test_a_frame_with_nothing_renamed_is_returned_as_is():
    frame = pd.DataFrame({"benchmark": ["usage"], "metric": ["utilization"]}, dtype="string")
    assert current_names(frame) is frame


@pytest.mark.parametrize("error", [StoreError, RunBusyError])
def test_store_errors_are_user_errors_and_stay_runtime_errors(error):
    assert issubclass(error, UserError) and issubclass(error, RuntimeError)
    assert issubclass(RunBusyError, StoreError)


def test_a_file_that_is_not_a_store_is_a_user_error(tmp_path):
    bad = tmp_path / "notes.sqlite"
    bad.write_text("not a database at all, just text that is long enough " * 4)
    with pytest.raises(UserError, match="not an SQLite database"):
        ResultStore(bad)
