"""The training loop of the engines that train: seeded batches, the cell's precision, a plateau rule.

The usage engine fits a quantizer (with linear maps around it) to tokens; the reconstruction
engine trains an autoencoder with the quantizer as its bottleneck. Both train here: Adam steps on
random batches of the train split drawn from a generator seeded with the cell's seed; each step's
loss is the engine's loss plus ``aux_loss_weight`` x the quantizer's auxiliary loss, under the
cell's precision (``torch.autocast``, with a gradient scaler for float16). Steps run in chunks of
``eval_every`` (``vqbench.suite.convergence``); after each chunk below the cap the held-out
figures go to the :class:`~vqbench.suite.convergence.Plateau`, which says train on, cut the
learning rate, or stop. A chunk whose last loss is not finite stops training with an error.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ._common import aux_loss, positive_int
from .convergence import Plateau, scale_lr, split_monitor
from .precision import KIND_PRECISIONS, autocast_context, grad_scaler

#: An engine's loss on one batch: ``(loss, the quantizer's auxiliary loss or None)``.
LossFn = Callable[[torch.Tensor], tuple[torch.Tensor, "torch.Tensor | None"]]
#: The held-out figures of the criterion (``loss``, ``utilization``, ...), measured now.
HeldOutFn = Callable[[], dict[str, float]]


def check_training_precision(params: dict[str, Any], kind: str) -> str:
    """``params["dtype"]``, checked to be a precision that a training engine takes."""
    value = params["dtype"]
    if value not in KIND_PRECISIONS[kind]:
        raise ValueError(
            f"param 'dtype' must be one of {list(KIND_PRECISIONS[kind])} (training runs in float32 or "
            f"under autocast), got {value!r}"
        )
    return value


def step_with(opt: torch.optim.Optimizer, loss: torch.Tensor, scaler: Any) -> None:
    """Backward and an optimizer step, through ``scaler`` (float16 autocast) where there is one."""
    if scaler is None:
        loss.backward()
        opt.step()
        return
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()


def plateau_and_monitor(
    params: dict[str, Any], steps: int, train: torch.Tensor, seed: int
) -> tuple[Plateau, torch.Tensor, torch.Tensor | None]:
    """The stopping rule for a cap of ``steps``, and ``train`` split into (train, monitor) rows.

    The monitor holds ``monitor_samples`` seeded rows out of the train split (none when checks are
    off: ``eval_every`` 0).
    """
    plateau = Plateau.from_params(params, steps)
    count = positive_int(params, "monitor_samples", allow_zero=True) if plateau.eval_every else 0
    train, monitor = split_monitor(train, count, seed)
    return plateau, train, monitor


@dataclass
class TrainingLoop:
    """Trains with ``loss_of`` on batches of ``train`` until ``plateau`` stops it or its cap.

    ``optimizer`` None: the forward passes run (a quantizer may update buffers in training mode)
    but nothing steps. ``held_out`` None: no checks, exactly the cap. After :meth:`run`: ``steps``
    taken, ``train_s`` (wall seconds of the training steps), ``monitor_s`` (of the checks within
    the loop) and ``final_loss`` (the last step's loss; None without steps).
    """

    loss_of: LossFn
    train: torch.Tensor
    plateau: Plateau
    batch: int
    seed: int
    device: torch.device
    precision: str
    optimizer: torch.optim.Optimizer | None
    lr: float
    aux_loss_weight: float
    held_out: HeldOutFn | None = None
    steps: int = 0
    train_s: float = 0.0
    monitor_s: float = 0.0
    final_loss: float | None = None

    def rate(self) -> float:
        """The learning rate now (the first parameter group's; ``lr`` without an optimizer)."""
        return float(self.optimizer.param_groups[0]["lr"]) if self.optimizer is not None else self.lr

    def run(self) -> TrainingLoop:
        """Train every chunk of the plateau's schedule, stopping early where it converges."""
        gen = torch.Generator().manual_seed(self.seed)
        scaler = grad_scaler(self.device, self.precision)
        opt, train, cap = self.optimizer, self.train, self.plateau.max_steps
        for chunk in self.plateau.chunks():
            t0 = time.perf_counter()
            loss = None
            for _ in range(chunk):
                x = train[torch.randint(0, train.shape[0], (self.batch,), generator=gen)].to(self.device)
                with autocast_context(self.device, self.precision):
                    loss, aux = self.loss_of(x)
                    extra = aux_loss(aux)
                    if extra is not None and self.aux_loss_weight:
                        loss = loss + self.aux_loss_weight * extra
                if opt is not None:
                    opt.zero_grad(set_to_none=True)
                    step_with(opt, loss, scaler)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.train_s += time.perf_counter() - t0
            self.steps += chunk
            self.final_loss = float(loss.detach())
            if not math.isfinite(self.final_loss):
                raise FloatingPointError(
                    f"training diverged: the loss is {self.final_loss} after {self.steps} steps"
                )
            if self.held_out is not None and self.steps < cap:
                t0 = time.perf_counter()
                self._record()
                self.monitor_s += time.perf_counter() - t0
                action = self.plateau.check()
                if action == "converged":
                    break
                if action == "cut" and opt is not None:
                    scale_lr(opt, self.plateau.lr_decay)
        return self

    def record_end(self) -> None:
        """The last point of the curve: the held-out figures where training ended (at the cap, where
        no check ran), unless the loop's last check was there."""
        if self.held_out is None or not self.steps:
            return
        curve = self.plateau.curve
        if not curve or curve[-1]["step"] != self.steps:
            self._record()

    def summary(self) -> dict[str, Any]:
        """The plateau's summary of the steps taken (for ``extra``)."""
        return self.plateau.summary(self.steps)

    def _record(self) -> None:
        assert self.held_out is not None
        self.plateau.record(self.steps, **self.held_out(), lr=self.rate())


__all__ = [
    "TrainingLoop",
    "check_training_precision",
    "plateau_and_monitor",
    "step_with",
]
