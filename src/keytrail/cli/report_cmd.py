"""``keytrail report`` and ``keytrail export``: what leaves the investigation.

Both open the case read-only, refuse to overwrite an existing file unless ``--force`` is
given (exit 2 with a message), and write through a temporary file renamed into place.
``report`` honours ``SOURCE_DATE_EPOCH`` for its "generated at" time, so a report can be
rebuilt byte-identically.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from keytrail.report.exports import FORMATS as EXPORT_FORMATS
from keytrail.report.exports import SUFFIXES as EXPORT_SUFFIXES
from keytrail.report.exports import export_format
from keytrail.report.write import FORMATS as REPORT_FORMATS
from keytrail.safetext import shown

EXPORT_TABLES = ("events", "credentials", "links", "findings")
__all__ = ["COMMANDS", "EXPORT_FORMATS", "EXPORT_SUFFIXES", "REPORT_FORMATS", "export_format"]


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


def run_report(args: argparse.Namespace) -> int:
    from keytrail.report.write import report_format, write_report
    from keytrail.store.case import CaseStore

    fmt = report_format(args.output, args.format)
    with CaseStore.open(args.case) as store:
        doc = write_report(
            store,
            args.output,
            fmt,
            credentials=args.credential,
            since=args.since,
            until=args.until,
            top=args.top,
            force=args.force,
        )
    print(
        f"keytrail: wrote {fmt} report to {shown(str(args.output))} "
        f"({len(doc['credentials'])} credentials examined, "
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
