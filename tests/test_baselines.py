"""The vector-quantize-pytorch adapters: operating points, defaults, options, errors, and the
upstream quirks that the adapters work around."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vqbench.quantizers import create_quantizer, recommended_levels

BASELINES = [
    "fsq-upstream",
    "vq",
    "vq-plain",
    "vq-cosine",
    "lfq",
    "bsq",
    "residual-vq",
    "residual-fsq",
    "residual-lfq",
    "simvq",
    "latent-quantize",
]
FSQ_LIKE = ["fsq-upstream", "residual-fsq", "latent-quantize"]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pydoc_minilm_embeddings.npy"


def _round_trip_error(quantizer, x) -> float:
    quantizer.eval()
    with torch.no_grad():
        out = quantizer(x)
        return float((quantizer.indices_to_codes(out.indices) - out.codes).abs().max())


# -- operating points -------------------------------------------------------------------------


@pytest.mark.parametrize("name", FSQ_LIKE)
@pytest.mark.parametrize("exponent", [8, 10, 12, 14, 16])
def test_fsq_like_operating_points_use_the_paper_levels(name, exponent):
    levels = recommended_levels(2**exponent)
    quantizer = create_quantizer(name, codebook_size=2**exponent)
    assert quantizer.codebook_size == math.prod(levels)
    assert quantizer.dim == len(levels)
    per_token = quantizer.num_codebooks * math.log2(math.prod(levels))
    assert quantizer.bits_per_token == pytest.approx(per_token)


@pytest.mark.parametrize("name", ["vq", "vq-cosine", "simvq", "lfq", "bsq", "residual-vq", "residual-lfq"])
def test_learned_and_lookup_free_take_the_size_directly(name):
    quantizer = create_quantizer(name, codebook_size=256)
    assert quantizer.codebook_size == 256
    assert quantizer.bits_per_token == pytest.approx(8 * quantizer.num_codebooks)
    x = torch.randn(300, quantizer.dim) * 3
    with torch.no_grad():
        indices = quantizer.eval()(x).indices
    assert int(indices.max()) < 256


def test_default_operating_points():
    sizes = {name: create_quantizer(name) for name in BASELINES}
    assert {n: (q.codebook_size, q.dim, q.num_codebooks) for n, q in sizes.items()} == {
        "fsq-upstream": (1000, 4, 1),
        "vq": (1024, 8, 1),
        "vq-plain": (1024, 8, 1),
        "vq-cosine": (1024, 8, 1),
        "lfq": (1024, 10, 1),
        "bsq": (1024, 10, 1),
        "residual-vq": (1024, 8, 4),
        "residual-fsq": (1000, 4, 4),
        "residual-lfq": (1024, 10, 4),
        "simvq": (1024, 8, 1),
        "latent-quantize": (1000, 4, 1),
    }


def test_explicit_levels():
    quantizer = create_quantizer("fsq-upstream", levels=[5, 5, 3])
    assert (quantizer.codebook_size, quantizer.dim) == (75, 3)
    with pytest.raises(ValueError, match="either codebook_size .* or levels"):
        create_quantizer("fsq-upstream", levels=[5, 5], codebook_size=25)


# -- defaults and the config they record ------------------------------------------------------


def test_paper_defaults_are_applied_and_overridable():
    vq = create_quantizer("vq")
    assert vq.config["commitment_weight"] == 0.25 and vq.config["decay"] == 0.99
    assert vq.config["kmeans_init"] is False and vq.config["rotation_trick"] is False
    assert vq.inner.commitment_weight == 0.25 and vq.inner._codebook.decay == 0.99
    lfq = create_quantizer("lfq")
    assert (lfq.inner.entropy_loss_weight, lfq.inner.diversity_gamma, lfq.inner.commitment_loss_weight) == (
        0.1,
        1.0,
        0.25,
    )
    assert create_quantizer("vq-cosine").inner.use_cosine_sim
    assert create_quantizer("bsq").inner.spherical
    assert create_quantizer("vq", commitment_weight=1.0).inner.commitment_weight == 1.0
    assert create_quantizer("residual-vq").inner.layers[0]._codebook.decay == 0.99
    assert create_quantizer("residual-lfq").inner.layers[0].entropy_loss_weight == 0.1
    assert lfq.inv_temperature == 100.0


@pytest.mark.parametrize("name", ["vq", "vq-cosine", "residual-vq"])
def test_vq_family_replaces_dead_codes_by_default(name):
    quantizer = create_quantizer(name)
    books = [m for m in quantizer.modules() if hasattr(m, "has_dead_code_replacement")]
    assert quantizer.config["threshold_ema_dead_code"] == 2
    assert books and all(b.has_dead_code_replacement for b in books)
    plain = create_quantizer("vq-plain")
    assert not any(getattr(m, "has_dead_code_replacement", False) for m in plain.modules())


@pytest.mark.parametrize(
    ("name", "size", "tokens", "threshold"),
    [("vq", 16, 4096, 2.0), ("residual-vq", 16, 4096, 2.0), ("vq", 1024, 256, 0.25 * 256 / 1024)],
)
def test_the_declared_dead_code_counts_are_what_upstream_applies(name, size, tokens, threshold):
    """1.32 reads counts; 1.34 ratios of the mean EMA count: either way a code restarts below the
    declared count (capped at dead_code_share of a uniform code's) and restarts with the count 2."""
    torch.manual_seed(0)
    quantizer = create_quantizer(name, codebook_size=size).train()
    with torch.no_grad():
        quantizer(torch.randn(tokens, quantizer.dim))  # seeds the codebook, as upstream's first batch
        books = [m for m in quantizer.modules() if hasattr(m, "has_dead_code_replacement")]
        means = [b.cluster_size.mean() for b in books]
        quantizer(torch.randn(tokens, quantizer.dim))
    for book, before in zip(books, means, strict=True):
        if hasattr(book, "dead_code_threshold_ratio"):  # counts, as ratios of the updated mean
            expected_mean = book.decay * before + (1 - book.decay) * tokens / size
            applied = float(expected_mean * book.dead_code_threshold_ratio)
            reset = float(expected_mean * book.reset_cluster_size_ratio)
        else:
            applied, reset = float(book.threshold_ema_dead_code), float(book.reset_cluster_size)
        assert applied == pytest.approx(threshold, rel=1e-5)
        assert reset == pytest.approx(2.0, rel=1e-5)


def test_bsq_uses_the_authors_settings():
    bsq = create_quantizer("bsq")
    assert bsq.inner.spherical and bsq.inv_temperature == 1.0
    assert (bsq.inner.entropy_loss_weight, bsq.inner.diversity_gamma, bsq.inner.commitment_loss_weight) == (
        0.1,
        1.0,
        0.0,
    )
    assert bsq.config["inv_temperature"] == 1.0
    tuned = create_quantizer("bsq", inv_temperature=100.0, commitment_loss_weight=0.25)
    assert tuned.inv_temperature == 100.0 and tuned.inner.commitment_loss_weight == 0.25


def _codes_used(quantizer, x) -> int:
    with torch.no_grad():
        return int(quantizer.eval()(x).indices.unique().numel())


@pytest.mark.parametrize("threshold", [2, 0])
def test_dead_code_replacement_revives_a_codebook_far_from_the_data(threshold):
    # the initial codes lie near the origin; the data far from it: without replacement one code
    # takes every vector and the EMA never moves the others
    torch.manual_seed(0)
    quantizer = create_quantizer("vq", codebook_size=32, threshold_ema_dead_code=threshold)
    data = torch.randn(512, 8) + 6
    for step in range(5):
        with torch.no_grad():
            quantizer.train()(data[step * 64 : (step + 1) * 64])
    used = _codes_used(quantizer, data)
    assert used >= 16 if threshold else used <= 2


@pytest.mark.parametrize("name", ["vq", "residual-vq"])
def test_kmeans_init_waits_for_a_training_batch(name):
    torch.manual_seed(0)
    quantizer = create_quantizer(name, codebook_size=16, kmeans_init=True)
    books = [m for m in quantizer.modules() if hasattr(m, "initted")]
    with torch.no_grad():
        quantizer.eval()(torch.randn(0, 8))  # empty input: an eval probe
        quantizer.eval()(torch.randn(32, 8) - 5)  # "evaluation data" before training
    assert not any(bool(b.initted) for b in books)
    with torch.no_grad():
        quantizer.train()(torch.randn(64, 8) + 5)
    assert all(bool(b.initted) for b in books)
    first = books[0].embed
    assert float(first.mean()) == pytest.approx(5.0, abs=0.5)  # fitted to the training batch


def test_bsq_codes_lie_on_the_unit_sphere():
    quantizer = create_quantizer("bsq").eval()
    with torch.no_grad():
        codes = quantizer(torch.randn(20, 10) * 5).codes
    torch.testing.assert_close(codes.norm(dim=-1), torch.ones(20))
    torch.testing.assert_close(codes.abs(), torch.full_like(codes, 10**-0.5))


# -- options ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BASELINES)
def test_input_dim_with_projections(name):
    quantizer = create_quantizer(name, dim=16)
    assert quantizer.dim == 16
    x = torch.randn(3, 5, 16)
    quantizer.train()
    codes = quantizer(x).codes  # x itself needs no gradient
    assert codes.shape == x.shape
    codes.sum().backward()
    weights = [p for n, p in quantizer.named_parameters() if "project_in" in n and n.endswith("weight")]
    assert weights and weights[0].grad is not None and weights[0].grad.abs().sum() > 0
    assert _round_trip_error(quantizer, x) < 1e-5


@pytest.mark.parametrize(
    ("name", "options", "books"),
    [
        ("fsq-upstream", {"num_codebooks": 2}, 2),
        ("latent-quantize", {"num_codebooks": 2}, 2),
        ("lfq", {"num_codebooks": 3, "codebook_size": 16}, 3),
        ("vq", {"heads": 2}, 2),
        ("vq", {"heads": 2, "separate_codebook_per_head": True}, 2),
        ("residual-vq", {"num_quantizers": 2}, 2),
    ],
)
def test_several_codebooks(name, options, books):
    quantizer = create_quantizer(name, **options)
    assert quantizer.num_codebooks == books
    x = torch.randn(2, 7, quantizer.dim)
    with torch.no_grad():
        indices = quantizer.eval()(x).indices
    assert indices.shape == (2, 7, books)
    assert _round_trip_error(quantizer, x) < 1e-6
    with pytest.raises(ValueError, match=f"expected indices of shape \\(\\.\\.\\., {books}\\)"):
        quantizer.indices_to_codes(indices[..., 0])


@pytest.mark.parametrize("name", ["residual-vq", "residual-fsq", "residual-lfq"])
def test_single_residual_level_drops_the_codebook_axis(name):
    quantizer = create_quantizer(name, num_quantizers=1)
    x = torch.randn(6, quantizer.dim)
    with torch.no_grad():
        assert quantizer.eval()(x).indices.shape == (6,)
    assert _round_trip_error(quantizer, x) < 1e-6


def test_module_dtype_sets_the_quantization_dtype():
    quantizer = create_quantizer("vq").double().eval()
    x = torch.randn(4, 8, dtype=torch.float64)
    with torch.no_grad():
        out = quantizer(x)
    assert out.codes.dtype == torch.float64
    assert quantizer.indices_to_codes(out.indices).dtype == torch.float64


@pytest.mark.parametrize("name", BASELINES)
def test_empty_input(name):
    quantizer = create_quantizer(name).train()
    state = {k: v.clone() for k, v in quantizer.state_dict().items()}
    x = torch.randn(0, 3, quantizer.dim, requires_grad=True)
    codes, indices, loss = quantizer(x)
    assert codes.shape == x.shape and codes.requires_grad
    books = (quantizer.num_codebooks,) if quantizer.num_codebooks > 1 else ()
    assert indices.shape == (0, 3, *books) and not indices.is_floating_point()
    assert loss is None or float(loss) == 0.0
    assert quantizer.training
    assert all(torch.equal(v, state[k]) for k, v in quantizer.state_dict().items())


# -- losses -----------------------------------------------------------------------------------


def test_residual_losses_are_summed_over_levels():
    torch.manual_seed(0)
    quantizer = create_quantizer("residual-vq").train()
    x = torch.randn(4, 8, requires_grad=True)
    state = {k: v.clone() for k, v in quantizer.state_dict().items()}
    loss = quantizer(x).loss
    quantizer.load_state_dict(state)  # undo the EMA step, then ask upstream for the per-level losses
    per_level = quantizer.inner(x[None])[2]
    assert loss.ndim == 0 and per_level.shape == (4,)
    torch.testing.assert_close(loss, per_level.sum())


def test_eval_losses_are_detached():
    # upstream VQ marks its shared zero buffer as requiring grad in train mode and returns it in eval
    quantizer = create_quantizer("vq")
    quantizer.train()(torch.randn(4, 8, requires_grad=True))
    loss = quantizer.eval()(torch.randn(4, 8)).loss
    assert loss is not None and not loss.requires_grad


def test_vq_codebook_moves_by_ema_in_train_mode_only():
    quantizer = create_quantizer("vq", codebook_size=16)
    everything = torch.arange(16)
    before = quantizer.indices_to_codes(everything).clone()
    with torch.no_grad():
        quantizer.eval()(torch.randn(64, 8))
    assert torch.equal(quantizer.indices_to_codes(everything), before)
    with torch.no_grad():
        quantizer.train()(torch.randn(64, 8))
    assert not torch.equal(quantizer.indices_to_codes(everything), before)


def test_latent_quantize_learns_its_values_and_keeps_an_exact_round_trip():
    # upstream detaches the values in its straight-through step and decodes through the initial grid
    torch.manual_seed(0)
    quantizer = create_quantizer("latent-quantize").train()
    optimizer = torch.optim.SGD(quantizer.parameters(), lr=0.5)
    x = torch.randn(64, 4) * 0.3
    for _ in range(3):
        optimizer.zero_grad()
        out = quantizer(x)
        (out.loss + out.codes.square().mean()).backward()
        assert all(v.grad is not None and v.grad.abs().sum() > 0 for v in quantizer.inner.values_per_latent)
        optimizer.step()
    moved = [v.detach() for v in quantizer.inner.values_per_latent]
    initial = [torch.arange(8) / 8 - 0.5, torch.linspace(-0.5, 0.5, 5)]  # levels 8 and 5: the grid
    assert not torch.allclose(moved[0], initial[0]) and not torch.allclose(moved[1], initial[1])
    quantizer.eval()
    with torch.no_grad():
        out = quantizer(x)
        decoded = quantizer.indices_to_codes(out.indices)
    assert torch.equal(decoded, out.codes)
    assert int(out.indices.min()) >= 0 and int(out.indices.max()) < quantizer.codebook_size


# -- bad configuration ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["lfq", "bsq", "residual-lfq"])
def test_lookup_free_needs_a_power_of_two(name):
    with pytest.raises(ValueError, match="power of two.*got 1000; try 512 or 1024"):
        create_quantizer(name, codebook_size=1000)


@pytest.mark.parametrize(
    ("name", "options", "error", "message"),
    [
        (
            "fsq-upstream",
            {"codebook_size": 3000},
            ValueError,
            "no recommended FSQ levels for codebook_size=3000",
        ),
        ("vq", {"codebook_size": 1}, ValueError, "codebook_size must be an integer >= 2, got 1"),
        ("vq", {"codebook_size": 2.5}, ValueError, "codebook_size must be an integer"),
        ("vq", {"dim": 0}, ValueError, "dim must be an integer >= 1"),
        ("fsq-upstream", {"levels": [1, 5]}, ValueError, "each level must be an integer >= 2"),
        (
            "fsq-upstream",
            {"levels": [2, 5]},
            ValueError,
            "FSQ of vector-quantize-pytorch .* rejected config .*preserve_symmetry",
        ),
        ("lfq", {"channel_first": True}, ValueError, "channel_first=True is not configurable"),
        ("vq", {"accept_image_fmap": True}, ValueError, "channel-last"),
        ("fsq-upstream", {"return_indices": False}, ValueError, "always return indices"),
        ("fsq-upstream", {"num_codebooks": 2, "keep_num_codebooks_dim": False}, ValueError, "conflicts"),
        ("latent-quantize", {"in_place_codebook_optimizer": torch.optim.SGD}, ValueError, "not supported"),
        (
            "vq",
            {"no_such_option": 1},
            TypeError,
            "VectorQuantize of vector-quantize-pytorch .* does not accept .* it takes: dim, codebook_size",
        ),
    ],
)
def test_bad_configuration_is_explained(name, options, error, message):
    with pytest.raises(error, match=message):
        create_quantizer(name, **options)


@pytest.mark.parametrize("name", ["vq", "fsq-upstream"])
def test_bad_indices_are_explained(name):
    quantizer = create_quantizer(name)
    with pytest.raises(TypeError, match="integer tensor of indices, got dtype torch.float32"):
        quantizer.indices_to_codes(torch.zeros(3))
    with pytest.raises(TypeError, match="torch.Tensor"):
        quantizer.indices_to_codes([1, 2])


# -- real data --------------------------------------------------------------------------------


@pytest.mark.skipif(not DATA.exists(), reason=f"shared test data not found at {DATA}")
@pytest.mark.parametrize("name", ["vq", "lfq", "fsq-upstream"])
def test_real_embeddings(name):
    embeddings = torch.from_numpy(np.load(DATA)[:512]).float()
    quantizer = create_quantizer(name, dim=embeddings.shape[1]).eval()
    with torch.no_grad():
        out = quantizer(embeddings)
    assert out.codes.shape == embeddings.shape and out.indices.shape == (512,)
    assert torch.isfinite(out.codes).all()
    assert int(out.indices.min()) >= 0 and int(out.indices.max()) < quantizer.codebook_size
    assert _round_trip_error(quantizer, embeddings) < 1e-5
