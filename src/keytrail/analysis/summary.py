"""The case at a glance: sources, counts, time range, rejects, evidence integrity.

Used by ``keytrail info``, the TUI overview and the report header, so all three
show the same numbers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keytrail.timefmt import format_utc

if TYPE_CHECKING:
    from keytrail.store.case import CaseStore

SOURCES = ("cloudtrail", "vault", "agent")


def snapshot_status(store: CaseStore) -> str:
    from keytrail.analysis.snapshot import status

    return status(store)


def case_info(store: CaseStore) -> dict[str, Any]:
    """Everything ``keytrail info --json`` prints (keys are a contract, see DESIGN.md)."""
    sources: dict[str, dict[str, Any]] = {
        s: {"files": 0, "events": 0, "rejected": 0, "time_range": [None, None]} for s in SOURCES
    }
    for row in store.query(
        """SELECT source, count(*) AS files, sum(rejected) AS rejected FROM evidence
           WHERE status IN ('loaded','partial') GROUP BY source"""
    ):
        entry = sources.setdefault(
            row["source"], {"files": 0, "events": 0, "rejected": 0, "time_range": [None, None]}
        )
        entry["files"] = int(row["files"])
        entry["rejected"] = int(row["rejected"] or 0)
    for row in store.query(
        "SELECT source, count(*) AS n, min(time) AS t0, max(time) AS t1 FROM events GROUP BY source"
    ):
        entry = sources.setdefault(
            row["source"], {"files": 0, "events": 0, "rejected": 0, "time_range": [None, None]}
        )
        entry["events"] = int(row["n"])
        entry["time_range"] = [format_utc(row["t0"]), format_utc(row["t1"])]
    t0, t1 = store.con.execute("SELECT min(time), max(time) FROM events").fetchone() or (None, None)
    evidence = [
        {
            "file_id": r["file_id"],
            "path": r["path"],
            "sha256": r["sha256"],
            "bytes": r["bytes"],
            "source": r["source"],
            "format": r["format"],
            "status": r["status"],
            "records": r["records"],
            "events": r["events"],
            "duplicates": r["duplicates"],
            "rejected": r["rejected"],
            "time_range": [format_utc(r["first_time"]), format_utc(r["last_time"])],
            "integrity": r["integrity"],
            "integrity_detail": r["integrity_detail"],
            "note": r["note"],
        }
        for r in store.query("SELECT * FROM evidence ORDER BY file_id")
    ]
    integrity: dict[str, int] = {}
    for e in evidence:
        if e["integrity"]:
            integrity[e["integrity"]] = integrity.get(e["integrity"], 0) + 1
    counts = {
        name: int(store.scalar(f"SELECT count(*) FROM {name}") or 0)
        for name in ("events", "credentials", "principals", "links", "inventory_agents")
    }
    # Cases written before policy snapshots existed have no grants table (read-only opens do not add it).
    has_grants = store.scalar("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'grants'")
    counts["policy_statements"] = (
        int(store.scalar("SELECT count(*) FROM grants") or 0) if has_grants else 0
    )
    from keytrail.ingest.provenance import manifests

    return {
        "case": str(store.path),
        "finalized": store.meta("finalized") == "true",
        "provenance": manifests(store),
        "sources": sources,
        "events": counts["events"],
        "rejected": int(store.scalar("SELECT count(*) FROM rejects") or 0),
        "time_range": [format_utc(t0), format_utc(t1)],
        "counts": counts,
        "integrity": integrity,
        "evidence": evidence,
        "snapshot": snapshot_status(store),
    }
