"""vqbench.FSQ swapped in for vector_quantize_pytorch.FSQ: the same surface, layouts and results.

Upstream's own classes built on FSQ (ResidualFSQ, GroupedResidualFSQ) and the FSQ examples of
upstream's README (read from the installed package's metadata) run against vqbench's class patched
into upstream's modules, and give upstream's results.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import re
import sys
from pathlib import Path

import pytest
import torch
import vector_quantize_pytorch
import vector_quantize_pytorch.finite_scalar_quantization as upstream_fsq_module
import vector_quantize_pytorch.residual_fsq as upstream_residual_module
from vector_quantize_pytorch import FSQ as UpstreamFSQ

import vqbench
from vqbench import FSQ
from vqbench.quantizers.fsq import FSQOutput

ROOT = Path(__file__).resolve().parents[1]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def swapped(monkeypatch):
    """vqbench's FSQ wherever upstream's code looks FSQ up."""
    for module in (vector_quantize_pytorch, upstream_fsq_module, upstream_residual_module):
        monkeypatch.setattr(module, "FSQ", FSQ)
    return FSQ


def _upstream_readme_blocks(needle: str) -> list[str]:
    """The ```python blocks of the installed vector-quantize-pytorch's README that contain ``needle``."""
    body = importlib.metadata.metadata("vector-quantize-pytorch").get_payload() or ""
    blocks = re.findall(r"```python\n(.*?)```", body, re.S)
    return [b for b in blocks if needle in b]


def _pair(levels, **options) -> tuple[FSQ, UpstreamFSQ]:
    torch.manual_seed(0)
    upstream = UpstreamFSQ(levels, **options)
    ours = FSQ(levels, **options)
    ours.load_state_dict(upstream.state_dict())
    return ours, upstream


def assert_same(a, b) -> None:
    assert type(a) is type(b) or isinstance(a, type(b)) or isinstance(b, type(a))
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, b.dtype, a.shape, b.shape)
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)
    elif isinstance(a, tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    else:
        assert a == b


# -- upstream's code on vqbench's class ----------------------------------------------------------


def test_upstream_readme_fsq_examples_run_unchanged(swapped):
    blocks = _upstream_readme_blocks("from vector_quantize_pytorch import FSQ")
    blocks += _upstream_readme_blocks("from vector_quantize_pytorch import ResidualFSQ")
    assert len(blocks) >= 2, "the installed package's README has no FSQ examples"
    for code in blocks:
        namespace: dict = {}
        exec(compile(code, "upstream README", "exec"), namespace)
        built = [m for v in namespace.values() if isinstance(v, torch.nn.Module) for m in v.modules()]
        assert any(isinstance(m, FSQ) for m in built), "the example did not build vqbench's FSQ"
        assert not any(isinstance(m, UpstreamFSQ) for m in built)


@pytest.mark.parametrize("options", [dict(), dict(bound_hard_clamp=True)], ids=["tanh", "hard-clamp"])
@pytest.mark.parametrize("shape", [(2, 50, 32), (2, 32, 5, 3)], ids=["sequence", "channel-first-image"])
def test_residual_fsq_on_vqbench_fsq_gives_upstream_results(monkeypatch, options, shape):
    channel_first = len(shape) == 4
    config = dict(dim=32, levels=[8, 5, 5, 3], num_quantizers=4, is_channel_first=channel_first, **options)
    x = torch.randn(*shape, generator=_gen(1))
    torch.manual_seed(0)
    upstream = vector_quantize_pytorch.ResidualFSQ(**config)
    for module in (vector_quantize_pytorch, upstream_fsq_module, upstream_residual_module):
        monkeypatch.setattr(module, "FSQ", FSQ)
    torch.manual_seed(0)
    ours = vector_quantize_pytorch.ResidualFSQ(**config)
    assert all(isinstance(layer, FSQ) for layer in ours.layers)
    ours.load_state_dict(upstream.state_dict())
    assert_same(ours.codebooks, upstream.codebooks)
    for training in (False, True):
        ours.train(training), upstream.train(training)
        x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
        out, expected = ours(x1), upstream(x2)
        assert_same(out, expected)
        grad = torch.randn(out[0].shape, generator=_gen(2))
        out[0].backward(grad)
        expected[0].backward(grad)
        assert_same(x1.grad, x2.grad)
        for (name, p1), (_, p2) in zip(ours.named_parameters(), upstream.named_parameters(), strict=True):
            assert torch.equal(p1.grad, p2.grad), name
    if channel_first:
        return  # upstream 1.32 decodes channel-last indices only
    ours.eval(), upstream.eval()
    with torch.no_grad():
        quantized, indices = ours(x)
        assert_same(ours.get_output_from_indices(indices), upstream.get_output_from_indices(indices))
        assert_same(ours.get_output_from_indices(indices), quantized)


def test_grouped_residual_fsq_on_vqbench_fsq_gives_upstream_results(monkeypatch):
    config = dict(dim=16, groups=2, levels=[8, 5, 5], num_quantizers=3)
    x = torch.randn(2, 40, 16, generator=_gen(3))
    torch.manual_seed(0)
    upstream = vector_quantize_pytorch.GroupedResidualFSQ(**config).eval()
    for module in (vector_quantize_pytorch, upstream_fsq_module, upstream_residual_module):
        monkeypatch.setattr(module, "FSQ", FSQ)
    torch.manual_seed(0)
    ours = vector_quantize_pytorch.GroupedResidualFSQ(**config).eval()
    ours.load_state_dict(upstream.state_dict())
    with torch.no_grad():
        out, expected = ours(x), upstream(x)
        assert_same(out, expected)
        assert_same(ours.get_output_from_indices(out[1]), upstream.get_output_from_indices(out[1]))


# -- the surface ---------------------------------------------------------------------------------


def test_exported_where_users_import_it():
    assert vqbench.FSQ is FSQ and vqbench.quantizers.FSQ is FSQ
    assert "vqbench.quantizers.fsq" in sys.modules


#: The newest upstream release's FSQ signature (1.34): 1.32 lacks its last argument.
NEWEST_UPSTREAM_ARGUMENTS = [
    "self", "levels", "dim", "num_codebooks", "keep_num_codebooks_dim", "scale", "allowed_dtypes",
    "channel_first", "projection_has_bias", "return_indices", "force_quantization_f32",
    "preserve_symmetry", "noise_dropout", "bound_hard_clamp", "orthogonal_rotation",
    "materialize_codebook",
]  # fmt: skip
UPSTREAM_MATERIALIZES = "materialize_codebook" in inspect.signature(UpstreamFSQ.__init__).parameters


def test_constructor_takes_upstreams_arguments_in_order_with_its_defaults():
    ours = inspect.signature(FSQ.__init__).parameters
    theirs = inspect.signature(UpstreamFSQ.__init__).parameters
    assert list(theirs) == NEWEST_UPSTREAM_ARGUMENTS[: len(theirs)]
    assert list(ours)[: len(NEWEST_UPSTREAM_ARGUMENTS)] == NEWEST_UPSTREAM_ARGUMENTS
    for name, param in theirs.items():
        if name not in ("self", "levels"):
            assert ours[name].default == param.default, name
    assert ours["materialize_codebook"].default is True
    extra = list(ours)[len(NEWEST_UPSTREAM_ARGUMENTS) :]
    assert extra == ["codebook_size", "backend", "check_finite"]
    assert all(ours[name].kind is inspect.Parameter.KEYWORD_ONLY for name in extra)


CONFIGS = [
    dict(levels=[8, 5, 5, 5]),
    dict(levels=[8, 5, 5, 5], dim=16, projection_has_bias=False),
    dict(levels=[5, 5, 5], num_codebooks=2, dim=10),
    dict(levels=[4, 4, 2], preserve_symmetry=True, noise_dropout=0.3),
    dict(levels=[5, 5], orthogonal_rotation=True, bound_hard_clamp=True),
    dict(levels=[8, 6, 5], return_indices=False),
]


def _config_id(config: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in config.items())


@pytest.mark.parametrize("config", CONFIGS, ids=_config_id)
def test_attributes_buffers_and_state_dict_match_upstream(config):
    ours, upstream = _pair(**config)
    for name, value in vars(upstream).items():
        if not name.startswith("_") and not isinstance(value, (torch.Tensor, torch.nn.Module)):
            assert getattr(ours, name) == value, name
    for name in ("has_projections", "codebook_dim", "effective_codebook_dim", "dim", "num_codebooks"):
        assert getattr(ours, name) == getattr(upstream, name), name
    assert list(ours.state_dict()) == list(upstream.state_dict())
    ours_buffers, up_buffers = dict(ours.named_buffers()), dict(upstream.named_buffers())
    assert list(ours_buffers) == list(up_buffers)
    for name, buffer in up_buffers.items():
        assert_same(ours_buffers[name], buffer)
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in upstream.named_modules()]


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16], ids=str)
def test_implicit_codebook_follows_the_module_dtype(dtype):
    ours, upstream = _pair([8, 5, 5, 5])
    assert_same(ours.to(dtype).implicit_codebook, upstream.to(dtype).implicit_codebook)
    assert ours.implicit_codebook.dtype == dtype


@pytest.mark.parametrize(
    "config",
    [
        dict(),
        dict(preserve_symmetry=True),
        dict(bound_hard_clamp=True),
        dict(preserve_symmetry=True, bound_hard_clamp=True),
    ],
    ids=["tanh", "symmetric", "hard-clamp", "symmetric-hard-clamp"],
)
def test_public_methods_match_upstream(config):
    levels = [8, 5, 4, 3] if config.get("preserve_symmetry") else [8, 5, 5, 3]
    ours, upstream = _pair(levels, **config)
    z = torch.randn(3, 100, 4, generator=_gen(4)) * 2
    z[0, :4] = torch.tensor([float("inf"), -float("inf"), 0.0, 1e30])[:, None]
    for hard_clamp in (False, True):
        assert_same(ours.bound(z, hard_clamp=hard_clamp), upstream.bound(z, hard_clamp=hard_clamp))
        assert_same(ours.bound(z, eps=1e-2), upstream.bound(z, eps=1e-2))
        assert_same(
            ours.symmetry_preserving_bound(z, hard_clamp=hard_clamp),
            upstream.symmetry_preserving_bound(z, hard_clamp=hard_clamp),
        )
    codes = ours.quantize(z)
    assert_same(codes, upstream.quantize(z))
    assert_same(ours._scale_and_shift(codes), upstream._scale_and_shift(codes))
    assert_same(
        ours._scale_and_shift_inverse(ours._scale_and_shift(codes)),
        upstream._scale_and_shift_inverse(upstream._scale_and_shift(codes)),
    )
    assert_same(ours.codes_to_indices(codes), upstream.codes_to_indices(codes))
    every = torch.arange(ours.codebook_size)
    assert_same(ours.indices_to_level_indices(every), upstream.indices_to_level_indices(every))
    assert_same(ours._indices_to_codes(every), upstream._indices_to_codes(every))
    assert_same(ours.indices_to_codes(every), upstream.indices_to_codes(every))
    assert_same(
        ours.indices_to_codes(every.to(torch.int32)), upstream.indices_to_codes(every.to(torch.int32))
    )


def test_maybe_apply_noise_draws_like_upstream():
    ours, upstream = _pair([5, 5, 4], preserve_symmetry=True, noise_dropout=0.4)
    codes = ours.quantize(torch.randn(2, 500, 3, generator=_gen(5)))
    torch.manual_seed(3)
    expected = upstream.maybe_apply_noise(codes)
    torch.manual_seed(3)
    assert_same(ours.maybe_apply_noise(codes), expected)
    assert not torch.equal(expected, codes)
    ours.eval(), upstream.eval()
    assert_same(ours.maybe_apply_noise(codes), upstream.maybe_apply_noise(codes))


def test_returns_upstreams_pair():
    ours, upstream = _pair([8, 5, 5, 5])
    x = torch.randn(2, 64, 4, generator=_gen(6))
    out = ours(x)
    assert isinstance(out, tuple) and len(out) == 2 and isinstance(out, FSQOutput)
    xhat, indices = out
    assert xhat is out.codes and indices is out.indices
    assert_same(tuple(out), upstream(x))
    without = FSQ([8, 5, 5, 5], return_indices=False)
    xhat, indices = without(x)
    assert indices is None and torch.equal(xhat, out.codes)


# -- layouts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "shape"),
    [
        (dict(), (2, 4, 8, 4)),  # ambiguous: upstream reads it as (b, d, h, w)
        (dict(), (2, 4, 3, 5, 2)),  # video
        (dict(dim=16), (2, 16, 6, 5)),
        (dict(channel_first=True), (3, 4, 20)),  # (b, d, n)
        (dict(channel_first=True, dim=12), (3, 12, 7)),
        (dict(num_codebooks=2), (2, 8, 4, 4)),
        (dict(num_codebooks=2, channel_first=True, dim=16), (2, 16, 30)),
        (dict(), (2, 30, 4)),
    ],
    ids=lambda v: _config_id(v) if isinstance(v, dict) else "x".join(map(str, v)),
)
def test_layouts_match_upstream(config, shape):
    ours, upstream = _pair([8, 5, 5, 5], **config)
    x = torch.randn(*shape, generator=_gen(7)) * 2
    with torch.no_grad():
        out, expected = ours(x), upstream(x)
    assert_same(tuple(out), expected)
    assert_same(ours.indices_to_codes(out.indices), upstream.indices_to_codes(out.indices))
    torch.testing.assert_close(ours.indices_to_codes(out.indices), out.codes)
    if not ours.has_projections:
        assert torch.equal(ours.indices_to_codes(out.indices), out.codes)


def test_decoding_channel_first_follows_the_indices_rank():
    ours, upstream = _pair([8, 5, 5, 5])
    indices = torch.randint(0, 1000, (2, 6, 5), generator=_gen(8))
    codes = ours.indices_to_codes(indices)
    assert codes.shape == (2, 4, 6, 5)
    assert_same(codes, upstream.indices_to_codes(indices))
    assert ours.indices_to_codes(indices[0]).shape == (6, 5, 4)  # (n, d) sequences stay channel-last
    several, up_several = _pair([8, 5, 5, 5], num_codebooks=2)
    indices = torch.randint(0, 1000, (2, 6, 5, 2), generator=_gen(9))
    assert_same(several.indices_to_codes(indices), up_several.indices_to_codes(indices))
    assert several.indices_to_codes(indices).shape == (2, 8, 6, 5)


def test_codebook_sizes_beyond_float32_are_exact():
    """Upstream 1.32 sums float32 indices (off above 2^24 codes); 1.34 sums integers, as vqbench."""
    levels = [17] * 7
    ours, upstream = FSQ(levels), UpstreamFSQ(levels, return_indices=False)
    picks = torch.tensor([2**24 + 1, 2**27 + 12345])
    codes = ours.indices_to_codes(picks)
    assert torch.equal(ours.codes_to_indices(codes), picks.to(torch.int32))
    assert torch.equal(upstream.codes_to_indices(codes), picks.to(torch.int32)) is UPSTREAM_MATERIALIZES
    assert ours.implicit_codebook is None  # over 2^20 codes: not materialized


@pytest.mark.skipif(not UPSTREAM_MATERIALIZES, reason="upstream 1.34's materialize_codebook, int64 indices")
@pytest.mark.parametrize(
    "levels", [[8, 5, 5, 5], [16] * 8 + [4], [4] * 16 + [3]], ids=["2^10", "2^34", "3*2^32"]
)
def test_unmaterialized_and_int64_codebooks_match_upstream(levels):
    ours, upstream = _pair(levels, materialize_codebook=False)
    assert ours.implicit_codebook is None and upstream.implicit_codebook is None
    assert ours.codebook_size == upstream.codebook_size
    z = torch.randn(4, 300, len(levels), generator=_gen(7)) * 3
    assert_same(tuple(ours(z)), tuple(upstream(z)))
    out, indices = ours(z)
    assert indices.dtype == (torch.int64 if ours.codebook_size > 2**31 else torch.int32)
    assert_same(ours.codes_to_indices(out), upstream.codes_to_indices(out))
    assert_same(ours.indices_to_codes(indices), upstream.indices_to_codes(indices))
    assert_same(ours.encode(z), indices)
    top = torch.tensor([0, ours.codebook_size - 1])
    assert_same(ours.indices_to_codes(top), upstream.indices_to_codes(top))


def test_int64_codebooks_refuse_the_int32_kernels():
    with pytest.raises(ValueError, match="over 2\\^31"):
        FSQ([16] * 8 + [4], backend="cpu")
    FSQ([16] * 8 + [4], backend="reference")  # the reference arithmetic indexes in int64


def test_readme_python_examples_run():
    """The README's Python examples (the suite protocol and the drop-in FSQ) run as written."""
    text = (ROOT / "README.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "import torch" in b]
    assert any("from vqbench import FSQ" in b for b in blocks)
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
