"""The precision axis: profiles, expansion, --dtype, the engines in each precision, the report."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
from torch import nn

from vqbench.quantizers import Quantizer, QuantizerOutput
from vqbench.reports.precision import beyond_spread
from vqbench.reports.render_markdown import render_markdown
from vqbench.reports.report import build_report
from vqbench.results import ResultStore
from vqbench.suite import agreement, reconstruction, throughput, usage
from vqbench.suite._precision_names import add_dtype_option
from vqbench.suite.cells import Cell
from vqbench.suite.expand import expand_profile
from vqbench.suite.precision import ran_dtype, split_precision
from vqbench.suite.profiles import ProfileError, load_profile, parse_profile

HERE = Path(__file__).resolve().parent
BASE = {
    "suite": {"quantizers": ["fsq", "vq"], "codebook_sizes": [256]},
    "benchmarks": {
        "throughput": {"sizes": [1024]},
        "agreement": {"size": 1024},
        "usage": {"datasets": ["gaussian-mixture"], "train_steps": 5},
    },
}


def _profile(**suite) -> object:
    data = {**BASE, "suite": {**BASE["suite"], **suite}}
    return parse_profile(data, source="test.toml")


# -- profiles, expansion and the CLI option ---------------------------------------------------


def test_profiles_read_dtypes_and_refuse_unknown_ones():
    assert _profile().dtypes == ("float32",)
    assert _profile(dtypes=["float32", "bfloat16"]).dtypes == ("float32", "bfloat16")
    with pytest.raises(
        ProfileError, match=r"suite\.dtypes.*unknown precision 'bf16'.*did you mean 'bfloat16'"
    ):
        _profile(dtypes=["float32", "bf16"])
    with pytest.raises(ProfileError, match=r"suite\.dtypes.*at least one precision"):
        _profile(dtypes=[])
    bench = parse_profile({"benchmarks": {"agreement": {"dtypes": ["float16"]}}})
    assert bench.benchmarks["agreement"].dtypes == ("float16",)


def test_each_engine_gets_the_precisions_it_takes():
    plain = expand_profile(_profile())
    plan = expand_profile(_profile(dtypes=["float32", "bfloat16", "autocast-bfloat16"]))
    by = {}
    for cell in plan.cells:
        by.setdefault(cell.benchmark, set()).add(cell.params.get("dtype", "float32"))
    assert by["throughput"] == {"float32", "bfloat16", "autocast-bfloat16"}
    assert by["agreement"] == {"bfloat16", "autocast-bfloat16"}  # float32 is its reference
    assert by["usage"] == {"float32", "autocast-bfloat16"}  # training: float32 or autocast
    assert "agreement" not in {c.benchmark for c in plain.cells}  # nothing to compare
    # float32 cells keep their ids: no dtype key is added for them
    assert {c.cell_id for c in plain.cells} <= {c.cell_id for c in plan.cells}


def test_the_dtype_override_replaces_the_profile_axis_and_is_checked():
    plan = expand_profile(_profile(dtypes=["float32", "bfloat16"]), dtypes="float16")
    assert {c.params.get("dtype", "float32") for c in plan.cells if c.benchmark == "throughput"} == {
        "float16"
    }
    with pytest.raises(ValueError, match="--dtype: unknown precision 'half'"):
        expand_profile(_profile(), dtypes="half")


def test_dtype_option_fails_when_parsed_with_a_clear_message(capsys):
    parser = argparse.ArgumentParser(prog="vqbench run")
    add_dtype_option(parser)
    assert parser.parse_args(["--dtype", "float32, bfloat16"]).dtype == "float32,bfloat16"
    with pytest.raises(SystemExit):
        parser.parse_args(["--dtype", "fp16"])
    err = capsys.readouterr().err
    assert "unknown precision 'fp16'" in err and "float16" in err


def test_builtin_profiles_carry_the_precision_axis_and_vq_rotation():
    standard = expand_profile(load_profile("standard"))
    kinds = {(c.benchmark, c.params.get("dtype", "float32")) for c in standard.cells}
    for precision in ("bfloat16", "float16", "autocast-bfloat16"):
        assert ("throughput", precision) in kinds and ("agreement", precision) in kinds
    assert "vq-rotation" in {c.quantizer for c in standard.cells}
    full = expand_profile(load_profile("full"))
    trained = {(c.quantizer, c.params.get("dtype")) for c in full.cells if c.benchmark == "reconstruction"}
    for q in ("fsq", "vq", "vq-plain", "vq-rotation", "lfq"):
        assert (q, "autocast-bfloat16") in trained and (q, None) in trained
    assert load_profile("full").quantizer_config["vq-rotation"]["rotation_trick"] is True


# -- the engines --------------------------------------------------------------------------------


class Refuses(Quantizer):
    """Refuses any input but float32, as some upstream modules crash in half precision."""

    def __init__(self, dim: int | None = None, codebook_size: int | None = None):
        super().__init__()
        self.dim, self.codebook_size = dim or 4, 16

    def forward(self, x):
        if x.dtype != torch.float32:
            raise TypeError(f"expected float32 input, got {x.dtype}")
        return QuantizerOutput(x.round(), x.sum(-1).long().clamp(0, 15), None)

    def indices_to_codes(self, indices):
        return indices[..., None].float().expand(*indices.shape, self.dim)


class Native(Quantizer):
    """Rounds in the input's own dtype (nothing is cast): it computes in what it is given."""

    def __init__(self, dim: int | None = None, codebook_size: int | None = None):
        super().__init__()
        self.dim, self.codebook_size = dim or 4, 16
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        z = (x * 3.3).round() / 3.3
        return QuantizerOutput(z, (z * 3.3).sum(-1).long().remainder(16), None)

    def indices_to_codes(self, indices):
        return indices[..., None].float().expand(*indices.shape, self.dim)


def _cell(benchmark: str, quantizer: str, **params) -> Cell:
    return Cell(
        suite="t", benchmark=benchmark, quantizer=quantizer, config={"codebook_size": 256}, params=params
    )


def test_ran_dtype_measures_what_computed_not_what_came_in():
    x = torch.randn(64, 4)
    assert ran_dtype(lambda: (x.to(torch.bfloat16).float() * 2).round())[0] == "float32"
    assert ran_dtype(lambda: x.to(torch.bfloat16) * 2)[0] == "bfloat16"
    assert split_precision("autocast-float16") == (torch.float32, torch.float16)


def test_agreement_of_fsq_against_float32():
    rows = {r["metric"]: r for r in agreement.measure(_cell("agreement", "fsq", dtype="bfloat16", size=4096))}
    share = rows["index_change_share"]["value"]
    assert 0 < share < 0.05  # bfloat16 input moves a few tokens across a level boundary
    extra = rows["index_change_share"]["extra"]
    assert (extra["dtype"], extra["autocast"], extra["precision"]) == ("bfloat16", None, "bfloat16")
    assert extra["ran_dtype"] == "float32"  # upstream's rule: quantize half precision in float32
    assert extra["output_dtype"] == "bfloat16"
    assert rows["code_error_max"]["value"] >= rows["code_error_mean"]["value"] > 0
    auto = {
        r["metric"]: r
        for r in agreement.measure(_cell("agreement", "fsq", dtype="autocast-bfloat16", size=4096))
    }
    assert auto["index_change_share"]["value"] == 0 and auto["code_error_max"]["value"] == 0
    assert auto["index_change_share"]["extra"]["autocast"] == "bfloat16"


def test_a_quantizer_that_refuses_a_dtype_says_so():
    ref = f"{__file__}:Refuses"
    with pytest.raises(RuntimeError, match=r"refuses precision 'float16': TypeError: expected float32"):
        agreement.measure(_cell("agreement", ref, dtype="float16", size=256))
    with pytest.raises(RuntimeError, match="refuses precision 'bfloat16'"):
        throughput.measure(
            _cell(
                "throughput",
                ref,
                dtype="bfloat16",
                sizes=[256],
                control=False,
                min_run_time=0.001,
                operations=["forward"],
            )
        )


def test_the_dtype_that_ran_is_measured():
    rows = agreement.measure(_cell("agreement", f"{__file__}:Native", dtype="bfloat16", size=1024))
    by = {r["metric"]: r for r in rows}
    assert by["index_change_share"]["extra"]["ran_dtype"] == "bfloat16"
    assert by["requested_dtype_share"]["value"] == 1.0
    silent = {r["metric"]: r for r in agreement.measure(_cell("agreement", "vq", dtype="float16", size=1024))}
    assert silent["index_change_share"]["extra"]["ran_dtype"] == "float32"  # the adapter casts up
    assert silent["requested_dtype_share"]["value"] < 0.05


def test_throughput_rows_record_the_precision():
    rows = throughput.measure(
        _cell(
            "throughput",
            "fsq",
            dtype="autocast-bfloat16",
            sizes=[512],
            control=False,
            min_run_time=0.001,
            operations=["forward", "train"],
            memory=False,
        )
    )
    rate = next(r for r in rows if r["metric"] == "train.vectors_per_s@512")
    assert rate["value"] > 0
    e = rate["extra"]
    assert (e["dtype"], e["autocast"], e["precision"], e["ran_dtype"]) == (
        "float32",
        "bfloat16",
        "autocast-bfloat16",
        "float32",
    )
    with pytest.raises(ValueError, match="param 'dtype' must be one of"):
        throughput.measure(_cell("throughput", "fsq", dtype="int8"))


def test_training_under_autocast_records_it_and_refuses_plain_half():
    digits = dict(dataset="digits")
    cell = Cell(
        suite="t",
        benchmark="reconstruction",
        quantizer="fsq",
        config={"codebook_size": 256},
        params={
            "dtype": "autocast-bfloat16",
            "train_steps": 20,
            "eval_every": 0,
            "reconstructions": 0,
            "channels": 8,
        },
        **digits,
    )
    rows = {r["metric"]: r for r in reconstruction.measure(cell)}
    assert rows["psnr"]["value"] > 0
    assert rows["utilization"]["extra"]["precision"] == "autocast-bfloat16"
    assert rows["psnr"]["extra"]["autocast"] == "bfloat16"
    fp16 = Cell(
        suite="t",
        benchmark="usage",
        quantizer="vq",
        config={"codebook_size": 256},
        dataset="gaussian-mixture",
        dataset_options={"n_train": 2048, "n_eval": 2048},
        params={"dtype": "autocast-float16", "train_steps": 10, "eval_every": 0},
    )
    util = {r["metric"]: r for r in usage.measure(fp16)}["utilization"]
    assert 0 < util["value"] <= 1 and util["extra"]["precision"] == "autocast-float16"
    with pytest.raises(ValueError, match="training runs in float32 or under autocast"):
        reconstruction.measure(
            Cell(
                suite="t", benchmark="reconstruction", quantizer="fsq", params={"dtype": "bfloat16"}, **digits
            )
        )


# -- the report ---------------------------------------------------------------------------------


def _rows() -> list[dict]:
    rows = []
    for q, shift in (("fsq", 0.0), ("vq", -0.2)):
        for precision in ("float32", "bfloat16"):
            extra = {"operation": "forward", "size": 4096, "ran_dtype": "float32", "dtype": precision}
            if precision != "float32":
                extra["precision"] = precision
            rows.append(
                {
                    "benchmark": "throughput",
                    "quantizer": q,
                    "config": {"codebook_size": 1024},
                    "backend": "eager",
                    "device": "cpu",
                    "metric": "forward.vectors_per_s@4096",
                    "value": 1e6 if precision == "float32" else 8e5,
                    "unit": "vectors/s",
                    "higher_is_better": True,
                    "cell_id": f"t-{q}-{precision}",
                    "extra": extra,
                }
            )
        ag = {
            "precision": "bfloat16",
            "ran_dtype": "float32",
            "dtype_shares": {"float32": 1.0},
            "output_dtype": "bfloat16",
            "tokens": 4096,
            "changed_tokens": 12,
        }
        for metric, value in (
            ("index_change_share", 12 / 4096),
            ("code_error_max", 0.5),
            ("code_error_mean", 1e-3),
        ):
            rows.append(
                {
                    "benchmark": "agreement",
                    "quantizer": q,
                    "config": {"codebook_size": 1024},
                    "metric": metric,
                    "value": value,
                    "unit": "ratio",
                    "cell_id": f"a-{q}",
                    "extra": ag,
                }
            )
        for seed in (0, 1, 2):
            for precision in ("float32", "autocast-bfloat16"):
                drop = shift if precision != "float32" else 0.0
                extra = {"converged": True}
                if precision != "float32":
                    extra["precision"] = precision
                for metric, value in (("utilization", 0.6 + drop + 0.01 * seed), ("psnr", 20 + 0.1 * seed)):
                    rows.append(
                        {
                            "benchmark": "reconstruction",
                            "quantizer": q,
                            "config": {"codebook_size": 1024},
                            "dataset": "fashion-mnist",
                            "metric": metric,
                            "value": value,
                            "unit": "ratio" if metric == "utilization" else "dB",
                            "seed": seed,
                            "cell_id": f"r-{q}-{precision}-{seed}",
                            "extra": extra,
                        }
                    )
    rows.append(
        {
            "benchmark": "agreement",
            "quantizer": "simvq",
            "config": {},
            "metric": "index_change_share",
            "value": None,
            "unit": "",
            "status": "error",
            "cell_id": "a-simvq",
            "message": "RuntimeError: quantizer 'simvq' refuses precision 'float16': boom",
            "extra": {"params": {"dtype": "float16"}},
        }
    )
    return rows


def test_report_has_a_precision_section_and_findings(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as st:
        run = st.start_run("custom", {"torch": "2"}, {"argv": ["test"]})
        st.write_rows(_rows())
        st.finish_run(run)
        doc = build_report(st, run, figures=False)
    titles = [s.title for s in doc.sections]
    assert "Precision" in titles and "Findings" in titles
    md, _ = render_markdown(doc)
    precision = md[md.index("Precision") :]
    assert "Speed per precision" in precision and "0.80x" in precision
    assert "Index agreement against float32" in precision and "0.293%" in precision
    assert "refuses precision 'float16'" in md
    assert (
        "vq (reconstruction, fashion-mnist, 1024 codes): autocast-bfloat16 training changes utilization "
        "beyond the seeds' spread" in md
    )
    assert (
        "fsq (reconstruction, fashion-mnist, 1024 codes): autocast-bfloat16 training leaves utilization "
        "within the seeds' spread" in md
    )
    # the float32 tables hold float32 rows only: the autocast cells are in their own section
    reco = [t for t in doc.tables() if t.title.startswith("reconstruction")]
    assert reco and all("autocast" not in c.text for t in reco for row in t.rows for c in row)


def test_beyond_spread_needs_two_seeds_apart():
    assert beyond_spread([0.5], [0.1]) is None
    assert beyond_spread([0.50, 0.52], [0.51, 0.53]) is False
    assert beyond_spread([0.50, 0.52], [0.30, 0.31]) is True


def test_run_summary_headlines_come_from_float32_cells(tmp_path):
    from rich.console import Console

    from vqbench.suite.summary import summary_renderables

    with ResultStore(tmp_path / "s.sqlite") as st:
        run = st.start_run("custom", {"torch": "2"}, {"argv": ["test"]})
        st.write_rows([r for r in _rows() if r["benchmark"] == "throughput"][::-1])  # bfloat16 rows first
        st.finish_run(run)
        rows = st.rows(run)
    console = Console(width=200, record=True)
    for renderable in summary_renderables(rows):
        console.print(renderable)
    text = console.export_text()
    assert " 1M" in text and "800k" not in text


def test_speed_ratio_has_a_spread_and_a_verdict():
    from vqbench.reports.precision import speed_ratio

    loaded = [1.0, 1.6, 0.9, 2.4, 1.1, 1.3, 0.95, 3.0, 1.2]  # per-round ratios of a loaded machine
    same = [1.05, 1.2, 2.8, 0.92, 1.0, 1.9, 1.15, 0.97, 1.4]
    ratio, low, high, verdict = speed_ratio(loaded, same)
    assert verdict == "within noise" and low < 1 < high
    half = [v / 2 for v in loaded[::-1]]
    ratio, low, high, verdict = speed_ratio(loaded, half)
    assert verdict == "faster" and ratio == pytest.approx(2.0, rel=0.3) and low <= ratio <= high
    assert speed_ratio(half, loaded)[3] == "slower"


def test_an_error_row_names_its_precision():
    from vqbench.suite.rows import rows_for

    cell = Cell(
        "s", "throughput", "fsq", {"codebook_size": 125}, None, {}, "eager", "cpu", {"dtype": "bfloat16"}, 0
    )
    (row,) = rows_for(cell, "r", {"status": "error", "message": "timed out after 60 s"})
    assert row["message"] == "bfloat16: timed out after 60 s" and row["extra"]["precision"] == "bfloat16"
    plain = Cell("s", "throughput", "fsq", {"codebook_size": 125}, None, {}, "eager", "cpu", {}, 0)
    (row,) = rows_for(plain, "r", {"status": "error", "message": "boom"})
    assert row["message"] == "boom" and "precision" not in row["extra"]
