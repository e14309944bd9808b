"""FSQ's paths: which one runs, clean fallback, forced paths, the CPU kernel's build, memory."""

from __future__ import annotations

import json
import os

import pytest
import torch

from vqbench.quantizers.fsq import FSQ, cpu_build, kernel_constants
from vqbench.quantizers.fsq import cpu as fsq_cpu
from vqbench.quantizers.fsq import triton as fsq_triton
from vqbench.suite.timing import peak_memory

needs_kernel = pytest.mark.skipif(not fsq_cpu.available(), reason=f"kernel: {fsq_cpu.unavailable_reason()}")


def _x(*shape, dtype=torch.float32, seed=0):
    return (torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 2).to(dtype)


@pytest.fixture
def no_kernel(monkeypatch):
    """The CPU kernel as on a machine without a C compiler (turned off through its variable)."""
    monkeypatch.setenv("VQBENCH_FSQ_CPU_KERNEL", "0")
    assert not cpu_build.reload()
    yield
    monkeypatch.undo()
    cpu_build.reload()  # as the environment was before


# -- which path runs -----------------------------------------------------------------------


@needs_kernel
def test_auto_picks_the_kernel_for_float32_on_the_cpu():
    fsq = FSQ([8, 5, 5, 5])
    assert fsq.backend == "auto" and fsq.last_backend is None
    with torch.no_grad():
        fsq(_x(10, 4))
    assert fsq.last_backend == "cpu"
    fsq.train()
    fsq(_x(10, 4).requires_grad_()).codes.sum().backward()
    assert fsq.last_backend == "cpu"


def test_auto_picks_by_compute_dtype():
    fsq = FSQ([8, 5, 5, 5])
    fsq(_x(10, 4, dtype=torch.float64))
    assert fsq.last_backend == "torch"  # the kernels compute in float32
    fsq(_x(10, 4, dtype=torch.bfloat16))
    assert fsq.last_backend in ("cpu", "torch")  # quantized in float32
    unforced = FSQ([8, 5, 5, 5], force_quantization_f32=False)
    unforced(_x(10, 4, dtype=torch.bfloat16))
    assert unforced.last_backend == "reference"  # upstream's bfloat16 arithmetic, replayed


def test_auto_falls_back_without_the_kernel(no_kernel):
    fsq = FSQ([8, 5, 5, 5])
    x = _x(300, 4)
    out = fsq(x)
    assert fsq.last_backend == "torch"
    expected = FSQ([8, 5, 5, 5], backend="reference")(x)
    assert torch.equal(out.codes, expected.codes) and torch.equal(out.indices, expected.indices)
    assert "cpu" not in FSQ.available_backends("cpu")
    assert "disabled" in fsq_cpu.unavailable_reason()


def test_forced_paths_that_cannot_run_raise(no_kernel):
    with pytest.raises(RuntimeError, match=r"'cpu' cannot run here: disabled.*backend='auto'"):
        FSQ([8, 5, 5, 5], backend="cpu")(_x(3, 4))
    reason = r"(triton is not installed|no CUDA device|input is on cpu)"
    with pytest.raises(RuntimeError, match=rf"'triton' cannot run here: {reason}"):
        FSQ([8, 5, 5, 5], backend="triton")(_x(3, 4))


def test_forced_paths_check_the_compute_dtype():
    with pytest.raises(RuntimeError, match=r"'cpu' cannot run here: .*float32.*torch.float64"):
        FSQ([8, 5, 5, 5], backend="cpu")(_x(3, 4, dtype=torch.float64))
    with pytest.raises(RuntimeError, match=r"'torch' cannot run here: .*torch.bfloat16"):
        FSQ([8, 5, 5, 5], backend="torch", force_quantization_f32=False)(_x(3, 4, dtype=torch.bfloat16))


def test_available_backends():
    cpu = FSQ.available_backends("cpu")
    assert cpu[:2] == ["reference", "torch"] and set(cpu) <= set(FSQ.BACKENDS)
    assert ("cpu" in cpu) == fsq_cpu.available()
    assert ("triton" in cpu) is False  # Triton runs on CUDA tensors only


def test_triton_module_is_import_safe_without_a_gpu():
    if fsq_triton.available("cuda"):
        pytest.skip("a GPU is here")
    assert fsq_triton.unavailable_reason() in ("triton is not installed", "no CUDA device")
    with pytest.raises(RuntimeError, match="Triton kernel is unavailable"):
        fsq_triton.forward(_x(4, 4), torch.zeros(4, 7), torch.zeros(4, 8), torch.ones(4, dtype=torch.int32))


def test_compiled_module_runs_the_fused_operator():
    """A compiled FSQ keeps vqbench's custom operator in its graph and gives the eager results."""
    graphs = []

    def capture(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    fsq = FSQ([8, 5, 5, 5]).eval()
    compiled = torch.compile(fsq, backend=capture, fullgraph=True)
    x = _x(257, 4)
    with torch.no_grad():
        out = compiled(x)
        expected = FSQ([8, 5, 5, 5], backend="reference")(x)
    targets = {str(node.target) for gm in graphs for node in gm.graph.nodes if node.op == "call_function"}
    assert any("fsq_quantize" in t for t in targets), targets
    assert torch.equal(out[0], expected[0]) and torch.equal(out[1], expected[1])


# -- the CPU kernel ------------------------------------------------------------------------


@needs_kernel
def test_kernel_threads_agree(monkeypatch):
    fsq = FSQ([8, 8, 8, 6, 5], backend="cpu")
    x = _x(200_003, 5)  # several chunks and a ragged tail block
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with torch.no_grad():
            one = fsq(x)
        torch.set_num_threads(max(2, threads))
        monkeypatch.setattr(fsq_cpu, "MIN_ROWS_PER_THREAD", 1000)
        with torch.no_grad():
            several = fsq(x)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one.codes, several.codes) and torch.equal(one.indices, several.indices)


@needs_kernel
@pytest.mark.parametrize("d", [1, 3, 9, 13])
def test_kernel_generic_and_specialised_widths(d):
    levels = [3 + (i % 6) for i in range(d)]
    x = _x(5000, d, seed=d)
    with torch.no_grad():
        out = FSQ(levels, backend="cpu")(x)
        expected = FSQ(levels, backend="reference")(x)
    assert torch.equal(out.codes, expected.codes) and torch.equal(out.indices, expected.indices)


@needs_kernel
def test_kernel_rejects_bad_arguments():
    prep = kernel_constants(FSQ([8, 5, 5, 5])).cpu_prepared()
    with pytest.raises(ValueError, match=r"float32 CPU tensor \(R, 4\).*torch.float64"):
        fsq_cpu.forward(_x(3, 4, dtype=torch.float64), prep)
    with pytest.raises(ValueError, match=r"\(R, 4\).*\(3, 5\)"):
        fsq_cpu.forward(_x(3, 5), prep)


def test_kernel_build_failure_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("VQBENCH_CACHE_DIR", str(tmp_path))
    fake = tmp_path / "cc"
    fake.write_text("#!/bin/sh\necho 'no such compiler' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(RuntimeError, match="could not compile the FSQ CPU kernel.*no such compiler"):
        cpu_build.build(str(fake))


@needs_kernel
def test_kernel_build_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("VQBENCH_CACHE_DIR", str(tmp_path))
    compiler = cpu_build.find_compiler()
    first = cpu_build.build(compiler)
    stamp = first.stat().st_mtime_ns
    second = cpu_build.build(compiler)
    assert first == second and second.parent == tmp_path and second.stat().st_mtime_ns == stamp
    assert [p.suffix for p in tmp_path.iterdir()] == [".so"]  # no temporary files left behind


@needs_kernel
def test_kernel_encode_writes_indices_only():
    prep = kernel_constants(FSQ([8, 8, 8, 6, 5])).cpu_prepared()
    x = _x(70_001, 5)
    codes, idx, bad = fsq_cpu.forward(x, prep)
    none, only, bad_too = fsq_cpu.forward(x, prep, with_codes=False)
    assert none is None and torch.equal(only, idx) and bad == bad_too == 0


@needs_kernel
def test_kernel_marks_non_finite_rows_in_its_pass():
    prep = kernel_constants(FSQ([8, 5, 5, 5])).cpu_prepared()
    x = _x(3000, 4)
    x[5, 1], x[7, 2], x[2999, 0] = float("nan"), float("inf"), -float("inf")
    codes, idx, bad = fsq_cpu.forward(x, prep, check_finite=False, mark_nonfinite=True)
    assert bad == 3
    assert idx[[5, 7, 2999]].tolist() == [-1, -1, -1] and bool((idx[:5] >= 0).all())
    assert torch.isnan(codes[5, 1]) and int(torch.isnan(codes).sum()) == 1
    assert codes[7, 2] == 1.0 and codes[2999, 0] == -1.0  # saturated, as tanh gives
    clean, clean_idx, _ = fsq_cpu.forward(x[:5], prep)
    assert torch.equal(codes[:5], clean) and torch.equal(idx[:5], clean_idx)


@needs_kernel
@pytest.mark.parametrize("levels", [[8, 5, 5, 5], [8, 8, 8, 6, 5], [8, 8, 8, 5, 5, 5], [3] * 11])
def test_kernel_decode_gives_the_forward_codes(levels):
    prep = kernel_constants(FSQ(levels)).cpu_prepared()
    x = _x(20_000, len(levels), seed=len(levels))
    codes, idx, _ = fsq_cpu.forward(x, prep)
    for dtype in (torch.int32, torch.int64, torch.int16):
        if dtype == torch.int16 and prep.codebook_size > 2**15:
            continue
        assert torch.equal(fsq_cpu.decode(idx.to(dtype), prep), codes), dtype
    assert fsq_cpu.decode(idx.view(40, 500), prep).shape == (40, 500, len(levels))
    assert prep.split * prep.decode_hi.shape[0] == prep.codebook_size
    assert max(prep.split, prep.decode_hi.shape[0]) < prep.codebook_size or prep.codebook_size <= 4096


@needs_kernel
def test_kernel_decode_rejects_indices_outside_the_codebook():
    prep = kernel_constants(FSQ([8, 5, 5, 5])).cpu_prepared()
    for bad in (-1, 1000, 2**31 - 1):
        with pytest.raises(ValueError, match=r"expected indices in \[0, 1000\), got 1 value"):
            fsq_cpu.decode(torch.tensor([0, bad, 999]), prep)
    with pytest.raises(ValueError, match="expected integer indices, got torch.float32"):
        fsq_cpu.decode(torch.zeros(3), prep)
    assert fsq_cpu.decode(torch.zeros(0, dtype=torch.int64), prep).shape == (0, 4)


@needs_kernel
def test_kernel_decode_threads_agree(monkeypatch):
    prep = kernel_constants(FSQ([8, 8, 8, 5, 5, 5])).cpu_prepared()
    idx = torch.randint(0, prep.codebook_size, (300_007,), generator=torch.Generator().manual_seed(0))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = fsq_cpu.decode(idx, prep)
        torch.set_num_threads(max(2, threads))
        monkeypatch.setattr(fsq_cpu, "MIN_ROWS_PER_THREAD", 1000)
        several = fsq_cpu.decode(idx, prep)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, several)


def _autograd_grad(levels, options, z, grad):
    """The gradient that autograd gives through upstream's FSQ itself."""
    from vector_quantize_pytorch import FSQ as UpstreamFSQ

    leaf = z.clone().requires_grad_(True)
    UpstreamFSQ(levels, **options)(leaf[None])[0][0].backward(grad)
    return leaf.grad


@needs_kernel
def test_kernel_backward_finds_atens_tanh_backward_rounding():
    assert fsq_cpu.tanh_backward_rounding() in (0, 1)


@needs_kernel
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"preserve_symmetry": True},
        {"bound_hard_clamp": True},
        {"preserve_symmetry": True, "bound_hard_clamp": True},
    ],
    ids=["plain", "symmetric", "hard-clamp", "symmetric-hard-clamp"],
)
def test_kernel_backward_matches_autograd(options, monkeypatch):
    levels = [8, 8, 8, 6, 5]
    params = kernel_constants(FSQ(levels, **options), torch.device("cpu")).params
    rows = 3 * 24 * 204 + 77  # several scratch chunks and a ragged tail block (204 rows per block)
    z, grad = _x(rows, 5, seed=3), _x(rows, 5, seed=4)
    expected = _autograd_grad(levels, options, z, grad)
    assert torch.equal(fsq_cpu.backward(z, grad, params), expected)
    monkeypatch.setattr(fsq_cpu, "MIN_ROWS_PER_THREAD", 1000)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(max(2, threads))
        assert torch.equal(fsq_cpu.backward(z, grad, params), expected)
    finally:
        torch.set_num_threads(threads)


@needs_kernel
def test_kernel_backward_rejects_bad_arguments():
    params = kernel_constants(FSQ([8, 5, 5, 5]), torch.device("cpu")).params
    with pytest.raises(ValueError, match=r"float32 CPU tensor \(R, 4\).*\(3, 5\)"):
        fsq_cpu.backward(_x(3, 5), _x(3, 5), params)
    with pytest.raises(ValueError, match=r"grad_codes like z.*torch.float64"):
        fsq_cpu.backward(_x(3, 4), _x(3, 4, dtype=torch.float64), params)


def test_training_runs_the_kernel_backward(monkeypatch):
    """The public class's backward goes through the one-pass kernel where it can run."""
    if not fsq_cpu.available():
        pytest.skip(f"kernel: {fsq_cpu.unavailable_reason()}")
    calls = []
    original = fsq_cpu.backward_unchecked

    def spy(*args, **kwargs):
        calls.append(args[0].shape)
        return original(*args, **kwargs)

    monkeypatch.setattr(fsq_cpu, "backward_unchecked", spy)
    monkeypatch.setattr(fsq_cpu, "MIN_ROWS_PER_THREAD", 1000)
    x = _x(2, 50_000, 4).requires_grad_()
    grad = _x(2, 50_000, 4, seed=1)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(max(2, threads))  # chunks on pool threads, where grad mode is on
        FSQ([8, 5, 5, 5])(x)[0].backward(grad)
    finally:
        torch.set_num_threads(threads)
    assert calls == [torch.Size([100_000, 4])]
    expected = _autograd_grad([8, 5, 5, 5], {}, x.detach().reshape(-1, 4), grad.reshape(-1, 4))
    assert torch.equal(x.grad, expected.view(2, 50_000, 4))


# -- memory --------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", [b for b in FSQ.available_backends("cpu") if b != "reference"])
def test_inference_allocates_nothing_larger_than_its_outputs(backend):
    fsq = FSQ([8, 5, 5, 5], backend=backend).eval()
    x = _x(1, 100_000, 4)
    with torch.no_grad():
        out = fsq(x)
        peak = peak_memory(lambda: fsq(x))
    outputs = out.codes.numel() * 4 + out.indices.numel() * 4
    assert outputs <= peak <= 2 * outputs  # outputs, plus at most an index-sized float buffer
    if backend == "cpu":
        assert peak == outputs


# -- the speed benchmark runs (its numbers are for people, not for tests) -------------------


def test_speed_benchmark_smoke(tmp_path, capsys):
    from vqbench.suite import fsq_speed

    target = tmp_path / "speed.json"
    argv = ["--quick", "--no-compile", "--vectors", "3000", "--threads", "1", "--min-run-time", "0.01"]
    threads = torch.get_num_threads()
    code = fsq_speed.main([*argv, "--json", str(target)])
    assert code in (0, 1) and torch.get_num_threads() == threads  # the thread count is restored
    printed = capsys.readouterr().out
    assert "Goals" in printed and "upstream" in printed
    data = json.loads(target.read_text())
    sections = {f["section"] for f in data["figures"]}
    assert sections == {
        "inference", "encode", "decode", "training", "memory", "per-call forward-grad", "per-call training"
    }  # fmt: skip
    per_call = {(f["section"], f["vectors"], f["contender"]) for f in data["figures"]}
    assert ("per-call training", 4096, "vqbench") in per_call
    assert ("per-call forward-grad", 16, "upstream") in per_call
    assert any(g["goal"] == "per call: training 16 vectors vs upstream" for g in data["goals"])
    decode_sizes = {f["vectors"] for f in data["figures"] if f["section"] == "decode"}
    assert decode_sizes == {3000, fsq_speed.DECODE_SMALL}
    assert {g["goal"].split()[0] for g in data["goals"]} >= {"inference", "training", "inference:"}
    assert data["environment"]["threads"] == 1
    paths = {f["path"] for f in data["figures"]}
    assert "upstream" in paths and data["auto_path"] in paths
    assert all(f["ratio_compiled"] is None for f in data["figures"])  # no compiled anchor asked for
    assert os.path.getsize(target) > 0


def test_speed_benchmark_compiled_anchor():
    """Compiled upstream is a contender of its own, its compile time apart from its timings."""
    from vqbench.suite import fsq_speed

    figures = fsq_speed.bench("decode", [8, 5, 5, 5], 2048, "cpu", 1, 1, 0.01, ["torch"])
    by_name = {f.contender: f for f in figures}
    assert set(by_name) == {fsq_speed.UPSTREAM, fsq_speed.COMPILED, "vqbench:torch"}
    anchor = by_name[fsq_speed.COMPILED]
    assert anchor.compile_s is not None and anchor.compile_s > anchor.median_s
    assert anchor.ratio_compiled == pytest.approx(1.0)
    ours = by_name["vqbench:torch"]
    assert ours.compile_s is None
    assert ours.ratio_compiled == pytest.approx(anchor.median_s / ours.median_s)


def test_speed_benchmark_model_runs_the_fused_operator():
    """In the compiled linear -> FSQ -> linear model, vqbench's FSQ dispatches its custom operator."""
    from vqbench.suite import fsq_speed
    from vqbench.suite.fsq_speed.contenders import model_contenders
    from vqbench.suite.fsq_speed.sections import runs_fused_op

    torch._dynamo.reset()
    contenders = model_contenders([8, 5, 5, 5], 512, "cpu", train=True)
    assert set(contenders) == {fsq_speed.COMPILED, "vqbench-compiled"}
    assert runs_fused_op(contenders["vqbench-compiled"].fn)
    assert not runs_fused_op(contenders[fsq_speed.COMPILED].fn)


# -- the Triton kernels' logic without a GPU (Triton's interpreter) -------------------------

_INTERPRETER_CHECK = r"""
import torch, triton, triton.language as tl
from vector_quantize_pytorch import FSQ as Up
from vqbench.quantizers.fsq import triton as T
from vqbench.quantizers.fsq import FSQ, kernel_constants

@triton.jit
def _exp_tanh(u):
    return 1.0 - 2.0 / (tl.exp(2.0 * u) + 1.0)

T._tanh = _exp_tanh  # the interpreter has no libdevice; the clamp variant below needs no tanh
cpu = torch.device("cpu")
for levels in ([8, 5, 5, 5], [8, 8, 8, 6, 5]):
    m, up, d, rows = FSQ(levels), Up(levels), len(levels), 3000
    c = kernel_constants(m, cpu)
    thr, table, basis = c.thresholds(), c.code_table(torch.float32), c.params.basis
    z = torch.randn(rows, d) * 2
    z[5, 1], z[7, 2] = float("nan"), float("inf")
    codes, idx = torch.empty(rows, d), torch.empty(rows, dtype=torch.int32)
    bad = torch.zeros(1, dtype=torch.int32)
    grid = (triton.cdiv(rows, T.BLOCK_ROWS),)
    T._fsq_kernel[grid](z, codes, idx, bad, thr, table, basis, rows, D=d, D_PAD=triton.next_power_of_2(d),
        J=thr.shape[1], L_MAX=table.shape[1], BLOCK=T.BLOCK_ROWS, WITH_CODES=True, WITH_INDICES=True,
        CHECK=True, MARK=True)
    with torch.no_grad():
        ec, ei = (t[0] for t in up(z[None]))
    ok = torch.ones(rows, dtype=torch.bool)
    ok[[5, 7]] = False
    assert torch.equal(codes[ok], ec[ok]) and torch.equal(idx[ok], ei[ok])
    assert idx[5] == -1 and idx[7] == -1 and torch.isnan(codes[5, 1]) and bad.item() == 2
    n = m.codebook_size
    ind = torch.cat([torch.arange(n), torch.tensor([-1, n, 2**31 - 1, -2**40])])
    out, bad = torch.empty(ind.numel(), d), torch.zeros(1, dtype=torch.int32)
    T._fsq_decode_kernel[(triton.cdiv(ind.numel(), T.BLOCK_ROWS),)](ind, out, bad, table, basis, ind.numel(),
        D=d, D_PAD=triton.next_power_of_2(d), L_MAX=table.shape[1],
        L_PAD=triton.next_power_of_2(table.shape[1]), BLOCK=T.BLOCK_ROWS, CHECK=True)
    assert torch.equal(out[:n], up.indices_to_codes(torch.arange(n)))
    assert bool(torch.isnan(out[n:]).all()) and bad.item() == 4
    for opts, mode in (({"bound_hard_clamp": True}, 2), ({}, 0), ({"preserve_symmetry": True}, 0)):
        p = kernel_constants(FSQ(levels, **opts), cpu).params
        z, g = torch.randn(rows, d) * 2, torch.randn(rows, d)
        leaf = z.clone().requires_grad_()
        Up(levels, **opts)(leaf[None])[0][0].backward(g)
        gz = torch.empty_like(z)
        T._fsq_backward_kernel[grid](z, g, gz, *T.backward_constants(p), p.shift, rows, D=d,
            D_PAD=triton.next_power_of_2(d), BLOCK=T.BLOCK_ROWS, MODE=mode)
        if mode == 2:
            assert torch.equal(gz, leaf.grad)
        else:  # an approximate tanh here: the rest of the arithmetic checked to within its error
            torch.testing.assert_close(gz, leaf.grad, rtol=1e-5, atol=1e-5)
print("interpreter check passed")
"""


@pytest.mark.skipif(fsq_triton.triton is None, reason="triton is not installed")
def test_triton_kernels_logic_in_the_interpreter():
    """Forward (with marking), decode and backward kernels run in Triton's CPU interpreter."""
    import subprocess
    import sys

    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", _INTERPRETER_CHECK], capture_output=True, text=True, env=env, timeout=900
    )
    assert proc.returncode == 0 and "interpreter check passed" in proc.stdout, proc.stderr[-3000:]
