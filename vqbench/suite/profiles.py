"""Suite profiles: declarative TOML files that say what a suite measures.

A profile is a built-in name (``quick``, ``standard``, ``full``, shipped in ``vqbench/suite/profiles/``)
or the path of a user's TOML file. Its tables:

``[suite]``
    ``name`` (default: the file's stem), ``description``, ``quantizers`` (glob patterns over registered
    names, ``"default"`` for the registry's default set, or ``path/file.py:Name`` references),
    ``devices``, ``backends``, ``seeds``, ``codebook_sizes`` (``[]``: each quantizer's default operating
    point), ``timeout`` (seconds per cell), ``workers`` (worker processes), ``threads`` (torch threads
    per worker; default: torch's own choice), ``plugins`` (modules imported in the coordinator and in
    every worker before anything runs, e.g. ``["my_pkg.quantizers"]``, whose ``@register_quantizer``
    names the suite can then use), ``dtypes`` (precisions, default ``["float32"]``:
    ``float32``, ``bfloat16``, ``float16``, ``autocast-bfloat16``, ``autocast-float16``; see
    ``vqbench.suite.precision`` for which engine takes which), ``registered_settings`` (default
    false; the built-in profiles set it: each quantizer's registered settings, its paper's, declared
    where it is registered, go into its cells' config under this profile's ``[quantizers.*]`` tables,
    so that the stored results show them).
``[quantizers.NAME]``
    Keyword config for ``create_quantizer(NAME, ...)``; NAME may be a glob (``"residual-*"``).
    Over the registered settings where ``registered_settings`` is set.
``[datasets.NAME]``
    Options for ``load_dataset(NAME, ...)`` wherever a benchmark uses NAME.
``[benchmarks.LABEL]``
    One benchmark: ``kind`` (default LABEL; ``throughput``, ``usage``, ``reconstruction``, ...),
    ``datasets``, ``dataset_options`` (``[benchmarks.LABEL.dataset_options.NAME]``: options for this
    benchmark only, over ``[datasets.NAME]``), and optional overrides of the suite's ``quantizers``,
    ``devices``, ``backends``, ``seeds``, ``codebook_sizes``, ``timeout``, ``dtypes``; every other key is a
    parameter of the engine (checked against the engine's ``PARAMS``).
``[pytest]``
    Sizes for ``pytest --benchmark --benchmark-suite NAME`` (read by vqbench's pytest plugin).
``[[sweep]]``
    Extra cells over codebook sizes: ``quantizers`` (patterns), ``benchmarks`` (labels),
    ``codebook_sizes`` (through the registry's operating points).
``[executor]``
    Where the cells run: ``kind`` (``local``, ``slurm``, ``ray``), ``workers`` and the engine's
    settings (see ``vqbench.suite.executors``); ``vqbench run --executor ...`` overrides them.

Every key is checked; a malformed profile raises :class:`ProfileError` naming the file and the key.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from vqbench.errors import MissingFileError, UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from vqbench.engines import ENGINES

BUILTIN_PROFILES = ("quick", "standard", "full")

_SUITE_KEYS = {
    "name",
    "description",
    "quantizers",
    "devices",
    "backends",
    "seeds",
    "codebook_sizes",
    "timeout",
    "workers",
    "threads",
    "plugins",
    "dtypes",
    "registered_settings",
}
_AXIS_KEYS = {"quantizers", "devices", "backends", "seeds", "codebook_sizes", "timeout", "dtypes"}
_BENCH_RESERVED = _AXIS_KEYS | {"kind", "datasets", "dataset_options"}
_SWEEP_KEYS = {"quantizers", "benchmarks", "codebook_sizes"}
_TOP_KEYS = {"suite", "quantizers", "datasets", "benchmarks", "sweep", "pytest", "executor"}


class ProfileError(UserError):
    """A profile that cannot be read or has a malformed key; the message names the file and the key."""


@dataclass(frozen=True)
class BenchmarkSpec:
    """One ``[benchmarks.LABEL]`` table. ``None`` axes fall back to the suite's."""

    label: str
    kind: str
    params: dict[str, Any]
    datasets: tuple[str, ...] = ()
    dataset_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    quantizers: tuple[str, ...] | None = None
    devices: tuple[str, ...] | None = None
    backends: tuple[str, ...] | None = None
    seeds: tuple[int, ...] | None = None
    codebook_sizes: tuple[int, ...] | None = None
    timeout: float | None = None
    dtypes: tuple[str, ...] | None = None


@dataclass(frozen=True)
class SweepSpec:
    """One ``[[sweep]]`` entry: extra cells at several codebook sizes."""

    quantizers: tuple[str, ...]
    benchmarks: tuple[str, ...]
    codebook_sizes: tuple[int, ...]


@dataclass(frozen=True)
class Profile:
    """A parsed, checked profile. ``source`` is the file it came from (for error messages)."""

    name: str
    source: str
    description: str = ""
    quantizers: tuple[str, ...] = ("default",)
    devices: tuple[str, ...] = ("cpu",)
    backends: tuple[str, ...] = ("eager",)
    seeds: tuple[int, ...] = (0,)
    codebook_sizes: tuple[int, ...] = ()
    timeout: float = 600.0
    workers: int = 1
    threads: int | None = None
    plugins: tuple[str, ...] = ()
    dtypes: tuple[str, ...] = ("float32",)
    quantizer_config: dict[str, dict[str, Any]] = field(default_factory=dict)
    registered_settings: bool = False
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    benchmarks: dict[str, BenchmarkSpec] = field(default_factory=dict)
    sweeps: tuple[SweepSpec, ...] = ()
    executor: dict[str, Any] = field(default_factory=dict)  # the [executor] table, checked
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    def error(self, key: str, message: str) -> ProfileError:
        """A :class:`ProfileError` for ``key`` of this profile's file."""
        return ProfileError(f"{self.source}: key '{key}': {message}")


def builtin_profile_path(name: str) -> Path:
    """The packaged TOML file of a built-in profile."""
    return Path(str(resources.files("vqbench.suite").joinpath("profiles", f"{name}.toml")))


def load_profile(suite: str | Path | Profile = "quick") -> Profile:
    """Load a built-in profile by name or a user's TOML file by path, and check every key."""
    if isinstance(suite, Profile):
        return suite
    if not isinstance(suite, (str, Path)) or not str(suite):
        raise TypeError(f"suite must be a built-in name {BUILTIN_PROFILES} or a TOML path, got {suite!r}")
    text = str(suite)
    if isinstance(suite, str) and suite in BUILTIN_PROFILES:
        path, default_name = builtin_profile_path(suite), suite
    elif (
        isinstance(suite, Path)
        or text.endswith(".toml")
        or "/" in text
        or "\\" in text
        or Path(text).is_file()
    ):
        path = Path(text).expanduser()
        if not path.is_file():
            raise MissingFileError(f"suite profile not found: {path} (expected a TOML file)")
        default_name = path.stem
    else:
        import difflib

        close = difflib.get_close_matches(text, BUILTIN_PROFILES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ProfileError(
            f"unknown suite {text!r}{hint} Built-in suites: {', '.join(BUILTIN_PROFILES)}; "
            "or pass the path of a TOML profile"
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ProfileError(f"{path}: not a UTF-8 text file: {exc}") from exc
    return parse_profile(data, source=str(path), default_name=default_name)


def parse_profile(
    data: dict[str, Any], *, source: str = "<profile>", default_name: str = "custom"
) -> Profile:
    """Check a profile's parsed TOML ``data`` and build a :class:`Profile`."""
    v = _Checker(source)
    v.keys(data, _TOP_KEYS, "")
    v.table(data, "pytest", "")  # sizes for `pytest --benchmark`, checked by vqbench's pytest plugin
    suite = v.table(data, "suite", "") or {}
    v.keys(suite, _SUITE_KEYS, "suite")
    name = v.string(suite, "name", "suite", default_name)
    if not name or any(c.isspace() for c in name):
        raise ProfileError(f"{source}: key 'suite.name': expected a name without spaces, got {name!r}")
    axes = v.axes(suite, "suite")
    quantizer_config = {}
    for qname, cfg in (v.table(data, "quantizers", "") or {}).items():
        if not isinstance(cfg, dict):
            raise v.error(f"quantizers.{qname}", f"expected a table of quantizer config, got {cfg!r}")
        if "codebook_size" in cfg:
            v.int_list({"codebook_size": [cfg["codebook_size"]]}, "codebook_size", f"quantizers.{qname}", 2)
        quantizer_config[qname] = dict(cfg)
    registered = suite.get("registered_settings", False)
    if not isinstance(registered, bool):
        raise v.error("suite.registered_settings", f"expected true or false, got {registered!r}")
    if registered:
        quantizer_config = _with_registered_settings(v, quantizer_config)
    datasets = {}
    for dname, opts in (v.table(data, "datasets", "") or {}).items():
        if not isinstance(opts, dict):
            raise v.error(f"datasets.{dname}", f"expected a table of dataset options, got {opts!r}")
        datasets[dname] = dict(opts)
    benchmarks = {}
    bench_tables = v.table(data, "benchmarks", "")
    if not bench_tables:
        raise v.error("benchmarks", "expected at least one [benchmarks.LABEL] table, got none")
    for label, table in bench_tables.items():
        where = f"benchmarks.{label}"
        if not isinstance(table, dict):
            raise v.error(where, f"expected a table, got {table!r}")
        kind = v.string(table, "kind", where, label)
        if kind not in ENGINES:
            raise v.error(
                f"{where}.kind" if "kind" in table else where,
                f"expected a benchmark kind among {sorted(ENGINES)}, got {kind!r}",
            )
        bench_axes = v.axes(table, where, optional=True)
        params = {k: val for k, val in table.items() if k not in _BENCH_RESERVED}
        if kind in ENGINES:
            params = ENGINES.get(kind).current_params(params, f"{v.source}: {where}")
        names = tuple(v.str_list(table, "datasets", where) or ())
        options = v.table(table, "dataset_options", where) or {}
        for dname, opts in options.items():
            key = f"{where}.dataset_options.{dname}"
            if dname not in names:
                raise v.error(key, f"expected a dataset of {where}.datasets {list(names)}, got {dname!r}")
            if not isinstance(opts, dict):
                raise v.error(key, f"expected a table of dataset options, got {opts!r}")
        benchmarks[label] = BenchmarkSpec(
            label=label,
            kind=kind,
            params=params,
            datasets=names,
            dataset_options={k: dict(o) for k, o in options.items()},
            **bench_axes,
        )
    sweeps = []
    sweep_list = data.get("sweep", [])
    if not isinstance(sweep_list, list) or not all(isinstance(s, dict) for s in sweep_list):
        raise v.error("sweep", f"expected an array of tables ([[sweep]]), got {sweep_list!r}")
    for i, table in enumerate(sweep_list):
        where = f"sweep[{i}]"
        v.keys(table, _SWEEP_KEYS, where)
        for key in _SWEEP_KEYS:
            if key not in table:
                raise v.error(
                    f"{where}.{key}", "missing; a sweep needs quantizers, benchmarks and codebook_sizes"
                )
        labels = tuple(v.str_list(table, "benchmarks", where))
        for lab in labels:
            if lab not in benchmarks:
                raise v.error(
                    f"{where}.benchmarks", f"expected labels among {sorted(benchmarks)}, got {lab!r}"
                )
        sweeps.append(
            SweepSpec(
                quantizers=tuple(v.str_list(table, "quantizers", where)),
                benchmarks=labels,
                codebook_sizes=tuple(v.int_list(table, "codebook_sizes", where, 2)),
            )
        )
    return Profile(
        name=name,
        source=source,
        description=v.string(suite, "description", "suite", ""),
        quantizers=axes.get("quantizers") or ("default",),
        devices=axes.get("devices") or ("cpu",),
        backends=axes.get("backends") or ("eager",),
        seeds=axes.get("seeds") or (0,),
        codebook_sizes=axes.get("codebook_sizes") or (),
        timeout=axes.get("timeout") or 600.0,
        dtypes=axes.get("dtypes") or ("float32",),
        workers=v.positive_int(suite, "workers", "suite", 1),
        threads=v.positive_int(suite, "threads", "suite", 1) if "threads" in suite else None,
        plugins=_plugins(v, suite),
        quantizer_config=quantizer_config,
        registered_settings=registered,
        datasets=datasets,
        benchmarks=benchmarks,
        sweeps=tuple(sweeps),
        executor=_executor_table(v, data),
        raw=data,
    )


def _with_registered_settings(v: _Checker, tables: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``tables`` plus, for each registered quantizer with settings, those settings under the tables
    that match it (glob keys in file order, then its own), as its own table."""
    import fnmatch

    from vqbench.quantizers import default_settings, list_quantizers

    out = dict(tables)
    for name in list_quantizers():
        try:
            merged = default_settings(name)
        except Exception as exc:  # a plugin's settings reference may fail in any way
            raise v.error("suite.registered_settings", f"quantizer {name!r}: {exc}") from exc
        if not merged:
            continue
        for key, cfg in tables.items():
            if key != name and set("*?[") & set(key) and fnmatch.fnmatchcase(name, key):
                merged.update(cfg)
        merged.update(tables.get(name, {}))
        out[name] = merged
    return out


def _plugins(v: _Checker, suite: dict[str, Any]) -> tuple[str, ...]:
    """``[suite] plugins``: module names, checked (imported when the suite runs, not when it is read)."""
    from vqbench.quantizers._plugins import plugin_names

    names = v.str_list(suite, "plugins", "suite")
    try:
        return plugin_names(names, "suite.plugins")
    except ValueError as exc:
        raise v.error("suite.plugins", str(exc).removeprefix("suite.plugins: ")) from exc


def _executor_table(v: _Checker, data: dict[str, Any]) -> dict[str, Any]:
    """The ``[executor]`` table (where and how cells run), checked by the executors' settings."""
    import dataclasses

    from .executors import ExecutorSettings

    table = v.table(data, "executor", "") or {}
    v.keys(table, {f.name for f in dataclasses.fields(ExecutorSettings)}, "executor")
    try:
        ExecutorSettings(**table)
    except (ValueError, TypeError) as exc:
        raise v.error("executor", str(exc)) from exc
    return dict(table)


class _Checker:
    """Type checks whose errors name the profile file and the dotted key."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, key: str, message: str) -> ProfileError:
        return ProfileError(f"{self.source}: key '{key}': {message}")

    @staticmethod
    def _dot(where: str, key: str) -> str:
        return f"{where}.{key}" if where else key

    def keys(self, table: dict, allowed: set[str], where: str) -> None:
        for key in table:
            if key not in allowed:
                import difflib

                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise self.error(
                    self._dot(where, key), f"unknown key{hint}; expected one of {sorted(allowed)}"
                )

    def table(self, data: dict, key: str, where: str) -> dict | None:
        value = data.get(key)
        if value is not None and not isinstance(value, dict):
            raise self.error(self._dot(where, key), f"expected a table, got {value!r}")
        return value

    def string(self, data: dict, key: str, where: str, default: str) -> str:
        value = data.get(key, default)
        if not isinstance(value, str):
            raise self.error(self._dot(where, key), f"expected a string, got {value!r}")
        return value

    def str_list(self, data: dict, key: str, where: str) -> list[str] | None:
        if key not in data:
            return None
        value = data[key]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(s, str) and s.strip() for s in value):
            raise self.error(self._dot(where, key), f"expected a list of non-empty strings, got {value!r}")
        return [s.strip() for s in value]

    def int_list(self, data: dict, key: str, where: str, minimum: int) -> list[int] | None:
        if key not in data:
            return None
        value = data[key]
        if not isinstance(value, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) and i >= minimum for i in value
        ):
            raise self.error(
                self._dot(where, key), f"expected a list of integers >= {minimum}, got {value!r}"
            )
        return value

    def positive_int(self, data: dict, key: str, where: str, default: int) -> int:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.error(self._dot(where, key), f"expected a positive integer, got {value!r}")
        return value

    def axes(self, table: dict, where: str, optional: bool = False) -> dict[str, Any]:
        """The axis keys shared by ``[suite]`` and ``[benchmarks.*]``, checked."""
        out: dict[str, Any] = {}
        for key in ("quantizers", "backends"):
            value = self.str_list(table, key, where)
            if value is not None:
                if not value:
                    raise self.error(self._dot(where, key), "expected at least one entry, got []")
                out[key] = tuple(value)
        devices = self.str_list(table, "devices", where)
        if devices is not None:
            for dev in devices:
                if not _valid_device(dev):
                    raise self.error(
                        self._dot(where, "devices"), f"expected 'cpu', 'cuda' or 'cuda:N', got {dev!r}"
                    )
            if not devices:
                raise self.error(self._dot(where, "devices"), "expected at least one device, got []")
            out["devices"] = tuple(devices)
        seeds = self.int_list(table, "seeds", where, 0)
        if seeds is not None:
            if not seeds:
                raise self.error(self._dot(where, "seeds"), "expected at least one seed, got []")
            out["seeds"] = tuple(seeds)
        sizes = self.int_list(table, "codebook_sizes", where, 2)
        if sizes is not None:
            out["codebook_sizes"] = tuple(sizes)
        if "timeout" in table:
            t = table["timeout"]
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not t > 0 or math.isinf(t):
                raise self.error(
                    self._dot(where, "timeout"), f"expected a positive number of seconds, got {t!r}"
                )
            out["timeout"] = float(t)
        if "dtypes" in table:
            from ._precision_names import check_precisions

            try:
                out["dtypes"] = check_precisions(table["dtypes"], "dtypes")
            except ValueError as exc:
                raise self.error(self._dot(where, "dtypes"), str(exc).removeprefix("dtypes: ")) from None
        if optional:
            return {k: out.get(k) for k in _AXIS_KEYS}
        return out


def _valid_device(dev: str) -> bool:
    if dev in ("cpu", "cuda"):
        return True
    head, _, idx = dev.partition(":")
    return head == "cuda" and idx.isdigit()


__all__ = [
    "BUILTIN_PROFILES",
    "BenchmarkSpec",
    "Profile",
    "ProfileError",
    "SweepSpec",
    "builtin_profile_path",
    "load_profile",
    "parse_profile",
]
