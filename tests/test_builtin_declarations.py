"""Every built-in quantizer declares what the suite needs where it is registered: its family, its
memory model, its default settings (which the built-in profiles write into each cell's config) and
its row in README.md's quantizer table; a registration without them fails when it is made."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _plugin_helpers import isolated_registry

from vqbench.quantizers import (
    BUILTIN_NAMES,
    MEMORY_MODELS,
    create_quantizer,
    default_settings,
    get_quantizer_spec,
    list_quantizers,
    register_quantizer,
)
from vqbench.quantizers._registry import BUILTIN_DECLARATIONS, DEFAULT_MEMORY
from vqbench.suite.cells import Cell
from vqbench.suite.checks import estimate_bytes
from vqbench.suite.expand import quantizer_config
from vqbench.suite.profiles import BUILTIN_PROFILES, load_profile

README = Path(__file__).resolve().parents[1] / "README.md"
BUILTINS = sorted(BUILTIN_NAMES)
#: The quantizers whose forward computes a tokens x codes matrix (distances or soft assignments).
DENSE = {"vq", "vq-plain", "vq-cosine", "vq-rotation", "simvq", "lfq", "bsq", "residual-vq", "residual-lfq"}
SCALARS = (bool, int, float, str, type(None))


@pytest.mark.parametrize("name", BUILTINS)
def test_every_builtin_declares_family_memory_settings_and_description(name):
    spec = get_quantizer_spec(name)
    assert spec.builtin and spec.default, name
    assert spec.family not in ("", "other", "plugin"), name
    assert spec.memory in MEMORY_MODELS, name
    assert spec.description, name
    settings = default_settings(name)
    assert all(isinstance(k, str) and isinstance(v, SCALARS) for k, v in settings.items()), settings


def test_the_builtins_are_the_default_set():
    assert set(list_quantizers(default_only=True)) == BUILTIN_NAMES


def test_memory_models_of_the_builtins():
    assert {n for n in BUILTINS if get_quantizer_spec(n).memory == "dense"} == DENSE


@pytest.mark.parametrize("name", [n for n in BUILTINS if default_settings(n)])
def test_settings_are_what_the_factory_applies_by_default(name):
    settings = default_settings(name)
    given, default = create_quantizer(name, **settings), create_quantizer(name)
    assert given.config == default.config, name  # writing them into a cell changes nothing


@pytest.mark.parametrize("suite", BUILTIN_PROFILES)
def test_builtin_profiles_write_every_builtins_settings(suite):
    profile = load_profile(suite)
    assert profile.registered_settings
    for name in BUILTINS:
        assert quantizer_config(profile, name) == default_settings(name), (suite, name)


def _readme_quantizers() -> set[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Quantizers\n", 1)[1]
    section = re.split(r"\n#{2,3} ", section, maxsplit=1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([^`]+)`", row.split("|")[1])}


def test_readme_quantizer_table_lists_every_builtin_and_no_other():
    listed = _readme_quantizers()
    assert listed, "README.md's '## Quantizers' section has no table of quantizers"
    assert sorted(BUILTIN_NAMES - listed) == [], "built-ins missing from README.md's quantizer table"
    assert sorted(listed - BUILTIN_NAMES) == [], "README.md's quantizer table names unregistered quantizers"


# -- registration -----------------------------------------------------------------------------


FULL = {"family": "vq", "memory": "dense", "settings": {}, "description": "a new baseline"}


@pytest.mark.parametrize("missing", BUILTIN_DECLARATIONS)
def test_a_builtin_without_a_declaration_is_refused_when_registered(missing):
    declared = {k: v for k, v in FULL.items() if k != missing}
    with isolated_registry():
        with pytest.raises(ValueError, match=rf"built-in quantizer 'new-vq' does not declare {missing}"):
            register_quantizer("new-vq", "some.module:factory", builtin=True, **declared)
        assert "new-vq" not in list_quantizers()


def test_a_builtin_with_every_declaration_registers():
    with isolated_registry():
        register_quantizer("new-vq", "some.module:factory", builtin=True, **FULL)
        spec = get_quantizer_spec("new-vq")
        assert (spec.family, spec.memory, spec.load_settings()) == ("vq", "dense", {})


@pytest.mark.parametrize(
    ("declared", "error", "match"),
    [
        ({"memory": "sparse"}, ValueError, "memory must be one of"),
        ({"family": ""}, ValueError, "family must be a non-empty string"),
        ({"settings": ["decay", 0.9]}, TypeError, "settings must be a dict"),
        ({"settings": "no-reference"}, TypeError, "settings must be a dict"),
    ],
)
def test_a_malformed_declaration_is_refused_when_registered(declared, error, match):
    with isolated_registry():
        with pytest.raises(error, match=match):
            register_quantizer("toy-bad", "some.module:factory", **declared)
        assert "toy-bad" not in list_quantizers()


def test_a_plugin_without_declarations_gets_the_defaults():
    with isolated_registry():
        register_quantizer("toy-plain", "some.module:factory")
        spec = get_quantizer_spec("toy-plain")
        assert (spec.family, spec.memory, spec.load_settings(), spec.builtin) == (
            "other",
            DEFAULT_MEMORY,
            {},
            False,
        )


def test_a_settings_reference_that_is_not_a_dict_fails_when_read():
    with isolated_registry():
        register_quantizer("toy-ref", "some.module:factory", settings="vqbench.quantizers.baselines:_pick")
        with pytest.raises(TypeError, match="not a dict of config"):
            default_settings("toy-ref")


# -- what the suite asks of the spec ----------------------------------------------------------


def test_the_memory_check_counts_the_codes_of_dense_quantizers_only():
    cell = Cell(suite="t", benchmark="throughput", quantizer="x", params={"sizes": [1000]})
    fact = {"dim": 8, "codebook_size": 4096, "num_codebooks": 1, "family": "other"}
    linear, dense = (
        estimate_bytes(cell, {**fact, "memory": "linear"}),
        estimate_bytes(cell, {**fact, "memory": "dense"}),
    )
    assert dense - linear == 1000 * 4096 * 12


def test_the_dry_run_prices_the_codebook_of_dense_quantizers_only():
    from vqbench.suite.estimate import cell_costs

    def seconds(quantizer: str) -> float:
        cell = Cell(
            suite="t",
            benchmark="reconstruction",
            quantizer=quantizer,
            config={"codebook_size": 4096},
            params={"train_steps": 100},
        )
        return cell_costs([cell])[0].seconds

    flat = seconds("fsq")
    assert seconds("vq") > flat and seconds("lfq") > flat
    assert seconds("residual-fsq") == seconds("no-quantizer") == seconds("my_file.py:Mine") == flat
