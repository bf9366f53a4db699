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
   :func:`keytrail.graph.derive.derive` (or, when the case was derived before and this ingest
   adds only CloudTrail, Vault or agent files, :func:`keytrail.graph.derive_incr.derive_since`,
   which derives only what the new events change, with the same rows as a full rebuild),
   which also invalidates the analysis snapshot (its ``case_meta`` fingerprints are
   removed: it described the case before this ingest). ``keytrail ingest`` rebuilds it
   afterwards (:mod:`keytrail.analysis.snapshot`); until then readers analyse live.

``case_meta.finalized`` is ``false`` while an ingest runs and ``true`` after this
completes, so readers can warn about a case whose ingest was interrupted. In the same
transaction ``derived.through_file_id`` records the last file the derived tables cover and
``derived.code`` the code that derived them: rows of files above it are the "new" rows of the
next ingest (a killed ingest's committed files included), and any other code rebuilds in full.
``derived.resource_rows`` counts the ``event_resources`` rows then: the next ingest's rows are
appended after them (:data:`keytrail.graph.derive_incr.RESOURCE_ROWS_KEY`).

It lives in ``ingest`` (not ``store``) because it drives the adapters and the graph
derivation; ``store`` knows only the case file and its schema.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keytrail.graph.derive import derive
from keytrail.graph.derive_incr import (
    PAIRED_SINCE,
    RESOURCE_ROWS,
    RESOURCE_ROWS_KEY,
    derive_fingerprint,
    derive_since,
)
from keytrail.ingest import adapter_names, load_adapter
from keytrail.ingest.cloudtrail.digest import verify_integrity
from keytrail.store.case import roomy_memory

if TYPE_CHECKING:
    from keytrail.store.case import CaseStore


def _dedup(con: object, table: str, partition: str, order: str, where: str = "") -> None:
    # Counting distinct row hashes finds whether there is anything to remove (most ingests have
    # none) at a fraction of the window's cost (1.4M resource rows: 0.2 CPU-s; a grouping on the
    # columns 0.4-0.6, the window 0.9). Copies hash alike, so none is missed; a collision only
    # runs the exact window below, which then finds nothing to delete.
    found = con.execute(  # type: ignore[attr-defined]
        f"SELECT count(*) > count(DISTINCT hash({partition})) FROM {table}{where}"
    ).fetchone()
    if not (found and found[0]):
        return
    con.execute(  # type: ignore[attr-defined]
        f"""DELETE FROM {table} WHERE rowid IN (
              SELECT rid FROM (
                SELECT rowid AS rid, row_number() OVER (PARTITION BY {partition} ORDER BY {order}) AS rn
                FROM {table}{where}) WHERE rn > 1)"""
    )


def dedup_events(
    store: CaseStore, since: int | None = None, resource_rows: int | None = None
) -> None:
    """Remove the later copies of every event (and of its resource and issue rows).

    ``since``: the rows of files up to it were de-duplicated by an earlier finalize, so only rows
    of later files can be copies (of each other or of an old row: the old row wins, its
    ``file_id`` is lower). Only their keys are looked at: a join of the new event ids to the old,
    not a grouping of the whole ``events`` table. ``resource_rows``: how many ``event_resources``
    rows that finalize left (:data:`keytrail.graph.derive_incr.RESOURCE_ROWS_KEY`): the new rows
    are at ``rowid`` >= it, read without a probe of every old row's event id.
    """
    con = store.con
    if since is not None:
        # and the old Vault events paired with a new file's request: that request's resource
        # and issue rows (same event id) are copies of theirs
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _kt_new_uid AS SELECT event_uid, "
            "bool_or(file_id <= $since) AS old FROM events "
            f"WHERE file_id > $since OR (file_id <= $since AND {PAIRED_SINCE}) GROUP BY event_uid",
            {"since": since},
        )
        # ``of_old``: a copy of an old event (its old resource rows are the ones kept)
        dups = """SELECT rid, file_id, event_uid, of_old FROM (
                    SELECT rowid AS rid, file_id, event_uid,
                           row_number() OVER (PARTITION BY event_uid
                                              ORDER BY file_id, record_no) AS rn,
                           event_uid IN (SELECT event_uid FROM events WHERE file_id <= $since
                                         AND event_uid IN (SELECT event_uid FROM _kt_new_uid))
                             AS of_old
                    FROM events WHERE file_id > $since)
                  WHERE rn > 1 OR of_old"""
        found = True
    else:
        total, distinct = con.execute(
            "SELECT count(*), count(DISTINCT event_uid) FROM events"
        ).fetchone() or (0, 0)
        dups = """SELECT rid, file_id FROM (
                    SELECT rowid AS rid, file_id,
                           row_number() OVER (PARTITION BY event_uid
                                              ORDER BY file_id, record_no) AS rn
                    FROM events) WHERE rn > 1"""
        found = total != distinct
    if found:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _kt_dups AS {dups}",
            {"since": since} if since is not None else {},
        )
        con.execute(
            """UPDATE evidence SET duplicates = coalesce(duplicates, 0) + d.n
               FROM (SELECT file_id, count(*) AS n FROM _kt_dups GROUP BY file_id) d
               WHERE evidence.file_id = d.file_id"""
        )
        con.execute("DELETE FROM events WHERE rowid IN (SELECT rid FROM _kt_dups)")
    # Resource and issue rows hang off an event id: copies can only be of the new events' ids.
    only = " WHERE event_uid IN (SELECT event_uid FROM _kt_new_uid)" if since is not None else ""
    _dedup(
        con,
        "event_resources",
        "event_uid, resource_id, resource_type, account",
        "event_uid",
        _new_resources(con, resource_rows) if since is not None else "",
    )
    _dedup(con, "credential_issues", "credential_id, event_uid", "issued_at", only)
    con.execute("DROP TABLE IF EXISTS _kt_dups")
    dedup_cross_account_issues(con, new_only=since is not None)
    con.execute("DROP TABLE IF EXISTS _kt_new_uid")


def _new_resources(con: object, resource_rows: int | None) -> str:
    """The filter to the ``event_resources`` rows a copy can be among: those of the new events'
    ids. With ``resource_rows`` known, the rows appended since (``rowid`` >= it: the zone maps
    skip the old row groups) and the old rows of ids a new event repeats (a copy of an old event
    removed above, an old Vault event paired with a new request: usually none); else every row
    of a new id, found by probing every row's id (1.4M rows at 1M events: 0.1-0.2 CPU-s)."""
    probe = " WHERE event_uid IN (SELECT event_uid FROM _kt_new_uid)"
    if resource_rows is None:
        return probe
    con.execute(  # type: ignore[attr-defined]
        "CREATE OR REPLACE TEMP TABLE _kt_old_uid AS SELECT event_uid FROM _kt_new_uid WHERE old "
        "UNION SELECT event_uid FROM _kt_dups WHERE of_old"
    )
    row = con.execute("SELECT count(*) FROM _kt_old_uid").fetchone()  # type: ignore[attr-defined]
    con.execute("DROP TABLE _kt_old_uid")  # type: ignore[attr-defined]
    return f" WHERE rowid >= {int(resource_rows)}" if row and row[0] == 0 else probe


def dedup_cross_account_issues(con: object, *, new_only: bool = False) -> None:
    """One issue row per key for the copies of one cross-account call.

    CloudTrail delivers a cross-account ``AssumeRole`` to both accounts with the same
    ``sharedEventID`` (and ``requestID``) but, in real trails, distinct ``eventID``s. The
    caller's copy names the calling key (the parent); the role account's copy has actor
    type ``AWSAccount`` and no key. Both events stay in ``events``; only the second issue
    row goes, keeping the one with a parent (the MINTED edge still cites both copies,
    found through ``events.shared_event_id``).

    ``new_only``: only the credentials of the new events' issue rows (``_kt_new_uid``) can have
    a second row for one call; every other credential's rows were reduced before."""
    only = (
        """AND ci.credential_id IN (SELECT credential_id FROM credential_issues
                                    WHERE event_uid IN (SELECT event_uid FROM _kt_new_uid))"""
        if new_only
        else ""
    )
    con.execute(  # type: ignore[attr-defined]
        f"""DELETE FROM credential_issues WHERE rowid IN (
             SELECT rid FROM (
               SELECT ci.rowid AS rid, row_number() OVER (
                        PARTITION BY ci.credential_id,
                                     coalesce('s:' || e.shared_event_id, 'r:' || e.request_id)
                        ORDER BY ci.parent_credential_id IS NULL, e.actor_type = 'AWSAccount',
                                 ci.event_uid) AS rn
               FROM credential_issues ci JOIN events e ON e.event_uid = ci.event_uid
               WHERE e.source = 'cloudtrail'
                 AND coalesce(e.shared_event_id, e.request_id) IS NOT NULL {only})
             WHERE rn > 1)"""
    )


def file_counts(store: CaseStore, since: int | None = None) -> None:
    """Per-file event counts and time ranges (``since``: only files after it changed, and the old
    files of Vault events paired across files in this ingest: the request's file lost a row, the
    response's took the request's time)."""
    only = ""
    if since is not None:
        paired = PAIRED_SINCE.replace("$since", str(int(since)))
        store.con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _kt_paired_files AS
                SELECT DISTINCT unnest([file_id,
                                        TRY_CAST(details->>'request_file_id' AS BIGINT)]) AS f
                FROM events WHERE source = 'vault' AND details->>'entry' = 'pair'
                  AND (file_id > {int(since)} OR ({paired}))"""
        )
        only = f"WHERE file_id > {int(since)} OR file_id IN (SELECT f FROM _kt_paired_files)"
    store.con.execute(
        f"""UPDATE evidence SET events = coalesce(s.n, 0), first_time = s.t0, last_time = s.t1,
                  duplicates = coalesce(duplicates, 0)
           FROM (SELECT e.file_id, s.n, s.t0, s.t1 FROM (SELECT file_id FROM evidence {only}) e
                 LEFT JOIN (SELECT file_id, count(*) AS n, min(time) AS t0, max(time) AS t1
                            FROM events {only} GROUP BY file_id) s ON s.file_id = e.file_id) s
           WHERE evidence.file_id = s.file_id"""
    )
    store.con.execute(
        "UPDATE evidence SET integrity = 'not-applicable' WHERE integrity IS NULL AND source <> 'cloudtrail'"
    )
    store.con.execute("DROP TABLE IF EXISTS _kt_paired_files")


def finalize(store: CaseStore, *, graph: bool = True) -> None:
    """Run every end-of-ingest step in one transaction and mark the case finalized.

    ``graph=False`` stops before the derived tables: ``keytrail scope`` loads a trail into a
    scratch case only to walk its issuance facts, and the graph would cost most of the time.
    """
    con = store.con
    with roomy_memory(con):
        _finalize(store, graph)


#: ``case_meta`` keys: the last file the derived tables cover, and the code that derived them.
THROUGH_KEY = "derived.through_file_id"
CODE_KEY = "derived.code"
#: Sources of new files that :func:`keytrail.graph.derive_incr.derive_since` can add to a case
#: (``NULL``: a skipped file). An inventory adds declared identities and agent names: the rows
#: they change are rebuilt whole there (agent-keyed rows, USES, principals) or found (console
#: sessions of a declared identity). A policy file rebuilds in full.
INCREMENTAL_SOURCES = ("cloudtrail", "digest", "vault", "agent", "inventory")


def incremental_since(store: CaseStore) -> int | None:
    """The file id the derived tables already cover, when this ingest may add to them (same derive
    code, only CloudTrail, Vault or agent files since); ``None``: de-duplicate and derive the
    whole case."""
    through, code = store.meta(THROUGH_KEY), store.meta(CODE_KEY)
    if through is None or code != derive_fingerprint():
        return None
    since = int(through)
    other = store.scalar(
        "SELECT count(*) FROM evidence WHERE file_id > ? AND source IS NOT NULL "
        "AND NOT list_contains(?, source)",
        [since, list(INCREMENTAL_SOURCES)],
    )
    return None if other else since


def _finalize(store: CaseStore, graph: bool = True) -> None:
    con = store.con
    con.execute("BEGIN TRANSACTION")
    try:
        since = incremental_since(store) if graph else None
        rows = store.meta(RESOURCE_ROWS_KEY) if since is not None else None
        for name in adapter_names():
            load_adapter(name).finalize(con)
        dedup_events(store, since, None if rows is None else int(rows))
        file_counts(store, since)
        verify_integrity(con)
        if graph:
            if since is None or not derive_since(con, since):
                derive(con)
            last = store.scalar("SELECT coalesce(max(file_id), 0) FROM evidence")
            store.set_meta(THROUGH_KEY, str(last))
            store.set_meta(CODE_KEY, derive_fingerprint())
            # on this connection: the count after this transaction's de-duplication
            rows_now = con.execute(RESOURCE_ROWS).fetchone()
            store.set_meta(RESOURCE_ROWS_KEY, str(rows_now[0] if rows_now else 0))
        else:  # rows were added that no derive covers: the next ingest derives in full
            con.execute(
                "DELETE FROM case_meta WHERE key IN (?, ?, ?)",
                [THROUGH_KEY, CODE_KEY, RESOURCE_ROWS_KEY],
            )
        store.set_meta("finalized", "true")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
