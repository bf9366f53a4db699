"""Write the report to a file: the one path behind ``keytrail report`` and the explorer's ``e``.

``write_report(store, path, fmt)`` builds the report document, renders it (HTML,
Markdown, JSON, or a PDF printed from the HTML by headless Chromium) and writes it through
a temporary file renamed into place, never over an existing file unless ``force``. The
CLI and the TUI call it alike, so a report saved from the explorer is byte for byte the
one ``keytrail report -o`` writes for the same credentials and time.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keytrail.errors import UsageError
from keytrail.report.exports import check_target, write_atomically

if TYPE_CHECKING:
    from keytrail.store.case import CaseStore

FORMATS = ("html", "md", "json", "pdf")
#: What a report's file extension says about its format (an explicit format wins).
SUFFIXES = {
    ".html": "html",
    ".htm": "html",
    ".md": "md",
    ".markdown": "md",
    ".json": "json",
    ".pdf": "pdf",
}
#: The extension written for each format (the explorer proposes ``name + EXTENSION[fmt]``).
EXTENSION = {"html": ".html", "md": ".md", "json": ".json", "pdf": ".pdf"}


def report_format(path: str | Path, given: str | None = None) -> str:
    """The report format: ``given``, else the one the extension names, else ``html``."""
    if given:
        if given not in FORMATS:
            raise UsageError(
                f"unknown report format {given!r}; choose one of: {', '.join(FORMATS)}"
            )
        return given
    return SUFFIXES.get(Path(path).suffix.lower(), "html")


def require_pdf_printer() -> None:
    """Raise :class:`UsageError` (exit 2) at once when no Chromium can print a PDF."""
    from keytrail.report.pdf import find_browser, html_to_pdf

    if find_browser() is None:
        html_to_pdf("", Path("unused.pdf"))  # raises, naming what is missing and how to install it


def render(doc: dict[str, Any], fmt: str) -> str:
    """The report document as ``html`` (also what a PDF prints), ``md`` or ``json`` text."""
    if fmt in ("html", "pdf"):
        from keytrail.report.html import render_html

        return render_html(doc)
    if fmt == "md":
        from keytrail.report.markdown import render_markdown

        return render_markdown(doc)
    from keytrail.safetext import json_text

    return json_text(json.dumps(doc, indent=2, ensure_ascii=False)) + "\n"


def report_time() -> datetime:
    """Now, or ``SOURCE_DATE_EPOCH`` when set (a report rebuilt byte-identically)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.strip().isdigit():
        return datetime.fromtimestamp(int(epoch), tz=UTC)
    return datetime.now(UTC)


def write_report(
    store: CaseStore,
    path: str | Path,
    fmt: str | None = None,
    *,
    credentials: list[str] | None = None,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    generated_at: datetime | None = None,
    top: int | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Build the report and write it to ``path`` as ``fmt`` (default: from the extension).

    Returns the report document (what was written, for the caller's summary line).
    ``generated_at`` defaults to :func:`report_time` (``SOURCE_DATE_EPOCH`` honoured).

    Raises:
        UsageError: the file exists without ``force``, its directory is missing, the format
            is unknown, or a PDF was asked for and no Chromium can print it (exit 2).
        NotFoundError: a requested credential is not in the case.
    """
    from keytrail.report.content import build_report

    fmt = report_format(path, fmt)
    target = check_target(path, force=force)
    if fmt == "pdf":
        require_pdf_printer()  # before the report is built: say what is missing at once
    kw: dict[str, Any] = {} if top is None else {"top": top}
    doc = build_report(
        store,
        credentials=credentials,
        since=since,
        until=until,
        generated_at=generated_at or report_time(),
        **kw,
    )
    text = render(doc, fmt)

    def write(tmp: Path) -> int:
        if fmt == "pdf":
            from keytrail.report.pdf import html_to_pdf

            html_to_pdf(text, tmp)
        else:
            tmp.write_text(text, encoding="utf-8", newline="\n")
        return len(doc["credentials"])

    write_atomically(target, write, overwrite=force)
    return doc
