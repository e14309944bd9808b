"""Every value an engine refuses is refused before the run (exit 2), never as error rows."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from vqbench.cli import main
from vqbench.engines import ENGINES
from vqbench.suite.expand import expand_profile
from vqbench.suite.input_checks import ENGINE_RULES, check_inputs
from vqbench.suite.profiles import ProfileError, load_profile

#: Parameters for which 0 is a meaningful value (no training, no warm-up, no checks, ...).
ZERO_OK = {
    "train_steps",
    "warmup",
    "eval_every",
    "min_steps",
    "loss_tol",
    "util_tol",
    "lr_cuts",
    "monitor_samples",
    "aux_loss_weight",
    "min_tokens_per_code",
    "reconstructions",
    "ceiling_steps",
    "perplexity_tol",
    "token_tol",
    "warm_batches",
}
#: Parameters whose default is None (the engine picks), by the type a profile may give.
OPTIONAL_INTS = ("threads", "ceiling_steps", "downsample", "latent_dim")
OPTIONAL_FLOATS = ("perplexity_tol",)
OPTIONAL_TEXTS = ("ceiling_width_note",)
DATASET = {"usage": "gaussian-mixture", "reconstruction": "digits"}
#: Lines a kind needs to expand to cells (agreement compares a precision with float32).
NEEDS = {"agreement": 'dtypes = ["bfloat16"]'}


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


def _profile(tmp_path: Path, kind: str, key: str, value) -> Path:
    lines = [
        "[suite]",
        'quantizers = ["fsq"]',
        'devices = ["cpu"]',
        'backends = ["eager"]',
        "seeds = [0]",
        "codebook_sizes = [256]",
        "",
        "[benchmarks.b]",
        f'kind = "{kind}"',
        f"{key} = {_toml(value)}",
    ]
    if kind in DATASET:
        lines.append(f'datasets = ["{DATASET[kind]}"]')
    if kind in NEEDS and key != "dtype":
        lines.append(NEEDS[kind])
    path = tmp_path / f"{kind}-{key}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _bad_values(key: str, default):
    """Values of the default's type that break its range, and values of the wrong type."""
    if isinstance(default, bool):
        return ["yes", 1]
    if isinstance(default, int) or (default is None and key in OPTIONAL_INTS):
        return [-1, 1.5, "x", True] + ([] if key in ZERO_OK else [0])
    if isinstance(default, float) or (default is None and key in OPTIONAL_FLOATS):
        return [-1.0, math.inf, "x"] + ([] if key in ZERO_OK else [0.0])
    if isinstance(default, str):
        return ["no-such-choice", 3]
    if default is None and key in OPTIONAL_TEXTS:
        return [3, True]
    if isinstance(default, list):
        return [[], ["no-such-choice"] if isinstance(default[0], str) else [0], [-4]]
    raise AssertionError(f"no bad values known for {key}={default!r}")


def _walk():
    for kind, engine in ENGINES.specs().items():
        params = engine.params()
        for key, default in params.items():
            for value in _bad_values(key, default):
                yield pytest.param(kind, key, value, id=f"{kind}.{key}={value!r}")


def test_every_engine_parameter_has_a_rule():
    for kind, engine in ENGINES.specs().items():
        rules = ENGINE_RULES.get(kind, {})
        own = callable(getattr(engine.load(), "check", None))
        for key in engine.params():
            assert key in rules or own, f"{kind}.{key} has no pre-check rule"


@pytest.mark.parametrize(("kind", "key", "value"), list(_walk()))
def test_each_bad_engine_value_is_refused_before_the_run(tmp_path, kind, key, value):
    profile = (
        load_profile(_profile(tmp_path, kind, key, value)) if not isinstance(value, list) or value else None
    )
    if profile is None:  # an empty list: the profile loader or the pre-check refuses it
        with pytest.raises(ProfileError):
            profile = load_profile(_profile(tmp_path, kind, key, value))
            check_inputs(profile, expand_profile(profile).cells)
        return
    with pytest.raises(ProfileError, match=rf"key 'benchmarks\.b\.{key}'"):
        check_inputs(profile, expand_profile(profile).cells)


def test_the_good_defaults_pass(tmp_path):
    for kind, engine in ENGINES.specs().items():
        for key, default in engine.params().items():
            if default is None:
                continue
            profile = load_profile(_profile(tmp_path, kind, key, default))
            check_inputs(profile, expand_profile(profile).cells)


PROFILE = """
[suite]
quantizers = ["fsq"]
devices = ["cpu"]
backends = ["eager"]
codebook_sizes = [256]

[benchmarks.{label}]
kind = "{kind}"
{line}
"""


@pytest.mark.parametrize(
    ("kind", "line"),
    [
        ("throughput", "sizes = [0]"),
        ("throughput", "rounds = 0"),
        ("throughput", 'operations = ["fwd"]'),
        ("throughput", 'dtype = "float8"'),
        ("usage", "datasets = []"),
        ("reconstruction", "datasets = []"),
        ("fsq_speed", "rounds = 0"),
        ("fsq_speed", 'sections = ["warp"]'),
    ],
)
def test_the_eight_values_that_gave_error_runs_exit_2_and_leave_no_store(tmp_path, capsys, kind, line):
    path = tmp_path / "bad.toml"
    path.write_text(PROFILE.format(label=kind, kind=kind, line=line))
    store = tmp_path / "s.sqlite"
    assert main(["run", "--suite", str(path), "--store", str(store), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"key 'benchmarks.{kind}." in err, err
    assert not store.exists()
