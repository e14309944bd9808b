"""Exactness of FSQ's fast paths: codes and indices bit-identical to the reference arithmetic.

The reference is ``vector_quantize_pytorch.FSQ`` itself. Three kinds of evidence:
- every float32 within a window of ulps around every decision boundary, for every level count of
  every preset and of the variants: no disagreement, and the reference's level index is monotone
  there (the premise of the comparison kernels, see ``vqbench.quantizers.fsq.thresholds``);
- random inputs per preset, normal, uniform, large- and tiny-magnitude: ~1e6 rows per preset by
  default, 1e7 rows per preset and kind with ``VQBENCH_SLOW_TESTS=1 pytest -m slow``;
- the Triton kernel's arithmetic, run here as torch code, and the kernel itself where a GPU is;
- decode (indices to codes) over every index of every preset, and the straight-through gradient of
  the one-pass backward kernels against autograd through upstream, per preset, variant and kind.
"""

from __future__ import annotations

import os

import pytest
import torch
from vector_quantize_pytorch import FSQ as UpstreamFSQ

from vqbench.quantizers.fsq import FSQ, RECOMMENDED_LEVELS, kernel_constants
from vqbench.quantizers.fsq import cpu as fsq_cpu
from vqbench.quantizers.fsq import thresholds as fsq_thresholds
from vqbench.quantizers.fsq import triton as fsq_triton

PRESETS = [list(levels) for levels in RECOMMENDED_LEVELS.values()]
KINDS = ("normal", "uniform", "large", "tiny")
FAST_PATHS = [name for name in FSQ.available_backends("cpu") if name != "reference"]
SLOW = os.environ.get("VQBENCH_SLOW_TESTS", "") not in ("", "0")


def slow(test):
    """Marked ``slow`` and skipped unless ``VQBENCH_SLOW_TESTS=1``: plain ``pytest`` stays fast."""
    return pytest.mark.slow(pytest.mark.skipif(not SLOW, reason="set VQBENCH_SLOW_TESTS=1 to run")(test))


CHUNK = 2**18
VARIANTS = {
    "plain": dict(),
    "symmetric": dict(preserve_symmetry=True),
    "hard-clamp": dict(bound_hard_clamp=True),
    "symmetric-hard-clamp": dict(preserve_symmetry=True, bound_hard_clamp=True),
}


def _ids(levels) -> str:
    return "x".join(map(str, levels))


def random_inputs(kind: str, rows: int, d: int, seed: int) -> torch.Tensor:
    """float32 ``(rows, d)``: normal, uniform in [-4, 4], |x| up to 1e37, or |x| down to subnormals."""
    gen = torch.Generator().manual_seed(seed)
    if kind == "normal":
        return torch.randn(rows, d, generator=gen)
    if kind == "uniform":
        return torch.rand(rows, d, generator=gen) * 8 - 4
    exponent = torch.rand(rows, d, generator=gen, dtype=torch.float64)
    exponent = exponent * 37 if kind == "large" else -45 * exponent
    return (torch.randn(rows, d, generator=gen, dtype=torch.float64) * 10**exponent).float()


def _fast_outputs(levels, options, z: torch.Tensor):
    """Codes and indices of each fast path here, and of the Triton kernel's arithmetic in torch."""
    out = {}
    with torch.no_grad():
        for name in FAST_PATHS:
            fsq = FSQ(levels, backend=name, check_finite=False, **options)
            codes, indices = fsq(z)[:2]
            out[name] = (codes, indices)
        fsq = FSQ(levels, **options)
        c = kernel_constants(fsq, "cpu")
        codes, indices, _ = fsq_triton.level_index_formulation(
            z, c.thresholds(), c.code_table(torch.float32), c.params.basis
        )
        out["triton-arithmetic"] = (codes, indices)
    return out


def _count_disagreements(levels, options, z: torch.Tensor) -> dict[str, int]:
    upstream = UpstreamFSQ(levels, **options)
    counts = {}
    for start in range(0, z.shape[0], CHUNK):
        chunk = z[start : start + CHUNK]
        with torch.no_grad():
            codes, indices = upstream(chunk[None])
        for name, (c, i) in _fast_outputs(levels, options, chunk).items():
            bad = (c != codes[0]).any(-1) | (i != indices[0])
            counts[name] = counts.get(name, 0) + int(bad.sum())
    return counts


# -- decision boundaries -------------------------------------------------------------------


def _window_case(level: int, variant: str, ulps: int) -> dict[str, int]:
    """Disagreements of each fast path with upstream over every float near each boundary."""
    options = VARIANTS[variant]
    thresholds = kernel_constants(FSQ([level], **options), torch.device("cpu")).thresholds()[0]
    window = fsq_thresholds.boundary_window(thresholds, ulps)[:, None]
    upstream = UpstreamFSQ([level], **options)
    with torch.no_grad():
        _, expected = upstream(window[None])
    level_index = expected[0]  # one channel: the index is the level index
    assert bool((level_index[1:] >= level_index[:-1]).all()), "reference level index not monotone here"
    for j, t in enumerate(thresholds.tolist(), start=1):  # the bisection's defining property
        below = torch.nextafter(torch.tensor([t]), torch.tensor([-float("inf")]))
        with torch.no_grad():
            k_at, k_below = upstream(torch.tensor([[[t]], [[float(below)]]]))[1].flatten().tolist()
        assert k_below < j <= k_at
    return _count_disagreements([level], options, window)


PRESET_LEVELS = sorted({level for levels in PRESETS for level in levels})


@pytest.mark.parametrize("level", PRESET_LEVELS)
def test_every_float_near_every_preset_boundary(level):
    counts = _window_case(level, "plain", ulps=2**14)
    assert counts and not any(counts.values()), counts


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "plain"])
@pytest.mark.parametrize("level", [2, 3, 4, 5, 8])
def test_every_float_near_variant_boundaries(level, variant):
    if level == 2 and not VARIANTS[variant].get("preserve_symmetry"):
        pytest.skip("two levels need the symmetric variant")
    counts = _window_case(level, variant, ulps=2**10)
    assert counts and not any(counts.values()), counts


@slow
@pytest.mark.parametrize("level", PRESET_LEVELS)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_float_near_boundaries_wide(level, variant):
    counts = _window_case(level, variant, ulps=2**20)
    assert counts and not any(counts.values()), counts


def test_special_values():
    z = torch.tensor(
        [
            0.0,
            -0.0,
            1e-45,
            -1e-45,
            1.17e-38,
            -1.17e-38,
            3.4028235e38,
            -3.4028235e38,
            float("inf"),
            -float("inf"),
        ]
    )
    z = z[:, None].expand(-1, 4).contiguous()
    counts = _count_disagreements([8, 5, 5, 5], {}, z[:-2])
    assert counts == dict.fromkeys(counts, 0), counts
    # +-inf: upstream's saturated codes; the index is -1 (a non-finite row), never a valid code
    with torch.no_grad():
        expected = UpstreamFSQ([8, 5, 5, 5])(z[-2:][None])[0][0]
        for name in FAST_PATHS:
            codes, indices = FSQ([8, 5, 5, 5], backend=name, check_finite=False)(z[-2:])
            assert torch.equal(codes, expected) and indices.tolist() == [-1, -1], name


# -- random inputs -------------------------------------------------------------------------


@pytest.mark.parametrize("levels", PRESETS, ids=_ids)
def test_random_inputs_per_preset(levels):
    """~1e6 rows per preset (2^18 of each kind); no path may disagree anywhere."""
    for seed, kind in enumerate(KINDS):
        counts = _count_disagreements(levels, {}, random_inputs(kind, 2**18, len(levels), seed))
        assert counts == dict.fromkeys(counts, 0), (kind, counts)


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "plain"])
def test_random_inputs_variants(variant):
    levels = [2, 4, 5, 8] if VARIANTS[variant].get("preserve_symmetry") else [3, 4, 5, 8]
    for seed, kind in enumerate(KINDS):
        counts = _count_disagreements(levels, VARIANTS[variant], random_inputs(kind, 2**14, 4, seed))
        assert counts == dict.fromkeys(counts, 0), (kind, counts)


@slow
@pytest.mark.parametrize("levels", PRESETS, ids=_ids)
@pytest.mark.parametrize("kind", KINDS)
def test_random_inputs_1e7(levels, kind):
    """1e7 rows per preset and kind, in chunks."""
    rows, block = 10**7, 2**20
    for start in range(0, rows, block):
        z = random_inputs(kind, min(block, rows - start), len(levels), seed=start + 1000 * KINDS.index(kind))
        counts = _count_disagreements(levels, {}, z)
        assert counts == dict.fromkeys(counts, 0), (kind, start, counts)


# -- decode: every index of every preset ---------------------------------------------------


@pytest.mark.parametrize("variant", ["plain", "symmetric"])
@pytest.mark.parametrize("levels", PRESETS, ids=_ids)
def test_decode_every_index(levels, variant):
    """The C decode kernel, the public decode and the Triton decode arithmetic, for every code."""
    options = VARIANTS[variant]
    upstream = UpstreamFSQ(levels, **options)
    fsq = FSQ(levels, **options)
    size = fsq.codebook_size
    indices = torch.arange(size)
    with torch.no_grad():
        expected = upstream.indices_to_codes(indices)
        assert torch.equal(fsq.indices_to_codes(indices), expected)
        assert torch.equal(fsq.indices_to_codes(indices.int()), expected)
    cpu = torch.device("cpu")
    c = kernel_constants(fsq, cpu)
    table, basis = c.code_table(torch.float32), c.params.basis
    assert torch.equal(fsq_triton.decode_formulation(indices, table, basis), expected)
    outside = fsq_triton.decode_formulation(torch.tensor([-1, size, 2**31 - 1]), table, basis)
    assert bool(torch.isnan(outside).all())
    if fsq_cpu.available():
        prep = kernel_constants(fsq).cpu_prepared()
        assert torch.equal(fsq_cpu.decode(indices, prep), expected)
        assert torch.equal(fsq_cpu.decode(indices.int(), prep), expected)
        z = random_inputs("normal", 2**14, len(levels), seed=7)
        codes, idx, _ = fsq_cpu.forward(z, prep)
        assert torch.equal(fsq_cpu.decode(idx, prep), codes)  # decode(encode(z)) is z's code


# -- gradients of the one-pass backward kernels --------------------------------------------


def _upstream_grad(levels, options, z, grad):
    leaf = z.clone().requires_grad_(True)
    UpstreamFSQ(levels, **options).to(z.device)(leaf[None])[0][0].backward(grad)
    return leaf.grad


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("levels", PRESETS, ids=_ids)
def test_backward_kernels_match_autograd(levels, variant):
    """C kernel and the Triton kernel's arithmetic: autograd's gradient through upstream, bit for bit."""
    options = VARIANTS[variant]
    if levels != PRESETS[0] and variant != "plain":
        pytest.skip("variants on one preset keep this test short")
    params = kernel_constants(FSQ(levels, **options), torch.device("cpu")).params
    rounding = fsq_triton.tanh_backward_rounding("cpu")
    for seed, kind in enumerate(KINDS):
        z = random_inputs(kind, 2**15 + 3, len(levels), seed)
        grad = random_inputs("normal", 2**15 + 3, len(levels), seed + 100)
        expected = _upstream_grad(levels, options, z, grad)
        if fsq_cpu.available():
            assert torch.equal(fsq_cpu.backward(z, grad, params), expected), kind
        if rounding is not None:
            got = fsq_triton.backward_formulation(z, grad, params, rounding)
            assert torch.equal(got, expected), kind


# -- the Triton kernel on a GPU ------------------------------------------------------------


gpu = pytest.mark.skipif(not fsq_triton.available("cuda"), reason=fsq_triton.unavailable_reason("cuda") or "")


@gpu
@pytest.mark.parametrize("levels", PRESETS, ids=_ids)
def test_triton_kernel_matches_upstream_on_gpu(levels):  # pragma: no cover - needs a GPU
    upstream = UpstreamFSQ(levels).cuda()
    fsq = FSQ(levels, backend="triton").cuda()
    reference = FSQ(levels, backend="torch").cuda()
    for seed, kind in enumerate(KINDS):
        z = random_inputs(kind, 2**20, len(levels), seed).cuda()
        with torch.no_grad():
            codes, indices = upstream(z[None])
            out = fsq(z)
        assert fsq.last_backend == "triton"
        assert torch.equal(out.codes, codes[0]) and torch.equal(out.indices, indices[0]), kind
        assert torch.equal(reference(z).indices, indices[0]), kind
    for level in sorted(set(levels)):
        single, up = FSQ([level], backend="triton").cuda(), UpstreamFSQ([level]).cuda()
        window = fsq_thresholds.boundary_window(
            kernel_constants(single, torch.device("cuda")).thresholds()[0], 2**16
        )
        window = window[:, None].cuda()
        with torch.no_grad():
            assert torch.equal(single(window).indices, up(window[None])[1][0])


@gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_triton_half_precision_and_gradients_on_gpu(dtype):  # pragma: no cover - needs a GPU
    upstream = UpstreamFSQ([8, 8, 8, 6, 5]).cuda()
    fsq = FSQ([8, 8, 8, 6, 5], backend="triton").cuda()
    x = (torch.randn(4, 50_000, 5, device="cuda") * 2).to(dtype)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, expected = fsq(x1), upstream(x2)
    assert torch.equal(out.codes, expected[0]) and torch.equal(out.indices, expected[1])
    weights = torch.randn_like(x)
    out.codes.backward(weights)
    expected[0].backward(weights)
    assert torch.equal(x1.grad, x2.grad)


@gpu
@pytest.mark.parametrize("levels", PRESETS, ids=_ids)
def test_triton_decode_on_gpu(levels):  # pragma: no cover - needs a GPU
    upstream = UpstreamFSQ(levels).cuda()
    fsq = FSQ(levels).cuda()
    dev = torch.device("cuda")
    c = kernel_constants(fsq, dev)
    table, basis = c.code_table(torch.float32), c.params.basis
    indices = torch.arange(fsq.codebook_size, device="cuda")
    expected = upstream.indices_to_codes(indices)
    for dtype in (torch.int32, torch.int64):
        assert torch.equal(fsq_triton.decode(indices.to(dtype), table, basis), expected)
    assert torch.equal(fsq.indices_to_codes(indices), expected)
    outside = torch.tensor([-1, fsq.codebook_size], device="cuda")
    assert bool(torch.isnan(fsq_triton.decode(outside, table, basis)).all())
    with pytest.raises(ValueError, match="2 value"):
        fsq_triton.decode(outside, table, basis, check_range=True)


@gpu
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_triton_backward_on_gpu(variant):  # pragma: no cover - needs a GPU
    levels = [8, 8, 8, 6, 5] if variant in ("plain", "hard-clamp") else [8, 4, 3, 2]
    options = VARIANTS[variant]
    params = kernel_constants(FSQ(levels, **options), torch.device("cuda")).params
    for seed, kind in enumerate(KINDS):
        z = random_inputs(kind, 2**20 + 5, len(levels), seed).cuda()
        grad = random_inputs("normal", 2**20 + 5, len(levels), seed + 100).cuda()
        expected = _upstream_grad(levels, options, z, grad)
        assert torch.equal(fsq_triton.backward(z, grad, params), expected), kind


@gpu
def test_triton_encode_marks_and_no_sync_on_gpu():  # pragma: no cover - needs a GPU
    fsq = FSQ([8, 5, 5, 5]).cuda()
    dev = torch.device("cuda")
    c = kernel_constants(fsq, dev)
    thr, table, basis = c.thresholds(), c.code_table(torch.float32), c.params.basis
    z = random_inputs("normal", 2**16, 4, 0).cuda()
    z[5, 1], z[7, 2] = float("nan"), float("inf")
    codes, idx, _ = fsq_triton.forward(z, thr, table, basis, check_finite=False, mark_nonfinite=True)
    assert idx[5] == -1 and idx[7] == -1 and bool((idx[:5] >= 0).all())
    assert torch.isnan(codes[5, 1]) and codes[7, 2] == 1.0
    none, only, _ = fsq_triton.forward(z, thr, table, basis, check_finite=False, with_codes=False)
    assert none is None and torch.equal(only[8:], idx[8:])
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        fsq_triton.forward(z, thr, table, basis, check_finite=False)
        _, _, bad = fsq_triton.forward(z, thr, table, basis, sync=False)
        fsq_triton.decode(idx.clamp(min=0), table, basis)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert int(bad.item()) == 2
