"""Potential blast radius: what D(c) was *allowed* to do, from the policy snapshots in the case.

For credential c, D(c) authenticates as principals: IAM users and roles (an STS session
``arn:aws:sts::ACCT:assumed-role/ROLE/SESSION`` is role ROLE of ACCT, matched on account and
name because CloudTrail drops the role's path) and, for Vault tokens, the policies they carry
(``credential_issues.attributes.policies`` and the request's ``auth.policies``). The
``grants`` rows of those principals are the potential blast radius; beside them sit

- flags: ``admin`` (``*`` on ``*``), ``iam-write`` (privilege-escalation actions, or
  ``sts:AssumeRole`` on ``*``), ``secrets`` (secret-reading actions), Vault ``sudo``/``root``/
  ``*`` paths;
- the least-privilege gap: granted action patterns no event of D(c) used;
- observed actions no grant explains (the snapshot is incomplete or from another time), and
  denied calls the snapshot would allow (something not evaluated said no).

The evaluation is a reading of Allow/Deny statements with wildcards (see
:mod:`keytrail.analysis.potential_match` for exactly what is and is not evaluated); the
result carries that caveat in ``caveats``. Event matching is one SQL query over D(c)'s
events (grouped by principal, action and resources); grant lists are small and read once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from keytrail.analysis import potential_match as pm
from keytrail.analysis.lineage import closure_sql
from keytrail.analysis.lookup import resolve_credential
from keytrail.analysis.potential_sql import judge_aws
from keytrail.graph.model import allowed_confidences

if TYPE_CHECKING:
    from keytrail.store.case import CaseStore

MAX_ITEMS = 500
CAVEATS = (
    "Allow/Deny statements read with wildcard matching of actions and resources; explicit Deny wins.",
    (
        "Not evaluated: Condition blocks, policy variables, SCPs, permission boundaries, session policies, "
        "resource-based policies and Vault parameter constraints."
    ),
    "The snapshot shows one moment: grants changed before or after it are not seen.",
)
_ARN = re.compile(r"^arn:aws[a-z-]*:(?:iam|sts)::(\d{12}):(assumed-role|user|role)/(.+)$")
_ROOT_POLICY = "root"


def principal_key(uid: str | None) -> tuple[str, str, str] | None:
    """``(account, user|role, name)`` of an IAM user/role ARN or an STS assumed-role session ARN."""
    m = _ARN.match(uid or "")
    if not m:
        return None
    account, kind, rest = m.groups()
    if kind == "assumed-role":
        return account, "role", rest.split("/", 1)[0]
    return account, kind, rest.rsplit("/", 1)[-1]


@dataclass
class PotentialBlastRadius:
    """The answer of the potential half of ``keytrail blast``; :meth:`as_dict` is its JSON."""

    credential: str
    available: bool
    reason: str | None = None
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    principals: list[dict[str, Any]] = field(default_factory=list)
    flags: list[dict[str, Any]] = field(default_factory=list)
    unused: list[dict[str, Any]] = field(default_factory=list)
    unexplained: list[dict[str, Any]] = field(default_factory=list)
    denied_but_granted: list[dict[str, Any]] = field(default_factory=list)
    #: Full counts of the two lists above (they are cut at ``MAX_ITEMS``, busiest first).
    totals: dict[str, int] = field(
        default_factory=lambda: {"unexplained_groups": 0, "denied_but_granted_groups": 0}
    )
    caveats: list[str] = field(default_factory=lambda: list(CAVEATS))

    def as_dict(self) -> dict[str, Any]:
        return {
            "credential": self.credential,
            "available": self.available,
            "reason": self.reason,
            "snapshots": self.snapshots,
            "principals": self.principals,
            "flags": self.flags,
            "unused": self.unused,
            "unexplained": self.unexplained,
            "denied_but_granted": self.denied_but_granted,
            "totals": self.totals,
            "caveats": self.caveats,
        }


def has_snapshot(store: CaseStore) -> bool:
    """True when the case holds policy statements (older cases have no ``grants`` table)."""
    exists = store.scalar("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'grants'")
    return bool(exists) and bool(store.scalar("SELECT count(*) FROM grants"))


def _grant_dict(g: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "effect",
        "actions",
        "not_actions",
        "resources",
        "not_resources",
        "policy_name",
        "policy_arn",
        "attachment",
        "via_group",
        "statement_no",
        "file_id",
        "record_no",
    )
    out = {k: g[k] for k in keep}
    out["conditions"] = orjson.loads(g["conditions"]) if g["conditions"] else None
    return out


def aws_flags(g: dict[str, Any]) -> list[str]:
    if g["effect"] != "Allow":
        return []
    acts, nacts, res, nres = g["actions"], g["not_actions"], g["resources"], g["not_resources"]
    star = pm.is_star_resource(res, nres)
    out = []
    if star and (
        (acts is not None and ("*" in acts or "*:*" in acts)) or (nacts is not None and not nacts)
    ):
        out.append("admin")
    if any(pm.statement_allows_action(acts, nacts, a) for a in pm.IAM_WRITE) or (
        star and pm.statement_allows_action(acts, nacts, "sts:AssumeRole")
    ):
        out.append("iam-write")
    if any(pm.statement_allows_action(acts, nacts, a) for a in pm.SECRET_READS):
        out.append("secrets")
    return out


def vault_flags(g: dict[str, Any]) -> list[str]:
    caps, path = g["actions"] or [], (g["resources"] or [""])[0]
    if g["effect"] != "Allow":
        return []
    out = []
    if "sudo" in caps:
        out.append("sudo")
    if path in ("*", "+/*", "+*") or (path.endswith("*") and "/" not in path.rstrip("*")):
        out.append("wildcard-path")
    if "read" in caps and ("*" in path or "+" in path) and not path.startswith("cubbyhole/"):
        out.append("secrets")
    return out


def potential_blast_radius(
    store: CaseStore, credential_id: str, *, min_confidence: str = "inferred"
) -> PotentialBlastRadius:
    """What D(c) was allowed to do according to the policy snapshots (docs/blast-radius.md).

    Raises:
        NotFoundError: the credential is not in the case.
    """
    cred = resolve_credential(store, credential_id)["credential_id"]
    if not has_snapshot(store):
        return PotentialBlastRadius(
            cred,
            False,
            "no policy snapshot in this case: ingest `aws iam "
            "get-account-authorization-details` output or Vault policies "
            "(docs/formats/policies.md) to see what the credential was allowed to do",
        )
    params = {"root": cred, "allowed": allowed_confidences(min_confidence)}
    d_sql = closure_sql("SELECT $root AS root")
    snaps = store.query("""SELECT v.file_id, v.path, v.format, count(g.file_id) AS statements
                           FROM evidence v JOIN grants g USING (file_id) GROUP BY ALL ORDER BY v.file_id""")
    uids = _query(
        store,
        d_sql
        + """
      SELECT DISTINCT e.actor_uid AS uid, e.credential_id FROM events e
      WHERE e.source = 'cloudtrail' AND e.credential_id IN (SELECT credential_id FROM clo) AND e.actor_uid LIKE 'arn:%'
      UNION SELECT c.principal_uid, c.credential_id FROM credentials c
      WHERE c.credential_id IN (SELECT credential_id FROM clo) AND c.principal_uid LIKE 'arn:%'""",
        params,
    )
    vault_sets = _query(
        store,
        d_sql
        + """, pol AS (
        SELECT credential_id, attributes->'$.policies' AS p FROM credential_issues
        WHERE credential_id IN (SELECT credential_id FROM clo) AND kind = 'vault-token'
        UNION SELECT credential_id, details->'$.policies' FROM events
        WHERE source = 'vault' AND credential_id IN (SELECT credential_id FROM clo))
      SELECT DISTINCT credential_id, unnest(from_json(p, '["VARCHAR"]')) AS policy FROM pol
      WHERE p IS NOT NULL AND json_type(p) = 'ARRAY'""",
        params,
    )

    # Principals of D(c), each with the credentials that act as it.
    keys: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in uids:
        k = principal_key(r["uid"])
        if k:
            p = keys.setdefault(
                k,
                {
                    "source": "aws-iam",
                    "account": k[0],
                    "kind": k[1],
                    "name": k[2],
                    "observed_as": set(),
                    "credentials": set(),
                },
            )
            p["observed_as"].add(r["uid"])
            p["credentials"].add(r["credential_id"])
    vault_pols: dict[str, set[str]] = {}
    hashed = set()
    for r in vault_sets:
        if str(r["policy"]).startswith("hmac-sha256:"):
            hashed.add(r["policy"])
            continue
        vault_pols.setdefault(r["policy"], set()).add(r["credential_id"])
    # Only the grants of D(c)'s principals: a whole organisation's snapshot stays in DuckDB.
    grants = _query(
        store,
        """SELECT * FROM grants
        WHERE (source = 'aws-iam' AND principal_kind IN ('user', 'role')
               AND list_contains($aws, account || ':' || principal_kind || '/' || principal_name))
           OR (source = 'vault-policy' AND list_contains($vault, principal_name))
        ORDER BY file_id, record_no, statement_no""",
        {"aws": [f"{a}:{k}/{n}" for a, k, n in keys], "vault": sorted(vault_pols)},
    )
    by_key: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for g in grants:
        if g["source"] == "aws-iam" and g["principal_kind"] in ("user", "role"):
            by_key.setdefault((g["account"], g["principal_kind"], g["principal_name"]), []).append(
                g
            )
        elif g["source"] == "vault-policy":
            by_key.setdefault(("vault", "policy", g["principal_name"]), []).append(g)

    out = PotentialBlastRadius(
        cred, True, snapshots=[{**s, "statements": int(s["statements"])} for s in snaps]
    )
    if hashed:
        out.caveats.append(
            f"{len(hashed)} Vault policy name(s) are HMAC'd in the audit log and match no policy."
        )
    principals: list[tuple[tuple[str, str, str], dict[str, Any]]] = sorted(keys.items())
    principals += [
        (
            ("vault", "policy", n),
            {
                "source": "vault-policy",
                "account": None,
                "kind": "vault-policy",
                "name": n,
                "observed_as": {n},
                "credentials": creds,
            },
        )
        for n, creds in sorted(vault_pols.items())
    ]
    aws = judge_aws(store, d_sql, params, MAX_ITEMS)
    usage = aws.usage
    vault_use = _vault_usage(store, d_sql, params, by_key)
    for key, p in principals:
        rows = by_key.get(key, [])
        stmts = [g for g in rows if g["effect"] is not None]
        notes = [
            f"{g['attachment']}: {g['policy_arn'] or g['policy_name']} (not evaluated)"
            for g in rows
            if g["effect"] is None
        ]
        in_snapshot = bool(rows)
        if key[0] == "vault" and key[2] == _ROOT_POLICY:
            in_snapshot = True
            out.flags.append(
                {
                    "flag": "root",
                    "principal": key[2],
                    "policy": "root",
                    "why": "the Vault root policy allows every operation on every path",
                }
            )
        if not in_snapshot:
            notes.append("not in any policy snapshot of the case")
        entry = {
            "source": p["source"],
            "kind": p["kind"],
            "account": p["account"],
            "name": p["name"],
            "observed_as": sorted(p["observed_as"]),
            "credentials": sorted(p["credentials"]),
            "in_snapshot": in_snapshot,
            "allowed": [_grant_dict(g) for g in stmts if g["effect"] == "Allow"][:MAX_ITEMS],
            "denied": [_grant_dict(g) for g in stmts if g["effect"] == "Deny"][:MAX_ITEMS],
            "notes": notes,
        }
        out.principals.append(entry)
        arn = next((g["principal_arn"] for g in rows if g["principal_arn"]), None)
        entry["arn"] = arn
        label = p["name"] if p["source"] == "vault-policy" else (arn or min(p["observed_as"]))
        for g in stmts:
            for flag in vault_flags(g) if g["source"] == "vault-policy" else aws_flags(g):
                out.flags.append(
                    {
                        "flag": flag,
                        "principal": label,
                        "policy": g["policy_name"],
                        "policy_arn": g["policy_arn"],
                        "attachment": g["attachment"],
                        "actions": g["actions"] or g["not_actions"],
                        "resources": g["resources"],
                        "file_id": g["file_id"],
                        "record_no": g["record_no"],
                        "statement_no": g["statement_no"],
                    }
                )
        used = usage.get(key, set()) if key[0] != "vault" else vault_use["used"]
        for g in stmts:
            if g["effect"] != "Allow":
                continue
            pats = (
                g["actions"]
                if g["actions"] is not None
                else [f"NotAction {a}" for a in g["not_actions"] or []]
            )
            if g["source"] == "vault-policy":
                path = (g["resources"] or [""])[0]
                if not any(pm.vault_path_matches(path, u) for u in used):
                    out.unused.append(
                        {
                            "principal": label,
                            "policy": g["policy_name"],
                            "patterns": pats,
                            "resources": g["resources"],
                            "file_id": g["file_id"],
                            "record_no": g["record_no"],
                            "statement_no": g["statement_no"],
                        }
                    )
                continue
            idle = [
                a
                for a in pats
                if not a.startswith("NotAction ") and not any(pm.action_matches(a, u) for u in used)
            ]
            if idle:
                out.unused.append(
                    {
                        "principal": label,
                        "policy": g["policy_name"],
                        "patterns": idle,
                        "resources": g["resources"],
                        "file_id": g["file_id"],
                        "record_no": g["record_no"],
                        "statement_no": g["statement_no"],
                    }
                )
    out.flags.sort(key=lambda f: (f["flag"], f["principal"], str(f.get("policy"))))
    for v in aws.unexplained + aws.denied_but_granted:
        v["why"] = WHY[v["verdict"]]
    out.unexplained, out.denied_but_granted = aws.unexplained, aws.denied_but_granted
    out.totals = {
        "unexplained_groups": aws.unexplained_total,
        "denied_but_granted_groups": aws.denied_total,
    }
    for v in vault_use["verdicts"]:
        if v["verdict"] == "allowed" and v["outcome"] == "denied":
            out.denied_but_granted.append(v)
            out.totals["denied_but_granted_groups"] += 1
        elif v["verdict"] != "allowed" and v["outcome"] == "success":
            out.unexplained.append(v)
            out.totals["unexplained_groups"] += 1
    out.unexplained = out.unexplained[:MAX_ITEMS]
    out.denied_but_granted = out.denied_but_granted[:MAX_ITEMS]
    out.unused = out.unused[:MAX_ITEMS]
    return out


def _query(store: CaseStore, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    return store.query(sql, {k: v for k, v in params.items() if f"${k}" in sql})  # type: ignore[arg-type]


WHY = {
    "allowed": "a statement in the snapshot allows it",
    "principal-not-in-snapshot": "the principal is not in any snapshot: the snapshot is incomplete or older than it",
    "denied-by-policy": "an explicit Deny (or Vault deny) in the snapshot matches it",
    "no-grant": "no statement in the snapshot allows it: the snapshot is incomplete or from another time, "
    "or something not in it (a resource policy, a later grant) allowed it",
}


def _vault_usage(
    store: CaseStore,
    d_sql: str,
    params: dict[str, Any],
    by_key: dict[tuple[str, str, str], list[dict[str, Any]]],
) -> dict[str, Any]:
    """Vault requests of D(c) grouped by (path, operation, token policies), judged by Vault's path rules."""
    rows = _query(
        store,
        d_sql
        + """, pol AS (
        SELECT credential_id, list(DISTINCT x ORDER BY x) AS policies FROM (
          SELECT credential_id, unnest(from_json(attributes->'$.policies', '["VARCHAR"]')) AS x
          FROM credential_issues WHERE kind = 'vault-token' AND json_type(attributes->'$.policies') = 'ARRAY')
        GROUP BY credential_id)
      SELECT e.target AS path, e.operation AS op, e.outcome,
             coalesce(CASE WHEN json_type(e.details->'$.policies') = 'ARRAY'
                           THEN from_json(e.details->'$.policies', '["VARCHAR"]') END, pol.policies, []) AS policies,
             count(*) AS events, min(e.time) AS first_seen, arg_min(e.event_uid, e.time) AS sample
      FROM events e LEFT JOIN pol ON pol.credential_id = e.credential_id
      WHERE e.source = 'vault' AND e.credential_id IN (SELECT credential_id FROM clo) AND e.target IS NOT NULL
      GROUP BY ALL ORDER BY first_seen, path""",
        params,
    )
    used: set[str] = set()
    verdicts = []
    for r in rows:
        path, op, policies = r["path"], r["op"], list(r["policies"])
        if r["outcome"] == "success":
            used.add(path)
        if pm.vault_login(path):
            verdict, rule = "allowed", "login paths need no token"
        elif _ROOT_POLICY in policies:
            verdict, rule = "allowed", "root policy"
        else:
            rules = [
                ((g["resources"] or [""])[0], list(g["actions"] or []), g["principal_name"])
                for n in policies
                for g in by_key.get(("vault", "policy", n), [])
                if g["effect"]
            ]
            if not rules and not any(("vault", "policy", n) in by_key for n in policies):
                verdict, rule = "principal-not-in-snapshot", None
            else:
                verdict, rule = pm.vault_decision(rules, path, op or "")
        verdicts.append(
            {
                "source": "vault-policy",
                "principal": ", ".join(policies) or "-",
                "action": f"vault:{op}",
                "outcome": r["outcome"],
                "resources": [path],
                "events": int(r["events"]),
                "sample_event": r["sample"],
                "verdict": verdict,
                "policies": [rule] if rule else [],
                "why": WHY[verdict],
            }
        )
    return {"used": used, "verdicts": verdicts}
