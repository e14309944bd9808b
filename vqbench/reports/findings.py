"""Findings: the FSQ paper's claims (arXiv 2309.15505) tested on a run's stored rows.

Each claim is tested on the reconstruction benchmark's codebook-size sweep (the autoencoder trained
jointly with its quantizer, the setting of the paper), per dataset, with the mean, the standard
deviation and the range over seeds at every codebook size, and gets a verdict: reproduced, not
reproduced, inconclusive (the figures it would rest on are within the seeds' noise of the threshold
or token-limited), or not measured in this run. A verdict names the unconverged cells it rests on,
marks token-limited utilization (the last doubling of eval tokens still added codes: the figure is a
lower bound, bounded by the eval set's size), and quotes the per-dimension diagnostics (levels used
per channel, live bits, the spread of the quantizer's input) where they explain it. The usage
benchmark (each quantizer fitted alone to a fixed token distribution) answers a different question
and is not used for verdicts. Reads prepared rows only (``_data.prepare``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from vqbench.results.vocabulary import NO_QUANTIZER

REPRODUCED, NOT_REPRODUCED, NOT_MEASURED = "reproduced", "not reproduced", "not measured in this run"
INCONCLUSIVE = "inconclusive"

#: Utilization that counts as "high" (the paper: FSQ near 100%; VQ with restarts).
HIGH_UTILIZATION = 0.8
#: Utilization at the largest codebook size below which plain VQ has "collapsed".
COLLAPSED_UTILIZATION = 0.25
#: A difference of means counts when it exceeds this many standard errors (and ``MIN_DB`` for PSNR).
NOISE_K = 2.0
MIN_DB = 0.1

FSQ, VQ, VQ_PLAIN = "fsq", "vq", "vq-plain"


@dataclass
class Stat:
    """Mean, standard deviation, range and count of one figure over seeds.

    ``converged``: cells among them that converged; ``limited``: cells whose utilization is
    token-limited; ``unconverged_seeds``: the seeds of the cells that did not converge.
    """

    mean: float
    sd: float
    n: int
    converged: int = 0
    lo: float | None = None
    hi: float | None = None
    limited: int = 0
    unconverged_seeds: list[int] = field(default_factory=list)

    @property
    def se(self) -> float:
        return self.sd / math.sqrt(self.n) if self.n > 1 else 0.0

    def text(self, unit: str) -> str:
        """``mean ± sd [min-max] (n=...)``, a percentage for ratios, dB for PSNR; token-limited marked."""
        lo = self.mean if self.lo is None else self.lo
        hi = self.mean if self.hi is None else self.hi
        if unit == "ratio":
            mean, spread = f"{100 * self.mean:.1f}%", f" ± {100 * self.sd:.1f}"
            span = f" [{100 * lo:.1f}-{100 * hi:.1f}]"
        else:
            mean, spread, span = f"{self.mean:.2f} dB", f" ± {self.sd:.2f}", f" [{lo:.2f}-{hi:.2f}]"
        more = spread + span if self.n > 1 else ""
        limited = f", token-limited in {self.limited}/{self.n}" if self.limited else ""
        return f"{mean}{more} (n={self.n}{limited})"


@dataclass
class Finding:
    """One claim on one dataset: the figures that test it and the verdict."""

    claim: str
    dataset: str
    verdict: str
    reason: str
    figures: list[str] = field(default_factory=list)
    unconverged: int = 0
    unconverged_cells: list[str] = field(default_factory=list)
    token_limited: list[str] = field(default_factory=list)
    explanations: list[str] = field(default_factory=list)


def _stats(rows: Any, quantizer: str, metric: str, dataset: str) -> dict[int, Stat]:
    """Per codebook size: mean and sd over seeds of ``metric`` in the reconstruction sweep."""
    sel = rows[
        (rows["benchmark"] == "reconstruction")
        & (rows["quantizer"] == quantizer)
        & (rows["metric"] == metric)
        & (rows["dataset"] == dataset)
        & rows["status"].eq("ok")
        & rows["codebook_size"].notna()
    ]
    out: dict[int, Stat] = {}
    for size, group in sel.groupby("codebook_size"):
        values = [float(v) for v in group["value"]]
        n = len(values)
        mean = sum(values) / n
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
        converged = sum(bool(e.get("converged")) for e in group["ext"])
        limited = sum(bool(e.get("token_limited")) for e in group["ext"])
        seeds = [int(s) for s, e in zip(group["seed"], group["ext"], strict=True) if not e.get("converged")]
        out[int(size)] = Stat(mean, sd, n, converged, min(values), max(values), limited, sorted(seeds))
    return dict(sorted(out.items()))


def _size(k: int) -> str:
    return f"2^{int(math.log2(k))}" if k > 0 and k & (k - 1) == 0 else str(k)


def _series(name: str, stats: dict[int, Stat], unit: str) -> str:
    return f"{name}: " + "; ".join(f"{_size(k)} {s.text(unit)}" for k, s in stats.items())


def _unconverged(*series: dict[int, Stat]) -> int:
    return sum(s.n - s.converged for stats in series for s in stats.values())


def _unconverged_cells(**series: dict[int, Stat]) -> list[str]:
    """``"fsq 2^10 (seed 1)"`` for every size whose cells did not all converge."""
    out = []
    for name, stats in series.items():
        for k, s in stats.items():
            if s.unconverged_seeds:
                seeds = ", ".join(map(str, s.unconverged_seeds))
                out.append(f"{name} {_size(k)} (seed{'s' if len(s.unconverged_seeds) > 1 else ''} {seeds})")
    return out


def _limited(**series: dict[int, Stat]) -> list[str]:
    """``"fsq 2^14 (3/3 seeds)"`` for every size whose utilization is token-limited."""
    return [
        f"{name} {_size(k)} ({s.limited}/{s.n} seeds)"
        for name, stats in series.items()
        for k, s in stats.items()
        if s.limited
    ]


def _finish(finding: Finding, **util: dict[int, Stat]) -> Finding:
    """Name the token-limited utilization the finding rests on (unconverged cells are named by caller)."""
    finding.token_limited = _limited(**util)
    return finding


def _below(s: Stat, threshold: float) -> bool:
    """Below ``threshold`` beyond the seeds' noise (``NOISE_K`` standard errors)."""
    return s.mean + NOISE_K * s.se < threshold


def _differs(a: Stat, b: Stat, floor: float = 0.0) -> bool:
    """Whether ``a.mean - b.mean`` exceeds ``NOISE_K`` standard errors and ``floor``."""
    noise = NOISE_K * math.sqrt(a.se**2 + b.se**2)
    return a.mean - b.mean > max(noise, floor)


def fsq_utilization_stays_high(rows: Any, dataset: str) -> Finding:
    claim = "FSQ's utilization stays high as the codebook grows"
    util = _stats(rows, FSQ, "utilization", dataset)
    if len(util) < 2:
        return Finding(claim, dataset, NOT_MEASURED, "fsq was not swept over two or more codebook sizes")
    low = {k: s for k, s in util.items() if s.mean < HIGH_UTILIZATION}
    figures = [_series("fsq utilization", util, "ratio")]
    cells = _unconverged_cells(fsq=util)
    explain = [t for k in low for t in _channel_notes(rows, FSQ, k, dataset)]
    if not low:
        reason = (
            f"at every size from {_size(min(util))} to {_size(max(util))} at least {HIGH_UTILIZATION:.0%}"
        )
        found = Finding(claim, dataset, REPRODUCED, reason, figures, _unconverged(util), cells)
        return _finish(found, fsq=util)
    # a low figure counts against the claim only beyond the seeds' noise and where the eval tokens do
    # not bound it (token-limited utilization is a lower bound: more tokens would show more codes)
    clear = {k: s for k, s in low.items() if _below(s, HIGH_UTILIZATION) and not s.limited}
    sizes = ", ".join(f"{_size(k)} ({s.mean:.1%})" for k, s in (clear or low).items())
    if clear:
        verdict, reason = NOT_REPRODUCED, f"below {HIGH_UTILIZATION:.0%} beyond the seeds' noise at {sizes}"
        rest = {k: s for k, s in low.items() if k not in clear}
        if rest:
            reason += "; below it but token-limited or within noise at " + ", ".join(
                f"{_size(k)} ({s.mean:.1%})" for k, s in rest.items()
            )
    else:
        verdict = INCONCLUSIVE
        reason = (
            f"below {HIGH_UTILIZATION:.0%} at {sizes}, but each of those figures is token-limited or "
            "within the seeds' noise of the threshold"
        )
    finding = Finding(
        claim, dataset, verdict, reason, figures, _unconverged(util), cells, explanations=explain
    )
    return _finish(finding, fsq=util)


def plain_vq_collapses(rows: Any, dataset: str) -> Finding:
    claim = "plain VQ's utilization collapses as the codebook grows"
    util = _stats(rows, VQ_PLAIN, "utilization", dataset)
    if len(util) < 2:
        return Finding(claim, dataset, NOT_MEASURED, "vq-plain was not swept over two or more codebook sizes")
    small, large = util[min(util)], util[max(util)]
    figures = [_series("vq-plain utilization", util, "ratio")]
    falls = _differs(small, large)
    if falls and large.mean <= COLLAPSED_UTILIZATION:
        verdict = REPRODUCED if not large.limited else INCONCLUSIVE
        reason = (
            f"falls from {small.mean:.1%} at {_size(min(util))} to {large.mean:.1%} at {_size(max(util))}"
            f" (at most {COLLAPSED_UTILIZATION:.0%})"
        )
        if large.limited:
            reason += f", but {_size(max(util))} is token-limited (a lower bound)"
    else:
        verdict = NOT_REPRODUCED
        why = (
            "does not fall beyond the seeds' noise"
            if not falls
            else f"stays above {COLLAPSED_UTILIZATION:.0%}"
        )
        reason = f"{why}: {small.mean:.1%} at {_size(min(util))}, {large.mean:.1%} at {_size(max(util))}"
    finding = Finding(
        claim, dataset, verdict, reason, figures, _unconverged(util), _unconverged_cells(**{"vq-plain": util})
    )
    return _finish(finding, **{"vq-plain": util})


def fsq_psnr_rises(rows: Any, dataset: str) -> Finding:
    claim = "FSQ's reconstruction (PSNR) improves with codebook size"
    psnr = _stats(rows, FSQ, "psnr", dataset)
    if len(psnr) < 2:
        return Finding(claim, dataset, NOT_MEASURED, "fsq was not swept over two or more codebook sizes")
    small, large = psnr[min(psnr)], psnr[max(psnr)]
    figures = [_series("fsq PSNR", psnr, "dB")]
    ceiling = _ceiling(rows, dataset)
    if ceiling is not None:
        figures.append(f"no quantizer (ceiling): {ceiling.text('dB')}")
    gain = large.mean - small.mean
    span = f"{_size(min(psnr))} -> {_size(max(psnr))}: {gain:+.2f} dB"
    cells = _unconverged_cells(fsq=psnr)
    if _differs(large, small, MIN_DB):
        reason = f"rises beyond the seeds' noise ({span})"
        return Finding(claim, dataset, REPRODUCED, reason, figures, _unconverged(psnr), cells)
    return Finding(
        claim,
        dataset,
        NOT_REPRODUCED,
        f"no rise beyond the seeds' noise ({span})",
        figures,
        _unconverged(psnr),
        cells,
    )


def restarts_rescue_vq(rows: Any, dataset: str) -> Finding:
    claim = "dead-code restarts rescue VQ (vq against vq-plain)"
    util, plain = _stats(rows, VQ, "utilization", dataset), _stats(rows, VQ_PLAIN, "utilization", dataset)
    common = sorted(set(util) & set(plain))
    if not common:
        return Finding(claim, dataset, NOT_MEASURED, "vq and vq-plain were not measured at a common size")
    k = common[-1]
    psnr, psnr_plain = _stats(rows, VQ, "psnr", dataset), _stats(rows, VQ_PLAIN, "psnr", dataset)
    figures = [_series("vq utilization", util, "ratio"), _series("vq-plain utilization", plain, "ratio")]
    if psnr and psnr_plain:
        figures += [_series("vq PSNR", psnr, "dB"), _series("vq-plain PSNR", psnr_plain, "dB")]
    u, p = util[k], plain[k]
    psnr_ok = k not in psnr or k not in psnr_plain or not _differs(psnr_plain[k], psnr[k], MIN_DB)
    where = f"at {_size(k)}: vq {u.mean:.1%} against vq-plain {p.mean:.1%}"
    cells = _unconverged_cells(vq={k: util[k]}, **{"vq-plain": {k: plain[k]}})
    if u.mean >= HIGH_UTILIZATION and _differs(u, p) and psnr_ok:
        finding = Finding(
            claim, dataset, REPRODUCED, f"{where}, PSNR no worse", figures, _unconverged(util, plain), cells
        )
        return _finish(finding, vq={k: util[k]}, **{"vq-plain": {k: plain[k]}})
    why = (
        "PSNR worse than vq-plain"
        if not psnr_ok
        else f"vq below {HIGH_UTILIZATION:.0%} or not above vq-plain"
    )
    finding = Finding(
        claim, dataset, NOT_REPRODUCED, f"{why} ({where})", figures, _unconverged(util, plain), cells
    )
    return _finish(finding, vq={k: util[k]}, **{"vq-plain": {k: plain[k]}})


def _channel_notes(rows: Any, quantizer: str, size: int, dataset: str) -> list[str]:
    """Per-dimension diagnostics of one sweep size that explain its utilization (one line)."""
    from vqbench.reports.diagnostics import size_note

    note = size_note(rows, quantizer, size, dataset)
    return [note] if note else []


CLAIMS = (fsq_utilization_stays_high, plain_vq_collapses, fsq_psnr_rises, restarts_rescue_vq)


def _ceiling(rows: Any, dataset: str) -> Stat | None:
    sel = rows[
        (rows["benchmark"] == "reconstruction")
        & (rows["quantizer"] == NO_QUANTIZER)
        & (rows["metric"] == "psnr")
        & (rows["dataset"] == dataset)
        & rows["status"].eq("ok")
    ]
    if sel.empty:
        return None
    values = [float(v) for v in sel["value"]]
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return Stat(mean, sd, n, lo=min(values), hi=max(values))


def swept_datasets(rows: Any) -> list[str]:
    """Datasets of the reconstruction benchmark measured at two or more codebook sizes."""
    sel = rows[
        (rows["benchmark"] == "reconstruction") & rows["codebook_size"].notna() & (rows["metric"] == "psnr")
    ]
    sizes = sel.groupby("dataset")["codebook_size"].nunique()
    return [d for d in dict.fromkeys(sel["dataset"]) if sizes.get(d, 0) >= 2]


def findings(rows: Any) -> list[Finding]:
    """Every claim on every swept dataset; one "not measured" finding per claim when none is swept."""
    datasets = swept_datasets(rows) or [""]
    return [claim(rows, dataset) for claim in CLAIMS for dataset in datasets]


QUESTIONS = (
    "Which benchmark answers which question: the reconstruction benchmark trains an autoencoder "
    "jointly with each quantizer (the FSQ paper's setting), so its utilization and PSNR answer how a "
    "quantizer behaves inside a model that adapts to it; every verdict below rests on it. The usage "
    "benchmark fits each quantizer alone to a fixed token distribution (no encoder adapts): it tells "
    "how a quantizer covers given data, and cannot test a claim about joint training."
)


def _verdict_kind(verdict: str) -> str:
    return {REPRODUCED: "better", NOT_REPRODUCED: "worse", INCONCLUSIVE: "within noise"}.get(verdict, "")


def _why(f: Finding) -> str:
    """The reason column: the reason, then unconverged cells, token-limited figures, diagnostics."""
    parts = [f.reason]
    if f.unconverged_cells:
        parts.append(
            f"rests on {f.unconverged} unconverged cell(s), stopped at the step cap: "
            + ", ".join(f.unconverged_cells)
        )
    elif f.unconverged:
        parts.append(f"{f.unconverged} cell(s) stopped at the step cap before converging")
    if f.token_limited:
        parts.append(
            "token-limited utilization (a lower bound: the last doubling of eval tokens still "
            "added codes): " + ", ".join(f.token_limited)
        )
    if f.explanations:
        parts.append("diagnostics: " + "; ".join(f.explanations))
    return "; ".join(parts)


def convergence_table(rows: Any, stamp: str) -> Any:
    """Steps taken, rate cuts and convergence per benchmark, quantizer, codebook size and dataset."""
    from vqbench.reports.document import Table, TableCell

    sel = rows[(rows["metric"] == "train_steps") & rows["status"].eq("ok")]
    if sel.empty:
        return None
    body = []
    keys = ["benchmark", "quantizer", "codebook_size", "dataset"]
    for (bench, quantizer, size, dataset), group in sel.groupby(keys, sort=False, dropna=False):
        steps = [int(v) for v in group["value"]]
        done = sum(bool(e.get("converged")) for e in group["ext"])
        cap = max(int(e.get("step_cap") or 0) for e in group["ext"])
        cuts = [len(e.get("lr_cut_steps") or []) for e in group["ext"]]
        moving: dict[str, int] = {}
        for e in group["ext"]:
            for name in e.get("moving_at_end") or []:
                moving[name] = moving.get(name, 0) + 1
        still = ", ".join(f"{name} ({n})" for name, n in moving.items()) or "—"
        size_text = "—" if size != size or size is None else _size(int(size))
        body.append(
            [
                TableCell(bench, kind="label"),
                TableCell(quantizer, kind="label"),
                TableCell(size_text, kind="label"),
                TableCell(dataset, kind="label"),
                TableCell(f"{min(steps)}-{max(steps)}" if min(steps) != max(steps) else str(steps[0])),
                TableCell(str(cap)),
                TableCell(f"{min(cuts)}-{max(cuts)}" if min(cuts) != max(cuts) else str(cuts[0])),
                TableCell(f"{done}/{len(steps)}", verdict="" if done == len(steps) else "worse"),
                TableCell(still, kind="label"),
            ]
        )
    return Table(
        "Convergence: steps taken, learning-rate cuts, converged",
        [
            "benchmark",
            "quantizer",
            "K",
            "dataset",
            "steps taken (over seeds)",
            "step cap",
            "rate cuts",
            "converged",
            "still moving at the cap (cells)",
        ],
        body,
        caption="Converged: after its last learning-rate cut, a window of steps where the held-out loss, "
        "utilization and perplexity stopped moving (no cut either while any of them moved); a cell that "
        f"reached the step cap first is not converged. {stamp}",
    )


def findings_blocks(rows: Any, suite: str, stamp: str) -> list[Any]:
    """The findings section's blocks: what each benchmark answers, the verdicts, convergence."""
    from vqbench.reports.document import Callout, Paragraph, Table, TableCell

    blocks: list[Any] = []
    if suite == "quick":
        blocks.append(
            Callout(
                "quick is a smoke run: short training on small data, one seed. Its figures show that "
                "everything runs; they are not findings (run the standard or full suite for those).",
                "warning",
            )
        )
    blocks.append(Paragraph(QUESTIONS))
    found = findings(rows)
    body = [
        [
            TableCell(f.claim, kind="label"),
            TableCell(f.dataset or "—", kind="label"),
            TableCell(" · ".join(f.figures) or "—", kind="label"),
            TableCell(f.verdict, kind="verdict", verdict=_verdict_kind(f.verdict)),
            TableCell(_why(f), kind="label"),
        ]
        for f in found
    ]
    blocks.append(
        Table(
            "Findings of the FSQ paper, tested on the reconstruction sweep",
            [
                "claim",
                "dataset",
                "figures: mean ± sd [min-max] over seeds, per codebook size",
                "verdict",
                "why",
            ],
            body,
            caption=f"Thresholds: high utilization >= {HIGH_UTILIZATION:.0%}, collapsed <= "
            f"{COLLAPSED_UTILIZATION:.0%}; differences count beyond {NOISE_K:g} standard "
            f"errors over seeds (and {MIN_DB} dB); a utilization below a threshold counts against a claim "
            f"only beyond that noise and where it is not token-limited. {stamp}",
        )
    )
    from vqbench.reports.diagnostics import diagnostics_blocks

    blocks += diagnostics_blocks(rows, stamp)
    table = convergence_table(rows, stamp)
    if table is not None:
        blocks.append(table)
    return blocks


__all__ = [
    "CLAIMS",
    "INCONCLUSIVE",
    "QUESTIONS",
    "convergence_table",
    "findings_blocks",
    "NOT_MEASURED",
    "NOT_REPRODUCED",
    "REPRODUCED",
    "Finding",
    "Stat",
    "findings",
    "swept_datasets",
]
