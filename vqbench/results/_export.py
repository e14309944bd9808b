"""Export of one run to JSON, CSV or Parquet, and reading those files back as typed rows."""

from __future__ import annotations

import json
import math
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
    if suffix == ".json":
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


__all__ = ["export_run", "read_export", "read_json_export", "rows_to_records"]
