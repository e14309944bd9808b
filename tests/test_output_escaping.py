"""Text from plugins, stores and imported files cannot steer a terminal or a Markdown file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from vqbench._text import printable
from vqbench.results import ResultStore

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "tests" / "plugins" / "bad_plugins.py"
CONTROLS = ("\x1b", "\x07", "\r", "\u202e")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "vqbench.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def _clean(text: str) -> bool:
    return not any(c in text for c in CONTROLS)


def test_printable_escapes_controls_and_keeps_plain_text():
    assert printable("a\x1b[2Jb\u202ec\x07") == "a\\x1b[2Jb\\u202ec\\x07"
    assert printable("line\n\tnext") == "line\n\tnext"
    assert printable("tab\tnew\n", newlines=False) == "tab\\x09new\\x0a"
    assert printable("plain [bold] ünïcode ✓") == "plain [bold] ünïcode ✓"


def test_escape_sequences_in_a_plugin_error_reach_neither_terminal_nor_markdown(tmp_path):
    store = tmp_path / "s.sqlite"
    run = _cli(
        "run",
        "--store",
        str(store),
        "--no-progress",
        "--quantizers",
        f"{PLUGIN}:Hostile",
        "--suite",
        str(ROOT / "tests" / "plugins" / "escape_profile.toml"),
        cwd=tmp_path,
    )
    assert run.returncode in (1, 3), run.stderr
    assert _clean(run.stdout) and _clean(run.stderr), repr(run.stdout[-800:])
    assert "\\x1b]0;owned" in run.stdout  # shown, escaped
    with ResultStore(store, readonly=True) as st:
        run_id = st.resolve_run("latest")
        assert "\x1b[2J" in "".join(st.rows(run_id)["message"])  # stored as it came
    shown = _cli("results", run_id, "--store", str(store), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert _clean(shown.stdout) and "\\x1b" in shown.stdout
    report = _cli("report", run_id, "--store", str(store), "--out", str(tmp_path / "r"), cwd=tmp_path)
    md = (tmp_path / "r" / "report.md").read_text()
    assert report.returncode == 0, report.stderr
    assert _clean(md) and _clean(report.stdout)


def test_escape_sequences_in_an_imported_file_are_shown_escaped(tmp_path):
    store = tmp_path / "s.sqlite"
    doc = {
        "format": "vqbench-results",
        "version": 1,
        "run": {
            "run_id": "imp\x1b]0;title\x07",
            "suite": "quick\x1b[2J",
            "status": "finished",
            "environment": {"cpu": "x\x1b[31m"},
            "config": {},
        },
        "rows": [
            {
                "benchmark": "usage",
                "quantizer": "q\x1b[5m",
                "metric": "utilization",
                "value": 0.5,
                "unit": "",
                "cell_id": "c",
                "time": "2026-01-01T00:00:00+00:00",
            }
        ],
    }
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(doc))
    refused = _cli("results", "--store", str(store), "--import", str(path), cwd=tmp_path)
    assert refused.returncode == 2 and _clean(refused.stderr) and "\\x1b]0;title" in refused.stderr
    doc["run"]["run_id"] = "imp-1"  # a run id must be a plain name; the other fields stay hostile
    path.write_text(json.dumps(doc))
    imported = _cli("results", "--store", str(store), "--import", str(path), cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    listed = _cli("results", "--store", str(store), cwd=tmp_path)
    shown = _cli("results", "latest", "--store", str(store), cwd=tmp_path)
    for out in (imported, listed, shown):
        assert _clean(out.stdout) and _clean(out.stderr), repr(out.stdout)
    assert "\\x1b" in listed.stdout
    bad = _cli("report", "no\x1b[2Jsuch", "--store", str(store), cwd=tmp_path)
    assert bad.returncode == 2 and _clean(bad.stderr) and "\\x1b[2J" in bad.stderr
