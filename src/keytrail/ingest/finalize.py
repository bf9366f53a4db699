"""End-of-ingest bookkeeping, all in bulk SQL: de-duplicate, count, derive.

Adapters append freely (an event may arrive twice: CloudTrail duplicate delivery,
several Vault audit devices, the same span exported twice). Here, once per ingest:

1. adapter hooks (``SourceAdapter.finalize``), e.g. Vault pairing request-only
   events with responses that arrived in a later file;
2. de-duplication: the earliest copy of an event (lowest ``file_id``, ``record_no``)
   wins; per-file ``duplicates`` count what was removed;
3. per-file ``events`` and time ranges;
4. CloudTrail digest integrity checks;
5. the derived tables (``credentials``, ``principals``, ``links``) via
   :func:`keytrail.graph.derive.derive`,
   which also invalidates the analysis snapshot (its ``case_meta`` fingerprints are
   removed: it described the case before this ingest). ``keytrail ingest`` rebuilds it
   afterwards (:mod:`keytrail.analysis.snapshot`); until then readers analyse live.

``case_meta.finalized`` is ``false`` while an ingest runs and ``true`` after this
completes, so readers can warn about a case whose ingest was interrupted.

It lives in ``ingest`` (not ``store``) because it drives the adapters and the graph
derivation; ``store`` knows only the case file and its schema.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keytrail.graph.derive import derive
from keytrail.ingest import adapter_names, load_adapter
from keytrail.ingest.cloudtrail.digest import verify_integrity
from keytrail.store.case import roomy_memory

if TYPE_CHECKING:
    from keytrail.store.case import CaseStore


def _dedup(con: object, table: str, partition: str, order: str) -> None:
    # A grouping finds whether there is anything to remove at half the cost of the window (1.4M
    # resource rows: 0.4 against 0.9 CPU-s), and most ingests have no duplicates.
    found = con.execute(  # type: ignore[attr-defined]
        f"SELECT EXISTS (SELECT 1 FROM {table} GROUP BY {partition} HAVING count(*) > 1)"
    ).fetchone()
    if not (found and found[0]):
        return
    con.execute(  # type: ignore[attr-defined]
        f"""DELETE FROM {table} WHERE rowid IN (
              SELECT rid FROM (
                SELECT rowid AS rid, row_number() OVER (PARTITION BY {partition} ORDER BY {order}) AS rn
                FROM {table}) WHERE rn > 1)"""
    )


def dedup_events(store: CaseStore) -> None:
    con = store.con
    total, distinct = con.execute(
        "SELECT count(*), count(DISTINCT event_uid) FROM events"
    ).fetchone() or (0, 0)
    if total != distinct:
        con.execute(
            """CREATE OR REPLACE TEMP TABLE _kt_dups AS
               SELECT rid, file_id FROM (
                 SELECT rowid AS rid, file_id,
                        row_number() OVER (PARTITION BY event_uid ORDER BY file_id, record_no) AS rn
                 FROM events) WHERE rn > 1"""
        )
        con.execute(
            """UPDATE evidence SET duplicates = coalesce(duplicates, 0) + d.n
               FROM (SELECT file_id, count(*) AS n FROM _kt_dups GROUP BY file_id) d
               WHERE evidence.file_id = d.file_id"""
        )
        con.execute("DELETE FROM events WHERE rowid IN (SELECT rid FROM _kt_dups)")
        con.execute("DROP TABLE _kt_dups")
    _dedup(con, "event_resources", "event_uid, resource_id, resource_type, account", "event_uid")
    _dedup(con, "credential_issues", "credential_id, event_uid", "issued_at")
    dedup_cross_account_issues(con)


def dedup_cross_account_issues(con: object) -> None:
    """One issue row per key for the copies of one cross-account call.

    CloudTrail delivers a cross-account ``AssumeRole`` to both accounts with the same
    ``sharedEventID`` (and ``requestID``) but, in real trails, distinct ``eventID``s. The
    caller's copy names the calling key (the parent); the role account's copy has actor
    type ``AWSAccount`` and no key. Both events stay in ``events``; only the second issue
    row goes, keeping the one with a parent (the MINTED edge still cites both copies,
    found through ``events.shared_event_id``)."""
    con.execute(  # type: ignore[attr-defined]
        """DELETE FROM credential_issues WHERE rowid IN (
             SELECT rid FROM (
               SELECT ci.rowid AS rid, row_number() OVER (
                        PARTITION BY ci.credential_id,
                                     coalesce('s:' || e.shared_event_id, 'r:' || e.request_id)
                        ORDER BY ci.parent_credential_id IS NULL, e.actor_type = 'AWSAccount',
                                 ci.event_uid) AS rn
               FROM credential_issues ci JOIN events e ON e.event_uid = ci.event_uid
               WHERE e.source = 'cloudtrail'
                 AND coalesce(e.shared_event_id, e.request_id) IS NOT NULL)
             WHERE rn > 1)"""
    )


def file_counts(store: CaseStore) -> None:
    store.con.execute(
        """UPDATE evidence SET events = coalesce(s.n, 0), first_time = s.t0, last_time = s.t1,
                  duplicates = coalesce(duplicates, 0)
           FROM (SELECT e.file_id, s.n, s.t0, s.t1 FROM evidence e LEFT JOIN
                   (SELECT file_id, count(*) AS n, min(time) AS t0, max(time) AS t1
                    FROM events GROUP BY file_id) s ON s.file_id = e.file_id) s
           WHERE evidence.file_id = s.file_id"""
    )
    store.con.execute(
        "UPDATE evidence SET integrity = 'not-applicable' WHERE integrity IS NULL AND source <> 'cloudtrail'"
    )


def finalize(store: CaseStore, *, graph: bool = True) -> None:
    """Run every end-of-ingest step in one transaction and mark the case finalized.

    ``graph=False`` stops before the derived tables: ``keytrail scope`` loads a trail into a
    scratch case only to walk its issuance facts, and the graph would cost most of the time.
    """
    con = store.con
    with roomy_memory(con):
        _finalize(store, graph)


def _finalize(store: CaseStore, graph: bool = True) -> None:
    con = store.con
    con.execute("BEGIN TRANSACTION")
    try:
        for name in adapter_names():
            load_adapter(name).finalize(con)
        dedup_events(store)
        file_counts(store)
        verify_integrity(con)
        if graph:
            derive(con)
        store.set_meta("finalized", "true")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
