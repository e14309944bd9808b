"""Findings: the FSQ paper's claims (arXiv 2309.15505) tested on a run's stored rows.

Each claim is tested on the reconstruction benchmark's codebook-size sweep (the autoencoder trained
jointly with its quantizer, the setting of the paper), per dataset, with the mean and the spread
over seeds at every codebook size, and gets a verdict: reproduced, not reproduced, or not measured
in this run. The usage benchmark (each quantizer fitted alone to a fixed token distribution) answers
a different question and is not used for verdicts. Reads prepared rows only (``_data.prepare``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

REPRODUCED, NOT_REPRODUCED, NOT_MEASURED = "reproduced", "not reproduced", "not measured in this run"

#: Utilization that counts as "high" (the paper: FSQ near 100%; VQ with restarts).
HIGH_UTILIZATION = 0.8
#: Utilization at the largest codebook size below which plain VQ has "collapsed".
COLLAPSED_UTILIZATION = 0.25
#: A difference of means counts when it exceeds this many standard errors (and ``MIN_DB`` for PSNR).
NOISE_K = 2.0
MIN_DB = 0.1

FSQ, VQ, VQ_PLAIN = "fsq", "vq", "vq-plain"
CEILING = "no-quantizer"


@dataclass
class Stat:
    """Mean, standard deviation and count of one figure over seeds."""

    mean: float
    sd: float
    n: int
    converged: int = 0

    @property
    def se(self) -> float:
        return self.sd / math.sqrt(self.n) if self.n > 1 else 0.0

    def text(self, unit: str) -> str:
        """``mean ± sd (n=...)``, as a percentage for ratios and in dB for PSNR."""
        if unit == "ratio":
            mean, spread = f"{100 * self.mean:.1f}%", f" ± {100 * self.sd:.1f}"
        else:
            mean, spread = f"{self.mean:.2f} dB", f" ± {self.sd:.2f}"
        return f"{mean}{spread if self.n > 1 else ''} (n={self.n})"


@dataclass
class Finding:
    """One claim on one dataset: the figures that test it and the verdict."""

    claim: str
    dataset: str
    verdict: str
    reason: str
    figures: list[str] = field(default_factory=list)
    unconverged: int = 0


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
        out[int(size)] = Stat(mean, sd, n, converged)
    return dict(sorted(out.items()))


def _size(k: int) -> str:
    return f"2^{int(math.log2(k))}" if k > 0 and k & (k - 1) == 0 else str(k)


def _series(name: str, stats: dict[int, Stat], unit: str) -> str:
    return f"{name}: " + "; ".join(f"{_size(k)} {s.text(unit)}" for k, s in stats.items())


def _unconverged(*series: dict[int, Stat]) -> int:
    return sum(s.n - s.converged for stats in series for s in stats.values())


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
    if not low:
        reason = (
            f"at every size from {_size(min(util))} to {_size(max(util))} at least {HIGH_UTILIZATION:.0%}"
        )
        return Finding(claim, dataset, REPRODUCED, reason, figures, _unconverged(util))
    sizes = ", ".join(f"{_size(k)} ({s.mean:.1%})" for k, s in low.items())
    return Finding(
        claim,
        dataset,
        NOT_REPRODUCED,
        f"below {HIGH_UTILIZATION:.0%} at {sizes}",
        figures,
        _unconverged(util),
    )


def plain_vq_collapses(rows: Any, dataset: str) -> Finding:
    claim = "plain VQ's utilization collapses as the codebook grows"
    util = _stats(rows, VQ_PLAIN, "utilization", dataset)
    if len(util) < 2:
        return Finding(claim, dataset, NOT_MEASURED, "vq-plain was not swept over two or more codebook sizes")
    small, large = util[min(util)], util[max(util)]
    figures = [_series("vq-plain utilization", util, "ratio")]
    falls = _differs(small, large)
    if falls and large.mean <= COLLAPSED_UTILIZATION:
        verdict = REPRODUCED
        reason = (
            f"falls from {small.mean:.1%} at {_size(min(util))} to {large.mean:.1%} at {_size(max(util))}"
            f" (at most {COLLAPSED_UTILIZATION:.0%})"
        )
    else:
        verdict = NOT_REPRODUCED
        why = (
            "does not fall beyond the seeds' noise"
            if not falls
            else f"stays above {COLLAPSED_UTILIZATION:.0%}"
        )
        reason = f"{why}: {small.mean:.1%} at {_size(min(util))}, {large.mean:.1%} at {_size(max(util))}"
    return Finding(claim, dataset, verdict, reason, figures, _unconverged(util))


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
    if _differs(large, small, MIN_DB):
        return Finding(
            claim, dataset, REPRODUCED, f"rises beyond the seeds' noise ({span})", figures, _unconverged(psnr)
        )
    return Finding(
        claim,
        dataset,
        NOT_REPRODUCED,
        f"no rise beyond the seeds' noise ({span})",
        figures,
        _unconverged(psnr),
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
    if u.mean >= HIGH_UTILIZATION and _differs(u, p) and psnr_ok:
        return Finding(
            claim, dataset, REPRODUCED, f"{where}, PSNR no worse", figures, _unconverged(util, plain)
        )
    why = (
        "PSNR worse than vq-plain"
        if not psnr_ok
        else f"vq below {HIGH_UTILIZATION:.0%} or not above vq-plain"
    )
    return Finding(claim, dataset, NOT_REPRODUCED, f"{why} ({where})", figures, _unconverged(util, plain))


CLAIMS = (fsq_utilization_stays_high, plain_vq_collapses, fsq_psnr_rises, restarts_rescue_vq)


def _ceiling(rows: Any, dataset: str) -> Stat | None:
    sel = rows[
        (rows["benchmark"] == "reconstruction")
        & (rows["quantizer"] == CEILING)
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
    return Stat(mean, sd, n)


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
    return {REPRODUCED: "better", NOT_REPRODUCED: "worse"}.get(verdict, "")


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
            ]
        )
    return Table(
        "Convergence: steps taken, learning-rate cuts, converged",
        ["benchmark", "quantizer", "K", "dataset", "steps taken (over seeds)", "step cap", "rate cuts",
         "converged"],
        body,
        caption="Converged: after its last learning-rate cut, a window of steps where the held-out loss "
        f"and utilization stopped moving; a cell that reached the step cap first is not converged. {stamp}",
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
            TableCell(
                f.reason
                + (
                    f"; {f.unconverged} cell(s) stopped at the step cap before converging"
                    if f.unconverged
                    else ""
                ),
                kind="label",
            ),
        ]
        for f in found
    ]
    blocks.append(
        Table(
            "Findings of the FSQ paper, tested on the reconstruction sweep",
            ["claim", "dataset", "figures: mean ± sd over seeds, per codebook size", "verdict", "why"],
            body,
            caption=f"Thresholds: high utilization >= {HIGH_UTILIZATION:.0%}, collapsed <= "
            f"{COLLAPSED_UTILIZATION:.0%}; differences count beyond {NOISE_K:g} standard "
            f"errors over seeds (and {MIN_DB} dB). {stamp}",
        )
    )
    table = convergence_table(rows, stamp)
    if table is not None:
        blocks.append(table)
    return blocks


__all__ = [
    "CLAIMS",
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
