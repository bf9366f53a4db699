"""The ``USES`` edges (agent -> credential) of the identity graph (see ``docs/graph.md``).

Three families, each its own function so that :mod:`keytrail.graph.derive_incr` can rebuild one
and keep the others: what the agent's own log or Vault token metadata names, what the inventory
declares, and tool calls followed by API calls on the same target (time correlation).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keytrail.graph.derive_links import EVIDENCE_CAP, INSERT, and_scope

if TYPE_CHECKING:
    import duckdb


def _cred_principal(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _kt_cp AS
        SELECT DISTINCT src AS credential_id, dst AS principal,
               CASE WHEN regexp_matches(dst, '^arn:aws[a-z-]*:sts::\\d+:assumed-role/')
                    THEN split_part(dst, ':', 5) || '/'
                         || split_part(split_part(dst, ':', 6), '/', 2) END AS role_key
        FROM links WHERE kind = 'AUTHENTICATES_AS'""")


def uses(con: duckdb.DuckDBPyConnection, *, window_s: int, skew_s: int) -> None:
    """USES agent -> credential: agent log refs, inventory identities, tool-call correlation."""
    uses_logged(con)
    uses_inventory(con)
    uses_by_timing(con, window_s=window_s, skew_s=skew_s)


#: The reasons of the USES edges of :func:`uses_logged` (the agent's log, Vault token metadata).
LOGGED_REASONS = (
    "the agent's own log names this credential",
    "the credential's own metadata names the agent (Vault token metadata)",
)


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def uses_logged(con: duckdb.DuckDBPyConnection) -> None:
    """USES named by the agent's own log or by Vault token metadata (agent and Vault events)."""
    con.execute(
        INSERT
        + f"""
        SELECT 'agent', agent_id, 'credential', credential_id, 'USES',
               {_lit(LOGGED_REASONS[0])}, 'proven',
               list(event_uid ORDER BY time, event_uid)[1:{EVIDENCE_CAP}], count(*), min(time),
               max(time), NULL
        FROM events WHERE source = 'agent' AND agent_id IS NOT NULL AND credential_id IS NOT NULL
        GROUP BY agent_id, credential_id"""
    )
    # Vault token metadata naming the agent (set when the token was created for it).
    con.execute(
        INSERT
        + f"""
        SELECT 'agent', agent_id, 'credential', credential_id, 'USES',
               {_lit(LOGGED_REASONS[1])}, 'strong',
               list(event_uid ORDER BY time, event_uid)[1:{EVIDENCE_CAP}], count(*), min(time),
               max(time), NULL
        FROM events WHERE source <> 'agent' AND agent_id IS NOT NULL AND credential_id IS NOT NULL
        GROUP BY agent_id, credential_id"""
    )


#: The reasons of the inventory's USES edges start so (:func:`uses_inventory`).
INVENTORY_REASON = "inventory "
#: The reason of the tool-call correlation USES edges starts so (:func:`uses_by_timing`).
TIMING_REASON = "tool calls of the agent were followed"


def uses_inventory(con: duckdb.DuckDBPyConnection) -> None:
    """USES from the inventory's declared identities (needs ``credentials``, AUTHENTICATES_AS)."""
    _cred_principal(con)
    con.execute(
        INSERT
        + """
        WITH inv AS (
          SELECT agent_id, ident,
                 'inventory:' || coalesce(file_id, 0) || ':' || coalesce(record_no, 0) AS ref
          FROM (SELECT agent_id, unnest(identities) AS ident, file_id, record_no
                FROM inventory_agents)
          WHERE ident IS NOT NULL AND ident <> ''
        ), m AS (
          SELECT inv.*, cp.credential_id, 'strong' AS confidence,
                 'inventory declares IAM role ' || ident
                   || '; this credential is a session of that role' AS reason
          FROM inv JOIN _kt_cp cp
            ON cp.role_key = split_part(ident, ':', 5) || '/'
                             || regexp_extract(ident, '/([^/]+)$', 1)
          WHERE regexp_matches(ident, '^arn:aws[a-z-]*:iam::\\d+:role/')
          UNION ALL
          SELECT inv.*, cp.credential_id, 'strong',
                 'inventory declares IAM user ' || ident || '; this key authenticates as that user'
          FROM inv JOIN _kt_cp cp ON cp.principal = inv.ident
          WHERE regexp_matches(ident, '^arn:aws[a-z-]*:iam::\\d+:user/')
          UNION ALL
          SELECT inv.*, l.credential_id, 'strong',
                 'inventory declares Vault role ' || ident
                   || '; this token came from a login on auth/' || l.mount
                   || ' with role ' || l.role
          FROM inv JOIN _kt_vault_login l ON inv.ident = 'vault:' || l.mount || '/' || l.role
          UNION ALL
          SELECT inv.*, c.credential_id, 'proven', 'inventory names this credential id'
          FROM inv JOIN credentials c ON c.credential_id = inv.ident
        )
        SELECT 'agent', m.agent_id, 'credential', m.credential_id, 'USES', min(m.reason),
               m.confidence,
               list_sort(list_distinct(list(m.ref) || coalesce(list(c.issued_by_event)
                 FILTER (WHERE c.issued_by_event IS NOT NULL), []))),
               len(list_distinct(list(m.ref) || coalesce(list(c.issued_by_event)
                 FILTER (WHERE c.issued_by_event IS NOT NULL), []))),
               min(c.first_seen), max(c.last_seen),
               to_json({'inventory_identities': list(DISTINCT m.ident ORDER BY m.ident)})
        FROM m JOIN credentials c ON c.credential_id = m.credential_id
        GROUP BY m.agent_id, m.credential_id, m.confidence"""
    )


def uses_by_timing(
    con: duckdb.DuckDBPyConnection, *, window_s: int, skew_s: int, scope: str = ""
) -> None:
    """USES inferred from tool calls followed by API calls on the same target."""
    # Tool calls matched to API calls on the same target within the window. Hash-join on
    # (target, time bucket) so a popular bucket cannot turn the join quadratic.
    # Only resources that some agent event names are candidates, so the big join of API
    # events to their resources is limited to those targets.
    rkey = """rtrim(CASE WHEN starts_with(r.resource_id, 'arn:aws:s3:::') THEN r.resource_id[14:]
                        WHEN starts_with(r.resource_id, 's3://') THEN r.resource_id[6:]
                        WHEN starts_with(r.resource_id, 'vault:') THEN r.resource_id[7:]
                        ELSE r.resource_id END, '/')"""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _kt_res AS
        SELECT r.event_uid, e.source, e.agent_id, e.credential_id, e.time,
               epoch(e.time)::BIGINT // {window_s} AS bucket, {rkey} AS rkey
        FROM events e JOIN event_resources r ON r.event_uid = e.event_uid
        WHERE e.source = 'agent' AND e.agent_id IS NOT NULL AND e.credential_id IS NULL
          AND e.time IS NOT NULL""")
    # No tool call names a resource (a CloudTrail-only case): no timing edge, and the API calls'
    # resources are not read (1.4M rows at 1M).
    if not con.execute("SELECT count(*) FROM _kt_res").fetchone()[0]:  # type: ignore[index]
        return
    # Scoped: only the resources of the scope's events get their key computed (1.4M rows at 1M).
    near = (
        f" WHERE r.event_uid IN (SELECT event_uid FROM events WHERE credential_id IS NOT NULL"
        f"{and_scope(scope)})"
        if scope
        else ""
    )
    con.execute(f"""
        INSERT INTO _kt_res
        SELECT r.event_uid, e.source, e.agent_id, e.credential_id, e.time,
               epoch(e.time)::BIGINT // {window_s}, r.rkey
        FROM (SELECT r.event_uid, {rkey} AS rkey FROM event_resources r{near}) r
        JOIN events e ON e.event_uid = r.event_uid
        WHERE r.rkey IN (SELECT rkey FROM _kt_res)
          AND e.source IN ('cloudtrail', 'vault') AND e.credential_id IS NOT NULL
          AND e.time IS NOT NULL
          {and_scope(scope)}""")
    con.execute(
        INSERT
        + f"""
        WITH a AS (
          SELECT event_uid, agent_id, time, rkey, bucket + d AS bucket
          FROM _kt_res, (SELECT unnest([-1, 0, 1]) AS d) WHERE source = 'agent'
        ), p AS (
          -- each (tool call, API call) pair meets in exactly one bucket copy: no DISTINCT needed
          SELECT a.agent_id, c.credential_id, a.event_uid AS tool_event, c.event_uid AS api_event,
                 a.time AS t_tool, c.time AS t_api, a.rkey
          FROM a JOIN _kt_res c ON c.bucket = a.bucket AND c.rkey = a.rkey AND c.source <> 'agent'
          WHERE c.time BETWEEN a.time - INTERVAL {skew_s} SECOND
                           AND a.time + INTERVAL {window_s} SECOND
        )
        SELECT 'agent', agent_id, 'credential', credential_id, 'USES',
               '{TIMING_REASON} within {window_s} s by API calls with this credential '
                 || 'on the same target (time and target correlation)', 'inferred',
               list_sort(list_distinct(flatten(
                 min_by([tool_event, api_event], t_tool, {EVIDENCE_CAP // 2})))),
               count(DISTINCT tool_event) + count(DISTINCT api_event), min(t_tool), max(t_api),
               to_json({{'matched_calls': count(DISTINCT tool_event),
                         'targets': list(DISTINCT rkey ORDER BY rkey)[1:20]}})
        FROM p GROUP BY agent_id, credential_id"""
    )
