"""Generate the sample incident's policy snapshot in ``sample_data/policies`` (deterministic).

Run: ``python scripts/gen_policies.py [--out sample_data/policies]``.

What the sample incident's identities were *allowed* to do on 2026-03-01, the day before
the evidence starts (docs/blast-radius.md, "Potential blast radius", has the expected answers): one
``aws iam get-account-authorization-details`` output per account (the CLI's layout, 4-space
JSON; one inline policy URL-encoded as the raw API returns it) and three Vault policies in
the three shapes keytrail reads (an HCL file, ``vault read -format=json sys/policy/NAME``,
``bao read -format=json sys/policies/acl/NAME``). The ids match the CloudTrail evidence
(``AROAMAKNSTWGBVMSU2WUE`` is the reconciler role's id in every session it signs). The
exporter user Vault creates during the incident is absent: it did not exist yet.
"""

from __future__ import annotations

import argparse
import json
import shutil
import urllib.parse
from pathlib import Path
from typing import Any

A, B = "418295730164", "730261958447"
V = "2012-10-17"
DATE = "2025-11-04T10:12:31+00:00"


def doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": V, "Statement": list(statements)}


def allow(
    action: str | list[str], resource: str | list[str], sid: str | None = None, **extra: Any
) -> dict[str, Any]:
    st: dict[str, Any] = {"Sid": sid} if sid else {}
    return {**st, "Effect": "Allow", "Action": action, "Resource": resource, **extra}


def managed(
    name: str,
    arn: str,
    versions: list[dict[str, Any]],
    attachments: int,
    path: str = "/",
    pid: str = "ANPA000000000000000",
) -> dict[str, Any]:
    return {
        "PolicyName": name,
        "PolicyId": pid,
        "Arn": arn,
        "Path": path,
        "DefaultVersionId": f"v{len(versions)}",
        "AttachmentCount": attachments,
        "PermissionsBoundaryUsageCount": 0,
        "IsAttachable": True,
        "CreateDate": DATE,
        "UpdateDate": DATE,
        "PolicyVersionList": [
            {
                "Document": d,
                "VersionId": f"v{i}",
                "IsDefaultVersion": i == len(versions),
                "CreateDate": DATE,
            }
            for i, d in enumerate(versions, start=1)
        ],
    }


def trust(principal: dict[str, Any]) -> dict[str, Any]:
    return doc({"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"})


def user(
    name: str,
    uid: str,
    *,
    inline: list[tuple[str, Any]] = (),
    groups: list[str] = (),  # type: ignore[assignment]
    attached: list[tuple[str, str]] = (),
) -> dict[str, Any]:  # type: ignore[assignment]
    return {
        "Path": "/",
        "UserName": name,
        "UserId": uid,
        "Arn": f"arn:aws:iam::{A}:user/{name}",
        "CreateDate": DATE,
        "UserPolicyList": [{"PolicyName": n, "PolicyDocument": d} for n, d in inline],
        "GroupList": list(groups),
        "AttachedManagedPolicies": [{"PolicyName": n, "PolicyArn": a} for n, a in attached],
        "Tags": [],
    }


def role(
    account: str,
    name: str,
    rid: str,
    path: str,
    trusted: dict[str, Any],
    *,
    inline: list[tuple[str, Any]] = (),
    attached: list[tuple[str, str]] = (),  # type: ignore[assignment]
    boundary: str | None = None,
) -> dict[str, Any]:
    out = {
        "Path": path,
        "RoleName": name,
        "RoleId": rid,
        "Arn": f"arn:aws:iam::{account}:role{path}{name}",
        "CreateDate": DATE,
        "AssumeRolePolicyDocument": trust(trusted),
        "InstanceProfileList": [],
        "RolePolicyList": [{"PolicyName": n, "PolicyDocument": d} for n, d in inline],
        "AttachedManagedPolicies": [{"PolicyName": n, "PolicyArn": a} for n, a in attached],
        "Tags": [],
        "RoleLastUsed": {},
    }
    if boundary:
        out["PermissionsBoundary"] = {
            "PermissionsBoundaryType": "Policy",
            "PermissionsBoundaryArn": boundary,
        }
    return out


ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"
LAMBDA_BASIC = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
RECON = f"arn:aws:iam::{A}:policy/agents/LedgerReconcilerAccess"
SUPPORT = f"arn:aws:iam::{A}:policy/agents/SupportAttachmentsRead"
BACKUP = f"arn:aws:iam::{A}:policy/BackupExportRead"
BOUNDARY = f"arn:aws:iam::{A}:policy/ci-boundary"
LEGACY = f"arn:aws:iam::{A}:policy/legacy-s3-full"


def account_a() -> dict[str, Any]:
    recon_v1 = doc(
        allow("s3:ListBucket", "arn:aws:s3:::finco-ledger-prod", "ListLedger"),
        allow("s3:GetObject", "arn:aws:s3:::finco-ledger-prod/*", "ReadLedger"),
    )
    recon_v2 = doc(
        *recon_v1["Statement"],
        allow(
            ["iam:CreateAccessKey", "iam:DeleteAccessKey"],
            f"arn:aws:iam::{A}:user/svc-*",
            "KeyRotationLeftover",
        ),
        allow("sts:AssumeRole", "*", "ChainToAnalytics"),
        allow(
            "kms:Decrypt",
            f"arn:aws:kms:us-east-1:{A}:key/6f1c2a9e-4b7d-4e0a-9d63-1f2b3c4d5e6f",
            "DecryptLedgerObjects",
            Condition={"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}},
        ),
    )
    vault_engine = doc(
        allow(
            [
                "iam:CreateUser",
                "iam:DeleteUser",
                "iam:PutUserPolicy",
                "iam:DeleteUserPolicy",
                "iam:CreateAccessKey",
                "iam:DeleteAccessKey",
                "iam:ListAccessKeys",
                "iam:ListUserPolicies",
                "iam:ListGroupsForUser",
                "iam:ListAttachedUserPolicies",
            ],
            f"arn:aws:iam::{A}:user/vault-*",
            "VaultDynamicUsers",
        ),
        allow(
            "sts:AssumeRole",
            f"arn:aws:iam::{A}:role/agents/ledger-reconciler",
            "VaultStsReconciler",
        ),
    )
    users = [
        user(
            "svc-invoice-triage",
            "AIDABJSISCPD3JSU2IXJ2",
            groups=["agents-s3-readers"],
            inline=[
                (
                    "invoice-inbox-read",
                    doc(
                        allow(
                            ["s3:GetObject", "s3:ListBucket"],
                            [
                                "arn:aws:s3:::finco-invoices-inbox",
                                "arn:aws:s3:::finco-invoices-inbox/*",
                            ],
                        )
                    ),
                ),
                (
                    "vendor-master-sync",
                    doc(
                        allow(
                            ["s3:GetObject", "s3:PutObject"], "arn:aws:s3:::finco-vendor-master/*"
                        )
                    ),
                ),
            ],
        ),
        user(
            "svc-vendor-sync",
            "AIDAQ7MZJ4WDKF2VNXT3B",
            groups=["agents-s3-readers"],
            inline=[
                (
                    "vendor-master-sync",
                    doc(
                        allow(
                            ["s3:GetObject", "s3:PutObject"], "arn:aws:s3:::finco-vendor-master/*"
                        )
                    ),
                )
            ],
        ),
        user(
            "svc-support-copilot",
            "AIDAKICTPMXTIFNLZGOFF",
            groups=["agents-s3-readers"],
            attached=[("SupportAttachmentsRead", SUPPORT)],
        ),
        # The raw API URL-encodes policy documents (RFC 3986); keytrail reads both forms.
        user(
            "vault-aws-engine",
            "AIDABBQA4EIE2C2QOUN5G",
            inline=[
                (
                    "vault-secrets-engine",
                    urllib.parse.quote(json.dumps(vault_engine, separators=(",", ":")), safe=""),
                )
            ],
        ),
        user("svc-backup-export", "AIDAYXEQ6BIDFABWWLF6X", groups=["backup-operators"]),
    ]
    groups = [
        {
            "Path": "/",
            "GroupName": "agents-s3-readers",
            "GroupId": "AGPAV3R5NWZ4H6K2QX7YB",
            "Arn": f"arn:aws:iam::{A}:group/agents-s3-readers",
            "CreateDate": DATE,
            "GroupPolicyList": [
                {
                    "PolicyName": "no-deletes",
                    "PolicyDocument": doc(
                        {
                            "Sid": "NoDeletes",
                            "Effect": "Deny",
                            "Action": "s3:DeleteObject*",
                            "Resource": "*",
                        }
                    ),
                }
            ],
            "AttachedManagedPolicies": [],
        },
        {
            "Path": "/",
            "GroupName": "backup-operators",
            "GroupId": "AGPAM2K8XW4TQ6N3ZR5LD",
            "Arn": f"arn:aws:iam::{A}:group/backup-operators",
            "CreateDate": DATE,
            "GroupPolicyList": [],
            "AttachedManagedPolicies": [{"PolicyName": "BackupExportRead", "PolicyArn": BACKUP}],
        },
    ]
    roles = [
        role(
            A,
            "ledger-reconciler",
            "AROAMAKNSTWGBVMSU2WUE",
            "/agents/",
            {"AWS": f"arn:aws:iam::{A}:user/vault-aws-engine"},
            inline=[
                (
                    "ledger-reconciler-logs",
                    doc(
                        allow(
                            ["logs:CreateLogStream", "logs:PutLogEvents"],
                            f"arn:aws:logs:us-east-1:{A}:log-group:/agents/ledger-reconciler:*",
                        )
                    ),
                )
            ],
            attached=[("LedgerReconcilerAccess", RECON)],
        ),
        role(
            A,
            "ci-deployer",
            "AROAFU2IH7W75EDBHIKT2",
            "/",
            {"Federated": f"arn:aws:iam::{A}:oidc-provider/token.actions.githubusercontent.com"},
            attached=[("AdministratorAccess", ADMIN)],
            boundary=BOUNDARY,
        ),
        role(
            A,
            "AWSReservedSSO_AdministratorAccess_5b1c0e7f3a2d9c41",
            "AROAU253X2ZTS56UU6GK3",
            "/aws-reserved/sso.amazonaws.com/",
            {"Federated": f"arn:aws:iam::{A}:saml-provider/AWSSSO_0d1e2f3a4b5c6d7e"},
            attached=[("AdministratorAccess", ADMIN)],
        ),
        role(
            A,
            "ledger-webhook-exec",
            "AROAW5N2Q8ZK3M7XR4TJB",
            "/service-role/",
            {"Service": "lambda.amazonaws.com"},
            attached=[("AWSLambdaBasicExecutionRole", LAMBDA_BASIC)],
        ),
    ]
    policies = [
        managed(
            "LedgerReconcilerAccess",
            RECON,
            [recon_v1, recon_v2],
            1,
            "/agents/",
            "ANPAL3DG3RRECONC1LE2R",
        ),
        managed(
            "SupportAttachmentsRead",
            SUPPORT,
            [doc(allow("s3:GetObject", "arn:aws:s3:::finco-support-attachments/tickets/*"))],
            1,
            "/agents/",
            "ANPAS5UPP0RTATTACH3R",
        ),
        managed(
            "BackupExportRead",
            BACKUP,
            [
                doc(
                    allow(
                        ["s3:GetObject", "s3:ListBucket"],
                        [
                            "arn:aws:s3:::finco-ledger-prod",
                            "arn:aws:s3:::finco-ledger-prod/exports/*",
                            "arn:aws:s3:::finco-ledger-exports/*",
                        ],
                    ),
                    allow("s3:ListAllMyBuckets", "*"),
                    {
                        "Sid": "NoSecrets",
                        "Effect": "Deny",
                        "Action": "secretsmanager:*",
                        "Resource": "*",
                    },
                )
            ],
            1,
            "/",
            "ANPAB4CKUPEXP0RTREAD1",
        ),
        managed(
            "AdministratorAccess", ADMIN, [doc(allow("*", "*"))], 2, "/", "ANPAIWMBCKSKIEE64ZLYK"
        ),
        managed(
            "AWSLambdaBasicExecutionRole",
            LAMBDA_BASIC,
            [doc(allow(["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], "*"))],
            1,
            "/service-role/",
            "ANPAJNCQGXC42545SKXIK",
        ),
        managed(
            "ci-boundary",
            BOUNDARY,
            [doc(allow(["lambda:*", "s3:*", "logs:*"], "*"))],
            0,
            "/",
            "ANPAC1B0UNDARY7Q2W3E4",
        ),
        managed(
            "legacy-s3-full",
            LEGACY,
            [doc({"Effect": "Allow", "NotAction": ["iam:*", "organizations:*"], "Resource": "*"})],
            0,
            "/",
            "ANPAL3GACYS3FULL5X6Y7",
        ),
    ]
    return {
        "UserDetailList": users,
        "GroupDetailList": groups,
        "RoleDetailList": roles,
        "Policies": policies,
        "IsTruncated": False,
    }


def account_b() -> dict[str, Any]:
    roles = [
        role(
            B,
            "analytics-readonly",
            "AROAQRT2ZXY7LR6ATFK52",
            "/",
            {"AWS": f"arn:aws:iam::{A}:root"},
            inline=[
                (
                    "analytics-read",
                    doc(
                        allow(
                            ["glue:GetDatabase*", "glue:GetTable*", "glue:GetPartitions"],
                            "*",
                            "Catalog",
                        ),
                        allow(
                            [
                                "athena:StartQueryExecution",
                                "athena:GetQueryExecution",
                                "athena:GetQueryResults",
                            ],
                            f"arn:aws:athena:eu-west-1:{B}:workgroup/primary",
                            "Athena",
                        ),
                        allow(
                            ["s3:GetObject", "s3:ListBucket"],
                            [
                                "arn:aws:s3:::finco-analytics-exports",
                                "arn:aws:s3:::finco-analytics-exports/*",
                            ],
                            "Exports",
                        ),
                        allow(
                            "s3:PutObject", "arn:aws:s3:::finco-athena-results-eu/*", "QueryResults"
                        ),
                    ),
                )
            ],
        )
    ]
    return {
        "UserDetailList": [],
        "GroupDetailList": [],
        "RoleDetailList": roles,
        "Policies": [],
        "IsTruncated": False,
    }


RECONCILER_HCL = """\
# ledger-reconciler: attached to the AppRole role of the same name (platform team, 2025-11).
path "secret/data/ledger/*" {
  capabilities = ["read"]
}

// Card processors for the reconciliation of payouts.
path "secret/data/payments/+" {
  capabilities = ["read"]
}

path "secret/data/payments/swift" {
  capabilities = ["deny"]
}

path "secret/data/analytics/*" {
  capabilities = ["read", "list"]
}

/* HR data is never needed by the reconciler. */
path "secret/data/hr/*" {
  capabilities = ["deny"]
}

path "auth/token/create" {
  capabilities = ["update"]
}

path "aws/sts/reconciler" {
  capabilities = ["read"]
}

path "aws/creds/ledger-exporter" {
  capabilities = ["read"]
}

path "transit/decrypt/ledger" {
  capabilities = ["update"]
}
"""

VAULT_ADMIN_RULES = """\
path "sys/*" {
  capabilities = ["create", "read", "update", "delete", "list", "sudo"]
}

path "auth/*" {
  capabilities = ["create", "read", "update", "delete", "list", "sudo"]
}
"""

DEFAULT_POLICY = """\
path "auth/token/lookup-self" {
    capabilities = ["read"]
}

path "auth/token/renew-self" {
    capabilities = ["update"]
}

path "auth/token/revoke-self" {
    capabilities = ["update"]
}

path "sys/capabilities-self" {
    capabilities = ["update"]
}

path "sys/internal/ui/resultant-acl" {
    capabilities = ["read"]
}

path "cubbyhole/*" {
    capabilities = ["create", "read", "update", "delete", "list"]
}

path "sys/wrapping/wrap" {
    capabilities = ["update"]
}
"""


def vault_read(name: str, key: str, rules: str, request_id: str) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "lease_id": "",
        "lease_duration": 0,
        "renewable": False,
        "data": {"name": name, key: rules},
        "warnings": None,
        "mount_type": "system",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent.parent / "sample_data" / "policies",
    )
    out: Path = ap.parse_args().out
    if out.exists():
        shutil.rmtree(out)
    (out / "aws").mkdir(parents=True)
    (out / "vault").mkdir()
    for account, data in ((A, account_a()), (B, account_b())):
        (out / "aws" / f"{account}-authorization-details.json").write_text(
            json.dumps(data, indent=4) + "\n"
        )
    (out / "vault" / "ledger-reconciler.hcl").write_text(RECONCILER_HCL)
    (out / "vault" / "vault-admin.json").write_text(
        json.dumps(
            vault_read(
                "vault-admin", "rules", VAULT_ADMIN_RULES, "7d0c3c4e-2f1a-4a59-9c0e-6b1f3e2d8a11"
            ),
            indent=2,
        )
        + "\n"
    )
    (out / "vault" / "default.json").write_text(
        json.dumps(
            vault_read("default", "policy", DEFAULT_POLICY, "0b6a9d52-51c3-4f0e-8f7d-3c2a1b0e9f44"),
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {sum(1 for p in out.rglob('*') if p.is_file())} files to {out}")


if __name__ == "__main__":
    main()
