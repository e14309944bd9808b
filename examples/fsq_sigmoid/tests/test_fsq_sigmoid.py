"""SigmoidFSQ: checked, then benchmarked against vqbench's baselines.

``pytest`` runs every benchmark once at a tiny size; ``pytest --benchmark`` measures them and
prints pytest-benchmark's table with the variant beside the baselines in each group.
"""

import pytest
import torch

from vqbench.quantizers import create_quantizer, list_quantizers

CANDIDATE = "fsq-sigmoid"


def test_registered_through_the_entry_point():
    assert CANDIDATE in list_quantizers("fsq*")


def test_codes_decode_from_indices():
    q = create_quantizer(CANDIDATE, codebook_size=2**12)
    x = torch.randn(8, 32, q.dim)
    out = q(x)
    assert out.codes.shape == x.shape and out.indices.shape == x.shape[:-1]
    assert int(out.indices.max()) < q.codebook_size
    torch.testing.assert_close(q.indices_to_codes(out.indices), out.codes)


# The variant and the baselines, side by side in each group of the table.
@pytest.mark.vqbench_quantizers(CANDIDATE, "fsq", "fsq-upstream", "vq", "lfq")
@pytest.mark.parametrize("operation", ["forward", "train", "encode", "decode"])
def test_throughput(quantizer_bench, quantizer_name, operation):
    info = quantizer_bench(quantizer_name, operation)
    assert info["bytes_moved"] > 0


@pytest.mark.vqbench_quantizers(CANDIDATE, "fsq", "vq")
def test_usage(quantizer_bench, quantizer_name):
    info = quantizer_bench.usage(quantizer_name)
    assert 0 < info["utilization"] <= 1
