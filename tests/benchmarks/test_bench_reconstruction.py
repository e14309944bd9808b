"""Reconstruction with every selected quantizer as an autoencoder's bottleneck (the reconstruction engine)."""

import math

import pytest

pytestmark = pytest.mark.vqbench_quantizers()


def test_reconstruction(quantizer_bench, quantizer_name, bench_device):
    info = quantizer_bench.reconstruction(quantizer_name, device=bench_device)
    assert math.isfinite(info["psnr"]) and info["mse"] >= 0
    assert 0 < info["utilization"] <= 1
