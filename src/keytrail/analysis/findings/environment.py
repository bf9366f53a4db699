"""NHI8:2025 Environment Isolation: one credential chain acting in several accounts.

A chain is a root credential and everything minted from it (role chaining crosses
accounts). Accounts are compared within one source: AWS accounts for CloudTrail,
namespaces for Vault. With ``environments`` labels configured, accounts sharing a
label are one environment, and production mixed with anything else is high.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keytrail.analysis.findings.context import Draft
from keytrail.levels import Level

if TYPE_CHECKING:
    from keytrail.analysis.findings.context import Context


def run(ctx: Context) -> None:
    cfg = ctx.cfg.environment_crossing
    labels = cfg.environments
    prod = {p.lower() for p in cfg.production_labels}
    rows = ctx.rows(
        """WITH acts AS (
              SELECT rt.root_id, e.source, e.account, e.credential_id, e.event_uid, e.time
              FROM events e JOIN _kt_root rt ON rt.credential_id = e.credential_id
              WHERE e.account IS NOT NULL AND e.account NOT IN ('', 'root')
                AND e.source IN ('cloudtrail', 'vault')
              UNION ALL
              SELECT rt.root_id, e.source, r.account, e.credential_id, e.event_uid, e.time
              FROM event_resources r JOIN events e USING (event_uid)
              JOIN _kt_root rt ON rt.credential_id = e.credential_id
              WHERE e.source = 'cloudtrail' AND r.account IS NOT NULL AND r.account <> ''),
            per AS (
              SELECT root_id, source, account, arg_min(event_uid, time) AS uid, min(time) AS t0, max(time) AS t1,
                     count(*) AS n, list(DISTINCT credential_id) AS creds
              FROM acts GROUP BY ALL)
            SELECT root_id, source, list(account ORDER BY t0) AS accounts, list(uid ORDER BY t0) AS uids,
                   min(t0) AS t0, max(t1) AS t1, sum(n) AS n, list_distinct(flatten(list(creds))) AS creds
            FROM per GROUP BY root_id, source HAVING count(*) >= ?""",
        [cfg.min_accounts],
    )
    for r in rows:
        accounts = r["accounts"]
        envs = sorted({labels.get(a, a) for a in accounts})
        if len(envs) < cfg.min_accounts and labels:
            continue  # every account is in one labelled environment
        level = None
        if labels and any(e.lower() in prod for e in envs) and any(e.lower() not in prod for e in envs):
            level = max(Level.HIGH, ctx.level("environment-crossing"))
        where = "AWS accounts" if r["source"] == "cloudtrail" else "Vault namespaces"
        shown = ", ".join(f"{a} ({labels[a]})" if a in labels else a for a in accounts)
        creds = r["creds"]
        ctx.add(Draft(
            "environment-crossing", [r["root_id"], *creds[:10], *accounts], r["uids"],
            f"The credential chain rooted at {r['root_id']} ({len(creds)} credential(s)) acted in "
            f"{len(accounts)} {where}: {shown}.",
            "One compromised credential reaches every environment it crosses.",
            r["t0"], r["t1"], contain=[r["root_id"]], count=int(r["n"]), level=level,
            advice="Give each environment its own identity and remove cross-account trust not needed.",
            details={"accounts": accounts, "environments": envs},
        ))
