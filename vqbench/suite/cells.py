"""The unit of work of a suite: one quantizer config x dataset x benchmark x backend x device."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

BENCHMARKS = ("throughput", "usage", "reconstruction")


@dataclass(frozen=True)
class Cell:
    """A plain, picklable spec that an engine's ``measure(cell)`` turns into figure dicts."""

    suite: str
    benchmark: str  # "throughput" | "usage" | "reconstruction"
    quantizer: str  # registry name or reference
    config: dict = field(default_factory=dict)  # quantizer config, e.g. {"codebook_size": 1024}
    dataset: str | None = None
    dataset_options: dict = field(default_factory=dict)
    backend: str = "eager"  # "eager" | "compile" | a quantizer BACKENDS name
    device: str = "cpu"  # "cpu" | "cuda"
    params: dict = field(default_factory=dict)  # benchmark parameters from the profile
    seed: int = 0

    def __post_init__(self) -> None:
        if self.benchmark not in BENCHMARKS:
            raise ValueError(f"cell benchmark must be one of {BENCHMARKS}, got {self.benchmark!r}")
        for name in ("config", "dataset_options", "params"):
            value = getattr(self, name)
            if not isinstance(value, dict):
                raise TypeError(f"cell {name} must be a dict, got {type(value).__name__}")
        if not isinstance(self.quantizer, str) or not self.quantizer:
            raise TypeError(f"cell quantizer must be a non-empty string, got {self.quantizer!r}")

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (JSON-friendly when the configs are)."""
        return asdict(self)

    @property
    def cell_id(self) -> str:
        """Stable hash of every field: the same spec gives the same id in any process."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), default=repr)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def __hash__(self) -> int:  # dict fields are unhashable; hash the stable id instead
        return hash(self.cell_id)


__all__ = ["BENCHMARKS", "Cell"]
