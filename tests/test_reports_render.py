"""The run report: tables, figures, error rows, and safe self-contained HTML and Markdown."""

from __future__ import annotations

import html.parser
import json

import pytest
from _report_synth import add_run

from vqbench.reports._format import fmt_delta, fmt_ratio, fmt_value
from vqbench.reports.document import Document, Section, Table, TableCell
from vqbench.reports.nightly import gate_run, nightly_document, nightly_summary, write_nightly
from vqbench.reports.render_html import render_html
from vqbench.reports.render_markdown import md_escape, render_markdown
from vqbench.reports.report import build_report, write_report
from vqbench.results import ResultStore

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("reports") / "s.sqlite"
    with ResultStore(path) as st:
        add_run(st, errors=("lfq",))
        yield st


@pytest.fixture(scope="module")
def doc(store):
    return build_report(store, "latest", baseline="fsq")


class _Collector(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _parse(text):
    parser = _Collector()
    parser.feed(text)
    return parser


def test_report_has_a_table_per_benchmark_with_units_best_and_ratios(doc):
    titles = [t.title for t in doc.tables()]
    assert "throughput · vectors_per_s [vectors/s]" in titles
    assert "usage" in titles and "reconstruction" in titles
    thr = next(t for t in doc.tables() if t.title.startswith("throughput · vectors_per_s"))
    assert thr.columns[:2] == ["quantizer", "backend"]
    assert thr.columns[2:] == ["forward", "train", "encode", "decode", "status"]
    fsq_compile = next(r for r in thr.rows if r[0].text == "fsq" and r[1].text == "compile")
    assert all(c.best for c in fsq_compile[2:-1])  # fastest everywhere in the synthetic run
    vq_eager = next(r for r in thr.rows if r[0].text == "vq" and r[1].text == "eager")
    assert vq_eager[2].note.endswith("× fsq")
    assert 0.2 < float(vq_eager[2].note.split("×")[0]) < 0.3  # vq is ~4x slower than fsq here
    for table in doc.tables():
        assert "run " in table.caption and "suite full" in table.caption and "env " in table.caption


def test_error_rows_are_shown_as_errors_never_as_numbers(doc, tmp_path):
    usage = next(t for t in doc.tables() if t.title == "usage")
    lfq_rows = [r for r in usage.rows if r[0].text == "lfq"]
    assert len(lfq_rows) == 3
    for row in lfq_rows:
        values = row[2:-1]
        assert all(c.kind == "error" and c.text == "error" for c in values)
        assert row[-1].kind == "error" and "out of memory" in row[-1].text
    paths = write_report(doc, tmp_path)
    md = paths["md"].read_text()
    assert "**ERROR**" in md and "CUDA out of memory &lt;simulated&gt;" in md
    lfq_lines = [line for line in md.splitlines() if line.startswith("| lfq | K=2^")]
    usage_lines = [line for line in lfq_lines if "ERROR" in line]
    assert len(usage_lines) == 3 and not any(" 0 |" in line for line in usage_lines)
    page = paths["html"].read_text()
    assert page.count('class="error"') >= 3 * 4
    summary = next(s for s in doc.sections if s.title == "Summary")
    assert summary.blocks[0].level == "error"
    assert any(s.title == "Errors" for s in doc.sections)


def test_figures_are_drawn_and_name_run_suite_and_environment(doc):
    names = [f.name for f in doc.plots()]
    assert names[:3] == ["throughput", "utilization", "rate_distortion"]
    assert "reconstructions-digits" in names
    for fig in doc.plots():
        assert fig.png.startswith(b"\x89PNG\r\n\x1a\n") and len(fig.png) > 5000
        assert "run " in fig.caption and "suite full" in fig.caption and "env " in fig.caption
    utilization = next(f for f in doc.plots() if f.name == "utilization")
    assert "lfq (error)" in utilization.caption


def test_reconstructions_from_encoded_samples(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as st:
        add_run(st, samples="dict", quantizers=("fsq", "vq"))
        doc = build_report(st)
    assert "reconstructions-digits" in [f.name for f in doc.plots()]


def test_html_is_self_contained_and_escapes_everything(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as st:
        run = st.start_run(EVIL, {"cpu": EVIL})
        st.write_rows(
            [
                {
                    "benchmark": "usage",
                    "quantizer": EVIL,
                    "config": {"codebook_size": 256, "note": EVIL},
                    "dataset": EVIL,
                    "metric": "utilization",
                    "value": 0.5,
                    "unit": "ratio",
                    "higher_is_better": True,
                    "cell_id": "a",
                },
                {
                    "benchmark": EVIL,
                    "quantizer": "fsq",
                    "metric": "error",
                    "status": "error",
                    "message": EVIL,
                    "cell_id": "b",
                },
            ]
        )
        st.finish_run(run)
        doc = build_report(st, run, baseline=EVIL)
    page = render_html(doc)
    parsed = _parse(page)
    tags = {t for t, _ in parsed.tags}
    assert "script" not in tags and "link" not in tags and "iframe" not in tags
    assert all(not any(k.startswith("on") for k in attrs) for _, attrs in parsed.tags)
    for tag, attrs in parsed.tags:
        if tag == "img":
            assert attrs["src"].startswith("data:image/png;base64,")
        for key in ("src", "href"):
            if key in attrs and tag != "img":
                assert attrs[key].startswith("#")
    assert "http://" not in page and "https://" not in page
    assert "default-src 'none'" in page
    assert EVIL in "".join(parsed.text)  # shown as text
    md, _ = render_markdown(doc)
    assert "<script>" not in md and "<img" not in md and "&lt;script&gt;" in md


def test_markdown_writes_figure_files_beside_the_report(doc, tmp_path):
    paths = write_report(doc, tmp_path / "out", formats=("md",))
    md = paths["md"].read_text()
    figures = sorted((tmp_path / "out" / "report-figures").glob("*.png"))
    assert len(figures) == len(doc.plots())
    for fig in figures:
        assert f"(report-figures/{fig.name})" in md
    assert "html" not in paths


def test_nightly_outputs(tmp_path):
    with ResultStore(tmp_path / "s.sqlite") as st:
        for seed in range(4):
            add_run(st, seed=seed, samples=False)
        run = add_run(st, seed=10, samples=False, slow={"vq": 1.3})
        outcome = gate_run(st, run)
        doc = nightly_document(st, outcome)
        paths = write_nightly(doc, nightly_summary(outcome), tmp_path / "nightly")
    summary = json.loads(paths["json"].read_text())
    assert summary["status"] == "regression" and summary["exit_code"] == 1
    assert {r["quantizer"] for r in summary["regressions"]} == {"vq"}
    first = summary["regressions"][0]
    assert first["higher_is_better"] is True and first["rel_change"] < -0.2 and first["kind"] == "timing"
    assert [s.title for s in doc.sections[:3]] == ["Verdict", "Regressions", "History"]
    assert "REGRESSION" in doc.sections[0].blocks[0].text
    assert {"history", "history_overview"} <= {f.name for f in doc.plots()}
    assert paths["html"].is_file() and paths["md"].is_file()


def test_escaping_helpers_and_number_formats():
    assert md_escape("a|b_c\nd") == "a\\|b\\_c d"
    assert md_escape("<b>") == "&lt;b&gt;"
    assert fmt_value(12_345_678, "vectors/s") == "12.3 M"
    assert fmt_value(0.0042, "s") == "4.20 ms"
    assert fmt_value(3 * 2**20, "B") == "3.00 MiB"
    assert fmt_value(None) == "n/a" and fmt_value(float("nan")) == "n/a"
    assert fmt_delta(-0.2) == "-20.0%"
    assert fmt_ratio(0.25) == "0.25×"
    table = Table("t", ["a"], [[TableCell("x <y>", kind="error")]])
    page = render_html(Document("d", sections=[Section("s", [table])]))
    assert "x &lt;y&gt;" in page and 'class="error"' in page
