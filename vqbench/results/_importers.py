"""Import of result files into a store: vqbench JSON exports and pytest-benchmark JSON files.

pytest-benchmark files (``--benchmark-json`` / ``--benchmark-autosave``) become one run of suite
"pytest-benchmark" whose rows come from each benchmark's stats and ``extra_info``:

- ``quantizer``, ``benchmark`` (default "throughput"), ``backend``, ``device``, ``dataset``,
  ``operation`` and ``config`` are read from ``extra_info``, else from the test's ``params``;
  the quantizer defaults to the test name;
- every entry gives ``time_s`` (median seconds per call, IQR as spread, rounds as n; lower is better);
- an entry whose ``extra_info`` holds ``vectors`` (items per call) also gives ``vectors_per_s``;
- an entry whose ``extra_info`` holds ``units`` (metric -> unit, as vqbench's ``quantizer_bench``
  usage and reconstruction fixtures write) gives one row per such metric, its benchmark taken
  from the group's first word;
- ``machine_info["vqbench_environment"]`` (set by vqbench's pytest plugin) is the run's environment,
  else one is assembled from pytest-benchmark's machine and commit info.

Importing a file twice is a no-op: the run id is derived from the file's content.

A vqbench export keeps its run id; an export whose id is already in the store (a run measured
here, or another file) is refused, unless ``new_id`` asks for a new one. Every imported run
records where it came from in ``config["imported"]`` (file, original run id, content digest), and
the nightly gate leaves imported runs out of its history unless asked (``--include-imported``).
A file is imported whole or not at all (one transaction).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from vqbench.engines import ENGINES
from vqbench.errors import MissingFileError, UserError
from vqbench.results._export import read_json_export
from vqbench.results._schema import canonical_json, utc_now
from vqbench.results._writing import StoreWriting

PYTEST_SUITE = "pytest-benchmark"


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise MissingFileError(f"no results file at {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not a JSON file: {exc}") from exc


def import_file(store: StoreWriting, path: str | Path, *, new_id: bool = False) -> str:
    """Import ``path`` (vqbench JSON export or pytest-benchmark JSON) into ``store``; returns the run id."""
    path = Path(path)
    doc = _load_json(path)
    if isinstance(doc, dict) and doc.get("format") == "vqbench-results":
        return _import_vqbench(store, path, new_id)
    if isinstance(doc, dict) and "benchmarks" in doc and "machine_info" in doc:
        return import_pytest_benchmark(store, path, doc)
    raise UserError(
        f'{path} is neither a vqbench results export ("format": "vqbench-results") nor a '
        'pytest-benchmark JSON file (keys "machine_info" and "benchmarks")'
    )


def _existing(store: StoreWriting, run_id: str) -> dict | None:
    try:
        return store.run_info(run_id)
    except KeyError:
        return None


def _digest(doc: Any) -> str:
    return hashlib.sha256(canonical_json(doc, "file").encode()).hexdigest()


def _import_vqbench(store: StoreWriting, path: Path, new_id: bool = False) -> str:
    import secrets

    doc = read_json_export(path)
    run = doc["run"]
    original = run.get("run_id")
    if not isinstance(original, str) or not original.strip():
        raise UserError(f"{path}: the run has no run_id")
    suite = run.get("suite")
    if not isinstance(suite, str) or not suite:
        raise UserError(f"{path}: the run has no suite")
    if not all(isinstance(r, dict) for r in doc["rows"]):
        raise UserError(f"{path}: every row must be an object")
    rows = [{k: v for k, v in row.items() if k != "row_id"} for row in doc["rows"]]
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        key = canonical_json(row, f"{path}: row #{i}")
        if key in seen:
            raise UserError(
                f"{path}: row #{i} repeats row #{seen[key]} exactly; an export holds each figure "
                "once, so this file was edited or joined: nothing was imported"
            )
        seen[key] = i
    digest = _digest({"run": run, "rows": doc["rows"]})
    before = store._read(
        "SELECT run_id FROM runs WHERE json_extract(config, '$.imported.digest') = ?", (digest,)
    )
    if before:
        return before[0][0]  # this very file, imported before (under its own or a new id)
    run_id = original
    have = _existing(store, run_id)
    if have is not None and not new_id:
        raise UserError(
            f"{path}: run {run_id} already exists in {store.path} (suite {have['suite']!r}, "
            f"{have['status']}); a file never merges into a stored run: pass --new-id to import it "
            "under a new run id"
        )
    if new_id:
        run_id = f"{original[:80]}-import-{secrets.token_hex(3)}"
    # the marks a gate left in another store (its verdict, an acceptance) do not hold here
    config = {k: v for k, v in (run.get("config") or {}).items() if k not in ("owner", "gate", "accepted")}
    config["imported"] = {"file": path.name, "run_id": original, "digest": digest, "time": utc_now()}
    status = run.get("status") if run.get("status") in ("finished", "interrupted") else "interrupted"
    store.add_run(
        {
            "run_id": run_id,
            "suite": suite,
            "environment": run.get("environment") or {},
            "config": config,
            "status": status,
            "started": run.get("started"),
            "finished": run.get("finished"),
        },
        rows,
    )
    return run_id


def _pick(name: str, extra: dict, params: dict, default: Any = None) -> Any:
    value = extra.get(name)
    if value is None:
        value = params.get(name)
    return default if value is None else value


def _environment(doc: dict) -> dict:
    machine = doc.get("machine_info") or {}
    if isinstance(machine.get("vqbench_environment"), dict):
        return dict(machine["vqbench_environment"])
    commit = doc.get("commit_info") or {}
    cpu = machine.get("cpu") or {}
    sha = commit.get("id")
    if sha and commit.get("dirty"):
        sha = f"{sha}-dirty"
    return {
        "python": machine.get("python_version"),
        "implementation": machine.get("python_implementation"),
        "system": machine.get("system"),
        "machine": machine.get("machine"),
        "cpu": cpu.get("brand_raw") or machine.get("processor"),
        "cpu_count": cpu.get("count"),
        "git_sha": sha,
        "source": "pytest-benchmark",
    }


def _kind(bench: dict, extra_info: dict) -> str:
    """The benchmark of an entry: an entry with ``extra_info["units"]`` (an engine's figures) names its
    engine by the group's first word; any other entry measures throughput."""
    if isinstance(extra_info.get("units"), dict):
        first = str(bench.get("group") or "").split(" ", 1)[0]
        if first in ENGINES:
            return first
    return "throughput"


def _test_name(bench: dict) -> str:
    name = str(bench.get("name") or bench.get("fullname") or "benchmark")
    return name.split("[", 1)[0]


def import_pytest_benchmark(store: StoreWriting, path: str | Path, doc: dict | None = None) -> str:
    """Import a pytest-benchmark JSON file as one run of suite "pytest-benchmark"; returns its run id."""
    path = Path(path)
    doc = _load_json(path) if doc is None else doc
    benches = doc.get("benchmarks")
    if not isinstance(benches, list):
        raise UserError(f'{path}: "benchmarks" must be a list, got {type(benches).__name__}')
    digest = hashlib.sha256(
        canonical_json(
            {k: doc.get(k) for k in ("datetime", "machine_info", "commit_info", "benchmarks")}, "file"
        ).encode()
    ).hexdigest()
    stamp = str(doc.get("datetime") or "")[:19].replace("-", "").replace(":", "").replace("T", "-")
    run_id = f"pytest-{stamp}-{digest[:8]}" if stamp else f"pytest-{digest[:12]}"
    if _existing(store, run_id) is not None:
        return run_id  # the id is the content's digest: this file was imported before
    time = doc.get("datetime")
    rows: list[dict] = []
    for i, bench in enumerate(benches):
        if not isinstance(bench, dict) or not isinstance(bench.get("stats"), dict):
            raise UserError(f'{path}: benchmark #{i} has no "stats" object')
        stats = bench["stats"]
        extra_info = bench.get("extra_info") or {}
        params = bench.get("params") or {}
        if not isinstance(extra_info, dict) or not isinstance(params, dict):
            raise UserError(f"{path}: benchmark #{i} has non-object extra_info or params")
        median = stats.get("median")
        if not isinstance(median, (int, float)) or median <= 0:
            raise UserError(f"{path}: benchmark #{i} stats.median must be a positive number, got {median!r}")
        fullname = str(bench.get("fullname") or bench.get("name") or i)
        config = extra_info.get("config")
        if not isinstance(config, dict):
            config = {
                k: v
                for k, v in params.items()
                if k not in ("quantizer", "backend", "device", "dataset", "operation")
            }
        operation = _pick("operation", extra_info, params)
        common = {
            "time": time,
            "benchmark": str(_pick("benchmark", extra_info, params, _kind(bench, extra_info))),
            "quantizer": str(_pick("quantizer", extra_info, params, _test_name(bench))),
            "config": config,
            "backend": str(_pick("backend", extra_info, params, "eager")),
            "device": str(_pick("device", extra_info, params, "cpu")),
            "dataset": _pick("dataset", extra_info, params),
            "cell_id": hashlib.sha256(fullname.encode()).hexdigest()[:16],
            "extra": {
                "operation": operation,
                "test": fullname,
                "group": bench.get("group"),
                **{k: stats.get(k) for k in ("mean", "stddev", "min", "max", "ops", "iterations")},
                **{k: v for k, v in extra_info.items() if k != "config"},
            },
        }
        if common["dataset"] is not None:
            common["dataset"] = str(common["dataset"])
        q1, q3 = stats.get("q1"), stats.get("q3")
        rows.append(
            {
                **common,
                "metric": "time_s",
                "value": float(median),
                "unit": "s",
                "higher_is_better": False,
                "spread": stats.get("iqr"),
                "n": stats.get("rounds"),
            }
        )
        vectors = extra_info.get("vectors")
        if isinstance(vectors, (int, float)) and vectors > 0:
            spread = (vectors / q1 - vectors / q3) if q1 and q3 and q1 > 0 else None
            rows.append(
                {
                    **common,
                    "metric": "vectors_per_s",
                    "value": vectors / median,
                    "unit": "vectors/s",
                    "higher_is_better": True,
                    "spread": spread,
                    "n": stats.get("rounds"),
                }
            )
        units = extra_info.get("units")
        if isinstance(units, dict):  # figures of the suite's engines (usage, reconstruction)
            for metric, unit in units.items():
                value = extra_info.get(metric)
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    rows.append({**common, "metric": str(metric), "value": float(value), "unit": str(unit)})
    store.add_run(
        {
            "run_id": run_id,
            "suite": PYTEST_SUITE,
            "environment": _environment(doc),
            "config": {
                "source": str(path.name),
                "pytest_benchmark": doc.get("version"),
                "imported": {"file": path.name, "run_id": run_id, "digest": digest, "time": utc_now()},
            },
            "status": "finished",
        },
        rows,
    )
    return run_id


__all__ = ["import_file", "import_pytest_benchmark"]
