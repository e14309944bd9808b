"""The tidy row schema: one row per measured figure, and the runs that hold them."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime, timezone
from typing import Any

from vqbench.errors import UserError

# Row columns in order, with the SQLite type each is stored as.
ROW_COLUMNS: dict[str, str] = {
    "run_id": "TEXT NOT NULL",
    "time": "TEXT NOT NULL",
    "suite": "TEXT NOT NULL",
    "benchmark": "TEXT NOT NULL",
    "quantizer": "TEXT NOT NULL",
    "config": "TEXT NOT NULL",
    "config_hash": "TEXT NOT NULL",
    "backend": "TEXT NOT NULL",
    "device": "TEXT NOT NULL",
    "dataset": "TEXT",
    "dataset_checksum": "TEXT",
    "metric": "TEXT NOT NULL",
    "value": "REAL",
    "unit": "TEXT NOT NULL",
    "higher_is_better": "INTEGER",
    "spread": "REAL",
    "n": "INTEGER",
    "seed": "INTEGER",
    "cell_id": "TEXT NOT NULL",
    "status": "TEXT NOT NULL",
    "message": "TEXT NOT NULL",
    "extra": "TEXT NOT NULL",
}

RUN_COLUMNS: dict[str, str] = {
    "run_id": "TEXT PRIMARY KEY",
    "started": "TEXT NOT NULL",
    "finished": "TEXT",
    "suite": "TEXT NOT NULL",
    "status": "TEXT NOT NULL",
    "environment": "TEXT NOT NULL",
    "env_hash": "TEXT NOT NULL",
    "config": "TEXT NOT NULL",
}

ROW_STATUSES = ("ok", "error", "skipped")
RUN_STATUSES = ("running", "finished", "interrupted", "remeasure")
REQUIRED_ROW_KEYS = ("benchmark", "quantizer", "metric")

TEXT_COLUMNS = (
    "run_id",
    "suite",
    "benchmark",
    "quantizer",
    "config",
    "config_hash",
    "backend",
    "device",
    "dataset",
    "dataset_checksum",
    "metric",
    "unit",
    "cell_id",
    "status",
    "message",
    "extra",
)


def utc_now() -> str:
    """The current time as an ISO 8601 UTC string with microseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def run_time(value: Any, what: str) -> str:
    """A run's start or end time as stored (ISO 8601 UTC with microseconds, so that text order is
    time order); ``None`` is now. A time that is not ISO 8601, or more than a day in the future
    (it would stay the latest run for ever), is a ``UserError``."""
    from datetime import timedelta

    from vqbench.errors import UserError

    if value is None or value == "":
        return utc_now()
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        raise UserError(f"a run's {what} time must be an ISO 8601 date and time, got {value!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    when = when.astimezone(timezone.utc)
    if when > datetime.now(timezone.utc) + timedelta(days=1):
        raise UserError(f"a run's {what} time lies in the future: {value!r}")
    return when.isoformat(timespec="microseconds")


def canonical_json(value: Any, what: str) -> str:
    """``value`` as JSON with sorted keys; a string is taken as JSON already and checked."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise UserError(f"{what} must be a dict or a JSON string, got invalid JSON {value!r}") from exc
    try:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), allow_nan=False, default=_json_default
        )
    except ValueError as exc:
        raise UserError(f"{what} must be JSON-serializable without NaN/inf, got {value!r}") from exc


def _json_default(obj: Any) -> Any:
    """Plain values for common non-JSON types (numpy scalars, paths, tuples)."""
    if hasattr(obj, "item") and callable(obj.item):
        return obj.item()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    return str(obj)


def config_hash(config_json: str) -> str:
    """Stable short hash of a canonical config JSON."""
    return hashlib.sha256(config_json.encode()).hexdigest()[:16]


def _as_float(value: Any, key: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise TypeError(f"row {key} must be a number or None, got {type(value).__name__} {value!r}")
    out = float(value)
    return None if math.isnan(out) else out


def _as_int(value: Any, key: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, bool):
        raise TypeError(f"row {key} must be an integer or None, got bool {value!r}")
    try:
        out = int(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"row {key} must be an integer or None, got {value!r}") from exc
    if out != value:
        raise TypeError(f"row {key} must be an integer or None, got {value!r}")
    return out


def _as_time(value: Any) -> str:
    if value is None:
        return utc_now()
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).isoformat(timespec="microseconds")
    if isinstance(value, str):
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise UserError(f"row time must be an ISO 8601 string, got {value!r}") from exc
        return value
    raise TypeError(f"row time must be an ISO 8601 string or a datetime, got {type(value).__name__}")


def normalize_row(row: dict, *, run_id: str | None, suite: str | None) -> tuple:
    """Check one row dict and return its values in ``ROW_COLUMNS`` order, ready for SQLite."""
    if not isinstance(row, dict):
        raise TypeError(f"each row must be a dict, got {type(row).__name__}")
    unknown = sorted(set(row) - set(ROW_COLUMNS))
    if unknown:
        raise UserError(f"row has unknown keys {unknown}; expected keys among {list(ROW_COLUMNS)}")
    missing = [k for k in REQUIRED_ROW_KEYS if not row.get(k)]
    if missing:
        raise UserError(f"row is missing required keys {missing} (got {row!r})")
    out = dict(row)
    out["run_id"] = row.get("run_id") or run_id
    if not out["run_id"]:
        raise UserError("row has no run_id and the store has no started run; call start_run() first")
    out["suite"] = row.get("suite") or suite or ""
    out["time"] = _as_time(row.get("time"))
    out["config"] = canonical_json(row.get("config") or {}, "row config")
    out["config_hash"] = row.get("config_hash") or config_hash(out["config"])
    out["extra"] = canonical_json(row.get("extra") or {}, "row extra")
    out["backend"] = row.get("backend") or "eager"
    out["device"] = row.get("device") or "cpu"
    out["unit"] = row.get("unit") or ""
    out["message"] = row.get("message") or ""
    out["cell_id"] = row.get("cell_id") or ""
    status = row.get("status") or "ok"
    if status not in ROW_STATUSES:
        raise UserError(f"row status must be one of {ROW_STATUSES}, got {status!r}")
    out["status"] = status
    out["value"] = _as_float(row.get("value"), "value")
    out["spread"] = _as_float(row.get("spread"), "spread")
    out["n"] = _as_int(row.get("n"), "n")
    out["seed"] = _as_int(row.get("seed"), "seed")
    hib = row.get("higher_is_better")
    if hib is not None and not isinstance(hib, bool):
        if hib in (0, 1):
            hib = bool(hib)
        else:
            raise TypeError(f"row higher_is_better must be True, False or None, got {hib!r}")
    out["higher_is_better"] = None if hib is None else int(hib)
    for key in (
        "run_id",
        "suite",
        "benchmark",
        "quantizer",
        "backend",
        "device",
        "metric",
        "unit",
        "cell_id",
        "message",
        "dataset",
        "dataset_checksum",
    ):
        if out.get(key) is not None and not isinstance(out[key], str):
            raise TypeError(f"row {key} must be a string, got {type(out[key]).__name__} {out[key]!r}")
    return tuple(out.get(k) for k in ROW_COLUMNS)


__all__ = [
    "ROW_COLUMNS",
    "RUN_COLUMNS",
    "ROW_STATUSES",
    "RUN_STATUSES",
    "TEXT_COLUMNS",
    "canonical_json",
    "config_hash",
    "normalize_row",
    "run_time",
    "utc_now",
]
