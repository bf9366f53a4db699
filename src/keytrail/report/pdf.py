"""The report as PDF: the HTML report printed by headless Chromium (its print CSS applies).

No PDF library is bundled: Chromium lays out the same HTML a responder opens, so the
PDF and the page agree. Without Chromium, :func:`html_to_pdf` raises
:class:`~keytrail.errors.UsageError` (exit 2) naming what is missing: a ``.pdf`` is never
silently written as HTML.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from keytrail.errors import UsageError

#: Where Chromium is looked for, in order (``KEYTRAIL_CHROMIUM`` first when set).
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: A report prints in seconds; a hung browser must not hang the command.
TIMEOUT_S = 180


def find_browser() -> str | None:
    """The Chromium executable to print with, or ``None``."""
    env = os.environ.get("KEYTRAIL_CHROMIUM")
    if env:
        return env if os.access(env, os.X_OK) else None
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


def html_to_pdf(html: str, target: Path) -> None:
    """Print ``html`` to the PDF file ``target`` with headless Chromium.

    Raises:
        UsageError: no Chromium, or it failed or produced no PDF (the message says which).
    """
    browser = find_browser()
    if browser is None:
        raise UsageError(
            "writing a PDF needs Chromium (Debian: apt-get install chromium; or set "
            "KEYTRAIL_CHROMIUM to its path); write HTML instead with -o report.html"
        )
    with tempfile.TemporaryDirectory(prefix="keytrail-pdf-") as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(html, encoding="utf-8")
        out = Path(tmp) / "report.pdf"
        cmd = [
            browser,
            "--headless",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            f"--user-data-dir={tmp}/profile",
            "--no-pdf-header-footer",
            "--print-to-pdf-no-header",
            f"--print-to-pdf={out}",
            page.as_uri(),
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        try:
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise UsageError(f"Chromium could not print the report to PDF: {e}") from e
        if not out.exists() or out.stat().st_size == 0 or out.read_bytes()[:5] != b"%PDF-":
            tail = (done.stderr or "").strip().splitlines()[-3:]
            raise UsageError(
                f"Chromium did not write a PDF (exit {done.returncode}): {' / '.join(tail)}"
            )
        shutil.copyfile(out, target)
