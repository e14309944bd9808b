"""Reconstruction engine: the autoencoder learns, figures are complete, runs repeat exactly."""

from __future__ import annotations

import base64
import math
import struct
from pathlib import Path

import pytest
import torch

from vqbench.datasets._base import make_dataset
from vqbench.suite import reconstruction
from vqbench.suite.autoencoders import auto_downsample
from vqbench.suite.cells import Cell

TOYS = str(Path(__file__).with_name("_engine_toys.py"))


def _low_rank_vectors(n_train=2000, n_eval=1000, dim=24, rank=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(rank, dim, generator=g)
    train = torch.randn(n_train, rank, generator=g) @ mix
    eval = torch.randn(n_eval, rank, generator=g) @ mix
    return make_dataset("lowrank", "vectors", train, eval)


def _blob_images(n_train=256, n_eval=64, size=8, seed=0):
    """Bright squares at random places: easy to learn, clearly image-like."""
    g = torch.Generator().manual_seed(seed)
    n = n_train + n_eval
    images = torch.zeros(n, 1, size, size)
    corners = torch.randint(0, size - 3, (n, 2), generator=g)
    for i, (r, c) in enumerate(corners.tolist()):
        images[i, 0, r : r + 3, c : c + 3] = 1.0
    return make_dataset("blobs", "images", images[:n_train], images[n_train:])


pytestmark = pytest.mark.usefixtures("one_thread")


def _cell(quantizer, config, params=None, dataset="lowrank", seed=0):
    return Cell(
        "test", "reconstruction", f"{TOYS}:{quantizer}", config, dataset, {}, params=params or {}, seed=seed
    )


def _by_metric(rows):
    return {r["metric"]: r for r in rows}


@pytest.fixture(scope="module")
def vector_run():
    cell = _cell(
        "ToyFSQ",
        {"codebook_size": 125},
        {"train_steps": 150, "batch": 64, "hidden": 64, "latent_dim": 4, "tokens_per_sample": 2},
    )
    return _by_metric(reconstruction.measure(cell, data=_low_rank_vectors()))


def test_mlp_autoencoder_learns(vector_run):
    mse, untrained = vector_run["mse"]["value"], vector_run["mse_untrained"]["value"]
    assert untrained > 0.5  # standardized features: an untrained net is near the variance
    assert mse < 0.25 * untrained
    assert vector_run["psnr"]["value"] > vector_run["mse_untrained"]["extra"]["psnr_untrained"] + 6


def test_figures_units_and_context(vector_run):
    expected = {
        "mse": ("mse", False),
        "psnr": ("dB", True),
        "mse_untrained": ("mse", None),
        "bits_per_token": ("bits", None),
        "bits_per_sample": ("bits", None),
        "train_time": ("s", False),
        "utilization": ("ratio", True),
        "perplexity": ("codes", True),
        "perplexity_ratio": ("ratio", True),
        "entropy_bits": ("bits", True),
        "dead_codes": ("codes", False),
        "tokens": ("tokens", None),
        "tokens_per_code": ("ratio", None),
        "train_steps": ("steps", None),
        "utilization_token_gain": ("ratio", None),
        "input_participation_ratio": ("dims", True),
        "input_effective_rank": ("dims", True),
        "levels_used": ("ratio", True),
        "levels_entropy_bits": ("bits", True),
        "reachable_share": ("ratio", True),
    }
    assert {m: (r["unit"], r["higher_is_better"]) for m, r in vector_run.items()} == expected
    assert vector_run["bits_per_token"]["value"] == pytest.approx(math.log2(125))
    assert vector_run["bits_per_sample"]["value"] == pytest.approx(2 * math.log2(125))
    assert vector_run["tokens"]["value"] == 2 * 1000  # every eval sample's tokens counted
    assert vector_run["mse"]["n"] == 1000 and vector_run["mse"]["spread"] >= 0
    assert vector_run["train_time"]["value"] > 0 and vector_run["train_time"]["n"] == 150
    for r in vector_run.values():
        assert math.isfinite(r["value"])


def test_same_cell_same_result():
    cell = _cell("ToyVQ", {"codebook_size": 16}, {"train_steps": 10, "hidden": 16})
    data = _low_rank_vectors(n_train=300, n_eval=200)
    first = _by_metric(reconstruction.measure(cell, data=data))
    second = _by_metric(reconstruction.measure(cell, data=data))
    for metric in ("mse", "psnr", "utilization", "perplexity"):
        assert first[metric]["value"] == second[metric]["value"]


def test_conv_autoencoder_learns_and_stores_a_strip():
    params = {"train_steps": 80, "batch": 32, "channels": 8, "reconstructions": 4}
    cell = _cell("ToyFSQ", {"codebook_size": 125}, params, dataset="blobs")
    rows = _by_metric(reconstruction.measure(cell, data=_blob_images()))
    assert rows["mse"]["value"] < 0.5 * rows["mse_untrained"]["value"]
    extra = rows["psnr"]["extra"]
    assert extra["downsample"] == 2 and extra["token_grid"] == [4, 4]
    assert rows["tokens"]["value"] == 64 * 16
    png = base64.b64decode(extra["reconstructions_png"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (4 * 8, 2 * 8)  # 4 images, originals above reconstructions
    assert len(extra["reconstructions_png"]) < 4000


def test_multi_codebook_usage_is_per_codebook():
    cell = _cell("ToyVQ", {"codebook_size": 16, "num_codebooks": 2}, {"train_steps": 20, "hidden": 32})
    rows = _by_metric(reconstruction.measure(cell, data=_low_rank_vectors(n_train=500, n_eval=400)))
    assert len(rows["utilization"]["extra"]["per_codebook"]) == 2
    assert rows["bits_per_token"]["value"] == pytest.approx(8.0)


def test_aux_loss_weight_changes_training():
    data = _low_rank_vectors(n_train=300, n_eval=200)
    cells = [
        _cell("ToyVQ", {"codebook_size": 16}, {"train_steps": 30, "aux_loss_weight": w, "hidden": 16})
        for w in (0.0, 1.0)
    ]
    runs = [_by_metric(reconstruction.measure(cell, data=data)) for cell in cells]
    assert runs[0]["mse"]["value"] != runs[1]["mse"]["value"]
    assert runs[1]["train_time"]["extra"]["aux_loss_weight"] == 1.0


def test_auto_downsample():
    assert auto_downsample(8, 8) == 2
    assert auto_downsample(16, 16) == 4
    assert auto_downsample(28, 28) == 4
    assert auto_downsample(4, 4) == 1


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"step": 5}, "unknown name.*'step'"),
        ({"batch": -1}, "'batch' must be an integer >= 1"),
        ({"lr": 0}, "'lr' must be a finite number > 0"),
        ({"downsample": 3}, "'downsample' must be a power of two"),
    ],
)
def test_bad_params(params, match):
    with pytest.raises(ValueError, match=match):
        reconstruction.measure(_cell("ToyFSQ", {}, params, dataset="blobs"), data=_blob_images(8, 4))


def test_digits_if_available():
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits

    images = torch.tensor(load_digits().images, dtype=torch.float32).unsqueeze(1) / 16
    data = make_dataset("digits", "images", images[:1400], images[1400:])
    cell = _cell(
        "ToyFSQ", {"codebook_size": 125}, {"train_steps": 40, "batch": 32, "channels": 8}, dataset="digits"
    )
    rows = _by_metric(reconstruction.measure(cell, data=data))
    assert rows["mse"]["value"] < rows["mse_untrained"]["value"]
    assert rows["tokens_per_code"]["value"] >= 10


def test_registered_quantizer_on_registered_digits():
    pytest.importorskip("sklearn")
    cell = Cell(
        "test",
        "reconstruction",
        "fsq",
        {"codebook_size": 256},
        "digits",
        {},
        params={"train_steps": 30, "batch": 32, "channels": 8, "reconstructions": 2},
    )
    rows = _by_metric(reconstruction.measure(cell))
    assert rows["mse"]["value"] < rows["mse_untrained"]["value"]
    size = rows["perplexity"]["extra"]["codebook_size"]  # the levels [8, 6, 5] give 240 codes
    assert rows["bits_per_token"]["value"] == pytest.approx(math.log2(size))
    assert rows["tokens"]["value"] == rows["psnr"]["n"] * 16


def test_the_step_cap_is_read_from_its_earlier_name_too():
    """``steps`` (the step cap's name before ``train_steps``) still sets the cap; giving both is an error."""
    from vqbench.engines import get_engine

    engine = get_engine("reconstruction")
    assert engine.current_params({"steps": 30, "batch": 8}) == {"train_steps": 30, "batch": 8}
    with pytest.raises(ValueError, match="old name of 'train_steps'"):
        engine.current_params({"steps": 30, "train_steps": 40})
    cell = _cell("ToyFSQ", {"codebook_size": 125}, {"steps": 12, "hidden": 16, "eval_every": 0})
    old = _by_metric(reconstruction.measure(cell, data=_low_rank_vectors()))
    assert old["train_steps"]["value"] == 12
