"""The findings section's logic on synthetic rows: each claim's verdict follows from the figures."""

from __future__ import annotations

import pandas as pd
import pytest

from vqbench.reports._data import prepare
from vqbench.reports.findings import (
    INCONCLUSIVE,
    NOT_MEASURED,
    NOT_REPRODUCED,
    REPRODUCED,
    findings,
    findings_blocks,
)

SIZES = (256, 1024, 4096)


def _rows(figures: dict[tuple[str, int | None], dict[str, tuple[float, ...]]], converged: bool = True):
    """Reconstruction rows: ``{(quantizer, size): {metric: values over seeds}}`` on fashion-mnist."""
    rows = []
    for (quantizer, size), metrics in figures.items():
        for metric, values in metrics.items():
            for seed, value in enumerate(values):
                rows.append(
                    {
                        "run_id": "r",
                        "time": "2026-01-01T00:00:00",
                        "suite": "standard",
                        "benchmark": "reconstruction",
                        "quantizer": quantizer,
                        "config": "{}" if size is None else f'{{"codebook_size": {size}}}',
                        "config_hash": "h",
                        "backend": "eager",
                        "device": "cpu",
                        "dataset": "fashion-mnist",
                        "dataset_checksum": "",
                        "metric": metric,
                        "value": value,
                        "unit": "dB" if metric == "psnr" else "ratio",
                        "higher_is_better": 1,
                        "spread": None,
                        "n": 10,
                        "seed": seed,
                        "cell_id": f"{quantizer}{size}{seed}",
                        "status": "ok",
                        "message": "",
                        "extra": f'{{"converged": {str(converged).lower()}}}',
                    }
                )
    return prepare(pd.DataFrame(rows))


def _paper(
    fsq_util=(0.97, 0.98, 0.96),
    plain_util=(0.5, 0.09, 0.01),
    fsq_psnr=(20.0, 21.0, 22.0),
    vq_util=(0.99, 0.99, 0.97),
    vq_psnr=(20.5, 21.0, 21.5),
    plain_psnr=(19.5, 19.8, 19.9),
):
    figs = {}
    for i, k in enumerate(SIZES):
        figs[("fsq", k)] = {"utilization": _seeds(fsq_util[i]), "psnr": _seeds(fsq_psnr[i], 0.1)}
        figs[("vq-plain", k)] = {"utilization": _seeds(plain_util[i]), "psnr": _seeds(plain_psnr[i], 0.1)}
        figs[("vq", k)] = {"utilization": _seeds(vq_util[i]), "psnr": _seeds(vq_psnr[i], 0.1)}
    figs[("no-quantizer", None)] = {"psnr": _seeds(25.0, 0.1)}
    return figs


def _seeds(mean: float, step: float = 0.005) -> tuple[float, ...]:
    return (mean - step, mean, mean + step)


def _verdicts(rows) -> dict[str, str]:
    return {f.claim.split(" ")[0] + " " + f.claim.split(" ")[1]: f.verdict for f in findings(rows)}


def test_the_papers_figures_reproduce_every_claim():
    found = findings(_rows(_paper()))
    assert [f.verdict for f in found] == [REPRODUCED] * 4
    assert all(f.dataset == "fashion-mnist" and f.figures for f in found)
    assert "n=3" in found[0].figures[0] and "±" in found[0].figures[0]
    assert any("ceiling" in text for text in found[2].figures)  # FSQ's PSNR beside the no-quantizer ceiling


@pytest.mark.parametrize(
    ("change", "claim_index"),
    [
        ({"fsq_util": (0.93, 0.2, 0.09)}, 0),  # FSQ's usage falls with the codebook
        ({"plain_util": (0.5, 0.45, 0.4)}, 1),  # plain VQ keeps its codes
        ({"fsq_psnr": (22.0, 21.9, 22.05)}, 2),  # within the seeds' noise
        ({"vq_util": (0.99, 0.5, 0.02)}, 3),  # restarts do not help
        ({"vq_psnr": (19.0, 19.0, 18.0)}, 3),  # restarts keep codes but lose PSNR
    ],
)
def test_figures_against_a_claim_give_not_reproduced(change, claim_index):
    found = findings(_rows(_paper(**change)))
    assert found[claim_index].verdict == NOT_REPRODUCED
    others = [f.verdict for i, f in enumerate(found) if i != claim_index]
    assert others == [REPRODUCED] * 3


def test_noise_over_seeds_decides_a_rise():
    figs = _paper()
    figs[("fsq", 256)]["psnr"] = (19.0, 20.0, 21.0)  # +1 dB at 2^12 with a 1 dB seed sd: not beyond noise
    figs[("fsq", 4096)]["psnr"] = (20.0, 21.0, 22.0)
    assert findings(_rows(figs))[2].verdict == NOT_REPRODUCED
    figs[("fsq", 4096)]["psnr"] = (23.0, 23.1, 23.2)
    assert findings(_rows(figs))[2].verdict == REPRODUCED


def test_claims_without_a_sweep_are_not_measured():
    figs = {k: v for k, v in _paper().items() if k[1] in (None, 1024)}  # one codebook size
    found = findings(_rows(figs))
    assert [f.verdict for f in found] == [NOT_MEASURED] * 4  # no codebook-size sweep in this run
    no_plain = {k: v for k, v in _paper().items() if k[0] != "vq-plain"}
    found = findings(_rows(no_plain))
    assert [f.verdict for f in found] == [REPRODUCED, NOT_MEASURED, REPRODUCED, NOT_MEASURED]


def test_unconverged_cells_are_counted_in_the_reason():
    found = findings(_rows(_paper(), converged=False))
    assert found[0].unconverged == 9
    blocks = findings_blocks(_rows(_paper(), converged=False), "standard", "stamp")
    table = next(b for b in blocks if getattr(b, "title", "").startswith("Findings"))
    assert "stopped at the step cap" in table.rows[0][4].text


def test_convergence_table_shows_steps_cuts_and_converged_seeds():
    from vqbench.reports.findings import convergence_table

    figs = {("fsq", 256): {"train_steps": (4000.0, 5000.0, 6000.0)}}
    rows = _rows(figs)
    exts = [
        {"converged": True, "step_cap": 6000, "lr_cut_steps": [2000, 3000]},
        {"converged": True, "step_cap": 6000, "lr_cut_steps": [2500, 3500]},
        {
            "converged": False,
            "step_cap": 6000,
            "lr_cut_steps": [3000],
            "stopped_by": "cap",
            "moving_at_end": ["utilization"],
        },
    ]
    rows["ext"] = exts
    table = convergence_table(rows, "stamp")
    assert "rate cuts" in table.columns
    cells = [c.text for c in table.rows[0]]
    assert cells[4:] == ["4000-6000", "6000", "1-2", "2/3", "utilization (1)"]
    assert table.rows[0][-2].verdict == "worse"  # a seed stopped at the cap


def test_quick_says_it_is_a_smoke_run():
    rows = _rows(_paper())
    texts = [getattr(b, "text", "") for b in findings_blocks(rows, "quick", "stamp")]
    assert any("smoke run" in t for t in texts)
    other = [getattr(b, "text", "") for b in findings_blocks(rows, "standard", "stamp")]
    assert not any("smoke run" in t for t in other)
    assert any("jointly" in t and "alone" in t for t in texts)  # which benchmark answers which


def _rows_with(extras: dict[tuple[str, int, str, int], dict], figs):
    """Like ``_rows``, with ``extras[(quantizer, size, metric, seed)]`` merged into a row's extra."""
    import json

    frame = _rows(figs)
    out = []
    for row in frame.drop(columns=["cfg", "ext"]).to_dict("records"):
        size = json.loads(row["config"]).get("codebook_size")
        key = (row["quantizer"], size, row["metric"], row["seed"])
        extra = {**json.loads(row["extra"]), **extras.get(key, {})}
        out.append({**row, "extra": json.dumps(extra)})
    keep = [
        "run_id",
        "time",
        "suite",
        "benchmark",
        "quantizer",
        "config",
        "config_hash",
        "backend",
        "device",
        "dataset",
        "dataset_checksum",
        "metric",
        "value",
        "unit",
        "higher_is_better",
        "spread",
        "n",
        "seed",
        "cell_id",
        "status",
        "message",
        "extra",
    ]
    return prepare(pd.DataFrame(out)[keep])


def test_figures_show_min_max_beside_mean_and_sd():
    found = findings(_rows(_paper(fsq_util=(0.97, 0.98, 0.96))))
    assert "2^8 97.0% ± 0.5 [96.5-97.5] (n=3)" in found[0].figures[0]


def test_a_low_but_token_limited_utilization_cannot_refute_the_claim_and_is_marked():
    figs = _paper(fsq_util=(0.97, 0.96, 0.4))
    limited = {("fsq", 4096, "utilization", s): {"converged": True, "token_limited": True} for s in range(3)}
    f = findings(_rows_with(limited, figs))[0]
    assert f.verdict == INCONCLUSIVE
    assert f.token_limited == ["fsq 2^12 (3/3 seeds)"] and "token-limited in 3/3" in f.figures[0]
    blocks = findings_blocks(_rows_with(limited, figs), "standard", "stamp")
    why = next(b for b in blocks if getattr(b, "title", "").startswith("Findings")).rows[0][4].text
    assert "token-limited utilization" in why and "fsq 2^12 (3/3 seeds)" in why
    # the same figure, not token-limited, refutes it
    assert findings(_rows(figs))[0].verdict == NOT_REPRODUCED


def test_a_low_figure_within_the_seeds_noise_of_the_threshold_is_inconclusive():
    figs = _paper()
    figs[("fsq", 4096)]["utilization"] = (0.5, 0.95, 0.9)  # mean 78%: below 80% but not beyond noise
    assert findings(_rows(figs))[0].verdict == INCONCLUSIVE


def test_a_verdict_names_the_unconverged_cells_it_rests_on():
    figs = _paper()
    unconverged = {("fsq", 1024, "utilization", 1): {"converged": False}}
    f = findings(_rows_with(unconverged, figs))[0]
    assert f.unconverged == 1 and f.unconverged_cells == ["fsq 2^10 (seed 1)"]
    blocks = findings_blocks(_rows_with(unconverged, figs), "standard", "stamp")
    why = next(b for b in blocks if getattr(b, "title", "").startswith("Findings")).rows[0][4].text
    assert "rests on 1 unconverged cell(s)" in why and "fsq 2^10 (seed 1)" in why


def test_dead_bits_explain_the_utilization_in_the_findings_section():
    figs = _paper()
    figs[("lfq", 256)] = {"utilization": (0.5, 1.0, 0.5), "psnr": (18.0, 18.1, 18.2)}
    dead = {
        ("lfq", 256, "reachable_share", 0): {"summary": "7 of 8 bits live (dead: [3])"},
        ("lfq", 256, "reachable_share", 1): {"summary": "8 of 8 bits live"},
        ("lfq", 256, "reachable_share", 2): {"summary": "7 of 8 bits live (dead: [0])"},
    }
    figs[("lfq", 256)]["reachable_share"] = (0.5, 1.0, 0.5)
    blocks = findings_blocks(_rows_with(dead, figs), "standard", "stamp")
    text = " ".join(getattr(b, "text", "") for b in blocks)
    lead = "lfq 2^8 on fashion-mnist: seed 0: 7 of 8 bits live (dead: [3]), so at most 50% of the codes"
    assert lead in text
    assert "seed 2: 7 of 8 bits live" in text and "seed 1" not in text.split("lfq 2^8")[1]


def test_fsq_verdict_quotes_the_levels_and_input_spread_of_its_low_sizes():
    figs = _paper(fsq_util=(0.97, 0.96, 0.3))
    figs[("fsq", 4096)]["reachable_share"] = (1.0, 1.0, 1.0)
    figs[("fsq", 4096)]["input_participation_ratio"] = (2.0, 2.1, 2.2)
    summary = "levels used per channel: 7/7 5/5 5/5 5/5 5/5"
    extras = {("fsq", 4096, "reachable_share", s): {"summary": summary, "kind": "levels"} for s in range(3)}
    extras |= {("fsq", 4096, "input_participation_ratio", s): {"width": 5} for s in range(3)}
    f = findings(_rows_with(extras, figs))[0]
    assert f.verdict == NOT_REPRODUCED
    assert f.explanations == [
        "fsq 2^12: every channel uses all its levels in all 3 seeds; input "
        "participation ratio 2.0-2.2 of 5 dims"
    ]
