"""Checks of a profile's values before anything runs: types and ranges, user files.

Engine parameters are checked against the type of the engine's default (``PARAMS``): a list
default wants a list (or one value) of its items' type, an int a non-negative integer, a float a
finite non-negative number, a bool true or false, a str a string; ``lr_decay`` a factor in (0, 1).
Then each value against the range and choices its engine accepts (:data:`ENGINE_RULES`, with the
engines' own checks: the throughput engine's ``_check``, ``positive_int``, ``lr_decay``), so that
every value an engine would refuse is refused before the run (exit 2), never as error rows.
Benchmarks that train on data need a dataset (``datasets = []`` is refused). Dataset options are
checked against the loader's signature (annotation, else default). A dataset given as a file path,
or the ``path`` option of ``latents``, must name an existing file. Each error names the profile
file and the key.
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any

from vqbench.engines import ENGINES, get_engine
from vqbench.errors import MissingFileError, UserError

from .cells import Cell
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
        if bench.kind not in ENGINES:
            continue
        engine = get_engine(bench.kind)
        defaults = engine.params()
        types = engine.param_types()  # for defaults of None
        for key, value in bench.params.items():
            if key in defaults:
                check_value(value, defaults[key], f"benchmarks.{label}.{key}", profile, types.get(key))
        if "lr_decay" in defaults and bench.params.get("lr_decay") is not None:
            try:
                lr_decay(bench.params["lr_decay"])
            except ValueError as exc:
                raise profile.error(f"benchmarks.{label}.lr_decay", str(exc)) from None


def _int(low: int) -> Any:
    def rule(params: dict, name: str) -> None:
        from ._common import positive_int

        positive_int(params, name, allow_zero=low == 0)

    return rule


def _number(allow_zero: bool) -> Any:
    def rule(params: dict, name: str) -> None:
        from ._common import positive_float

        positive_float(params, name, allow_zero=allow_zero)

    return rule


def _optional(rule: Any) -> Any:
    def check(params: dict, name: str) -> None:
        if params[name] is not None:
            rule(params, name)

    return check


def _choice(params: dict, name: str, choices: tuple) -> None:
    value = params[name]
    if not any(value is c or (isinstance(c, str) and value == c) for c in choices):
        raise UserError(f"param {name!r} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def _flag(params: dict, name: str) -> None:
    if not isinstance(params[name], bool):
        raise UserError(f"param {name!r} must be true or false, got {params[name]!r}")


def _text(params: dict, name: str) -> None:
    if not isinstance(params[name], str):
        raise UserError(f"param {name!r} must be a string, got {params[name]!r}")


def _decay(params: dict, name: str) -> None:
    lr_decay(params[name])


def _power_of_two(params: dict, name: str) -> None:
    value = params[name]
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value & (value - 1):
        raise UserError(f"param {name!r} must be a power of two (1, 2, 4, ...), got {value!r}")


def _int_list(params: dict, name: str) -> None:
    values = params[name] if isinstance(params[name], list) else [params[name]]
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        raise UserError(f"param {name!r} must be a non-empty list of positive integers, got {params[name]!r}")


def _sections(params: dict, name: str) -> None:
    from .fsq_speed import SECTIONS

    values = params[name] if isinstance(params[name], list) else [params[name]]
    bad = [v for v in values if v not in SECTIONS]
    if not values or bad:
        raise UserError(f"param {name!r} must be a non-empty list among {SECTIONS}, got {params[name]!r}")


_CONVERGENCE = {
    "eval_every": _int(0),
    "plateau_window": _int(1),
    "min_steps": _int(0),
    "loss_tol": _number(True),
    "util_tol": _number(True),
    "perplexity_tol": _optional(_number(True)),
    "lr_cuts": _int(0),
    "lr_decay": _decay,
    "monitor_samples": _int(0),
}


def _training_dtype(params: dict, name: str, kind: str) -> None:
    from .usage import check_training_precision

    check_training_precision(params, kind)


#: Per built-in engine, each parameter's rule: a function ``(params, name)`` that raises ValueError
#: on a value the engine refuses. An engine module's own ``check(params)`` runs as well.
ENGINE_RULES: dict[str, dict[str, Any]] = {
    "throughput": {
        "flush_l2": lambda params, name: _choice(params, name, ("auto", True, False)),
    },
    "usage": {
        "train_steps": _int(0),
        "batch": _int(1),
        "lr": _number(False),
        "aux_loss_weight": _number(True),
        "eval_batch": _int(1),
        "patch": _int(1),
        "standardize": _flag,
        "min_tokens_per_code": _number(True),
        "threads": _optional(_int(1)),
        "dtype": lambda params, name: _training_dtype(params, name, "usage"),
        **_CONVERGENCE,
    },
    "reconstruction": {
        "train_steps": _int(0),
        "batch": _int(1),
        "lr": _number(False),
        "aux_loss_weight": _number(True),
        "latent_dim": _optional(_int(1)),
        "ceiling_width_note": _optional(_text),
        "token_tol": _number(True),
        "hidden": _int(1),
        "channels": _int(1),
        "tokens_per_sample": _int(1),
        "downsample": _power_of_two,
        "eval_batch": _int(1),
        "reconstructions": _int(0),
        "min_tokens_per_code": _number(True),
        "threads": _optional(_int(1)),
        "ceiling_steps": _optional(_int(0)),
        "dtype": lambda params, name: _training_dtype(params, name, "reconstruction"),
        **_CONVERGENCE,
    },
    "fsq_speed": {
        "vectors": _int(1),
        "sweep": _int_list,
        "rounds": _int(1),
        "min_run_time": _number(False),
        "threads": _optional(_int(1)),
        "sections": _sections,
        "compiled": _flag,
    },
}


def check_engine_values(profile: Profile, cells: list[Cell]) -> None:
    """Every cell's parameters against the ranges and choices of its engine (:data:`ENGINE_RULES`),
    and a dataset for the benchmarks that need one; the error names the profile key."""
    seen: set[str] = set()
    label_of = {bench.kind: label for label, bench in profile.benchmarks.items()}
    for cell in cells:
        key = f"{cell.benchmark}:{cell.params!r}"
        label = label_of.get(cell.benchmark, cell.benchmark)
        engine = get_engine(cell.benchmark)
        if engine.needs_dataset and not cell.dataset:
            given = list(profile.benchmarks[label].datasets) if label in profile.benchmarks else []
            raise profile.error(
                f"benchmarks.{label}.datasets",
                f"the {cell.benchmark} benchmark needs a dataset: expected a non-empty list of dataset "
                f"names, got {given}",
            )
        if key in seen:
            continue
        seen.add(key)
        rules = dict(ENGINE_RULES.get(cell.benchmark, {}))
        own = getattr(engine.load(), "check", None)
        if callable(own):
            rules["*"] = own
        params = {**engine.params(), **cell.params}
        for name, rule in rules.items():
            try:
                if name == "*":
                    rule(params)
                elif name in params:
                    rule(params, name)
            except ValueError as exc:
                where = name if name != "*" else _named_in(str(exc), cell.params)
                raise profile.error(f"benchmarks.{label}.{where}", str(exc)) from None


def _named_in(message: str, params: dict) -> str:
    """The parameter that an engine's message names (``param 'sizes' must ...``)."""
    for name in params:
        if f"'{name}'" in message:
            return name
    return "params"


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
        _check_sample_counts(where, options, params, profile)


def _check_sample_counts(where: str, options: dict, params: Any, profile: Profile) -> None:
    """Sample counts that a dataset would draw and hold in memory must fit this machine's RAM
    (float64 draws of ``n_train + n_eval`` vectors of ``dim`` channels)."""
    from .checks import device_memory

    def given(key: str) -> Any:
        value = options.get(key, params[key].default if key in params else None)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    counts = [n for n in (given("n_train"), given("n_eval")) if n is not None]
    dim = given("dim") or 1
    if not counts:
        return
    need, have = sum(counts) * dim * 8, device_memory("cpu")
    if have and need > have:
        key = "n_train" if "n_train" in options else "n_eval"
        raise profile.error(
            f"{where}.{key}",
            f"{sum(counts)} vectors of {dim} channels need about {need / 2**30:.1f} GiB to draw, "
            f"more than the {have / 2**30:.1f} GiB of memory available here",
        )


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
                    raise MissingFileError(
                        f"{source}: dataset file {path!r} (used by {cell.label}) does not exist; "
                        "expected a .npy or .pt file of latents"
                    )


def check_inputs(profile: Profile, cells: list[Cell]) -> None:
    """All value checks of this module (run before any cell)."""
    check_engine_params(profile)
    check_engine_values(profile, cells)
    check_dataset_options(profile)
    check_user_files(cells, profile.source)


__all__ = [
    "ENGINE_RULES",
    "check_dataset_options",
    "check_engine_params",
    "check_engine_values",
    "check_inputs",
    "check_user_files",
    "check_value",
]
