"""Per-call links (``event_links``): the agent tool call that caused a Vault, AWS or MCP call.

A USES edge says an agent holds a credential; with several people using one agent through
one token it cannot say whose request a given Vault read served. The tool call can: its span
names the person (``enduser.id``, inherited from the web request), and its arguments name the
target. Rules (``docs/graph.md``), all set-based SQL:

- ``traceparent``: an MCP request whose ``_meta.traceparent`` names an OTLP tool span was made
  by that tool call (``proven``: the same span id on both sides);
- ``target``: a tool call whose arguments name the path, bucket/key or secret the API or MCP
  call touched (equal, or the call's path ends with the tool's, at least two segments; a KV v2
  path also matches without its ``data/`` segment), the call logged from ``SKEW_S`` before to
  ``WINDOW_S`` after the tool call started. ``strong`` when the call falls inside the tool
  span and its credential is one the agent, and no other agent, USES (proven/strong edges) or one
  minted from such a credential; else
  ``inferred`` (a key several agents share does not single out the tool call);
- ``issued-token``: a login made inside the span of a tool call that caused a call signed with
  the login's token was caused by that tool call too (a token logged in at start-up and shared
  by every request is caused by none).

A candidate that caused another candidate (the tool span that sent the MCP request) gives way
to it. Candidates per effect are ranked: traceparent, then inside the tool span, then an exact
target, then (outside spans only) the nearer tool call; every candidate of the best rank is kept, so
two people's concurrent calls on one target stay ambiguous instead of one being picked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

WINDOW_S = 120
SKEW_S = 5
#: Slack around a tool span's [start, end] for the call to count as made inside it.
WITHIN_S = 1

_RKEY = """rtrim(ltrim(CASE WHEN starts_with(r.resource_id, 'arn:aws:s3:::') THEN r.resource_id[14:]
                           WHEN starts_with(r.resource_id, 's3://') THEN r.resource_id[6:]
                           WHEN starts_with(r.resource_id, 'vault:') THEN r.resource_id[7:]
                           ELSE r.resource_id END, '/'), '/')"""
#: A span's end: its start plus ``details.duration_ms`` (a record without one is a point in time).
_END = """{e}.time + to_microseconds(CAST(
             1000 * coalesce(TRY_CAST({e}.details->>'duration_ms' AS DOUBLE), 0) AS BIGINT))"""
_WITHIN = (
    f"f.time BETWEEN c.time - INTERVAL {WITHIN_S} SECOND AND c.t_end + INTERVAL {WITHIN_S} SECOND"
)
_TOOL = "(e.service = 'tool' OR e.action = 'mcp:tools/call')"
_API = "(e.source IN ('vault', 'cloudtrail') OR e.action = 'mcp:tools/call')"


def caused(con: duckdb.DuckDBPyConnection, effects: str = "") -> None:
    """Rebuild ``event_links`` (runs after USES edges exist: the confidence reads them).

    ``effects``: a table of the ``event_uid`` of the (Vault or CloudTrail) calls whose causes to
    find again; the others keep theirs (:mod:`keytrail.graph.derive_incr`: each call's candidate
    causes are ranked among themselves only). The ``issued-token`` rule is always redone.
    """
    if effects:
        con.execute(
            f"DELETE FROM event_links WHERE rule = 'issued-token' "
            f"OR effect_uid IN (SELECT event_uid FROM {effects})"
        )
    else:
        con.execute("DELETE FROM event_links")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _kt_cause AS
        SELECT e.event_uid, e.time, e.agent_id, e.format, e.trace_id, e.span_id,
               {_END.format(e="e")} AS t_end, {_RKEY} AS rkey
        FROM events e JOIN event_resources r ON r.event_uid = e.event_uid
        WHERE e.source = 'agent' AND {_TOOL} AND e.time IS NOT NULL""")
    if not con.execute("SELECT count(*) FROM _kt_cause").fetchone()[0]:  # type: ignore[index]
        con.execute("DROP TABLE _kt_cause")
        return
    only = f" AND {{e}}.event_uid IN (SELECT event_uid FROM {effects})" if effects else ""
    _effects(con, only)
    _holds(con)
    _by_target(con, only.format(e="f"))
    # A tool span and the MCP request it sent both name the target the MCP server then read:
    # the request (the nearer cause) is kept, the span stays linked to the request.
    con.execute("""
        DELETE FROM event_links WHERE rule = 'target' AND EXISTS (
          SELECT 1 FROM event_links a JOIN event_links b ON b.cause_uid = a.effect_uid
          WHERE a.cause_uid = event_links.cause_uid AND b.effect_uid = event_links.effect_uid)""")
    _logins(con)
    for t in ("_kt_cause", "_kt_effect", "_kt_holds"):
        con.execute(f"DROP TABLE IF EXISTS {t}")


def _effects(con: duckdb.DuckDBPyConnection, only: str = "") -> None:
    """``_kt_effect``: each API/MCP call's target and the keys a tool target may match it by.

    Keys: the target; a KV v2 path without its ``data``/``metadata`` segment; every suffix of
    two or more segments. Only calls whose last segment ends some tool target are expanded
    (a cheap filter: 7.8 s -> 1.2 s on a 200k-event case).
    """
    suffixes = (
        "list_transform(range(1, len(p) - 1), lambda i: "
        "{'key': array_to_string(p[i + 1:], '/'), 'kv': false})"
    )
    kv = (
        "CASE WHEN len(p) > 2 AND p[2] IN ('data', 'metadata') "
        "THEN [{'key': p[1] || '/' || array_to_string(p[3:], '/'), 'kv': true}] ELSE [] END"
    )
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _kt_effect AS
        WITH last AS (SELECT DISTINCT regexp_extract(rkey, '[^/]*$') AS seg FROM _kt_cause),
        r AS (SELECT r.event_uid, {_RKEY} AS rkey FROM event_resources r
              WHERE true{only.format(e="r")}),
        k AS (
          SELECT e.event_uid, e.time, e.credential_id, e.format, r.rkey
          FROM r JOIN events e ON e.event_uid = r.event_uid
          WHERE regexp_extract(r.rkey, '[^/]*$') IN (SELECT seg FROM last)
            AND {_API} AND e.time IS NOT NULL{only.format(e="e")}
        ), parts AS (SELECT *, string_split(rkey, '/') AS p FROM k)
        SELECT event_uid, time, credential_id, format, u.key, u.key = rkey OR u.kv AS exact
        FROM parts, unnest(list_concat([{{'key': rkey, 'kv': true}}], {kv}, {suffixes})) AS t(u)
        WHERE u.key IN (SELECT rkey FROM _kt_cause)""")


def _holds(con: duckdb.DuckDBPyConnection) -> None:
    """``_kt_holds``: credentials an agent holds by a proven/strong USES edge, and their mints."""
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _kt_holds AS
        WITH RECURSIVE h(agent_id, credential_id) AS (
          SELECT src, dst FROM links WHERE kind = 'USES' AND confidence IN ('proven', 'strong')
          UNION
          SELECT h.agent_id, m.dst FROM h JOIN _kt_mint m ON m.src = h.credential_id
        )
        SELECT DISTINCT agent_id, credential_id FROM h""")


def _by_target(con: duckdb.DuckDBPyConnection, only: str = "") -> None:
    """The ``traceparent`` and ``target`` rules, ranked per effect; rank-1 rows are inserted."""
    holds = (
        "EXISTS (SELECT 1 FROM _kt_holds h WHERE h.agent_id = c.agent_id "
        "AND h.credential_id = f.credential_id) "
        "AND NOT EXISTS (SELECT 1 FROM _kt_holds h WHERE h.agent_id <> c.agent_id "
        "AND h.credential_id = f.credential_id)"
    )
    bucket = f"epoch(time)::BIGINT // {WINDOW_S}"
    con.execute(f"""
        INSERT INTO event_links
        WITH tp AS (
          SELECT c.event_uid AS cause, f.event_uid AS effect, 'traceparent' AS rule,
                 'proven' AS confidence, true AS within, true AS exact, NULL AS rkey,
                 c.time AS tc, f.time AS tf
          FROM (SELECT DISTINCT event_uid, time, trace_id, span_id FROM _kt_cause
                WHERE format = 'otlp-traces' AND span_id IS NOT NULL) c
          JOIN events f ON f.trace_id = c.trace_id AND f.span_id = c.span_id
                       AND f.action = 'mcp:tools/call'{only}
        ), c AS (
          SELECT *, {bucket} + d AS bucket FROM _kt_cause, (SELECT unnest([-1, 0, 1]) AS d)
        ), tgt AS (
          SELECT DISTINCT ON (c.event_uid, f.event_uid)
                 c.event_uid AS cause, f.event_uid AS effect, 'target' AS rule,
                 CASE WHEN {_WITHIN} AND {holds} THEN 'strong' ELSE 'inferred' END AS confidence,
                 {_WITHIN} AS within, f.exact, c.rkey, c.time AS tc, f.time AS tf
          FROM c JOIN _kt_effect f
            ON f.key = c.rkey AND epoch(f.time)::BIGINT // {WINDOW_S} = c.bucket
          WHERE f.event_uid <> c.event_uid
            AND f.time BETWEEN c.time - INTERVAL {SKEW_S} SECOND
                           AND c.time + INTERVAL {WINDOW_S} SECOND
            AND NOT (starts_with(f.format, 'mcp') AND starts_with(c.format, 'mcp'))
          ORDER BY c.event_uid, f.event_uid, f.exact DESC
        ), cand AS (
          SELECT * FROM tp UNION ALL SELECT * FROM tgt WHERE effect NOT IN (SELECT effect FROM tp)
        ), ranked AS (
          SELECT *, dense_rank() OVER (
                   PARTITION BY effect
                   ORDER BY rule = 'traceparent' DESC, within DESC, exact DESC,
                            CASE WHEN within THEN 0 ELSE abs(epoch(tf) - epoch(tc)) END) AS rank
          FROM cand
        )
        SELECT cause, effect, 'CAUSED', rule,
               CASE rule
                 WHEN 'traceparent'
                   THEN 'the MCP request carries the tool span''s id (_meta.traceparent)'
                 ELSE 'the tool call''s arguments name ' || rkey
                      || (CASE WHEN exact THEN '' ELSE ' (a suffix of the path called)' END)
                      || '; the call followed '
                      || CASE WHEN within THEN 'inside the tool span'
                              ELSE 'within ' || {WINDOW_S} || ' s' END
                      || CASE WHEN confidence = 'strong'
                              THEN ', signed with a credential only this agent holds' ELSE '' END
               END,
               confidence, rank,
               to_json({{'target': rkey, 'within_span': within,
                         'delay_ms': round((epoch(tf) - epoch(tc)) * 1000, 3)}})
        FROM ranked WHERE rank = 1""")


def _logins(con: duckdb.DuckDBPyConnection) -> None:
    """``issued-token``: a login inside the span of a tool call that caused a use of its token."""
    con.execute(f"""
        INSERT INTO event_links
        WITH uses AS (
          SELECT ci.event_uid AS login, ci.credential_id, el.cause_uid AS cause,
                 min(f.event_uid) AS via,
                 CASE WHEN bool_and(el.confidence IN ('proven', 'strong')) THEN 'strong'
                      ELSE 'inferred' END AS conf
          FROM credential_issues ci
          JOIN events f ON f.credential_id = ci.credential_id AND f.event_uid <> ci.event_uid
          JOIN event_links el ON el.effect_uid = f.event_uid
          GROUP BY ALL
        ), hit AS (
          SELECT u.*, count(*) OVER (PARTITION BY u.login) AS n
          FROM uses u JOIN events l ON l.event_uid = u.login AND l.source = 'vault'
          JOIN events c ON c.event_uid = u.cause
          WHERE l.time BETWEEN c.time AND {_END.format(e="c")}
            AND u.login NOT IN (SELECT effect_uid FROM event_links)
        )
        SELECT cause, login, 'CAUSED', 'issued-token',
               'made inside the tool call''s span, it issued the token ' || credential_id
                 || ' that ' || via || ' (caused by the tool call) used',
               conf, 1, to_json({{'via': via}})
        FROM hit WHERE n = 1""")
