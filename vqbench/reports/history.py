"""The history of a run: the window of comparable past runs that the gate compares it with, and
the path of a figure's page in the history site.

Comparable runs: finished runs of the same suite with the same environment fingerprint
(``env_hash``), the most recent ``window`` of them. A run that a nightly flagged as regressed stays
out until it is accepted, and an accepted run that set a new level starts the history.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def run_marks(config: Any) -> dict[str, bool]:
    """What a run's stored config says about its place in the history: ``imported`` (from a file),
    ``flagged`` (a nightly found a regression in it), ``accepted`` (``vqbench nightly --accept``)."""
    if isinstance(config, str):
        try:
            config = json.loads(config)
        except ValueError:
            config = {}
    config = config if isinstance(config, dict) else {}
    gate = config.get("gate") if isinstance(config.get("gate"), dict) else {}
    accepted = config.get("accepted") if isinstance(config.get("accepted"), dict) else {}
    return {
        "imported": bool(config.get("imported")),
        "flagged": gate.get("status") == "regression",
        "accepted": bool(config.get("accepted")),
        "from": accepted.get("from"),  # an accepted new level: the history starts at this run
    }


def accepted_runs(runs: Any) -> set[str]:
    """The run ids accepted with ``vqbench nightly --accept RUN``."""
    if "config" not in runs:
        return set()
    return {r for r, c in zip(runs["run_id"], runs["config"], strict=True) if run_marks(c)["accepted"]}


def history_run_ids(
    runs: Any, run_id: str, suite: str, env_hash: str, window: int, include_imported: bool = False
) -> list[str]:
    """The ``window`` most recent finished runs before ``run_id`` with the same suite and env hash.

    Left out: runs that a nightly flagged as regressed, until accepted (``vqbench nightly --accept
    RUN``), so that a regression never becomes the baseline silently; and imported runs, unless
    ``include_imported``. An accepted run that set a new level starts the history: runs before
    the first run of that level are left out."""
    runs = runs.sort_values("started")
    if "config" in runs:
        marks = [run_marks(c) for c in runs["config"]]
        keep = [
            (not m["flagged"] or m["accepted"]) and (include_imported or not m["imported"] or m["accepted"])
            for m in marks
        ]
        runs = runs[keep]
        marks = [m for m, k in zip(marks, keep, strict=True) if k]
        ids = runs["run_id"].tolist()
        current_at = ids.index(run_id) if run_id in ids else len(ids)
        starts = [m["from"] for m in marks[:current_at] if m["from"] in ids]
        if starts:
            runs = runs.iloc[ids.index(starts[-1]) :]
    current = runs[runs["run_id"] == run_id]
    if not current.empty:
        runs = runs[runs["started"] <= current["started"].iloc[0]]
    same = runs[
        (runs["suite"] == suite)
        & (runs["env_hash"] == env_hash)
        & (runs["status"] == "finished")
        & (runs["run_id"] != run_id)
    ]
    return same["run_id"].tolist()[-window:]


#: Fingerprint fields that are package versions: a run whose fingerprint differs from its history's
#: in these alone is compared with the runs before the change (an upgrade), not started afresh.
PACKAGE_FIELDS = ("python", "torch", "cuda", "cudnn", "vector_quantize_pytorch")


def _environment(value: Any) -> dict:
    import json

    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def upgrade_history(
    runs: Any, run_id: str, suite: str, environment: dict, window: int, include_imported: bool = False
) -> tuple[list[str], dict[str, list]]:
    """For a run with no history of its own environment: the history of the latest earlier
    environment that differs from it in package versions alone, and those changes
    (``{field: [before, after]}``); ``([], {})`` when there is none."""
    from vqbench.results._environment import HASHED_FIELDS

    runs = runs.sort_values("started")
    current = runs[runs["run_id"] == run_id]
    if not current.empty:
        runs = runs[runs["started"] <= current["started"].iloc[0]]
    earlier = runs[(runs["suite"] == suite) & (runs["status"] == "finished") & (runs["run_id"] != run_id)]
    for rec in reversed(earlier[["env_hash", "environment"]].to_dict("records")):
        before = _environment(rec["environment"])
        changed = {
            f: [before.get(f), environment.get(f)]
            for f in HASHED_FIELDS
            if before.get(f) != environment.get(f)
        }
        if changed and set(changed) <= set(PACKAGE_FIELDS):
            ids = history_run_ids(runs, run_id, suite, rec["env_hash"], window, include_imported)
            if ids:
                return ids, changed
    return [], {}


def upgrade_note(upgrade: dict, checks: Any) -> str:
    """What a package upgrade moved, from the gate's checks against the runs before it."""
    text = ", ".join(f"{name} {old} -> {new}" for name, (old, new) in upgrade.items())
    moved = checks[checks["status"].isin(["regression", "new error", "improvement"])] if len(checks) else []
    names = "; ".join(f"{r['quantizer']} {r['metric']} ({r['status']})" for r in moved.to_dict("records"))
    return (
        f"Judged across a package upgrade ({text}): {len(moved)} of {len(checks)} figures moved "
        f"beyond the gate's limits{': ' + names if names else ''}."
    )


def figure_page(key: tuple) -> str:
    """The path of a figure's page in the history site (``vqbench publish``), from its key
    (``vocabulary.KEY_COLUMNS``): the same for every night, so a report can link to it."""
    text = json.dumps(["" if k is None else str(k) for k in key])
    return f"figures/{hashlib.sha1(text.encode()).hexdigest()[:16]}.html"


__all__ = [
    "PACKAGE_FIELDS",
    "accepted_runs",
    "figure_page",
    "history_run_ids",
    "run_marks",
    "upgrade_history",
    "upgrade_note",
]
