"""Policy matching for the potential blast radius: globs, action names, Vault path rules.

What is evaluated, and what is not (docs/blast-radius.md, "Potential blast radius"):
AWS statements are read as Allow/Deny with ``*``/``?`` wildcards on actions
(case-insensitive) and resources (case-sensitive), ``NotAction``/``NotResource`` as
complements, explicit Deny over Allow. Conditions, policy variables, SCPs, permission
boundaries, session policies and resource policies are not evaluated. Vault rules are
chosen the way Vault does (the most specific matching path wins; ``deny`` wins on that
path); parameter constraints are not evaluated.

CloudTrail names some calls differently from IAM (``ListObjects`` is authorised by
``s3:ListBucket``; Lambda event names carry an API version); :data:`EVENT_TO_IAM` and
:func:`iam_action_sql` translate the known cases, and :data:`NO_PERMISSION` lists calls
that need no grant.
"""

from __future__ import annotations

import re

#: CloudTrail ``service:eventName`` -> the IAM action that authorises it, where they differ.
EVENT_TO_IAM = {
    "s3:ListObjects": "s3:ListBucket",
    "s3:ListObjectsV2": "s3:ListBucket",
    "s3:ListObjectVersions": "s3:ListBucketVersions",
    "s3:HeadObject": "s3:GetObject",
    "s3:HeadBucket": "s3:ListBucket",
    "s3:ListBuckets": "s3:ListAllMyBuckets",
    "s3:GetBucketLocation": "s3:GetBucketLocation",
}
#: Calls any authenticated AWS principal may make, and Vault logins (unauthenticated paths).
NO_PERMISSION = ("sts:GetCallerIdentity",)
_VAULT_LOGIN = re.compile(r"^auth/[^/]+(?:/[^/]+)*/login(?:/.*)?$")

#: Escalation-capable IAM actions (Rhino Security Labs / PMapper's lists, the common core).
IAM_WRITE = (
    "iam:PutUserPolicy",
    "iam:PutRolePolicy",
    "iam:PutGroupPolicy",
    "iam:AttachUserPolicy",
    "iam:AttachRolePolicy",
    "iam:AttachGroupPolicy",
    "iam:CreatePolicyVersion",
    "iam:SetDefaultPolicyVersion",
    "iam:CreateAccessKey",
    "iam:CreateLoginProfile",
    "iam:UpdateLoginProfile",
    "iam:CreateUser",
    "iam:AddUserToGroup",
    "iam:UpdateAssumeRolePolicy",
    "iam:PassRole",
)
SECRET_READS = (
    "secretsmanager:GetSecretValue",
    "ssm:GetParameter",
    "ssm:GetParameters",
    "ssm:GetParametersByPath",
    "kms:Decrypt",
)


def glob_like_sql(pattern_expr: str) -> str:
    """SQL turning an IAM glob (``*``, ``?``) into a LIKE pattern for ``like_escape(x, p, '\\')``."""
    return (
        f"replace(replace(replace(replace(replace({pattern_expr}, '\\', '\\\\'), '%', '\\%'), '_', '\\_'),"
        " '*', '%'), '?', '_')"
    )


def iam_action_sql(action_expr: str) -> str:
    """SQL of the IAM action authorising a CloudTrail ``service:eventName`` (API version suffix cut)."""
    base = f"regexp_replace({action_expr}, '(\\d{{8}})(v\\d+)?$', '')"
    cases = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in EVENT_TO_IAM.items())
    return f"(CASE {base} {cases} ELSE {base} END)"


def _glob_re(pattern: str, *, fold: bool) -> re.Pattern[str]:
    rx = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.compile(rx + r"\Z", re.IGNORECASE if fold else 0 | re.DOTALL)


def action_matches(pattern: str, action: str) -> bool:
    return bool(_glob_re(pattern, fold=True).match(action))


def resource_matches(pattern: str, resource: str) -> bool:
    return bool(_glob_re(pattern, fold=False).match(resource))


def statement_allows_action(
    actions: list[str] | None, not_actions: list[str] | None, action: str
) -> bool:
    if actions is not None:
        return any(action_matches(p, action) for p in actions)
    return not any(action_matches(p, action) for p in not_actions or [])


def is_star_resource(resources: list[str] | None, not_resources: list[str] | None) -> bool:
    return (resources is not None and "*" in resources) or (
        not_resources is not None and not resources
    )


# -- Vault ------------------------------------------------------------------------------
def vault_login(path: str) -> bool:
    return bool(_VAULT_LOGIN.match(path))


def vault_path_matches(pattern: str, path: str) -> bool:
    """Vault ACL path match: ``+`` is one segment; a trailing ``*`` is a prefix glob."""
    prefix = pattern.endswith("*")
    body = pattern[:-1] if prefix else pattern
    rx = "[^/]*".join(re.escape(part) for part in body.split("+"))
    return bool(re.compile(rx + (".*" if prefix else "") + r"\Z", re.DOTALL).match(path))


def vault_priority(pattern: str) -> tuple[int, int, int, int, str]:
    """Sort key: the higher, the more specific (Vault's documented priority rules, in order)."""
    first = min([i for i in (pattern.find("+"), pattern.find("*")) if i >= 0], default=len(pattern))
    return (first, 0 if pattern.endswith("*") else 1, -pattern.count("+"), len(pattern), pattern)


#: Vault operation (``events.operation``) -> capabilities that allow it.
VAULT_OP_CAPS = {
    "read": ("read",),
    "list": ("list",),
    "delete": ("delete",),
    "patch": ("patch",),
    "create": ("create", "update"),
    "update": ("update", "create"),
}


def vault_decision(
    rules: list[tuple[str, list[str], str]], path: str, op: str
) -> tuple[str, str | None]:
    """``(allowed|denied-by-policy|no-grant, winning path)`` for one request.

    ``rules`` are ``(path pattern, capabilities, policy name)`` of every policy the token carries.
    """
    hits = [r for r in rules if vault_path_matches(r[0], path)]
    if not hits:
        return "no-grant", None
    best = max(vault_priority(r[0]) for r in hits)
    win = [r for r in hits if vault_priority(r[0]) == best]
    caps = {c for r in win for c in r[1]}
    pattern = win[0][0]
    if "deny" in caps:
        return "denied-by-policy", pattern
    if caps & set(VAULT_OP_CAPS.get(op, (op,))):
        return "allowed", pattern
    return "no-grant", pattern
