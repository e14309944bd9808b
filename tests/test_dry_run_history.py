"""`vqbench run --dry-run` reuses cell times only from cells that did the same work."""

from __future__ import annotations

from vqbench.cli import main
from vqbench.results import ResultStore
from vqbench.suite import Cell
from vqbench.suite.estimate import cell_costs
from vqbench.suite.expand import expand_profile
from vqbench.suite.profiles import load_profile
from vqbench.suite.rows import rows_for


def _store_times(store, cells, seconds: float) -> None:
    """A finished run of ``cells`` that each took ``seconds``, stored as the runner stores them."""
    with ResultStore(store) as st:
        run = st.start_run(cells[0].suite, {"threads": 1})
        for cell in cells:
            outcome = {"status": "ok", "seconds": seconds, "figures": [{"metric": "m", "value": 1.0}]}
            st.write_rows(rows_for(cell, run, outcome))
        st.finish_run(run)


def test_standard_dry_run_does_not_reuse_quick_history(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    store = tmp_path / "r.sqlite"
    quick = expand_profile(load_profile("quick")).cells
    _store_times(store, quick, 1.0)  # as if every quick cell took one second
    standard = expand_profile(load_profile("standard")).cells
    with ResultStore(store, readonly=True) as st:
        again = cell_costs(quick, st)
        costs = cell_costs(standard, st)
        no_history = cell_costs(standard, None)
    assert {c.source for c in again} == {"this cell"}  # quick's own cells: their own times
    quick_work = {(c.benchmark, repr(sorted(c.params.items())), c.dataset) for c in quick}
    for cost, known in zip(costs, no_history, strict=True):
        same_work = (
            cost.cell.benchmark,
            repr(sorted(cost.cell.params.items())),
            cost.cell.dataset,
        ) in quick_work
        if not same_work:  # other steps, sizes or datasets: the known-cost model, never quick's seconds
            assert cost.source == "known cost", cost.cell.label
            assert cost.seconds == known.seconds
    trained = [c for c in costs if c.cell.benchmark == "reconstruction"]
    assert trained and all(c.source == "known cost" for c in trained)
    assert sum(c.seconds for c in costs) > 0.9 * sum(c.seconds for c in no_history)
    assert main(["run", "--suite", "standard", "--store", str(store), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "known cost" in out and "estimated wall time" in out


def test_history_of_the_same_parameters_is_reused_for_another_quantizer(tmp_path):
    def cell(quantizer, steps, n_train=256):
        return Cell(
            "s",
            "reconstruction",
            quantizer,
            {"codebook_size": 256},
            "gaussian",
            dataset_options={"n_train": n_train},
            params={"train_steps": steps},
        )

    store = tmp_path / "r.sqlite"
    _store_times(store, [cell("fsq", 100)], 7.0)
    with ResultStore(store, readonly=True) as st:
        same, more_steps, other_data = cell_costs(
            [cell("vq", 100), cell("vq", 6000), cell("vq", 100, n_train=4096)], st
        )
    assert (same.source, same.seconds) == ("history", 7.0)
    assert more_steps.source == "known cost" and more_steps.seconds > 7.0
    assert other_data.source == "known cost"
