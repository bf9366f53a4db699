"""Secret sprawl (NHI5:2025, ASI03; NIST SP 800-207 tenets 4 and 6).

Many distinct secrets read by one credential chain is harvesting or a credential with far
more reach than its job. (Its sibling ``denied-burst``, permission probing, is a rule file
now: ``keytrail/data/rules/denied-burst.toml``.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keytrail.analysis.findings.context import Draft, glob_sql

if TYPE_CHECKING:
    from keytrail.analysis.findings.context import Context


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
        ctx.add(
            Draft(
                "secret-sprawl",
                [r["root_id"], *r["creds"][:10]],
                r["uids"],
                f"The credential chain rooted at {r['root_id']} read or tried to read {len(secrets)} distinct secrets "
                f"({r['n_denied']} only denied): {', '.join(secrets[:8])}{' ...' if len(secrets) > 8 else ''}.",
                "Every secret read must be assumed exposed and rotated.",
                r["t0"],
                r["t1"],
                contain=[r["root_id"]],
                count=int(r["n"]),
                advice="Rotate every secret listed; narrow the chain's policy to the secrets its task needs.",
                details={"secrets": secrets, "denied_only": int(r["n_denied"])},
            )
        )
