"""The unit of work of a suite: one quantizer config x dataset x benchmark x backend x device."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from vqbench.engines import ENGINES, engine_names
from vqbench.results.vocabulary import NO_QUANTIZER


@dataclass(frozen=True)
class Cell:
    """A plain, picklable spec that an engine's ``measure(cell)`` turns into figure dicts."""

    suite: str
    benchmark: str  # a registered engine: "throughput" | "usage" | "reconstruction" | ...
    quantizer: str  # registry name or reference
    config: dict = field(default_factory=dict)  # quantizer config, e.g. {"codebook_size": 1024}
    dataset: str | None = None
    dataset_options: dict = field(default_factory=dict)
    backend: str = "eager"  # "eager" | "compile" | a quantizer BACKENDS name
    device: str = "cpu"  # "cpu" | "cuda" | "cuda:N"
    params: dict = field(default_factory=dict)  # benchmark parameters from the profile
    seed: int = 0
    environment: str | None = None  # the pip requirements of a dependency environment (None: this one)

    def __post_init__(self) -> None:
        if self.benchmark not in ENGINES:
            raise ValueError(f"cell benchmark must be one of {engine_names()}, got {self.benchmark!r}")
        for name in ("config", "dataset_options", "params"):
            value = getattr(self, name)
            if not isinstance(value, dict):
                raise TypeError(f"cell {name} must be a dict, got {type(value).__name__}")
        if not isinstance(self.quantizer, str) or not self.quantizer:
            raise TypeError(f"cell quantizer must be a non-empty string, got {self.quantizer!r}")

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (JSON-friendly when the configs are); ``environment`` only when set,
        so that a cell of this environment keeps its id."""
        data = asdict(self)
        if data["environment"] is None:
            del data["environment"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cell:
        """Rebuild a cell from :meth:`to_dict` output (e.g. a stored run's cell list)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"cell dict has unknown keys {unknown}; expected keys among {sorted(names)}")
        return cls(**data)

    @property
    def cell_id(self) -> str:
        """Stable hash of every field: the same spec gives the same id in any process."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), default=repr)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        """A short human label: ``usage fsq K=1024 gaussian cpu/eager``."""
        parts = [self.benchmark, short_name(self.quantizer)]
        if "codebook_size" in self.config:
            parts.append(f"K={self.config['codebook_size']}")
        if self.dataset:
            parts.append(self.dataset)
        parts.append(f"{self.device}/{self.backend}")
        return " ".join(parts)

    def __hash__(self) -> int:  # dict fields are unhashable; hash the stable id instead
        return hash(self.cell_id)


def short_name(quantizer: str) -> str:
    """A registry name as is; a ``path/to/file.py:Name`` reference as ``file.py:Name``."""
    module, sep, attr = quantizer.rpartition(":")
    if sep and ("/" in module or "\\" in module):
        return f"{module.replace(chr(92), '/').rsplit('/', 1)[-1]}:{attr}"
    return quantizer


def dedupe(cells: list[Cell]) -> list[Cell]:
    """``cells`` without repeats (same cell_id), first occurrence kept, order kept."""
    seen: set[str] = set()
    out = []
    for cell in cells:
        if cell.cell_id not in seen:
            seen.add(cell.cell_id)
            out.append(cell)
    return out


__all__ = ["NO_QUANTIZER", "Cell", "dedupe", "short_name"]
