"""`vqbench list`: the table, its JSON form, patterns, and plugins (working and broken)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from _plugin_helpers import TOY_DIST, isolated_registry, make_site

from vqbench.cli import main

BASELINES = [
    "bsq",
    "fsq-upstream",
    "latent-quantize",
    "lfq",
    "residual-fsq",
    "residual-lfq",
    "residual-vq",
    "simvq",
    "vq",
    "vq-cosine",
    "vq-plain",
]


def _json_rows(capsys, *argv) -> dict[str, dict]:
    assert main(["list", *argv, "--json"]) == 0
    return {row["name"]: row for row in json.loads(capsys.readouterr().out)}


def test_table_lists_every_builtin(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ["fsq", *BASELINES]:
        assert name in out
    for header in (
        "name",
        "family",
        "source",
        "codebook",
        "dim",
        "bits/token",
        "round trip",
        "aux loss",
        "learned",
    ):
        assert header in out
    assert "vector-quantize-pytorch" in out and "quantizers" in out


def test_json_rows_are_measured(capsys):
    rows = _json_rows(capsys)
    for name in BASELINES:
        assert rows[name]["error"] is None, rows[name]["error"]
        assert rows[name]["gradients"] is True
        assert rows[name]["source"] == "vector-quantize-pytorch"
    vq = rows["vq"]
    assert (vq["codebook_size"], vq["dim"], vq["num_codebooks"], vq["bits_per_token"]) == (1024, 8, 1, 10.0)
    assert vq["aux_loss"] and vq["learned_codebook"] and vq["round_trip"] == "exact"
    assert "learned-codebook" in vq["supports"] and "aux-loss" in vq["supports"]
    fsq = rows["fsq-upstream"]
    assert (fsq["codebook_size"], fsq["dim"]) == (1000, 4)  # levels [8, 5, 5, 5] for 2^10
    assert fsq["round_trip"] == "exact" and not fsq["aux_loss"] and not fsq["learned_codebook"]
    assert rows["lfq"]["aux_loss"] and not rows["lfq"]["learned_codebook"]
    assert rows["residual-vq"]["num_codebooks"] == 4 and rows["residual-vq"]["bits_per_token"] == 40.0
    assert rows["latent-quantize"]["learned_codebook"] and rows["simvq"]["learned_codebook"]


def test_pattern_filters(capsys):
    assert list(_json_rows(capsys, "residual-*")) == ["residual-fsq", "residual-lfq", "residual-vq"]
    assert list(_json_rows(capsys, "lfq,bsq")) == ["bsq", "lfq"]


def test_pattern_without_match_is_an_error(capsys):
    assert main(["list", "no-such-quantizer*"]) == 2
    err = capsys.readouterr().err
    assert "no registered quantizer matches 'no-such-quantizer*'" in err and "vq-cosine" in err


def test_no_measure_does_not_build(capsys):
    rows = _json_rows(capsys, "vq*", "--no-measure")
    assert list(rows) == ["vq", "vq-cosine", "vq-plain", "vq-rotation"]
    assert rows["vq"]["codebook_size"] is None and rows["vq"]["error"] is None
    assert rows["vq"]["tags"] == ["learned-codebook", "aux-loss", "ema"]


def test_plugins_appear_with_their_distribution_and_errors(toy_site, capsys):
    rows = _json_rows(capsys, "toy-*,vq,fsq-upstream")
    assert rows["toy-sign"]["source"] == TOY_DIST and rows["toy-sign"]["error"] is None
    assert (rows["toy-sign"]["codebook_size"], rows["toy-sign"]["round_trip"]) == (8, "exact")
    assert "not installed" in rows["toy-broken"]["error"] and rows["toy-broken"]["source"] == TOY_DIST
    assert rows["fsq-upstream"]["error"] is None
    # the entry point that reuses a built-in name is reported, the built-in still measured
    assert rows["vq"]["source"] == "entry point" and "already registered" in rows["vq"]["error"]

    assert main(["list", "toy-*"]) == 0
    table = capsys.readouterr().out
    assert "toy-sign" in table and TOY_DIST in table
    assert "toy-broken" in table and "error" in table and "2 quantizers, 1 with errors" in table


def test_installed_plugin_in_a_fresh_process(tmp_path):
    site = make_site(tmp_path)
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    )
    done = subprocess.run(
        [sys.executable, "-m", "vqbench.cli", "list", "toy-*", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    assert set(rows) == {"toy-broken", "toy-sign"}
    assert rows["toy-sign"]["source"] == TOY_DIST and rows["toy-sign"]["error"] is None
    assert "not installed" in rows["toy-broken"]["error"]


def test_list_takes_a_file_reference_beside_registered_names(capsys):
    ref = f"{Path(__file__).resolve().parents[1] / 'examples' / 'my_fsq.py'}:MyFSQ"
    with isolated_registry():  # importing the file registers "my-fsq"; later tests register it too
        assert main(["list", f"{ref},fsq", "--json"]) == 0
        infos = {info["name"]: info for info in json.loads(capsys.readouterr().out)}
        assert set(infos) == {ref, "fsq"}
        assert infos[ref]["error"] is None and infos[ref]["round_trip"] == "exact"
        assert main(["list", ref.replace(":MyFSQ", ":Nope"), "--json"]) == 0
        (broken,) = json.loads(capsys.readouterr().out)
    assert "has no attribute 'Nope'" in broken["error"] and "MyFSQ" in broken["error"]
