"""pandas views of stored rows and runs, with one set of column types everywhere."""

from __future__ import annotations

from typing import Any

from vqbench.results._schema import ROW_COLUMNS, RUN_COLUMNS, TEXT_COLUMNS

RUN_TEXT_COLUMNS = ("run_id", "suite", "status", "environment", "env_hash", "config")


def rows_frame(records: list[Any]) -> Any:
    """A DataFrame of rows in ``ROW_COLUMNS`` order with the schema's types.

    Types: ``time`` datetime64 UTC; ``value``/``spread`` float64 (NaN for error and skipped rows);
    ``n``/``seed`` nullable Int64; ``higher_is_better`` nullable boolean; text columns the nullable
    ``string`` dtype; ``config`` and ``extra`` stay JSON strings (parse with ``json.loads``).
    """
    import pandas as pd

    frame = pd.DataFrame.from_records(list(records), columns=list(ROW_COLUMNS))
    return type_rows(frame)


def type_rows(frame: Any) -> Any:
    """Cast a rows DataFrame (from the store or a file) to the schema's column types."""
    import pandas as pd

    missing = [c for c in ROW_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"results table is missing columns {missing}; expected {list(ROW_COLUMNS)}")
    frame = frame[list(ROW_COLUMNS)].copy()
    for col in TEXT_COLUMNS:
        frame[col] = _text(frame[col])
    frame["time"] = pd.to_datetime(frame["time"], utc=True, format="ISO8601", errors="coerce")
    for col in ("value", "spread"):
        frame[col] = pd.to_numeric(frame[col], errors="raise").astype("float64")
    for col in ("n", "seed"):
        frame[col] = pd.to_numeric(frame[col], errors="raise").astype("Int64")
    frame["higher_is_better"] = frame["higher_is_better"].map(_bool_or_na).astype("boolean")
    return frame.reset_index(drop=True)


def runs_frame(records: list[Any], extra_columns: tuple[str, ...] = ()) -> Any:
    """A DataFrame of runs: ``started``/``finished`` datetime64 UTC, the rest strings."""
    import pandas as pd

    columns = list(RUN_COLUMNS) + list(extra_columns)
    frame = pd.DataFrame.from_records(list(records), columns=columns)
    for col in RUN_TEXT_COLUMNS:
        frame[col] = _text(frame[col])
    for col in ("started", "finished"):
        frame[col] = pd.to_datetime(frame[col], utc=True, format="ISO8601", errors="coerce")
    for col in extra_columns:
        frame[col] = pd.to_numeric(frame[col]).astype("Int64")
    return frame


def _text(series: Any) -> Any:
    import pandas as pd

    values = [None if _is_missing(v) else str(v) for v in series.tolist()]
    return pd.Series(values, index=series.index, dtype="string")


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, pd.NA
    except TypeError:
        return True


def _bool_or_na(value: Any) -> Any:
    import pandas as pd

    if _is_missing(value):
        return pd.NA
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("true", "1"):
            return True
        if low in ("false", "0"):
            return False
        if low in ("", "none", "null", "nan", "<na>"):
            return pd.NA
        raise ValueError(f"higher_is_better must be true/false/empty, got {value!r}")
    return bool(value)


__all__ = ["rows_frame", "runs_frame", "type_rows"]
