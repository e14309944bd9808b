"""Throughput engine: figures that follow from counted work, the four operations, backends, errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from vqbench.quantizers import register_quantizer
from vqbench.suite import throughput, timing
from vqbench.suite.cells import Cell

TOYS = str(Path(__file__).with_name("_engine_toys.py"))
COST = 1e-6  # counted seconds per vector and pass


class WorkClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


CLOCK = WorkClock()


def _make_counted(passes: int):
    """A ToyFSQ whose every operation advances CLOCK by passes x COST per vector."""
    from vqbench.quantizers._registry import load_reference

    base = load_reference(f"{TOYS}:ToyFSQ")

    class Counted(base):
        def _spend(self, t: torch.Tensor) -> None:
            CLOCK.now += passes * COST * t.numel() / (t.shape[-1] if t.is_floating_point() else 1)

        def forward(self, x):
            self._spend(x)
            return super().forward(x)

        def encode(self, x):
            self._spend(x)
            return super().encode(x)

        def indices_to_codes(self, indices):
            self._spend(indices)
            return super().indices_to_codes(indices)

    return Counted


register_quantizer("test-counted-1x", lambda **kw: _make_counted(1)(**kw))
register_quantizer("test-counted-2x", lambda **kw: _make_counted(2)(**kw))


@pytest.fixture(scope="module")
def counted():
    """Rows of the 1x and 2x counted quantizers, timed with the work clock."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(timing, "clock", CLOCK)
        mp.setattr(timing, "thread_clock", CLOCK)
        mp.setattr(timing, "copy_bandwidth", lambda *a, **k: 10.0)
        mp.setattr(timing, "control_workload", lambda device: _counted_control)
        return {k: _by_metric(throughput.measure(_cell(f"test-counted-{k}"))) for k in ("1x", "2x")}


def _counted_control() -> None:
    CLOCK.now += 1024 * COST


def _cell(quantizer, config=None, params=None, backend="eager"):
    base = {"sizes": [4096], "min_run_time": 0.01, "memory": False}
    return Cell(
        "test",
        "throughput",
        quantizer,
        config or {"dim": 8, "codebook_size": 125},
        None,
        {},
        backend,
        "cpu",
        {**base, **(params or {})},
        0,
    )


def _by_metric(rows):
    return {r["metric"]: r for r in rows}


def test_counted_work_gives_exact_rates(counted):
    rows = counted["1x"]
    for op in ("forward", "train", "encode", "decode"):
        rate = rows[f"{op}.vectors_per_s@4096"]
        assert rate["value"] == pytest.approx(1 / COST, rel=1e-6), op
        assert rate["unit"] == "vectors/s" and rate["higher_is_better"] is True
        assert rows[f"{op}.time@4096"]["value"] == pytest.approx(4096 * COST, rel=1e-6)
        gbps = rows[f"{op}.effective_gbps@4096"]
        assert gbps["value"] == pytest.approx(gbps["extra"]["bytes"] / (4096 * COST) / 1e9, rel=1e-6)
        assert rows[f"{op}.copy_fraction@4096"]["value"] == pytest.approx(gbps["value"] / 10.0, rel=1e-6)
    assert rows["encode.vectors_per_s@4096"]["extra"]["encode_path"] == "encode"


def test_twice_the_work_halves_the_rate(counted):
    one, two = counted["1x"], counted["2x"]
    for op in ("forward", "encode", "decode"):
        ratio = one[f"{op}.vectors_per_s@4096"]["value"] / two[f"{op}.vectors_per_s@4096"]["value"]
        assert ratio == pytest.approx(2.0, rel=1e-6)


def test_relative_time_divides_by_the_interleaved_control(counted):
    one, two = counted["1x"], counted["2x"]
    for op in ("forward", "encode", "decode"):
        rel = one[f"{op}.relative_time@4096"]
        assert rel["value"] == pytest.approx(4.0, rel=1e-6)  # 4096 vectors / 1024 of control work
        assert rel["higher_is_better"] is False and len(rel["extra"]["samples"]) == rel["n"] == 9
        assert two[f"{op}.relative_time@4096"]["value"] == pytest.approx(8.0, rel=1e-6)
        assert one[f"{op}.control_time@4096"]["value"] == pytest.approx(1024 * COST, rel=1e-6)


def test_bytes_the_operations_must_move(counted):
    rows = counted["1x"]
    n, dim = 4096, 8
    fwd = rows["forward.effective_gbps@4096"]["extra"]["bytes_parts"]
    assert fwd["input"] == fwd["codes"] == n * dim * 4
    assert fwd["indices"] == n * 8  # int64
    assert fwd["state"] > 0  # the projections
    assert set(rows["encode.effective_gbps@4096"]["extra"]["bytes_parts"]) == {"input", "indices", "state"}
    assert set(rows["decode.effective_gbps@4096"]["extra"]["bytes_parts"]) == {"indices", "codes", "state"}
    train = rows["train.effective_gbps@4096"]["extra"]["bytes_parts"]
    assert train["grad_input"] == train["grad_codes"] == n * dim * 4


def test_real_run_all_figures():
    rows = throughput.measure(
        _cell(
            f"{TOYS}:ToyVQ",
            {"dim": 4, "codebook_size": 32, "num_codebooks": 2},
            {"sizes": [1000, 2048], "memory": True},
        )
    )
    by = _by_metric(rows)
    assert by["copy_bandwidth"]["value"] > 0 and by["copy_bandwidth"]["unit"] == "GB/s"
    for size in (1000, 2048):
        for op in throughput.OPERATIONS:
            rate, t = by[f"{op}.vectors_per_s@{size}"], by[f"{op}.time@{size}"]
            assert rate["value"] * t["value"] == pytest.approx(size, rel=1e-9)
            assert rate["n"] >= 1 and rate["spread"] >= 0
            assert rate["extra"]["size"] == size and rate["extra"]["threads"] == torch.get_num_threads()
            assert by[f"{op}.peak_memory@{size}"]["unit"] == "MiB"
            assert by[f"{op}.peak_memory@{size}"]["value"] > 0
    assert by["encode.vectors_per_s@2048"]["extra"]["encode_path"] == "forward"
    assert by["forward.effective_gbps@2048"]["extra"]["bytes_parts"]["indices"] == 2048 * 2 * 8
    assert by["forward.vectors_per_s@2048"]["extra"]["input_shape"] == [8, 256, 4]
    assert by["forward.vectors_per_s@1000"]["extra"]["input_shape"] == [1, 1000, 4]
    for r in rows:
        assert math.isfinite(r["value"])
        assert set(r) == {"metric", "value", "unit", "higher_is_better", "spread", "n", "extra"}


def test_backend_from_the_class_and_unknown_backend():
    cell = _cell(f"{TOYS}:ToyFSQ", params={"operations": ["forward"]}, backend="reference")
    rows = throughput.measure(cell)
    assert rows[1]["extra"]["backend"] == "reference"
    with pytest.raises(ValueError, match="backend 'triton' is not offered.*eager, compile, reference"):
        throughput.measure(_cell(f"{TOYS}:ToyFSQ", backend="triton"))


def test_compile_backend_reports_compile_time():
    cell = _cell(f"{TOYS}:ToyFSQ", params={"operations": ["decode"], "sizes": [512]}, backend="compile")
    rows = _by_metric(throughput.measure(cell))
    assert rows["decode.compile_time@512"]["value"] > 0
    assert rows["decode.compile_time@512"]["unit"] == "s"
    assert rows["decode.vectors_per_s@512"]["value"] > 0


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"size": [10]}, "unknown name.*'size'"),
        ({"sizes": [0]}, "'sizes' must be a list of positive integers"),
        ({"operations": ["backward"]}, "'operations' must be a non-empty list"),
        ({"timer": "best"}, "'timer' must be 'blocked' or 'adaptive'"),
        ({"dtype": "int8"}, "'dtype' must be one of"),
        ({"threads": 0}, "'threads' must be an integer >= 1"),
    ],
)
def test_bad_params(params, match):
    with pytest.raises(ValueError, match=match):
        throughput.measure(_cell(f"{TOYS}:ToyFSQ", params=params))


def test_cuda_cell_without_cuda_is_clear():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    cell = Cell("test", "throughput", f"{TOYS}:ToyFSQ", {}, None, {}, "eager", "cuda", {}, 0)
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        throughput.measure(cell)


@pytest.mark.parametrize("name", ["fsq", "vq"])
def test_registered_quantizers(name):
    rows = _by_metric(throughput.measure(_cell(name, {"dim": 8, "codebook_size": 256}, {"sizes": [1024]})))
    for op in throughput.OPERATIONS:
        assert rows[f"{op}.vectors_per_s@1024"]["value"] > 0


def test_a_compile_failure_of_the_pattern_matcher_is_retried_without_it_and_recorded():
    """Inductor's joint-graph pattern matcher fails on VectorQuantize's train step (torch 2.11-2.13)."""
    import torch._inductor.config as inductor_config

    class BackendCompilerFailed(RuntimeError):
        pass

    seen = []

    def step():
        seen.append(inductor_config.pattern_matcher)
        if inductor_config.pattern_matcher:
            raise BackendCompilerFailed(
                "backend='inductor' raised:\nRuntimeError: Node view was invalid, but is output"
            )

    cell = _cell("fsq", backend="compile")
    seconds, workaround = throughput._first_call(step, cell, "train")
    assert seen == [True, False] and seconds >= 0
    assert workaround == "inductor pattern_matcher off (RuntimeError: Node view was invalid, but is output)"
    eager = _cell("fsq")
    with pytest.raises(BackendCompilerFailed):
        throughput._first_call(step, eager, "train")
