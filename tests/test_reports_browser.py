"""The HTML report opened in a real headless Chromium: every image loads, the console stays clean.

Drives Debian's ``chromium`` through ``chromedriver`` (see ``_browser``); skips when either is
missing.
"""

from __future__ import annotations

import time

import pytest
from _browser import WebDriver, needs_chromium
from _report_synth import add_run

from vqbench.reports.nightly import gate_run, nightly_document, nightly_summary, write_nightly
from vqbench.reports.report import build_report, write_report
from vqbench.results import ResultStore

pytestmark = needs_chromium
EVIL = '<script>console.error("injected")</script><img src=x onerror="console.error(1)">'


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = WebDriver(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.close()


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    out = tmp_path_factory.mktemp("html")
    with ResultStore(out / "s.sqlite") as st:
        for seed in range(3):
            add_run(st, seed=seed, samples=False)
        run = add_run(st, seed=9, errors=("lfq",), slow={"vq": 1.4})
        st.write_rows(
            [
                {
                    "run_id": run,
                    "benchmark": "usage",
                    "quantizer": EVIL,
                    "metric": "utilization",
                    "value": 0.5,
                    "unit": "ratio",
                    "higher_is_better": True,
                    "cell_id": "evil",
                    "config": {"codebook_size": 256},
                },
                {
                    "run_id": run,
                    "benchmark": "usage",
                    "quantizer": "plugin",
                    "metric": "error",
                    "status": "error",
                    "message": EVIL,
                    "cell_id": "evil2",
                },
            ]
        )
        report = write_report(build_report(st, run, baseline="fsq"), out / "report", formats=("html",))[
            "html"
        ]
        outcome = gate_run(st, run)
        nightly = write_nightly(nightly_document(st, outcome), nightly_summary(outcome), out / "nightly")[
            "html"
        ]
    return {"report": report, "nightly": nightly}


@pytest.mark.parametrize("which", ["report", "nightly"])
def test_html_report_loads_every_image_with_a_clean_console(browser, reports, which):
    browser.open(reports[which])
    state = browser.run("return document.readyState")
    assert state == "complete"
    images = browser.run(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight, "
        "i.getAttribute('src').slice(0, 22)])"
    )
    assert len(images) >= 4
    for complete, width, height, src in images:
        assert complete and width > 0 and height > 0
        assert src == "data:image/png;base64,"
    assert browser.run("return document.scripts.length") == 0
    errors = [e for e in browser.console() if e.get("level") in ("SEVERE", "ERROR", "WARNING")]
    assert errors == []
    text = browser.run("return document.body.innerText")
    assert '<script>console.error("injected")</script>' in text  # plugin names show as text
    assert browser.run("return document.querySelectorAll('td.error').length") > 0
    if which == "nightly":
        assert "REGRESSION" in text


def test_the_page_cannot_load_anything_over_the_network(browser, reports):
    browser.open(reports["report"])
    browser.run(
        "var i = document.createElement('img'); i.src = 'https://example.invalid/x.png'; "
        "document.body.appendChild(i); return 1"
    )
    time.sleep(0.5)
    blocked = [e for e in browser.console() if "Content Security Policy" in e.get("message", "")]
    assert blocked, "the report's Content-Security-Policy did not block a network image"
