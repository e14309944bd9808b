"""Suite profiles: the built-ins, user TOML files, key checks and expansion into cells."""

from __future__ import annotations

from pathlib import Path

import pytest

from vqbench.quantizers import default_settings, list_quantizers
from vqbench.suite.cells import Cell
from vqbench.suite.expand import expand_profile, quantizer_config
from vqbench.suite.profiles import BUILTIN_PROFILES, ProfileError, load_profile

PLUGINS = Path(__file__).parent / "plugins" / "runner_plugins.py"

TINY = """
[suite]
name = "tiny"
quantizers = ["fsq", "vq"]
codebook_sizes = [256]
timeout = 30

[quantizers.vq]
commitment_weight = 0.25

[datasets.gaussian]
dim = 8
n_train = 256
n_eval = 512

[benchmarks.throughput]
sizes = [64]

[benchmarks.usage]
datasets = ["gaussian"]
train_steps = 2
"""


def write(tmp_path: Path, text: str, name: str = "tiny.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", BUILTIN_PROFILES)
def test_builtin_profiles_load_and_expand(name):
    profile = load_profile(name)
    assert profile.name == name and profile.benchmarks
    plan = expand_profile(profile)
    assert plan.cells and all(isinstance(c, Cell) for c in plan.cells)
    assert len({c.cell_id for c in plan.cells}) == len(plan.cells)


def test_quick_covers_every_default_quantizer_on_all_three_benchmarks():
    plan = expand_profile(load_profile("quick"))
    covered = {(c.benchmark, c.quantizer) for c in plan.cells}
    for q in list_quantizers(default_only=True):
        for bench in ("throughput", "usage", "reconstruction"):
            assert (bench, q) in covered
    assert {c.device for c in plan.cells} == {"cpu"}
    assert plan.threads == 1


def test_baseline_settings_are_written_in_the_profiles():
    for name in BUILTIN_PROFILES:
        profile = load_profile(name)
        assert quantizer_config(profile, "lfq")["entropy_loss_weight"] == 0.1
        assert quantizer_config(profile, "vq")["commitment_weight"] == 0.25
        assert quantizer_config(profile, "vq")["decay"] == 0.99


def test_standard_sweeps_codebook_sizes_two_to_the_8_to_12():
    plan = expand_profile(load_profile("standard"))
    for q in ("fsq", "vq", "vq-plain", "lfq"):
        sizes = {
            c.config.get("codebook_size")
            for c in plan.cells
            if c.quantizer == q and c.benchmark == "reconstruction"
        }
        assert {2**8, 2**10, 2**12} <= sizes, q


def test_full_is_a_gpu_profile_with_compile():
    profile = load_profile("full")
    assert "cuda" in profile.devices
    plan = expand_profile(profile)
    assert {"eager", "compile"} <= {c.backend for c in plan.cells if c.benchmark == "throughput"}


def test_user_profile_expands_with_config_sizes_and_datasets(tmp_path):
    plan = expand_profile(load_profile(write(tmp_path, TINY)))
    assert plan.suite == "tiny"
    assert len(plan.cells) == 4  # 2 quantizers x 2 benchmarks
    usage_vq = next(c for c in plan.cells if c.benchmark == "usage" and c.quantizer == "vq")
    assert usage_vq.config == {"commitment_weight": 0.25, "codebook_size": 256}
    assert usage_vq.dataset == "gaussian" and usage_vq.dataset_options["n_eval"] == 512
    assert usage_vq.params == {"train_steps": 2}
    assert all(plan.timeout(c) == 30 for c in plan.cells)


def test_overrides_replace_the_profiles_axes(tmp_path):
    profile = load_profile(write(tmp_path, TINY))
    plan = expand_profile(profile, quantizers="fsq*", datasets="uniform", seed=7, timeout=5)
    assert {c.quantizer for c in plan.cells} == set(list_quantizers("fsq*"))
    assert {c.dataset for c in plan.cells if c.benchmark == "usage"} == {"uniform"}
    assert {c.seed for c in plan.cells} == {7}
    assert all(plan.timeout(c) == 5 for c in plan.cells)


def test_a_plugin_reference_is_a_quantizer_name(tmp_path):
    ref = f"{PLUGINS}:Exploding"
    plan = expand_profile(load_profile(write(tmp_path, TINY)), quantizers=[ref, "fsq"])
    assert {c.quantizer for c in plan.cells} == {ref, "fsq"}


def test_glob_config_keys_merge_before_exact_keys(tmp_path):
    text = TINY.replace("[quantizers.vq]", '[quantizers."vq*"]\ndecay = 0.9\n\n[quantizers.vq]')
    profile = load_profile(write(tmp_path, text))
    assert quantizer_config(profile, "vq") == {"decay": 0.9, "commitment_weight": 0.25}
    assert quantizer_config(profile, "vq-cosine") == {"decay": 0.9}


def test_registered_settings_go_under_the_profiles_tables(tmp_path):
    text = TINY.replace("timeout = 30", "timeout = 30\nregistered_settings = true").replace(
        "[quantizers.vq]", '[quantizers."vq*"]\ndecay = 0.9\n\n[quantizers.vq]'
    )
    profile = load_profile(write(tmp_path, text))
    vq, cosine = quantizer_config(profile, "vq"), quantizer_config(profile, "vq-cosine")
    assert vq == {**default_settings("vq"), "decay": 0.9, "commitment_weight": 0.25}
    assert cosine == {**default_settings("vq-cosine"), "decay": 0.9}
    assert quantizer_config(profile, "lfq") == default_settings("lfq")
    assert quantizer_config(profile, "fsq") == {}
    usage_vq = next(
        c for c in expand_profile(profile).cells if c.benchmark == "usage" and c.quantizer == "vq"
    )
    assert usage_vq.config == {**vq, "codebook_size": 256}


def test_without_registered_settings_cells_carry_the_profiles_keys_only(tmp_path):
    profile = load_profile(write(tmp_path, TINY))
    assert not profile.registered_settings
    assert quantizer_config(profile, "lfq") == {}


def test_sweep_adds_codebook_sizes(tmp_path):
    text = TINY + '\n[[sweep]]\nquantizers = ["fsq"]\nbenchmarks = ["usage"]\ncodebook_sizes = [256, 1024]\n'
    plan = expand_profile(load_profile(write(tmp_path, text)))
    sizes = sorted(
        c.config["codebook_size"] for c in plan.cells if c.quantizer == "fsq" and c.benchmark == "usage"
    )
    assert sizes == [256, 1024]  # 256 was already in the grid: no duplicate cell


def test_cells_round_trip_through_dicts_with_the_same_id(tmp_path):
    for cell in expand_profile(load_profile(write(tmp_path, TINY))).cells:
        again = Cell.from_dict(cell.to_dict())
        assert again == cell and again.cell_id == cell.cell_id


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[suite]\ntimeout = -1\n[benchmarks.usage]\ndatasets=['gaussian']\n", "suite.timeout"),
        ("[suite]\ndevices = ['gpu']\n[benchmarks.throughput]\n", "suite.devices"),
        ("[suite]\nquantizerz = ['fsq']\n[benchmarks.throughput]\n", "suite.quantizerz"),
        ("[suite]\nseeds = 3\n[benchmarks.throughput]\n", "suite.seeds"),
        ("[suite]\nworkers = 0\n[benchmarks.throughput]\n", "suite.workers"),
        ("[suite]\nregistered_settings = 1\n[benchmarks.throughput]\n", "suite.registered_settings"),
        ("[benchmark.throughput]\n", "benchmark"),
        ("[suite]\n", "benchmarks"),
        ("[benchmarks.speed]\nsizes = [1]\n", "benchmarks.speed"),
        ("[benchmarks.t]\nkind = 'latency'\n", "benchmarks.t.kind"),
        ("[benchmarks.usage]\ndatasets = [1, 2]\n", "benchmarks.usage.datasets"),
        ("[benchmarks.usage]\ncodebook_sizes = [1]\n", "benchmarks.usage.codebook_sizes"),
        ("[quantizers]\nvq = 3\n[benchmarks.throughput]\n", "quantizers.vq"),
        (
            "[benchmarks.throughput]\n[[sweep]]\nquantizers=['fsq']\nbenchmarks=['throughput']\n",
            "sweep[0].codebook_sizes",
        ),
        (
            "[benchmarks.throughput]\n[[sweep]]\nquantizers=['fsq']\nbenchmarks=['usage']\ncodebook_sizes=[256]\n",
            "sweep[0].benchmarks",
        ),
    ],
)
def test_malformed_profiles_name_the_file_and_the_key(tmp_path, text, key):
    path = write(tmp_path, text, "bad.toml")
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    assert str(path) in str(info.value) and f"'{key}'" in str(info.value)


def test_invalid_toml_names_the_file(tmp_path):
    path = write(tmp_path, "[suite\nname = 1", "broken.toml")
    with pytest.raises(ProfileError, match="broken.toml: not valid TOML"):
        load_profile(path)


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('quantizers = ["fsq", "vq"]', 'quantizers = ["fsq", "vqq"]', "suite.quantizers"),
        ('datasets = ["gaussian"]', 'datasets = ["gausian"]', "benchmarks.usage.datasets"),
        ("[quantizers.vq]", "[quantizers.vqx]", "quantizers.vqx"),
        ("train_steps = 2", "train_stepz = 2", "benchmarks.usage.train_stepz"),
        ("n_eval = 512", "n_evaluation = 512", "datasets.gaussian.n_evaluation"),
    ],
)
def test_unknown_names_in_a_profile_name_the_file_and_the_key(tmp_path, old, new, key):
    path = write(tmp_path, TINY.replace(old, new))
    with pytest.raises((KeyError, ValueError)) as info:
        expand_profile(load_profile(path))
    message = str(info.value)
    assert str(path) in message and key in message


def test_unknown_suite_and_override_names_are_clear_errors(tmp_path):
    with pytest.raises(ProfileError, match="unknown suite 'quik'; did you mean 'quick'"):
        load_profile("quik")
    with pytest.raises(FileNotFoundError, match="nothere.toml"):
        load_profile(tmp_path / "nothere.toml")
    profile = load_profile(write(tmp_path, TINY))
    with pytest.raises(KeyError, match="--quantizers.*fsqq"):
        expand_profile(profile, quantizers="fsqq")
    with pytest.raises(KeyError, match="--quantizers.*'zz\\*' matches no registered quantizer"):
        expand_profile(profile, quantizers="zz*")
    with pytest.raises(KeyError, match="--datasets: unknown dataset 'digitz'"):
        expand_profile(profile, datasets="digitz")
    with pytest.raises(ValueError, match="--backend: no selected quantizer accepts backend 'triton'"):
        expand_profile(profile, quantizers="vq", backends="triton")
    with pytest.raises(FileNotFoundError, match="no such file"):
        expand_profile(profile, quantizers="missing/plugin.py:Q")


def test_fsq_speed_runs_as_a_benchmark_kind():
    from vqbench.suite.fsq_speed import cell as fsq_speed_cell

    cell = Cell(
        suite="t",
        benchmark="fsq_speed",
        quantizer="fsq",
        params={
            "vectors": 512,
            "sweep": [],
            "rounds": 1,
            "min_run_time": 0.001,
            "threads": 1,
            "compiled": False,
        },
    )
    figures = fsq_speed_cell.measure(cell)
    metrics = {f["metric"]: f for f in figures}
    upstream = metrics["inference.ratio.upstream[8x5x5x5]@512"]
    assert upstream["value"] == pytest.approx(1.0) and upstream["unit"] == "x upstream"
    assert any(m.startswith("inference.vectors_per_s.vqbench:") for m in metrics)
    assert all(f["value"] in (0.0, 1.0) for m, f in metrics.items() if m.startswith("goal."))
