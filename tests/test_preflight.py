"""The pre-flight check: candidates that cannot be imported, built or called stop a run before any
cell, with what is wrong, exit 2 and no store; `vqbench check` runs the same check alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from _runner_profile import profile

from vqbench.cli import main
from vqbench.quantizers import list_quantizers
from vqbench.quantizers._check import STEPS, check_quantizer, failures
from vqbench.suite import Cell
from vqbench.suite.preflight import PreflightError, Target, preflight, run_checks, targets

PLUGINS = Path(__file__).parent / "plugins"
P = PLUGINS / "preflight_plugins.py"


# -- the protocol check, in this process -----------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "step", "says"),
    [
        ("Typo", "import", "no attribute 'Typo'"),
        ("Goood", "import", "did you mean 'Good'?"),
        ("NoCodebookSize", "build", "unexpected keyword argument 'codebook_size'"),
        ("NoDecode", "attributes", "missing attribute(s) indices_to_codes"),
        ("Raising", "forward", "RuntimeError: this quantizer's forward is broken"),
        ("TupleOut", "output", "plain tuple of 2 item(s) (Tensor, Tensor); expected a QuantizerOutput"),
        ("WrongShape", "codes", "codes of shape (2, 4) torch.float32; expected the input's shape (2, 4, 4)"),
        ("HalfCodes", "codes", "torch.float16; expected the input's shape (2, 4, 4) and dtype torch.float32"),
        ("FloatIndices", "indices", "indices of dtype torch.float32; expected an integer dtype"),
        ("OutOfRange", "indices", "expected 0 .. 255 (codebook_size 256)"),
        ("BadLoss", "loss", "loss of shape (2, 4); expected a scalar tensor"),
    ],
)
def test_each_mistake_is_named_by_the_step_that_finds_it(name, step, says):
    checks = check_quantizer(f"{P}:{name}", {"codebook_size": 256})
    failed = failures(checks)
    assert [c.step for c in failed] == [step]
    assert says in failed[0].detail, failed[0].detail
    after = [c.status for c in checks][[c.step for c in checks].index(step) + 1 :]
    assert after and set(after) == {"skip"}  # nothing after the failure is claimed to pass
    assert [c.step for c in checks] == list(STEPS)


def test_a_constructor_that_rejects_the_suites_arguments_is_told_what_they_are():
    (failed,) = failures(check_quantizer(f"{P}:NoCodebookSize", {"codebook_size": 1024, "dim": 4}))
    assert "NoCodebookSize(codebook_size=1024, dim=4) raised TypeError" in failed.detail
    assert "def __init__(self, dim=None, codebook_size=None, **settings)" in failed.detail


def test_a_good_quantizer_and_every_builtin_pass():
    assert not failures(check_quantizer(f"{P}:Good", {"codebook_size": 256}))
    for name in list_quantizers():
        checks = check_quantizer(name, {"codebook_size": 256})
        assert not failures(checks), (name, failures(checks))
        assert {c.status for c in checks} == {"ok"}


def test_missing_module_is_named():
    (failed,) = failures(check_quantizer("no_such_module_xyz:Quant"))
    assert failed.step == "import" and "No module named 'no_such_module_xyz'" in failed.detail


# -- which quantizers the pre-flight checks, with which arguments ---------------------------------------
def test_targets_are_the_distinct_plugin_configs_of_the_cells():
    def cell(q, size, bench="usage"):
        return Cell("s", bench, q, {"codebook_size": size}, "gaussian")

    ref = f"{P}:Good"
    cells = [cell("fsq", 256), cell(ref, 256), cell(ref, 256, "throughput"), cell(ref, 1024)]
    assert targets(cells) == [Target(ref, {"codebook_size": 256}), Target(ref, {"codebook_size": 1024})]
    assert len(targets(cells, builtins=True)) == 3


def test_preflight_runs_in_a_spawned_process_and_raises_with_every_failure():
    cells = [Cell("s", "usage", f"{P}:{n}", {"codebook_size": 256}, "gaussian") for n in ("Good", "TupleOut")]
    with pytest.raises(PreflightError) as info:
        preflight(cells)
    message = str(info.value)
    assert "nothing was stored" in message and "preflight_plugins.py:TupleOut" in message
    assert "output: forward returned a plain tuple" in message and ":Good" not in message
    assert f"vqbench check {P}:TupleOut" in message
    (ok,) = run_checks([Target(f"{P}:Good", {"codebook_size": 256})])
    assert ok.ok and len(ok.checks) == len(STEPS)


def test_a_plugin_module_that_cannot_be_imported_stops_the_preflight():
    with pytest.raises(PreflightError, match="plugin module 'no_such_plugin_xyz' could not be imported"):
        run_checks([], plugins=("no_such_plugin_xyz",))


# -- run, compare and nightly stop before any cell ----------------------------------------------------
MISTAKES = [
    ("TupleOut", "expected a QuantizerOutput(codes, indices, loss)"),
    ("NoCodebookSize", "unexpected keyword argument 'codebook_size'"),
    ("WrongShape", "expected the input's shape (2, 4, 4)"),
    ("Typoo", "has no attribute 'Typoo'"),
]


@pytest.mark.parametrize(("name", "says"), MISTAKES)
def test_run_stops_before_any_cell_with_the_cause_and_no_store(tmp_path, capsys, name, says):
    store = tmp_path / "s.sqlite"
    path = profile(tmp_path, ["fsq", f"{P}:{name}"], extra="codebook_sizes = [256]")  # in [benchmarks.usage]
    code = main(["run", "--suite", str(path), "--store", str(store), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "pre-flight check failed before any cell ran" in err and says in err, err
    assert not store.exists()  # nothing ran, nothing was stored


def test_a_missing_module_stops_run_before_any_cell(tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    code = main(
        [
            "run",
            "--suite",
            str(profile(tmp_path, ["no_such_module_xyz:Quant"])),
            "--store",
            str(store),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "No module named 'no_such_module_xyz'" in err, err
    assert not store.exists()


def test_compare_and_nightly_stop_before_any_cell(tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    path = profile(tmp_path, ["fsq"])
    code = main(
        [
            "compare",
            "--candidate",
            f"{P}:TupleOut",
            "--baselines",
            "fsq",
            "--suite",
            str(path),
            "--store",
            str(store),
            "--no-progress",
            "--out",
            str(tmp_path / "r"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "plain tuple" in err and "no figures of" not in err, err
    assert not store.exists() and not (tmp_path / "r").exists()
    code = main(
        [
            "nightly",
            "--suite",
            str(profile(tmp_path, [f"{P}:HalfCodes"])),
            "--store",
            str(store),
            "--no-progress",
            "--out",
            str(tmp_path / "n"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "torch.float16" in err, err
    assert not store.exists()


def test_a_fault_that_the_tiny_call_misses_still_becomes_the_cells_error_row(tmp_path):
    """Pre-flight off (the API's ``preflight=False``): the engines' first-call check names the cause."""
    from _runner_profile import rows_of

    from vqbench.suite import run_suite

    store = tmp_path / "s.sqlite"
    run = run_suite(profile(tmp_path, [f"{P}:TupleOut"]), store=store, progress=False, preflight=False)
    rows, _ = rows_of(store, run)
    (message,) = set(rows["message"])
    assert "does not follow the protocol" in message and "plain tuple" in message


# -- vqbench check ------------------------------------------------------------------------------------
def test_check_prints_one_line_per_check_and_exits_1_on_a_failure(capsys):
    assert main(["check", f"{P}:WrongShape", "--codebook-size", "256"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  codes" in out and "expected the input's shape (2, 4, 4)" in out
    for step in ("import", "build", "attributes", "forward", "output"):
        assert f"ok    {step}" in out
    assert "skip  indices, loss, eval, decode" in out and "1 of 1 config(s) failed" in out


def test_check_builds_as_the_suite_does_and_passes_a_good_quantizer(tmp_path, capsys):
    path = profile(tmp_path, ["fsq"], extra=f'\n[quantizers."{P}:Good"]\ndim = 3\n')
    assert main(["check", f"{P}:Good", "fsq", "--suite", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{P}:Good (dim=3) on cpu: ok" in out and "fsq (no arguments) on cpu: ok" in out
    assert "all 2 config(s) passed" in out


def test_check_of_an_unknown_name_is_bad_input(capsys):
    assert main(["check", "fsk"]) == 2
    assert "did you mean 'fsq'" in capsys.readouterr().err
