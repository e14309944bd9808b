"""vqbench.FSQ in whole graphs: torch.compile(fullgraph=True), torch.export, torch.jit.trace, CUDA graphs.

Every module here is fresh (never called eagerly before it is compiled), and every compiled result
is checked against upstream's eager one, bit for bit.
"""

from __future__ import annotations

import pytest
import torch
from vector_quantize_pytorch import FSQ as UpstreamFSQ

from vqbench import FSQ
from vqbench.quantizers.fsq import last_path

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device")

VARIANTS = [
    dict(levels=[8, 5, 5, 5]),
    dict(levels=[8, 4, 3, 2], preserve_symmetry=True),
    dict(levels=[7, 5, 5, 5, 5], bound_hard_clamp=True),
    dict(levels=[5, 5, 5], dim=12, num_codebooks=2, orthogonal_rotation=True),
    dict(levels=[8, 5, 5, 5], backend="reference"),
    dict(levels=[8, 5, 5, 5], backend="torch"),
]
KINDS = ["sequence", "image"]  # (b, n, dim) and channel-first (b, dim, h, w)


def _id(config: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in config.items())


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _pair(config: dict) -> tuple[FSQ, UpstreamFSQ]:
    upstream_config = {k: v for k, v in config.items() if k != "backend"}
    torch.manual_seed(0)
    upstream = UpstreamFSQ(**upstream_config)
    ours = FSQ(**config)
    ours.load_state_dict(upstream.state_dict())
    return ours, upstream


def _input(fsq: FSQ, kind: str, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    if kind == "image":
        return torch.randn(2, fsq.dim, 5, 3, generator=gen) * 2
    return torch.randn(2, 37, fsq.dim, generator=gen) * 2


def assert_same(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)


# -- graph breaks --------------------------------------------------------------------------------


@pytest.mark.parametrize("config", VARIANTS, ids=_id)
def test_no_graph_breaks(config):
    for training in (False, True):
        fsq = FSQ(**config).train(training)
        x = _input(fsq, "image").requires_grad_(training)
        explained = torch._dynamo.explain(fsq)(x)
        assert explained.graph_break_count == 0, explained.break_reasons
        assert explained.graph_count == 1
    fsq = FSQ(**config)
    indices = torch.randint(0, fsq.codebook_size, (2, 6, 5, fsq.num_codebooks))
    if not fsq.keep_num_codebooks_dim:
        indices = indices[..., 0]
    assert torch._dynamo.explain(fsq.indices_to_codes)(indices).graph_break_count == 0
    codes = torch.rand(2, 6, fsq.codebook_dim) * 2 - 1
    assert torch._dynamo.explain(fsq.codes_to_indices)(codes).graph_break_count == 0


def test_compiled_graph_calls_the_fused_operator():
    fsq = FSQ([8, 5, 5, 5])
    graph = torch._dynamo.explain(fsq)(torch.randn(2, 8, 4)).graphs[0]
    targets = {str(node.target) for node in graph.graph.nodes if node.op == "call_function"}
    assert "vqbench.fsq_quantize" in targets, targets
    torch._dynamo.reset()
    compiled = torch.compile(FSQ([8, 5, 5, 5]), fullgraph=True, backend="aot_eager")
    compiled(torch.randn(2, 8, 4))
    expected = "cpu" if "cpu" in FSQ.available_backends("cpu") else "torch"
    assert last_path() == expected


# -- fullgraph compile ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("config", VARIANTS, ids=_id)
def test_fullgraph_compile_matches_upstream_eager(config, kind):
    """Forward in eval and training (codes, indices, input and weight gradients) and decoding."""
    ours, upstream = _pair(config)
    compiled = torch.compile(ours, fullgraph=True, backend="aot_eager")
    x = _input(ours, kind)
    with torch.no_grad():
        ours.eval(), upstream.eval()
        codes, indices = compiled(x)
        up_codes, up_indices = upstream(x)
    assert_same(codes, up_codes)
    assert_same(indices, up_indices)
    ours.train(), upstream.train()
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    codes, indices = compiled(x1)
    up_codes, up_indices = upstream(x2)
    assert_same(codes, up_codes)
    grad = torch.randn(codes.shape, generator=torch.Generator().manual_seed(1))
    codes.backward(grad)
    up_codes.backward(grad)
    assert_same(x1.grad, x2.grad)
    for (name, p1), (_, p2) in zip(ours.named_parameters(), upstream.named_parameters(), strict=True):
        assert torch.equal(p1.grad, p2.grad), name
    decode = torch.compile(ours.indices_to_codes, fullgraph=True, backend="aot_eager")
    assert_same(decode(up_indices), upstream.indices_to_codes(up_indices))
    encode = torch.compile(ours.codes_to_indices, fullgraph=True, backend="aot_eager")
    flat_codes = upstream.quantize(torch.randn(50, ours.codebook_dim))
    assert_same(encode(flat_codes), upstream.codes_to_indices(flat_codes))


def test_inductor_compile_of_a_fresh_module():
    """The default backend (inductor) on a fresh module: forward, training step and decoding."""
    ours, upstream = _pair(dict(levels=[8, 5, 5, 5], dim=16))
    compiled = torch.compile(ours, fullgraph=True)
    x = _input(ours, "image")
    codes, indices = compiled(x)
    up_codes, up_indices = upstream(x)
    assert_same(indices, up_indices)
    torch.testing.assert_close(codes, up_codes)  # inductor may reorder the projection's sums
    x1 = x.clone().requires_grad_()
    compiled(x1)[0].square().sum().backward()
    assert x1.grad is not None and bool(torch.isfinite(x1.grad).all())
    decode = torch.compile(FSQ([8, 5, 5, 5]).indices_to_codes, fullgraph=True)
    assert_same(decode(up_indices), UpstreamFSQ([8, 5, 5, 5]).indices_to_codes(up_indices))


def test_non_finite_rows_in_a_compiled_graph():
    """The in-graph form of the non-finite guarantee: index -1, no exception, no graph break."""
    fsq = FSQ([8, 5, 5, 5], check_finite=True)  # eager-only check: compiled graphs mark instead
    compiled = torch.compile(fsq, fullgraph=True, backend="aot_eager")
    x = torch.randn(1, 6, 4)
    x[0, 1, 2], x[0, 4, 0] = float("nan"), float("inf")
    codes, indices = compiled(x)
    assert indices[0, 1] == -1 and indices[0, 4] == -1
    assert bool((indices[0, [0, 2, 3, 5]] >= 0).all())
    assert bool(codes[0, 1, 2].isnan()) and bool(torch.isfinite(codes[0, 4]).all())
    decode = torch.compile(fsq.indices_to_codes, fullgraph=True, backend="aot_eager")
    assert bool(decode(indices)[0, [1, 4]].isnan().all())
    with pytest.raises(ValueError, match="finite"):
        fsq(x)  # eager


# -- export and trace ----------------------------------------------------------------------------


@pytest.mark.parametrize("config", VARIANTS[:4], ids=_id)
def test_export_of_a_fresh_module(config):
    ours, upstream = _pair(config)
    ours.eval(), upstream.eval()
    x = _input(ours, "sequence")
    program = torch.export.export(ours, (x,))
    targets = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    if ours.backend == "auto":
        assert "vqbench.fsq_quantize.default" in targets
    other = _input(ours, "sequence", seed=3)
    codes, indices = program.module()(other)
    with torch.no_grad():
        up_codes, up_indices = upstream(other)
    assert_same(codes, up_codes)
    assert_same(indices, up_indices)


def test_export_with_a_dynamic_batch():
    fsq = FSQ([8, 5, 5, 5]).eval()
    batch = torch.export.Dim("batch")
    program = torch.export.export(fsq, (torch.randn(4, 16, 4),), dynamic_shapes=({0: batch},))
    for size in (2, 7):
        x = torch.randn(size, 16, 4)
        codes, indices = program.module()(x)
        up_codes, up_indices = UpstreamFSQ([8, 5, 5, 5])(x)
        assert_same(codes, up_codes)
        assert_same(indices, up_indices)


@pytest.mark.filterwarnings("ignore:`torch.jit.trace:DeprecationWarning")
def test_jit_trace_of_a_fresh_module():
    ours, upstream = _pair(dict(levels=[8, 5, 5, 5], dim=10))
    ours.eval()
    traced = torch.jit.trace(ours, (_input(ours, "sequence"),))
    x = _input(ours, "sequence", seed=4)
    codes, indices = traced(x)
    with torch.no_grad():
        up_codes, up_indices = upstream(x)
    assert_same(codes, up_codes)
    assert_same(indices, up_indices)
    flat_codes = upstream.quantize(torch.randn(30, 4))
    traced = torch.jit.trace_module(
        ours, {"indices_to_codes": (up_indices,), "codes_to_indices": (flat_codes,)}
    )
    assert_same(traced.indices_to_codes(up_indices), upstream.indices_to_codes(up_indices))
    other_codes = upstream.quantize(torch.randn(30, 4))
    assert_same(traced.codes_to_indices(other_codes), upstream.codes_to_indices(other_codes))


# -- the custom operators ------------------------------------------------------------------------


def test_operators_pass_opcheck():
    """Schemas, fake implementations and autograd registrations agree with the real kernels."""
    z = torch.randn(64, 4, dtype=torch.float32) * 2
    for symmetric, hard_clamp in [(False, False), (True, False), (False, True)]:
        levels = [8, 5, 4, 3] if symmetric else [8, 5, 5, 3]
        args = (z.clone().requires_grad_(), levels, symmetric, hard_clamp, True, "auto", False)
        torch.library.opcheck(torch.ops.vqbench.fsq_quantize.default, args)
        grad = torch.randn_like(z)
        torch.library.opcheck(
            torch.ops.vqbench.fsq_quantize_backward.default, (z, grad, levels, symmetric, hard_clamp)
        )
    indices = torch.randint(0, 1000, (5, 7))  # opcheck compares without equal_nan: valid indices only
    torch.library.opcheck(torch.ops.vqbench.fsq_decode.default, (indices, [8, 5, 5, 5], False))
    z64 = z.double().requires_grad_()
    torch.library.opcheck(
        torch.ops.vqbench.fsq_quantize.default, (z64, [8, 5, 5, 5], False, False, False, "torch", False)
    )


# -- CUDA ----------------------------------------------------------------------------------------


@needs_cuda
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_forward_and_decode_do_not_synchronize_on_cuda(training):  # pragma: no cover - needs a GPU
    fsq = FSQ([8, 5, 5, 5], dim=16).cuda().train(training)
    x = torch.randn(4, 16, 32, 32, device="cuda", requires_grad=training)
    fsq(x)  # first call: per-device constants (thresholds) are found once, with host reads
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        codes, indices = fsq(x)
        if training:
            codes.square().sum().backward()
        fsq.indices_to_codes(indices)
    finally:
        torch.cuda.set_sync_debug_mode("default")


@needs_cuda
def test_forward_captures_in_a_cuda_graph():  # pragma: no cover - needs a GPU
    ours, upstream = _pair(dict(levels=[8, 8, 8, 6, 5]))
    ours, upstream = ours.cuda().eval(), upstream.cuda().eval()
    static = torch.randn(8, 4096, 5, device="cuda")
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream), torch.no_grad():
        for _ in range(3):  # warm-up outside the capture, as CUDA graphs require
            ours(static)
            ours.indices_to_codes(ours(static)[1])
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.no_grad():
        codes, indices = ours(static)
        decoded = ours.indices_to_codes(indices)
    for seed in range(3):
        static.copy_(torch.randn(8, 4096, 5, generator=torch.Generator().manual_seed(seed)).cuda())
        static[0, seed] = float("nan")
        graph.replay()
        with torch.no_grad():
            up_codes, up_indices = upstream(static)
        assert_same(codes, up_codes)
        assert int(indices[0, seed]) == -1
        finite = torch.isfinite(static).all(-1)
        assert_same(indices[finite], up_indices[finite])
        assert_same(decoded[finite], codes[finite])


@needs_cuda
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_fullgraph_compile_on_cuda(training):  # pragma: no cover - needs a GPU
    ours, upstream = _pair(dict(levels=[8, 5, 5, 5], dim=16))
    ours, upstream = ours.cuda().train(training), upstream.cuda().train(training)
    compiled = torch.compile(ours, fullgraph=True)
    x = torch.randn(4, 16, 32, 32, device="cuda")
    x1, x2 = x.clone().requires_grad_(training), x.clone().requires_grad_(training)
    codes, indices = compiled(x1)
    up_codes, up_indices = upstream(x2)
    assert_same(indices, up_indices)
    torch.testing.assert_close(codes, up_codes)
    if training:
        codes.square().sum().backward()
        up_codes.square().sum().backward()
        torch.testing.assert_close(x1.grad, x2.grad)
    mode = torch.compile(FSQ([8, 5, 5, 5]).cuda().eval(), fullgraph=True, mode="reduce-overhead")
    y = torch.randn(4, 4, 32, 32, device="cuda")
    with torch.no_grad():
        for _ in range(3):
            codes, indices = mode(y)
        assert_same(indices, UpstreamFSQ([8, 5, 5, 5]).cuda()(y)[1])
