"""OCSF 1.1.0 JSON lines for every event in a case: CloudTrail, Vault / OpenBao, agents.

CloudTrail is mapped as AWS Security Lake maps it, split across three OCSF classes by
``eventName`` (``ocsf/examples`` ``mappings/bloblang/AWS/CloudTrail/v1.1.0``): Authentication
(3002) for sign-in and STS credential issuance, Account Change (3001) for IAM user/key/role/policy
lifecycle calls, API Activity (6003) for everything else. ``type_uid`` is ``class_uid * 100 +
activity_id``. Field names are OCSF 1.1.0 (``actor.user.uid`` = ARN, ``actor.user.uid_alt`` =
principal id). Vault and agent events have no agreed mapping; :mod:`keytrail.report.ocsf_sources`
maps them in the same style. Every event is exported: a source without a mapping of its own gets
the generic agent mapping (API Activity, Other), never nothing.

String values under secret keys (:data:`keytrail.redact.SECRET_KEYS`) in request/response data,
and secrets in free text, are masked; absent attributes are omitted rather than written as ``null``
(request and response data stay as logged otherwise).

Set-based: DuckDB builds each JSON line (``to_json`` escapes every value; ``concat_ws`` drops
absent members), Python only writes the lines one Arrow batch at a time. :func:`classify` is the
same mapping in Python, for tests and for callers classifying one event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keytrail.report._ocsf import (
    ACCOUNT_CHANGE,
    API_ACTIVITY,
    AUTHENTICATION,
    OCSF_VERSION,
    header,
    j,
    keys_masked_sql,
    obj,
)
from keytrail.report._sql import mask_sql, quiet_cursor
from keytrail.report.ocsf_sources import (
    agent_doc_sql,
    agent_rows_sql,
    vault_doc_sql,
    vault_rows_sql,
)
from keytrail.store.sqltext import quote_literal as lit

if TYPE_CHECKING:
    from pathlib import Path

    from keytrail.store.case import CaseStore

_LOGON = {
    "ConsoleLogin",
    "ExternalIdPDirectoryLogin",
    "CheckMfa",
    "CredentialChallenge",
    "CredentialVerification",
    "UserAuthentication",
}
#: STS calls that issue temporary credentials: Authentication, activity Other (99).
_TOKEN = {
    "AssumeRole",
    "AssumeRoleWithSAML",
    "AssumeRoleWithWebIdentity",
    "AssumeRoot",
    "GetSessionToken",
    "GetFederationToken",
}

_ACCOUNT_CHANGE_ACTIVITY: dict[str, tuple[int, str]] = {
    "CreateUser": (1, "Create"),
    "CreateAccessKey": (1, "Create"),
    "CreateRole": (1, "Create"),
    "CreateLoginProfile": (1, "Create"),
    "CreateServiceLinkedRole": (1, "Create"),
    "CreateVirtualMFADevice": (1, "Create"),
    "CreateGroup": (1, "Create"),
    "DeleteUser": (6, "Delete"),
    "DeleteAccessKey": (6, "Delete"),
    "DeleteRole": (6, "Delete"),
    "DeleteLoginProfile": (6, "Delete"),
    "DeleteGroup": (6, "Delete"),
    "DeleteVirtualMFADevice": (6, "Delete"),
    "UpdateLoginProfile": (3, "Password Change"),
    "ChangePassword": (3, "Password Change"),
    "EnableMFADevice": (10, "MFA Factor Enable"),
    "ResyncMFADevice": (10, "MFA Factor Enable"),
    "DeactivateMFADevice": (11, "MFA Factor Disable"),
    "AttachUserPolicy": (7, "Attach Policy"),
    "AttachRolePolicy": (7, "Attach Policy"),
    "AttachGroupPolicy": (7, "Attach Policy"),
    "PutUserPolicy": (7, "Attach Policy"),
    "PutRolePolicy": (7, "Attach Policy"),
    "PutGroupPolicy": (7, "Attach Policy"),
    "PutUserPermissionsBoundary": (7, "Attach Policy"),
    "PutRolePermissionsBoundary": (7, "Attach Policy"),
    "DetachUserPolicy": (8, "Detach Policy"),
    "DetachRolePolicy": (8, "Detach Policy"),
    "DetachGroupPolicy": (8, "Detach Policy"),
    "DeleteUserPolicy": (8, "Detach Policy"),
    "DeleteRolePolicy": (8, "Detach Policy"),
    "DeleteGroupPolicy": (8, "Detach Policy"),
    "DeleteUserPermissionsBoundary": (8, "Detach Policy"),
    "DeleteRolePermissionsBoundary": (8, "Detach Policy"),
}
#: Other IAM lifecycle calls that Security Lake files under Account Change with activity Other.
_ACCOUNT_CHANGE_OTHER = {
    "UpdateUser",
    "UpdateRole",
    "UpdateAssumeRolePolicy",
    "AddUserToGroup",
    "RemoveUserFromGroup",
    "TagUser",
    "UntagUser",
    "TagRole",
    "UntagRole",
    "TagInstanceProfile",
    "UntagInstanceProfile",
    "CreateAccountAlias",
    "DeleteAccountAlias",
    "UpdateAccountPasswordPolicy",
    "DeleteAccountPasswordPolicy",
    "UpdateRoleDescription",
    "UpdateServiceSpecificCredential",
    "CreateServiceSpecificCredential",
    "DeleteServiceSpecificCredential",
    "UploadSSHPublicKey",
    "UpdateSSHPublicKey",
    "DeleteSSHPublicKey",
    "UploadSigningCertificate",
    "UpdateSigningCertificate",
    "DeleteSigningCertificate",
}

_API_PREFIX = (
    (
        ("Create", "Run", "Start", "Launch", "Register", "Import", "Allocate", "Issue", "Generate"),
        1,
        "Create",
    ),
    (
        (
            "Get",
            "Describe",
            "List",
            "Head",
            "Lookup",
            "Search",
            "Select",
            "Query",
            "Scan",
            "BatchGet",
            "Decrypt",
            "Download",
            "Filter",
        ),
        2,
        "Read",
    ),
    (
        (
            "Update",
            "Modify",
            "Put",
            "Set",
            "Attach",
            "Associate",
            "Enable",
            "Disable",
            "Tag",
            "Untag",
            "Add",
            "Change",
            "Replace",
            "Reset",
            "Copy",
            "Upload",
            "Restore",
            "Encrypt",
            "Rotate",
        ),
        3,
        "Update",
    ),
    (
        (
            "Delete",
            "Remove",
            "Terminate",
            "Detach",
            "Disassociate",
            "Deregister",
            "Revoke",
            "Release",
            "Cancel",
            "Stop",
            "Purge",
        ),
        4,
        "Delete",
    ),
)


def classify(
    event_name: str, request: dict[str, Any] | None = None
) -> tuple[tuple[int, str, int, str], int, str]:
    """(class, activity_id, activity_name) for a CloudTrail ``eventName``."""
    if event_name in _LOGON:
        return AUTHENTICATION, 1, "Logon"
    if event_name in _TOKEN:
        return AUTHENTICATION, 99, "Other"
    if event_name == "UpdateAccessKey":
        status = str((request or {}).get("status", "")).lower()
        if status == "active":
            return ACCOUNT_CHANGE, 2, "Enable"
        if status == "inactive":
            return ACCOUNT_CHANGE, 5, "Disable"
        return ACCOUNT_CHANGE, 99, "Other"
    if event_name in _ACCOUNT_CHANGE_ACTIVITY:
        activity_id, name = _ACCOUNT_CHANGE_ACTIVITY[event_name]
        return ACCOUNT_CHANGE, activity_id, name
    if event_name in _ACCOUNT_CHANGE_OTHER:
        return ACCOUNT_CHANGE, 99, "Other"
    for prefixes, activity_id, name in _API_PREFIX:
        if event_name.startswith(prefixes):
            return API_ACTIVITY, activity_id, name
    return API_ACTIVITY, 99, "Other"


def classification_sql(name: str, request: str) -> tuple[str, str, str]:
    """SQL for (class_uid, activity_id, activity_name) of ``name`` (eventName), as :func:`classify`."""
    status = f"lower(json_extract_string({request}, '$.requestParameters.status'))"
    parts: list[tuple[str, int, int, str]] = [
        (f"{name} = 'UpdateAccessKey' AND {status} = 'active'", ACCOUNT_CHANGE[0], 2, "Enable"),
        (f"{name} = 'UpdateAccessKey' AND {status} = 'inactive'", ACCOUNT_CHANGE[0], 5, "Disable"),
        (f"{name} = 'UpdateAccessKey'", ACCOUNT_CHANGE[0], 99, "Other"),
    ]

    def among(names: set[str] | dict[str, tuple[int, str]]) -> str:
        return f"{name} IN ({', '.join(lit(n) for n in sorted(names))})"

    parts.append((among(_LOGON), AUTHENTICATION[0], 1, "Logon"))
    parts.append((among(_TOKEN), AUTHENTICATION[0], 99, "Other"))
    for n, (a, an) in sorted(_ACCOUNT_CHANGE_ACTIVITY.items()):
        parts.append((f"{name} = {lit(n)}", ACCOUNT_CHANGE[0], a, an))
    parts.append((among(_ACCOUNT_CHANGE_OTHER), ACCOUNT_CHANGE[0], 99, "Other"))
    for prefixes, act, act_name in _API_PREFIX:
        parts.append(
            (f"regexp_matches({name}, '^({'|'.join(prefixes)})')", API_ACTIVITY[0], act, act_name)
        )
    cls_sql = (
        "CASE "
        + " ".join(f"WHEN {c} THEN {k}" for c, k, _, _ in parts)
        + f" ELSE {API_ACTIVITY[0]} END"
    )
    act_sql = "CASE " + " ".join(f"WHEN {c} THEN {a}" for c, _, a, _ in parts) + " ELSE 99 END"
    name_sql = (
        "CASE " + " ".join(f"WHEN {c} THEN {lit(n)}" for c, _, _, n in parts) + " ELSE 'Other' END"
    )
    return cls_sql, act_sql, name_sql


_IDENT = "json_extract_string(x.raw, '$.userIdentity."


def _raw(path: str) -> str:
    return j(f"json_extract_string(x.raw, '$.{path}')")


def _ident(path: str) -> str:
    return f"{_IDENT}{path}')"


def ocsf_sql() -> str:
    """One row per event of every source: its OCSF object as JSON text, in time order."""
    cls, act, act_name = classification_sql("b.event_name", "b.raw")
    mfa = f"lower({_ident('sessionContext.attributes.mfaAuthenticated')}) = 'true'"
    idp = (
        f"coalesce({_ident('webIdFederationData.federatedProvider')}, {_ident('identityProvider')})"
    )
    doc = obj(
        *header(),
        (
            "metadata",
            obj(
                ("version", j(lit(OCSF_VERSION))),
                ("uid", j("x.source_event_id")),
                ("event_code", _raw("eventType")),
                ("profiles", '\'["cloud","datetime"]\''),
                (
                    "product",
                    obj(
                        ("name", "'\"CloudTrail\"'"),
                        ("vendor_name", "'\"AWS\"'"),
                        ("version", _raw("eventVersion")),
                        ("feature", obj(("name", _raw("eventCategory")))),
                    ),
                ),
            ),
        ),
        (
            "actor",
            obj(
                (
                    "user",
                    obj(
                        ("uid", j("x.actor_uid")),
                        ("uid_alt", j(_ident("principalId"))),
                        ("type", j("x.actor_type")),
                        ("name", j(_ident("userName"))),
                        ("credential_uid", j(mask_sql("x.credential_id"))),
                        ("account", obj(("uid", j(_ident("accountId"))))),
                    ),
                ),
                (
                    "session",
                    obj(
                        ("uid", j("x.session_id")),
                        ("issuer", j(_ident("sessionContext.sessionIssuer.arn"))),
                        ("created_time_dt", j(_ident("sessionContext.attributes.creationDate"))),
                        (
                            "is_mfa",
                            j(
                                f"CASE WHEN {_ident('sessionContext.attributes.mfaAuthenticated')} "
                                f"IS NOT NULL THEN {mfa} END"
                            ),
                        ),
                    ),
                ),
                ("invoked_by", j(_ident("invokedBy"))),
                ("idp", obj(("name", j(idp)))),
            ),
        ),
        (
            "api",
            obj(
                ("operation", j("x.event_name")),
                ("service", obj(("name", _raw("eventSource")))),
                ("version", _raw("apiVersion")),
                ("request", obj(("uid", j("x.request_id")), ("data", mask_sql("x.request_data")))),
                (
                    "response",
                    obj(
                        ("data", mask_sql("x.response_data")),
                        ("error", j("x.error_code")),
                        ("message", j(mask_sql("x.error_message"))),
                    ),
                ),
            ),
        ),
        ("src_endpoint", obj(("ip", j("x.src_ip")), ("uid", _raw("vpcEndpointId")))),
        ("http_request", obj(("user_agent", j(mask_sql("x.user_agent"))))),
        (
            "cloud",
            obj(
                ("provider", "'\"AWS\"'"),
                ("region", j("x.region")),
                ("account", obj(("uid", j("x.account")))),
            ),
        ),
        ("resources", "x.resources"),
        ("unmapped", obj(("keytrail.event_uid", j("x.event_uid")))),
    )
    resource = obj(
        ("uid", j("resource_id")),
        ("type", j("resource_type")),
        ("account", obj(("uid", j("account")))),
    )
    return f"""
WITH res AS (
  SELECT event_uid, '[' || string_agg({resource}, ',' ORDER BY resource_id) || ']' AS resources
  FROM event_resources GROUP BY event_uid),
base AS (
  SELECT e.*, coalesce(json_extract_string(e.raw, '$.eventName'), e.operation, '') AS event_name
  FROM events e WHERE e.source = 'cloudtrail'),
ct AS (
  SELECT b.*, r.resources, {cls} AS class_uid, {act} AS activity_id, {act_name} AS activity_name,
         {keys_masked_sql("json_extract(b.raw, '$.requestParameters')")} AS request_data,
         {keys_masked_sql("json_extract(b.raw, '$.responseElements')")} AS response_data
  FROM base b LEFT JOIN res r ON r.event_uid = b.event_uid),
vault AS ({vault_rows_sql()}),
agent AS ({agent_rows_sql()})
SELECT line FROM (
  SELECT x.time, x.event_uid, {doc} AS line FROM ct x
  UNION ALL SELECT x.time, x.event_uid, {vault_doc_sql()} FROM vault x
  UNION ALL SELECT x.time, x.event_uid, {agent_doc_sql()} FROM agent x)
ORDER BY time NULLS LAST, event_uid"""


def export_ocsf(store: CaseStore, path: Path) -> int:
    cur = quiet_cursor(store)
    count = 0
    try:
        reader = cur.sql(ocsf_sql()).to_arrow_reader(65536)
        with open(path, "w", encoding="utf-8", newline="\n") as out:
            for batch in reader:
                lines = batch.column(0).to_pylist()
                if lines:
                    out.write("\n".join(lines))
                    out.write("\n")
                    count += len(lines)
    finally:
        cur.close()
    return count
