"""Every registered quantizer on every backend it offers; planning and building read one declaration."""

from __future__ import annotations

import pytest
import torch

from vqbench.quantizers import (
    backend_unavailable,
    list_quantizers,
    offered_backends,
    register_quantizer,
)
from vqbench.quantizers._registry import REGISTRY
from vqbench.suite import throughput
from vqbench.suite._common import build_quantizer
from vqbench.suite.cells import Cell
from vqbench.suite.expand import expand_profile
from vqbench.suite.profiles import parse_profile

CUDA = torch.cuda.is_available()
DEVICES = ["cpu"] + (["cuda"] if CUDA else [])


def _cases():
    for name in list_quantizers():
        for backend, types in offered_backends(name).items():
            for device in ("cpu", "cuda"):
                if types is not None and device not in types:
                    continue
                marks = [] if device != "cuda" or CUDA else [pytest.mark.skip(reason="needs a CUDA device")]
                yield pytest.param(name, backend, device, id=f"{name}-{backend}-{device}", marks=marks)


def _cell(name, backend, device, benchmark="throughput", params=None):
    config = {"codebook_size": 256}
    return Cell("test", benchmark, name, config, None, {}, backend, device, params or {}, 0)


@pytest.mark.parametrize("name, backend, device", list(_cases()))
def test_every_quantizer_builds_and_runs_on_every_backend_it_offers(name, backend, device):
    torch.manual_seed(0)
    call, module = build_quantizer(_cell(name, backend, device))
    module.train()
    x = torch.randn(12, module.dim, device=device, requires_grad=True)
    out = call(x)
    assert out.codes.shape == x.shape and out.codes.dtype == x.dtype
    assert torch.isfinite(out.codes).all()
    expected = (12,) if module.num_codebooks == 1 else (12, module.num_codebooks)
    assert tuple(out.indices.shape) == expected
    (out.codes.square().sum() + (out.loss if out.loss is not None else 0)).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    with torch.no_grad():
        decoded = module.indices_to_codes(out.indices)
    assert decoded.shape[-1] == module.dim
    if name == "fsq" and backend not in ("eager", "compile"):
        assert module.inner.last_backend == backend  # the path the cell names is the one that ran


def test_fsq_declares_its_paths_with_their_devices():
    offered = offered_backends("fsq")
    assert list(offered) == ["eager", "compile", "reference", "torch", "cpu", "triton"]
    assert offered["triton"] == ("cuda",) and offered["cpu"] == ("cpu",) and offered["torch"] is None
    assert backend_unavailable(offered, "triton", "cpu") == (
        "backend 'triton' runs on cuda devices only, not on 'cpu'"
    )
    assert backend_unavailable(offered, "torch", "cuda:1") == ""
    assert "not offered" in backend_unavailable(offered_backends("fsq-upstream"), "torch", "cpu")


def test_planning_and_building_read_the_same_declaration():
    profile = parse_profile(
        {
            "suite": {"name": "t", "quantizers": ["fsq", "fsq-upstream"], "devices": ["cpu", "cuda"]},
            "benchmarks": {
                "throughput": {"backends": ["eager", "reference", "torch", "cpu", "triton"], "sizes": [64]}
            },
        },
        source="test",
    )
    cells = expand_profile(profile).cells
    planned = {(c.quantizer, c.backend, c.device) for c in cells}
    assert ("fsq", "triton", "cuda") in planned and ("fsq", "triton", "cpu") not in planned
    assert ("fsq", "cpu", "cpu") in planned and ("fsq", "cpu", "cuda") not in planned
    assert {b for q, b, _ in planned if q == "fsq-upstream"} == {"eager"}
    for cell in cells:
        if cell.device == "cpu":
            build_quantizer(cell)  # every planned CPU cell builds
    with pytest.raises(ValueError, match="'triton' runs on cuda devices only, not on 'cpu'"):
        build_quantizer(_cell("fsq", "triton", "cpu"))
    with pytest.raises(ValueError, match="'torch' is not offered; expected one of eager, compile"):
        build_quantizer(_cell("fsq-upstream", "torch", "cpu"))


@pytest.mark.parametrize("backend", ["reference", "torch", "cpu"])
def test_fsq_throughput_cells_measure_on_every_cpu_path(backend):
    params = {"sizes": [256], "min_run_time": 0.001, "memory": False, "operations": ["forward", "train"]}
    rows = throughput.measure(_cell("fsq", backend, "cpu", params=params))
    rates = {r["metric"]: r for r in rows}
    assert rates["forward.vectors_per_s@256"]["value"] > 0 and rates["train.vectors_per_s@256"]["value"] > 0
    assert rates["forward.vectors_per_s@256"]["extra"]["backend"] == backend


def test_a_factory_function_declares_backends_for_its_cells():
    from tests._engine_toys import ToyFSQ

    def toy(**config):
        return ToyFSQ(**config)

    toy.BACKENDS = {"reference": ("cpu",)}
    register_quantizer("test-offered-toy", toy)
    try:
        assert offered_backends("test-offered-toy") == {"eager": None, "compile": None, "reference": ("cpu",)}
        _, module = build_quantizer(_cell("test-offered-toy", "reference", "cpu"))
        assert module.backend == "reference"
        toy.BACKENDS = "reference"
        with pytest.raises(TypeError, match="BACKENDS must be a sequence of names or a mapping"):
            offered_backends("test-offered-toy")
        toy.BACKENDS = {"compile": None}
        with pytest.raises(ValueError, match="expected names other than"):
            offered_backends("test-offered-toy")
        toy.BACKENDS = {"reference": "cpu"}
        with pytest.raises(TypeError, match=r"expected None \(any device\) or a tuple of device types"):
            offered_backends("test-offered-toy")
    finally:
        REGISTRY.remove("test-offered-toy")
