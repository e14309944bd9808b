"""Timing helpers: statistics, a work-counting clock, copy bandwidth, peak memory."""

from __future__ import annotations

import math

import pytest
import torch

from vqbench.suite import timing


class WorkClock:
    """A clock that advances only when work is done: ``spend(s)`` adds ``s`` seconds."""

    def __init__(self) -> None:
        self.now = 0.0
        self.calls = 0

    def __call__(self) -> float:
        return self.now

    def spend(self, seconds: float) -> None:
        self.now += seconds
        self.calls += 1


@pytest.fixture
def work_clock(monkeypatch) -> WorkClock:
    clock = WorkClock()
    monkeypatch.setattr(timing, "clock", clock)
    return clock


def test_iqr_known_values():
    assert timing.iqr([1.0, 2.0, 3.0, 4.0, 5.0]) == 2.0
    assert timing.iqr([7.0]) == 0.0
    assert timing.iqr([]) == 0.0


@pytest.mark.parametrize("method", ["blocked", "adaptive"])
def test_known_cost_is_timed_exactly(work_clock, method):
    result = timing.time_cpu(lambda: work_clock.spend(0.002), min_run_time=0.05, method=method, threads=1)
    assert result.median == pytest.approx(0.002, rel=1e-6)
    assert result.iqr == pytest.approx(0.0, abs=1e-9)
    assert result.threads == 1
    assert result.repeats >= 1 and result.calls_per_repeat >= 1
    assert work_clock.calls >= result.repeats * result.calls_per_repeat
    assert result.as_dict()["threads"] == 1


def test_twice_the_work_takes_twice_the_time(work_clock):
    one = timing.time_cpu(lambda: work_clock.spend(1e-3), min_run_time=0.02)
    two = timing.time_cpu(lambda: work_clock.spend(2e-3), min_run_time=0.02)
    assert two.median / one.median == pytest.approx(2.0, rel=1e-6)


def test_spread_reflects_varying_cost(work_clock):
    costs = iter([1e-3, 3e-3] * 10_000)
    result = timing.time_cpu(lambda: work_clock.spend(next(costs)), min_run_time=0.05)
    assert 1e-3 <= result.median <= 3e-3
    assert result.iqr >= 0.0


def test_first_call_uses_the_clock(work_clock):
    assert timing.time_first_call(lambda: work_clock.spend(0.5)) == pytest.approx(0.5)


def test_threads_are_fixed_and_recorded():
    before = torch.get_num_threads()
    try:
        assert timing.fix_threads(1) == 1 == torch.get_num_threads()
        assert timing.fix_threads(None) == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="positive integer"):
        timing.fix_threads(0)


def test_bad_method_and_device():
    with pytest.raises(ValueError, match="'blocked' or 'adaptive'"):
        timing.time_cpu(lambda: None, method="fastest")
    with pytest.raises(ValueError, match="'cpu' or 'cuda'"):
        timing.device_type("meta")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            timing.time_fn(lambda: None, "cuda")


def test_real_clock_measures_something():
    x = torch.randn(4096)
    result = timing.time_cpu(lambda: torch.tanh(x), min_run_time=0.01)
    assert result.median > 0 and math.isfinite(result.median)
    assert min(result.times) <= result.median <= max(result.times)


def test_copy_bandwidth_is_positive_and_cached():
    first = timing.copy_bandwidth("cpu", nbytes=2**20)
    assert first > 0 and math.isfinite(first)
    assert timing.copy_bandwidth("cpu", nbytes=2**20) == first  # measured once per process


def test_peak_memory_counts_live_tensors():
    n = 2**18  # 1 MiB of float32

    def one():
        return torch.ones(n)

    def three():
        a, b = torch.ones(n), torch.ones(n)
        return a + b

    assert 2**20 <= timing.peak_memory(one) < 1.1 * 2**20
    assert 3 * 2**20 <= timing.peak_memory(three) < 3.3 * 2**20


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_timer_and_memory():
    x = torch.randn(2**20, device="cuda")
    result = timing.time_cuda(lambda: torch.tanh(x), warmup=2, repeats=10)
    assert result.repeats == 10 and result.median > 0
    assert result.extra["l2_flushed"] is True
    assert timing.peak_memory(lambda: torch.empty(2**20, device="cuda"), "cuda") >= 2**20
    assert timing.copy_bandwidth("cuda") > 0


def test_load_factor_is_the_wall_time_over_the_cpu_time(monkeypatch):
    from vqbench.suite import timing

    class Clocks:
        wall = cpu = 0.0

    def work():  # each call: 1 ms of CPU in 3 ms of wall, as on a core shared three ways
        Clocks.wall += 3e-3
        Clocks.cpu += 1e-3

    monkeypatch.setattr(timing, "control_workload", lambda device: work)
    monkeypatch.setattr(timing, "clock", lambda: Clocks.wall)
    monkeypatch.setattr(timing, "thread_clock", lambda: Clocks.cpu)
    assert timing.load_factor(0.1) == pytest.approx(3.0)
    monkeypatch.setattr(timing, "thread_clock", lambda: Clocks.wall / 100)
    assert timing.load_factor(0.1) == timing.MAX_LOAD_FACTOR
    monkeypatch.setattr(timing, "thread_clock", lambda: Clocks.wall)
    assert timing.load_factor(0.1) == 1.0
