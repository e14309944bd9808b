"""Export of one run to JSON, CSV, Parquet or Bencher's metric format (BMF), and reading the first
three back as typed rows."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from vqbench.errors import MissingFileError, UserError
from vqbench.results._frames import type_rows
from vqbench.results._reading import StoreReading
from vqbench.results._renames import current_names
from vqbench.results._schema import ROW_COLUMNS

EXPORT_FORMAT = "vqbench-results"
EXPORT_VERSION = 1
SUFFIXES = (".json", ".csv", ".parquet")
BMF_SUFFIX = ".bmf.json"
# Text columns that are never null: an empty CSV cell there means "".
_NOT_NULL_TEXT = ("message", "unit", "cell_id", "suite", "backend", "device", "config_hash")


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise UserError(f"export path must end in one of {SUFFIXES}, got {str(path)!r}")
    return suffix


def rows_to_records(frame: Any) -> list[dict]:
    """Typed rows as plain JSON-ready dicts (NaN/NA as None; config and extra parsed)."""
    records = []
    for rec in frame.to_dict(orient="records"):
        out: dict[str, Any] = {}
        for key in ROW_COLUMNS:
            value = rec[key]
            if key == "time":
                value = value.isoformat()
            elif key in ("config", "extra"):
                value = json.loads(value)
            elif value is None or (not isinstance(value, str) and _missing(value)):
                value = None
            elif key in ("n", "seed"):
                value = int(value)
            elif key == "higher_is_better":
                value = bool(value)
            elif key in ("value", "spread"):
                value = float(value)
            out[key] = value
        records.append(out)
    return records


def bencher_metrics(frame: Any) -> dict:
    """Measured rows as Bencher Metric Format: ``{benchmark: {measure: {"value", "lower_value",
    "upper_value"}}}``. A benchmark is ``benchmark/quantizer {config}/backend/device/dataset`` (empty
    parts left out), a measure is the metric's name; the value is the median over the run's rows
    of that figure, the bounds their minimum and maximum, or value -/+ half its stored IQR for a
    figure measured once."""
    out: dict[str, dict] = {}
    ok = frame[(frame["status"] == "ok") & frame["value"].notna()]
    for rec in ok.to_dict(orient="records"):
        config = json.dumps(json.loads(rec["config"]), sort_keys=True, separators=(",", ":"))
        parts = [
            rec["benchmark"],
            f"{rec['quantizer']} {config}",
            rec["backend"],
            rec["device"],
            rec["dataset"],
        ]
        name = "/".join(str(p) for p in parts if p is not None and p == p and p != "")
        out.setdefault(name, {}).setdefault(rec["metric"], []).append((float(rec["value"]), rec["spread"]))
    bmf: dict[str, dict] = {}
    for name, measures in out.items():
        for measure, found in measures.items():
            values = sorted(v for v, _ in found)
            value = float(statistics.median(values))
            half = float(found[0][1]) / 2 if len(found) == 1 and not _missing(found[0][1]) else 0.0
            lower, upper = (value - half, value + half) if len(found) == 1 else (values[0], values[-1])
            bmf.setdefault(name, {})[measure] = {"value": value, "lower_value": lower, "upper_value": upper}
    return bmf


def _missing(value: Any) -> bool:
    try:
        return bool(value != value) or (isinstance(value, float) and math.isnan(value))
    except TypeError:
        return True


def export_run(store: StoreReading, run_id: str, path: str | Path) -> Path:
    """Write run ``run_id`` of ``store`` to ``path`` (format from the suffix); returns the path."""
    path = Path(path)
    suffix = _suffix(path)
    run_id = store.resolve_run(run_id)
    frame = store.rows(run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.lower().endswith(BMF_SUFFIX):
        path.write_text(
            json.dumps(bencher_metrics(frame), indent=1, allow_nan=False) + "\n", encoding="utf-8"
        )
    elif suffix == ".json":
        doc = {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "run": store.run_info(run_id),
            "rows": rows_to_records(frame),
        }
        path.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    elif suffix == ".csv":
        out = frame.copy()
        out["time"] = out["time"].map(lambda t: t.isoformat())
        out.to_csv(path, index=False)
    else:
        try:
            frame.to_parquet(path, index=False)
        except ImportError as exc:
            raise ImportError("Parquet export needs pyarrow: pip install 'vqbench[parquet]'") from exc
    return path


def read_export(path: str | Path) -> Any:
    """The rows of an exported file (``.json``, ``.csv`` or ``.parquet``) as a typed DataFrame,
    with renamed metrics under their new names."""
    import pandas as pd

    path = Path(path)
    suffix = _suffix(path)
    if not path.is_file():
        raise MissingFileError(f"no exported results file at {path}")
    if suffix == ".json":
        doc = read_json_export(path)
        records = [
            {
                k: (json.dumps(v, sort_keys=True, separators=(",", ":")) if k in ("config", "extra") else v)
                for k, v in r.items()
            }
            for r in doc["rows"]
        ]
        frame = pd.DataFrame.from_records(records, columns=list(ROW_COLUMNS))
    elif suffix == ".csv":
        na = {c: [""] for c in ROW_COLUMNS if c not in _NOT_NULL_TEXT}
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=na)
    else:
        frame = pd.read_parquet(path)
    frame = type_rows(frame)
    for col in _NOT_NULL_TEXT:
        frame[col] = frame[col].fillna("")
    return current_names(frame)


def read_json_export(path: str | Path) -> dict:
    """A vqbench JSON export as a dict, checked for its format marker and keys."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != EXPORT_FORMAT:
        raise UserError(f'{path} is not a vqbench results export (expected "format": "{EXPORT_FORMAT}")')
    if doc.get("version", 0) > EXPORT_VERSION:
        raise UserError(f"{path} has export version {doc.get('version')}, newer than {EXPORT_VERSION}")
    if not isinstance(doc.get("run"), dict) or not isinstance(doc.get("rows"), list):
        raise UserError(f'{path} must hold a "run" object and a "rows" list')
    return doc


__all__ = ["bencher_metrics", "export_run", "read_export", "read_json_export", "rows_to_records"]
