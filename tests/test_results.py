"""The result store: schema, transactions, bad files, exports and imports."""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from _report_synth import store_row

from vqbench.results import (
    ROW_COLUMNS,
    ResultStore,
    StoreError,
    environment_fingerprint,
    environment_hash,
    load_results,
    read_export,
)

ENV = {"torch": "2.13.0", "cpu": "test cpu", "threads": 2, "git_sha": "abc"}


_row = store_row


@pytest.fixture
def store(tmp_path):
    with ResultStore(tmp_path / "r.sqlite") as st:
        yield st


def _tricky_rows():
    return [
        _row(
            quantizer="fsq",
            config={"codebook_size": 1024, "levels": [8, 5, 5, 5]},
            dataset="digits",
            dataset_checksum="ab12",
            spread=0.01,
            n=7,
            seed=0,
            extra={"nested": {"a": [1, 2]}},
        ),
        _row(
            quantizer='my,"odd"\nname <b>é</b>',
            metric="psnr",
            value=21.25,
            unit="dB",
            benchmark="reconstruction",
            cell_id="c1",
        ),
        _row(
            quantizer="NA",
            metric="vectors_per_s",
            value=1.5e7,
            unit="vectors/s",
            backend="compile",
            spread=2.5e5,
            n=11,
            cell_id="c2",
            extra={"operation": "forward"},
        ),
        _row(
            quantizer="vq",
            metric="utilization",
            value=None,
            status="error",
            message="CUDA out of memory\nline 2",
            higher_is_better=None,
            cell_id="c3",
        ),
        _row(
            quantizer="lfq",
            metric="utilization",
            value=None,
            status="skipped",
            message="no data",
            dataset=None,
            cell_id="c4",
        ),
    ]


def test_write_and_read_rows_with_defaults_and_types(store):
    run = store.start_run("quick", ENV, {"argv": ["run"]})
    store.write_rows(_tricky_rows())
    store.finish_run(run)
    df = store.rows(run)
    assert list(df.columns) == list(ROW_COLUMNS)
    assert len(df) == 5
    assert (df["run_id"] == run).all() and (df["suite"] == "quick").all()
    assert str(df["time"].dtype).startswith("datetime64") and str(df["time"].dt.tz) == "UTC"
    assert df["value"].dtype == "float64" and df["spread"].dtype == "float64"
    assert str(df["n"].dtype) == "Int64" and str(df["seed"].dtype) == "Int64"
    assert str(df["higher_is_better"].dtype) == "boolean"
    assert df.loc[0, "config"] == '{"codebook_size":1024,"levels":[8,5,5,5]}'
    assert df.loc[0, "config_hash"] == df.loc[0, "config_hash"] and len(df.loc[0, "config_hash"]) == 16
    assert json.loads(df.loc[0, "extra"]) == {"nested": {"a": [1, 2]}}
    err = df[df["status"] == "error"].iloc[0]
    assert math.isnan(err["value"]) and err["message"].startswith("CUDA out of memory")
    assert pd.isna(df.loc[4, "dataset"])
    runs = store.runs()
    assert runs.loc[0, "status"] == "finished" and runs.loc[0, "n_rows"] == 5 and runs.loc[0, "n_errors"] == 1
    assert json.loads(runs.loc[0, "environment"]) == ENV
    assert runs.loc[0, "env_hash"] == environment_hash(ENV)


def test_bad_rows_are_rejected_and_nothing_of_the_batch_is_written(store):
    store.start_run("quick", ENV)
    store.write_rows([_row()])
    with pytest.raises(ValueError, match="unknown keys \\['colour'\\]"):
        store.write_rows([_row(cell_id="x"), _row(colour="red")])
    with pytest.raises(ValueError, match="status must be one of"):
        store.write_rows([_row(status="fine")])
    with pytest.raises(ValueError, match="missing required keys \\['metric'\\]"):
        store.write_rows([_row(metric="")])
    with pytest.raises(TypeError, match="value must be a number"):
        store.write_rows([_row(value="fast")])
    with pytest.raises(KeyError, match="not in"):
        store.write_rows([_row(run_id="nope")])
    with pytest.raises(TypeError, match="list of row dicts"):
        store.write_rows(_row())
    assert len(store.rows()) == 1


def test_rows_need_a_started_run(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as st, pytest.raises(ValueError, match="start_run"):
        st.write_rows([_row()])


def test_resume_reopens_a_run_and_lists_done_cells(store):
    run = store.start_run("quick", ENV)
    store.write_rows([_row(cell_id="a"), _row(cell_id="a", metric="perplexity"), _row(cell_id="b")])
    store.finish_run(run, "interrupted")
    assert store.runs().loc[0, "status"] == "interrupted"
    assert store.start_run("quick", {"other": 1}, run_id=run) == run
    assert store.runs().loc[0, "status"] == "running"
    assert store.run_info(run)["environment"] == ENV
    assert store.done_cells(run) == {"a", "b"}
    with pytest.raises(ValueError, match="exists with suite 'quick'"):
        store.start_run("full", ENV, run_id=run)
    with pytest.raises(ValueError, match="run status must be one of"):
        store.finish_run(run, "done")
    with pytest.raises(KeyError, match="no run 'zzz'"):
        store.done_cells("zzz")


def test_load_results_resolves_latest_and_prefixes(tmp_path):
    path = tmp_path / "s.sqlite"
    with ResultStore(path) as st:
        first = st.start_run("quick", ENV, run_id="20250101-000000-aaaaaa")
        st.write_rows([_row()])
        second = st.start_run("quick", ENV, run_id="20250102-000000-bbbbbb")
        st.write_rows([_row(value=0.7), _row(metric="perplexity", value=3.0)])
    assert load_results(store=path)["run_id"].tolist() == [first, second, second]
    assert load_results("latest", store=path)["value"].tolist() == [0.7, 3.0]
    assert len(load_results("20250101", store=path)) == 1
    with pytest.raises(KeyError, match="ambiguous"):
        load_results("2025", store=path)
    with pytest.raises(FileNotFoundError, match="no result store"):
        load_results(store=tmp_path / "missing.sqlite")
    assert not (tmp_path / "missing.sqlite").exists()


def test_default_path_and_environment_variable(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VQBENCH_STORE", raising=False)
    with ResultStore() as st:
        assert st.path == Path(".vqbench/results.sqlite")
        assert not st.path.exists()  # the file appears at the first write
        st.start_run("quick", ENV)
    assert (tmp_path / ".vqbench" / "results.sqlite").is_file()
    monkeypatch.setenv("VQBENCH_STORE", str(tmp_path / "elsewhere" / "x.sqlite"))
    with pytest.raises(StoreError, match="does not exist"):  # a folder is never created silently
        ResultStore()
    (tmp_path / "elsewhere").mkdir()
    with ResultStore() as st:
        assert st.path == tmp_path / "elsewhere" / "x.sqlite"
        st.start_run("quick", ENV)
    assert (tmp_path / "elsewhere" / "x.sqlite").is_file()


_WRITER = textwrap.dedent(
    """
    import sys
    from vqbench.results import ResultStore
    st = ResultStore(sys.argv[1])
    st.start_run("quick", {"cpu": "x"})
    i = 0
    while True:
        st.write_rows([{"benchmark": "usage", "quantizer": f"q{j}", "metric": "m", "value": float(j),
                        "cell_id": f"cell{i}", "extra": {"pad": "x" * 2000}} for j in range(50)])
        i += 1
    """
)


def test_a_process_killed_mid_run_leaves_whole_batches_only(tmp_path):
    path = tmp_path / "killed.sqlite"
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    proc = subprocess.Popen([sys.executable, str(script), str(path)])
    try:
        deadline = time.monotonic() + 60
        count = 0
        while time.monotonic() < deadline and count < 5 * 50:
            time.sleep(0.2)
            if path.exists():
                try:
                    con = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5)
                    count = con.execute("SELECT COUNT(*) FROM results").fetchone()[0]
                    con.close()
                except sqlite3.Error:
                    count = 0
        assert proc.poll() is None, "the writer stopped by itself"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    with ResultStore(path) as st:  # opens (integrity checked), no torn rows
        df = st.rows()
        assert len(df) >= 250
        assert len(df) % 50 == 0
        assert (df.groupby("cell_id").size() == 50).all()
        assert st.runs().loc[0, "status"] == "died"  # its process is gone


def test_corrupt_file_is_reported_and_left_untouched(tmp_path):
    path = tmp_path / "garbage.sqlite"
    data = b"this is not a database\x00" * 200
    path.write_bytes(data)
    with pytest.raises(StoreError, match="not an SQLite database.*left untouched"):
        ResultStore(path)
    assert path.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.sqlite"]


def test_damaged_store_is_reported_and_left_untouched(tmp_path):
    path = tmp_path / "s.sqlite"
    with ResultStore(path) as st:
        st.start_run("quick", ENV)
        st.write_rows([_row(cell_id=str(i), extra={"pad": "y" * 500}) for i in range(400)])
    raw = bytearray(path.read_bytes())
    page = 4096
    for off in range(2 * page, len(raw) - page, page):  # scribble over interior pages
        raw[off + 8 : off + 64] = b"\xff" * 56
    path.write_bytes(bytes(raw))
    with pytest.raises(StoreError, match="corrupt"):
        ResultStore(path)
    assert path.read_bytes() == bytes(raw)


def test_other_sqlite_database_is_refused(tmp_path):
    path = tmp_path / "other.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE people (name TEXT)")
    con.commit()
    con.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a vqbench result store"):
        ResultStore(path)
    assert path.read_bytes() == before


def test_unwritable_location_is_reported(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="does not exist"):
        ResultStore(blocker / "sub" / "results.sqlite")
    with pytest.raises(StoreError, match="not a file"):
        ResultStore(tmp_path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="permissions do not bind root")
def test_read_only_store_is_reported(tmp_path):
    path = tmp_path / "s.sqlite"
    with ResultStore(path) as st:
        st.finish_run(st.start_run("quick", ENV))
    path.chmod(0o444)
    with pytest.raises(StoreError, match="not writable"):
        ResultStore(path)
    with ResultStore(path, readonly=True) as st:
        assert len(st.runs()) == 1


def test_readonly_store_refuses_writes(tmp_path):
    path = tmp_path / "s.sqlite"
    with ResultStore(path) as st:
        st.start_run("quick", ENV)
    with ResultStore(path, readonly=True) as st, pytest.raises(StoreError, match="read-only"):
        st.start_run("quick", ENV)


@pytest.mark.parametrize("suffix", [".json", ".csv", ".parquet"])
def test_export_round_trips(store, tmp_path, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    run = store.start_run("quick", ENV)
    store.write_rows(_tricky_rows())
    store.finish_run(run)
    out = store.export(run, tmp_path / "out" / f"run{suffix}")
    assert out.is_file()
    pd.testing.assert_frame_equal(read_export(out), store.rows(run))


def test_bmf_export_has_bencher_metric_format_shape(store, tmp_path):
    """Bencher Metric Format: {benchmark: {measure: {"value", "lower_value", "upper_value"}}},
    numbers only, lower <= value <= upper; errors and non-finite values left out."""
    run = store.start_run("quick", ENV)
    rows = _tricky_rows()
    store.write_rows(rows)
    store.finish_run(run)
    out = store.export(run, tmp_path / "run.bmf.json")
    doc = json.loads(out.read_text())
    assert isinstance(doc, dict) and doc
    measured = store.rows(run)
    measured = measured[(measured["status"] == "ok") & measured["value"].notna()]
    assert sum(len(m) for m in doc.values()) == len(
        measured[["quantizer", "config", "metric"]].drop_duplicates()
    )
    for name, measures in doc.items():
        assert isinstance(name, str) and name and isinstance(measures, dict) and measures
        for measure, metric in measures.items():
            assert isinstance(measure, str) and measure
            assert set(metric) == {"value", "lower_value", "upper_value"}
            assert all(isinstance(v, float) for v in metric.values())
            assert metric["lower_value"] <= metric["value"] <= metric["upper_value"]
    with pytest.raises(ValueError, match="not a vqbench results export"):
        read_export(out)


def test_export_rejects_unknown_suffix(store, tmp_path):
    run = store.start_run("quick", ENV)
    with pytest.raises(ValueError, match="must end in one of"):
        store.export(run, tmp_path / "x.xlsx")


def test_json_export_imports_into_another_store(store, tmp_path):
    run = store.start_run("quick", ENV, {"argv": ["run"]})
    store.write_rows(_tricky_rows())
    store.finish_run(run)
    out = store.export(run, tmp_path / "run.json")
    with ResultStore(tmp_path / "other.sqlite") as other:
        assert other.import_file(out) == run
        assert other.import_file(out) == run  # idempotent
        pd.testing.assert_frame_equal(other.rows(run), store.rows(run))
        assert other.run_info(run)["environment"] == ENV


def _pytest_benchmark_doc():
    def stats(median, iqr):
        return {
            "min": median * 0.9,
            "max": median * 1.3,
            "mean": median * 1.02,
            "stddev": iqr,
            "rounds": 20,
            "median": median,
            "iqr": iqr,
            "q1": median - iqr / 2,
            "q3": median + iqr / 2,
            "iqr_outliers": 0,
            "stddev_outliers": 1,
            "outliers": "1;0",
            "ld15iqr": median * 0.9,
            "hd15iqr": median * 1.2,
            "ops": 1 / median,
            "total": median * 20,
            "iterations": 1,
        }

    return {
        "machine_info": {
            "node": "h",
            "processor": "x86_64",
            "machine": "x86_64",
            "python_implementation": "CPython",
            "python_version": "3.11.7",
            "system": "Linux",
            "release": "6",
            "cpu": {"brand_raw": "Test CPU", "count": 2},
        },
        "commit_info": {"id": "deadbeef", "dirty": False, "branch": "main"},
        "benchmarks": [
            {
                "group": "forward",
                "name": "test_forward[fsq-eager]",
                "fullname": "tests/benchmarks/test_t.py::test_forward[fsq-eager]",
                "params": {"quantizer": "fsq", "backend": "eager"},
                "param": "fsq-eager",
                "extra_info": {"vectors": 65536, "operation": "forward", "device": "cpu"},
                "options": {},
                "stats": stats(0.004, 0.0002),
            },
            {
                "group": None,
                "name": "test_decode",
                "fullname": "tests/benchmarks/test_t.py::test_decode",
                "params": None,
                "param": None,
                "extra_info": {},
                "options": {},
                "stats": stats(0.01, 0.001),
            },
            {
                "group": "usage cpu dataset=gaussian K=1024",
                "name": "test_usage[vq]",
                "fullname": "tests/benchmarks/test_u.py::test_usage[vq]",
                "params": {"name": "vq"},
                "param": "vq",
                "extra_info": {
                    "quantizer": "vq",
                    "device": "cpu",
                    "dataset": "gaussian",
                    "config": {"codebook_size": 1024},
                    "utilization": 0.42,
                    "dead_codes": 594,
                    "units": {"utilization": "ratio", "dead_codes": "codes"},
                },
                "options": {},
                "stats": stats(2.5, 0.0),
            },
        ],
        "datetime": "2026-01-02T03:04:05.000000+00:00",
        "version": "5.1.0",
    }


def test_pytest_benchmark_json_imports(store, tmp_path):
    path = tmp_path / "0001_bench.json"
    path.write_text(json.dumps(_pytest_benchmark_doc()))
    run = store.import_file(path)
    assert store.import_file(path) == run  # idempotent
    df = store.rows(run)
    assert store.run_info(run)["suite"] == "pytest-benchmark"
    assert store.run_info(run)["environment"]["cpu"] == "Test CPU"
    fwd = df[(df["quantizer"] == "fsq")].set_index("metric")
    assert fwd.loc["time_s", "value"] == pytest.approx(0.004)
    assert fwd.loc["time_s", "spread"] == pytest.approx(0.0002)
    assert not fwd.loc["time_s", "higher_is_better"]
    assert fwd.loc["vectors_per_s", "value"] == pytest.approx(65536 / 0.004)
    assert fwd.loc["vectors_per_s", "higher_is_better"]
    assert json.loads(fwd.loc["time_s", "extra"])["operation"] == "forward"
    assert fwd.loc["time_s", "backend"] == "eager" and fwd.loc["time_s", "n"] == 20
    assert df[df["quantizer"] == "test_decode"]["metric"].tolist() == ["time_s"]
    usage = df[df["benchmark"] == "usage"].set_index("metric")
    assert (
        usage.loc["utilization", "value"] == pytest.approx(0.42)
        and usage.loc["utilization", "unit"] == "ratio"
    )
    assert usage.loc["dead_codes", "value"] == 594 and usage.loc["time_s", "quantizer"] == "vq"
    assert usage.loc["utilization", "dataset"] == "gaussian"
    assert json.loads(usage.loc["utilization", "config"]) == {"codebook_size": 1024}


def test_unknown_json_file_is_refused(store, tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="neither a vqbench results export .* nor a pytest-benchmark"):
        store.import_file(path)


def test_environment_fingerprint_and_hash():
    env = environment_fingerprint(threads=3)
    for key in ("vqbench", "git_sha", "torch", "cuda", "gpu", "driver", "cpu", "threads", "python"):
        assert key in env
    assert env["threads"] == 3
    json.dumps(env)  # plain JSON
    assert environment_hash(env) == environment_hash({**env, "git_sha": "other", "vqbench": "9"})
    assert environment_hash(env) != environment_hash({**env, "threads": 4})
