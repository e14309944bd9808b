"""Exactness of FSQ's fast paths: codes and indices bit-identical to the reference arithmetic.

The reference is ``vector_quantize_pytorch.FSQ`` itself. Three kinds of evidence:
- every float32 within a window of ulps around every decision boundary, for every level count of
  every preset and of the variants: no disagreement, and the reference's level index is monotone
  there (the premise of the comparison kernels, see ``vqbench.quantizers._fsq_thresholds``);
- random inputs per preset, normal, uniform, large- and tiny-magnitude: ~1e6 rows per preset by
  default, 1e7 rows per preset and kind with ``VQBENCH_SLOW_TESTS=1 pytest -m slow``;
- the Triton kernel's arithmetic, run here as torch code, and the kernel itself where a GPU is.
"""

from __future__ import annotations

import os

import pytest
import torch
from vector_quantize_pytorch import FSQ as UpstreamFSQ

from vqbench.quantizers import _fsq_thresholds, _fsq_triton
from vqbench.quantizers.fsq import FSQ
from vqbench.quantizers.levels import RECOMMENDED_LEVELS

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
            codes, indices, _ = fsq(z)
            out[name] = (codes, indices)
        fsq = FSQ(levels, **options)
        cpu = torch.device("cpu")
        codes, indices, _ = _fsq_triton.level_index_formulation(
            z, fsq._thresholds(cpu), fsq._code_table(cpu, torch.float32), fsq._params(cpu).basis
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
    thresholds = FSQ([level], **options)._thresholds(torch.device("cpu"))[0]
    window = _fsq_thresholds.boundary_window(thresholds, ulps)[:, None]
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
    counts = _count_disagreements([8, 5, 5, 5], {}, z)
    assert counts == dict.fromkeys(counts, 0), counts


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


# -- the Triton kernel on a GPU ------------------------------------------------------------


gpu = pytest.mark.skipif(
    not _fsq_triton.available("cuda"), reason=_fsq_triton.unavailable_reason("cuda") or ""
)


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
        window = _fsq_thresholds.boundary_window(single._thresholds(torch.device("cuda"))[0], 2**16)
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
