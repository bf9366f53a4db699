"""OCSF 1.1.0 JSON lines for CloudTrail events, as AWS Security Lake maps them.

CloudTrail is split across three OCSF classes by ``eventName`` (``ocsf/examples``
``mappings/bloblang/AWS/CloudTrail/v1.1.0``): Authentication (3002) for sign-in and STS
credential issuance, Account Change (3001) for IAM user/key/role/policy lifecycle calls,
API Activity (6003) for everything else. ``type_uid`` is ``class_uid * 100 + activity_id``.
Field names are OCSF 1.1.0 (``actor.user.uid`` = ARN, ``actor.user.uid_alt`` = principal id).
Secrets in request/response data are masked (:func:`keytrail.redact.mask_record`); absent
values are omitted rather than written as ``null`` (request and response data stay as logged). Other sources (Vault, agents) have no
agreed OCSF mapping yet and are not exported here.

The extraction from the raw record runs in DuckDB; Python only assembles the objects,
one Arrow batch at a time, so memory stays flat on large cases.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from keytrail.redact import mask_record, mask_secrets

if TYPE_CHECKING:
    from pathlib import Path

    from keytrail.store.case import CaseStore

OCSF_VERSION = "1.1.0"

AUTHENTICATION = (3002, "Authentication", 3, "Identity & Access Management")
ACCOUNT_CHANGE = (3001, "Account Change", 3, "Identity & Access Management")
API_ACTIVITY = (6003, "API Activity", 6, "Application Activity")

_LOGON = {"ConsoleLogin", "ExternalIdPDirectoryLogin", "CheckMfa", "CredentialChallenge",
          "CredentialVerification", "UserAuthentication"}
#: STS calls that issue temporary credentials: Authentication, activity Other (99).
_TOKEN = {"AssumeRole", "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity", "AssumeRoot",
          "GetSessionToken", "GetFederationToken"}

_ACCOUNT_CHANGE_ACTIVITY: dict[str, tuple[int, str]] = {
    "CreateUser": (1, "Create"), "CreateAccessKey": (1, "Create"), "CreateRole": (1, "Create"),
    "CreateLoginProfile": (1, "Create"), "CreateServiceLinkedRole": (1, "Create"),
    "CreateVirtualMFADevice": (1, "Create"), "CreateGroup": (1, "Create"),
    "DeleteUser": (6, "Delete"), "DeleteAccessKey": (6, "Delete"), "DeleteRole": (6, "Delete"),
    "DeleteLoginProfile": (6, "Delete"), "DeleteGroup": (6, "Delete"),
    "DeleteVirtualMFADevice": (6, "Delete"),
    "UpdateLoginProfile": (3, "Password Change"), "ChangePassword": (3, "Password Change"),
    "EnableMFADevice": (10, "MFA Factor Enable"), "ResyncMFADevice": (10, "MFA Factor Enable"),
    "DeactivateMFADevice": (11, "MFA Factor Disable"),
    "AttachUserPolicy": (7, "Attach Policy"), "AttachRolePolicy": (7, "Attach Policy"),
    "AttachGroupPolicy": (7, "Attach Policy"), "PutUserPolicy": (7, "Attach Policy"),
    "PutRolePolicy": (7, "Attach Policy"), "PutGroupPolicy": (7, "Attach Policy"),
    "PutUserPermissionsBoundary": (7, "Attach Policy"), "PutRolePermissionsBoundary": (7, "Attach Policy"),
    "DetachUserPolicy": (8, "Detach Policy"), "DetachRolePolicy": (8, "Detach Policy"),
    "DetachGroupPolicy": (8, "Detach Policy"), "DeleteUserPolicy": (8, "Detach Policy"),
    "DeleteRolePolicy": (8, "Detach Policy"), "DeleteGroupPolicy": (8, "Detach Policy"),
    "DeleteUserPermissionsBoundary": (8, "Detach Policy"), "DeleteRolePermissionsBoundary": (8, "Detach Policy"),
}
#: Other IAM lifecycle calls that Security Lake files under Account Change with activity Other.
_ACCOUNT_CHANGE_OTHER = {
    "UpdateUser", "UpdateRole", "UpdateAssumeRolePolicy", "AddUserToGroup", "RemoveUserFromGroup",
    "TagUser", "UntagUser", "TagRole", "UntagRole", "TagInstanceProfile", "UntagInstanceProfile",
    "CreateAccountAlias", "DeleteAccountAlias", "UpdateAccountPasswordPolicy",
    "DeleteAccountPasswordPolicy", "UpdateRoleDescription", "UpdateServiceSpecificCredential",
    "CreateServiceSpecificCredential", "DeleteServiceSpecificCredential", "UploadSSHPublicKey",
    "UpdateSSHPublicKey", "DeleteSSHPublicKey", "UploadSigningCertificate",
    "UpdateSigningCertificate", "DeleteSigningCertificate",
}

_API_PREFIX = (
    (("Create", "Run", "Start", "Launch", "Register", "Import", "Allocate", "Issue", "Generate"), 1, "Create"),
    (("Get", "Describe", "List", "Head", "Lookup", "Search", "Select", "Query", "Scan", "BatchGet",
      "Decrypt", "Download", "Filter"), 2, "Read"),
    (("Update", "Modify", "Put", "Set", "Attach", "Associate", "Enable", "Disable", "Tag", "Untag",
      "Add", "Change", "Replace", "Reset", "Copy", "Upload", "Restore", "Encrypt", "Rotate"), 3, "Update"),
    (("Delete", "Remove", "Terminate", "Detach", "Disassociate", "Deregister", "Revoke", "Release",
      "Cancel", "Stop", "Purge"), 4, "Delete"),
)


def classify(event_name: str, request: dict[str, Any] | None = None) -> tuple[tuple[int, str, int, str], int, str]:
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


def _d(**fields: Any) -> dict[str, Any] | None:
    """An OCSF object without its absent attributes (``None`` and empty objects), or None when empty."""
    out = {k: v for k, v in fields.items() if v is not None and v != {} and v != []}
    return out or None


def _masked(text: str | None) -> str | None:
    return None if text is None else mask_secrets(text)


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


_SELECT = """
SELECT e.event_uid, e.source_event_id, epoch_ms(e.time) AS time_ms, e.time, e.action, e.operation,
       e.outcome, e.error_code, e.error_message, e.actor_uid, e.actor_type, e.actor_name,
       e.credential_id, e.session_id, e.src_ip, e.user_agent, e.account, e.region, e.request_id,
       json_extract_string(e.raw, '$.eventName') AS event_name,
       json_extract_string(e.raw, '$.eventSource') AS event_source,
       json_extract_string(e.raw, '$.eventVersion') AS event_version,
       json_extract_string(e.raw, '$.eventType') AS event_type,
       json_extract_string(e.raw, '$.eventCategory') AS event_category,
       json_extract_string(e.raw, '$.apiVersion') AS api_version,
       json_extract_string(e.raw, '$.vpcEndpointId') AS vpc_endpoint_id,
       json_extract_string(e.raw, '$.userIdentity.principalId') AS principal_id,
       json_extract_string(e.raw, '$.userIdentity.accountId') AS identity_account,
       json_extract_string(e.raw, '$.userIdentity.userName') AS user_name,
       json_extract_string(e.raw, '$.userIdentity.invokedBy') AS invoked_by,
       json_extract_string(e.raw, '$.userIdentity.sessionContext.sessionIssuer.arn') AS session_issuer,
       json_extract_string(e.raw, '$.userIdentity.sessionContext.attributes.mfaAuthenticated') AS mfa,
       json_extract_string(e.raw, '$.userIdentity.sessionContext.attributes.creationDate') AS session_created,
       coalesce(json_extract_string(e.raw, '$.userIdentity.webIdFederationData.federatedProvider'),
                json_extract_string(e.raw, '$.userIdentity.identityProvider')) AS idp,
       CAST(json_extract(e.raw, '$.requestParameters') AS VARCHAR) AS request_parameters,
       CAST(json_extract(e.raw, '$.responseElements') AS VARCHAR) AS response_elements,
       r.resources
FROM events e
LEFT JOIN (SELECT event_uid, list(struct_pack(uid := resource_id, type := resource_type, account := account))
                  AS resources
           FROM event_resources GROUP BY event_uid) r ON r.event_uid = e.event_uid
WHERE e.source = 'cloudtrail'
ORDER BY e.time NULLS LAST, e.event_uid
"""


def ocsf_event(row: dict[str, Any]) -> dict[str, Any]:
    """One OCSF event object from a row of :data:`_SELECT`."""
    request = mask_record(_json(row["request_parameters"]))
    response = mask_record(_json(row["response_elements"]))
    name = row["event_name"] or row["operation"] or ""
    (class_uid, class_name, category_uid, category_name), activity_id, activity_name = classify(
        name, request if isinstance(request, dict) else None
    )
    status_id, status = {"success": (1, "Success"), "failure": (2, "Failure"),
                         "denied": (2, "Failure")}.get(row["outcome"] or "", (0, "Unknown"))
    mfa = row["mfa"]
    time_dt = row["time"].isoformat(timespec="milliseconds") + "Z" if row["time"] else None
    resources = sorted(row["resources"] or [], key=lambda r: r["uid"])
    doc = _d(
        class_uid=class_uid, class_name=class_name, category_uid=category_uid, category_name=category_name,
        activity_id=activity_id, activity_name=activity_name, type_uid=class_uid * 100 + activity_id,
        type_name=f"{class_name}: {activity_name}", severity_id=1, severity="Informational",
        status_id=status_id, status=status, status_code=row["error_code"],
        status_detail=_masked(row["error_message"]), time=row["time_ms"], time_dt=time_dt,
        metadata=_d(version=OCSF_VERSION, uid=row["source_event_id"], event_code=row["event_type"],
                    profiles=["cloud", "datetime"],
                    product=_d(name="CloudTrail", vendor_name="AWS", version=row["event_version"],
                               feature=_d(name=row["event_category"]))),
        actor=_d(
            user=_d(uid=row["actor_uid"], uid_alt=row["principal_id"], type=row["actor_type"],
                    name=row["user_name"], credential_uid=_masked(row["credential_id"]),
                    account=_d(uid=row["identity_account"])),
            session=_d(uid=row["session_id"], issuer=row["session_issuer"],
                       created_time_dt=row["session_created"],
                       is_mfa=None if mfa is None else mfa.lower() == "true"),
            invoked_by=row["invoked_by"], idp=_d(name=row["idp"])),
        api=_d(operation=name, service=_d(name=row["event_source"]), version=row["api_version"],
               request=_d(uid=row["request_id"], data=request),
               response=_d(data=response, error=row["error_code"], message=_masked(row["error_message"]))),
        src_endpoint=_d(ip=row["src_ip"], uid=row["vpc_endpoint_id"]),
        http_request=_d(user_agent=_masked(row["user_agent"])),
        cloud=_d(provider="AWS", region=row["region"], account=_d(uid=row["account"])),
        resources=[_d(uid=r["uid"], type=r["type"], account=_d(uid=r["account"])) for r in resources] or None,
        unmapped={"keytrail.event_uid": row["event_uid"]},
    )
    return doc or {}


def export_ocsf(store: CaseStore, path: Path) -> int:
    cur = store.cursor()
    count = 0
    try:
        reader = cur.sql(_SELECT).to_arrow_reader(8192)
        with open(path, "w", encoding="utf-8", newline="\n") as out:
            for batch in reader:
                for row in batch.to_pylist():
                    out.write(json.dumps(ocsf_event(row), ensure_ascii=False, separators=(",", ":")))
                    out.write("\n")
                    count += 1
    finally:
        cur.close()
    return count
