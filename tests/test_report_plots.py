"""Figures that read: log-2 ticks as 2^k, markers on every line, every quantizer drawn (pages, not
drops), a palette that tells a dozen quantizers apart, legends outside the axes, true captions."""

from __future__ import annotations

import colorsys
import gzip
import itertools
from pathlib import Path

import pytest
from _report_synth import add_run

from vqbench.reports import plots
from vqbench.reports._palette import family_of, quantizer_styles
from vqbench.reports._plot_layout import power_label
from vqbench.reports.report import load_run
from vqbench.results import ResultStore
from vqbench.results._importers import import_file

QUICK_RUN = Path(__file__).parent / "data" / "quick_run.json.gz"
QUANTIZERS = (
    "bsq",
    "fsq",
    "fsq-upstream",
    "latent-quantize",
    "lfq",
    "residual-fsq",
    "residual-lfq",
    "residual-vq",
    "simvq",
    "vq",
    "vq-cosine",
    "vq-plain",
)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """The prepared rows of a real quick run (12 quantizers, one seed)."""
    folder = tmp_path_factory.mktemp("quick")
    export = folder / "quick_run.json"
    export.write_bytes(gzip.decompress(QUICK_RUN.read_bytes()))
    with ResultStore(folder / "s.sqlite") as store:
        run = import_file(store, export)
        return load_run(store, run)


@pytest.fixture
def drawn(monkeypatch):
    """The matplotlib figures that the report plots draw (instead of their PNG bytes)."""
    got = []

    def keep(fig, stamp):
        fig.canvas.draw()
        got.append(fig)
        return b"png"

    monkeypatch.setattr(plots, "png", keep)
    return got


def _labels(fig) -> set[str]:
    out = set()
    for legend in fig.legends:
        out |= {t.get_text() for t in legend.get_texts()}
    return out


def test_log2_ticks_read_two_to_the_k_as_plain_text():
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.subplots()
    ax.plot([256, 1024, 4096], [1, 0.5, 0.2])
    plots.log2_axis(ax.xaxis, [256, 1024, 4096])
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["2^8", "2^10", "2^12"]
    assert power_label(3000) == "3000"


def test_utilization_figure_of_the_quick_run(quick, drawn):
    fig = plots.utilization_plot(quick.rows, quick.stamp)
    assert fig is not None and "a line per quantizer" in fig.caption
    mpl = drawn[0]
    ticks = {t.get_text() for ax in mpl.axes for t in ax.get_xticklabels() if t.get_text()}
    assert ticks and all(t.startswith("2^") and "$" not in t for t in ticks)
    assert _labels(mpl) == set(QUANTIZERS)  # every quantizer, once, in one legend
    assert all(ax.get_legend() is None for ax in mpl.axes)  # outside the data
    for ax in mpl.axes:
        for line in ax.get_lines():
            assert line.get_marker() not in (None, "", "None")


def test_training_curves_with_one_point_per_line_show_markers(quick, drawn):
    out = plots.convergence_plots(quick.rows, quick.stamp)
    assert {f.name for f in out} == {"curves_usage", "curves_reconstruction"}
    lines = [line for mpl in drawn for ax in mpl.axes for line in ax.get_lines()]
    one_point = [line for line in lines if len(line.get_xdata()) == 1]
    assert one_point, "the quick run's usage curves have one evaluation each"
    for line in lines:
        assert line.get_marker() not in (None, "", "None") and line.get_markersize() >= 3
    for mpl in drawn:
        assert _labels(mpl) <= set(QUANTIZERS) and len(_labels(mpl)) >= 2
        assert all(ax.get_legend() is None for ax in mpl.axes)


def test_rate_distortion_draws_every_quantizer_with_a_legend_outside(quick, drawn):
    fig = plots.rate_distortion_plot(quick.rows, quick.stamp)
    assert fig is not None
    assert set(QUANTIZERS) - {"vq-cosine", "vq-plain", "bsq"} <= _labels(drawn[0])
    assert all(ax.get_legend() is None for ax in drawn[0].axes)


def test_reconstructions_go_on_pages_and_draw_every_setting(quick, drawn):
    out = plots.reconstruction_plots(quick.rows, quick.stamp)
    assert len(out) == 2  # 12 settings, 10 a page
    assert "1 of 2" in out[0].title and "2 of 2" in out[1].title
    assert "settings 11-12 of 12" in out[1].caption
    shown = set()
    for mpl in drawn:
        shown |= {ax.get_ylabel().split("\n")[0] for ax in mpl.axes}
    assert set(QUANTIZERS) <= shown  # vq-cosine and vq-plain, the collapse baseline, too


def test_the_palette_tells_twelve_quantizers_apart():
    styles = quantizer_styles(QUANTIZERS + ("my-thing",))
    pairs = {(s.color, s.marker) for s in styles.values()}
    assert len(pairs) == len(styles)
    colours = [s.color for s in styles.values()]
    for a, b in itertools.combinations(colours, 2):
        assert max(abs(x - y) for x, y in zip(a, b, strict=True)) > 0.04
    # a family shares a hue; its variants differ in lightness and marker
    assert family_of("fsq-upstream") == family_of("residual-fsq") == "fsq"
    assert family_of("simvq") == family_of("vq-plain") == "vq"
    assert family_of("bsq") == "lfq" and family_of("my-thing") is None

    def hue(name):
        return colorsys.rgb_to_hls(*styles[name].color)[0]

    assert abs(hue("fsq") - hue("fsq-upstream")) < 0.05
    assert abs(hue("fsq") - hue("vq")) > 0.2
    assert styles["fsq"].marker != styles["fsq-upstream"].marker
    assert (
        colorsys.rgb_to_hls(*styles["fsq"].color)[1] < colorsys.rgb_to_hls(*styles["residual-fsq"].color)[1]
    )


def test_the_history_overview_caption_says_what_is_drawn(tmp_path):
    from vqbench.reports.nightly import gate_run, overview_plot

    with ResultStore(tmp_path / "s.sqlite") as store:
        for seed in range(2):
            add_run(store, seed=seed, samples=False)
        quiet = gate_run(store)
        fig = overview_plot(quiet, "stamp")
        assert "none regressed or improved, all grey" in fig.caption
        assert "red: regressed" not in fig.caption
        add_run(store, seed=5, samples=False, util_drop={"vq": 0.3})
        flagged = gate_run(store)
        fig = overview_plot(flagged, "stamp")
        assert "red: regressed" in fig.caption
