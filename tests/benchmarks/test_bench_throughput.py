"""Throughput of every selected quantizer: operation x size x device, side by side per group.

``pytest tests/benchmarks --benchmark`` measures at the suite's sizes (``--benchmark-suite``);
plain ``pytest`` runs each once at a tiny size. The table groups by operation, device and size,
so the quantizers of one group are compared on the same work.
"""

import pytest

pytestmark = pytest.mark.vqbench_quantizers()


def test_throughput(quantizer_bench, quantizer_name, bench_operation, bench_size, bench_device):
    info = quantizer_bench(quantizer_name, bench_operation, bench_size, device=bench_device)
    assert info["vectors"] > 0 and info["bytes_moved"] > 0
    if not quantizer_bench.smoke and quantizer_bench.benchmark.enabled:
        assert info["vectors_per_s"] > 0 and info["effective_gbps"] > 0
