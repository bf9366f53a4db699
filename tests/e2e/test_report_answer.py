"""The sample incident's report leads with the answer (issue 15): in Chromium and as a PDF.

The first screen (1280x900) shows what happened, the attack path picture and the first
containment action; the PDF printed by ``keytrail report -o r.pdf`` reads back with the
same answer in at most 13 A4 pages (the issue's limit is 15: two pages of headroom) at full
scale: no table is wider than the printed page, so Chromium does not shrink the text to fit.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html import unescape
from pathlib import Path
from typing import Any

import pytest

from keytrail.cli.main import main
from keytrail.report.pdf import find_browser
from tests.conftest import sample_case
from tests.e2e.test_sample_incident import BACKDOOR_KEY, MARIA, SHARED_KEY

pytestmark = pytest.mark.skipif(
    find_browser() is None, reason="headless Chromium (Debian: chromium) is absent"
)

#: Written into the test's own copy of the page (the report itself has no script and forbids one):
#: where the first screen's parts end up, read back with ``--dump-dom``.
PROBE = """<script>
addEventListener('load', () => {
  const box = s => { const el = document.querySelector(s); if (!el) return null;
                     const r = el.getBoundingClientRect(); return [r.top, r.bottom, r.width]; };
  document.body.setAttribute('data-probe', JSON.stringify({
    height: innerHeight, width: innerWidth, lead: box('p.lead'), picture: box('svg.path'),
    action: box('ol.actions li'), pageWidth: document.documentElement.scrollWidth}));
});
</script>"""


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory, sample_ingest: tuple[Path, Any]) -> Path:
    return sample_case(sample_ingest, tmp_path_factory.mktemp("report"))


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    browser = find_browser()
    assert browser
    cmd = [browser, "--headless", "--disable-gpu", "--no-first-run", *args]
    return subprocess.run(
        cmd[:1] + ["--no-sandbox"] + cmd[1:],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_first_viewport_shows_summary_picture_and_first_action(case: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    assert main(["report", str(case), "-o", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert "<script" not in page and "default-src 'none'" in page  # the product stays script-free
    probe = tmp_path / "probe.html"
    probe.write_text(
        re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page).replace(
            "</body>", PROBE + "</body>"
        ),
        encoding="utf-8",
    )
    dom = _chromium(
        "--window-size=1280,900", "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()
    ).stdout
    found = re.search(r'data-probe="([^"]*)"', dom)
    assert found, dom[-2000:]
    facts = json.loads(unescape(found.group(1)))
    height = facts["height"]
    for part in ("lead", "picture"):
        assert facts[part] is not None, part
        assert facts[part][1] <= height, (
            f"{part} ends at {facts[part][1]} px, below the first {height} px"
        )
    # the first action's line (level, what, target, why) is on screen; its command may run below
    assert facts["action"] is not None and facts["action"][0] + 40 <= height, facts["action"]
    assert (
        facts["picture"][2] <= facts["width"] and facts["pageWidth"] <= facts["width"]
    )  # the picture fits
    first_screen = page[page.index('id="summary"') : page.index('id="blast"')]
    assert (
        MARIA in first_screen
        and "ledger-reconciler" in first_screen
        and BACKDOOR_KEY in first_screen
    )
    assert re.search(r'href="#cred-\d+"', first_screen)  # nodes link to their section


#: Measures the page with its print rules applied on screen, at the printed width.
WIDTH_PROBE = """<script>
addEventListener('load', () => {
  const root = document.documentElement;
  const wide = [...document.querySelectorAll('table, svg, pre')]
    .filter(el => el.getBoundingClientRect().right > root.clientWidth + 1)
    .map(el => el.outerHTML.slice(0, 80));
  document.body.setAttribute('data-probe', JSON.stringify(
    {client: root.clientWidth, scroll: root.scrollWidth, wide: wide}));
});
</script>"""


def test_print_layout_is_no_wider_than_an_a4_page(case: Path, tmp_path: Path) -> None:
    """Wider content makes Chromium shrink the whole PDF (it printed at 67% before): unreadable."""
    out = tmp_path / "r.html"
    assert main(["report", str(case), "-o", str(out)]) == 0
    page = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", out.read_text())
    assert "@media print{" in page
    probe = tmp_path / "print.html"
    probe.write_text(
        page.replace("@media print{", "@media all{").replace("</body>", WIDTH_PROBE + "</body>"),
        encoding="utf-8",
    )
    # A4 is 210 mm; the print CSS's margins leave 190 mm = 718 CSS pixels for the content.
    dom = _chromium(
        "--window-size=718,900", "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()
    ).stdout
    found = re.search(r'data-probe="([^"]*)"', dom)
    assert found, dom[-2000:]
    facts = json.loads(unescape(found.group(1)))
    assert facts["scroll"] <= facts["client"] and not facts["wide"], facts


#: The page budget of the sample report (issue 15 allows 15; it printed 12.4 pages when set).
PAGE_BUDGET = 13


@pytest.mark.skipif(
    shutil.which("pdftotext") is None or shutil.which("pdfinfo") is None,
    reason="pdftotext/pdfinfo (Debian: poppler-utils) are absent",
)
def test_pdf_reads_back_and_fits_the_page_budget(case: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.pdf"
    assert main(["report", str(case), "-o", str(out)]) == 0
    info = subprocess.run(["pdfinfo", str(out)], capture_output=True, text=True, check=True).stdout
    found = re.search(r"^Pages:\s+(\d+)", info, re.MULTILINE)
    assert found, info
    pages = int(found.group(1))
    assert pages <= PAGE_BUDGET, f"{pages} A4 pages, budget {PAGE_BUDGET}"
    first = subprocess.run(
        ["pdftotext", "-f", "1", "-l", "1", "-layout", str(out), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "What happened" in first and "What to do now" in first
    assert (
        MARIA in first and SHARED_KEY in first
    )  # the picture's human and the worst action's target
    text = subprocess.run(
        ["pdftotext", str(out), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "Appendix A. Evidence and integrity" in text and "no-digest" in text
