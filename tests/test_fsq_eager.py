"""FSQ's eager calls: the kernels without the custom-operator dispatcher, same results as the operators."""

from __future__ import annotations

import pytest
import torch
from vector_quantize_pytorch import FSQ as UpstreamFSQ

from vqbench.quantizers.fsq import FSQ
from vqbench.quantizers.fsq import cpu as fsq_cpu
from vqbench.quantizers.fsq import ops as fsq_ops

PATHS = ["torch"] + (["cpu"] if fsq_cpu.available() else [])


def _ops_seen(fn) -> set[str]:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return {e.key for e in prof.key_averages()}


def _via_operator(m: FSQ, x: torch.Tensor):
    """The same call through the custom operator (what a compiled graph runs)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fsq_ops, "direct_call_ok", lambda t: False)
        return m(x)


@pytest.mark.parametrize("path", PATHS)
def test_eager_calls_skip_the_operator_and_match_it_bit_for_bit(path):
    m = FSQ([8, 5, 5, 5], backend=path)
    x = (torch.randn(2, 33, 4) * 2).requires_grad_()
    g = torch.randn(2, 33, 4)
    seen = _ops_seen(lambda: m(x)[0].backward(g))
    assert not any(k.startswith("vqbench::") for k in seen), sorted(seen)
    assert m.last_backend == path
    grad_eager, x.grad = x.grad, None
    codes, idx = m(x)
    codes_op, idx_op = _via_operator(m, x)
    codes_op.backward(g)
    assert torch.equal(codes, codes_op) and torch.equal(idx, idx_op) and torch.equal(grad_eager, x.grad)
    up_codes, up_idx = UpstreamFSQ([8, 5, 5, 5])(x)
    assert torch.equal(codes, up_codes) and torch.equal(idx, up_idx)
    # only the caller's own views of x appear in the graph: one node for FSQ, none for reshapes
    assert type(codes.grad_fn).__name__ == "_EagerQuantizeBackward"


@pytest.mark.parametrize(
    "shape, kwargs",
    [
        ((3, 4, 5, 6), {}),  # channel first: (b, d, h, w)
        ((0, 7, 4), {}),  # no rows
        ((1, 1, 4), {}),
        ((2, 5, 4), {"keep_num_codebooks_dim": True}),
        ((2, 9, 8), {"num_codebooks": 2}),  # the general path (rows per codebook)
        ((2, 9, 6), {"dim": 6}),  # projections
    ],
)
def test_eager_layouts_match_upstream(shape, kwargs):
    torch.manual_seed(0)
    ours = FSQ([8, 5, 5, 5], **kwargs)
    torch.manual_seed(0)
    theirs = UpstreamFSQ([8, 5, 5, 5], **kwargs)
    theirs.load_state_dict(ours.state_dict())
    x = (torch.randn(*shape) * 2).requires_grad_()
    a, ai = ours(x)
    b, bi = theirs(x)
    assert a.shape == b.shape and torch.equal(a, b) and torch.equal(ai, bi)
    if x.numel():
        g = torch.randn_like(a)
        (ga,) = torch.autograd.grad(a, x, g)
        (gb,) = torch.autograd.grad(b, x, g)
        assert torch.equal(ga, gb)


def test_eager_strided_and_low_precision_input():
    m, up = FSQ([8, 5, 5, 5]), UpstreamFSQ([8, 5, 5, 5])
    base = torch.randn(4, 40, 8) * 2
    strided = base[:, ::3, ::2]  # non-contiguous, odd row count
    assert torch.equal(m(strided)[0], up(strided)[0]) and torch.equal(m(strided)[1], up(strided)[1])
    for dtype in (torch.bfloat16, torch.float16, torch.float64):
        x = (base[..., :4] * 1).to(dtype).requires_grad_()
        a, b = m(x), up(x)
        assert a[0].dtype == dtype and torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        g = torch.randn_like(a[0])
        assert torch.equal(torch.autograd.grad(a[0], x, g)[0], torch.autograd.grad(b[0], x, g)[0])


def test_eager_checks_and_errors_stay():
    m = FSQ([8, 5, 5, 5], check_finite=True)
    x = torch.randn(3, 4)
    x[1, 2] = float("nan")
    with pytest.raises(ValueError, match="expected finite input to FSQ, got 1 NaN/Inf"):
        m(x)
    leaf = torch.randn(3, 4, requires_grad=True)
    y = leaf * 1
    codes, _ = FSQ([8, 5, 5, 5])(y)
    y.add_(1)  # modified in place after being saved for backward: autograd refuses, as with the operator
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        codes.sum().backward()
    codes, _ = FSQ([8, 5, 5, 5])(torch.randn(3, 4, requires_grad=True))
    with pytest.raises(RuntimeError, match="does not require grad|element 0 of tensors"):
        torch.autograd.grad(torch.autograd.grad(codes.sum(), codes, create_graph=True)[0].sum(), codes)


def test_compiled_and_traced_calls_still_see_the_operators():
    m = FSQ([8, 5, 5, 5])
    x = torch.randn(2, 16, 4)
    m(x)  # an eager call first: its cached path must not leak into the graph
    gm = torch.fx.experimental.proxy_tensor.make_fx(lambda t: m(t))(x)
    targets = {str(n.target) for n in gm.graph.nodes if n.op == "call_function"}
    assert "vqbench.fsq_quantize.default" in targets
    torch._dynamo.reset()
    compiled = torch.compile(m, fullgraph=True)
    assert torch.equal(compiled(x)[0], m(x)[0])
    seen = _ops_seen(lambda: compiled(x))
    assert any(k.startswith("vqbench::fsq_quantize") for k in seen)


@pytest.mark.parametrize("path", ["reference", *PATHS])
@pytest.mark.parametrize(
    "shape, kwargs",
    [((2, 33, 4), {}), ((2, 4, 3, 5), {}), ((2, 9, 8), {"num_codebooks": 2}), ((3, 6), {"dim": 6})],
)
def test_encode_gives_forward_indices_without_codes(path, shape, kwargs, monkeypatch):
    torch.manual_seed(0)
    m = FSQ([8, 5, 5, 5], backend=path, **kwargs)
    x = torch.randn(*shape) * 2
    x.view(-1)[7] = float("nan")
    expected = m(x)[1]
    if path == "cpu":
        seen = []
        original = fsq_cpu.forward
        monkeypatch.setattr(
            fsq_cpu, "forward", lambda *a, **k: seen.append(k["with_codes"]) or original(*a, **k)
        )
    got = m.encode(x)
    assert got.dtype == torch.int32 and torch.equal(got, expected) and m.last_backend == path
    if path == "cpu":
        assert seen == [False]  # the kernel wrote indices only
    with pytest.raises(ValueError, match="expected finite input"):
        FSQ([8, 5, 5, 5], backend=path, check_finite=True, **kwargs).encode(x)


def test_encode_compiles_whole_and_the_adapter_offers_it():
    from vqbench.quantizers import create_quantizer

    m = FSQ([8, 5, 5, 5])
    x = torch.randn(2, 64, 4)
    torch._dynamo.reset()
    compiled = torch.compile(m.encode, fullgraph=True)
    assert torch.equal(compiled(x), m(x)[1])
    q = create_quantizer("fsq", levels=[8, 5, 5, 5])
    y = torch.randn(5, 7, 4)
    assert torch.equal(q.encode(y), q(y).indices)


def test_operators_pass_opcheck_and_fake_strides_match():
    """Fake (meta) implementations give the real outputs' shapes and strides, strided input included."""
    from torch.library import opcheck

    idx = torch.randint(0, 1000, (6, 10), dtype=torch.int32)
    z = torch.randn(40, 4) * 2
    cases = [
        (torch.ops.vqbench.fsq_decode.default, (idx, [8, 5, 5, 5], False)),
        (torch.ops.vqbench.fsq_decode.default, (idx.t(), [8, 5, 5, 5], False)),  # transposed
        (torch.ops.vqbench.fsq_decode.default, (idx[:, ::3].to(torch.int16), [8, 5, 5, 5], False)),
        (torch.ops.vqbench.fsq_decode.default, (idx[:0], [8, 5, 5, 5], False)),
        (torch.ops.vqbench.fsq_encode.default, (z, [8, 5, 5, 5], False, False, "auto", False)),
        (torch.ops.vqbench.fsq_encode.default, (z[::2], [8, 5, 5, 5], True, False, "torch", False)),
        (torch.ops.vqbench.fsq_quantize.default, (z, [8, 5, 5, 5], False, False, True, "torch", False)),
        (torch.ops.vqbench.fsq_quantize.default, (z[::3], [8, 5, 5, 5], False, False, True, "auto", False)),
    ]
    for op, args in cases:
        opcheck(op, args, test_utils=("test_schema", "test_faketensor"))
    with pytest.MonkeyPatch.context() as mp:  # the torch fallback of decode (no C kernel)
        mp.setattr(fsq_cpu, "available", lambda: False)
        opcheck(torch.ops.vqbench.fsq_decode.default, (idx.t(), [8, 5, 5, 5], False))
        out = torch.ops.vqbench.fsq_decode(idx.t(), [8, 5, 5, 5], False)
        assert out.is_contiguous()
