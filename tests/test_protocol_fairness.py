"""The protocol fair to every quantizer: native widths, token-limited utilization, per-dimension rows."""

from __future__ import annotations

import pytest
import torch

from vqbench.datasets._base import make_dataset
from vqbench.suite import reconstruction
from vqbench.suite.cells import NO_QUANTIZER, Cell
from vqbench.suite.diagnostics import Diagnostics, channel_levels, is_bitwise
from vqbench.suite.usage import UsageCounter, usage_figures

pytestmark = pytest.mark.usefixtures("one_thread")


def _blobs(n_train=192, n_eval=64, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = n_train + n_eval
    images = torch.zeros(n, 1, size, size)
    corners = torch.randint(0, size - 3, (n, 2), generator=g)
    for i, (r, c) in enumerate(corners.tolist()):
        images[i, 0, r : r + 3, c : c + 3] = 1.0
    return make_dataset("blobs", "images", images[:n_train], images[n_train:])


PARAMS = {"train_steps": 40, "batch": 16, "channels": 8, "eval_every": 0, "reconstructions": 0}


def _run(quantizer, config, **params):
    cell = Cell("t", "reconstruction", quantizer, config, "blobs", {}, params={**PARAMS, **params})
    model, q, _, widths = reconstruction._build(cell, _blobs(), {**reconstruction.PARAMS, **cell.params})
    rows = {r["metric"]: r for r in reconstruction.measure(cell, data=_blobs())}
    return model, q, widths, rows


def test_fsq_gets_its_own_width_and_no_projection_and_every_row_states_it():
    model, q, widths, rows = _run("fsq", {"codebook_size": 1024})  # levels [8, 5, 5, 5]
    assert q.dim == 4 and widths["latent_dim"] == 4 and widths["width"] == "native"
    inner = q.inner
    for module in (inner, model):
        assert isinstance(module.project_in, torch.nn.Identity)
        assert isinstance(module.project_out, torch.nn.Identity)
    assert model.encoder[-1].out_channels == 4 and model.decoder[0].in_channels == 4
    for metric in ("psnr", "mse", "train_steps", "utilization", "tokens_per_code", "levels_used"):
        extra = rows[metric]["extra"]
        assert extra["latent_dim"] == 4 and extra["quantizer_dim"] == 4, metric
        assert extra["width_note"] == "native width 4"


@pytest.mark.parametrize(
    ("name", "config", "width"),
    [
        ("lfq", {"codebook_size": 1024}, 10),
        ("vq", {"codebook_size": 256, "codebook_dim": 6}, 6),
        ("fsq", {"codebook_size": 256}, 3),
    ],
)
def test_each_quantizer_is_fed_its_native_width(name, config, width):
    assert reconstruction.native_width(name, {**config, "dim": 99}) == width
    _, q, widths, _ = _run(name, config, train_steps=0)
    assert q.dim == width == widths["latent_dim"] and widths["width"] == "native"


def test_a_shared_width_puts_the_same_explicit_projection_before_every_quantizer():
    for name, config, qdim in (("fsq", {"codebook_size": 256}, 3), ("lfq", {"codebook_size": 256}, 8)):
        model, q, widths, rows = _run(name, config, latent_dim=8, train_steps=0)
        assert widths["width"] == "shared" and widths["latent_dim"] == 8 and q.dim == qdim
        assert isinstance(model.project_in, torch.nn.Linear)
        assert (model.project_in.in_features, model.project_in.out_features) == (8, qdim)
        assert (model.project_out.in_features, model.project_out.out_features) == (qdim, 8)
        assert "shared width 8" in rows["psnr"]["extra"]["width_note"]


def test_a_config_dim_is_the_quantizers_input_and_the_row_says_it_projects_inside():
    _, q, widths, _ = _run("fsq", {"codebook_size": 256, "dim": 8}, train_steps=0)
    assert q.dim == 8 and widths["native_dim"] == 3 and widths["width"] == "config"
    assert "projects 8 -> 3 inside" in widths["width_note"]


def test_the_ceiling_takes_the_width_it_is_given_and_says_so():
    _, q, widths, rows = _run(
        NO_QUANTIZER, {}, latent_dim=12, ceiling_width_note="widest width: 12", train_steps=0
    )
    assert q is None and widths["latent_dim"] == 12
    assert rows["psnr"]["extra"]["width_note"] == "widest width: 12"
    assert rows["input_participation_ratio"]["extra"]["width"] == 12


def test_a_constant_bit_is_reported_dead():
    lfq = reconstruction.build_quantizer(Cell("t", "usage", "lfq", {"codebook_size": 256}, None, {}))[1]
    assert is_bitwise(lfq) and channel_levels(lfq) is None
    probe = Diagnostics(lfq)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        x = torch.randn(500, 8, generator=g)
        x[:, 5] = x[:, 5].abs() + 0.1  # bit 5 positive for every token
        probe.update(x, lfq(x).codes)
    ch = probe.channels()
    assert ch["live_bits"] == 7 and ch["dead_bits"] == [5] and ch["summary"].startswith("7 of 8 bits live")
    assert ch["balance"][5] == 1.0 and 0.4 < ch["balance"][0] < 0.6
    assert ch["reachable_share"] == 0.5
    rows = {r["metric"]: r for r in probe.rows({})}
    assert rows["live_bits"]["value"] == 7 and rows["bit_balance"]["value"] == 0.0


def test_vq_codes_are_not_taken_for_bits_even_with_2_to_the_dim_codes():
    vq = reconstruction.build_quantizer(Cell("t", "usage", "vq", {"codebook_size": 256}, None, {}))[1]
    assert vq.dim == 8  # 2^8 codes of width 8: the sizes alone look like LFQ
    probe = Diagnostics(vq)
    x = torch.randn(400, 8)
    probe.update(x, vq(x).codes)
    assert probe.channels() is None
    assert {r["metric"] for r in probe.rows({})} == {"input_participation_ratio", "input_effective_rank"}


def test_fsq_levels_used_per_channel_and_a_collapsed_direction():
    fsq = reconstruction.build_quantizer(Cell("t", "usage", "fsq", {"levels": [5, 5, 5]}, None, {}))[1]
    assert channel_levels(fsq) == [5, 5, 5]
    probe = Diagnostics(fsq)
    x = torch.randn(2000, 3) * 3
    x[:, 2] = 0.0  # one channel never moves: one level, and no variance in that direction
    probe.update(x, fsq(x).codes)
    ch = probe.channels()
    assert ch["levels_used"] == [5, 5, 1] and ch["entropy_bits"][2] == 0.0
    assert ch["reachable_share"] == pytest.approx(1 / 5)
    spread = probe.spread()
    assert spread["weakest_share"] == pytest.approx(0.0, abs=1e-9)
    assert 1.9 < spread["participation_ratio"] <= 2.0


def test_a_rising_token_curve_marks_utilization_token_limited():
    counter = UsageCounter(1000)
    counter.update(torch.arange(2000) % 100)  # the first half: 100 codes, over and over
    counter.update(torch.arange(2000, 4000) % 1000)  # the second half reaches every code
    stats = counter.figures()
    assert stats["token_curve"]["tokens"] == [250, 1000, 2000, 4000]
    assert stats["token_curve"]["utilization"] == [0.1, 0.1, 0.1, 1.0]
    rows = {r["metric"]: r for r in usage_figures(stats)}
    assert rows["utilization"]["extra"]["token_limited"] is True
    assert "token-limited" in rows["utilization"]["extra"]["warning"]
    assert rows["utilization_token_gain"]["value"] == pytest.approx(0.9)


def test_a_flat_token_curve_is_not_token_limited_and_sparse_counts_agree():
    dense, sparse = UsageCounter(50), UsageCounter(2**13, 4)
    sparse.dense = False  # the sparse path, as for codebooks over DENSE_LIMIT
    sparse._counts = sparse._first = None
    g = torch.Generator().manual_seed(0)
    for _ in range(4):
        dense.update(torch.randint(0, 50, (1000,), generator=g))
        sparse.update(torch.randint(0, 2**13, (1000, 4), generator=g))
    rows = {r["metric"]: r for r in usage_figures(dense.figures())}
    assert rows["utilization"]["extra"]["token_limited"] is False
    assert "warning" not in rows["utilization"]["extra"]
    curve = sparse.figures()["token_curve"]
    assert curve["utilization"][-1] == pytest.approx(sparse.figures()["utilization"])
    assert curve["utilization"] == sorted(curve["utilization"])
