"""Argument checks of :class:`~vqbench.quantizers.fsq.FSQ`: levels and integer options."""

from __future__ import annotations

import math
import operator

import torch

MAX_CODEBOOK_SIZE = 2**63  # int64 indices, as upstream's


def check_levels(levels: object, preserve_symmetry: bool) -> list[int]:
    if isinstance(levels, torch.Tensor):
        levels = levels.tolist()
    if not isinstance(levels, (list, tuple)):
        raise TypeError(f"levels must be a list or tuple of integers, got {type(levels).__name__}")
    if len(levels) == 0:
        raise ValueError("levels must be a non-empty list of integers (one per channel), got []")
    out = []
    for level in levels:
        if isinstance(level, bool):
            raise TypeError(f"each level must be an integer, got {level!r} in {list(levels)}")
        try:
            out.append(operator.index(level))
        except TypeError:
            raise TypeError(f"each level must be an integer, got {level!r} in {list(levels)}") from None
    for level in out:
        if level < 2:
            raise ValueError(f"each level must be >= 2, got {level} in {out}")
        if level == 2 and not preserve_symmetry:
            raise ValueError(
                f"a level of 2 needs preserve_symmetry=True (the plain bound's shift is extreme there), "
                f"got levels {out}; use 3 or more levels per channel, or preserve_symmetry=True"
            )
    size = math.prod(out)
    if size > MAX_CODEBOOK_SIZE:
        raise ValueError(
            f"levels {out} give a codebook of {size} codes; int64 indices hold at most "
            f"{MAX_CODEBOOK_SIZE} (2^63): use fewer or smaller levels, or num_codebooks > 1"
        )
    return out


def check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


__all__ = ["MAX_CODEBOOK_SIZE", "check_int", "check_levels"]
