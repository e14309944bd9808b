"""The report commands end to end: results, report, compare and the nightly gate's exit codes."""

from __future__ import annotations

import json

import pytest
from _report_synth import add_run, run_rows

from vqbench.cli import main
from vqbench.results import ResultStore, load_results


@pytest.fixture
def store_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path / "s.sqlite"


def _fake_runner(store_path, **kwargs):
    """Stand-in for the suite's runner: writes one synthetic run of the requested quantizers."""
    calls = []

    def run_suite_for(store, suite, quantizers=None, **options):
        calls.append((suite, quantizers, options))
        names = tuple(quantizers) if quantizers else ("fsq", "vq", "lfq")
        run = store.start_run(suite, {"cpu": "fake", "threads": 1})
        store.write_rows(run_rows(quantizers=names, samples=False, seed=len(calls), **kwargs))
        store.finish_run(run)
        return run

    return run_suite_for, calls


def test_results_lists_shows_exports_and_imports(store_path, tmp_path, capsys):
    with ResultStore(store_path) as st:
        run = add_run(st, errors=("vq",), samples=False)
    assert main(["results", "--store", str(store_path)]) == 0
    out = capsys.readouterr().out
    assert run in out and "finished" in out
    assert (
        main(["results", run[:12], "--store", str(store_path), "--benchmark", "usage", "--quantizer", "*vq"])
        == 0
    )
    out = capsys.readouterr().out
    figures = out.split("usage · run")[-1]
    assert "error: RuntimeError: CUDA out of memory" in figures
    assert "residual-vq" in figures and "│ fsq" not in figures and "│ lfq" not in figures
    assert main(["results", "--store", str(store_path), "--export", str(tmp_path / "r.json")]) == 0
    other = tmp_path / "other.sqlite"
    assert main(["results", "--store", str(other), "--import", str(tmp_path / "r.json")]) == 0
    assert len(load_results(run, store=other)) == len(load_results(run, store=store_path))
    assert main(["results", "nope", "--store", str(store_path)]) == 2
    assert "no run 'nope'" in capsys.readouterr().err


def test_results_on_a_corrupt_store_is_a_clear_error(store_path, capsys):
    store_path.write_bytes(b"garbage" * 100)
    assert main(["results", "--store", str(store_path)]) == 2
    assert "not an SQLite database" in capsys.readouterr().err
    assert store_path.read_bytes() == b"garbage" * 100


def test_report_writes_markdown_and_html(store_path, tmp_path, capsys):
    with ResultStore(store_path) as st:
        run = add_run(st, quantizers=("fsq", "vq"))
    assert (
        main(["report", "--store", str(store_path), "--baseline", "vq", "--out", str(tmp_path / "rep")]) == 0
    )
    assert (tmp_path / "rep" / "report.html").is_file() and (tmp_path / "rep" / "report.md").is_file()
    assert "× vq" in (tmp_path / "rep" / "report.md").read_text()
    assert main(["report", run, "--store", str(store_path), "--format", "html", "--no-figures"]) == 0
    assert (tmp_path / ".vqbench" / "reports" / run / "report.html").is_file()
    assert main(["report", "--store", str(store_path), "--format", "pdf"]) == 2
    assert "--format must list md and/or html" in capsys.readouterr().err


def test_compare_two_runs(store_path, tmp_path, capsys):
    with ResultStore(store_path) as st:
        a = add_run(st, samples=False)
        b = add_run(st, samples=False, slow={"lfq": 1.5})
    assert main(["compare", a, b, "--store", str(store_path), "--out", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "worse" in out and (tmp_path / "c" / "compare.html").is_file()
    assert main(["compare", a, b, "--store", str(store_path), "--fail-on-worse", "--format", "md"]) == 1
    assert main(["compare", a, "--store", str(store_path)]) == 2
    assert "compare needs two runs" in capsys.readouterr().err


def test_compare_candidate_runs_candidate_and_baselines_through_the_runner(
    store_path, tmp_path, monkeypatch, capsys
):
    import vqbench._commands.suite_options as suite_runs  # the face starts runs

    fake, calls = _fake_runner(store_path)
    monkeypatch.setattr(suite_runs, "run_suite_for", fake)
    code = main(
        [
            "compare",
            "--candidate",
            "lfq",
            "--baselines",
            "fsq,vq",
            "--suite",
            "quick",
            "--store",
            str(store_path),
            "--out",
            str(tmp_path / "cand"),
            "--no-progress",
            "--device",
            "cpu",
            "--executor",
            "ray",
            "--workers",
            "3",
        ]
    )
    assert code == 0
    suite, quantizers, options = calls[0]
    assert suite == "quick" and quantizers == ["lfq", "fsq", "vq"]
    assert options["devices"] == "cpu" and options["progress"] is False
    assert options["executor"] == {"kind": "ray"} and options["workers"] == 3
    out = capsys.readouterr().out
    assert "lfq against fsq" in out and "lfq against vq" in out
    page = (tmp_path / "cand" / "compare.html").read_text()
    assert "lfq against the baselines" in page


def test_nightly_gate_exit_codes_in_both_directions(store_path, tmp_path, monkeypatch, capsys):
    import vqbench._commands.suite_options as suite_runs  # the face starts runs

    fake, calls = _fake_runner(store_path)
    monkeypatch.setattr(suite_runs, "run_suite_for", fake)
    base = ["nightly", "--suite", "full", "--store", str(store_path), "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "n1")]) == 0  # first night: no history, pass
    first = json.loads((tmp_path / "n1" / "summary.json").read_text())
    assert first["status"] == "no-history" and first["history_runs"] == []
    assert main([*base, "--out", str(tmp_path / "n2")]) == 0  # second: same code, compares with the first
    second = json.loads((tmp_path / "n2" / "summary.json").read_text())
    # one history run: quality checked, timing not gated yet (it needs min_timing_history runs)
    assert second["status"] == "timing-not-gated" and second["history_runs"] == [first["run_id"]]
    worse, _ = _fake_runner(store_path, util_drop={"vq": 0.1})
    monkeypatch.setattr(suite_runs, "run_suite_for", worse)
    assert main([*base, "--out", str(tmp_path / "n3")]) == 1  # a usage drop fails the gate
    third = json.loads((tmp_path / "n3" / "summary.json").read_text())
    assert third["status"] == "regression" and {r["quantizer"] for r in third["regressions"]} == {"vq"}
    assert {r["metric"] for r in third["regressions"]} >= {"utilization"}
    assert (tmp_path / "n3" / "nightly.html").is_file() and (tmp_path / "n3" / "nightly.md").is_file()
    assert all(r["state"] == "regression" for r in third["regressions"])
    assert third["states"]["regression"] == len(third["regressions"])
    out = capsys.readouterr().out
    assert "REGRESSION" in out and f"States: {len(third['regressions'])} regression, " in out
    # gating a stored run again, with a looser tolerance from a config file, passes
    cfg = tmp_path / "gate.toml"
    cfg.write_text('[[rule]]\nmetric = "*"\nabs_tolerance = 1e9\n')
    assert (
        main(
            [
                "nightly",
                "--run",
                third["run_id"],
                "--config",
                str(cfg),
                "--store",
                str(store_path),
                "--out",
                str(tmp_path / "n4"),
            ]
        )
        == 0
    )
    assert main(["nightly", "--run", "latest", "--window", "0", "--store", str(store_path)]) == 2
    assert "--window must be >= 1" in capsys.readouterr().err
