"""Training to convergence: a plateau criterion on held-out figures, with a step cap.

The usage and reconstruction engines train in chunks of ``eval_every`` steps; after each chunk they
measure held-out figures (a monitor split carved from the train split, never the eval split) and
append a point to the curve: step, held-out loss, utilization (and PSNR where there is one).
Training stops at the first check, at or after ``min_steps``, where over the last
``plateau_window`` steps the held-out loss fell by at most ``loss_tol`` (relative) and the
utilization moved by at most ``util_tol`` (relative); or at the cap ``steps``. The rows record the
steps taken, whether the plateau was reached, and the whole curve, so a reader sees whether a
figure converged.
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
    curve: list[dict[str, float]] = field(default_factory=list)

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

    def converged(self) -> bool:
        """Whether the latest point ends a plateau of ``window`` steps (see the module docstring)."""
        if not self.curve or not self.eval_every:
            return False
        now = self.curve[-1]
        if now["step"] < max(self.min_steps, self.window):
            return False
        then = next((p for p in reversed(self.curve) if p["step"] <= now["step"] - self.window), None)
        if then is None:
            return False
        loss_ok = then["loss"] - now["loss"] <= self.loss_tol * abs(then["loss"])
        u0, u1 = then.get("utilization"), now.get("utilization")
        util_ok = u0 is None or u1 is None or abs(u1 - u0) <= self.util_tol * max(u0, u1, 1e-12)
        return loss_ok and util_ok

    def summary(self, steps_taken: int) -> dict[str, Any]:
        """Steps taken, whether the plateau was reached, the criterion and the curve (for ``extra``)."""
        return {
            "steps_taken": steps_taken,
            "converged": self.converged(),
            "step_cap": self.max_steps,
            "criterion": {
                "eval_every": self.eval_every,
                "plateau_window": self.window,
                "min_steps": self.min_steps,
                "loss_tol": self.loss_tol,
                "util_tol": self.util_tol,
            },
            "curve": {key: [p.get(key) for p in self.curve] for key in _curve_keys(self.curve)},
        }


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


__all__ = ["CONVERGENCE_PARAMS", "Plateau", "split_monitor"]
