"""NHI5:2025 Overprivileged NHI from a policy snapshot: granted admin or IAM write, never used.

Audit logs show exercised privilege only; with an authorization snapshot in the case
(``grants``, docs/formats/policies.md) keytrail can also see what an agent's identity was
*granted*. This rule reports an IAM user or role that an agent's credentials act as
(any credential in an agent's chain, ``_kt_chain_agent``) when the snapshot grants it
``admin`` (``*`` on ``*``) or ``iam-write`` (privilege-escalation actions, ``sts:AssumeRole``
on ``*``; the flags of :mod:`keytrail.analysis.potential`) and no event in the case by any
credential acting as it used such an action successfully (a permission change, an
escalation action, or an ``AssumeRole``). The evidence is a sample of the agent's events
as that identity: the identity at work without the privilege. Nothing is emitted without
a snapshot. Statement matching has the potential blast radius's limits (no conditions,
SCPs or boundaries).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keytrail.analysis import classify
from keytrail.analysis import potential_match as pm
from keytrail.analysis.findings.context import Draft
from keytrail.analysis.potential import aws_flags

if TYPE_CHECKING:
    from keytrail.analysis.findings.context import Context

RULE = "unused-privilege"
_FLAGS = ("admin", "iam-write")


def run(ctx: Context) -> None:
    if not ctx.scalar("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'grants'"):
        return
    grants = ctx.rows("""SELECT account || ':' || principal_kind || '/' || principal_name AS pkey, principal_arn,
                                policy_name, policy_arn, attachment, via_group, effect, actions, not_actions,
                                resources, not_resources, file_id, record_no, statement_no
                         FROM grants WHERE source = 'aws-iam' AND effect = 'Allow'
                           AND principal_kind IN ('user', 'role')""")
    flagged: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for g in grants:
        for flag in aws_flags(g):
            if flag in _FLAGS:
                flagged.setdefault(str(g["pkey"]), []).append((flag, g))
    if not flagged:
        return
    keys = sorted(flagged)  # from the snapshot (hostile input): bound as a parameter, never spliced
    escalation = ", ".join(f"'{a}'" for a in (*pm.IAM_WRITE, "sts:AssumeRole"))
    rows = ctx.rows(
        f"""
      WITH ev AS (
        SELECT _kt_pkey(e.actor_uid) AS pkey, e.event_uid, e.time, e.credential_id,
               e.credential_id IN (SELECT credential_id FROM _kt_chain_agent) AS by_agent,
               ({classify.PERMISSION} OR e.action IN ({escalation})) AND {classify.SUCCESS} AS privileged
        FROM events e WHERE e.source = 'cloudtrail' AND e.actor_uid LIKE 'arn:%')
      SELECT ev.pkey, bool_or(privileged) AS used, count(*) FILTER (WHERE by_agent) AS n,
             arg_min(event_uid, time, 5) FILTER (WHERE by_agent) AS uids,
             min(time) FILTER (WHERE by_agent) AS t0, max(time) FILTER (WHERE by_agent) AS t1,
             list(DISTINCT credential_id ORDER BY credential_id) FILTER (WHERE by_agent) AS creds
      FROM ev WHERE list_contains(?::VARCHAR[], ev.pkey) GROUP BY ev.pkey
      HAVING count(*) FILTER (WHERE by_agent) > 0""",
        [keys],
    )
    agents_of: dict[str, list[str]] = {}
    for a in ctx.rows(
        """SELECT DISTINCT _kt_pkey(e.actor_uid) AS pkey, ca.agent_id
                          FROM (SELECT DISTINCT credential_id, actor_uid FROM events
                                WHERE source = 'cloudtrail' AND actor_uid LIKE 'arn:%') e
                          JOIN _kt_chain_agent ca ON ca.credential_id = e.credential_id
                          WHERE list_contains(?::VARCHAR[], _kt_pkey(e.actor_uid)) ORDER BY 1, 2""",
        [keys],
    ):
        agents_of.setdefault(a["pkey"], []).append(a["agent_id"])
    for r in rows:
        if r["used"]:
            continue
        stmts = flagged[r["pkey"]]
        arn = next((str(g["principal_arn"]) for _, g in stmts if g["principal_arn"]), r["pkey"])
        flags = sorted({f for f, _ in stmts})
        grants_text = "; ".join(
            f"{f}: {', '.join(g['actions'] or [f'NOT {a}' for a in g['not_actions'] or []])} via "
            f"{g['policy_name']} ({g['attachment']})"
            for f, g in stmts[:6]
        )
        agents, creds = agents_of.get(r["pkey"], []), list(r["creds"] or [])
        ctx.add(
            Draft(
                RULE,
                [arn, *agents, *creds],
                list(r["uids"] or []),
                f"{arn}, the identity of agent(s) {', '.join(agents)} (credentials {', '.join(creds[:5])}"
                f"{' ...' if len(creds) > 5 else ''}), is granted {' and '.join(flags)} by the policy snapshot "
                f"({grants_text}) but no event in the case used a permission-changing, escalation or AssumeRole "
                f"action as it ({r['n']} events by the agent's credentials).",
                "A stolen or misled agent credential can use every granted privilege, not only the ones the agent "
                "needs; unused administrative or IAM-write grants are the easiest least-privilege win.",
                r["t0"],
                r["t1"],
                contain=[],
                count=int(r["n"]),
                advice=f"Remove the unused {' and '.join(flags)} grants from {arn} (statements listed in the details); "
                "keep only the actions the evidence shows it uses (keytrail blast shows the gap).",
                details={
                    "principal": arn,
                    "flags": flags,
                    "agents": agents,
                    "statements": [
                        {
                            "flag": f,
                            "policy": g["policy_name"],
                            "policy_arn": g["policy_arn"],
                            "attachment": g["attachment"],
                            "actions": g["actions"],
                            "not_actions": g["not_actions"],
                            "resources": g["resources"],
                            "file_id": g["file_id"],
                            "record_no": g["record_no"],
                            "statement_no": g["statement_no"],
                        }
                        for f, g in stmts
                    ],
                },
            )
        )
