"""Codebook usage of every selected quantizer over the suite's eval split (the usage engine)."""

import math

import pytest

pytestmark = pytest.mark.vqbench_quantizers()


def test_usage(quantizer_bench, quantizer_name, bench_device):
    info = quantizer_bench.usage(quantizer_name, device=bench_device)
    assert 0 < info["utilization"] <= 1
    assert 1 <= info["perplexity"] and math.isfinite(info["perplexity"])
    assert info["tokens"] > 0
