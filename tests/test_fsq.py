"""vqbench's FSQ against vector_quantize_pytorch.FSQ: same codes, indices and gradients; its own API.

The drop-in surface (layouts, methods, upstream's own classes built on it) is in test_fsq_dropin.py;
whole-graph use (compile, export, trace, CUDA graphs) in test_fsq_compile.py.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vector_quantize_pytorch import FSQ as UpstreamFSQ

from vqbench.quantizers import QuantizerOutput, create_quantizer
from vqbench.quantizers.fsq import FSQ, RECOMMENDED_LEVELS, kernel_constants, paths

PRESETS = [list(levels) for levels in RECOMMENDED_LEVELS.values()]
PATHS = FSQ.available_backends("cpu")  # reference, torch, and cpu where a C compiler exists


def _ids(levels) -> str:
    return "x".join(map(str, levels))


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _pair(levels, backend: str, **options) -> tuple[FSQ, UpstreamFSQ]:
    """vqbench's FSQ and upstream's with the same options and the same weights."""
    upstream = UpstreamFSQ(levels, **options)
    ours = FSQ(levels, backend=backend, **options)
    ours.load_state_dict(upstream.state_dict())
    return ours, upstream


def _assert_same(ours_out, upstream_out) -> None:
    codes, indices = ours_out[0], ours_out[1]
    up_codes, up_indices = upstream_out
    assert codes.dtype == up_codes.dtype and codes.shape == up_codes.shape
    assert torch.equal(codes, up_codes), f"{int((codes != up_codes).sum())} codes differ"
    if up_indices is None:
        assert indices is None
    else:
        assert indices.dtype == up_indices.dtype and indices.shape == up_indices.shape
        assert torch.equal(indices, up_indices), f"{int((indices != up_indices).sum())} indices differ"


# -- bit-identity with upstream ------------------------------------------------------------


@pytest.mark.parametrize("backend", PATHS)
@pytest.mark.parametrize("levels", PRESETS, ids=_ids)
def test_presets_match_upstream(levels, backend):
    ours, upstream = _pair(levels, backend)
    x = torch.randn(3, 20_000, len(levels), generator=_gen()) * 1.5
    x[0, :100] *= 1e4  # saturated inputs too
    with torch.no_grad():
        _assert_same(ours(x), upstream(x))
    assert ours.last_backend == backend


@pytest.mark.parametrize("backend", PATHS)
def test_several_codebooks_match_upstream(backend):
    ours, upstream = _pair([8, 5, 5, 5], backend, num_codebooks=3)
    x = torch.randn(2, 500, 12, generator=_gen(1)) * 2
    with torch.no_grad():
        out = ours(x)
        _assert_same(out, upstream(x))
    assert out.indices.shape == (2, 500, 3)


@pytest.mark.parametrize("backend", PATHS)
@pytest.mark.parametrize("shape", [(2, 4, 6, 5), (2, 4, 3, 5, 2)], ids=["image", "video"])
def test_channel_first_matches_upstream(backend, shape):
    upstream = UpstreamFSQ([8, 5, 5, 5])  # upstream treats ndim >= 4 as (b, d, ...)
    x = torch.randn(*shape, generator=_gen(2)) * 2
    for channel_first in (True, False):
        ours = FSQ([8, 5, 5, 5], backend=backend, channel_first=channel_first)
        with torch.no_grad():
            _assert_same(ours(x), upstream(x))


@pytest.mark.parametrize("backend", PATHS)
def test_channel_first_sequence_matches_upstream(backend):
    ours, upstream = _pair([7, 5, 5, 5, 5], backend, channel_first=True, dim=8)
    x = torch.randn(3, 8, 40, generator=_gen(3))  # (b, d, n)
    with torch.no_grad():
        out = ours(x)
        _assert_same(out, upstream(x))
    assert out.codes.shape == x.shape and out.indices.shape == (3, 40)


@pytest.mark.parametrize("backend", PATHS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_half_precision_matches_upstream(backend, dtype):
    ours, upstream = _pair([8, 8, 8, 6, 5], backend)
    x = (torch.randn(2, 4000, 5, generator=_gen(4)) * 2).to(dtype)
    with torch.no_grad():
        out = ours(x)
        _assert_same(out, upstream(x))
    assert out.codes.dtype == dtype
    assert ours.last_backend == backend  # quantized in float32, as upstream does


def test_float64_matches_upstream():
    x = torch.randn(2, 3000, 4, generator=_gen(5), dtype=torch.float64) * 2
    for backend in ("reference", "torch"):
        ours, upstream = _pair([8, 5, 5, 5], backend)
        with torch.no_grad():
            _assert_same(ours(x), upstream(x))
    auto = FSQ([8, 5, 5, 5])
    with torch.no_grad():
        _assert_same(auto(x), upstream(x))
    assert auto.last_backend == "torch"  # the kernels compute in float32 only


def test_unforced_half_precision_matches_upstream():
    """Without force_quantization_f32 the symmetric bound runs partly in bfloat16, as upstream."""
    x = (torch.randn(2, 2000, 4, generator=_gen(6)) * 2).to(torch.bfloat16)
    for sym in (False, True):
        options = dict(force_quantization_f32=False, preserve_symmetry=sym)
        ours, upstream = _pair([8, 5, 5, 5], "auto", **options)
        with torch.no_grad():
            _assert_same(ours(x), upstream(x))


OPTIONS = [
    dict(preserve_symmetry=True),
    dict(preserve_symmetry=True, bound_hard_clamp=True),
    dict(bound_hard_clamp=True),
    dict(dim=16),
    dict(dim=16, projection_has_bias=False),
    dict(orthogonal_rotation=True),
    dict(return_indices=False),
    dict(keep_num_codebooks_dim=True),
    dict(num_codebooks=2, dim=7),
]


@pytest.mark.filterwarnings("ignore:orthogonal_rotation")
@pytest.mark.parametrize("backend", PATHS)
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_options_match_upstream(backend, options):
    levels = [8, 6, 5] if not options.get("preserve_symmetry") else [2, 4, 5]
    torch.manual_seed(0)
    ours, upstream = _pair(levels, backend, **options)
    x = torch.randn(2, 3000, ours.dim, generator=_gen(7)) * 2
    with torch.no_grad():
        _assert_same(ours(x), upstream(x))


@pytest.mark.parametrize("backend", PATHS)
def test_noise_dropout_draws_like_upstream(backend):
    ours, upstream = _pair([4, 5, 5], backend, preserve_symmetry=True, noise_dropout=0.5)
    x = torch.randn(2, 2000, 3, generator=_gen(8))
    ours.train(), upstream.train()
    torch.manual_seed(11)
    expected = upstream(x)
    torch.manual_seed(11)
    _assert_same(ours(x), expected)
    ours.eval(), upstream.eval()
    with torch.no_grad():
        _assert_same(ours(x), upstream(x))  # no noise in eval mode


# -- gradients -----------------------------------------------------------------------------


GRAD_OPTIONS = [
    dict(),
    dict(preserve_symmetry=True),
    dict(bound_hard_clamp=True),
    dict(preserve_symmetry=True, bound_hard_clamp=True),
    dict(dim=9),
    dict(return_indices=False),
]


@pytest.mark.parametrize("backend", PATHS)
@pytest.mark.parametrize("options", GRAD_OPTIONS, ids=lambda o: ",".join(o) or "default")
def test_gradients_match_upstream(backend, options):
    levels = [8, 5, 5, 5]
    torch.manual_seed(0)
    ours, upstream = _pair(levels, backend, **options)
    ours.train(), upstream.train()
    x = torch.randn(2, 3000, ours.dim, generator=_gen(9)) * 2
    weights = torch.randn(x.shape, generator=_gen(10))
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = ours(x1)
    _assert_same(out, upstream(x2))
    out[0].backward(weights)
    upstream(x2)[0].backward(weights)
    assert torch.equal(x1.grad, x2.grad)
    for (name, p1), (_, p2) in zip(ours.named_parameters(), upstream.named_parameters(), strict=True):
        assert torch.equal(p1.grad, p2.grad), name
    assert ours.last_backend == backend


@pytest.mark.parametrize("backend", PATHS)
def test_gradients_pass_straight_through_the_rounding(backend):
    """d codes / d z is the bound's derivative alone: rounding passes gradients unchanged."""
    fsq = FSQ([8, 5, 5, 5], backend=backend)
    z = torch.randn(500, 4, generator=_gen(12)).requires_grad_()
    fsq(z).codes.sum().backward()
    p = kernel_constants(fsq, z.device).params
    y = torch.tanh(z.detach().double() + p.shift.double())
    expected = (1 - y * y) * p.half_l.double() / p.half_width.double()
    torch.testing.assert_close(z.grad.double(), expected, rtol=1e-5, atol=1e-6)
    assert bool((z.grad > 0).all())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=str)
def test_gradients_reach_bf16_inputs_and_projections(dtype):
    fsq = FSQ(codebook_size=2**12, dim=32).to(dtype)
    x = torch.randn(4, 10, 32, generator=_gen(13)).to(dtype).requires_grad_()
    out = fsq(x)
    assert out.codes.dtype == dtype
    out.codes.float().square().sum().backward()
    assert x.grad is not None and x.grad.dtype == dtype and bool(x.grad.abs().sum() > 0)
    assert fsq.project_in.weight.grad is not None


# -- codes and indices ---------------------------------------------------------------------


@pytest.mark.parametrize("levels", PRESETS, ids=_ids)
def test_exhaustive_round_trip(levels):
    fsq = FSQ(levels)
    upstream = UpstreamFSQ(levels)
    every = torch.arange(fsq.codebook_size)
    codes = fsq.indices_to_codes(every)
    assert codes.shape == (fsq.codebook_size, len(levels))
    assert torch.equal(codes, upstream.indices_to_codes(every))
    assert torch.equal(codes, fsq.implicit_codebook)
    assert torch.equal(fsq.implicit_codebook, upstream.implicit_codebook)
    assert torch.equal(fsq.codes_to_indices(codes), every.to(torch.int32))
    assert torch.equal(fsq.indices_to_level_indices(every), upstream.indices_to_level_indices(every))
    assert len(torch.unique(codes, dim=0)) == fsq.codebook_size  # every index its own code


@pytest.mark.parametrize("backend", PATHS)
def test_forward_codes_decode_from_indices(backend):
    fsq = FSQ([8, 5, 5, 5], num_codebooks=2, dim=12, backend=backend).eval()
    x = torch.randn(3, 7, 12, generator=_gen(14)) * 2
    with torch.no_grad():
        out = fsq(x)
        assert torch.equal(fsq.indices_to_codes(out.indices), out.codes)


def test_channel_first_decode_matches_upstream():
    upstream = UpstreamFSQ([8, 5, 5, 5])
    ours = FSQ([8, 5, 5, 5])
    x = torch.randn(2, 4, 3, 5, generator=_gen(15))
    with torch.no_grad():
        out = ours(x)
    assert torch.equal(ours.indices_to_codes(out.indices), upstream.indices_to_codes(out.indices))
    assert torch.equal(ours.indices_to_codes(out.indices), out.codes)


def test_large_codebook_indices_are_exact():
    """Upstream sums float32 and loses indices above 2^24 codes; vqbench's FSQ does not."""
    levels = [17] * 7  # 410,338,673 codes
    fsq = FSQ(levels)
    picks = torch.tensor([0, 1, 2**24 + 1, 2**27 + 12345, fsq.codebook_size - 1])
    codes = fsq.indices_to_codes(picks)
    assert torch.equal(fsq.codes_to_indices(codes), picks.to(torch.int32))
    with torch.no_grad():
        for backend in PATHS:
            out = FSQ(levels, backend=backend)(_preimage(fsq, codes))
            assert torch.equal(out.indices, picks.to(torch.int32)), backend


def _preimage(fsq: FSQ, codes: torch.Tensor) -> torch.Tensor:
    """An input whose quantization gives ``codes`` (the bound's inverse at the code values)."""
    p = kernel_constants(fsq, codes.device).params
    return torch.atanh((codes * p.half_width + p.offset) / p.half_l) - p.shift


# -- property tests over random level lists ------------------------------------------------


@st.composite
def level_lists(draw, max_size: int = 2**20):
    symmetric = draw(st.booleans())
    low = 2 if symmetric else 3
    levels = draw(st.lists(st.integers(low, 12), min_size=1, max_size=6))
    while math.prod(levels) > max_size:
        levels = levels[:-1]
    return levels, symmetric


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(level_lists(), st.integers(0, 2**31 - 1), st.sampled_from([0.5, 2.0, 50.0]))
def test_random_levels_match_upstream(case, seed, spread):
    levels, symmetric = case
    upstream = UpstreamFSQ(levels, preserve_symmetry=symmetric)
    x = torch.randn(1, 2000, len(levels), generator=_gen(seed)) * spread
    with torch.no_grad():
        expected = upstream(x)
        for backend in PATHS:
            fsq = FSQ(levels, preserve_symmetry=symmetric, backend=backend)
            out = fsq(x)
            _assert_same(out, expected)
            assert int(out.indices.min()) >= 0 and int(out.indices.max()) < fsq.codebook_size
            assert torch.equal(fsq.indices_to_codes(out.indices), out.codes)


@settings(max_examples=40, deadline=None)
@given(level_lists(max_size=2**15))
def test_random_levels_round_trip(case):
    levels, symmetric = case
    fsq = FSQ(levels, preserve_symmetry=symmetric)
    every = torch.arange(fsq.codebook_size)
    codes = fsq.indices_to_codes(every)
    assert torch.equal(fsq.codes_to_indices(codes), every.to(torch.int32))
    assert float(codes.min()) >= -1.0 and float(codes.max()) <= 1.0
    for channel, level in enumerate(levels):  # each channel uses exactly its L levels
        assert len(torch.unique(codes[:, channel])) == level
    assert fsq.codebook_size == math.prod(levels)


# -- construction and the protocol ---------------------------------------------------------


def test_registry_builds_operating_points():
    for size, levels in RECOMMENDED_LEVELS.items():
        fsq = create_quantizer("fsq", codebook_size=size)
        assert isinstance(fsq.inner, FSQ) and fsq.inner.levels == list(levels)
        assert fsq.codebook_size == math.prod(levels) and fsq.dim == len(levels)
        assert fsq.bits_per_token == pytest.approx(math.log2(math.prod(levels)))
    default = create_quantizer("fsq")
    assert default.inner.levels == [8, 5, 5, 5] and default.num_codebooks == 1
    several = create_quantizer("fsq", levels=[8, 5, 5, 5], num_codebooks=3, backend="torch")
    assert several.bits_per_token == pytest.approx(3 * math.log2(1000)) and several.inner.backend == "torch"


def test_registry_fsq_is_channel_last_with_any_leading_axes():
    """The suite's ``fsq`` takes (..., dim) at any rank; 4D input is not read as channel-first."""
    fsq = create_quantizer("fsq", levels=[8, 5, 5, 5])
    library = FSQ([8, 5, 5, 5])
    for lead in [(), (5,), (2, 3), (2, 3, 4), (1, 2, 1, 3)]:
        x = torch.randn(*lead, 4, generator=_gen(16))
        out = fsq(x)
        assert isinstance(out, QuantizerOutput) and out.loss is None
        assert out.codes.shape == x.shape and out.indices.shape == lead
        codes, indices = library(x.reshape(1, -1, 4))
        assert torch.equal(out.codes.reshape(-1, 4), codes[0])
        assert torch.equal(out.indices.reshape(-1), indices[0])
        assert torch.equal(fsq.indices_to_codes(out.indices), out.codes)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(channel_first=True), r"channel_first=True is not configurable"),
        (dict(return_indices=False), r"return_indices=False is not configurable"),
        (dict(num_codebooks=2, keep_num_codebooks_dim=False), r"conflicts with the protocol"),
    ],
)
def test_registry_fsq_rejects_layout_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_quantizer("fsq", **kwargs)


def test_empty_input():
    fsq = FSQ([8, 5, 5, 5], num_codebooks=2)
    out = fsq(torch.zeros(0, 3, 8))
    assert out.codes.shape == (0, 3, 8) and out.indices.shape == (0, 3, 2)


def test_drop_in_attributes():
    ours, upstream = FSQ([8, 5, 5, 5], dim=10), UpstreamFSQ([8, 5, 5, 5], dim=10)
    for name in (
        "dim",
        "codebook_dim",
        "effective_codebook_dim",
        "num_codebooks",
        "codebook_size",
        "keep_num_codebooks_dim",
        "has_projections",
        "return_indices",
        "preserve_symmetry",
    ):
        assert getattr(ours, name) == getattr(upstream, name), name
    assert torch.equal(ours._levels, upstream._levels) and torch.equal(ours._basis, upstream._basis)
    assert set(ours.state_dict()) == set(upstream.state_dict())
    assert FSQ.BACKENDS == ("reference", "torch", "cpu", "triton")


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(levels=[]), ValueError, r"non-empty"),
        (dict(levels=[8, 5.5]), TypeError, r"integer.*5\.5"),
        (dict(levels=[8, 5.0]), TypeError, r"integer"),
        (dict(levels=[8, True]), TypeError, r"integer"),
        (dict(levels="855"), TypeError, r"list or tuple.*str"),
        (dict(levels=[8, 1]), ValueError, r">= 2, got 1"),
        (dict(levels=[8, 0]), ValueError, r">= 2, got 0"),
        (dict(levels=[8, 2]), ValueError, r"preserve_symmetry"),
        (dict(levels=[2**32, 2**32]), ValueError, r"int64.*2\^63"),
        (dict(levels=[8, 5], codebook_size=40), ValueError, r"either codebook_size"),
        (dict(codebook_size=1000), ValueError, r"2\^10"),
        (dict(levels=[8, 5], dim=0), ValueError, r"dim must be.*>= 1, got 0"),
        (dict(levels=[8, 5], dim=2.0), TypeError, r"dim must be an integer"),
        (dict(levels=[8, 5], num_codebooks=0), ValueError, r"num_codebooks"),
        (dict(levels=[8, 5], num_codebooks=2, keep_num_codebooks_dim=False), ValueError, r"num_codebooks=2"),
        (dict(levels=[8, 5], noise_dropout=0.2), ValueError, r"preserve_symmetry"),
        (dict(levels=[8, 5], preserve_symmetry=True, noise_dropout=1.5), ValueError, r"\[0, 1\], got 1\.5"),
        (dict(levels=[8, 5], backend="cuda"), ValueError, r"one of .*'cuda'"),
        (dict(levels=[8, 5], channel_first="yes"), ValueError, r"True or False, got 'yes'"),
        (dict(levels=[8, 5], allowed_dtypes=("float32",)), TypeError, r"torch dtypes"),
    ],
)
def test_bad_construction(kwargs, error, match):
    with pytest.raises(error, match=match):
        FSQ(**kwargs)


def test_bad_forward_input():
    fsq = FSQ([8, 5, 5, 5])
    with pytest.raises(ValueError, match=r"\(b, n, 4\).*got \(3, 5\)"):
        fsq(torch.randn(3, 5))
    with pytest.raises(ValueError, match=r"\(b, n, 4\).*got \(\)"):
        fsq(torch.tensor(1.0))
    with pytest.raises(
        ValueError, match=r"channel-first.*\(b, 4, \.\.\.\).*4 or more axes.*got \(2, 3, 5, 4\)"
    ):
        fsq(torch.randn(2, 3, 5, 4))  # upstream's rule: 4D input is (b, d, h, w)
    with pytest.raises(TypeError, match=r"floating-point.*torch.int64"):
        fsq(torch.ones(3, 4, dtype=torch.long))
    with pytest.raises(TypeError, match=r"torch.Tensor.*list"):
        fsq([[0.0] * 4])
    first = FSQ([8, 5, 5, 5], channel_first=True)
    with pytest.raises(ValueError, match=r"channel-first.*\(b, 4, \.\.\.\).*got \(2, 3, 4\)"):
        first(torch.randn(2, 3, 4))


@pytest.mark.parametrize("backend", PATHS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")], ids=["nan", "inf", "-inf"])
def test_non_finite_input_raises_when_checked(backend, bad):
    fsq = FSQ([8, 5, 5, 5], backend=backend, check_finite=True)
    x = torch.randn(1000, 4, generator=_gen(17))
    x[123, 2] = bad
    with pytest.raises(ValueError, match=r"finite.*1 NaN/Inf.*check_finite=False"):
        fsq(x)
    fsq.train()
    with pytest.raises(ValueError, match=r"finite"):
        fsq(x.requires_grad_())


def _assert_same_bits(a: torch.Tensor, b: torch.Tensor) -> None:
    """Equal values, NaN where the other has NaN."""
    torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("backend", PATHS)
@pytest.mark.parametrize(
    "options", [dict(), dict(preserve_symmetry=True), dict(bound_hard_clamp=True)], ids=str
)
def test_non_finite_rows_get_index_minus_one_by_default(backend, options):
    """No exception and no sync: a row with NaN/Inf gets index -1; codes stay upstream's (NaN for NaN)."""
    levels = [8, 8, 8, 6, 5] if not options.get("preserve_symmetry") else [8, 8, 8, 6, 2]
    fsq = FSQ(levels, backend=backend, **options)
    x = torch.randn(1, 1000, 5, generator=_gen(18))
    x[0, ::7, 1] = float("nan")
    x[0, ::11, 0] = float("inf")
    x[0, ::13, 4] = -float("inf")
    with torch.no_grad():
        codes, indices = fsq(x)
        up_codes, up_indices = UpstreamFSQ(levels, **options)(x)
    finite_rows = torch.isfinite(x).all(-1)
    assert torch.equal(indices[~finite_rows], torch.full_like(indices[~finite_rows], -1))
    assert torch.equal(indices[finite_rows], up_indices[finite_rows])
    _assert_same_bits(codes, up_codes)
    decoded = fsq.indices_to_codes(indices)
    assert bool(decoded[~finite_rows].isnan().all()) and torch.equal(decoded[finite_rows], codes[finite_rows])


@pytest.mark.parametrize("d", [4, 1030], ids=["matrix-vector", "elementwise"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_non_finite_rows_are_found_exactly(d, dtype):
    big = torch.finfo(dtype).max
    z = torch.zeros(7, d, dtype=dtype)
    z[1] = big  # finite, and its plain row sum overflows
    z[2, 0] = -big
    z[3, -1] = float("inf")
    z[4, 1] = -float("inf")
    z[5, 0], z[5, 1] = float("inf"), -float("inf")
    z[6, d // 2] = float("nan")
    assert paths.non_finite_rows(z).tolist() == [False, False, False, True, True, True, True]


def test_large_finite_inputs_pass_the_check():
    fsq = FSQ([8, 5, 5, 5], backend="torch")
    x = torch.full((64, 4), 3e38)  # the sum overflows; the exact check must still pass
    out = fsq(x)
    assert bool((out.indices == fsq.codebook_size - 1).all())


def test_bad_indices_and_codes():
    fsq = FSQ([8, 5, 5, 5])
    codes = fsq.indices_to_codes(torch.tensor([0, 1000, -1, 3]))  # out of range: NaN, no sync
    assert bool(codes[[1, 2]].isnan().all()) and torch.equal(codes[[0, 3]], fsq.implicit_codebook[[0, 3]])
    assert torch.equal(
        fsq.codes_to_indices(torch.tensor([[3.0, 0, 0, 0], [float("nan"), 0, 0, 0]])),
        torch.tensor([-1, -1], dtype=torch.int32),
    )
    checked = FSQ([8, 5, 5, 5], check_finite=True)
    with pytest.raises(ValueError, match=r"\[0, 1000\).*\[0, 1000\]"):
        checked.indices_to_codes(torch.tensor([0, 1000]))
    with pytest.raises(ValueError, match=r"\[0, 1000\).*\[-1, 3\]"):
        checked.indices_to_codes(torch.tensor([-1, 3]))
    with pytest.raises(ValueError, match=r"off the grid"):
        checked.codes_to_indices(torch.full((2, 4), 3.0))
    with pytest.raises(ValueError, match=r"off the grid"):
        checked.codes_to_indices(torch.full((2, 4), float("nan")))
    with pytest.raises(TypeError, match=r"integer tensor.*float32"):
        fsq.indices_to_codes(torch.tensor([1.0]))
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\).*\(2, 3\)"):
        fsq.codes_to_indices(torch.zeros(2, 3))
    several = FSQ([8, 5, 5, 5], num_codebooks=2)
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\).*\(5, 3\)"):
        several.indices_to_codes(torch.zeros(5, 3, dtype=torch.long))
