"""FSQ's Triton paths: host functions and kernels in the interpreter on the CPU, and on CUDA where present.

The interpreter (``TRITON_INTERPRET=1``, read when Triton and ``fsq.triton`` are imported) runs the
kernels with numpy on CPU tensors, so each check runs in a fresh Python process. It has no libdevice:
the scripts give the kernels an exp-based ``tanh`` (the backward's results are then compared within
that approximation's error; everything else, bit for bit).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from vqbench.quantizers.fsq import triton as fsq_triton

needs_triton = pytest.mark.skipif(fsq_triton.triton is None, reason="triton is not installed")
CUDA = torch.cuda.is_available() and fsq_triton.available("cuda")
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device and Triton")

_PRELUDE = r"""
import torch, triton, triton.language as tl
from vector_quantize_pytorch import FSQ as Up
from vqbench.quantizers.fsq import paths, triton as T
from vqbench.quantizers.fsq import FSQ
assert T.INTERPRETING and T.available("cpu"), T.unavailable_reason("cpu")

@triton.jit
def _exp_tanh(u):
    return 1.0 - 2.0 / (tl.exp(2.0 * u) + 1.0)

T._tanh = _exp_tanh  # the interpreter has no libdevice
cpu = torch.device("cpu")

def consts(levels, **kw):
    sym, clamp = kw.get("preserve_symmetry", False), kw.get("bound_hard_clamp", False)
    c = paths.constants(levels, sym, clamp, cpu)
    return c.thresholds(), c.code_table(torch.float32), c.params.basis, c.params
"""


def _interpret(body: str, timeout: float = 600) -> None:
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    script = _PRELUDE + textwrap.dedent(body) + '\nprint("interpreter check passed")\n'
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=timeout
    )
    assert proc.returncode == 0 and "interpreter check passed" in proc.stdout, proc.stderr[-4000:]


@needs_triton
def test_forward_host_function_strided_odd_empty_and_low_precision_inputs():
    _interpret(
        r"""
        for levels in ([8, 5, 5, 5], [8, 8, 8, 5, 5, 5]):
            up, d = Up(levels), len(levels)
            thr, table, basis, _ = consts(levels)
            base = torch.randn(2 * 1025 + 1, d + 3) * 2
            for z in (base[::2, 1:d + 1], base[:1, :d], base[:0, :d], base[:1023, :d]):  # strided, odd, none
                assert z.shape[0] == 0 or z.shape[0] in (1, 1023) or not z.is_contiguous()
                codes, idx, bad = T.forward(z, thr, table, basis, mark_nonfinite=True)
                with torch.no_grad():
                    ec, ei = (t[0] for t in up(z.contiguous()[None]))
                assert torch.equal(codes, ec) and torch.equal(idx, ei) and bad == 0, (levels, z.shape)
                none, only, _ = T.forward(z, thr, table, basis, with_codes=False, check_finite=False)
                assert none is None and torch.equal(only, ei)  # encode: indices only, the same ones
            x = base[:700, :d]
            for dtype in (torch.bfloat16, torch.float16):
                low = x.to(dtype)
                with torch.no_grad():
                    ec, ei = (t[0] for t in up(low.float()[None]))
                codes, idx, _ = T.forward(low, thr, table, basis)  # read in its own dtype, widened exactly
                assert codes.dtype == torch.float32 and torch.equal(codes, ec) and torch.equal(idx, ei)
                codes, idx, _ = T.forward(low, thr, table.to(dtype), basis)  # codes in the input's dtype
                assert codes.dtype == dtype and torch.equal(codes, ec.to(dtype))
                assert torch.equal(idx, ei)
        # the public class, forced onto the Triton path (CPU tensors run only when asked for by name)
        m, up = FSQ([8, 5, 5, 5], backend="triton"), Up([8, 5, 5, 5])
        x = torch.randn(3, 257, 4) * 2
        out, idx = m(x)
        assert m.last_backend == "triton" and torch.equal(out, up(x)[0]) and torch.equal(idx, up(x)[1])
        assert torch.equal(m.encode(x), idx) and m.last_backend == "triton"
        auto = FSQ([8, 5, 5, 5])
        auto(x)
        assert auto.last_backend != "triton" and "triton" not in auto.available_backends("cpu")
        assert m(torch.randn(0, 4))[1].shape == (0,)
        """
    )


@needs_triton
def test_decode_host_function_reads_strided_indices():
    _interpret(
        r"""
        for levels in ([8, 5, 5, 5], [7, 5, 5, 5, 5]):
            up, d = Up(levels), len(levels)
            thr, table, basis, _ = consts(levels)
            n = up.codebook_size
            grid = torch.randint(0, n, (500, 7), dtype=torch.int64)
            for idx in (grid[::2, 0], grid[:, 3], grid[1::3, 2:5], grid.t(), grid[:0], grid[:1, 0]):
                for dtype in (torch.int64, torch.int32):
                    ind = idx.to(dtype) if dtype != torch.int64 else idx
                    got = T.decode(ind, table, basis)
                    expected = up.indices_to_codes(ind.contiguous().long())
                    assert got.shape == (*ind.shape, d) and torch.equal(got, expected), (levels, ind.stride())
            bad = torch.tensor([0, n, -1, 3])
            out = T.decode(bad, table, basis)
            assert torch.isnan(out[[1, 2]]).all() and not torch.isnan(out[[0, 3]]).any()
            try:
                T.decode(bad, table, basis, check_range=True)
                raise AssertionError("expected ValueError")
            except ValueError as exc:
                assert "2 value(s) outside" in str(exc)
        """
    )


@needs_triton
def test_backward_host_function_and_the_device_side_rounding():
    _interpret(
        r"""
        probe = T.rounding_probe("cpu")
        assert probe.known() == T.tanh_backward_rounding("cpu") and probe.flag.dtype == torch.int32
        for levels in ([8, 5, 5, 5], [8, 8, 8, 6, 5]):
            d = len(levels)
            for opts in ({}, {"preserve_symmetry": True}, {"bound_hard_clamp": True}):
                *_, p = consts(levels, **opts)
                base, gbase = torch.randn(1500, 2 * d) * 2, torch.randn(1500, 2 * d)
                z, g = base[::2, ::2], gbase[::2, 1::2]  # strided rows and channels
                rounding = 2 if opts.get("bound_hard_clamp") else probe.known()
                expected = T.backward_formulation(z.contiguous(), g.contiguous(), p, rounding)
                got = T.backward(z, g, p)
                if rounding == 2:
                    assert torch.equal(got, expected)
                else:
                    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
                    # MODE 3 (rounding not on the host yet) reads the probe's flag: the same result
                    for flag, mode in ((0, 0), (1, 1)):
                        zc, gc = z.contiguous(), g.contiguous()
                        outs = []
                        for m, ptr in ((mode, p.shift), (3, torch.tensor([flag], dtype=torch.int32))):
                            out = torch.empty_like(zc)
                            T._fsq_backward_kernel[(triton.cdiv(zc.shape[0], T.BLOCK_ROWS),)](
                                zc, gc, out, *T.backward_constants(p), ptr, zc.shape[0], D=d,
                                D_PAD=triton.next_power_of_2(d), BLOCK=T.BLOCK_ROWS, MODE=m)
                            outs.append(out)
                        assert torch.equal(outs[0], outs[1])
                assert T.backward(z[:0], g[:0], p).shape == (0, d)
        """
    )


@needs_cuda
def test_launches_follow_the_tensors_device():  # pragma: no cover - needs two GPUs
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA devices")
    from vector_quantize_pytorch import FSQ as Up

    from vqbench.quantizers.fsq import FSQ

    assert torch.cuda.current_device() == 0
    m, up = FSQ([8, 5, 5, 5], backend="triton").to("cuda:1"), Up([8, 5, 5, 5]).to("cuda:1")
    x = (torch.randn(4, 5000, 4, device="cuda:1") * 2).requires_grad_()
    codes, idx = m(x)
    ec, ei = up(x)
    assert torch.equal(codes, ec) and torch.equal(idx, ei)
    g = torch.randn_like(codes)
    assert torch.equal(torch.autograd.grad(codes, x, g)[0], torch.autograd.grad(ec, x, g)[0])
    assert torch.equal(m.indices_to_codes(idx[:, ::2]), up.indices_to_codes(idx[:, ::2].contiguous()))


@needs_cuda
def test_first_backward_on_a_device_does_not_synchronize():  # pragma: no cover - needs a GPU
    script = r"""
import torch
from vqbench.quantizers.fsq import FSQ
m = FSQ([8, 5, 5, 5], backend="triton").cuda()
x = (torch.randn(4, 4096, 4, device="cuda") * 2).requires_grad_()
g = torch.randn(4, 4096, 4, device="cuda")
torch.cuda.synchronize()
torch.cuda.set_sync_debug_mode("error")
m(x)[0].backward(g)  # the first backward in this process: the rounding probe starts here
torch.cuda.set_sync_debug_mode("default")
torch.cuda.synchronize()
print("no sync")
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "no sync" in proc.stdout, proc.stderr[-3000:]


@needs_cuda
def test_decode_of_strided_indices_on_cuda():  # pragma: no cover - needs a GPU
    from vector_quantize_pytorch import FSQ as Up

    from vqbench.quantizers.fsq import FSQ

    m, up = FSQ([8, 5, 5, 5]).cuda(), Up([8, 5, 5, 5]).cuda()
    idx = torch.randint(0, 1000, (500, 7), device="cuda")
    for view in (idx[::2, 0], idx[:, 3], idx.t()):
        assert torch.equal(m.indices_to_codes(view), up.indices_to_codes(view.contiguous()))
