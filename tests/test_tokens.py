"""Token figures: known answers of the count-based entropies and of robustness under corruption."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from vqbench.datasets._base import make_dataset
from vqbench.suite import reconstruction
from vqbench.suite.autoencoders import mlp_autoencoder
from vqbench.suite.cells import Cell
from vqbench.suite.tokens import conditional_entropies, joint_ids, prior_bits, robustness

TOYS = str(Path(__file__).with_name("_engine_toys.py"))
pytestmark = pytest.mark.usefixtures("one_thread")


def test_iid_uniform_tokens_cost_log2_k():
    k, rng = 16, np.random.default_rng(0)
    train, eval = rng.integers(0, k, (20000, 16)), rng.integers(0, k, (5000, 16))
    bits = conditional_entropies(train, eval, k, (4, 4))
    # smoothed counts fit on 320k tokens: within 0.05 bits of log2 K above it, never below by more
    for value in bits.values():
        assert math.log2(k) - 0.01 < value < math.log2(k) + 0.05


def test_deterministic_stream_costs_about_nothing_given_its_predecessor():
    k = 16
    start = np.random.default_rng(1).integers(0, k, (4000, 1))
    stream = (start + np.arange(16)) % k  # each token is its predecessor + 1
    bits = conditional_entropies(stream[:3000], stream[3000:], k, (1, 16))
    assert bits["previous"] < 0.3  # the first token of each row is uniform: 4 bits / 16 tokens
    assert bits["neighbours"] < 0.3
    assert bits["unigram"] > math.log2(k) - 0.05


def test_left_and_upper_neighbours_see_vertical_structure():
    k, rng = 8, np.random.default_rng(2)
    rows = rng.integers(0, k, (3000, 1, 4))
    images = np.repeat(rows, 4, axis=1).reshape(3000, 16)  # every row equals the one above
    bits = conditional_entropies(images[:2000], images[1000:], k, (4, 4))
    assert bits["neighbours"] < 0.5 * bits["previous"]


def test_joint_ids_of_several_codebooks():
    train = torch.tensor([[[0, 1], [1, 0]], [[0, 1], [0, 1]]])
    eval = torch.tensor([[[1, 1], [0, 1]]])
    t, e, alphabet = joint_ids(train, eval)
    assert alphabet == 3 and t.shape == (2, 2) and e.shape == (1, 2)
    assert t[0, 0] == t[1, 0] == t[1, 1] == e[0, 1] and t[0, 1] != t[0, 0]


def test_bad_grid_is_refused():
    with pytest.raises(ValueError, match="expected 2x2 tokens per sample, got 3"):
        conditional_entropies(np.zeros((2, 3), int), np.zeros((2, 3), int), 4, (2, 2))


def test_prior_recovers_the_entropy_rate_of_a_markov_chain():
    k, stay, rng = 8, 0.7, np.random.default_rng(0)

    def chain(n, length=16):
        x = np.zeros((n, length), np.int64)
        x[:, 0] = rng.integers(0, k, n)
        for t in range(1, length):
            other = (x[:, t - 1] + rng.integers(1, k, n)) % k
            x[:, t] = np.where(rng.random(n) < stay, x[:, t - 1], other)
        return x

    step = -(stay * math.log2(stay) + (1 - stay) * math.log2((1 - stay) / (k - 1)))
    rate = (math.log2(k) + 15 * step) / 16  # the first token is uniform
    bits, record = prior_bits(chain(2000), chain(500), k, steps=120, seed=0)
    assert rate - 0.05 < bits < rate + 0.1  # within 0.1 bits of the entropy rate, far below log2 K = 3
    assert record["curve"][-1][1] == bits and len(record["curve"]) == 8


class _Ignoring(nn.Module):
    """A quantizer whose codes do not depend on its indices: decode sees a constant."""

    dim, codebook_size, num_codebooks = 2, 16, 1

    def forward(self, x):
        from vqbench.quantizers import QuantizerOutput

        indices = (x[..., 0].abs() * 7).long().clamp(0, 15)
        return QuantizerOutput(self.indices_to_codes(indices), indices, None)

    def indices_to_codes(self, indices):
        return torch.ones(*indices.shape, 2)


def test_decode_that_ignores_indices_loses_nothing_under_corruption():
    torch.manual_seed(0)
    model = mlp_autoencoder(6, 2, 3, 8, _Ignoring())
    x = torch.randn(64, 6)
    curves = robustness(model, x, 4.0, 32, 0)
    for kind in ("random_codes", "bit_flips", "noise"):
        assert all(abs(v) < 1e-9 for v in curves[kind].values()), kind
    assert curves["noise_changed"][0.25] > 0  # the indices did change


def _cell(params, seed=0):
    base = {"train_steps": 40, "batch": 32, "channels": 8, "token_figures": "counts"}
    return Cell(
        "test",
        "reconstruction",
        f"{TOYS}:ToyFSQ",
        {"codebook_size": 125},
        "blobs",
        {},
        params={**base, **params},
        seed=seed,
    )


def _blobs(n_train=256, n_eval=64, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = n_train + n_eval
    images = torch.zeros(n, 1, size, size)
    for i, (r, c) in enumerate(torch.randint(0, size - 3, (n, 2), generator=g).tolist()):
        images[i, 0, r : r + 3, c : c + 3] = 1.0
    return make_dataset("blobs", "images", images[:n_train], images[n_train:])


def test_reconstruction_cell_stores_token_figures():
    rows = {r["metric"]: r for r in reconstruction.measure(_cell({}), data=_blobs())}
    bits = rows["token_bits_neighbours"]
    assert 0 <= bits["value"] <= rows["token_bits_unigram"]["value"] + 0.5
    assert bits["extra"]["grid"] == [4, 4] and bits["extra"]["modelled"] == "index per position"
    assert rows["token_bits_per_sample"]["value"] == pytest.approx(16 * bits["value"])
    curve = rows["corrupt_psnr_drop"]["extra"]["curve"]
    assert rows["corrupt_psnr_drop"]["value"] == curve["0.05"]
    assert curve["0.25"] > curve["0.01"]  # more wrong tokens, a larger drop
    assert 0 <= rows["noise_index_change"]["value"] <= 1
    assert rows["bitflip_psnr_drop"]["unit"] == "dB"


def test_prior_figures_when_asked():
    rows = {
        r["metric"]: r
        for r in reconstruction.measure(_cell({"token_figures": "prior", "prior_steps": 24}), data=_blobs())
    }
    prior = rows["token_bits_prior"]
    assert 0 < prior["value"] < math.log2(125) and "converged" in prior["extra"]
    assert rows["prior_bits_per_sample"]["value"] == pytest.approx(16 * prior["value"])


def test_no_token_figures_unless_asked():
    rows = reconstruction.measure(_cell({"token_figures": "none", "train_steps": 5}), data=_blobs(32, 16))
    assert not any(r["metric"].startswith(("token_", "corrupt_")) for r in rows)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"token_figures": "ar"}, r"'token_figures' must be one of \['none', 'counts', 'prior'\], got 'ar'"),
        ({"corrupt_share": 1.5}, r"'corrupt_share' must be a share in \(0, 1\], got 1.5"),
        ({"noise_scale": 0}, "'noise_scale' must be a finite number > 0"),
        ({"prior_steps": 0}, "'prior_steps' must be an integer >= 1"),
    ],
)
def test_bad_token_params(params, match):
    with pytest.raises(ValueError, match=match):
        reconstruction.measure(_cell(params), data=_blobs(8, 4))


def _report_rows(fsq_bits, vq_bits, vq_usage=(0.4, 0.42, 0.41)):
    import pandas as pd

    rows = []
    for quantizer, bits, usage in (("fsq", fsq_bits, (0.9, 0.91, 0.92)), ("vq", vq_bits, vq_usage)):
        for seed, (b, u) in enumerate(zip(bits, usage, strict=False)):
            for metric, value, ext in (
                ("token_bits_prior", b, {}),
                ("token_bits_neighbours", b + 0.3, {}),
                ("utilization", u, {}),
                ("psnr", 20.0 + seed, {}),
                ("train_steps", 100, {"converged": True}),
            ):
                rows.append(
                    dict(
                        benchmark="reconstruction",
                        dataset="digits",
                        codebook_size=256.0,
                        quantizer=quantizer,
                        seed=seed,
                        metric=metric,
                        value=value,
                        status="ok",
                        ext=ext,
                    )
                )
    return pd.DataFrame(rows)


def test_report_section_judges_prior_bits_beyond_the_seeds_spread():
    from vqbench.reports.tokens import tokens_section

    section = tokens_section(_report_rows([5.0, 5.1, 5.05], [4.0, 4.1, 4.05]), "stamp", figures=False)
    text = " ".join(b.text for b in section.blocks if hasattr(b, "text"))
    assert "vq's tokens cost fewer bits than fsq's (4.05 vs 5.05)" in text
    assert "Converged cells: 6/6." in text
    table = next(b for b in section.blocks if hasattr(b, "rows"))
    assert table.title == "reconstruction · digits · 2^8"
    assert table.rows[0][3].text == "5.05 ± 0.05 [5.00-5.10] (n=3)"
    close = tokens_section(_report_rows([5.0, 5.1, 5.05], [5.02, 5.12, 4.98]), "stamp", figures=False)
    assert "vq and fsq within the seeds' spread" in " ".join(getattr(b, "text", "") for b in close.blocks)


def test_report_section_only_with_token_figures():
    from vqbench.reports.tokens import tokens_section

    rows = _report_rows([5.0], [4.0])
    assert tokens_section(rows[~rows["metric"].str.startswith("token_")], "stamp") is None
    one_seed = tokens_section(rows, "stamp", figures=False)
    assert "fsq 5.00 against vq 4.00 (fewer than 2 seeds: no verdict)" in " ".join(
        getattr(b, "text", "") for b in one_seed.blocks
    )


def test_report_table_leaves_out_a_figure_no_cell_measured():
    from vqbench.reports.tokens import tokens_section

    rows = _report_rows([5.0, 5.1], [4.0, 4.1])
    section = tokens_section(rows[rows["metric"].ne("token_bits_prior")], "stamp", figures=False)
    table = next(b for b in section.blocks if hasattr(b, "rows"))
    assert "prior bits/tok" not in table.columns and "count bits/tok" in table.columns
    assert all(len(row) == len(table.columns) for row in table.rows)
