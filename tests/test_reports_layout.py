"""Reports read at 1280 px: in a headless Chromium, no table cell lies outside the viewport.

The pages are built from a real quick run (``data/quick_run.json.gz``: `vqbench run` on the
2-core CPU, exported with `vqbench results RUN --export`): the run report, the candidate
comparison (`vqbench compare --candidate fsq-upstream --baselines fsq,vq,lfq --run RUN`) and a
nightly report over the same run imported twice.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from _browser import WebDriver, needs_chromium

from vqbench.reports.compare_report import candidate_document
from vqbench.reports.nightly import gate_run, nightly_document, nightly_summary, write_nightly
from vqbench.reports.report import build_report, write_report
from vqbench.results import ResultStore
from vqbench.results._importers import import_file

pytestmark = needs_chromium
QUICK_RUN = Path(__file__).parent / "data" / "quick_run.json.gz"
WIDTH = 1280

# every th/td whose box leaves the viewport (or the page scrolling sideways), as text for the message
OUTSIDE = """
const width = document.documentElement.clientWidth;
const bad = [];
for (const cell of document.querySelectorAll('th, td')) {
  const r = cell.getBoundingClientRect();
  if (r.width === 0 && r.height === 0) continue;
  if (r.left < -0.5 || r.right > width + 0.5) {
    const table = cell.closest('table');
    const head = table.previousElementSibling ? table.previousElementSibling.textContent : '';
    const where = `${r.left.toFixed(0)}-${r.right.toFixed(0)}`;
    bad.push(`${head.slice(0, 60)} | ${cell.textContent.slice(0, 40)} | ${where}`);
  }
}
return {width: width, inner: window.innerWidth, scroll: document.documentElement.scrollWidth,
        tables: document.querySelectorAll('table').length, cells: document.querySelectorAll('td').length,
        bad: bad.slice(0, 20), n_bad: bad.length};
"""


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    out = tmp_path_factory.mktemp("layout")
    export = out / "quick_run.json"
    export.write_bytes(gzip.decompress(QUICK_RUN.read_bytes()))
    with ResultStore(out / "s.sqlite") as store:
        run = import_file(store, export)
        again = import_file(store, export, new_id=True)
        report = build_report(store, run, baseline="fsq")
        compare, _ = candidate_document(store, run, "fsq-upstream", ["fsq", "vq", "lfq"])
        outcome = gate_run(store, again, include_imported=True)
        nightly = nightly_document(store, outcome, baseline="fsq")
        paths = {
            "report": write_report(report, out / "report", formats=("html",))["html"],
            "compare": write_report(compare, out / "compare", stem="compare", formats=("html",))["html"],
            "nightly": write_nightly(nightly, nightly_summary(outcome), out / "nightly")["html"],
        }
    return paths


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = WebDriver(tmp_path_factory.mktemp("chromium-profile"))
    driver.resize(WIDTH, 1000)
    yield driver
    driver.close()


@pytest.mark.parametrize("which", ["report", "compare", "nightly"])
def test_no_table_cell_lies_outside_a_1280_px_viewport(browser, pages, which):
    browser.open(pages[which])
    got = browser.run(OUTSIDE)
    assert abs(got["inner"] - WIDTH) <= 20, f"the window is {got['inner']} px wide, not {WIDTH}"
    assert got["tables"] >= 3 and got["cells"] > 100
    assert got["n_bad"] == 0, f"{got['n_bad']} cells outside the viewport: {got['bad']}"
    assert got["scroll"] <= got["width"], "the page scrolls sideways"


def test_table_headers_stay_in_view_while_the_page_scrolls(browser, pages):
    browser.open(pages["compare"])
    got = browser.run(
        """
        const table = Array.from(document.querySelectorAll('table'))
          .sort((a, b) => b.rows.length - a.rows.length)[0];
        const th = table.querySelector('th');
        window.scrollTo(0, table.getBoundingClientRect().top + window.scrollY + table.offsetHeight / 2);
        return {rows: table.rows.length, top: th.getBoundingClientRect().top,
                position: getComputedStyle(th).position};
        """
    )
    assert got["rows"] > 50
    assert got["position"] == "sticky"
    assert abs(got["top"]) < 2, f"the header row scrolled away (top at {got['top']} px)"


def test_compare_page_shows_every_column_of_the_comparison(browser, pages):
    browser.open(pages["compare"])
    headers = browser.run(
        "return Array.from(document.querySelectorAll('section')[0].querySelectorAll('th'))"
        ".map(th => th.textContent)"
    )
    for name in ("baseline", "fsq-upstream", "change", "verdict"):
        assert name in headers
