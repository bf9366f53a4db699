"""NHI1:2025 Improper Offboarding: retired agents still acting. (Credentials nobody owns and
agents the register does not know are rule files now: ``keytrail/data/rules/orphan-credential.toml``
and ``unregistered-agent.toml``.)

Needs the agent inventory (``--inventory``): without a register, retirement and
ownership cannot be judged from logs, and these rules emit nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keytrail.analysis.findings.context import Draft

if TYPE_CHECKING:
    from keytrail.analysis.findings.context import Context


def run(ctx: Context) -> None:
    if not ctx.has_inventory:
        return
    cfg = ctx.cfg.offboarding
    grace = cfg.grace_minutes * 60
    near = int(cfg.correlation_seconds)
    # The retired agent's own logged actions, plus calls signed by its credentials (with no agent
    # logged) within `correlation_seconds` of them: what the agent did through the cloud APIs.
    for r in ctx.rows(
        f"""WITH post AS (
              SELECT i.agent_id, i.retired, i.owner, e.event_uid, e.time, e.credential_id
              FROM inventory_agents i JOIN events e ON e.agent_id = i.agent_id
              WHERE i.retired IS NOT NULL AND epoch(e.time) > epoch(i.retired) + ?),
            near AS (
              SELECT DISTINCT p.agent_id, c.event_uid, c.time, c.credential_id FROM post p
              JOIN _kt_chain_agent ca ON ca.agent_id = p.agent_id
              JOIN events c ON c.credential_id = ca.credential_id AND c.agent_id IS NULL
               AND c.time BETWEEN p.time - INTERVAL '{near} seconds' AND p.time + INTERVAL '{near} seconds'),
            allev AS (SELECT agent_id, event_uid, time, credential_id FROM post UNION SELECT * FROM near)
            SELECT a.agent_id, any_value(p.retired) AS retired, any_value(p.owner) AS owner,
                   count(*) AS n, min(a.time) AS t0, max(a.time) AS t1, arg_min(a.event_uid, (a.time, a.event_uid), 25) AS uids,
                   list(DISTINCT a.credential_id ORDER BY a.credential_id) FILTER (WHERE a.credential_id IS NOT NULL) AS creds
            FROM allev a JOIN (SELECT DISTINCT agent_id, retired, owner FROM post) p USING (agent_id)
            GROUP BY a.agent_id""",
        [grace],
    ):
        creds = r["creds"] or []
        ctx.add(
            Draft(
                "agent-active-after-retirement",
                [r["agent_id"], *creds],
                r["uids"],
                f"Agent {r['agent_id']} was retired on {r['retired']:%Y-%m-%d %H:%M}Z (inventory) but acted "
                f"{r['n']} times afterwards (its own log, and calls with its credentials within {near} s of it), "
                f"the last at {r['t1']:%Y-%m-%d %H:%M}Z.",
                "A retired agent that still runs holds access nobody is accountable for.",
                r["t0"],
                r["t1"],
                contain=creds,
                count=int(r["n"]),
                advice=f"Stop the agent's runtime and tell its owner ({r['owner'] or 'unknown'}).",
            )
        )
    # Credentials of a retired agent used after retirement. Held only by retired agents: every
    # later use. Also held by an active agent (a shared key nobody rotated at offboarding): only
    # the calls with no agent logged within `correlation_seconds` of the retired agent's own
    # post-retirement actions - the active agent's daily use of the key is not the finding.
    for r in ctx.rows(
        f"""WITH ret AS (
              SELECT DISTINCT ca.credential_id, i.agent_id, i.retired
              FROM inventory_agents i JOIN _kt_chain_agent ca ON ca.agent_id = i.agent_id
              WHERE i.retired IS NOT NULL),
            active AS (
              SELECT x.credential_id, list(DISTINCT x.agent_id ORDER BY x.agent_id) AS agents
              FROM _kt_chain_agent x LEFT JOIN inventory_agents j ON j.agent_id = x.agent_id
              WHERE j.retired IS NULL GROUP BY x.credential_id),
            own AS (
              SELECT r.credential_id, r.agent_id, e.time FROM ret r
              JOIN events e ON e.credential_id = r.credential_id AND e.agent_id = r.agent_id
              WHERE r.credential_id IN (SELECT credential_id FROM active)
                AND epoch(e.time) > epoch(r.retired) + ?),
            used AS (
              SELECT r.credential_id, r.agent_id, e.event_uid, e.time FROM ret r
              JOIN events e ON e.credential_id = r.credential_id
              WHERE r.credential_id NOT IN (SELECT credential_id FROM active)
                AND epoch(e.time) > epoch(r.retired) + ? AND e.agent_id IS DISTINCT FROM r.agent_id
              UNION
              SELECT o.credential_id, o.agent_id, c.event_uid, c.time FROM own o
              JOIN events c ON c.credential_id = o.credential_id AND c.agent_id IS NULL
               AND c.time BETWEEN o.time - INTERVAL '{near} seconds' AND o.time + INTERVAL '{near} seconds')
            SELECT u.agent_id, u.credential_id, any_value(r.retired) AS retired, any_value(a.agents) AS active,
                   count(*) AS n, min(u.time) AS t0, max(u.time) AS t1, arg_min(u.event_uid, (u.time, u.event_uid), 25) AS uids
            FROM used u JOIN ret r USING (credential_id, agent_id) LEFT JOIN active a USING (credential_id)
            GROUP BY u.agent_id, u.credential_id""",
        [grace, grace],
    ):
        active = r["active"] or []
        shared = (
            f" It is also held by active agent(s) {', '.join(active)}, so it was not rotated when "
            f"{r['agent_id']} was retired; only calls within {near} s of {r['agent_id']}'s own "
            "actions are counted."
            if active
            else ""
        )
        ctx.add(
            Draft(
                "credential-used-after-agent-retired",
                [r["credential_id"], r["agent_id"], *active],
                r["uids"],
                f"Credential {r['credential_id']} belongs to agent {r['agent_id']}, retired on "
                f"{r['retired']:%Y-%m-%d %H:%M}Z, and was used {r['n']} times afterwards.{shared}",
                "Credentials that survive their agent are a standing backdoor.",
                r["t0"],
                r["t1"],
                contain=[r["credential_id"]],
                count=int(r["n"]),
                advice=(
                    f"Issue each of {', '.join(active)} its own credential first, then deactivate this one."
                    if active
                    else ""
                ),
            )
        )
