"""``aws iam get-account-authorization-details`` output -> ``grants`` rows.

The snapshot lists users, groups, roles and managed policies with their relations
(``UserDetailList[].GroupList``, ``AttachedManagedPolicies``) and the documents
(inline ``UserPolicyList``/``GroupPolicyList``/``RolePolicyList``, managed
``Policies[].PolicyVersionList[]`` where ``IsDefaultVersion`` is the one in force).
Rows are expanded to the principal that receives the statement, so the analysis is a
join on the principal: a user gets its own inline and managed statements and, with
``attachment`` ``group-inline``/``group-managed`` and ``via_group``, those of its groups.

Policy documents arrive as JSON objects (the CLI decodes them) or as RFC 3986
URL-encoded JSON strings (the raw API, some SDKs); ``Statement``, ``Action``,
``NotAction``, ``Resource`` and ``NotResource`` may each be a single value or a list.
A statement that cannot be read (no valid ``Effect``, neither ``Action`` nor
``NotAction``...) is rejected with the entry it came from; the others still load.
Format reference: ``docs/formats/policies.md``.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from typing import Any

import orjson

_ARN_ACCOUNT = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):")
LISTS = ("UserDetailList", "GroupDetailList", "RoleDetailList", "Policies")

Reject = Callable[[str, int, Any], None]


def account_of(arn: str | None) -> str | None:
    m = _ARN_ACCOUNT.match(arn or "")
    return m.group(1) if m else None


def decode_document(doc: Any) -> tuple[dict[str, Any] | None, str | None]:
    """A policy document as a dict, from an object, JSON text or URL-encoded JSON text."""
    if isinstance(doc, dict):
        return doc, None
    if not isinstance(doc, str) or not doc.strip():
        return (
            None,
            f"policy document is {type(doc).__name__}, expected a JSON object or URL-encoded JSON",
        )
    text = doc.strip()
    if not text.startswith("{"):
        text = urllib.parse.unquote(text)
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        return None, f"policy document is not JSON (after URL-decoding): {e}"
    if not isinstance(parsed, dict):
        return None, "policy document is not a JSON object"
    return parsed, None


def _strings(value: Any, key: str) -> tuple[list[str] | None, str | None]:
    if value is None:
        return None, None
    if isinstance(value, str):
        return [value], None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value), None
    return None, f"'{key}' must be a string or a list of strings"


def statements(doc: dict[str, Any]) -> tuple[list[tuple[int, dict[str, Any]]], list[str]]:
    """``(statement number, normalised statement)`` pairs and the problems of the bad ones."""
    raw = doc.get("Statement")
    items = raw if isinstance(raw, list) else ([raw] if isinstance(raw, dict) else None)
    if items is None:
        return [], ["policy document has no 'Statement' object or list"]
    good: list[tuple[int, dict[str, Any]]] = []
    problems: list[str] = []
    for no, st in enumerate(items, start=1):
        if not isinstance(st, dict):
            problems.append(f"statement {no} is not an object")
            continue
        effect = st.get("Effect")
        if effect not in ("Allow", "Deny"):
            problems.append(f"statement {no}: 'Effect' is {effect!r}, expected 'Allow' or 'Deny'")
            continue
        row: dict[str, Any] = {"effect": effect}
        err = None
        for key, col in (
            ("Action", "actions"),
            ("NotAction", "not_actions"),
            ("Resource", "resources"),
            ("NotResource", "not_resources"),
        ):
            row[col], e = _strings(st.get(key), key)
            err = err or e
        if err is None and (row["actions"] is None) == (row["not_actions"] is None):
            err = "exactly one of 'Action' or 'NotAction' is required"
        if err is None and row["resources"] is None and row["not_resources"] is None:
            err = "an identity policy statement needs 'Resource' or 'NotResource'"
        cond = st.get("Condition")
        if err is None and cond is not None and not isinstance(cond, dict):
            err = "'Condition' must be an object"
        if err:
            problems.append(f"statement {no}: {err}")
            continue
        row["conditions"] = orjson.dumps(cond).decode() if cond else None
        row["statement_no"] = no
        row["raw"] = orjson.dumps(st).decode()
        good.append((no, row))
    return good, problems


def load_snapshot(
    doc: dict[str, Any], reject: Reject
) -> tuple[list[dict[str, Any]], int, list[str]]:
    """``(grants rows, entries read, notes)`` for one authorization-details document."""
    notes: list[str] = []
    if doc.get("IsTruncated") is True:
        notes.append(
            "snapshot is truncated (IsTruncated true): principals and policies on later pages are missing"
        )
    record = 0
    entries: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for key in LISTS:
        items = doc.get(key) or []
        if not isinstance(items, list):
            record += 1
            reject(f"'{key}' is not a list", record, items)
            items = []
        entries[key] = []
        for item in items:
            record += 1
            if isinstance(item, dict):
                entries[key].append((record, item))
            else:
                reject(f"{key} entry is not an object", record, item)

    def doc_rows(document: Any, where: str, rec: int) -> list[dict[str, Any]]:
        parsed, err = decode_document(document)
        if parsed is None:
            reject(f"{where}: {err}", rec, document)
            return []
        good, problems = statements(parsed)
        for p in problems:
            reject(f"{where}: {p}", rec, document)
        return [{**row, "record_no": rec} for _, row in good]

    managed: dict[str, tuple[str, list[dict[str, Any]]]] = {}
    for rec, pol in entries["Policies"]:
        arn, name = pol.get("Arn"), pol.get("PolicyName")
        versions = [v for v in pol.get("PolicyVersionList") or [] if isinstance(v, dict)]
        default = [v for v in versions if v.get("IsDefaultVersion") is True]
        if not isinstance(arn, str) or not default:
            reject(
                f"managed policy {name or arn!r}: no Arn or no default version (IsDefaultVersion)",
                rec,
                pol,
            )
            continue
        managed[arn] = (
            str(name or arn.rsplit("/", 1)[-1]),
            doc_rows(
                default[0].get("Document"),
                f"managed policy {name!r} {default[0].get('VersionId')}",
                rec,
            ),
        )

    used: set[str] = set()
    rows: list[dict[str, Any]] = []

    def attach(base: dict[str, Any], inline_key: str, item: dict[str, Any], rec: int) -> None:
        for pol in item.get(inline_key) or []:
            name = pol.get("PolicyName") if isinstance(pol, dict) else None
            if not isinstance(pol, dict) or not isinstance(name, str):
                reject(f"{base['principal_arn']}: {inline_key} entry without PolicyName", rec, pol)
                continue
            for r in doc_rows(
                pol.get("PolicyDocument"), f"{base['principal_arn']} inline policy {name!r}", rec
            ):
                rows.append({**base, **r, "policy_name": name, "attachment": "inline"})
        for att in item.get("AttachedManagedPolicies") or []:
            arn = att.get("PolicyArn") if isinstance(att, dict) else None
            if not isinstance(arn, str):
                reject(
                    f"{base['principal_arn']}: AttachedManagedPolicies entry without PolicyArn",
                    rec,
                    att,
                )
                continue
            used.add(arn)
            name = str(att.get("PolicyName") or arn.rsplit("/", 1)[-1])
            if arn not in managed:
                rows.append(
                    {
                        **base,
                        "policy_name": name,
                        "policy_arn": arn,
                        "attachment": "missing-document",
                        "record_no": rec,
                        "raw": orjson.dumps(att).decode(),
                    }
                )
                continue
            for r in managed[arn][1]:
                rows.append(
                    {**base, **r, "policy_name": name, "policy_arn": arn, "attachment": "managed"}
                )

    def boundary(base: dict[str, Any], item: dict[str, Any], rec: int) -> None:
        pb = item.get("PermissionsBoundary")
        if isinstance(pb, dict) and pb.get("PermissionsBoundaryArn"):
            arn = str(pb["PermissionsBoundaryArn"])
            rows.append(
                {
                    **base,
                    "policy_name": arn.rsplit("/", 1)[-1],
                    "policy_arn": arn,
                    "attachment": "permissions-boundary",
                    "record_no": rec,
                    "raw": orjson.dumps(pb).decode(),
                }
            )

    def principal(
        kind: str, item: dict[str, Any], name_key: str, rec: int, list_key: str
    ) -> dict[str, Any] | None:
        arn, name = item.get("Arn"), item.get(name_key)
        if not isinstance(arn, str) or not isinstance(name, str) or account_of(arn) is None:
            reject(f"{list_key} entry without a valid IAM Arn and {name_key}", rec, item)
            return None
        return {
            "source": "aws-iam",
            "account": account_of(arn),
            "principal_kind": kind,
            "principal_arn": arn,
            "principal_name": name,
        }

    groups: dict[str, list[dict[str, Any]]] = {}
    for rec, g in entries["GroupDetailList"]:
        base = principal("group", g, "GroupName", rec, "GroupDetailList")
        if base:
            start = len(rows)
            attach(base, "GroupPolicyList", g, rec)
            groups[base["principal_name"]] = rows[start:]
    for rec, u in entries["UserDetailList"]:
        base = principal("user", u, "UserName", rec, "UserDetailList")
        if not base:
            continue
        attach(base, "UserPolicyList", u, rec)
        boundary(base, u, rec)
        for gname in u.get("GroupList") or []:
            if gname not in groups:
                rows.append(
                    {
                        **base,
                        "policy_name": f"group {gname}",
                        "attachment": "missing-document",
                        "via_group": str(gname),
                        "record_no": rec,
                    }
                )
                continue
            for g_row in groups[gname]:
                kind = g_row["attachment"]
                rows.append(
                    {
                        **g_row,
                        **base,
                        "via_group": str(gname),
                        "attachment": kind if kind == "missing-document" else "group-" + kind,
                    }
                )
    for rec, r in entries["RoleDetailList"]:
        base = principal("role", r, "RoleName", rec, "RoleDetailList")
        if base:
            attach(base, "RolePolicyList", r, rec)
            boundary(base, r, rec)
    for arn, (name, stmts) in managed.items():
        if arn not in used:
            rows += [
                {
                    "source": "aws-iam",
                    "account": account_of(arn),
                    **r,
                    "policy_name": name,
                    "policy_arn": arn,
                    "attachment": "unattached",
                }
                for r in stmts
            ]
    return rows, record, notes
