"""``ACTED_ON`` after a second ingest: the new events' rows added onto the stored edges.

An edge aggregates one (credential, resource) pair's events: counts per action, denied calls,
first and last time, the smallest resource type and account, and the first 100 event ids in
(time, id) order. An ingest adds events and changes none (de-duplication keeps the old copy),
so every part but the evidence list adds up: stored edge plus the new rows. The evidence list
does too when the pair's new events all follow its stored last time (a new day of a trail):
the stored list, then the new events' list, cut at 100. Only the other pairs (new events in the
middle of an edge's time range) read their old events again, as
:func:`keytrail.graph.derive_links.acted_on` restricted to them. Before this, every touched
pair read all its events: a probe of every ``event_resources`` row for the new events' ids, a
join of the touched credentials' old events (0.5-0.8 CPU-s for 90k new CloudTrail records in a
1M case, docs/performance.md, incr5).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keytrail.graph import derive_links

if TYPE_CHECKING:
    import duckdb

_REASON = "events signed with this credential acted on this resource"


def acted_on(con: duckdb.DuckDBPyConnection, since: int, rows: int | None) -> None:
    """Bring ``ACTED_ON`` up to date with the events of files after ``since`` (``_kt_inc_new``).

    ``rows``: the ``event_resources`` rows the stored edges cover
    (:data:`keytrail.graph.derive_incr.RESOURCE_ROWS_KEY`), ``None`` when unknown or when old
    events are new too (a Vault response paired with a new request: its time changed): then every
    touched pair is rebuilt from all its events. So is every pair when an event has no time (the
    evidence order of such an event is the full rule's to decide).
    """
    untimed = con.execute("SELECT count(*) FROM events WHERE time IS NULL").fetchone()
    if rows is None or (untimed and untimed[0]):
        con.execute("""
            CREATE OR REPLACE TEMP TABLE _kt_inc_pairs AS
            SELECT DISTINCT n.credential_id, r.resource_id
            FROM _kt_inc_new n JOIN event_resources r ON r.event_uid = n.event_uid
            WHERE n.credential_id IS NOT NULL""")
        _rebuild_pairs(con)
        return
    # The new events' resource rows: the rows appended since (zone maps skip the old row
    # groups), joined to the events of the new files (``file_id``: the same).
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _kt_inc_acted AS
        SELECT e.credential_id, r.resource_id, coalesce(e.action, '?') AS action,
               e.outcome = 'denied' AS denied, e.time, e.event_uid, r.resource_type, r.account
        FROM events e
        JOIN (SELECT event_uid, resource_id, resource_type, account FROM event_resources
              WHERE rowid >= {int(rows)}) r ON r.event_uid = e.event_uid
        WHERE e.file_id > {int(since)} AND e.credential_id IS NOT NULL""")
    # The stored edges of the touched pairs; ``later``: the new events all follow the edge. Only
    # a credential with a stored ``credentials`` row (``_kt_inc_old_cred``: every credential of an
    # old event has one) can have one; when no new row's credential has, the edges (800k at 1M)
    # are not read.
    old_keys = con.execute(
        "SELECT count(*) FROM (SELECT DISTINCT credential_id FROM _kt_inc_acted) n "
        "WHERE credential_id IN (SELECT credential_id FROM _kt_inc_old_cred)"
    ).fetchone()
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _kt_inc_old_acted AS
        SELECT l.src, l.dst, l.evidence, l.evidence_count, l.first_seen, l.attributes,
               coalesce(n.t0 > l.last_seen, false) AS later
        FROM links l JOIN (SELECT credential_id, resource_id, min(time) AS t0
                           FROM _kt_inc_acted GROUP BY ALL) n
          ON n.credential_id = l.src AND n.resource_id = l.dst
        WHERE l.kind = 'ACTED_ON' AND {"true" if old_keys and old_keys[0] else "false"}""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _kt_inc_pairs AS
        SELECT src AS credential_id, dst AS resource_id FROM _kt_inc_old_acted WHERE NOT later""")
    con.execute("""
        DELETE FROM _kt_inc_acted WHERE EXISTS (
          SELECT 1 FROM _kt_inc_pairs p WHERE p.credential_id = _kt_inc_acted.credential_id
                                          AND p.resource_id = _kt_inc_acted.resource_id)""")
    con.execute("""
        DELETE FROM links WHERE kind = 'ACTED_ON' AND EXISTS (
          SELECT 1 FROM _kt_inc_old_acted o WHERE o.src = links.src AND o.dst = links.dst)""")
    _add_new_rows(con)
    _rebuild_pairs(con)
    for t in ("_kt_inc_acted", "_kt_inc_old_acted"):
        con.execute(f"DROP TABLE {t}")


def _rebuild_pairs(con: duckdb.DuckDBPyConnection) -> None:
    """The edges of ``_kt_inc_pairs`` from all their events, as the full rule makes them."""
    con.execute("""
        DELETE FROM links WHERE kind = 'ACTED_ON' AND EXISTS (
          SELECT 1 FROM _kt_inc_pairs p WHERE p.credential_id = links.src
                                          AND p.resource_id = links.dst)""")
    if not con.execute("SELECT count(*) FROM _kt_inc_pairs").fetchone()[0]:  # type: ignore[index]
        return
    derive_links.acted_on(
        con,
        "e.credential_id IN (SELECT credential_id FROM _kt_inc_pairs) AND EXISTS ("
        "SELECT 1 FROM _kt_inc_pairs p WHERE p.credential_id = e.credential_id "
        "AND p.resource_id = r.resource_id)",
    )


def _add_new_rows(con: duckdb.DuckDBPyConnection) -> None:
    """Insert each pair's edge: the new rows of ``_kt_inc_acted`` aggregated as
    :func:`keytrail.graph.derive_links.acted_on` does, added onto its stored edge (``later``)."""
    cap = derive_links.EVIDENCE_CAP
    con.execute(
        derive_links.INSERT
        + f"""
        WITH pa AS (
          SELECT credential_id, resource_id, action, count(*) AS n,
                 count(*) FILTER (WHERE denied) AS denied, min(time) AS t0, max(time) AS t1,
                 min(resource_type) AS rtype, min(account) AS account
          FROM _kt_inc_acted GROUP BY ALL
        ), old AS (
          SELECT src AS credential_id, dst AS resource_id, evidence, evidence_count, first_seen,
                 attributes->>'resource_type' AS rtype, attributes->>'account' AS account,
                 CAST(attributes->>'denied' AS BIGINT) AS denied,
                 map_entries(json_transform(attributes->'actions', '"MAP(VARCHAR, BIGINT)"'))
                   AS actions
          FROM _kt_inc_old_acted WHERE later
        ), acts AS (
          SELECT credential_id, resource_id, action, sum(n) AS n FROM (
            SELECT credential_id, resource_id, action, n FROM pa
            UNION ALL
            SELECT credential_id, resource_id, a.key, a.value
            FROM old, unnest(old.actions) AS t(a))
          GROUP BY ALL
        ), a AS (
          SELECT credential_id, resource_id,
                 ('{{' || array_to_string(list_transform(list_sort(list((action, n))),
                     lambda x: to_json(x[1]) || ':' || x[2]), ',') || '}}')::JSON AS actions
          FROM acts GROUP BY ALL
        ), nw AS (
          SELECT credential_id, resource_id, sum(n) AS n, sum(denied) AS denied, min(t0) AS t0,
                 max(t1) AS t1, min(rtype) AS rtype, min(account) AS account
          FROM pa GROUP BY ALL
        ), ev AS (
          SELECT credential_id, resource_id,
                 min_by(event_uid, (time, event_uid), {cap}) AS ev
          FROM _kt_inc_acted GROUP BY ALL
        )
        SELECT 'credential', nw.credential_id, 'resource', nw.resource_id, 'ACTED_ON',
               '{_REASON}', 'proven',
               CASE WHEN o.credential_id IS NULL THEN ev.ev
                    ELSE list_concat(o.evidence, ev.ev)[1:{cap}] END,
               nw.n + coalesce(o.evidence_count, 0), coalesce(o.first_seen, nw.t0), nw.t1,
               to_json({{'actions': a.actions, 'denied': nw.denied + coalesce(o.denied, 0),
                         'resource_type': least(o.rtype, nw.rtype),
                         'account': least(o.account, nw.account)}})
        FROM nw
        JOIN a ON a.credential_id = nw.credential_id AND a.resource_id = nw.resource_id
        JOIN ev ON ev.credential_id = nw.credential_id AND ev.resource_id = nw.resource_id
        LEFT JOIN old o ON o.credential_id = nw.credential_id AND o.resource_id = nw.resource_id"""
    )
