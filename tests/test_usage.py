"""Codebook usage: figures on hand-made index sets with known answers, and the usage benchmark."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from vqbench.datasets._base import make_dataset
from vqbench.suite import usage
from vqbench.suite.cells import Cell
from vqbench.suite.usage import UsageCounter, codebook_usage

TOYS = str(Path(__file__).with_name("_engine_toys.py"))


@pytest.mark.parametrize("k", [1, 4, 16])
def test_uniform_over_k_of_64_codes(k):
    indices = torch.arange(k).repeat(50)
    u = codebook_usage(indices, 64)
    assert u["perplexity"] == pytest.approx(k)
    assert u["entropy_bits"] == pytest.approx(math.log2(k))
    assert u["utilization"] == pytest.approx(k / 64)
    assert u["perplexity_ratio"] == pytest.approx(k / 64)
    assert u["dead_codes"] == 64 - k
    assert u["tokens"] == 50 * k
    assert u["tokens_per_code"] == pytest.approx(50 * k / 64)


def test_skewed_distribution():
    indices = torch.tensor([0, 0, 1, 2] * 25)  # p = 1/2, 1/4, 1/4: H = 1.5 bits
    u = codebook_usage(indices, 8)
    assert u["entropy_bits"] == pytest.approx(1.5)
    assert u["perplexity"] == pytest.approx(2**1.5)
    assert u["utilization"] == pytest.approx(3 / 8)


def test_two_codebooks_are_counted_apart():
    first = torch.arange(4).repeat(25)  # uniform over 4 codes
    second = torch.zeros(100, dtype=torch.long)  # one code
    u = codebook_usage(torch.stack([first, second], -1), 16, num_codebooks=2)
    per = u["per_codebook"]
    assert per["perplexity"] == pytest.approx([4.0, 1.0])
    assert per["utilization"] == pytest.approx([4 / 16, 1 / 16])
    assert per["entropy_bits"] == pytest.approx([2.0, 0.0])
    assert per["dead_codes"] == [12.0, 15.0]
    assert u["perplexity"] == pytest.approx(2.5)  # mean over codebooks
    assert u["utilization"] == pytest.approx(5 / 32)
    assert u["dead_codes"] == 27  # summed over codebooks
    assert u["tokens"] == 100
    # a flattened unique() would see codes {0, 1, 2, 3} once: the per-codebook count differs
    assert len(torch.unique(torch.stack([first, second], -1))) == 4


def test_shapes_single_codebook_any_layout():
    flat = codebook_usage(torch.arange(8).repeat(4), 8)
    grid = codebook_usage(torch.arange(8).repeat(4).reshape(2, 4, 4, 1), 8)
    assert flat == grid


def test_batches_accumulate_like_one_set():
    g = torch.Generator().manual_seed(0)
    indices = torch.randint(0, 32, (1000, 3), generator=g)
    counter = UsageCounter(32, 3)
    for chunk in indices.split(128):
        counter.update(chunk)
    assert counter.figures() == codebook_usage(indices, 32, 3)


def test_sparse_counting_matches_dense(monkeypatch):
    g = torch.Generator().manual_seed(1)
    indices = torch.randint(0, 50, (600, 2), generator=g) ** 2  # sparse over 2500 codes
    dense = codebook_usage(indices, 2500, 2)
    monkeypatch.setattr(usage, "DENSE_LIMIT", 0)
    counter = UsageCounter(2500, 2)
    assert not counter.dense
    for chunk in indices.split(20):  # more batches than the merge threshold
        counter.update(chunk)
    sparse = counter.figures()
    for key in ("utilization", "perplexity", "entropy_bits", "dead_codes", "tokens"):
        assert sparse[key] == pytest.approx(dense[key])


def test_bad_indices_are_clear_errors():
    with pytest.raises(ValueError, match=r"\[0, 8\).*\[0, 9\]"):
        codebook_usage(torch.tensor([0, 9]), 8)
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        codebook_usage(torch.tensor([-1, 2]), 8)
    with pytest.raises(TypeError, match="integer tensor"):
        codebook_usage(torch.tensor([0.0, 1.0]), 8)
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        codebook_usage(torch.zeros(10, 3, dtype=torch.long), 8, num_codebooks=2)
    with pytest.raises(ValueError, match="codebook_size must be a positive integer"):
        codebook_usage(torch.zeros(3, dtype=torch.long), 0)
    with pytest.raises(ValueError, match="at least one token"):
        UsageCounter(8).figures()


def _vectors(n_train=3000, n_eval=2000, dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    train, eval = torch.randn(n_train, dim, generator=g), torch.randn(n_eval, dim, generator=g)
    return make_dataset("toy", "vectors", train, eval)


def _cell(quantizer, config, params=None, **kw):
    return Cell("test", "usage", f"{TOYS}:{quantizer}", config, "toy", {}, params=params or {}, **kw)


def _by_metric(rows):
    return {r["metric"]: r for r in rows}


def test_measure_counts_the_whole_eval_split():
    cell = _cell("ToyFSQ", {"codebook_size": 125}, {"train_steps": 20})
    rows = _by_metric(usage.measure(cell, data=_vectors()))
    assert rows["tokens"]["value"] == 2000
    assert rows["utilization"]["n"] == 2000
    assert rows["utilization"]["extra"]["tokens"] == 2000
    assert rows["tokens_per_code"]["value"] == pytest.approx(2000 / 125)
    assert "eval tokens per code" not in rows["utilization"]["extra"].get("warning", "")
    assert rows["utilization"]["extra"]["token_curve"]["tokens"] == [125, 500, 1000, 2000]
    assert 0 < rows["utilization"]["value"] <= 1
    assert rows["perplexity"]["value"] <= 125
    assert rows["dead_codes"]["value"] == pytest.approx(125 * (1 - rows["utilization"]["value"]))
    units = {m: (r["unit"], r["higher_is_better"]) for m, r in rows.items()}
    assert units["utilization"] == ("ratio", True)
    assert units["dead_codes"] == ("codes", False)
    assert units["entropy_bits"] == ("bits", True)
    assert units["train_time"] == ("s", False) and "fit_time" not in rows  # the reconstruction's name
    assert rows["train_time"]["extra"]["train_steps"] == 20
    for r in rows.values():
        assert set(r) == {"metric", "value", "unit", "higher_is_better", "spread", "n", "extra"}
        assert math.isfinite(r["value"])


def test_measure_warns_with_too_few_tokens_per_code():
    rows = _by_metric(
        usage.measure(_cell("ToyVQ", {"codebook_size": 64}, {"train_steps": 0}), data=_vectors(n_eval=300))
    )
    assert "warning" in rows["utilization"]["extra"]
    assert rows["tokens_per_code"]["value"] == pytest.approx(300 / 64)


def test_measure_multi_codebook_and_image_patches():
    g = torch.Generator().manual_seed(0)
    train, eval = torch.rand(40, 1, 8, 8, generator=g), torch.rand(30, 1, 8, 8, generator=g)
    images = make_dataset("img", "images", train, eval)
    cell = _cell("ToyVQ", {"codebook_size": 16, "num_codebooks": 2}, {"train_steps": 5, "patch": 4})
    rows = _by_metric(usage.measure(cell, data=images))
    assert rows["tokens"]["value"] == 30 * 4  # 2 x 2 patches of 4 x 4 per image
    assert len(rows["utilization"]["extra"]["per_codebook"]) == 2
    assert rows["quantization_mse"]["extra"]["token_dim"] == 16


def test_config_dim_gets_projections():
    rows = _by_metric(
        usage.measure(_cell("ToyVQ", {"codebook_size": 32, "dim": 3}, {"train_steps": 5}), data=_vectors())
    )
    assert rows["quantization_mse"]["extra"]["quantizer_dim"] == 3


def test_fitting_spreads_a_learned_codebook():
    data = _vectors(n_eval=3000)
    before = _by_metric(usage.measure(_cell("ToyVQ", {"codebook_size": 64}, {"train_steps": 0}), data=data))
    after = _by_metric(
        usage.measure(_cell("ToyVQ", {"codebook_size": 64}, {"train_steps": 200, "lr": 1e-2}), data=data)
    )
    assert after["quantization_mse"]["value"] < before["quantization_mse"]["value"]


def test_bad_params_and_missing_dataset():
    with pytest.raises(ValueError, match="unknown name.*'steps'"):
        usage.measure(_cell("ToyFSQ", {}, {"steps": 3}), data=_vectors())
    with pytest.raises(ValueError, match="'batch' must be an integer >= 1"):
        usage.measure(_cell("ToyFSQ", {}, {"batch": 0}), data=_vectors())
    no_data = Cell("test", "usage", f"{TOYS}:ToyFSQ", {}, None, {})
    with pytest.raises(ValueError, match="needs a dataset"):
        usage.measure(no_data)


def test_registered_quantizers_on_a_registered_dataset():
    """The cell's own dataset through load_dataset, and built-in quantizers: FSQ and VQ."""
    options = {"dim": 8, "n_train": 2048, "n_eval": 4096}
    for name, config in (("fsq", {"codebook_size": 256}), ("vq", {"codebook_size": 64})):
        cell = Cell("test", "usage", name, config, "gaussian", options, params={"train_steps": 10})
        rows = _by_metric(usage.measure(cell))
        assert rows["tokens"]["value"] == 4096, name
        assert 0 < rows["utilization"]["value"] <= 1, name


def test_residual_quantizer_reports_each_level():
    cell = Cell(
        "test",
        "usage",
        "residual-fsq",
        {"codebook_size": 256, "num_quantizers": 3},
        "gaussian",
        {"dim": 8, "n_train": 1024, "n_eval": 3000},
        params={"train_steps": 5},
    )
    rows = _by_metric(usage.measure(cell))
    per = rows["utilization"]["extra"]["per_codebook"]
    assert len(per) == 3 and rows["utilization"]["extra"]["num_codebooks"] == 3
    assert rows["utilization"]["value"] == pytest.approx(sum(per) / 3)
