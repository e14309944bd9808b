"""The benchmark engines' contract: declarations are checked when registered, and what the built-in
engines store is what they declare."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from vqbench.datasets import make_dataset
from vqbench.engines import (
    ENGINES,
    EngineSpec,
    FigureSpec,
    SummaryColumn,
    engine_modules,
    get_engine,
    primary_figures,
    register_engine,
    view_of,
)
from vqbench.errors import UnknownNameError, UserError
from vqbench.results.vocabulary import parse_metric
from vqbench.suite import reconstruction, throughput, usage
from vqbench.suite.cells import Cell


@pytest.fixture
def scratch_engines():
    state = ENGINES.snapshot()
    yield
    ENGINES.restore(state)


def test_builtins_in_report_order_with_their_primary_figures():
    assert list(ENGINES.specs())[:3] == ["throughput", "usage", "reconstruction"]
    assert primary_figures()["reconstruction"] == "psnr"
    assert primary_figures()["usage"] == "utilization"
    assert view_of("throughput") == "operations" and view_of("usage") == "training"
    assert view_of("no-such-engine") == "table"  # a plugin's rows where the plugin is not installed
    assert engine_modules()["usage"] == "vqbench.suite.usage"


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"view": "pie"}, "view must be one of operations, training, table"),
        ({"module": ""}, "module must be a module name"),
        (
            {
                "figures": (
                    FigureSpec("a", "s", False, primary=True),
                    FigureSpec("b", "s", False, primary=True),
                )
            },
            "at most one primary figure",
        ),
        ({"summary": (SummaryColumn("a", "A", "percent"),)}, "summary style is si, pct or f1"),
        ({"name": "two words"}, "without spaces"),
    ],
)
def test_a_bad_declaration_is_refused_when_registered(scratch_engines, change, match):
    spec = dataclasses.replace(EngineSpec("toy", "vqbench.suite.usage"), **change)
    with pytest.raises(UserError, match=match):
        register_engine(spec)


def test_a_name_is_taken_once(scratch_engines):
    with pytest.raises(UserError, match="already registered"):
        register_engine(EngineSpec("usage", "my.module"))


def test_an_unknown_engine_names_the_close_ones():
    with pytest.raises(UnknownNameError, match="did you mean 'usage'"):
        get_engine("usagee")


def test_an_engine_module_without_its_contract_fails_by_name(scratch_engines):
    register_engine(EngineSpec("hollow", "vqbench.errors"))
    with pytest.raises(UserError, match=r"engine 'hollow': module 'vqbench.errors' has no measure\(cell\)"):
        get_engine("hollow").params()


def test_old_parameter_names_are_read_under_the_new_one():
    engine = get_engine("reconstruction")
    assert engine.current_params({"steps": 5}) == {"train_steps": 5}
    assert get_engine("usage").current_params({"steps": 5}) == {"steps": 5}  # not usage's old name


def _declared(benchmark: str) -> dict[str, tuple[str, bool | None]]:
    return {f.name: (f.unit, f.higher_is_better) for f in get_engine(benchmark).figures}


def _stored(rows: list[dict]) -> dict[str, tuple[str, bool | None]]:
    return {parse_metric(r["metric"]).figure: (r["unit"], r["higher_is_better"]) for r in rows}


def _vectors(dim: int = 8) -> object:
    g = torch.Generator().manual_seed(0)
    return make_dataset(
        "toy", "vectors", torch.randn(512, dim, generator=g), torch.randn(256, dim, generator=g)
    )


def test_usage_and_reconstruction_store_what_they_declare():
    data = _vectors()
    cell = Cell(
        "t", "usage", "fsq", {"codebook_size": 256}, "toy", params={"train_steps": 5, "eval_every": 0}
    )
    stored = _stored(usage.measure(cell, data=data))
    assert stored.items() <= _declared("usage").items(), set(stored.items()) - set(_declared("usage").items())
    cell = Cell(
        "t",
        "reconstruction",
        "fsq",
        {"codebook_size": 256},
        "toy",
        params={"train_steps": 5, "eval_every": 0, "hidden": 16, "reconstructions": 0},
    )
    stored = _stored(reconstruction.measure(cell, data=data))
    declared = _declared("reconstruction")
    assert stored.items() <= declared.items(), set(stored.items()) - set(declared.items())


def test_throughput_stores_what_it_declares():
    cell = Cell("t", "throughput", "fsq", {"codebook_size": 256}, params={"sizes": [256], "repeats": 3})
    stored = _stored(throughput.measure(cell))
    declared = _declared("throughput")
    assert stored.items() <= declared.items(), set(stored.items()) - set(declared.items())
