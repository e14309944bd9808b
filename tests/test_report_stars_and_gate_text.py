"""★ only on each benchmark's primary figure among rows of equal bits per token; the nightly help
and report state the thresholds the gate applies; a short history says it is not gated yet."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from _report_synth import add_run

from vqbench.engines import primary_figures
from vqbench.reports.nightly import gate_run, nightly_document
from vqbench.reports.report import load_run
from vqbench.reports.tables import benchmark_tables, bits_per_token
from vqbench.reports.thresholds import gate_text, parse_gate_config, relative_time_threshold
from vqbench.results import ResultStore
from vqbench.results._importers import import_file

QUICK_RUN = Path(__file__).parent / "data" / "quick_run.json.gz"


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    folder = tmp_path_factory.mktemp("quick")
    export = folder / "quick_run.json"
    export.write_bytes(gzip.decompress(QUICK_RUN.read_bytes()))
    with ResultStore(folder / "s.sqlite") as store:
        return load_run(store, import_file(store, export))


def _starred(table) -> list[tuple[str, str]]:
    """(row's first label, column) of every ★ cell."""
    return [(row[0].text, table.columns[i]) for row in table.rows for i, cell in enumerate(row) if cell.best]


def test_stars_only_on_the_primary_figure_of_each_benchmark(quick):
    tables = benchmark_tables(quick.rows, quick.stamp, baseline="fsq")
    for table in tables:
        stars = _starred(table)
        bench = table.title.split(" ", 1)[0]
        primary = primary_figures()[bench]
        if bench == "throughput" and primary not in table.title:
            assert stars == [], f"{table.title}: no ★ outside {primary}"  # GB/s, control time ...
        if bench != "throughput":
            assert all(col.startswith(primary) for _, col in stars), (table.title, stars)
        if stars:
            assert any("same bits per token" in n for n in table.notes)
    throughput = next(t for t in tables if t.title.startswith("throughput · vectors_per_s"))
    assert _starred(throughput)
    assert any(cell.note.endswith("fsq") for row in throughput.rows for cell in row)
    for probe in ("control_time", "copy_bandwidth"):  # the machine's figures: no ratio to fsq
        table = next(t for t in tables if probe in " ".join([t.title, *t.columns]))
        assert not any(cell.note for row in table.rows for cell in row), table.title


def test_stars_compare_rows_of_equal_bits_per_token(quick):
    bits = bits_per_token(quick.rows)
    assert round(bits[("fsq", '{"codebook_size":256}')]) == 8
    assert round(bits[("residual-vq", next(c for q, c in bits if q == "residual-vq"))]) == 32
    tables = benchmark_tables(quick.rows, quick.stamp)
    recon = next(t for t in tables if t.title.startswith("reconstruction"))
    winners = {name for name, _ in _starred(recon)}
    # one best among the 8-bit rows, one among the 32-bit residual stacks: never across them
    assert winners & {"residual-fsq", "residual-lfq", "residual-vq"}
    assert winners - {"residual-fsq", "residual-lfq", "residual-vq"}


def test_nightly_help_states_the_thresholds_the_gate_applies(capsys):
    from vqbench.cli import main

    with pytest.raises(SystemExit):
        main(["nightly", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    applied = relative_time_threshold()
    assert applied == 0.25  # the built-in rule for relative times
    assert f"by more than {applied * 100:.0f}%" in text
    assert "(default 10%)" not in text


def test_gate_text_follows_the_configuration():
    cfg = parse_gate_config({"rule": [{"metric": "relative_time*", "threshold": 0.4}], "noise_k": 2.0})
    text = gate_text(cfg)
    assert "more than 40%" in text and "2 robust sigmas" in text


def test_a_short_history_is_not_gated_yet(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as store:
        add_run(store, seed=0, samples=False)
        add_run(store, seed=1, samples=False)
        outcome = gate_run(store)
        doc = nightly_document(store, outcome)
        verdict = doc.sections[0].blocks[0].text
        assert "Not gated yet: 1 of 3 history runs" in verdict
        assert "No regression against the last 1" not in verdict
        settings = " ".join(b.text for b in doc.sections[0].blocks if hasattr(b, "text"))
        assert "more than 25%" in settings
        for seed in (2, 3):
            add_run(store, seed=seed, samples=False)
        doc = nightly_document(store, gate_run(store))
        assert doc.sections[0].blocks[0].text.startswith("No regression against the last 3")
