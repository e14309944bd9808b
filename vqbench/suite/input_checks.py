"""Checks of a profile's values before anything runs: types and ranges, user files.

Engine parameters are checked against the type of the engine's default (``PARAMS``): a list
default wants a list (or one value) of its items' type, an int a non-negative integer, a float a
finite non-negative number, a bool true or false, a str a string; ``lr_decay`` a factor in (0, 1).
Dataset options are checked against the loader's signature (annotation, else default). A dataset
given as a file path, or the ``path`` option of ``latents``, must name an existing file. Each error
names the profile file and the key.
"""

from __future__ import annotations

import importlib
import inspect
import math
from pathlib import Path
from typing import Any

from .cells import BENCHMARK_MODULES, Cell
from .convergence import lr_decay
from .profiles import Profile

_FILE_SUFFIXES = (".npy", ".pt", ".pth")


def _kind_of(default: Any, annotation: Any = None) -> str | None:
    """``bool``, ``int``, ``float``, ``str``, ``list[int]`` ... for a default (or annotation text)."""
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, str):
        return "str" if not isinstance(annotation, str) or "tuple" not in annotation else None
    if isinstance(default, (list, tuple)):
        items = {_kind_of(v) for v in default}
        return f"list[{items.pop()}]" if len(items) == 1 and None not in items else "list"
    if isinstance(annotation, str):
        parts = {p.strip() for p in annotation.split("|")} - {"None"}
        if len(parts) == 1 and parts <= {"int", "float", "bool", "str"}:
            return parts.pop()
    return None


def _ok(value: Any, kind: str) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if kind == "float":
        return (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
            and value >= 0
        )
    if kind == "str":
        return isinstance(value, str)
    if kind.startswith("list"):
        item = kind[5:-1] if kind != "list" else None
        values = value if isinstance(value, list) else [value]
        if not isinstance(value, list) and item is None:
            return False
        return bool(values) and (item is None or all(_ok(v, item) for v in values))
    return True


_WANTED = {
    "bool": "true or false",
    "int": "a non-negative integer",
    "float": "a non-negative number",
    "str": "a string",
    "list": "a non-empty list",
}


def _wanted(kind: str) -> str:
    if kind.startswith("list["):
        return f"a non-empty list of {_WANTED[kind[5:-1]].replace('a ', '', 1)}s (or one such value)"
    return _WANTED[kind]


def check_value(value: Any, default: Any, key: str, profile: Profile, annotation: Any = None) -> None:
    """Raise the profile's error for ``key`` when ``value`` does not fit the default's type/range."""
    if value is None:
        return
    kind = _kind_of(default, annotation)
    if kind is not None and not _ok(value, kind):
        raise profile.error(key, f"expected {_wanted(kind)}, got {value!r} ({type(value).__name__})")


def check_engine_params(profile: Profile) -> None:
    """Every ``[benchmarks.*]`` engine parameter against its engine's ``PARAMS`` default."""
    for label, bench in profile.benchmarks.items():
        module = BENCHMARK_MODULES.get(bench.kind)
        if module is None:
            continue
        engine = importlib.import_module(module)
        defaults = getattr(engine, "PARAMS", {}) or {}
        types = getattr(engine, "PARAM_TYPES", {}) or {}  # for defaults of None
        for key, value in bench.params.items():
            if key in defaults:
                check_value(value, defaults[key], f"benchmarks.{label}.{key}", profile, types.get(key))
        if "lr_decay" in defaults and bench.params.get("lr_decay") is not None:
            try:
                lr_decay(bench.params["lr_decay"])
            except ValueError as exc:
                raise profile.error(f"benchmarks.{label}.lr_decay", str(exc)) from None


def check_dataset_options(profile: Profile) -> None:
    """Every dataset option (``[datasets.*]`` and benchmarks' ``dataset_options``) against its loader."""
    from vqbench import datasets as ds

    tables = [(f"datasets.{n}", n, o) for n, o in profile.datasets.items()]
    for label, bench in profile.benchmarks.items():
        tables += [
            (f"benchmarks.{label}.dataset_options.{n}", n, o) for n, o in bench.dataset_options.items()
        ]
    known = set(ds.list_datasets())
    for where, name, options in tables:
        if name not in known:
            continue
        try:
            loader = ds.get_dataset_spec(name).load()
        except Exception:  # noqa: BLE001 - a broken loader is its cells' error row
            continue
        params = inspect.signature(loader).parameters
        for key, value in options.items():
            p = params.get(key)
            if p is None:
                continue
            default = None if p.default is inspect.Parameter.empty else p.default
            annotation = p.annotation if isinstance(p.annotation, str) else None
            check_value(value, default, f"{where}.{key}", profile, annotation)


def check_user_files(cells: list[Cell], source: str) -> None:
    """Datasets given as file paths (or with a ``path`` option) must exist."""
    seen: set[str] = set()
    for cell in cells:
        paths = [cell.dataset]
        if cell.dataset == "latents":
            paths.append(cell.dataset_options.get("path"))
        for path in paths:
            if not isinstance(path, str) or path in seen:
                continue
            if path.lower().endswith(_FILE_SUFFIXES) or path == cell.dataset_options.get("path"):
                seen.add(path)
                if not Path(path).expanduser().is_file():
                    raise FileNotFoundError(
                        f"{source}: dataset file {path!r} (used by {cell.label}) does not exist; "
                        "expected a .npy or .pt file of latents"
                    )


def check_inputs(profile: Profile, cells: list[Cell]) -> None:
    """All value checks of this module (run before any cell)."""
    check_engine_params(profile)
    check_dataset_options(profile)
    check_user_files(cells, profile.source)


__all__ = ["check_dataset_options", "check_engine_params", "check_inputs", "check_user_files", "check_value"]
