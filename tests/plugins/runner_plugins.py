"""Quantizer plugins that misbehave, for the runner's isolation tests.

Loaded as ``tests/plugins/runner_plugins.py:Name``.

``Exploding`` raises in forward; ``Hanging`` never returns; ``Crashing`` kills its own process;
``CrashingOnce`` kills its own process the first time only (a lost worker job whose cell then runs
again), keeping its mark in ``$VQBENCH_TEST_CRASH_MARK``;
``Slow`` sleeps ``$VQBENCH_TEST_SLOW_S`` seconds per forward (default 60) and writes its process id to
``$VQBENCH_TEST_PID_FILE`` when set. All of them are otherwise tiny scalar quantizers.

Each misbehaves only on inputs of more than ``TINY_VECTORS`` vectors: the pre-flight check's single
call on a tiny input passes, as it does for a quantizer whose fault shows at real sizes, so the cells
reach the workers whose isolation these tests exercise.
"""

from __future__ import annotations

import os
import signal
import time

import torch

from vqbench.quantizers import Quantizer, QuantizerOutput
from vqbench.quantizers._check import TINY_VECTORS


def _tiny(x: torch.Tensor) -> bool:
    """The pre-flight's tiny input (a real cell's batches are larger)."""
    return x.shape[:-1].numel() <= TINY_VECTORS


class _Rounding(Quantizer):
    """Rounds ``dim`` channels of tanh(x) to 4 levels each."""

    def __init__(self, dim: int | None = None, codebook_size: int | None = None) -> None:
        super().__init__()
        self.dim = dim or 4
        self.codebook_size = 4**self.dim
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        self.check_input(x)
        z = (torch.tanh(x * self.scale) + 1) * 1.5
        q = z + (z.round() - z).detach()
        digits = q.detach().round().long()
        radix = 4 ** torch.arange(self.dim, device=x.device)
        return QuantizerOutput(q / 1.5 - 1, (digits * radix).sum(-1), None)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        radix = 4 ** torch.arange(self.dim, device=indices.device)
        return ((indices.unsqueeze(-1) // radix) % 4).float() / 1.5 - 1


class Exploding(_Rounding):
    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        if _tiny(x):
            return super().forward(x)
        raise RuntimeError("boom: this quantizer always fails")


class Hanging(_Rounding):
    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        if _tiny(x):
            return super().forward(x)
        time.sleep(3600)
        return super().forward(x)


class Crashing(_Rounding):
    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        if _tiny(x):
            return super().forward(x)
        os.kill(os.getpid(), signal.SIGKILL)
        return super().forward(x)


class Slow(_Rounding):
    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        if _tiny(x):
            return super().forward(x)
        path = os.environ.get("VQBENCH_TEST_PID_FILE")
        if path:
            with open(path, "w") as fh:
                fh.write(str(os.getpid()))
        time.sleep(float(os.environ.get("VQBENCH_TEST_SLOW_S", "60")))
        return super().forward(x)


class StuckInC(_Rounding):
    """Writes its pid, then sleeps in C with the GIL held (``ctypes.PyDLL`` keeps it): no Python
    thread of the worker runs again."""

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        if _tiny(x):
            return super().forward(x)
        import ctypes

        with open(os.environ["VQBENCH_TEST_PID_FILE"], "w") as fh:
            fh.write(str(os.getpid()))
        ctypes.PyDLL(None).sleep(int(os.environ.get("VQBENCH_TEST_SLOW_S", "120")))
        return super().forward(x)


class CrashingOnce(_Rounding):
    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        if _tiny(x):
            return super().forward(x)
        mark = os.environ["VQBENCH_TEST_CRASH_MARK"]
        if not os.path.exists(mark):
            with open(mark, "w") as fh:
                fh.write(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return super().forward(x)


class SlowOnce(_Rounding):
    """Sleeps an hour the first time (writing ``pid slurm_job_id`` to ``$VQBENCH_TEST_SLOW_MARK``),
    so that a test can cancel the job that runs it; quick afterwards."""

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        if _tiny(x):
            return super().forward(x)
        mark = os.environ["VQBENCH_TEST_SLOW_MARK"]
        if not os.path.exists(mark):
            with open(mark + ".tmp", "w") as fh:
                fh.write(f"{os.getpid()} {os.environ.get('SLURM_JOB_ID', '')}")
            os.replace(mark + ".tmp", mark)
            time.sleep(3600)
        return super().forward(x)
