"""Checks before anything runs: devices exist, quantizer configs build, sizes fit the device.

Each raises a clear error; a run that fails a check stores nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from vqbench.engines import get_engine
from vqbench.errors import UserError

from .cells import NO_QUANTIZER, Cell

#: Bytes per token per input channel that an operation keeps alive (input, codes, grads, temporaries).
_BYTES_PER_CHANNEL = 4 * 8
#: Bytes per (token, code) entry of the dense matrix, with its softmax / gradient copies.
_BYTES_PER_ENTRY = 4 * 3


def check_devices(cells: list[Cell]) -> None:
    """Every device of ``cells`` exists here."""
    devices = sorted({c.device for c in cells})
    if all(d == "cpu" for d in devices):
        return
    import torch

    for dev in devices:
        if dev == "cpu":
            continue
        if not torch.cuda.is_available():
            raise UserError(
                f"device {dev!r} requested but CUDA is not available here (torch {torch.__version__}); "
                "use --device cpu or a profile for the CPU"
            )
        index = int(dev.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise UserError(
                f"device {dev!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
            )


def build_facts(cells: list[Cell], source: str = "profile") -> dict[tuple[str, str], dict[str, Any]]:
    """Build each registered quantizer config once on the CPU; a config it rejects is an error.

    Returns ``{(quantizer, config_json): {"dim", "codebook_size", "num_codebooks", "family", "memory"}}``
    (``memory``: the registry's memory model, ``"dense"`` where the forward computes a
    tokens x codebook_size matrix of distances or soft assignments).
    Plugins (file or module references, entry points) are not built here: whatever they raise is
    their cells' error rows.
    """
    from vqbench.quantizers import create_quantizer, get_quantizer_spec

    facts: dict[tuple[str, str], dict[str, Any]] = {}
    for cell in cells:
        key = (cell.quantizer, json.dumps(cell.config, sort_keys=True, default=repr))
        if key in facts:
            continue
        if cell.quantizer == NO_QUANTIZER:  # the ceiling: no quantizer to build
            facts[key] = {}
            continue
        spec = get_quantizer_spec(cell.quantizer)
        if ":" in cell.quantizer or spec.family == "plugin":
            facts[key] = {}
            continue
        try:
            spec.load()
        except ImportError:  # a broken install: its cells record the import error
            facts[key] = {}
            continue
        try:
            q = create_quantizer(cell.quantizer, **cell.config)
        except (TypeError, ValueError) as exc:
            raise UserError(
                f"{source}: quantizer {cell.quantizer!r} rejects config {cell.config} "
                f"(set in [quantizers.{cell.quantizer}] or a codebook-size list): {exc}"
            ) from exc
        facts[key] = {
            "dim": int(q.dim),
            "codebook_size": int(q.codebook_size),
            "num_codebooks": int(q.num_codebooks),
            "family": spec.family,
            "memory": spec.memory,
        }
    return facts


def _engine_params(cell: Cell) -> dict[str, Any]:
    return {**get_engine(cell.benchmark).params(), **cell.params}


def _tokens_per_call(cell: Cell) -> int:
    """The most tokens one call of the cell's engine quantizes at once (from its params)."""
    p = _engine_params(cell)
    candidates = []
    for key in ("sizes", "size"):
        value = p.get(key)
        if isinstance(value, list):
            candidates += [v for v in value if isinstance(v, int)]
        elif isinstance(value, int):
            candidates.append(value)
    for key in ("batch", "eval_batch"):
        if isinstance(p.get(key), int):
            tokens = p.get("tokens_per_sample", 1)
            candidates.append(p[key] * (tokens if isinstance(tokens, int) else 1))
    return max(candidates, default=0)


def estimate_bytes(cell: Cell, fact: dict[str, Any]) -> int:
    """A rough peak-memory estimate of one cell; 0 when unknown."""
    if not fact:
        return 0
    n = _tokens_per_call(cell)
    need = n * fact["dim"] * _BYTES_PER_CHANNEL
    if fact.get("memory") == "dense":
        need += n * fact["codebook_size"] * _BYTES_PER_ENTRY
    return need


def device_memory(device: str) -> int:
    """Bytes of memory of ``device`` (total GPU memory; available RAM for the CPU), 0 if unknown."""
    if device == "cpu":
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return 0
    import torch

    return int(torch.cuda.get_device_properties(torch.device(device)).total_memory)


def check_fits(
    cells: list[Cell], facts: dict[tuple[str, str], dict[str, Any]], source: str = "profile"
) -> None:
    """Cells whose estimated peak memory exceeds the device's memory are an error."""
    capacity: dict[str, int] = {}
    for cell in cells:
        fact = facts.get((cell.quantizer, json.dumps(cell.config, sort_keys=True, default=repr)), {})
        need = estimate_bytes(cell, fact)
        if not need:
            continue
        if cell.device not in capacity:
            capacity[cell.device] = device_memory(cell.device)
        have = capacity[cell.device]
        if have and need > have:
            raise UserError(
                f"{source}: {cell.label} needs about {need / 2**30:.1f} GiB but {cell.device} has "
                f"{have / 2**30:.1f} GiB; lower its sizes or batch ({cell.params}) or its codebook size"
            )


def check_cells(cells: list[Cell], source: str = "profile", local: bool = True) -> None:
    """All checks: devices, configs, memory.

    ``local=False`` (cells that run on other hosts, through Slurm or Ray): the devices are not
    checked here, where there may be no GPU, and neither is GPU memory; a device missing on a
    worker is its cells' error row.
    """
    if local:
        check_devices(cells)
    facts = build_facts(cells, source)
    check_fits([c for c in cells if local or c.device == "cpu"], facts, source)


__all__ = ["build_facts", "check_cells", "check_devices", "check_fits", "device_memory", "estimate_bytes"]
