"""``toy-rings``: noisy points on concentric rings, embedded in ``dim`` dimensions."""

from __future__ import annotations

import math

import torch


def _rings(n: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    radius = torch.randint(1, 4, (n,), generator=generator).float()
    angle = torch.rand(n, generator=generator) * 2 * math.pi
    plane = torch.stack([radius * angle.cos(), radius * angle.sin()], dim=1)
    embed = torch.randn(2, dim, generator=torch.Generator().manual_seed(1234)) / math.sqrt(2)
    return (plane @ embed + 0.05 * torch.randn(n, dim, generator=generator)).float()


def rings(*, seed: int = 0, dim: int = 8, n_train: int = 512, n_eval: int = 512):
    """Noisy concentric rings (toy plugin dataset)."""
    generator = torch.Generator().manual_seed(seed)
    return _rings(n_train, dim, generator), _rings(n_eval, dim, generator), {"rings": 3}


rings.kind = "vectors"
