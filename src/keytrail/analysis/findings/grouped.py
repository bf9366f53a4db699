"""Group rule hits per rule and identity, with the graph's agents and humans for each group.

Rules that match single events (Sigma rules, keytrail's ``match`` rule files) put their hits
in a table ``(r, event_uid)``. One finding per rule and identity keeps a noisy rule to a
handful of findings: the identity is the IAM role or user behind the call (every session of
one role is one identity, ``_kt_pkey``), else the credential, else the logged actor. The
finding cites up to 25 events, counts all, and names the credentials used (up to 10) and
the agents and humans their chains reach.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keytrail.analysis.findings.context import Context


def group_hits(ctx: Context, table: str) -> list[dict[str, Any]]:
    """One row per (r, subj): creds, n, t0, t1, uids, actions, ips, principal, agents, humans."""
    return ctx.rows(
        f"""WITH pk AS (
             -- the principal key once per distinct caller (a few thousand), not once per hit
             -- (Sigma's AssumeRole rule hits nearly every record: two regular expressions each)
             SELECT actor_uid, _kt_pkey(actor_uid) AS pkey
             FROM (SELECT DISTINCT actor_uid FROM events WHERE actor_uid IS NOT NULL)),
           h AS (
             -- a record with an eventName but no eventSource has no action: its operation
             -- stands for it (a NULL in the list would make the finding fail, not just read badly)
             SELECT h.r, e.event_uid, e.time, coalesce(e.action, e.operation) AS action,
                    e.actor_uid, e.credential_id, e.src_ip,
                    coalesce(pk.pkey, e.credential_id, '(no identity logged)') AS subj
             FROM {table} h JOIN events e USING (event_uid) LEFT JOIN pk USING (actor_uid)),
           g AS (
             SELECT r, subj, list(DISTINCT credential_id ORDER BY credential_id)
                               FILTER (WHERE credential_id IS NOT NULL) AS creds,
                    count(*) AS n, min(time) AS t0, max(time) AS t1,
                    arg_min(event_uid, (time, event_uid), 25) AS uids,
                    list(DISTINCT action ORDER BY action)
                      FILTER (WHERE action IS NOT NULL)[1:10] AS actions,
                    list(DISTINCT src_ip ORDER BY src_ip)
                      FILTER (WHERE src_ip IS NOT NULL)[1:10] AS ips
             FROM h GROUP BY r, subj),
           -- the principal: the actor logged most often; a tie goes to the one seen first (time,
           -- then event id), not to whatever row order the join produced
           a AS (
             SELECT r, subj, actor_uid, count(*) AS n, min((time, event_uid)) AS first
             FROM h WHERE actor_uid IS NOT NULL GROUP BY r, subj, actor_uid),
           p AS (
             SELECT r, subj, arg_min(actor_uid, (-n, first)) AS principal
             FROM a GROUP BY r, subj),
           c AS (SELECT DISTINCT r, subj, credential_id FROM h WHERE credential_id IS NOT NULL)
           SELECT g.*, p.principal, coalesce(len(g.creds), 0) AS n_creds,
                  (SELECT list(DISTINCT a.agent_id ORDER BY a.agent_id)
                   FROM c JOIN _kt_chain_agent a USING (credential_id)
                   WHERE c.r = g.r AND c.subj = g.subj) AS agents,
                  (SELECT list(DISTINCT x.human_id ORDER BY x.human_id)
                   FROM c JOIN _kt_chain_human x USING (credential_id)
                   WHERE c.r = g.r AND c.subj = g.subj) AS humans
           FROM g LEFT JOIN p USING (r, subj) ORDER BY g.r, g.t0, g.subj"""
    )


def who(r: dict[str, Any]) -> str:
    """The identity of a grouped row, as the description names it."""
    creds = list(r["creds"] or [])
    if len(creds) == 1:
        return f"{creds[0]} ({r['principal']})" if r["principal"] else str(creds[0])
    if creds:
        shown = ", ".join(creds[:3]) + (f" and {len(creds) - 3} more" if len(creds) > 3 else "")
        return f"{r['principal'] or r['subj']} with {len(creds)} credentials ({shown})"
    return str(r["principal"] or r["subj"])


def subjects(r: dict[str, Any]) -> list[str]:
    """Credentials (up to 10), principal, agents, humans of a grouped row: the subjects."""
    creds = list(r["creds"] or [])[:10]
    return [*creds, r["principal"] or r["subj"], *(r["agents"] or []), *(r["humans"] or [])]


def contain(r: dict[str, Any]) -> list[str]:
    """Credentials whose containment steps the recommendation lists (up to 5)."""
    return list(r["creds"] or [])[:5]


def reach(r: dict[str, Any]) -> str:
    """`` Its chain reaches agent(s) ..; human(s) ...`` or empty."""
    agents, humans = list(r["agents"] or []), list(r["humans"] or [])
    parts = [
        f"agent(s) {', '.join(agents[:5])}" if agents else "",
        f"human(s) {', '.join(humans[:5])}" if humans else "",
    ]
    return (
        (" Its chain reaches " + "; ".join(p for p in parts if p) + ".") if agents or humans else ""
    )
