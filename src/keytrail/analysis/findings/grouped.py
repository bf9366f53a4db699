"""Group rule hits per rule and credential, with the graph's agents and humans for each group.

Rules that match single events (Sigma rules, keytrail's ``match`` rule files) put their hits
in a table ``(r, event_uid)``; one finding per rule and credential (the principal when the
event carries no credential) keeps a noisy rule to one finding per identity, citing up to
25 events and counting the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keytrail.analysis.findings.context import Context


def group_hits(ctx: Context, table: str) -> list[dict[str, Any]]:
    """One row per (r, subject): cred, principal, n, t0, t1, uids, actions, ips, agents, humans."""
    return ctx.rows(
        f"""WITH g AS (
             SELECT h.r, coalesce(e.credential_id, e.actor_uid, '(no identity logged)') AS subj,
                    any_value(e.credential_id) AS cred, mode(e.actor_uid) AS principal, count(*) AS n,
                    min(e.time) AS t0, max(e.time) AS t1, arg_min(e.event_uid, (e.time, e.event_uid), 25) AS uids,
                    list(DISTINCT e.action ORDER BY e.action)[1:10] AS actions,
                    list(DISTINCT e.src_ip ORDER BY e.src_ip) FILTER (WHERE e.src_ip IS NOT NULL)[1:10] AS ips
             FROM {table} h JOIN events e USING (event_uid)
             GROUP BY h.r, subj)
           SELECT g.*,
                  (SELECT list(DISTINCT agent_id ORDER BY agent_id) FROM _kt_chain_agent a
                   WHERE a.credential_id = g.cred) AS agents,
                  (SELECT list(DISTINCT human_id ORDER BY human_id) FROM _kt_chain_human h
                   WHERE h.credential_id = g.cred) AS humans
           FROM g ORDER BY g.r, g.t0, g.subj"""
    )


def subjects(r: dict[str, Any]) -> list[str]:
    """Credential, principal, agents, humans of a grouped row (the finding's subjects)."""
    head = [r["cred"], r["principal"]] if r["cred"] else [r["subj"]]
    return [*head, *(r["agents"] or []), *(r["humans"] or [])]


def reach(r: dict[str, Any]) -> str:
    """`` Its chain reaches agent(s) ..; human(s) ...`` or empty."""
    agents, humans = list(r["agents"] or []), list(r["humans"] or [])
    parts = [f"agent(s) {', '.join(agents[:5])}" if agents else "",
             f"human(s) {', '.join(humans[:5])}" if humans else ""]
    return (" Its chain reaches " + "; ".join(p for p in parts if p) + ".") if agents or humans else ""
