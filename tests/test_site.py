"""The history site (`vqbench publish`): 60 synthetic nights on two machines, ``vq`` slowed on the
first machine from night 57, vector-quantize-pytorch upgraded at night 30; checked from the files
and, in headless Chromium at 1280 px, from the DOM and the screenshots' pixels."""

from __future__ import annotations

import io
import json
import re

import pytest
from _browser import WebDriver, needs_chromium
from _report_synth import add_nights

from vqbench.reports.gate import STATES
from vqbench.reports.history import figure_page
from vqbench.reports.site import collect, write_site
from vqbench.results import ResultStore
from vqbench.results.vocabulary import KEY_COLUMNS

SLOW_FROM, UPGRADE_AT = 57, 30
SLOW_DATE = "2026-02-27"  # night 57
UPGRADE_DATE = "2026-01-31"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    with ResultStore(out / "s.sqlite") as st:
        add_nights(st, 60, slow_from=SLOW_FROM, upgrade_at=UPGRADE_AT, quantizers=("fsq", "vq"))
        data = collect(st)
    done = write_site(data, out / "site")
    keys = {tuple(r[k] for k in KEY_COLUMNS) for r in data["series"].to_dict("records")}
    return {"out": out / "site", "data": data, "done": done, "keys": keys}


def _slowed_key(site) -> tuple:
    return next(
        k
        for k in site["keys"]
        if k[1] == "vq" and k[3] == "eager" and k[6].startswith("forward.vectors_per_s")
    )


def test_every_figure_has_a_page_and_a_state_from_the_gate(site):
    assert site["done"]["figures"] == len(site["keys"])
    for key in site["keys"]:
        assert (site["out"] / figure_page(key)).is_file()
    verdicts = site["data"]["verdicts"]
    slowed = verdicts[_slowed_key(site)]
    machine_a, machine_b = site["data"]["machines"]
    assert slowed[machine_a]["state"] == "regression" and slowed[machine_b]["state"] == "no regression"
    fsq = next(k for k in site["keys"] if k[1] == "fsq" and k[6].startswith("forward.vectors_per_s"))
    assert {v["state"] for v in verdicts[fsq].values()} == {"no regression"}
    assert site["done"]["states"]["regression"] == 8  # vq's four operations x two backends
    assert (site["out"] / "plotly.min.js").stat().st_size > 1_000_000  # no CDN: the script is here


def test_publish_refuses_a_folder_of_other_files(site, tmp_path):
    from vqbench.errors import UserError

    (tmp_path / "index.html").write_text("mine")
    with pytest.raises(UserError, match="new or empty folder"):
        write_site(site["data"], tmp_path)
    assert (tmp_path / "index.html").read_text() == "mine"
    write_site(site["data"], site["out"])  # a site written before is rewritten in place


def test_vqbench_publish_command(site, tmp_path, capsys):
    from vqbench.cli import main

    store = site["out"].parent / "s.sqlite"
    assert main(["publish", "--store", str(store), "--out", str(tmp_path / "cli")]) == 0
    assert f"{len(site['keys'])} figures (8 regression" in capsys.readouterr().out
    assert main(["publish", "--store", str(store), "--suite", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "no finished runs of suite 'nope'" in capsys.readouterr().err


def test_the_step_and_the_upgrade_are_on_the_slowed_figures_page(site):
    page = (site["out"] / figure_page(_slowed_key(site))).read_text()
    steps = json.loads(re.search(r'data-steps="([^"]*)"', page).group(1).replace("&quot;", '"'))
    assert [s[:10] for s in steps] == [SLOW_DATE]
    assert "vector_quantize_pytorch 1.32.0 → 1.33.0" in page
    assert '<script src="../plotly.min.js">' in page and "https://" not in page


def test_nightly_links_every_figure_to_its_page_and_gives_its_state(site):
    from vqbench.reports.document import Document, Section
    from vqbench.reports.nightly import _checks_table, gate_run, nightly_summary
    from vqbench.reports.render_html import _table
    from vqbench.reports.render_markdown import render_markdown

    with ResultStore(site["out"].parent / "s.sqlite", readonly=True) as st:
        outcome = gate_run(st, "n059-0")
    summary = nightly_summary(outcome, site="../site")
    assert summary["site"] == "../site" and sum(summary["states"].values()) == len(summary["checks"])
    for check in summary["checks"]:
        key = tuple(check[k] or "" for k in KEY_COLUMNS)
        assert check["state"] in STATES
        assert check["page"] == "../site/" + figure_page(key)
        assert (site["out"] / figure_page(key)).is_file()  # the page it links to was published
    assert summary["states"]["regression"] == len(summary["regressions"]) == 8
    table = _checks_table(outcome.gate.checks, "", "", "../site")
    page = "../site/" + figure_page(tuple(outcome.gate.checks.iloc[0][k] for k in KEY_COLUMNS))
    assert f'<a href="{page}">' in _table(table)
    markdown, _ = render_markdown(Document("t", sections=[Section("s", [table])]))
    assert f"](<{page}>)" in markdown and "| status | state | why |" in markdown


@needs_chromium
def test_the_site_in_chromium_at_1280px(site, tmp_path):
    from PIL import Image

    driver = WebDriver(tmp_path / "profile")
    try:
        driver.resize(1280, 1000)
        driver.open(site["out"] / "index.html")
        rows = driver.run(
            "return [...document.querySelectorAll('#figures tr[data-state]')].map(r => "
            "[r.querySelector('a').getAttribute('href'), r.querySelector('.state').textContent, "
            "r.querySelector('svg.spark polyline') !== null])"
        )
        assert len(rows) == len(site["keys"])
        assert {href for href, _, _ in rows} == {figure_page(k) for k in site["keys"]}
        assert all(state in STATES and spark for _, state, spark in rows)
        states = {href: state for href, state, _ in rows}
        assert states[figure_page(_slowed_key(site))] == "regression"
        png = driver.screenshot()
        (tmp_path / "index.png").write_bytes(png)
        shot = Image.open(io.BytesIO(png)).convert("RGB")
        assert shot.width == 1280
        # the regression's state is drawn in its colour (rows sort by benchmark: reconstruction,
        # throughput, usage; scroll to the slowed figure's row first)
        driver.run(
            f"document.querySelector('a[href=\\'{figure_page(_slowed_key(site))}\\']').scrollIntoView()"
        )
        shot = Image.open(io.BytesIO(driver.screenshot())).convert("RGB")
        pixels = {shot.getpixel((x, y)) for x in range(0, shot.width, 2) for y in range(0, shot.height, 2)}
        assert (0xC6, 0x28, 0x28) in pixels

        driver.open(site["out"] / figure_page(_slowed_key(site)))
        driver.run("return null")
        for _ in range(100):
            if driver.run("return !!document.querySelector('#chart .main-svg')"):
                break
            driver.run("return null")
        drawn = driver.run(
            "const gd = document.getElementById('chart'); const L = gd._fullLayout;"
            "const left = gd.getBoundingClientRect().left + L._size.l;"
            "return {notes: [...gd.querySelectorAll('.annotation-text')].map(e => e.textContent),"
            "shapes: L.shapes.map(s => [s.x0, s.line.color, left + L.xaxis.d2p(s.x0)]),"
            "top: gd.getBoundingClientRect().top + L._size.t, h: L._size.h}"
        )
        assert "step" in drawn["notes"]
        assert any("vector_quantize_pytorch 1.32.0 → 1.33.0" in n for n in drawn["notes"])
        png = driver.screenshot()
        (tmp_path / "figure.png").write_bytes(png)
        shot = Image.open(io.BytesIO(png)).convert("RGB")
        colours = {"#d81b60": (0xD8, 0x1B, 0x60), "#6a1b9a": (0x6A, 0x1B, 0x9A)}
        found = {}
        for x0, colour, px in drawn["shapes"]:
            # the mark's pixel column, down the plot area, has the mark's colour (a dotted line too)
            column = {
                shot.getpixel((int(px) + dx, y))
                for dx in (-1, 0, 1)
                for y in range(int(drawn["top"]), int(drawn["top"] + drawn["h"]))
            }
            found[x0[:10]] = colours[colour] in column
        assert found.get(SLOW_DATE) and found.get(UPGRADE_DATE), found
        assert not [e for e in driver.console() if e.get("level") == "SEVERE"]
    finally:
        driver.close()
