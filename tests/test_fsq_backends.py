"""FSQ's paths: which one runs, clean fallback, forced paths, the CPU kernel's build, memory."""

from __future__ import annotations

import json
import os

import pytest
import torch

from vqbench.quantizers import _fsq_cpu, _fsq_triton
from vqbench.quantizers.fsq import FSQ
from vqbench.suite.timing import peak_memory

needs_kernel = pytest.mark.skipif(not _fsq_cpu.available(), reason=f"kernel: {_fsq_cpu.unavailable_reason()}")


def _x(*shape, dtype=torch.float32, seed=0):
    return (torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 2).to(dtype)


@pytest.fixture
def no_kernel(monkeypatch):
    """The CPU kernel as on a machine without a C compiler (turned off through its variable)."""
    monkeypatch.setattr(_fsq_cpu, "_state", {})
    monkeypatch.setenv("VQBENCH_FSQ_CPU_KERNEL", "0")
    assert not _fsq_cpu.available()


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
    assert "disabled" in _fsq_cpu.unavailable_reason()


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
    assert ("cpu" in cpu) == _fsq_cpu.available()
    assert ("triton" in cpu) is False  # Triton runs on CUDA tensors only


def test_triton_module_is_import_safe_without_a_gpu():
    if _fsq_triton.available("cuda"):
        pytest.skip("a GPU is here")
    assert _fsq_triton.unavailable_reason() in ("triton is not installed", "no CUDA device")
    with pytest.raises(RuntimeError, match="Triton kernel is unavailable"):
        _fsq_triton.forward(_x(4, 4), torch.zeros(4, 7), torch.zeros(4, 8), torch.ones(4, dtype=torch.int32))


def test_compiled_module_matches_eager():
    """torch.compile traces the reference arithmetic (the kernels are opaque to it)."""
    fsq = FSQ([8, 5, 5, 5]).eval()
    compiled = torch.compile(fsq, backend="eager")
    x = _x(257, 4)
    with torch.no_grad():
        out = compiled(x)
        assert fsq.last_backend == "reference"
        expected = fsq(x)
    assert torch.equal(out.codes, expected.codes) and torch.equal(out.indices, expected.indices)


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
        monkeypatch.setattr(_fsq_cpu, "_MIN_ROWS_PER_THREAD", 1000)
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
    prep = FSQ([8, 5, 5, 5])._cpu_prepared()
    with pytest.raises(ValueError, match=r"float32 CPU tensor \(R, 4\).*torch.float64"):
        _fsq_cpu.forward(_x(3, 4, dtype=torch.float64), prep)
    with pytest.raises(ValueError, match=r"\(R, 4\).*\(3, 5\)"):
        _fsq_cpu.forward(_x(3, 5), prep)


def test_kernel_build_failure_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("VQBENCH_CACHE_DIR", str(tmp_path))
    fake = tmp_path / "cc"
    fake.write_text("#!/bin/sh\necho 'no such compiler' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(RuntimeError, match="could not compile the FSQ CPU kernel.*no such compiler"):
        _fsq_cpu._build(str(fake))


@needs_kernel
def test_kernel_build_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("VQBENCH_CACHE_DIR", str(tmp_path))
    compiler = _fsq_cpu._compiler()
    first = _fsq_cpu._build(compiler)
    stamp = first.stat().st_mtime_ns
    second = _fsq_cpu._build(compiler)
    assert first == second and second.parent == tmp_path and second.stat().st_mtime_ns == stamp
    assert [p.suffix for p in tmp_path.iterdir()] == [".so"]  # no temporary files left behind


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
    argv = ["--quick", "--vectors", "3000", "--threads", "1", "--min-run-time", "0.01", "--json", str(target)]
    threads = torch.get_num_threads()
    code = fsq_speed.main(argv)
    assert code in (0, 1) and torch.get_num_threads() == threads  # the thread count is restored
    printed = capsys.readouterr().out
    assert "Goals" in printed and "upstream" in printed
    data = json.loads(target.read_text())
    sections = {f["section"] for f in data["figures"]}
    assert sections == {"inference", "training", "memory"}
    assert {g["goal"].split()[0] for g in data["goals"]} >= {"inference", "training", "inference:"}
    assert data["environment"]["threads"] == 1
    paths = {f["path"] for f in data["figures"]}
    assert "upstream" in paths and data["auto_path"] in paths
    assert os.path.getsize(target) > 0
