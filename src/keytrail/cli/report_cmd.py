"""``keytrail report`` and ``keytrail export``: what leaves the investigation.

Both open the case read-only, refuse to overwrite an existing file unless ``--force`` is
given (exit 2 with a message), and write through a temporary file renamed into place.
``report`` honours ``SOURCE_DATE_EPOCH`` for its "generated at" time, so a report can be
rebuilt byte-identically.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC
from typing import Any

from keytrail.safetext import shown

REPORT_FORMATS = ("html", "md", "json", "pdf")
EXPORT_FORMATS = ("timesketch", "opengraph", "graphml", "csv", "parquet", "ocsf")
EXPORT_TABLES = ("events", "credentials", "links", "findings")


def _report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("case", metavar="CASE", help="case file (DuckDB)")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="file to write")
    p.add_argument(
        "--format",
        choices=REPORT_FORMATS,
        default=None,
        help="html (default, or from the file extension: .md, .json, .pdf; "
        "PDF is printed by headless Chromium)",
    )
    p.add_argument(
        "--credential",
        action="append",
        metavar="ID",
        default=None,
        help="credential to examine (repeatable; default: the top ranked ones)",
    )
    p.add_argument(
        "--top",
        type=int,
        default=5,
        metavar="N",
        help="how many top-ranked credentials (default 5)",
    )
    p.add_argument(
        "--since", metavar="TIME", help="only events at or after TIME (ISO 8601, UTC if no offset)"
    )
    p.add_argument("--until", metavar="TIME", help="only events at or before TIME")
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")


def _generated_at() -> Any:
    from datetime import datetime

    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.strip().isdigit():
        return datetime.fromtimestamp(int(epoch), tz=UTC)
    return datetime.now(UTC)


def run_report(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from keytrail.report.content import build_report
    from keytrail.report.exports import check_target, write_atomically
    from keytrail.store.case import CaseStore

    fmt = args.format or {".md": "md", ".markdown": "md", ".json": "json", ".pdf": "pdf"}.get(
        Path(args.output).suffix.lower(), "html"
    )
    target = check_target(args.output, force=args.force)
    if fmt == "pdf":
        from keytrail.report.pdf import find_browser

        if find_browser() is None:  # before the report is built: say what is missing at once
            from keytrail.report.pdf import html_to_pdf

            html_to_pdf("", target)
    with CaseStore.open(args.case) as store:
        doc = build_report(
            store,
            credentials=args.credential,
            since=args.since,
            until=args.until,
            generated_at=_generated_at(),
            top=args.top,
        )
    if fmt in ("html", "pdf"):
        from keytrail.report.html import render_html

        text = render_html(doc)
    elif fmt == "md":
        from keytrail.report.markdown import render_markdown

        text = render_markdown(doc)
    else:
        from keytrail.safetext import json_text

        text = json_text(json.dumps(doc, indent=2, ensure_ascii=False)) + "\n"

    def write(tmp: Path) -> int:
        if fmt == "pdf":
            from keytrail.report.pdf import html_to_pdf

            html_to_pdf(text, tmp)
        else:
            tmp.write_text(text, encoding="utf-8", newline="\n")
        return len(doc["credentials"])

    n = write_atomically(target, write)
    print(
        f"keytrail: wrote {fmt} report to {shown(str(target))} ({n} credentials examined, "
        f"{len(doc['findings']['items'])} findings)",
        file=sys.stderr,
    )
    return 0


def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("case", metavar="CASE", help="case file (DuckDB)")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="file to write")
    p.add_argument(
        "--format",
        choices=EXPORT_FORMATS,
        default=None,
        help="export format (default: from the file extension: "
        + ", ".join(f"{k} -> {v}" for k, v in EXPORT_SUFFIXES.items())
        + ")",
    )
    p.add_argument(
        "--table",
        choices=EXPORT_TABLES,
        default=None,
        help="table for csv/parquet (default events)",
    )
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")


#: What an export's file extension says about its format (``--format`` wins when given).
EXPORT_SUFFIXES = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".graphml": "graphml",
    ".jsonl": "timesketch",
    ".ocsf.jsonl": "ocsf",
    ".opengraph.json": "opengraph",
}


def export_format(output: str, given: str | None) -> str:
    """The export format: ``--format``, else the one the extension names (longest suffix first).

    Raises:
        UsageError: neither (exit 2, naming the extensions understood).
    """
    if given:
        return given
    from keytrail.errors import UsageError

    name = output.lower()
    for suffix in sorted(EXPORT_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return EXPORT_SUFFIXES[suffix]
    raise UsageError(
        f"cannot tell the export format from {output!r}: give --format "
        f"({', '.join(EXPORT_FORMATS)}) or name the file "
        + ", ".join(f"*{k}" for k in EXPORT_SUFFIXES)
    )


def run_export(args: argparse.Namespace) -> int:
    from keytrail.report.exports import export
    from keytrail.store.case import CaseStore

    args.format = export_format(args.output, args.format)

    with CaseStore.open(args.case) as store:
        n = export(store, args.output, args.format, force=args.force, table=args.table)
        note = ""
        if args.format == "timesketch":
            from keytrail.report.timesketch import untimed_events

            missing = untimed_events(store)
            note = f"; {missing} events without a time left out" if missing else ""
    unit = "nodes and edges" if args.format in ("opengraph", "graphml") else "rows"
    print(
        f"keytrail: wrote {n} {unit} to {shown(args.output)} ({args.format}){note}", file=sys.stderr
    )
    return 0


COMMANDS: dict[str, Any] = {
    "report": (
        "write the blast-radius report (HTML, PDF, Markdown or JSON)",
        _report_args,
        run_report,
    ),
    "export": (
        "export events, credentials, links or the graph for other tools",
        _export_args,
        run_export,
    ),
}
