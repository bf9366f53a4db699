"""Reconnaissance and secret sprawl (ASI03; NHI5:2025; NIST SP 800-207 tenets 4 and 6).

A burst of denied calls over several actions is permission probing (enumeration with
a stolen key looks exactly like this). Many distinct secrets read by one credential
chain is harvesting or a credential with far more reach than its job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keytrail.analysis.findings.context import Draft, glob_sql

if TYPE_CHECKING:
    from keytrail.analysis.findings.context import Context


def run(ctx: Context) -> None:
    cfg = ctx.cfg.reconnaissance
    secs = int(cfg.window_minutes * 60)
    for r in ctx.rows(
        f"""WITH d AS (
              SELECT coalesce(credential_id, actor_uid) AS subj, credential_id, event_uid, time, action
              FROM events WHERE outcome = 'denied' AND coalesce(credential_id, actor_uid) IS NOT NULL
                AND time IS NOT NULL),
            w AS (
              SELECT subj, time, count(*) OVER (PARTITION BY subj ORDER BY time
                       RANGE BETWEEN CURRENT ROW AND INTERVAL '{secs} seconds' FOLLOWING) AS n
              FROM d),
            best AS (SELECT subj, arg_max(time, n) AS start_t FROM w GROUP BY subj HAVING max(n) >= ?)
            SELECT b.subj, any_value(d.credential_id) AS cred, count(*) AS n, count(DISTINCT d.action) AS n_actions,
                   list(DISTINCT d.action ORDER BY d.action)[1:15] AS actions, min(d.time) AS t0, max(d.time) AS t1,
                   arg_min(d.event_uid, (d.time, d.event_uid), 25) AS uids
            FROM best b JOIN d ON d.subj = b.subj
             AND d.time BETWEEN b.start_t AND b.start_t + INTERVAL '{secs} seconds'
            GROUP BY b.subj HAVING count(DISTINCT d.action) >= ?""",
        [cfg.min_denied, cfg.min_distinct_actions],
    ):
        ctx.add(Draft(
            "denied-burst", [r["subj"]], r["uids"],
            f"{r['subj']} had {r['n']} denied calls over {r['n_actions']} actions within "
            f"{cfg.window_minutes:g} minutes ({', '.join(sorted(r['actions']))}): permission probing.",
            "Probing maps what a credential can reach; the next allowed call is the one to worry about.",
            r["t0"], r["t1"], contain=[r["cred"]] if r["cred"] else [], count=int(r["n"]),
            advice="Treat the credential as compromised unless its owner explains the calls.",
            details={"actions": sorted(r["actions"]), "window_minutes": cfg.window_minutes},
        ))


def run_sprawl(ctx: Context) -> None:
    cfg = ctx.cfg.secret_sprawl
    acts = glob_sql("e.action", cfg.secret_actions)
    for r in ctx.rows(
        f"""WITH s AS (
              SELECT rt.root_id, coalesce(r.resource_id, e.target) AS secret, e.event_uid, e.time, e.credential_id,
                     e.outcome
              FROM events e JOIN _kt_root rt ON rt.credential_id = e.credential_id
              LEFT JOIN event_resources r ON r.event_uid = e.event_uid
              WHERE {acts} AND e.outcome IN ('success', 'unknown', 'denied')
                AND NOT (e.source = 'vault' AND regexp_matches(
                     regexp_replace(coalesce(e.target, ''), '^vault:', ''), '^(.*/)?(sys|auth|identity|cubbyhole)/'))),
            per AS (SELECT root_id, secret, arg_min(event_uid, (time, event_uid)) AS uid, min(time) AS t0, max(time) AS t1,
                           count(*) AS n, list(DISTINCT credential_id ORDER BY credential_id) AS creds,
                           bool_and(outcome = 'denied') AS denied
                    FROM s WHERE secret IS NOT NULL GROUP BY root_id, secret)
            SELECT root_id, list(secret ORDER BY t0) AS secrets, list(uid ORDER BY t0) AS uids,
                   min(t0) AS t0, max(t1) AS t1, sum(n) AS n, list_sort(list_distinct(flatten(list(creds)))) AS creds,
                   count(*) FILTER (WHERE denied) AS n_denied
            FROM per GROUP BY root_id HAVING count(*) >= ?""",
        [cfg.min_secrets],
    ):
        secrets = r["secrets"]
        ctx.add(Draft(
            "secret-sprawl", [r["root_id"], *r["creds"][:10]], r["uids"],
            f"The credential chain rooted at {r['root_id']} read or tried to read {len(secrets)} distinct secrets "
            f"({r['n_denied']} only denied): {', '.join(secrets[:8])}{' ...' if len(secrets) > 8 else ''}.",
            "Every secret read must be assumed exposed and rotated.",
            r["t0"], r["t1"], contain=[r["root_id"]], count=int(r["n"]),
            advice="Rotate every secret listed; narrow the chain's policy to the secrets its task needs.",
            details={"secrets": secrets, "denied_only": int(r["n_denied"])},
        ))
