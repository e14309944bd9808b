"""Every registered quantizer, built with its defaults, gets the same protocol checks."""

from __future__ import annotations

import math

import pytest
import torch

from vqbench.quantizers import create_quantizer, get_quantizer_spec, is_quantizer, list_quantizers

NAMES = list_quantizers()
LEADING_SHAPES = [(), (7,), (2, 5), (2, 3, 4)]


@pytest.fixture(params=NAMES)
def name(request) -> str:
    return request.param


@pytest.fixture
def quantizer(name):
    torch.manual_seed(0)
    return create_quantizer(name)


def _inputs(quantizer, *leading, dtype=torch.float32, scale=1.0):
    generator = torch.Generator().manual_seed(1)
    return (torch.randn(*leading, quantizer.dim, generator=generator) * scale).to(dtype)


def _indices_shape(quantizer, leading):
    return tuple(leading) + ((quantizer.num_codebooks,) if quantizer.num_codebooks > 1 else ())


def test_attributes(quantizer):
    assert is_quantizer(quantizer)
    assert isinstance(quantizer.dim, int) and quantizer.dim >= 1
    assert isinstance(quantizer.codebook_size, int) and quantizer.codebook_size >= 2
    assert isinstance(quantizer.num_codebooks, int) and quantizer.num_codebooks >= 1
    expected_bits = quantizer.num_codebooks * math.log2(quantizer.codebook_size)
    assert quantizer.bits_per_token == pytest.approx(expected_bits)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("leading", LEADING_SHAPES, ids=str)
def test_output_shapes_and_dtypes(quantizer, leading, training):
    quantizer.train(training)
    x = _inputs(quantizer, *leading)
    with torch.no_grad():
        codes, indices, loss = quantizer(x)
    assert codes.shape == x.shape and codes.dtype == x.dtype
    assert indices.shape == _indices_shape(quantizer, leading)
    assert not indices.is_floating_point() and not indices.is_complex() and indices.dtype != torch.bool
    assert loss is None or (isinstance(loss, torch.Tensor) and loss.ndim == 0 and loss.is_floating_point())


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16], ids=str)
def test_codes_keep_the_input_dtype(quantizer, dtype):
    quantizer.eval()
    x = _inputs(quantizer, 3, 4, dtype=dtype)
    with torch.no_grad():
        codes, indices, _ = quantizer(x)
    assert codes.dtype == dtype and codes.shape == x.shape
    assert indices.shape == _indices_shape(quantizer, (3, 4))
    assert torch.isfinite(codes.float()).all()


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_indices_in_range(quantizer, training):
    quantizer.train(training)
    x = _inputs(quantizer, 256, scale=3.0)
    with torch.no_grad():
        indices = quantizer(x).indices
    assert int(indices.min()) >= 0 and int(indices.max()) < quantizer.codebook_size


def test_gradients_reach_the_input_in_train_mode(quantizer):
    quantizer.train()
    x = _inputs(quantizer, 4, 6).requires_grad_()
    codes, _, loss = quantizer(x)
    weights = torch.randn_like(codes)
    objective = (codes * weights).sum()
    if loss is not None and loss.requires_grad:
        objective = objective + loss
    objective.backward()
    assert x.grad is not None, "no gradient reached the input"
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_deterministic_in_eval_mode(quantizer):
    quantizer.eval()
    x = _inputs(quantizer, 5, 3)
    with torch.no_grad():
        first, second = quantizer(x), quantizer(x.clone())
    assert torch.equal(first.codes, second.codes)
    assert torch.equal(first.indices, second.indices)


@pytest.mark.parametrize("leading", [(9,), (2, 3, 4)], ids=str)
def test_round_trip(name, quantizer, leading):
    quantizer.eval()
    x = _inputs(quantizer, *leading)
    with torch.no_grad():
        codes, indices, _ = quantizer(x)
        try:
            decoded = quantizer.indices_to_codes(indices)
        except NotImplementedError:
            pytest.skip(f"{name} does not define indices_to_codes")
    assert decoded.shape == codes.shape
    decoded = decoded.to(codes.dtype)
    if get_quantizer_spec(name).family == "fsq":  # FSQ-like: an implicit grid, exact
        assert torch.equal(decoded, codes)
    else:  # a looked-up or summed codebook: equal up to float rounding
        torch.testing.assert_close(decoded, codes, rtol=1e-5, atol=1e-5)


def test_bad_input_raises_clear_errors(quantizer):
    wrong_dim = torch.randn(4, quantizer.dim + 1)
    with pytest.raises(ValueError, match=str(quantizer.dim)):
        quantizer(wrong_dim)
    with pytest.raises(TypeError):
        quantizer(torch.ones(4, quantizer.dim, dtype=torch.long))
