"""The containment checklist: what to deactivate, revoke and invalidate, and why.

Built from the credentials in each examined blast radius (D(c)) and from the findings'
recommendations. Each item names its target as logged, says why (with the evidence event),
and gives a command to run. Targets come from logs, so every argument is shell-quoted
(:func:`shlex.quote`): a hostile user name can not turn a suggested command into another one.
"""

from __future__ import annotations

import json
import shlex
from typing import TYPE_CHECKING, Any

from keytrail.analysis.findings.containment import HMAC, vault_aws_key_step

if TYPE_CHECKING:
    from keytrail.store.case import CaseStore

LEVELS_TO_ACT_ON = ("critical", "high")


def _tail(arn: str | None, marker: str) -> str | None:
    """The name after ``marker`` in an ARN (``user/`` -> user name, ``assumed-role/`` -> role name)."""
    if not arn or marker not in arn:
        return None
    rest = arn.split(marker, 1)[1]
    return rest.split("/")[-1] if marker == ":user/" else rest.split("/")[0]


def _revoke_sessions_policy(before: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Deny",
                    "Action": "*",
                    "Resource": "*",
                    "Condition": {"DateLessThan": {"aws:TokenIssueTime": before}},
                }
            ],
        },
        separators=(",", ":"),
    )


def _credential_item(c: dict[str, Any], section: str, revoke_before: str) -> dict[str, Any] | None:
    cid, kind, principal = c["credential_id"], c.get("kind"), c.get("principal_uid")
    why = (
        f"in the blast radius of {section}" if cid != section else "credential under investigation"
    )
    evidence = [c["issued_by_event"]] if c.get("issued_by_event") else []
    q = shlex.quote
    if cid.startswith(HMAC) and kind in ("aws-access-key", "aws-temporary-key"):
        # Vault's AWS engine handed it out and the audit device HMAC'd it: the lease is the handle.
        parent = c.get("parent_credential_id") or ""
        lease = parent if parent and not parent.startswith(HMAC) and "/" in parent else None
        return {
            "category": "Revoke Vault leases",
            "target": lease or cid,
            "why": f"{why}; AWS key {cid}",
            "evidence": evidence,
            "command": f"vault lease revoke {q(lease)}" if lease else None,
            "recommendation": vault_aws_key_step(cid, [lease] if lease else []),
        }
    if kind == "aws-access-key" or (kind is None and cid.startswith("AKIA")):
        user = _tail(principal, ":user/")
        cmd = f"aws iam update-access-key --access-key-id {q(cid)} --status Inactive"
        if user:
            cmd += f" --user-name {q(user)}"
        return {
            "category": "Deactivate AWS access keys",
            "target": cid,
            "why": why,
            "command": cmd,
            "evidence": evidence,
        }
    if kind == "aws-temporary-key" or (kind is None and cid.startswith("ASIA")):
        role = _tail(principal, ":assumed-role/")
        if role:
            cmd = (
                f"aws iam put-role-policy --role-name {q(role)} --policy-name AWSRevokeOlderSessions "
                f"--policy-document {q(_revoke_sessions_policy(revoke_before))}"
            )
        else:
            return {
                "category": "Invalidate AWS sessions",
                "target": principal or cid,
                "why": f"{why}; temporary key {cid}",
                "command": None,
                "evidence": evidence,
                "recommendation": "revoke the issuing identity's sessions (temporary keys cannot be deleted; "
                "they expire)",
            }
        # One item per role: the deny policy ends every session of the role issued before the cutoff.
        sessions = (
            f"{principal.rsplit('/', 1)[0]}/*"
            if principal and principal.count("/") >= 2
            else principal
        )
        return {
            "category": "Invalidate AWS sessions",
            "target": sessions or cid,
            "why": f"{why}; temporary key {cid}",
            "command": cmd,
            "evidence": evidence,
        }
    if kind == "vault-token":
        if cid.startswith("hmac-sha256:"):
            return {
                "category": "Revoke Vault tokens",
                "target": cid,
                "why": why,
                "command": None,
                "evidence": evidence,
                "recommendation": "the audit log holds only an HMAC of this accessor: list accessors with "
                "`vault list auth/token/accessors`, find the one whose "
                "`vault write sys/audit-hash/<device> input=<accessor>` matches, then "
                "`vault token revoke -accessor <accessor>`",
            }
        else:
            cmd = f"vault token revoke -accessor {q(cid)}"
        return {
            "category": "Revoke Vault tokens",
            "target": cid,
            "why": why,
            "command": cmd,
            "evidence": evidence,
        }
    if kind == "vault-lease":
        return {
            "category": "Revoke Vault leases",
            "target": cid,
            "why": why,
            "command": f"vault lease revoke {q(cid)}",
            "evidence": evidence,
        }
    return {
        "category": "Rotate other credentials",
        "target": cid,
        "why": why,
        "command": None,
        "recommendation": "rotate or revoke it in the system that issued it",
        "evidence": evidence,
    }


def checklist(
    store: CaseStore,
    sections: list[dict[str, Any]],
    findings: list[dict[str, Any]],
    revoke_before: str = "",
) -> list[dict[str, Any]]:
    """Checklist items, worst first.

    Each carries ``level``, the worst critical/high finding naming its target (or the
    credential it was minted for); within a level credentials first (by category), then
    agents, then the findings' own recommendations.
    """
    items: dict[tuple[str, str], dict[str, Any]] = {}
    for s in sections:
        for c in s["derived_credentials"]:
            item = _credential_item(
                c, s["credential"], revoke_before or "<time of containment, ISO 8601>"
            )
            if item:
                prev = items.get((item["category"], item["target"]))
                if (
                    prev is not None
                    and item["category"] == "Invalidate AWS sessions"
                    and c["credential_id"] not in prev["why"]
                ):  # another session of the same role
                    prev["why"] += f", {c['credential_id']}"
                    prev["evidence"] = prev["evidence"] + [
                        e for e in item["evidence"] if e not in prev["evidence"]
                    ]
                items.setdefault((item["category"], item["target"]), item)
        for agent in s["agents"]:
            items.setdefault(
                ("Suspend agents", agent),
                {
                    "category": "Suspend agents",
                    "target": agent,
                    "why": f"used credentials in the blast radius of {s['credential']}",
                    "command": None,
                    "recommendation": "disable the agent's runtime and its credential references until reviewed",
                    "evidence": [],
                },
            )
    for f in findings:
        if f.get("level") in LEVELS_TO_ACT_ON:
            target = ", ".join(f.get("subjects") or []) or f.get("rule", "")
            items.setdefault(
                ("Act on findings", f"{f.get('rule')}:{target}"),
                {
                    "category": "Act on findings",
                    "target": target,
                    "why": f"{f.get('level')}: {f.get('title')}",
                    "command": None,
                    "recommendation": f.get("recommendation") or "",
                    "evidence": list(f.get("evidence") or [])[:5],
                },
            )
    order = [
        "Deactivate AWS access keys",
        "Invalidate AWS sessions",
        "Revoke Vault tokens",
        "Revoke Vault leases",
        "Rotate other credentials",
        "Suspend agents",
        "Act on findings",
    ]
    worst = _worst_levels(findings)
    for item in items.values():
        level = item["why"].split(":", 1)[0] if item["category"] == "Act on findings" else None
        names = [item["target"], *item["why"].replace(",", " ").split()]
        item["level"] = level or min(
            (worst[n] for n in names if n in worst), key=_RANK.__getitem__, default=None
        )
    # Worst first: what a critical finding names, then high, then the rest of the blast radius.
    return sorted(
        items.values(),
        key=lambda i: (_RANK.get(i["level"] or "", 2), order.index(i["category"]), i["target"]),
    )


_RANK = {"critical": 0, "high": 1}


def _worst_levels(findings: list[dict[str, Any]]) -> dict[str, str]:
    """The worst critical/high finding level naming each subject (credential, agent, principal)."""
    worst: dict[str, str] = {}
    for f in findings:
        level = f.get("level")
        if level not in LEVELS_TO_ACT_ON:
            continue
        for subject in f.get("subjects") or []:
            if subject not in worst or _RANK[level] < _RANK[worst[subject]]:
                worst[subject] = level
    return worst
