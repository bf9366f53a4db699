"""The SQL behind each edge kind of the identity graph (see ``docs/graph.md``).

Each function appends one family of rows to ``links`` from the temp tables that
:func:`keytrail.graph.derive.derive` prepared (``_kt_issue``, ``_kt_mint``,
``_kt_vault_login``). Evidence lists keep the first 100 event uids in time order;
``evidence_count`` keeps the total. Inventory-based edges cite the inventory record
as ``inventory:<file_id>:<record_no>`` before any event uid.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

EVIDENCE_CAP = 100
#: Resource rows per ACTED_ON aggregation partition (bounds the derive's peak memory).
ACTED_ON_PARTITION_ROWS = 250_000

INSERT = (
    "INSERT INTO links (src_kind, src, dst_kind, dst, kind, reason, confidence, evidence, "
    "evidence_count, first_seen, last_seen, attributes) "
)


def and_scope(scope: str) -> str:
    return f" AND ({scope})" if scope else ""


def minted(con: duckdb.DuckDBPyConnection, scope: str = "") -> None:
    """MINTED credential -> credential; copies of one call (``sharedEventID``) count once.

    ``scope`` (here and below): a condition on the group's columns (``dst``, ``credential_id``)
    that limits the edges rebuilt to those of some credentials (:mod:`keytrail.graph.derive_incr`);
    every edge of a credential is built from the same rows either way."""
    con.execute(
        INSERT
        + f"""
        SELECT 'credential', src, 'credential', dst, 'MINTED', first(reason ORDER BY t, reason), confidence,
               -- first occurrences, in issue-time order (list_distinct would lose the order)
               list_filter(flatten(list(evidence ORDER BY t)),
                           lambda x, i: list_position(flatten(list(evidence ORDER BY t)), x) = i)[1:{EVIDENCE_CAP}],
               len(list_distinct(flatten(list(evidence)))), min(t), max(t),
               to_json({{'sources': list(DISTINCT src_source ORDER BY src_source), 'preferred_parent': bool_or(prio = 0),
                         'calls': count(DISTINCT call_id)}})
        FROM _kt_mint WHERE true{and_scope(scope)} GROUP BY src, dst, confidence"""
    )


def authenticates_as(con: duckdb.DuckDBPyConnection, scope: str = "") -> None:
    """AUTHENTICATES_AS credential -> principal, from usage (proven) and issuance."""
    con.execute(
        INSERT
        + f"""
        SELECT 'credential', credential_id, 'principal', actor_uid, 'AUTHENTICATES_AS',
               CASE source WHEN 'cloudtrail' THEN 'CloudTrail userIdentity of events signed with this key'
                           ELSE 'Vault auth identity of requests made with this token' END,
               'proven', list(event_uid ORDER BY time, event_uid)[1:{EVIDENCE_CAP}], count(*), min(time), max(time), NULL
        FROM events
        WHERE credential_id IS NOT NULL AND actor_uid IS NOT NULL AND source IN ('cloudtrail', 'vault')
          {and_scope(scope)}
        GROUP BY credential_id, actor_uid, source"""
    )
    con.execute(
        INSERT
        + f"""
        SELECT 'credential', credential_id, 'principal', principal_uid, 'AUTHENTICATES_AS',
               'issued for this identity: ' || first(reason ORDER BY issued_at, event_uid, reason),
               first(confidence ORDER BY confidence),
               list(DISTINCT event_uid ORDER BY event_uid), count(DISTINCT event_uid), min(issued_at), max(issued_at), NULL
        FROM _kt_issue i
        WHERE principal_uid IS NOT NULL AND NOT EXISTS (
          SELECT 1 FROM links l WHERE l.kind = 'AUTHENTICATES_AS' AND l.src = i.credential_id
                                  AND l.dst = i.principal_uid){and_scope(scope)}
        GROUP BY credential_id, principal_uid"""
    )


def delegated(con: duckdb.DuckDBPyConnection) -> None:
    """DELEGATED human -> agent (and human -> credential when the evidence names no agent)."""
    con.execute(
        INSERT
        + f"""
        SELECT 'human', human_id, 'agent', agent_id, 'DELEGATED',
               'the agent''s log names the user it acted for (enduser.id / user.id / on-behalf-of)', 'proven',
               list(event_uid ORDER BY time, event_uid)[1:{EVIDENCE_CAP}], count(*), min(time), max(time), NULL
        FROM events WHERE source = 'agent' AND human_id IS NOT NULL AND agent_id IS NOT NULL
        GROUP BY human_id, agent_id"""
    )
    # IAM Identity Center: the role session of an AWSReservedSSO_* role is named after the user.
    con.execute(
        INSERT
        + """
        SELECT 'human', regexp_extract(dst, '/([^/]+)$', 1), 'credential', src, 'DELEGATED',
               'IAM Identity Center session: role ' || regexp_extract(dst, 'assumed-role/([^/]+)/', 1)
                 || ' is assumed under the signed-in user''s name', 'strong', evidence, evidence_count,
               first_seen, last_seen, NULL
        FROM links WHERE kind = 'AUTHENTICATES_AS' AND regexp_matches(dst, ':assumed-role/AWSReservedSSO_[^/]+/[^/]+$')
          AND NOT starts_with(reason, 'issued for')"""
    )
    # A person's Vault login (OIDC, userpass, ...) produced the token.
    con.execute(
        INSERT
        + """
        SELECT 'human', human_id, 'credential', credential_id, 'DELEGATED',
               'a person logged in to Vault (' || coalesce(principal_name, mount) || ') and received this token',
               'proven', [event_uid], 1, issued_at, issued_at, NULL
        FROM _kt_vault_login v
        WHERE human_id IS NOT NULL AND EXISTS (
          SELECT 1 FROM principal_classes c
          WHERE c.subject_kind = 'credential' AND c.subject = v.credential_id
            AND c.class = 'person')"""
    )
    # A person's AWS session the classifier names (console, SAML, MFA, sourceIdentity).
    con.execute(
        INSERT
        + """
        SELECT 'human', pc.person, 'credential', pc.subject, 'DELEGATED',
               'a person''s session: ' || pc.reason, pc.confidence, pc.evidence, len(pc.evidence),
               c.first_seen, c.last_seen, NULL
        FROM principal_classes pc JOIN credentials c ON c.credential_id = pc.subject
        WHERE pc.subject_kind = 'credential' AND pc.class = 'person' AND pc.person IS NOT NULL
          AND pc.confidence <> 'inferred' AND list_contains(c.sources, 'cloudtrail')
          AND NOT EXISTS (SELECT 1 FROM links l WHERE l.kind = 'DELEGATED' AND l.dst = pc.subject
                                                  AND l.src = pc.person)"""
    )
    # CloudTrail onBehalfOf / sourceIdentity (and any human_id on a credential-signed event).
    con.execute(
        INSERT
        + f"""
        SELECT 'human', human_id, 'credential', credential_id, 'DELEGATED',
               CASE source WHEN 'cloudtrail' THEN 'CloudTrail onBehalfOf / sourceIdentity on events signed with it'
                           ELSE 'events signed with it name the user' END,
               'strong', list(event_uid ORDER BY time, event_uid)[1:{EVIDENCE_CAP}], count(*), min(time), max(time), NULL
        FROM events WHERE source IN ('cloudtrail', 'vault') AND human_id IS NOT NULL AND credential_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM links l WHERE l.kind = 'DELEGATED' AND l.src = events.human_id
                          AND l.dst = events.credential_id)
        GROUP BY human_id, credential_id, source"""
    )
    # Human -> credential (and everything minted from it) that an agent uses => human -> agent.
    con.execute(
        INSERT
        + f"""
        WITH RECURSIVE d(human_id, credential_id, evidence, conf, why) AS (
          SELECT src, dst, evidence, confidence, reason FROM links
          WHERE kind = 'DELEGATED' AND dst_kind = 'credential'
          UNION
          SELECT d.human_id, m.dst, d.evidence, d.conf, d.why
          FROM d JOIN _kt_mint m ON m.src = d.credential_id
        )
        SELECT 'human', d.human_id, 'agent', u.src, 'DELEGATED',
               'the agent uses credential ' || u.dst || ' (' || u.confidence || ': ' || u.reason || '); '
                 || first(d.why ORDER BY CASE d.conf WHEN 'proven' THEN 0 WHEN 'strong' THEN 1 ELSE 2 END, d.why),
               CASE WHEN bool_and(u.confidence = 'inferred') THEN 'inferred' ELSE 'strong' END,
               list_sort(list_distinct(flatten(list(d.evidence) || list(u.evidence))))[1:{EVIDENCE_CAP}],
               len(list_distinct(flatten(list(d.evidence) || list(u.evidence)))), min(u.first_seen),
               max(u.last_seen), to_json({{'via_credential': u.dst}})
        FROM d JOIN links u ON u.kind = 'USES' AND u.dst = d.credential_id
        GROUP BY d.human_id, u.src, u.dst, u.confidence, u.reason"""
    )


def acted_on(con: duckdb.DuckDBPyConnection, scope: str = "") -> None:
    """ACTED_ON credential -> resource, aggregated (actions with counts, denied, first/last)."""
    # Counts per action, then one JSON object per edge (the (action, count) pairs listed, sorted by
    # action, joined: deterministic, and 15% less CPU per partition than an ordered string_agg,
    # which cost as much as json_group_object, several times cheaper than maps); the
    # evidence is a top-100-by-(time, id) aggregate (min_by).
    # Those aggregates hold their groups in memory, so the edges are aggregated in credential
    # partitions (each edge belongs to exactly one) of about ACTED_ON_PARTITION_ROWS rows: peak
    # memory stays flat as the case grows. The event/resource join is made once, into a temp
    # table (which can spill), and each partition scans it: re-joining per partition cost a
    # join per partition (3M events: 8 joins).
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _kt_acted AS
        SELECT e.credential_id, r.resource_id, coalesce(e.action, '?') AS action,
               e.outcome = 'denied' AS denied, e.time, e.event_uid, r.resource_type, r.account
        FROM events e JOIN event_resources r ON r.event_uid = e.event_uid
        WHERE e.credential_id IS NOT NULL{and_scope(scope)}"""
    )
    row = con.execute("SELECT count(*) FROM _kt_acted").fetchone()
    parts = max(1, int(row[0] if row else 0) // ACTED_ON_PARTITION_ROWS)
    for part in range(parts):
        _acted_on_part(con, f"hash(credential_id) % {parts} = {part}")
    con.execute("DROP TABLE _kt_acted")


def _acted_on_part(con: duckdb.DuckDBPyConnection, partition: str) -> None:
    rows = f"FROM _kt_acted WHERE {partition}"
    con.execute(
        INSERT
        + f"""
        WITH pa AS (
          SELECT credential_id, resource_id, action, count(*) AS n,
                 count(*) FILTER (WHERE denied) AS denied, min(time) AS t0, max(time) AS t1,
                 min(resource_type) AS rtype, min(account) AS account
          {rows} GROUP BY ALL
        ), a AS (
          SELECT credential_id, resource_id,
                 ('{{' || array_to_string(list_transform(list_sort(list((action, n))),
                     lambda x: to_json(x[1]) || ':' || x[2]), ',') || '}}')::JSON AS actions, sum(n) AS n,
                 sum(denied) AS denied, min(t0) AS t0, max(t1) AS t1, min(rtype) AS rtype,
                 min(account) AS account
          FROM pa GROUP BY ALL
        ), ev AS (
          SELECT credential_id, resource_id, min_by(event_uid, (time, event_uid), {EVIDENCE_CAP}) AS ev
          {rows} GROUP BY ALL
        )
        SELECT 'credential', a.credential_id, 'resource', a.resource_id, 'ACTED_ON',
               'events signed with this credential acted on this resource', 'proven', ev.ev, a.n, a.t0, a.t1,
               to_json({{'actions': a.actions, 'denied': a.denied, 'resource_type': a.rtype, 'account': a.account}})
        FROM a JOIN ev ON ev.credential_id = a.credential_id AND ev.resource_id = a.resource_id"""
    )


_ACTOR_KIND = """CASE
  WHEN source = 'vault' THEN 'vault-entity'
  WHEN actor_type = 'IAMUser' OR regexp_matches(actor_uid, '^arn:aws[a-z-]*:iam::\\d+:user/') THEN 'iam-user'
  WHEN actor_type = 'AssumedRole' OR regexp_matches(actor_uid, ':assumed-role/') THEN 'assumed-role'
  WHEN actor_type = 'FederatedUser' OR regexp_matches(actor_uid, ':federated-user/') THEN 'federated-user'
  WHEN actor_type = 'Root' OR regexp_matches(actor_uid, ':root$') THEN 'root'
  WHEN actor_type = 'AWSService' THEN 'aws-service'
  WHEN regexp_matches(actor_uid, ':role/') THEN 'iam-role'
  ELSE lower(coalesce(actor_type, 'unknown')) END"""


def principals(con: duckdb.DuckDBPyConnection) -> None:
    """Identities: IAM users/roles/sessions, Vault entities, agents and humans."""
    con.execute(f"""
        INSERT INTO principals
        WITH actors AS (
          SELECT actor_uid AS id, {_ACTOR_KIND} AS kind, mode(actor_name ORDER BY actor_name) AS name, mode(account ORDER BY account) AS account,
                 min(time) AS t0, max(time) AS t1, count(*) AS n, NULL::JSON AS attrs, 1 AS prio
          FROM events WHERE actor_uid IS NOT NULL AND source IN ('cloudtrail', 'vault')
          GROUP BY actor_uid, source, actor_type
        ), roles AS (
          SELECT 'arn:' || split_part(id, ':', 2) || ':iam::' || split_part(id, ':', 5) || ':role/'
                   || split_part(split_part(id, ':', 6), '/', 2) AS id,
                 'iam-role' AS kind, split_part(split_part(id, ':', 6), '/', 2) AS name, account,
                 t0, t1, n, NULL::JSON AS attrs, 3 AS prio
          FROM actors WHERE kind = 'assumed-role' AND regexp_matches(id, '^arn:aws[a-z-]*:sts::\\d+:assumed-role/')
        ), issued AS (
          SELECT principal_uid AS id,
                 CASE WHEN src_source = 'vault' THEN 'vault-entity'
                      WHEN regexp_matches(principal_uid, ':assumed-role/') THEN 'assumed-role'
                      WHEN regexp_matches(principal_uid, ':federated-user/') THEN 'federated-user'
                      WHEN regexp_matches(principal_uid, ':user/') THEN 'iam-user' ELSE 'unknown' END,
                 principal_name, NULL, min(issued_at), max(issued_at), 0, NULL::JSON, 4
          FROM _kt_issue WHERE principal_uid IS NOT NULL GROUP BY ALL
        ), agents AS (
          SELECT agent_id AS id, 'agent', name, NULL, created, retired, 0,
                 to_json({{'owner': owner, 'purpose': purpose, 'environment': environment,
                          -- RFC 3339 like every other time keytrail writes (to_json gives '2025-09-01 00:00:00')
                          'created': strftime(created, '%Y-%m-%dT%H:%M:%SZ'),
                          'retired': strftime(retired, '%Y-%m-%dT%H:%M:%SZ'),
                          'identities': identities, 'inventory': true}}), 0
          FROM inventory_agents
          UNION ALL
          SELECT agent_id, 'agent', agent_id, NULL, min(time), max(time), count(*),
                 to_json({{'inventory': false}}), 2
          FROM events WHERE agent_id IS NOT NULL GROUP BY agent_id
        ), humans AS (
          SELECT human_id, 'human', human_id, NULL, min(time), max(time), count(*), NULL::JSON, 0
          FROM events WHERE human_id IS NOT NULL GROUP BY human_id
          UNION ALL
          SELECT src, 'human', src, NULL, min(first_seen), max(last_seen), 0, NULL::JSON, 1
          FROM links WHERE kind = 'DELEGATED' GROUP BY src
        ), allp AS (
          SELECT * FROM actors UNION ALL SELECT * FROM roles UNION ALL SELECT * FROM issued
          UNION ALL SELECT * FROM agents UNION ALL SELECT * FROM humans
        ), evs AS (
          SELECT id, sum(n) AS n, min(t0) AS t0, max(t1) AS t1 FROM allp GROUP BY id
        )
        SELECT p.id, first(p.kind ORDER BY p.prio, p.kind),
               first(p.name ORDER BY p.prio, p.name) FILTER (WHERE p.name IS NOT NULL),
               first(p.account ORDER BY p.prio, p.account) FILTER (WHERE p.account IS NOT NULL),
               min(evs.t0), min(evs.t1), min(evs.n),
               first(p.attrs ORDER BY p.prio, p.attrs::VARCHAR) FILTER (WHERE p.attrs IS NOT NULL)
        FROM allp p JOIN evs ON evs.id = p.id
        GROUP BY p.id""")
