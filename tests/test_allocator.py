"""Workers keep freed memory in the process: a training step's big tensors do not fault in anew."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

STEP_FAULTS = r"""
import json, resource, sys, torch
from vqbench.suite._allocator import keep_freed_memory
from vqbench.quantizers import create_quantizer
from vqbench.suite.autoencoders import conv_autoencoder
taken = keep_freed_memory() if sys.argv[1] == "on" else None
torch.set_num_threads(1)
torch.manual_seed(0)
model = conv_autoencoder(1, 8, 4, 16, create_quantizer("vq-plain", dim=8, codebook_size=4096))
opt = torch.optim.Adam(model.parameters(), 1e-3)
x = torch.rand(16, 1, 28, 28)
def step():
    y, out = model(x)
    loss = (y - x).square().mean() + out.loss.sum()
    opt.zero_grad(); loss.backward(); opt.step()
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10
print(json.dumps({"taken": taken, "faults": faults}))
"""


def _faults_per_step(setting: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", STEP_FAULTS, setting], capture_output=True, text=True, check=True, timeout=300
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_vq_training_step_stops_faulting_its_pages_in_again():
    off, on = _faults_per_step("off"), _faults_per_step("on")
    if not on["taken"]:
        pytest.skip("this C library has no mallopt")
    # glibc's defaults hand the step's freed blocks back and fault them in again: ~20,000 a step
    assert on["faults"] * 10 < max(off["faults"], 1000), (off, on)


def test_workers_apply_it_when_they_start(monkeypatch):
    from vqbench.suite import _worker

    calls = []
    monkeypatch.setattr(_worker, "keep_freed_memory", lambda: calls.append(1) or True)
    _worker.prepare(_worker.WorkerSetup(engines={}))
    assert calls == [1]
