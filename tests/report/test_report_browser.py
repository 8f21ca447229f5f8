"""The report in a real headless browser (Debian's chromium, driven by Playwright): it loads with no console error,
the results table has one row per level and score of the study, every image decodes, and a screenshot is kept
(under ``$SPATIALSPEC_REPORT_ARTIFACTS``, default the test's temporary folder; its path is printed)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from spatialspec.cli.main import main
from spatialspec.report import read_summary_csv
from spatialspec.study.report import row_label
from tests.report.helpers import make_study

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS_ENV = "SPATIALSPEC_REPORT_ARTIFACTS"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed "
                                   "(pip install spatialspec[test])")
    if not CHROMIUM.is_file():
        pytest.skip(f"no headless browser: {CHROMIUM} is missing (scripts/test.sh installs Debian's chromium with "
                    "apt-get where it can)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


def test_report_in_a_headless_browser(browser, tmp_path):
    study = make_study(tmp_path)
    out = tmp_path / "report.html"
    assert main(["report", str(study), "--out", str(out)]) == 0
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(out.as_uri(), wait_until="load")

    assert not problems, problems
    assert all(url.startswith(("file:", "data:")) for url in requests), requests  # nothing from outside
    rows = read_summary_csv(study / "summary.csv")
    shown = page.eval_on_selector_all("#results tbody tr", "trs => trs.map(tr => [tr.dataset.level, tr.dataset.score])")
    assert shown == [[row_label(r), r["score"]] for r in rows]
    images = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
    assert len(images) == 4 and all(complete and width > 0 and height > 0 for complete, width, height in images), images

    folder = Path(os.environ.get(ARTIFACTS_ENV) or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    shot = folder / "report_screenshot.png"
    page.screenshot(path=str(shot), full_page=True)
    if folder != tmp_path:
        shutil.copy(out, folder / "report.html")
    print(f"report screenshot: {shot}")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page.close()
