"""The "Tokens for a generator" section of a run report: modelability and robustness of the tokens.

For a run whose reconstruction rows hold the token figures (``vqbench.suite.tokens``): a table per
dataset and codebook size with each quantizer's PSNR, utilization, bits per token under the prior
and the count-based tier, robustness figures, each as mean ± sd [min-max] (n seeds); a plot of
PSNR against the prior's bits per sample (the rate a generator pays); and findings that compare
quantizers' prior bits only beyond the seeds' spread and say how many cells converged.

Reads prepared rows only (``_data.prepare``).
"""

from __future__ import annotations

import math
from typing import Any

from vqbench.reports.document import Paragraph, Plot, Section, Table, TableCell
from vqbench.reports.precision import _stat, beyond_spread

#: The table's columns: (metric, header, unit kind).
COLUMNS = (
    ("psnr", "PSNR dB", "f"),
    ("utilization", "usage", "pct"),
    ("token_bits_prior", "prior bits/tok", "f"),
    ("token_bits_neighbours", "count bits/tok", "f"),
    ("corrupt_psnr_drop", "random-code drop dB", "f"),
    ("bitflip_psnr_drop", "bit-flip drop dB", "f"),
    ("noise_index_change", "noise changed", "pct"),
)


def _text(values: list[float], kind: str) -> str:
    mean, sd, n, lo, hi = _stat(values)
    scale, digits = (100, 1) if kind == "pct" else (1, 2)
    text = f"{scale * mean:.{digits}f}"
    if n > 1:
        text += f" ± {scale * sd:.{digits}f} [{scale * lo:.{digits}f}-{scale * hi:.{digits}f}]"
    return f"{text}{'%' if kind == 'pct' else ''} (n={n})"


def _size_text(size: Any) -> str:
    if size is None or size != size:
        return "—"
    size = int(size)
    return f"2^{int(math.log2(size))}" if size & (size - 1) == 0 else str(size)


def _token_rows(rows: Any) -> Any:
    sel = rows[rows["benchmark"].isin(_token_benchmarks(rows)) & rows["status"].eq("ok")]
    return sel[sel["metric"].isin([m for m, _, _ in COLUMNS] + ["prior_bits_per_sample", "train_steps"])]


def _token_benchmarks(rows: Any) -> list[str]:
    has = rows[rows["metric"].isin(["token_bits_neighbours", "token_bits_prior"])]
    return sorted(set(has["benchmark"]))


def _values(group: Any, metric: str) -> list[float]:
    return [float(v) for v in group[group["metric"].eq(metric)]["value"]]


def tokens_table(rows: Any, stamp: str) -> list[Table]:
    """One table per benchmark, dataset and codebook size (module docstring)."""
    tables = []
    keys = ["benchmark", "dataset", "codebook_size"]
    for (bench, dataset, size), group in rows.groupby(keys, sort=True, dropna=False):
        body = []
        for quantizer, part in group.groupby("quantizer", sort=True):
            cells = [TableCell(str(quantizer), kind="label")]
            for metric, _, kind in COLUMNS:
                values = _values(part, metric)
                cells.append(TableCell(_text(values, kind)) if values else TableCell("—", kind="missing"))
            steps = part[part["metric"].eq("train_steps")]
            done = sum(bool(e.get("converged")) for e in steps["ext"])
            cells.append(TableCell(f"{done}/{len(steps)}", kind="label"))
            body.append(cells)
        header = ["quantizer", *(h for _, h, _ in COLUMNS), "converged"]
        keep = [i for i in range(len(header)) if any(row[i].kind != "missing" for row in body)]
        tables.append(
            Table(
                f"{bench} · {dataset} · {_size_text(size)}",
                [header[i] for i in keep],
                [[row[i] for i in keep] for row in body],
                caption=stamp,
                notes=[
                    "Mean ± sd [min-max] over seeds (n). Bits per token are held out (fit on train "
                    "tokens, scored on eval tokens): under the small causal transformer prior, and "
                    "under counts given the left and upper neighbours. Drops are eval PSNR lost when "
                    "the share of tokens in each row's extra is replaced by random codes or has one bit "
                    "of its index flipped; 'noise changed' is the share of indices that input noise moves."
                ],
            )
        )
    return tables


def tokens_plot(rows: Any, stamp: str) -> Plot | None:
    """PSNR against the prior's bits per sample, a line per quantizer over its codebook sizes."""
    from vqbench.reports._palette import quantizer_styles
    from vqbench.reports._plot_layout import legend_outside, new_figure, png

    keys = ["dataset", "quantizer", "codebook_size", "seed"]
    bits = rows[rows["metric"].eq("prior_bits_per_sample")].set_index(keys)["value"]
    psnr = rows[rows["metric"].eq("psnr")].set_index(keys)["value"]
    both = psnr.to_frame("psnr").join(bits.to_frame("bits"), how="inner").reset_index()
    if both.empty:
        return None
    both = both.groupby(["dataset", "quantizer", "codebook_size"], as_index=False)[["psnr", "bits"]].mean()
    datasets = list(dict.fromkeys(both["dataset"]))
    styles = quantizer_styles(both["quantizer"])
    fig = new_figure(max(6.5, 4.6 * len(datasets) + 2.0), 4.6)
    axes = fig.subplots(1, len(datasets), squeeze=False)
    for ax, dataset in zip(axes.flat, datasets, strict=True):
        sub = both[both["dataset"] == dataset]
        for quantizer in sorted(set(sub["quantizer"])):
            line = sub[sub["quantizer"] == quantizer].sort_values("codebook_size")
            style = styles[quantizer]
            ax.plot(
                line["bits"],
                line["psnr"],
                color=style.color,
                marker=style.marker,
                ms=6,
                lw=1.6,
                label=quantizer,
            )
        ax.set_xlabel("prior bits per sample (held out)")
        ax.set_ylabel("PSNR [dB]")
        ax.set_title(f"distortion against a generator's rate · {dataset or 'data'}", fontsize=9)
    legend_outside(fig, axes, "quantizer")
    fig.suptitle("PSNR against the bits a small prior needs per sample")
    caption = (
        "Eval PSNR of each trained autoencoder against the held-out bits per sample of a small causal "
        "transformer prior fit on its train tokens (mean over seeds; a line joins a quantizer's codebook "
        "sizes). Up and to the left is better: more quality for fewer bits a generator must model."
    )
    return Plot(
        "tokens_rate",
        "PSNR against the prior's bits per sample",
        png(fig, stamp),
        caption=f"{caption} {stamp}",
        alt="line chart of PSNR against prior bits per sample",
    )


def tokens_findings(rows: Any) -> list[Paragraph]:
    """Per dataset and codebook size: each quantizer's prior bits against FSQ's, judged beyond the
    seeds' spread, and whether utilization ranks the quantizers as the prior does."""
    metric = "token_bits_prior" if rows["metric"].eq("token_bits_prior").any() else "token_bits_neighbours"
    label = "the prior's" if metric == "token_bits_prior" else "count-based (neighbours)"
    out = []
    for (dataset, size), group in rows.groupby(["dataset", "codebook_size"], sort=True, dropna=False):
        bits = {q: _values(p, metric) for q, p in group.groupby("quantizer", sort=True)}
        usage = {q: _values(p, "utilization") for q, p in group.groupby("quantizer", sort=True)}
        steps = group[group["metric"].eq("train_steps")]
        done = sum(bool(e.get("converged")) for e in steps["ext"])
        claims: list[str] = []
        unjudged: list[str] = []
        ref = "fsq" if "fsq" in bits else None
        for quantizer, values in bits.items():
            if ref is None or quantizer == ref or not values or not bits[ref]:
                continue
            verdict = beyond_spread(bits[ref], values)
            mean_ref, mean_q = _stat(bits[ref])[0], _stat(values)[0]
            if verdict is None:
                unjudged.append(f"{quantizer} {mean_q:.2f}")
            elif verdict:
                side = "fewer" if mean_q < mean_ref else "more"
                claims.append(
                    f"{quantizer}'s tokens cost {side} bits than fsq's ({mean_q:.2f} vs {mean_ref:.2f})"
                )
            else:
                claims.append(
                    f"{quantizer} and fsq within the seeds' spread ({mean_q:.2f} vs {mean_ref:.2f})"
                )
        if unjudged:
            claims.append(
                f"fsq {_stat(bits[ref])[0]:.2f} against "
                + ", ".join(unjudged)
                + " (fewer than 2 seeds: no verdict)"
            )
        ranked = [q for q in bits if bits[q] and usage.get(q)]
        if len(ranked) >= 3:
            by_bits = sorted(ranked, key=lambda q: _stat(bits[q])[0])
            by_usage = sorted(ranked, key=lambda q: _stat(usage[q])[0])
            same = by_bits == by_usage
            claims.append(
                "utilization ranks the quantizers as their bits do"
                if same
                else "utilization does not rank the quantizers as their bits do"
            )
        if claims:
            out.append(
                Paragraph(
                    f"{dataset} at {_size_text(size)}, {label} bits per token: "
                    + "; ".join(claims)
                    + f". Converged cells: {done}/{len(steps)}"
                    + ("" if done == len(steps) else " (unconverged cells: a provisional reading)")
                    + "."
                )
            )
    return out


def tokens_section(rows: Any, stamp: str, figures: bool = True) -> Section | None:
    """The section for ``rows`` (a run's prepared rows), or None when no row holds token figures."""
    if rows.empty or not _token_benchmarks(rows):
        return None
    sel = _token_rows(rows)
    blocks: list[Any] = [
        Paragraph(
            "What a generator sees in each trained autoencoder's tokens: how many bits a small prior "
            "and simple counts need per token (held out), how much decoding loses when tokens are wrong, "
            "and how stable the indices are under input noise. Measured on the same trained models as "
            "the PSNR and utilization."
        ),
        *tokens_findings(sel),
        *tokens_table(sel, stamp),
    ]
    plot = tokens_plot(sel, stamp) if figures else None
    if plot is not None:
        blocks.append(plot)
    return Section("Tokens for a generator", blocks)
