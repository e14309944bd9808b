"""vqbench's FSQ against vector_quantize_pytorch.FSQ in every precision upstream supports.

Upstream (1.32) quantizes in float32 when the input's dtype is outside ``allowed_dtypes``
(``force_quantization_f32``) and turns CUDA autocast off around the quantization only. On the CPU,
``torch.autocast('cpu', dtype=torch.bfloat16)`` stays on inside its forward: the projections and
the orthogonal rotation (matrix products) run in bfloat16 there, then the bfloat16 latents are
quantized in float32 and the codes cast back. These tests hold vqbench's FSQ to the same bits:
codes, indices and gradients, in bfloat16 and float16 input, under CPU autocast (bfloat16 and
float16), with a module converted to a half dtype, and under CUDA autocast where a GPU exists.
"""

from __future__ import annotations

import pytest
import torch
from vector_quantize_pytorch import FSQ as UpstreamFSQ

from vqbench.quantizers.fsq import FSQ

PATHS = ["auto", *FSQ.available_backends("cpu")]
HALF = [torch.bfloat16, torch.float16]
OPTIONS = [
    {},
    {"dim": 12},  # projections in and out (matrix products: autocast applies)
    {"num_codebooks": 2, "dim": 8},
    {"preserve_symmetry": True},
    {"orthogonal_rotation": True},
    {"force_quantization_f32": False},
    {"dim": 12, "force_quantization_f32": False},
]
gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _runs(backend: str, options: dict) -> None:
    """An explicit fused path computes in float32 only: unforced half precision is for 'auto' (which
    falls back to the reference) and 'reference' (test_fsq.py checks the refusal's message)."""
    if options.get("force_quantization_f32") is False and backend not in ("auto", "reference"):
        pytest.skip(f"backend {backend!r} refuses unforced half precision (by design)")


def _ids(options: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in options.items()) or "plain"


def _pair(backend: str, levels=(8, 5, 5, 5), **options) -> tuple[FSQ, UpstreamFSQ]:
    torch.manual_seed(0)
    upstream = UpstreamFSQ(list(levels), **options)
    ours = FSQ(list(levels), backend=backend, **options)
    ours.load_state_dict(upstream.state_dict(), strict=False)
    for name, buffer in upstream.named_buffers():  # the orthogonal rotation is a random buffer
        if name in dict(ours.named_buffers()):
            dict(ours.named_buffers())[name].copy_(buffer)
    return ours, upstream


def _input(options: dict, dtype=torch.float32, seed: int = 0) -> torch.Tensor:
    dim = options.get("dim", 4)
    x = torch.randn(2, 3000, dim, generator=torch.Generator().manual_seed(seed)) * 2
    return x.to(dtype)


def assert_same(a: torch.Tensor | None, b: torch.Tensor | None) -> None:
    if b is None:
        assert a is None
        return
    assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, b.dtype, a.shape, b.shape)
    assert torch.equal(a, b), f"{int((a != b).sum())} of {a.numel()} differ"


def _check(ours, upstream, x, context) -> None:
    """Same codes, indices and input gradients in ``context``; where upstream refuses the input (a
    half-precision input into float32 projections), the same refusal."""
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    with context():
        try:
            expected = upstream(x2)
        except RuntimeError as exc:  # upstream refuses: ours refuses alike or runs in the input's dtype
            assert "same dtype" in str(exc)
            try:
                out = ours(x1)
            except RuntimeError as ours_exc:
                assert "same dtype" in str(ours_exc)
            else:
                assert out[0].dtype == x.dtype and out[1].dtype == torch.int32
            return
        out = ours(x1)
    assert_same(out[0], expected[0])
    assert_same(out[1], expected[1])
    weights = torch.randn(out[0].shape, generator=torch.Generator().manual_seed(1)).to(out[0].dtype)
    out[0].float().mul(weights.float()).sum().backward()
    expected[0].float().mul(weights.float()).sum().backward()
    assert_same(x1.grad, x2.grad)


def _cpu_autocast(dtype):
    return lambda: torch.autocast("cpu", dtype=dtype)


@pytest.mark.parametrize("backend", PATHS)
@pytest.mark.parametrize("options", OPTIONS, ids=_ids)
@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_half_precision_input_matches_upstream(backend, options, dtype):
    _runs(backend, options)
    ours, upstream = _pair(backend, **options)
    _check(ours, upstream, _input(options, dtype), torch.enable_grad)


@pytest.mark.parametrize("backend", PATHS)
@pytest.mark.parametrize("options", OPTIONS, ids=_ids)
@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_cpu_autocast_matches_upstream(backend, options, dtype):
    _runs(backend, options)
    ours, upstream = _pair(backend, **options)
    _check(ours, upstream, _input(options), _cpu_autocast(dtype))


@pytest.mark.parametrize("options", OPTIONS[:3], ids=_ids)
@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_cpu_autocast_with_half_input_matches_upstream(options, dtype):
    ours, upstream = _pair("auto", **options)
    _check(ours, upstream, _input(options, dtype), _cpu_autocast(dtype))


def test_what_upstream_does_under_cpu_autocast():
    """Upstream's CPU behaviour that the tests above hold vqbench to: the projection runs in
    bfloat16 under CPU autocast, the quantization in float32 (codes of the projected dtype)."""
    upstream = UpstreamFSQ([8, 5, 5, 5], dim=12)
    seen = {}
    upstream.project_in.register_forward_hook(lambda m, a, out: seen.update(projected=out.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        out, indices = upstream(_input({"dim": 12}))
    assert seen["projected"] == torch.bfloat16
    assert out.dtype == torch.bfloat16  # project_out under autocast
    assert indices.dtype == torch.int32
    plain = UpstreamFSQ([8, 5, 5, 5])
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        codes, _ = plain(_input({}))
    assert codes.dtype == torch.float32  # no matrix product: nothing is autocast


@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_module_converted_to_half_matches_upstream(dtype):
    ours, upstream = _pair("auto", dim=12)
    ours, upstream = ours.to(dtype), upstream.to(dtype)
    _check(ours, upstream, _input({"dim": 12}, dtype), torch.enable_grad)


@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_indices_to_codes_under_cpu_autocast_matches_upstream(dtype):
    ours, upstream = _pair("auto", dim=12)
    indices = torch.randint(0, ours.codebook_size, (2, 500), generator=torch.Generator().manual_seed(3))
    with torch.autocast("cpu", dtype=dtype), torch.no_grad():
        assert_same(ours.indices_to_codes(indices), upstream.indices_to_codes(indices))


@gpu
@pytest.mark.parametrize("options", OPTIONS, ids=_ids)
@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_cuda_autocast_matches_upstream(options, dtype):  # pragma: no cover - needs a GPU
    ours, upstream = _pair("auto", **options)
    ours, upstream = ours.cuda(), upstream.cuda()
    x = _input(options).cuda()
    _check(ours, upstream, x, lambda: torch.autocast("cuda", dtype=dtype))
    _check(ours, upstream, x.to(dtype), lambda: torch.autocast("cuda", dtype=dtype))


@gpu
@pytest.mark.parametrize("options", OPTIONS, ids=_ids)
@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_cuda_half_input_matches_upstream(options, dtype):  # pragma: no cover - needs a GPU
    ours, upstream = _pair("auto", **options)
    ours, upstream = ours.cuda(), upstream.cuda()
    _check(ours, upstream, _input(options, dtype).cuda(), torch.enable_grad)
