"""Training to convergence: a plateau criterion on held-out figures, with a step cap.

The usage and reconstruction engines train in chunks of ``eval_every`` steps
(``vqbench.suite.training``); after each chunk they measure held-out figures (a monitor split
carved from the train split, never the eval split) and append a point to the curve: step,
held-out loss, utilization (and PSNR where there is one).
A check finds a *plateau* when, at or after ``min_steps``, the best held-out loss of the last
``plateau_window`` steps is at most ``loss_tol`` (relative) below the best before them, and every
other figure the cell reports moved by at most its tolerance over those steps: utilization by
``util_tol`` and perplexity by ``perplexity_tol`` (relative; None: ``util_tol``).

The learning rate follows the plateaus (as ``ReduceLROnPlateau`` does, but waiting for every
figure, not the loss alone: a rate cut while utilization still climbs freezes it where it was):
each of the first ``lr_cuts`` plateaus multiplies the rate by ``lr_decay`` and the window starts
again from that step; the plateau after the last cut ends training as converged. ``lr_cuts`` 0
keeps the rate constant and stops at the first plateau. Training also stops at the step cap,
then not converged, even where the last window happens to be flat. The rows record the steps
taken, the steps where the rate was cut, whether training converged (``stopped_by``: plateau or
cap; ``moving_at_end``: what still moved), and the whole curve, so a reader sees whether a figure
had stopped moving.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._common import positive_float, positive_int

#: Engine parameters of the criterion, with their defaults (merged into each engine's ``PARAMS``).
CONVERGENCE_PARAMS: dict[str, Any] = {
    "eval_every": 100,
    "plateau_window": 500,
    "min_steps": 0,
    "loss_tol": 0.01,
    "util_tol": 0.02,
    "perplexity_tol": None,
    "lr_cuts": 0,
    "lr_decay": 0.2,
    "monitor_samples": 1024,
}


@dataclass
class Plateau:
    """The stopping rule and the curve it reads (see the module docstring)."""

    max_steps: int
    eval_every: int = 100
    window: int = 500
    min_steps: int = 0
    loss_tol: float = 0.01
    util_tol: float = 0.02
    lr_cuts: int = 0
    lr_decay: float = 0.2
    perplexity_tol: float | None = None
    curve: list[dict[str, float]] = field(default_factory=list)
    cuts: list[int] = field(default_factory=list)  # steps at which the learning rate was cut
    stopped: bool = False  # a check returned "converged" (the cap never converges)

    @classmethod
    def from_params(cls, params: dict[str, Any], max_steps: int) -> Plateau:
        """The rule from engine ``params`` (``eval_every`` 0: no checks, train ``max_steps``)."""
        return cls(
            max_steps=max_steps,
            eval_every=positive_int(params, "eval_every", allow_zero=True),
            window=positive_int(params, "plateau_window"),
            min_steps=positive_int(params, "min_steps", allow_zero=True),
            loss_tol=positive_float(params, "loss_tol", allow_zero=True),
            util_tol=positive_float(params, "util_tol", allow_zero=True),
            lr_cuts=positive_int(params, "lr_cuts", allow_zero=True),
            lr_decay=lr_decay(params["lr_decay"]),
            perplexity_tol=(
                None
                if params.get("perplexity_tol") is None
                else positive_float(params, "perplexity_tol", allow_zero=True)
            ),
        )

    def chunks(self) -> list[int]:
        """Step counts to train between checks, up to the cap (one chunk when checks are off)."""
        if self.max_steps == 0:
            return []
        every = self.eval_every or self.max_steps
        full, rest = divmod(self.max_steps, every)
        return [every] * full + ([rest] if rest else [])

    def record(self, step: int, **figures: float) -> None:
        """Append one point of the curve (``loss`` and ``utilization`` are the criterion's)."""
        self.curve.append({"step": int(step), **{k: float(v) for k, v in figures.items()}})

    def check(self) -> str:
        """After a :meth:`record`: ``"converged"``, ``"train"`` or ``"cut"`` (times ``lr_decay``)."""
        if not self._flat():
            return "train"
        if len(self.cuts) < self.lr_cuts:
            self.cuts.append(int(self.curve[-1]["step"]))
            return "cut"
        self.stopped = True
        return "converged"

    def converged(self) -> bool:
        """Whether a check ended training on the plateau after the last cut (never at the cap)."""
        return self.stopped

    def moving(self) -> list[str]:
        """The figures that moved beyond their tolerance over the latest window (empty: all flat)."""
        return [] if self._flat() else [k for k in ("loss", "utilization", "perplexity") if not self._flat(k)]

    def _flat(self, only: str | None = None) -> bool:
        """Whether the latest point ends ``window`` flat steps since the last cut: the loss, utilization
        and perplexity (``only``: that figure alone)."""
        if not self.curve or not self.eval_every:
            return False
        since = self.cuts[-1] if self.cuts else 0
        points = [p for p in self.curve if p["step"] >= since]
        now = points[-1]
        if now["step"] < max(self.min_steps, since + self.window):
            return False
        then = next((p for p in reversed(points) if p["step"] <= now["step"] - self.window), None)
        if then is None:
            return False
        before = min(p["loss"] for p in points if p["step"] <= then["step"])
        within = min(p["loss"] for p in points if p["step"] > then["step"])
        ok = {"loss": before - within <= self.loss_tol * abs(before)}
        tols = {
            "utilization": self.util_tol,
            "perplexity": self.util_tol if self.perplexity_tol is None else self.perplexity_tol,
        }
        for key, tol in tols.items():
            a, b = then.get(key), now.get(key)
            ok[key] = a is None or b is None or abs(b - a) <= tol * max(a, b, 1e-12)
        return ok[only] if only is not None else all(ok.values())

    def summary(self, steps_taken: int) -> dict[str, Any]:
        """Steps taken, whether the plateau was reached, the criterion and the curve (for ``extra``)."""
        return {
            "steps_taken": steps_taken,
            "converged": self.converged(),
            "stopped_by": "plateau" if self.stopped else ("cap" if self.eval_every else "steps"),
            "moving_at_end": [] if self.stopped else self.moving(),
            "step_cap": self.max_steps,
            "lr_cut_steps": list(self.cuts),
            "criterion": {
                "eval_every": self.eval_every,
                "plateau_window": self.window,
                "min_steps": self.min_steps,
                "loss_tol": self.loss_tol,
                "util_tol": self.util_tol,
                "perplexity_tol": self.util_tol if self.perplexity_tol is None else self.perplexity_tol,
                "lr_cuts": self.lr_cuts,
                "lr_decay": self.lr_decay,
            },
            "curve": {key: [p.get(key) for p in self.curve] for key in _curve_keys(self.curve)},
        }


def lr_decay(value: Any) -> float:
    """``value`` checked to be a factor between 0 and 1 (exclusive)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise ValueError(f"param 'lr_decay' must be a number between 0 and 1 (exclusive), got {value!r}")
    return float(value)


def scale_lr(optimizer: Any, factor: float) -> float:
    """Multiply every parameter group's learning rate by ``factor``; the first group's new rate."""
    for group in optimizer.param_groups:
        group["lr"] *= factor
    return float(optimizer.param_groups[0]["lr"])


def _curve_keys(curve: list[dict[str, float]]) -> list[str]:
    keys: dict[str, None] = {}
    for point in curve:
        keys.update(dict.fromkeys(point))
    return list(keys)


def split_monitor(train: Any, count: int, seed: int) -> tuple[Any, Any]:
    """``(train, monitor)``: ``count`` seeded rows of ``train`` held out for the criterion.

    At most a tenth of the split is held out; ``count`` 0 holds out nothing (``monitor`` is None).
    """
    import torch

    count = min(count, train.shape[0] // 10)
    if count <= 0:
        return train, None
    order = torch.randperm(train.shape[0], generator=torch.Generator().manual_seed(10_000 + seed))
    return train[order[count:]], train[order[:count]]


__all__ = ["CONVERGENCE_PARAMS", "Plateau", "lr_decay", "scale_lr", "split_monitor"]
