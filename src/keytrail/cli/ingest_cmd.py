"""``keytrail ingest``, ``info`` and ``sql``: getting evidence in and looking at it raw."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from keytrail.errors import InputError, StrictRejectError, UsageError
from keytrail.safetext import shown

if TYPE_CHECKING:
    from keytrail.analysis.snapshot import SnapshotSummary
    from keytrail.ingest.runner import Progress


def _add_ingest(p: argparse.ArgumentParser) -> None:
    p.add_argument("case", help="case file (DuckDB); created when missing")
    p.add_argument(
        "paths", nargs="+", metavar="PATH", help="log files or directories (walked recursively)"
    )
    p.add_argument(
        "--inventory",
        action="append",
        default=[],
        metavar="FILE",
        help="agent inventory (TOML, JSON or CSV); repeatable",
    )
    p.add_argument("--strict", action="store_true", help="exit 3 when any record was rejected")
    p.add_argument("--json", action="store_true", help="print a machine summary on stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.add_argument(
        "--max-record-bytes",
        type=_size,
        default=None,
        metavar="N",
        help="largest record read (bytes; K/M/G suffixes; default 64M): a longer record is a "
        "reject, and a file read as one document is read up to 4 x N (docs/security.md)",
    )
    p.add_argument(
        "--no-snapshot",
        action="store_true",
        help="skip the analysis snapshot (ranking and findings stored for instant reads); "
        "readers then compute them live",
    )


def _size(text: str) -> int:
    """``64M``-style byte counts for ``--max-record-bytes``."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(t[-1:], 1)
    try:
        n = int(t[:-1] if mult > 1 else t) * mult
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a byte count: {text!r} (e.g. 65536, 64M, 1G)"
        ) from None
    if n < 1024:
        raise argparse.ArgumentTypeError(f"--max-record-bytes must be at least 1K, got {text!r}")
    return n


class _ProgressPrinter:
    """Progress on stderr: one updating line on a terminal, periodic lines otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = -1.0

    def __call__(self, p: Progress) -> None:
        mb = p.bytes_done / 1e6
        rate = mb / p.elapsed if p.elapsed > 0 else 0.0
        line = (
            f"ingest: {p.files_done}/{p.files_total} files, {p.records:,} records, "
            f"{p.rejected:,} rejected, {mb:,.1f} MB at {rate:,.1f} MB/s"
        )
        if p.current == "finalising":
            line += " - finalising (dedup, graph)"
        if self.tty:
            sys.stderr.write("\r\x1b[2K" + line)
            sys.stderr.flush()
        elif p.elapsed - self.last >= 2.0 or p.current == "finalising":
            self.last = p.elapsed
            print(line, file=sys.stderr)

    def done(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


def run_ingest(args: argparse.Namespace) -> int:
    from keytrail.ingest.runner import ingest

    printer = None if args.quiet else _ProgressPrinter()
    from keytrail.ingest.base import MAX_RECORD_BYTES

    new_case = not os.path.exists(args.case)
    try:
        summary = ingest(
            args.case,
            args.paths,
            inventory=args.inventory,
            progress=printer,
            max_record_bytes=args.max_record_bytes or MAX_RECORD_BYTES,
        )
    except BaseException:
        if new_case:
            _remove_case(args.case)  # a first ingest that failed leaves no half-made case behind
        raise
    if printer:
        printer.done()
    doc = summary.as_dict()
    snap = None
    if not args.no_snapshot and summary.events_in_case:
        from keytrail.analysis.snapshot import refresh_case

        def computing() -> None:
            if not args.quiet:
                what = "ranking every credential, running the findings rules"
                print(f"ingest: analysis snapshot ({what})", file=sys.stderr)

        snap = refresh_case(args.case, keep_current=True, computing=computing)
    doc["snapshot"] = snap.as_dict() if snap else None
    if args.json:
        from keytrail.cli.main import print_json

        print_json(doc)
    from keytrail.safetext import shown

    for f in summary.files:
        if f.status in ("skipped", "failed", "partial") or f.rejected:
            note = f": {shown(f.note)}" if f.note else ""
            print(
                f"  {f.status:>8}  {shown(str(f.path))}{note} ({f.rejected} rejected)",
                file=sys.stderr,
            )
    by = doc["files_by_status"]
    print(
        f"keytrail: {summary.loaded_files} files loaded, {by.get('already-ingested', 0)} already in the case, "
        f"{by.get('skipped', 0)} skipped, {by.get('failed', 0)} failed; {summary.records:,} records, "
        f"{summary.rejected:,} rejected; {summary.events_in_case:,} events in {shown(args.case)} "
        f"({summary.elapsed:.1f}s)",
        file=sys.stderr,
    )
    if snap:
        print(f"keytrail: analysis snapshot: {_snapshot_text(snap)}", file=sys.stderr)
    if summary.rejected:
        print(
            f'  see them with: keytrail sql {shown(args.case)} "SELECT * FROM rejects"',
            file=sys.stderr,
        )
    # Exit 2 only when the run produced no usable evidence at all; files already in
    # the case from an earlier run count (a re-run after an interruption is fine).
    usable = summary.loaded_files + by.get("already-ingested", 0)
    if summary.files and usable == 0:
        kept = ""
        if new_case:
            _remove_case(args.case)
            kept = f"; no case file was created ({args.case} removed)"
        raise InputError(
            f"nothing was loaded: no file was in a known format (see the list above){kept}"
        )
    if args.strict and summary.rejected:
        raise StrictRejectError(f"--strict: {summary.rejected} records were rejected")
    return 0


def _remove_case(case: str) -> None:
    """Delete a case file this run created (and DuckDB's write-ahead log beside it)."""
    for path in (case, case + ".wal"):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _add_info(p: argparse.ArgumentParser) -> None:
    p.add_argument("case")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--wide",
        action="store_true",
        help="absolute evidence paths, nothing cut to the terminal width",
    )


def run_info(args: argparse.Namespace) -> int:
    from keytrail.analysis.summary import case_info
    from keytrail.store.case import CaseStore

    with CaseStore.open(args.case) as store:
        info = case_info(store)
    if args.json:
        from keytrail.cli.main import print_json

        print_json(info)
        return 0
    from keytrail.safetext import shown as s

    out = sys.stdout
    tr = info["time_range"]
    case = s(str(info["case"]))
    out.write(f"case {case}{'' if info['finalized'] else '  (INGEST INCOMPLETE: re-run ingest)'}\n")
    out.write(f"time range  {tr[0]} .. {tr[1]}\n")
    out.write(f"events      {info['events']:,}   rejected {info['rejected']:,}\n")
    # Sub-second sources (Vault, OTLP) print 27-character times: size the column to its widest value.
    tw = max(
        [len("first")] + [len(src["time_range"][0] or "-") for src in info["sources"].values()]
    )
    out.write(f"\nsource       files     events  rejected  {'first':<{tw}}  last\n")
    for name, src in info["sources"].items():
        out.write(
            f"{s(name):<12}{src['files']:>6}{src['events']:>11,}{src['rejected']:>10,}  "
            f"{src['time_range'][0] or '-':<{tw}}  {src['time_range'][1] or '-'}\n"
        )
    c = info["counts"]
    out.write(
        f"\ncredentials {c['credentials']:,}  principals {c['principals']:,}  links {c['links']:,}  "
        f"inventory agents {c['inventory_agents']:,}  policy statements {c['policy_statements']:,}\n"
    )
    hint = {
        "current": "",
        "none": " (ranking and findings are computed on each request; "
        f"store them with: keytrail snapshot {case})",
        "stale": f" (written by another keytrail or configuration; refresh: keytrail snapshot {case})",
    }
    out.write(f"analysis snapshot {info['snapshot']}{hint.get(info['snapshot'], '')}\n")
    for m in info.get("provenance") or []:
        seeds = ", ".join(shown(str(x.get("seed")), 120) for x in m["seeds"] or [])
        w = m["window"] or {}
        out.write(
            f"provenance  keytrail scope ({shown(str(m['engine']), 20)} engine, {m['created_at']}): seeds "
            f"{seeds}; window {w.get('since') or '-'} .. {w.get('until') or '-'}; {m['closure']} "
            f"credentials in the closure; {m['inputs']} input files; manifest "
            f"{m['manifest_sha256'][:16]}\n"
        )
    _write_evidence(info["evidence"], out, getattr(args, "wide", False))
    return 0


def _write_evidence(evidence: list[dict[str, Any]], out: Any, wide: bool) -> None:
    """The evidence files, paths relative to their common directory (named once) unless ``wide``.

    Paths, statuses and notes pass through :func:`keytrail.safetext.shown` (a file name can
    carry terminal escapes) before they are cut to the width.
    """
    from keytrail.cli.fit import NARROW, relative_paths, width_of, wrap
    from keytrail.idfmt import middle
    from keytrail.safetext import shown as s

    width = width_of(out, wide=wide)
    every = [str(e["path"]) for e in evidence]
    root, paths = ("", every) if wide else relative_paths(every)
    out.write(f"\nevidence{f' (paths under {s(root)}/)' if root else ''}\n")
    iw = max([0] + [len(str(e["file_id"])) for e in evidence]) + 2
    for e, path in zip(evidence, paths):
        digest = (
            ""
            if width is not None and width < NARROW
            else f"{s(e['integrity'] or '-'):<14} {s(e['sha256'][:16])}  "
        )  # narrow: `--json` has them
        line = (
            f"  {'[' + str(e['file_id']) + ']':<{iw}} {s(e['status']):<8} {s(e['source'] or '-'):<10} "
            f"{digest}{e['events'] or 0:>6,} ev {e['rejected'] or 0:>4} rej  "
        )
        room = None if width is None else max(20, width - len(line))
        shown_path = s(path)
        out.write(line + (shown_path if room is None else middle(shown_path, room)) + "\n")
        if e["note"]:
            out.write("\n".join(wrap(f"      note: {s(str(e['note']))}", width)) + "\n")


def _add_sql(p: argparse.ArgumentParser) -> None:
    p.add_argument("case")
    p.add_argument("query", help="SQL (the case is opened read-only)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="rows as a JSON array")
    fmt.add_argument(
        "--csv", action="store_true", help="CSV with formula-looking cells neutralised"
    )
    p.add_argument(
        "--reveal",
        action="store_true",
        help="secrets are masked in the case itself; with --reveal the result must have an "
        "event_uid column and each row's `raw` is the ORIGINAL record read back from its "
        "evidence file (path and SHA-256 checked first; docs/security.md)",
    )


def run_sql(args: argparse.Namespace) -> int:
    from keytrail.store.sandbox import open_sandbox
    from keytrail.store.sandbox import run_sql as run_sandboxed

    with open_sandbox(args.case) as store:  # one read-only statement; no files, network or settings
        names, rows, _ = run_sandboxed(store.cursor(), args.query)
    if args.reveal:
        names, rows = _revealed(args.case, names, rows)
    if (
        not args.reveal
    ):  # raw records carry session tokens and passwords: masked like everywhere else
        from keytrail.redact import mask_secrets

        rows = [tuple(mask_secrets(v) if isinstance(v, str) else v for v in r) for r in rows]
    if args.json:
        from keytrail.cli.main import print_json

        print_json([dict(zip(names, r)) for r in rows])
    elif args.csv:
        import csv

        from keytrail.redact import csv_safe

        w = csv.writer(sys.stdout)
        w.writerow(names)
        for r in rows:
            w.writerow([csv_safe(v) for v in r])
    else:
        _print_table(names, rows)
    return 0


def _revealed(
    case: str, names: list[str], rows: list[tuple[Any, ...]]
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Rows with ``raw`` (added when not selected) replaced by the original record from the evidence
    (read through the case's own read-only connection, not the query's)."""
    from keytrail.ingest.reveal import Revealer
    from keytrail.store.case import CaseStore

    if "event_uid" not in names:
        raise UsageError(
            "--reveal reads each row's original record from its evidence file, so the query must "
            "return an event_uid column, e.g. SELECT event_uid, raw FROM events WHERE ..."
        )
    uid_at = names.index("event_uid")
    if "raw" not in names:
        names = [*names, "raw"]
        rows = [(*r, None) for r in rows]
    raw_at = names.index("raw")
    out = []
    with CaseStore.open(case) as store:
        rev = Revealer(store.con, case)
        for r in rows:
            cells = list(r)
            cells[raw_at] = rev.original(str(r[uid_at]))
            out.append(tuple(cells))
    return names, out


def _print_table(names: list[str], rows: list[tuple[Any, ...]]) -> None:
    from keytrail.safetext import shown

    names = [shown(n, 80) for n in names]
    cells = [[shown("" if v is None else str(v), 80) for v in r] for r in rows]
    widths = [max([len(n)] + [len(r[i]) for r in cells]) for i, n in enumerate(names)]
    print("  ".join(n.ljust(w) for n, w in zip(names, widths)))
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)))
    print(f"({len(rows)} rows)", file=sys.stderr)


def _snapshot_text(snap: SnapshotSummary) -> str:
    text = f"{snap.credentials:,} credentials ranked, {snap.findings:,} findings"
    if snap.kept:
        return f"{text} (current: kept as stored, nothing new was loaded)"
    return f"{text} ({snap.seconds:.1f}s)"


def run_snapshot(args: argparse.Namespace) -> int:
    from keytrail.analysis.snapshot import refresh_case
    from keytrail.errors import CaseError
    from keytrail.safetext import shown

    snap = refresh_case(args.case)
    if snap is None:
        raise CaseError(
            f"{args.case}: its last ingest did not finish; re-run keytrail ingest first",
            "ingest incomplete",
        )
    if args.json:
        from keytrail.cli.main import print_json

        print_json(snap.as_dict())
    print(
        f"keytrail: analysis snapshot of {shown(args.case)}: {_snapshot_text(snap)}",
        file=sys.stderr,
    )
    return 0


COMMANDS = {
    "ingest": (
        "load logs (CloudTrail, Vault audit, agent logs) and inventories into a case",
        _add_ingest,
        run_ingest,
    ),
    "info": (
        "sources, time range, counts, rejects and evidence integrity of a case",
        _add_info,
        run_info,
    ),
    "sql": ("run a read-only SQL query on a case", _add_sql, run_sql),
    "snapshot": (
        "store the ranking and findings in the case again (after an upgrade or a config change)",
        _add_info,
        run_snapshot,
    ),
}
