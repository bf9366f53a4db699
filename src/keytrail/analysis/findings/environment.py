"""NHI8:2025 Environment Isolation: one credential acting in several accounts.

The credential reported is the one that crossed: its own calls were recorded in, or
named resources of, several accounts (a cross-account ``AssumeRole`` is recorded in both
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
    # Per credential: the accounts its own calls were recorded in, plus the accounts owning
    # the resources they named (a cross-account AssumeRole is recorded in both accounts and
    # names the role in the other one). The credential that crossed is the one reported. An
    # event counts once per account: its own account's row is one per event, and a resource's
    # account adds a row only when it is another account (the rows of one event and account are
    # the same row, the event's own passes every test a resource's does). Those few resource
    # rows (2,985 at 1M events) are made distinct per event and account before they join the
    # event's own rows, so a plain count counts each event once per account. A
    # `count(DISTINCT rid) FILTER (WHERE NOT own)` over all rows (before session 12) made
    # DuckDB group every row (903k at 1M) by its row id: a third of the rule's CPU.
    rows = ctx.rows(
        """WITH acts AS (
              SELECT e.source, e.account, e.credential_id, e.event_uid, e.time
              FROM events e
              WHERE e.credential_id IS NOT NULL AND e.account IS NOT NULL AND e.account NOT IN ('', 'root')
                AND e.source IN ('cloudtrail', 'vault')
                -- real 12-digit AWS accounts only (Vault namespaces are compared among themselves)
                AND (e.source = 'vault' OR regexp_matches(e.account, '^[0-9]{12}$'))
              UNION ALL
              SELECT source, account, credential_id, event_uid, time FROM (
                SELECT DISTINCT e.rowid AS rid, r.account, e.source, e.credential_id, e.event_uid,
                       e.time
                FROM event_resources r JOIN events e USING (event_uid)
                WHERE e.source = 'cloudtrail' AND e.credential_id IS NOT NULL
                  AND regexp_matches(coalesce(r.account, ''), '^[0-9]{12}$')
                  AND r.account IS DISTINCT FROM e.account)),
            per AS (
              SELECT credential_id, source, account, arg_min(event_uid, (time, event_uid)) AS uid,
                     min(time) AS t0, max(time) AS t1, count(*) AS n
              FROM acts GROUP BY credential_id, source, account)
            SELECT p.credential_id AS root_id, p.source, list(p.account ORDER BY p.t0, p.account) AS accounts,
                   list(p.uid ORDER BY p.t0) AS uids, min(p.t0) AS t0, max(p.t1) AS t1, sum(p.n) AS n,
                   (SELECT list(child ORDER BY child) FROM _kt_minted m WHERE m.parent = p.credential_id) AS creds
            FROM per p
            -- NHI8 is about non-human identities: a person's session (principal classifier) is not
            WHERE p.credential_id NOT IN (SELECT credential_id FROM _kt_person
                                          WHERE subject_kind = 'credential')
            GROUP BY p.credential_id, p.source HAVING count(*) >= ?""",
        [cfg.min_accounts],
    )
    for r in rows:
        accounts = r["accounts"]
        envs = sorted({labels.get(a, a) for a in accounts})
        if len(envs) < cfg.min_accounts and labels:
            continue  # every account is in one labelled environment
        level = None
        if (
            labels
            and any(e.lower() in prod for e in envs)
            and any(e.lower() not in prod for e in envs)
        ):
            level = max(Level.HIGH, ctx.level("environment-crossing"))
        where = "AWS accounts" if r["source"] == "cloudtrail" else "Vault namespaces"
        shown = ", ".join(f"{a} ({labels[a]})" if a in labels else a for a in accounts)
        creds = r["creds"] or []
        minted = f"; it minted {', '.join(creds[:5])}" if creds else ""
        ctx.add(
            Draft(
                "environment-crossing",
                [r["root_id"], *creds[:10], *accounts],
                r["uids"],
                f"Credential {r['root_id']} acted in {len(accounts)} {where}: {shown}{minted}.",
                "One compromised credential reaches every environment it crosses.",
                r["t0"],
                r["t1"],
                contain=[r["root_id"]],
                count=int(r["n"]),
                level=level,
                advice="Give each environment its own identity and remove cross-account trust not needed.",
                details={"accounts": accounts, "environments": envs},
            )
        )
