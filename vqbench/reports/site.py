"""The history site: a static folder with an index of every figure and a page per figure.

``index.html`` lists every benchmark x quantizer x figure with its latest value per machine, an
inline SVG sparkline and its four-state verdict; ``figures/<id>.html`` draws the figure's whole
history with plotly (one trace per machine, selectable in the legend; zoom, hover, a log axis), the
gate's noise band and step changes, and a mark where vqbench's commit or a dependency's version
changed. The plotly script is written once as ``plotly.min.js``, so the site opens from the file
system without a network. States, bands and steps come from the nightly gate itself.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from vqbench.reports.gate import STATES
from vqbench.reports.history import figure_page
from vqbench.reports.nightly import gate_run
from vqbench.reports.steps import lasting_steps
from vqbench.reports.thresholds import GateConfig
from vqbench.results.vocabulary import KEY_COLUMNS

#: Environment fields whose change is drawn on every figure's history.
MARKED_FIELDS = ("git_sha", "torch", "vector_quantize_pytorch", "triton", "cuda", "driver")
_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#17becf")
_STATE_COLOURS = {
    "regression": "#c62828",
    "suspicious": "#ef6c00",
    "no regression": "#2e7d32",
    "insufficient data": "#757575",
}
_STEP_COLOUR = "#d81b60"
_MARK_COLOUR = "#6a1b9a"


def machine_of(environment: dict) -> str:
    """The machine a run ran on, as the site overlays it: GPU (or CPU) and thread count."""
    device = environment.get("gpu") or environment.get("cpu") or environment.get("machine") or "unknown"
    threads = environment.get("threads")
    return f"{device} · {threads} threads" if threads else str(device)


def _version_marks(runs: list[dict]) -> list[dict]:
    """Where a marked environment field changed between successive runs of one machine."""
    marks = []
    for before, after in zip(runs, runs[1:], strict=False):
        for name in MARKED_FIELDS:
            old, new = before["environment"].get(name), after["environment"].get(name)
            if old != new:
                if name == "git_sha":
                    old, new = str(old)[:10], str(new)[:10]
                text = f"{name} {old} → {new}"
                marks.append({"x": after["started"], "text": text})
    return marks


def collect(store: Any, suite: str | None = None, config: GateConfig | None = None) -> dict:
    """Every figure's history from ``store``: finished runs of ``suite`` (default: the latest
    run's), their machines, version marks, and the gate's verdict on each machine's latest run."""
    import pandas as pd

    from vqbench.errors import UserError
    from vqbench.reports._data import prepare
    from vqbench.reports.compare import collapse

    cfg = config or GateConfig()
    runs = store.runs()
    runs = runs[runs["status"] == "finished"]
    if runs.empty:
        raise UserError(f"no finished runs in {store.path}: nothing to publish")
    suite = suite or runs["suite"].iloc[-1]
    if suite not in set(runs["suite"]):
        raise UserError(f"no finished runs of suite {suite!r}; suites: {sorted(set(runs['suite']))}")
    runs = runs[runs["suite"] == suite].sort_values("started")
    info = []
    frames = []
    for rid, started in zip(runs["run_id"], runs["started"], strict=True):
        env = store.run_info(rid)["environment"]
        run = {"run_id": rid, "started": started.isoformat(), "environment": env, "machine": machine_of(env)}
        info.append(run)
        flat = collapse(prepare(store.rows(rid)))
        frames.append(flat.assign(run_id=rid, started=run["started"], machine=run["machine"]))
    series = pd.concat(frames, ignore_index=True)
    machines = list(dict.fromkeys(r["machine"] for r in info))
    marks: list[dict] = []
    seen: set[tuple] = set()
    verdicts: dict[tuple, dict[str, dict]] = {}
    for machine in machines:
        mine = [r for r in info if r["machine"] == machine]
        marks += [m for m in _version_marks(mine) if (m["x"][:10], m["text"]) not in seen]
        seen |= {(m["x"][:10], m["text"]) for m in marks}
        gate = gate_run(store, mine[-1]["run_id"], cfg).gate
        starts = {r["run_id"]: r["started"] for r in mine}
        since = starts[gate.history_runs[0]] if gate.history_runs else mine[-1]["started"]
        for rec in gate.checks.to_dict("records"):
            rec["since"] = since  # the band covers the runs the gate compared with, and tonight
            verdicts.setdefault(tuple(rec[k] for k in KEY_COLUMNS), {})[machine] = rec
    return {
        "suite": suite,
        "runs": info,
        "machines": machines,
        "series": series,
        "marks": marks,
        "verdicts": verdicts,
        "config": cfg,
    }


def _num(v: Any) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _worst(states: list[str]) -> str:
    return min(states, key=STATES.index) if states else "insufficient data"


def _sparkline(traces: list[tuple[str, list[float]]], width: int = 140, height: int = 28) -> str:
    values = [v for _, vs in traces for v in vs]
    if not values:
        return ""
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    n = max(len(vs) for _, vs in traces)
    lines = []
    for colour, vs in traces:
        pts = " ".join(
            f"{i * (width - 2) / max(n - 1, 1) + 1:.1f},{height - 1 - (v - lo) / span * (height - 2):.1f}"
            for i, v in enumerate(vs)
        )
        lines.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.2" points="{pts}"/>')
    return (
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
        + "".join(lines)
        + "</svg>"
    )


_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:13px}td,th{padding:3px 8px;border-bottom:1px solid #ddd;
text-align:left;vertical-align:middle}th{background:#f4f4f4;position:sticky;top:0}
.state{font-weight:600;white-space:nowrap}a{color:#0b57d0}.num{text-align:right;white-space:nowrap}
.why{font-size:12px;color:#555}"""


def _page(title: str, body: str, depth: int = 0) -> str:
    script = '<script src="../plotly.min.js"></script>' if depth else ""
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}</style>{script}</head><body>{body}</body></html>\n"
    )


def _figure_label(rec: dict) -> tuple[str, str, str]:
    setting = " · ".join(str(x) for x in (rec["backend"], rec["device"], rec["dataset"], rec["variant"]) if x)
    return str(rec["config_label"] or ""), setting, str(rec["metric"])


def _figure_html(data: dict, key: tuple, hist: Any, ref: dict) -> str:
    """One figure's page: the plotly chart and the gate's verdict per machine."""
    cfg = data["config"]
    settings = cfg.settings_for(ref)
    machines = data["machines"]
    traces, shapes, notes = [], [], []
    verdicts = data["verdicts"].get(key, {})
    step_runs = []
    for i, machine in enumerate(machines):
        mine = hist[(hist["machine"] == machine) & (hist["status"] == "ok")]
        if mine.empty:
            continue
        colour = _COLOURS[i % len(_COLOURS)]
        xs, ys = list(mine["started"]), [float(v) for v in mine["value"]]
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": machine,
                "x": xs,
                "y": ys,
                "line": {"color": colour},
                "marker": {"size": 4},
                "customdata": list(mine["run_id"]),
                "hovertemplate": "%{y:.4g}<br>%{x}<br>run %{customdata}",
            }
        )
        verdict = verdicts.get(machine)
        base, band = (_num(verdict.get("baseline")), _num(verdict.get("band"))) if verdict else (None, None)
        if band is None and verdict and not ref["timing"]:
            band = _num(verdict.get("limit"))
        if base is not None and band is not None:
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": f"gate band · {machine}",
                    "x": [verdict["since"], xs[-1], xs[-1], verdict["since"]],
                    "y": [base - band, base - band, base + band, base + band],
                    "fill": "toself",
                    "fillcolor": colour + "22",
                    "line": {"width": 0},
                    "hoverinfo": "skip",
                    "legendgroup": machine,
                }
            )
        for at in lasting_steps(ys, settings.threshold, settings.noise_k, cfg.min_timing_history):
            step_runs.append((machine, xs[at], mine["run_id"].iloc[at]))
            shapes.append(
                {
                    "type": "line",
                    "xref": "x",
                    "yref": "paper",
                    "x0": xs[at],
                    "x1": xs[at],
                    "y0": 0,
                    "y1": 1,
                    "line": {"color": _STEP_COLOUR, "width": 3},
                }
            )
            notes.append(
                {
                    "x": xs[at],
                    "y": 1.0,
                    "xref": "x",
                    "yref": "paper",
                    "text": "step",
                    "showarrow": False,
                    "font": {"color": _STEP_COLOUR},
                    "yanchor": "bottom",
                }
            )
    for j, mark in enumerate(data["marks"]):
        shapes.append(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": mark["x"],
                "x1": mark["x"],
                "y0": 0,
                "y1": 1,
                "line": {"color": _MARK_COLOUR, "width": 2, "dash": "dot"},
            }
        )
        notes.append(
            {
                "x": mark["x"],
                "y": 0.02 + 0.07 * (j % 4),
                "xref": "x",
                "yref": "paper",
                "text": mark["text"],
                "showarrow": False,
                "xanchor": "left",
                "font": {"color": _MARK_COLOUR, "size": 11},
            }
        )
    unit = f" ({ref['unit']})" if ref["unit"] else ""
    layout = {
        "height": 520,
        "margin": {"t": 50, "r": 20},
        "shapes": shapes,
        "annotations": notes,
        "xaxis": {"title": {"text": "run started"}},
        "yaxis": {"title": {"text": f"{ref['metric']}{unit}"}},
        "legend": {"orientation": "h", "y": -0.2},
        "updatemenus": [
            {
                "type": "buttons",
                "direction": "right",
                "x": 0,
                "y": 1.12,
                "xanchor": "left",
                "buttons": [
                    {"label": "linear", "method": "relayout", "args": [{"yaxis.type": "linear"}]},
                    {"label": "log", "method": "relayout", "args": [{"yaxis.type": "log"}]},
                ],
            }
        ],
    }
    spec = json.dumps({"data": traces, "layout": layout}, allow_nan=False, ensure_ascii=False).replace(
        "</", "<\\/"
    )
    config_label, setting, metric = _figure_label(ref)
    title = f"{ref['benchmark']} · {ref['quantizer']} {config_label} · {setting} · {metric}"
    rows = []
    for machine in machines:
        v = verdicts.get(machine)
        if v is None:
            continue
        state = v["state"]
        rows.append(
            f'<tr><td>{html.escape(machine)}</td><td class="state" style="color:{_STATE_COLOURS[state]}">'
            f"{html.escape(state)}</td><td>{html.escape(v['status'])}</td>"
            f'<td class="why">{html.escape(str(v["reason"]))}</td></tr>'
        )
    steps = "".join(
        f"<li>{html.escape(m)}: step at run {html.escape(r)} ({html.escape(x)})</li>" for m, x, r in step_runs
    )
    versions = "".join(f"<li>{html.escape(m['x'])}: {html.escape(m['text'])}</li>" for m in data["marks"])
    body = (
        f'<p><a href="../index.html">all figures</a></p><h1>{html.escape(title)}</h1>'
        f'<div id="chart" data-steps="{html.escape(json.dumps([x for _, x, _ in step_runs]))}"></div>'
        f"<h2>Latest verdict per machine</h2><table><tr><th>machine</th><th>state</th><th>status</th>"
        f"<th>why</th></tr>{''.join(rows)}</table>"
        f'<h2>Step changes</h2><ul id="steps">{steps or "<li>none</li>"}</ul>'
        f'<h2>Version changes</h2><ul id="versions">{versions or "<li>none</li>"}</ul>'
        f"<script>Plotly.newPlot('chart', {spec}.data, {spec}.layout, {{responsive: true}});</script>"
    )
    return _page(title, body, depth=1)


def write_site(data: dict, out_dir: str | Path) -> dict:
    """Write the site for ``data`` (from ``collect``) into ``out_dir``; returns counts and paths."""
    from plotly.offline import get_plotlyjs

    from vqbench.errors import UserError

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "plotly.min.js").is_file())):
        raise UserError(
            f"{out} must be a new or empty folder, or a site written before (with plotly.min.js); "
            "it holds other files, which publishing could overwrite"
        )
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "plotly.min.js").write_text(get_plotlyjs(), encoding="utf-8")
    series = data["series"]
    machines = data["machines"]
    index_rows = []
    groups = series.groupby([series[k].astype(str) for k in KEY_COLUMNS], sort=True)
    for _, hist in groups:
        hist = hist.sort_values("started")
        ok = hist[hist["status"] == "ok"]
        ref = (ok if len(ok) else hist).iloc[-1].to_dict()
        key = tuple(ref[k] for k in KEY_COLUMNS)
        page = figure_page(key)
        (out / page).write_text(_figure_html(data, key, hist, ref), encoding="utf-8")
        verdicts = data["verdicts"].get(key, {})
        state = _worst([v["state"] for v in verdicts.values()])
        latest, spark = [], []
        for i, machine in enumerate(machines):
            mine = hist[(hist["machine"] == machine) & (hist["status"] == "ok")]
            if mine.empty:
                continue
            spark.append((_COLOURS[i % len(_COLOURS)], [float(v) for v in mine["value"]]))
            latest.append(f"{float(mine['value'].iloc[-1]):.4g}")
        config_label, setting, metric = _figure_label(ref)
        index_rows.append(
            f'<tr data-state="{html.escape(state)}"><td>{html.escape(str(ref["benchmark"]))}</td>'
            f"<td>{html.escape(str(ref['quantizer']))}</td><td>{html.escape(config_label)}</td>"
            f'<td>{html.escape(setting)}</td><td><a href="{page}">{html.escape(metric)}</a></td>'
            f'<td class="num">{" / ".join(latest)} {html.escape(str(ref["unit"] or ""))}</td>'
            f"<td>{_sparkline(spark)}</td>"
            f'<td class="state" style="color:{_STATE_COLOURS[state]}">{html.escape(state)}</td></tr>'
        )
    counts = {s: sum(f'data-state="{s}"' in r for r in index_rows) for s in STATES}
    legend = " · ".join(
        f'<span style="color:{_COLOURS[i % len(_COLOURS)]}">■</span> {html.escape(m)}'
        for i, m in enumerate(machines)
    )
    body = (
        f"<h1>vqbench history · {html.escape(data['suite'])}</h1>"
        f"<p>{len(data['runs'])} finished runs on {len(machines)} machine(s): {legend}. "
        f"Latest values per machine in that order; the state is the worst over machines of the nightly "
        f"gate's verdict on each machine's latest run.</p>"
        f"<p>{' · '.join(f'{n} {s}' for s, n in counts.items())}</p>"
        '<table id="figures"><tr><th>benchmark</th><th>quantizer</th><th>config</th><th>setting</th>'
        "<th>figure</th><th>latest</th><th>trend</th><th>state</th></tr>" + "".join(index_rows) + "</table>"
    )
    (out / "index.html").write_text(_page(f"vqbench history · {data['suite']}", body), encoding="utf-8")
    return {"index": out / "index.html", "figures": len(index_rows), "states": counts}


def publish(
    store: Any, out_dir: str | Path, suite: str | None = None, config: GateConfig | None = None
) -> dict:
    """Collect the history of ``store`` and write the site into ``out_dir``."""
    return write_site(collect(store, suite, config), out_dir)


def add_arguments(parser: Any) -> None:
    """The options of ``vqbench publish``."""
    from vqbench._cli_options import add_store_option

    parser.add_argument("--out", default="site", metavar="DIR", help="the site's folder (default: site)")
    parser.add_argument(
        "--suite", default=None, metavar="NAME", help="suite to publish (default: the latest run's)"
    )
    parser.add_argument(
        "--config", default=None, metavar="TOML", help="gate thresholds, as for `vqbench nightly`"
    )
    add_store_option(parser)


def run(args: Any) -> int:
    """Write the site; print where its index is."""
    from vqbench._console import make_console
    from vqbench.reports.thresholds import load_gate_config
    from vqbench.results import open_store

    with open_store(args.store, readonly=True) as store:
        done = publish(store, args.out, args.suite, load_gate_config(args.config))
    states = ", ".join(f"{n} {s}" for s, n in done["states"].items())
    make_console().print(f"{done['figures']} figures ({states}): {done['index']}", highlight=False)
    return 0
