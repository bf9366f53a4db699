"""NHI7:2025 Long-Lived Secrets: Vault tokens without a short TTL, credentials used far longer
than a task needs. (Long-term keys in agents are a rule file now:
``keytrail/data/rules/long-term-key-used-by-agent.toml``.)

Logs give a lower bound only: a key seen for ten days may have existed for years.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keytrail.analysis.findings.context import Draft
from keytrail.levels import Level

if TYPE_CHECKING:
    from keytrail.analysis.findings.context import Context


def run(ctx: Context) -> None:
    cfg = ctx.cfg.long_lived
    max_s = cfg.max_vault_token_ttl_hours * 3600
    # TTL from the issue (expiry - issue time, or a ttl attribute), else the calling token's
    # `auth.token_ttl` logged on its first use (Vault logs it at issue value; 0 = no expiry).
    for r in ctx.rows(
        """WITH iss AS (
              SELECT credential_id, arg_min(event_uid, (issued_at, event_uid)) AS uid,
                     max(coalesce(epoch(expires_at) - epoch(issued_at),
                                  try_cast(attributes->>'ttl' AS DOUBLE),
                                  try_cast(attributes->>'token_ttl' AS DOUBLE))) AS ttl
              FROM credential_issues WHERE kind = 'vault-token' GROUP BY credential_id),
            use AS (
              SELECT credential_id, min(time) AS t0, max(time) AS t1, count(*) AS n,
                     arg_min(event_uid, (time, event_uid)) AS uid,
                     try_cast(json_extract_string(arg_min(raw, time), '$.auth.token_ttl') AS DOUBLE) AS ttl
              FROM events WHERE source = 'vault' AND credential_id IS NOT NULL
                AND (credential_kind = 'vault-token' OR credential_kind IS NULL)
              GROUP BY credential_id)
            SELECT credential_id, coalesce(iss.ttl, use.ttl) AS ttl, [iss.uid, use.uid] AS uids,
                   use.t0, use.t1, coalesce(use.n, 0) AS n
            FROM iss FULL JOIN use USING (credential_id)
            WHERE coalesce(iss.ttl, use.ttl) IS NOT NULL
              AND (coalesce(iss.ttl, use.ttl) = 0 OR coalesce(iss.ttl, use.ttl) > ?)
              -- a person's token (principal classifier) is not an NHI's
              AND credential_id NOT IN (SELECT credential_id FROM _kt_person
                                        WHERE subject_kind = 'credential')""",
        [max_s],
    ):
        ttl = float(r["ttl"])
        what = "no TTL (it never expires)" if ttl == 0 else f"a TTL of {ttl / 3600:g} hours"
        ctx.add(
            Draft(
                "vault-token-long-ttl",
                [r["credential_id"]],
                [u for u in r["uids"] if u],
                f"Vault token {r['credential_id']} has {what}; the limit is "
                f"{cfg.max_vault_token_ttl_hours:g} hours. Used in {r['n']} events.",
                "A stolen long-lived token keeps its policies' access for its whole life.",
                r["t0"],
                r["t1"],
                contain=[r["credential_id"]],
                count=int(r["n"]),
                level=max(Level.HIGH, ctx.level("vault-token-long-ttl")) if ttl == 0 else None,
                advice="Set a short token_ttl / token_max_ttl on the auth role and use periodic renewal instead.",
                details={"ttl_seconds": ttl},
            )
        )
    for r in ctx.rows(
        """SELECT c.credential_id, c.kind, list(DISTINCT ca.agent_id ORDER BY ca.agent_id) AS agents,
                  c.t0, c.t1, c.n, [c.first_uid, c.last_uid] AS uids
           FROM _kt_creds c JOIN _kt_chain_agent ca USING (credential_id)
           WHERE c.n > 0 AND epoch(c.t1) - epoch(c.t0) > ?
           GROUP BY ALL""",
        [cfg.max_active_hours * 3600],
    ):
        hours = (r["t1"] - r["t0"]).total_seconds() / 3600
        ctx.add(
            Draft(
                "credential-active-too-long",
                [r["credential_id"], *r["agents"]],
                r["uids"],
                f"Credential {r['credential_id']} of agent(s) {', '.join(r['agents'])} was used over "
                f"{hours:.0f} hours (first and last use cited), beyond the {cfg.max_active_hours:g}-hour limit "
                "for one task.",
                "The longer a credential lives, the longer a copy of it is useful to an attacker.",
                r["t0"],
                r["t1"],
                contain=[r["credential_id"]],
                count=int(r["n"]),
                advice="Issue credentials per task with a TTL that ends with the task.",
                details={"active_hours": round(hours, 1)},
            )
        )
