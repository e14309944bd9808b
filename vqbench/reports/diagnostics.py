"""The report's diagnostics of the reconstruction cells: widths, token-limited utilization, per dimension.

For every reconstruction cell group (dataset, quantizer, codebook size; seeds together): the latent
width the quantizer saw and how (its own width, a config ``dim``, or one shared width behind an
explicit projection), utilization as mean ± sd [min-max] with tokens per code and its token curve
(utilization at 1/16, 1/4, 1/2 and all of the eval tokens) and how many seeds are token-limited,
PSNR, steps and convergence, and the per-dimension diagnostics of each seed: levels used per channel
(FSQ), live bits (LFQ/BSQ), and the participation ratio of the quantizer's input. Reads prepared rows
only (``_data.prepare``).
"""

from __future__ import annotations

import math
from typing import Any

from vqbench.results.vocabulary import NO_QUANTIZER


def _size(k: Any) -> str:
    if k is None or k != k:
        return "—"
    k = int(k)
    return f"2^{int(math.log2(k))}" if k > 0 and k & (k - 1) == 0 else str(k)


def _recon(rows: Any) -> Any:
    return rows[(rows["benchmark"] == "reconstruction") & rows["status"].eq("ok")]


def cells(rows: Any) -> dict[tuple[str, str, int | None], dict[int, dict[str, Any]]]:
    """``{(dataset, quantizer, size): {seed: {metric: (value, extra)}}}`` of the reconstruction rows."""
    out: dict[tuple[str, str, int | None], dict[int, dict[str, Any]]] = {}
    sel = _recon(rows)
    for dataset, quantizer, size, seed, metric, value, ext in zip(
        sel["dataset"],
        sel["quantizer"],
        sel["codebook_size"],
        sel["seed"],
        sel["metric"],
        sel["value"],
        sel["ext"],
        strict=True,
    ):
        k = None if size is None or size != size else int(size)
        s = int(seed) if seed == seed and seed is not None else 0
        out.setdefault((dataset, quantizer, k), {}).setdefault(s, {})[metric] = (float(value), ext or {})
    return out


def _stat(values: list[float], pct: bool = False, digits: int = 2) -> str:
    if not values:
        return "—"
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    f = 100.0 if pct else 1.0
    d = 1 if pct else digits
    text = f"{f * mean:.{d}f}{'%' if pct else ''}"
    if n > 1:
        text += f" ± {f * sd:.{d}f} [{f * min(values):.{d}f}-{f * max(values):.{d}f}]"
    return text


def _per_seed(seeds: dict[int, dict[str, Any]]) -> tuple[list[str], list[float]]:
    """Per-dimension summaries (``seed N: ...``) and the input participation ratios of each seed."""
    notes, ratios = [], []
    for seed in sorted(seeds):
        m = seeds[seed]
        for metric in ("live_bits", "levels_used"):
            if metric in m:
                notes.append(f"seed {seed}: {m[metric][1].get('summary', '')}")
        if "input_participation_ratio" in m:
            ratios.append(m["input_participation_ratio"][0])
    return notes, ratios


def size_note(rows: Any, quantizer: str, size: int, dataset: str) -> str:
    """One line of per-dimension diagnostics for a sweep size (empty when there are none).

    ``"2^8: 7 of 8 bits live in seeds 0, 2 (utilization at most 50%); input participation ratio
    5.1-6.2 of 8"``.
    """
    seeds = cells(rows).get((dataset, quantizer, size))
    if not seeds:
        return ""
    parts = []
    capped = {s: m["reachable_share"][0] for s, m in seeds.items() if "reachable_share" in m}
    kind = next((m["reachable_share"][1] for m in seeds.values() if "reachable_share" in m), None)
    if kind is not None:
        short = {s: r for s, r in capped.items() if r < 1}
        if short:
            texts = [
                f"seed {s}: {seeds[s]['reachable_share'][1].get('summary')} (utilization at most {r:.0%})"
                for s, r in sorted(short.items())
            ]
            parts.append("; ".join(texts))
        else:
            what = (
                "every bit live" if "bits" in str(kind.get("kind")) else "every channel uses all its levels"
            )
            parts.append(f"{what} in all {len(capped)} seeds")
    _, ratios = _per_seed(seeds)
    width = next(
        (
            m["input_participation_ratio"][1].get("width")
            for m in seeds.values()
            if "input_participation_ratio" in m
        ),
        None,
    )
    if ratios and width:
        lo, hi = min(ratios), max(ratios)
        span = f"{lo:.1f}" if abs(hi - lo) < 0.05 else f"{lo:.1f}-{hi:.1f}"
        parts.append(f"input participation ratio {span} of {width} dims")
    return f"{quantizer} {_size(size)}: " + "; ".join(parts) if parts else ""


def dead_dimension_notes(rows: Any) -> list[str]:
    """Lines naming every cell whose bits or levels leave codes unreachable (e.g. a dead LFQ bit)."""
    out = []
    for (dataset, quantizer, size), seeds in sorted(
        cells(rows).items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or 0)
    ):
        short = []
        for seed, m in sorted(seeds.items()):
            if "reachable_share" in m and m["reachable_share"][0] < 1:
                summary = m["reachable_share"][1].get("summary", "")
                util = m.get("utilization", (float("nan"), {}))[0]
                short.append(
                    f"seed {seed}: {summary}, so at most {m['reachable_share'][0]:.0%} of the codes "
                    f"can appear (measured {util:.1%})"
                )
        if short:
            out.append(f"{quantizer} {_size(size)} on {dataset}: " + "; ".join(short))
    return out


def widths_text(rows: Any) -> tuple[str, bool]:
    """What widths the encoder emitted, per quantizer, and the ceiling's; whether one width was shared."""
    per: dict[str, dict[str, set]] = {}
    shared = False
    ceiling = set()
    sel = _recon(rows)
    sel = sel[sel["metric"] == "psnr"]
    for quantizer, size, ext in zip(sel["quantizer"], sel["codebook_size"], sel["ext"], strict=True):
        ext = ext or {}
        if quantizer == NO_QUANTIZER:
            ceiling.add(f"{ext.get('latent_dim', '?')} ({ext.get('width_note', 'width not recorded')})")
            continue
        if "latent_dim" not in ext:
            continue
        entry = per.setdefault(quantizer, {"widths": set(), "kinds": set()})
        entry["widths"].add((size if size == size else None, ext.get("latent_dim"), ext.get("quantizer_dim")))
        entry["kinds"].add(ext.get("width", "?"))
        shared |= ext.get("width") == "shared"
    parts = []
    for quantizer, entry in per.items():
        sizes = sorted(entry["widths"], key=lambda t: t[0] or 0)
        text = ", ".join(
            f"{_size(k)}: {latent}" + (f" -> {q}" if q not in (None, latent) else "")
            for k, latent, q in sizes
        )
        parts.append(f"{quantizer} ({'/'.join(sorted(entry['kinds']))}) {text}")
    if not parts and not ceiling:
        return "", False
    lead = (
        "One shared latent width: every quantizer sits behind the same explicit linear projection "
        "(latent -> quantizer width shown after the arrow). "
        if shared
        else "Each quantizer gets its own input width from the encoder (FSQ len(levels), LFQ/BSQ its bits, "
        "VQ codebook_dim), with no projection inside the quantizer. "
    )
    text = lead + "Latent widths: " + "; ".join(parts) + "."
    if ceiling:
        text += " No-quantizer ceiling: " + "; ".join(sorted(ceiling)) + "."
    return text, shared


def diagnostics_table(rows: Any, stamp: str) -> Any:
    """Per reconstruction cell group: width, utilization with its token curve, PSNR, steps, diagnostics."""
    from vqbench.reports.document import Table, TableCell

    groups = cells(rows)
    if not groups:
        return None
    body = []
    for (dataset, quantizer, size), seeds in sorted(
        groups.items(), key=lambda kv: (kv[0][0], kv[0][1] == NO_QUANTIZER, kv[0][1], kv[0][2] or 0)
    ):
        m0 = next(iter(seeds.values()))
        psnr_ext = m0.get("psnr", (0, {}))[1]
        width = psnr_ext.get("latent_dim", "—")
        if psnr_ext.get("width") == "shared":
            width = f"{width} -> {psnr_ext.get('quantizer_dim')}"
        util = [m["utilization"][0] for m in seeds.values() if "utilization" in m]
        util_ext = [m["utilization"][1] for m in seeds.values() if "utilization" in m]
        curves = [e.get("token_curve") for e in util_ext if e.get("token_curve")]
        if curves:
            cols = list(zip(*[c["utilization"] for c in curves], strict=True))
            curve = " / ".join(f"{100 * sum(col) / len(col):.0f}" for col in cols) + "%"
        else:
            curve = "—"
        limited = sum(bool(e.get("token_limited")) for e in util_ext)
        tpc = util_ext[0].get("tokens_per_code") if util_ext else None
        steps = [int(m["train_steps"][0]) for m in seeds.values() if "train_steps" in m]
        done = sum(bool(m["train_steps"][1].get("converged")) for m in seeds.values() if "train_steps" in m)
        notes, ratios = _per_seed(seeds)
        pr_width = next(
            (
                m["input_participation_ratio"][1].get("width")
                for m in seeds.values()
                if "input_participation_ratio" in m
            ),
            None,
        )
        body.append(
            [
                TableCell(dataset, kind="label"),
                TableCell(quantizer, kind="label"),
                TableCell(_size(size), kind="label"),
                TableCell(str(width)),
                TableCell(_stat(util, pct=True) if util else "—"),
                TableCell("—" if tpc is None else f"{tpc:,.0f}"),
                TableCell(curve),
                TableCell(
                    f"{limited}/{len(util_ext)}" if util_ext else "—", verdict="worse" if limited else ""
                ),
                TableCell(_stat([m["psnr"][0] for m in seeds.values() if "psnr" in m])),
                TableCell(
                    "—"
                    if not steps
                    else (f"{min(steps)}-{max(steps)}" if min(steps) != max(steps) else str(steps[0]))
                ),
                TableCell(
                    f"{done}/{len(steps)}" if steps else "—", verdict="" if done == len(steps) else "worse"
                ),
                TableCell("; ".join(notes) or "—", kind="label"),
                TableCell("—" if not ratios else f"{_stat(ratios, digits=1)} of {pr_width}"),
            ]
        )
    return Table(
        "Reconstruction cells: widths, utilization and its token curve, per-dimension diagnostics",
        [
            "dataset",
            "quantizer",
            "K",
            "latent width",
            "utilization, mean ± sd [min-max]",
            "eval tokens per code",
            "utilization at 1/16 / 1/4 / 1/2 / all tokens",
            "token-limited seeds",
            "PSNR dB",
            "steps",
            "converged",
            "per dimension, per seed",
            "input participation ratio",
        ],
        body,
        caption="Token-limited: the last doubling of eval tokens still added more than the tolerance "
        "of utilization (the figure is a lower bound, bounded by the eval set's size). Per dimension: "
        "levels used per channel (FSQ) or live bits (LFQ/BSQ: a bit with one sign for every token is "
        "dead). Participation ratio (sum of the input covariance's eigenvalues)^2 / (sum of their "
        f"squares): how many directions the encoder's output spreads over, of the quantizer's width. {stamp}",
    )


def diagnostics_blocks(rows: Any, stamp: str) -> list[Any]:
    """The widths paragraph (a callout when one width is shared), the diagnostics table, dead dimensions."""
    from vqbench.reports.document import Callout, Paragraph

    blocks: list[Any] = []
    text, shared = widths_text(rows)
    if text:
        blocks.append(Callout(text, "warning") if shared else Paragraph(text))
    table = diagnostics_table(rows, stamp)
    if table is not None:
        blocks.append(table)
    dead = dead_dimension_notes(rows)
    if dead:
        blocks.append(
            Paragraph(
                "Dimensions that leave codes unreachable (they explain a utilization figure): "
                + " · ".join(dead)
                + "."
            )
        )
    return blocks


__all__ = [
    "cells",
    "dead_dimension_notes",
    "diagnostics_blocks",
    "diagnostics_table",
    "size_note",
    "widths_text",
]
