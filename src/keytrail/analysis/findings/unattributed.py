"""ASI03 Identity and Privilege Abuse (repudiation): actions no agent or human can be tied to.

For every event signed by a credential, the chain (the credential and whatever minted
it) is searched for an agent (USES edges, agent ids logged on events) and a human
(DELEGATED edges, ``human_id`` on events, principals of kind human). Runs only when the
case has agent logs or an inventory: without them, "no agent" is a gap in the evidence,
not a finding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keytrail.analysis.findings.context import Draft

if TYPE_CHECKING:
    from keytrail.analysis.findings.context import Context


def run(ctx: Context) -> None:
    if not ctx.has_agent_data:
        return
    cfg = ctx.cfg.unattributed
    for r in ctx.rows(
        """SELECT rt.root_id, count(*) AS n, min(e.time) AS t0, max(e.time) AS t1,
                  arg_min(e.event_uid, (e.time, e.event_uid), 25) AS uids, list(DISTINCT e.credential_id ORDER BY e.credential_id)[1:10] AS creds,
                  list(DISTINCT e.action ORDER BY e.action)[1:10] AS actions
           FROM events e JOIN _kt_root rt ON rt.credential_id = e.credential_id
           WHERE e.agent_id IS NULL AND e.human_id IS NULL
             AND e.credential_id NOT IN (SELECT credential_id FROM _kt_chain_agent)
             AND e.credential_id NOT IN (SELECT credential_id FROM _kt_chain_human)
             -- a call that issued an attributed credential (e.g. Vault's AssumeRole for an agent's
             -- lease) was made for that agent or human
             AND e.event_uid NOT IN (
               SELECT ci.event_uid FROM credential_issues ci
               WHERE ci.credential_id IN (SELECT credential_id FROM _kt_chain_agent)
                  OR ci.credential_id IN (SELECT credential_id FROM _kt_chain_human))
           GROUP BY rt.root_id HAVING count(*) >= ?""",
        [cfg.min_events],
    ):
        ctx.add(
            Draft(
                "unattributed-actions",
                [r["root_id"], *r["creds"]],
                r["uids"],
                f"{r['n']} action(s) signed by the chain rooted at {r['root_id']} "
                f"({', '.join(sorted(r['actions']))}) reach no agent and no human in the evidence.",
                "Nobody can be held to account for these actions, and an intruder's use looks the same.",
                r["t0"],
                r["t1"],
                contain=[r["root_id"]],
                count=int(r["n"]),
                advice="Find who holds this chain; require agents to log the credential they use.",
                details={"actions": sorted(r["actions"])},
            )
        )
    # Agent actions with no delegating human: the agent (logged on the event or reached through
    # the credential chain) has no DELEGATED edge, and the event and chain carry no human id.
    for r in ctx.rows(
        """WITH ev AS (
              SELECT ae.agent_id, e.event_uid, e.time, e.action, e.credential_id FROM _kt_agent_event ae
              JOIN events e USING (event_uid)
              WHERE e.human_id IS NULL
                AND (e.credential_id IS NULL OR e.credential_id NOT IN (SELECT credential_id FROM _kt_chain_human)))
            SELECT agent_id, count(*) AS n, min(time) AS t0, max(time) AS t1, arg_min(event_uid, (time, event_uid), 25) AS uids,
                   list(DISTINCT action ORDER BY action)[1:10] AS actions
            FROM ev WHERE agent_id NOT IN (SELECT dst FROM links WHERE kind = 'DELEGATED' AND src_kind = 'human')
              AND agent_id NOT IN (SELECT agent_id FROM events WHERE human_id IS NOT NULL AND agent_id IS NOT NULL)
            GROUP BY agent_id HAVING count(*) >= ?""",
        [cfg.min_events],
    ):
        ctx.add(
            Draft(
                "agent-actions-without-human",
                [r["agent_id"]],
                r["uids"],
                f"Agent {r['agent_id']} performed {r['n']} action(s) ({', '.join(sorted(r['actions']))}) with no "
                "human on whose behalf it acted anywhere in the evidence.",
                "Autonomous actions with no accountable human cannot be reviewed or disputed.",
                r["t0"],
                r["t1"],
                count=int(r["n"]),
                advice="Record the delegating user (enduser.id / user.id, sourceIdentity) on every agent run.",
                details={"actions": sorted(r["actions"])},
            )
        )
