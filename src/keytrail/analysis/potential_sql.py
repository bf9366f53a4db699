"""The AWS half of the potential blast radius in one DuckDB pass: every CloudTrail event of D(c)
judged against the ``grants`` of the identity it acted as.

Events are grouped by (principal, IAM action, outcome, ARN resources) and each group is matched
with the principal's statements (globs turned into LIKE patterns once per statement; ``*``
resources skip the resource test). The judged groups go to a temporary table on one cursor,
from which the successful actions per principal (for the unused-grant comparison) and the two
exception lists (unexplained successes, denied calls the snapshot allows) are read, busiest
first and cut at a limit with their full counts. Python never sees one row per event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keytrail.analysis import potential_match as pm

if TYPE_CHECKING:
    from keytrail.store.case import CaseStore


@dataclass
class AwsJudgement:
    usage: dict[tuple[str, str, str], set[str]] = field(default_factory=dict)
    unexplained: list[dict[str, Any]] = field(default_factory=list)
    denied_but_granted: list[dict[str, Any]] = field(default_factory=list)
    unexplained_total: int = 0
    denied_total: int = 0


def _like(expr: str) -> str:
    return pm.glob_like_sql(expr)


def judged_sql(d_sql: str) -> str:
    """``(acct, pkind, pname, principal, action, outcome, res, events, first_seen, sample, verdict, policies)``."""
    no_perm = ", ".join(f"'{a}'" for a in pm.NO_PERMISSION)
    any_like = (
        "coalesce(list_bool_or(list_transform({pats}, lambda p: like_escape({x}, p, '\\'))), false)"
    )
    act = any_like.format(pats="g.act", x="lower(o.action)")
    nact = any_like.format(pats="g.nact", x="lower(o.action)")
    res_one = (
        f"CASE WHEN g.res IS NOT NULL THEN {any_like.format(pats='g.res', x='x')} "
        f"ELSE NOT {any_like.format(pats='g.nres', x='x')} END"
    )
    return (
        d_sql
        + f""",
      ev AS (
        SELECT e.event_uid, e.actor_uid, e.outcome, e.time, {pm.iam_action_sql("e.action")} AS action,
               regexp_extract(e.actor_uid, '^arn:aws[a-z-]*:(?:iam|sts)::(\\d{{12}}):', 1) AS acct,
               CASE WHEN e.actor_uid LIKE '%:assumed-role/%' OR e.actor_uid LIKE '%:role/%' THEN 'role'
                    WHEN e.actor_uid LIKE '%:user/%' THEN 'user' END AS pkind,
               CASE WHEN e.actor_uid LIKE '%:assumed-role/%'
                    THEN regexp_extract(e.actor_uid, ':assumed-role/([^/]+)', 1)
                    ELSE regexp_extract(e.actor_uid, '/([^/]+)$', 1) END AS pname
        FROM events e WHERE e.source = 'cloudtrail' AND e.credential_id IN (SELECT credential_id FROM clo)
          AND e.actor_uid LIKE 'arn:%' AND e.action IS NOT NULL),
      evr AS (
        SELECT ev.event_uid, min(ev.acct) AS acct, min(ev.pkind) AS pkind, min(ev.pname) AS pname,
               min(ev.actor_uid) AS actor_uid, min(ev.action) AS action,
               min(ev.outcome) AS outcome, min(ev.time) AS time,
               coalesce(list(DISTINCT r.resource_id ORDER BY r.resource_id)
                 FILTER (WHERE starts_with(r.resource_id, 'arn:')), []) AS res
        FROM ev LEFT JOIN event_resources r ON r.event_uid = ev.event_uid GROUP BY ev.event_uid),
      grp AS (
        SELECT acct, pkind, pname, min(actor_uid) AS actor_uid, action, outcome, res, count(*) AS events,
               min(time) AS first_seen, arg_min(event_uid, time) AS sample
        FROM evr WHERE pkind IS NOT NULL GROUP BY acct, pkind, pname, action, outcome, res),
      g AS (
        SELECT account, principal_kind, principal_name, effect, policy_name,
               list_transform(actions, lambda p: lower({_like("p")})) AS act,
               list_transform(not_actions, lambda p: lower({_like("p")})) AS nact,
               CASE WHEN list_contains(resources, '*') THEN NULL
                    ELSE list_transform(resources, lambda p: {_like("p")}) END AS res,
               list_transform(not_resources, lambda p: {_like("p")}) AS nres,
               list_contains(resources, '*') AS res_any
        FROM grants WHERE source = 'aws-iam' AND effect IS NOT NULL AND principal_kind IN ('user', 'role')),
      known AS (SELECT DISTINCT account, principal_kind, principal_name FROM grants WHERE source = 'aws-iam'),
      m AS (
        SELECT o.acct, o.pkind, o.pname, o.action, o.outcome, o.res,
               bool_or(g.effect = 'Allow') AS allow, bool_or(g.effect = 'Deny') AS deny,
               list(DISTINCT g.policy_name ORDER BY g.policy_name) AS policies
        FROM grp o JOIN g ON g.account = o.acct AND g.principal_kind = o.pkind AND g.principal_name = o.pname
        WHERE (CASE WHEN g.act IS NOT NULL THEN {act} ELSE NOT {nact} END)
          AND (g.res_any OR len(o.res) = 0
               OR coalesce(list_bool_or(list_transform(o.res, lambda x: {res_one})), false))
        GROUP BY ALL)
      SELECT o.acct, o.pkind, o.pname, o.actor_uid AS principal, o.action, o.outcome, o.res, o.events,
             o.first_seen, o.sample,
             CASE WHEN o.action IN ({no_perm}) THEN 'allowed'
                  WHEN k.principal_name IS NULL THEN 'principal-not-in-snapshot'
                  WHEN coalesce(m.deny, false) THEN 'denied-by-policy'
                  WHEN coalesce(m.allow, false) THEN 'allowed' ELSE 'no-grant' END AS verdict,
             coalesce(m.policies, []) AS policies
      FROM grp o
      LEFT JOIN m ON m.acct = o.acct AND m.pkind = o.pkind AND m.pname = o.pname AND m.action = o.action
                 AND m.outcome = o.outcome AND m.res = o.res
      LEFT JOIN known k ON k.account = o.acct AND k.principal_kind = o.pkind AND k.principal_name = o.pname"""
    )


_UNEXPLAINED = "verdict <> 'allowed' AND outcome = 'success'"
_DENIED_GRANTED = "verdict = 'allowed' AND outcome = 'denied'"


def judge_aws(store: CaseStore, d_sql: str, params: dict[str, Any], limit: int) -> AwsJudgement:
    """Judge D(c)'s CloudTrail events (``d_sql`` is the closure CTE, ``params`` its parameters)."""
    sql = judged_sql(d_sql)
    cur = store.cursor()
    out = AwsJudgement()
    try:
        cur.execute(
            "CREATE OR REPLACE TEMP TABLE _kt_pot AS " + sql,
            {k: v for k, v in params.items() if f"${k}" in sql},
        )
        for acct, pkind, pname, action in cur.execute(
            "SELECT DISTINCT acct, pkind, pname, action FROM _kt_pot WHERE outcome = 'success'"
        ).fetchall():
            out.usage.setdefault((acct, pkind, pname), set()).add(action)
        for where, target in (
            (_UNEXPLAINED, out.unexplained),
            (_DENIED_GRANTED, out.denied_but_granted),
        ):
            rel = cur.execute(
                f"SELECT * FROM _kt_pot WHERE {where} ORDER BY events DESC, first_seen, action "
                f"LIMIT {int(limit)}"
            )
            names = [d[0] for d in rel.description or []]
            for row in rel.fetchall():
                r = dict(zip(names, row))
                target.append(
                    {
                        "source": "aws-iam",
                        "principal": r["principal"],
                        "action": r["action"],
                        "outcome": r["outcome"],
                        "resources": list(r["res"]),
                        "events": int(r["events"]),
                        "sample_event": r["sample"],
                        "verdict": r["verdict"],
                        "policies": list(r["policies"]),
                    }
                )
        totals = cur.execute(
            f"SELECT count(*) FILTER (WHERE {_UNEXPLAINED}), count(*) FILTER (WHERE "
            f"{_DENIED_GRANTED}) FROM _kt_pot"
        ).fetchone()
        out.unexplained_total, out.denied_total = (
            (int(totals[0]), int(totals[1])) if totals else (0, 0)
        )
        cur.execute("DROP TABLE IF EXISTS _kt_pot")
    finally:
        cur.close()
    return out
