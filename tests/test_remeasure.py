"""Re-measuring a suspect: its cell runs again into a run of its own that the history skips."""

from __future__ import annotations

import pytest
from _runner_profile import profile

from vqbench.results import ResultStore
from vqbench.suite import run_suite
from vqbench.suite.remeasure import remeasure_cells


def test_a_remeasured_cell_runs_again_into_a_remeasure_run(tmp_path):
    store_path = tmp_path / "r.sqlite"
    run_id = run_suite(profile(tmp_path, ["fsq", "fsq-upstream"]), store=store_path, progress=False)
    with ResultStore(store_path) as st:
        rows = st.rows(run_id)
        cell = sorted(rows["cell_id"].unique())[0]
        new_id = remeasure_cells(st, run_id, [cell])
        again = st.rows(new_id)
        info = st.run_info(new_id)
        assert set(again["cell_id"]) == {cell}
        assert set(again["metric"]) == set(rows[rows["cell_id"] == cell]["metric"])
        assert info["status"] == "remeasure" and info["config"]["remeasure_of"] == run_id
        assert st.resolve_run("latest") == run_id  # the re-measure never becomes "latest"
        assert len(st.rows(run_id)) == len(rows)  # the original run is untouched
        with pytest.raises(KeyError, match="no cell"):
            remeasure_cells(st, run_id, ["not-a-cell"])
