"""Built-in profiles are sized for their claims: enough eval tokens per code, seeds, sweeps, ceilings."""

from __future__ import annotations

import json

import pytest

from vqbench.datasets import DatasetUnavailableError, load_dataset
from vqbench.quantizers import create_quantizer
from vqbench.suite import reconstruction, usage
from vqbench.suite.cells import NO_QUANTIZER
from vqbench.suite.expand import expand_profile
from vqbench.suite.profiles import BUILTIN_PROFILES, load_profile

ENGINES = {"usage": usage, "reconstruction": reconstruction}
MIN_TOKENS_PER_CODE = 10


@pytest.mark.slow
@pytest.mark.parametrize("name", BUILTIN_PROFILES)
def test_every_usage_figure_has_ten_eval_tokens_per_code(name):
    plan = expand_profile(load_profile(name))
    data: dict[str, object] = {}
    codes: dict[str, int] = {}
    low, unavailable, checked = [], set(), 0
    for cell in plan.cells:
        if cell.benchmark not in ENGINES or not cell.dataset or cell.quantizer == NO_QUANTIZER:
            continue
        key = json.dumps([cell.dataset, cell.dataset_options], sort_keys=True)
        if key not in data:
            try:
                data[key] = load_dataset(cell.dataset, seed=0, **cell.dataset_options)
            except DatasetUnavailableError:
                data[key] = None
        if data[key] is None:
            unavailable.add(cell.dataset)
            continue
        qkey = json.dumps([cell.quantizer, cell.config], sort_keys=True)
        if qkey not in codes:
            q = create_quantizer(cell.quantizer, **cell.config)
            codes[qkey] = int(q.codebook_size)  # usage is counted per codebook over every token
        tokens = ENGINES[cell.benchmark].eval_tokens(data[key], cell.params)
        checked += 1
        if tokens < MIN_TOKENS_PER_CODE * codes[qkey]:
            low.append(f"{cell.label}: {tokens} eval tokens for {codes[qkey]} codes")
    assert checked, f"{name}: no usage figure could be checked (unavailable: {sorted(unavailable)})"
    assert not low, f"{name}: fewer than {MIN_TOKENS_PER_CODE} eval tokens per code in:\n" + "\n".join(low)


@pytest.mark.parametrize("name", ["standard", "full"])
def test_sweeps_hold_both_vqs_three_seeds_and_a_ceiling(name):
    plan = expand_profile(load_profile(name), quantizers="fsq,vq,vq-plain,lfq")
    recon = [c for c in plan.cells if c.benchmark == "reconstruction" and c.dataset == "fashion-mnist"]
    for q in ("fsq", "vq", "vq-plain", "lfq"):
        sizes = {c.config.get("codebook_size") for c in recon if c.quantizer == q}
        assert {2**8, 2**10, 2**12} <= sizes, (name, q)
        for size in sizes:
            seeds = {c.seed for c in recon if c.quantizer == q and c.config.get("codebook_size") == size}
            assert len(seeds) >= 3, (name, q, size)
    ceiling = [c for c in recon if c.quantizer == NO_QUANTIZER]
    assert len({c.seed for c in ceiling}) >= 3 and all("codebook_size" not in c.config for c in ceiling)
    params = [{**reconstruction.PARAMS, **c.params} for c in recon]
    assert all(p["eval_every"] > 0 for p in params), "sweep cells train to a plateau"


def test_full_carries_every_sweep_to_two_to_the_16():
    plan = expand_profile(load_profile("full"), quantizers="fsq,vq,vq-plain,lfq")
    for q in ("fsq", "vq", "vq-plain", "lfq"):
        sizes = {
            c.config.get("codebook_size")
            for c in plan.cells
            if c.quantizer == q and c.benchmark == "reconstruction"
        }
        assert 2**16 in sizes, q


def test_quick_adds_no_ceiling_without_a_reconstruction_sweep():
    plan = expand_profile(load_profile("quick"))
    assert not [c for c in plan.cells if c.quantizer == NO_QUANTIZER]
