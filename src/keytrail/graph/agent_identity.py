"""One agent, one id: names the logs use for an agent merged onto its inventory id, with evidence.

The same agent is named differently by each source: the inventory's ``id`` (``agt-ledger-1``)
and ``name`` (``ledger-reconciler``), ``gen_ai.agent.id`` / ``gen_ai.agent.name`` on spans
(pydantic-ai writes only the name), OpenInference ``agent.name``, the MCP client's
``clientInfo.name``, a resource's ``service.name``. Left apart they are two agents: the
DELEGATED edges go to one, the USES edge of its credential to the other, and no trace joins
the person to the credential. This module merges them, and only by these documented rules
(``docs/graph.md``), each merge a ``SAME_AGENT`` edge (alias -> agent) with its reason and
evidence:

1. a record naming both ``gen_ai.agent.id`` X and ``gen_ai.agent.name`` Y makes Y an alias of X
   (``proven``: one record states both), when Y names no other agent id;
2. a logged agent id equal to the ``name`` of exactly one inventory agent, and not itself an
   inventory id, is an alias of that inventory id (``strong``: the register says so).

Ambiguous names (two inventory agents with the same name, a name beside two ids) merge
nothing. The merged id is written to ``events.agent_id`` (and ``actor_uid`` when it held the
same value) so every later rule and finding sees one agent; the id as logged stays in
``details.agent_id_logged`` (and in ``raw``), and is where the next derive starts from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

EVIDENCE_CAP = 100
#: The id each agent event logged, before any merge of an earlier derive.
_LOGGED = "coalesce(details->>'agent_id_logged', agent_id)"


_INV_REF = "'inventory:' || coalesce(file_id, 0) || ':' || coalesce(record_no, 0)"
_SOURCES = (
    "string_agg(DISTINCT coalesce(e.id_source, 'agent id'), ', ' "
    "ORDER BY coalesce(e.id_source, 'agent id'))"
)


def merge_agents(con: duckdb.DuckDBPyConnection) -> int:
    """Build ``_kt_agent_alias`` (alias, agent_id, reason, confidence, evidence); apply it.

    Returns how many events it renamed (an incremental derive rebuilds the agent-keyed rows
    when old events change agent id)."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _kt_agent_alias AS
        WITH ev AS (
          SELECT event_uid, time, {_LOGGED} AS logged, actor_name,
                 details->>'agent_id_source' AS id_source
          FROM events WHERE source = 'agent' AND agent_id IS NOT NULL
        ), pair AS (
          -- rule 1: one record names both the agent id and the agent name
          SELECT actor_name AS alias, logged AS agent_id,
                 list(event_uid ORDER BY time, event_uid)[1:{EVIDENCE_CAP}] AS evidence
          FROM ev
          WHERE id_source = 'gen_ai.agent.id' AND actor_name IS NOT NULL AND actor_name <> logged
          GROUP BY ALL
        ), pair1 AS (
          SELECT p.alias, min(p.agent_id) AS agent_id, min(p.evidence) AS evidence
          FROM pair p GROUP BY p.alias HAVING count(DISTINCT p.agent_id) = 1
        ), named AS (
          SELECT alias, agent_id, 'proven' AS confidence,
                 'one record names gen_ai.agent.id ' || agent_id
                   || ' and gen_ai.agent.name ' || alias AS reason,
                 evidence FROM pair1
          WHERE alias IN (SELECT logged FROM ev)
            AND alias NOT IN (SELECT agent_id FROM inventory_agents)
        ), inv AS (
          SELECT name, min(agent_id) AS agent_id, min({_INV_REF}) AS ref
          FROM inventory_agents WHERE name IS NOT NULL AND name <> ''
          GROUP BY name HAVING count(DISTINCT agent_id) = 1
        ), byname AS (
          -- rule 2: a logged id equal to one inventory agent's name
          SELECT e.logged AS alias, inv.agent_id, 'strong' AS confidence,
                 'inventory agent ' || inv.agent_id || ' is named ''' || inv.name
                   || '''; the logs name an agent ''' || e.logged || ''' (' || {_SOURCES} || ')'
                   AS reason,
                 list_prepend(min(inv.ref), list(e.event_uid ORDER BY e.time, e.event_uid)
                                                    [1:{EVIDENCE_CAP - 1}]) AS evidence
          FROM ev e JOIN inv ON inv.name = e.logged
          WHERE e.logged NOT IN (SELECT agent_id FROM inventory_agents)
          GROUP BY e.logged, inv.agent_id, inv.name
        ), direct AS (
          SELECT * FROM byname
          UNION ALL
          SELECT * FROM named WHERE alias NOT IN (SELECT alias FROM byname)
        )
        -- an alias of an id that is itself an alias of an inventory agent: the inventory agent
        SELECT d.alias, coalesce(n.agent_id, d.agent_id) AS agent_id, d.confidence,
               d.reason || coalesce('; ' || n.reason, '') AS reason,
               d.evidence || coalesce(list_filter(n.evidence,
                                                  lambda v: NOT list_contains(d.evidence, v)), [])
                 AS evidence
        FROM direct d LEFT JOIN byname n ON n.alias = d.agent_id""")
    row = con.execute("""
        UPDATE events SET
          agent_id = a.agent_id,
          actor_uid = CASE WHEN events.actor_uid = a.alias THEN a.agent_id
                           ELSE events.actor_uid END,
          details = json_merge_patch(coalesce(events.details, '{}'::JSON),
                                     json_object('agent_id_logged', a.alias))
        FROM _kt_agent_alias a
        WHERE events.source = 'agent' AND events.agent_id IS NOT NULL
          AND coalesce(events.details->>'agent_id_logged', events.agent_id) = a.alias
          AND events.agent_id <> a.agent_id""").fetchone()
    return int(row[0]) if row else 0


def same_agent_links(con: duckdb.DuckDBPyConnection, insert: str) -> None:
    """``SAME_AGENT`` alias -> agent edges, one per merge (``insert``: the links INSERT prefix)."""
    con.execute(
        insert
        + """
        WITH used AS (
          SELECT details->>'agent_id_logged' AS alias, count(*) AS n,
                 min(time) AS t0, max(time) AS t1
          FROM events WHERE source = 'agent' AND details->>'agent_id_logged' IS NOT NULL
          GROUP BY ALL
        )
        SELECT 'agent', a.alias, 'agent', a.agent_id, 'SAME_AGENT', a.reason, a.confidence,
               a.evidence, greatest(coalesce(u.n, 0), len(a.evidence)), u.t0, u.t1,
               to_json({'alias': a.alias, 'events': coalesce(u.n, 0)})
        FROM _kt_agent_alias a LEFT JOIN used u ON u.alias = a.alias"""
    )
