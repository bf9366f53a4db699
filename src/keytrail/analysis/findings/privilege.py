"""NHI5:2025 Overprivileged NHI and NHI4:2025 Insecure Authentication, from what was used.

Logs show exercised privilege, not granted privilege: a credential minting long-term
keys, creating Vault tokens with policies its parent lacks, changing IAM or Vault
policy, or a root / administrator identity at work. What a policy *would* allow is
invisible without an authorization snapshot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keytrail.analysis.findings.context import Draft, glob_sql
from keytrail.levels import Level
from keytrail.store.sqltext import quote_literal

if TYPE_CHECKING:
    from keytrail.analysis.findings.context import Context


#: People acting through their own sessions (a chain that reaches a human and no agent, or a
#: credential or, for calls without one, an identity the principal classifier says a person holds)
#: are not NHI findings here; root is reported whoever uses it.
_HUMAN_ONLY = """((e.credential_id IN (SELECT credential_id FROM _kt_chain_human)
                   AND e.credential_id NOT IN (SELECT credential_id FROM _kt_chain_agent))
                  OR e.credential_id IN (SELECT credential_id FROM _kt_person
                                         WHERE subject_kind = 'credential')
                  OR (e.credential_id IS NULL AND e.actor_uid IN (
                        SELECT credential_id FROM _kt_person WHERE subject_kind = 'principal')))"""


def _lower(level: Level) -> Level:
    return Level(max(0, int(level) - 1))


def run(ctx: Context) -> None:
    cfg = ctx.cfg.privilege
    # One finding per creator. A key is often recorded twice: the CreateAccessKey call that made
    # it and the Vault AWS-engine lease that handed it out. The creator is the CreateAccessKey
    # caller when that event is in the case; the lease is named as how the key was delivered.
    for r in ctx.rows(
        """WITH iss AS (
              SELECT ci.credential_id, ci.parent_credential_id AS parent, ci.principal_uid, ci.event_uid,
                     ci.issued_at, coalesce(e.action = 'iam:CreateAccessKey', FALSE) AS created
              FROM credential_issues ci LEFT JOIN events e ON e.event_uid = ci.event_uid
              WHERE ci.kind = 'aws-access-key' AND ci.parent_credential_id IS NOT NULL),
            per_key AS (
              SELECT credential_id, arg_max(parent, (created, issued_at)) AS parent,
                     list(DISTINCT parent ORDER BY parent) FILTER (WHERE NOT created) AS via,
                     list(DISTINCT principal_uid ORDER BY principal_uid) FILTER (WHERE principal_uid IS NOT NULL) AS principals,
                     list(event_uid ORDER BY issued_at) AS uids, min(issued_at) AS t0
              FROM iss GROUP BY credential_id)
            SELECT parent, list(credential_id ORDER BY t0) AS keys,
                   list_sort(list_distinct(flatten(list(principals)))) AS principals,
                   list_sort(list_distinct(flatten(list(list_filter(via, lambda v: v <> parent))))) AS via,
                   flatten(list(uids ORDER BY t0)) AS uids, min(t0) AS t0, max(t0) AS t1
            FROM per_key GROUP BY parent"""
    ):
        keys, via = r["keys"], sorted(r["via"] or [])
        delivered = f", handed out as {', '.join(via)}" if via else ""
        ctx.add(
            Draft(
                "long-term-credential-minted",
                [r["parent"], *keys, *(r["principals"] or []), *via],
                r["uids"],
                f"Credential {r['parent']} created {len(keys)} long-term access key(s) ({', '.join(keys)}) for "
                f"{', '.join(r['principals'] or ['an IAM user'])}{delivered}. Creating keys is a persistence "
                "technique and rarely part of a non-human identity's job.",
                "A key created by an intruder survives the revocation of the credential that created it.",
                r["t0"],
                r["t1"],
                contain=[*keys, *via, r["parent"]],
            )
        )
    for r in ctx.rows(
        """WITH t AS (
              SELECT ci.credential_id, ci.parent_credential_id AS parent, ci.event_uid, ci.issued_at,
                     coalesce(try_cast(json_extract_string(ci.attributes, '$.policies[*]') AS VARCHAR[]),
                              json_extract_string(e.raw, '$.response.auth.policies[*]')) AS child_p,
                     -- a null in a hostile log's list must not reach the text (join fails on it)
                     list_filter(json_extract_string(e.raw, '$.auth.policies[*]'),
                                 lambda p: p IS NOT NULL) AS parent_p
              FROM credential_issues ci JOIN events e ON e.event_uid = ci.event_uid
              WHERE ci.kind = 'vault-token' AND ci.parent_credential_id IS NOT NULL)
            SELECT *, list_filter(child_p, lambda p: p <> 'default' AND NOT list_contains(parent_p, p)) AS extra
            FROM t WHERE parent_p IS NOT NULL AND NOT list_contains(parent_p, 'root')
              AND len(list_filter(child_p, lambda p: p <> 'default' AND NOT list_contains(parent_p, p))) > 0"""
    ):
        ctx.add(
            Draft(
                "vault-token-with-other-policies",
                [r["parent"], r["credential_id"]],
                [r["event_uid"]],
                f"Vault token {r['parent']} (policies {', '.join(r['parent_p'])}) created token "
                f"{r['credential_id']} with policies it does not hold itself: {', '.join(r['extra'])}.",
                "A token that mints wider tokens can escalate to anything those policies allow.",
                r["issued_at"],
                r["issued_at"],
                contain=[r["credential_id"], r["parent"]],
                advice="Restrict auth/token/create for this token's policy (allowed_policies on a token role).",
                details={"new_policies": r["extra"]},
            )
        )
    iam = glob_sql("e.action", cfg.iam_change_actions)
    vpath = "regexp_replace(coalesce(e.target, ''), '^vault:', '')"
    vault_change = (
        f"(e.source = 'vault' AND e.operation IN ('create', 'update', 'delete') AND ("
        f"{glob_sql(vpath, cfg.vault_policy_paths)} OR {glob_sql(vpath, ['*/' + p for p in cfg.vault_policy_paths])}))"
    )
    for r in ctx.rows(
        f"""SELECT coalesce(e.credential_id, e.actor_uid) AS subject, min(e.credential_id) AS cred,
                   count(*) AS n, min(e.time) AS t0, max(e.time) AS t1, arg_min(e.event_uid, (e.time, e.event_uid), 25) AS uids,
                   list(DISTINCT e.action ORDER BY e.action) AS actions,
                   bool_or(e.credential_id IN (SELECT credential_id FROM _kt_chain_agent)) AS by_agent
            FROM events e
            WHERE e.outcome IN ('success', 'unknown') AND ({iam} OR {vault_change})
              AND coalesce(e.credential_id, e.actor_uid) IS NOT NULL AND NOT coalesce({_HUMAN_ONLY}, FALSE)
            GROUP BY 1"""
    ):
        who = "an agent's credential" if r["by_agent"] else "a credential no agent is known to hold"
        base = ctx.level("iam-or-policy-change")
        ctx.add(
            Draft(
                "iam-or-policy-change",
                [r["subject"]],
                r["uids"],
                f"{r['subject']} ({who}) made {r['n']} identity or policy change(s): "
                f"{', '.join(sorted(r['actions'])[:10])}.",
                "Identity and policy changes can grant any access, including to the changer itself.",
                r["t0"],
                r["t1"],
                contain=[r["cred"]] if r["cred"] else [],
                count=int(r["n"]),
                level=None if r["by_agent"] else _lower(base),
                advice="Review and revert each change in the evidence; remove iam:* / policy-write rights from NHIs.",
                details={"actions": sorted(r["actions"]), "by_agent": bool(r["by_agent"])},
            )
        )
    admin_name = glob_sql("regexp_extract(pk, '[^/]+$')", cfg.admin_role_patterns)
    pols = list(cfg.admin_vault_policies)
    admin_pol = ", ".join(quote_literal(p) for p in pols) or "NULL"
    # The policy names as JSON strings ("name"), a cheap substring test before parsing raw.
    prefilter = (
        " OR ".join("contains(raw, " + quote_literal('"' + p + '"') + ")" for p in pols) or "FALSE"
    )
    # Classify each distinct actor once (regexes per actor, not per event), then join back.
    for r in ctx.rows(
        f"""WITH actors AS (
              SELECT actor_uid, actor_type, _kt_pkey(actor_uid) AS pk
              FROM (SELECT DISTINCT actor_uid, actor_type FROM events
                    WHERE source = 'cloudtrail' AND actor_uid IS NOT NULL)),
            cls AS (
              SELECT actor_uid, actor_type, CASE
                WHEN actor_type = 'Root' OR regexp_matches(actor_uid, '^arn:aws[a-z-]*:iam::\\d+:root$') THEN 'root'
                WHEN pk LIKE '%:role/%' AND {admin_name} THEN 'admin-role'
                WHEN pk LIKE '%:user/%' AND {admin_name} THEN 'admin-user' END AS how
              FROM actors),
            ev AS (
              SELECT e.credential_id, e.actor_uid, e.event_uid, e.time, c.how FROM events e
              JOIN cls c ON c.actor_uid = e.actor_uid AND c.actor_type IS NOT DISTINCT FROM e.actor_type
              WHERE e.source = 'cloudtrail' AND c.how IS NOT NULL
              UNION ALL
              SELECT credential_id, actor_uid, event_uid, time, 'vault-admin' FROM events
              WHERE source = 'vault' AND ({prefilter})
                AND list_has_any(json_extract_string(raw, '$.auth.policies[*]'), [{admin_pol}]))
            SELECT coalesce(credential_id, actor_uid) AS subject, min(credential_id) AS cred,
                   min(actor_uid) AS actor, how, count(*) AS n, min(time) AS t0, max(time) AS t1,
                   arg_min(event_uid, (time, event_uid), 25) AS uids,
                   bool_or(coalesce({_HUMAN_ONLY}, FALSE)) AS person
            FROM ev e WHERE coalesce(credential_id, actor_uid) IS NOT NULL
              AND (how = 'root' OR NOT coalesce({_HUMAN_ONLY}, FALSE))
            GROUP BY subject, how"""
    ):
        what = {
            "root": "the AWS account root user",
            "vault-admin": f"a Vault token with policy {', '.join(cfg.admin_vault_policies)}",
            "admin-role": "an administrator role",
            "admin-user": "an administrator user",
        }[r["how"]]
        base = ctx.level("admin-or-root-use")
        ctx.add(
            Draft(
                "admin-or-root-use",
                [r["subject"], r["actor"]],
                r["uids"],
                f"{r['subject']} acted as {what} ({r['actor']}) in {r['n']} event(s). "
                + (
                    "A person used the root user; root should be locked away (MFA, no keys) and used "
                    "only for the few tasks that need it."
                    if r["person"]
                    else "Root and administrator identities should never be an NHI's day-to-day credential."
                ),
                "Everything in the account or Vault is reachable from this identity.",
                r["t0"],
                r["t1"],
                contain=[r["cred"]] if r["cred"] else [],
                count=int(r["n"]),
                level=None if r["how"] in ("root", "vault-admin") else _lower(base),
                advice="Use a least-privilege identity for the task; lock root credentials away (MFA, no keys).",
                details={"kind": r["how"]},
            )
        )
