"""The SQL behind every number in a report, named, so the report's appendix can print it.

Each query takes named parameters: ``$cred`` (the credential whose blast radius is shown),
``$since`` / ``$until`` (UTC TIMESTAMPs or NULL for an open window), ``$resource_limit`` (most
resources listed per credential). ``closure`` is the set
D(c): ``$cred`` and every credential reachable from it over ``MINTED`` links, with depth.
A reader can paste any of them into ``keytrail sql CASE`` (binding the parameters) to check a
number.

The closure and the time window are the analysis' own
(:func:`keytrail.analysis.lineage.closure_sql`, :data:`keytrail.analysis.ranking.TIME`), so a
report's number and ``keytrail blast`` cannot drift apart. The report walks every MINTED link whatever its confidence (the identities section shows
each link's confidence; the analysis default ``inferred`` admits them all too) and carries the
depth, capped at :data:`keytrail.analysis.lineage.MAX_DEPTH`.
"""

from __future__ import annotations

import textwrap

from keytrail.analysis.lineage import MAX_DEPTH, closure_sql
from keytrail.analysis.ranking import TIME

_CLO = closure_sql("SELECT $cred AS root", confidence=False, max_depth=MAX_DEPTH)
CLOSURE = (
    textwrap.dedent(_CLO).strip()
    + """,
closure AS (SELECT credential_id, min(depth) AS depth FROM clo GROUP BY credential_id)"""
)

WINDOW = TIME

QUERIES: dict[str, str] = {
    "derived_credentials": CLOSURE
    + """
SELECT closure.credential_id, closure.depth, cr.kind, cr.parent_credential_id, cr.issued_at, cr.issued_by_event,
       cr.expires_at, cr.principal_uid, cr.first_seen, cr.last_seen, cr.events
FROM closure LEFT JOIN credentials cr ON cr.credential_id = closure.credential_id
ORDER BY closure.depth, cr.issued_at NULLS LAST, closure.credential_id""",
    # The $resource_limit resources with the most events (all their actions); resources_total counts
    # every distinct resource, so a reader knows how many were left out.
    "resources": CLOSURE
    + f""", per_action AS (
SELECT r.resource_id, min(r.resource_type) AS resource_type, e.action, count(*) AS events,
       count(*) FILTER (WHERE e.outcome = 'denied') AS denied, min(e.time) AS first_seen, max(e.time) AS last_seen
FROM events e JOIN closure ON closure.credential_id = e.credential_id
JOIN event_resources r ON r.event_uid = e.event_uid
WHERE {WINDOW}
GROUP BY r.resource_id, e.action), ranked AS (
SELECT *, dense_rank() OVER (ORDER BY resource_events DESC, resource_id) AS resource_rank FROM (
  SELECT *, sum(events) OVER (PARTITION BY resource_id) AS resource_events FROM per_action))
SELECT resource_id, resource_type, action, events, denied, first_seen, last_seen,
       max(resource_rank) OVER () AS resources_total
FROM ranked QUALIFY resource_rank <= $resource_limit
ORDER BY resource_id, action""",
    "acted_on": CLOSURE
    + f"""
SELECT e.credential_id, r.resource_id, count(*) AS events, count(*) FILTER (WHERE e.outcome = 'denied') AS denied
FROM events e JOIN closure ON closure.credential_id = e.credential_id
JOIN event_resources r ON r.event_uid = e.event_uid
WHERE {WINDOW}
GROUP BY e.credential_id, r.resource_id ORDER BY e.credential_id, r.resource_id""",
    "activity": CLOSURE
    + f"""
SELECT count(*) AS events, count(*) FILTER (WHERE e.outcome = 'denied') AS denied,
       count(DISTINCT e.action) AS actions, count(DISTINCT e.account) AS accounts,
       count(DISTINCT e.service) AS services, min(e.time) AS first_seen, max(e.time) AS last_seen
FROM events e JOIN closure ON closure.credential_id = e.credential_id WHERE {WINDOW}""",
    "timeline": CLOSURE
    + f"""
SELECT e.time, e.event_uid, e.source_event_id, e.source, e.credential_id, e.actor_name, e.action, e.target,
       e.outcome, e.error_code, e.src_ip, e.user_agent
FROM events e JOIN closure ON closure.credential_id = e.credential_id WHERE {WINDOW}
ORDER BY e.time, e.event_uid LIMIT 200""",
    "identities": CLOSURE
    + """
SELECT l.kind, l.src_kind, l.src, l.dst_kind, l.dst, l.reason, l.confidence, l.evidence_count,
       l.first_seen, l.last_seen
FROM links l JOIN closure ON (l.kind IN ('USES') AND l.dst = closure.credential_id)
                          OR (l.kind IN ('AUTHENTICATES_AS', 'MINTED') AND l.src = closure.credential_id)
UNION
SELECT l.kind, l.src_kind, l.src, l.dst_kind, l.dst, l.reason, l.confidence, l.evidence_count,
       l.first_seen, l.last_seen
FROM links l WHERE l.kind = 'DELEGATED' AND l.dst IN (
  SELECT u.src FROM links u JOIN closure ON u.kind = 'USES' AND u.dst = closure.credential_id)
ORDER BY 1, 3, 5, 6, 7, 9""",
    "logged_agents_humans": CLOSURE
    + f"""
SELECT e.agent_id, e.human_id, count(*) AS events, min(e.time) AS first_seen, max(e.time) AS last_seen
FROM events e JOIN closure ON closure.credential_id = e.credential_id
WHERE {WINDOW} AND (e.agent_id IS NOT NULL OR e.human_id IS NOT NULL)
GROUP BY 1, 2 ORDER BY 1 NULLS LAST, 2 NULLS LAST""",
    # Round robin over three kinds so one kind (e.g. a burst of denied reads) cannot fill all five:
    # 0 = an event that minted a credential of the chain (deepest first: it shows the longest chain),
    # 1 = another change (not read-only, not denied), 2 = a denied attempt; earliest first within a kind.
    "key_events": CLOSURE
    + f""", mints AS (
  SELECT cr.issued_by_event AS event_uid, max(closure.depth) AS depth
  FROM credentials cr JOIN closure ON closure.credential_id = cr.credential_id
  WHERE cr.issued_by_event IS NOT NULL GROUP BY 1)
SELECT event_uid FROM (
  SELECT e.event_uid, CASE WHEN m.depth IS NOT NULL THEN 0 WHEN e.outcome = 'denied' THEN 2 ELSE 1 END AS kind,
         row_number() OVER (PARTITION BY kind ORDER BY m.depth DESC NULLS LAST, e.time, e.event_uid) AS turn
  FROM events e JOIN closure ON closure.credential_id = e.credential_id
  LEFT JOIN mints m ON m.event_uid = e.event_uid
  WHERE {WINDOW} AND (e.outcome = 'denied' OR e.read_only IS NOT TRUE OR m.event_uid IS NOT NULL))
ORDER BY turn, kind LIMIT 5""",
    "coverage_gaps": """
SELECT source, prev_time AS gap_start, time AS gap_end FROM (
  SELECT source, time, lag(time) OVER (PARTITION BY source ORDER BY time) AS prev_time FROM events
  WHERE time IS NOT NULL)
WHERE time - prev_time > INTERVAL 24 HOUR ORDER BY source, gap_start""",
    "rejects_by_file": """
SELECT ev.file_id, ev.path, count(*) AS rejected, min(r.record_no) AS first_record, arg_min(r.reason, r.record_no) AS example_reason
FROM rejects r LEFT JOIN evidence ev ON ev.file_id = r.file_id GROUP BY ev.file_id, ev.path ORDER BY ev.file_id""",
}
