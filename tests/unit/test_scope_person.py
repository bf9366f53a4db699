"""A human seed of ``keytrail scope`` reaches the AWS sessions the graph's classifier gives the human.

Not only Vault logins and events naming the human (``sourceIdentity``, ``onBehalfOf``): an IAM
user's console session, an IAM Identity Center (``AWSReservedSSO_*``) session and a SAML
federation, as :mod:`keytrail.graph.principal_class` decides them, on a constructed trail (the
AWS documentation examples hold no console or SAML session that signs calls with a key).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from keytrail.scope.engine_duckdb import scope_duckdb
from tests.cloudtrail_records import api_call

ACCT = "111122223333"
SSO_ARN = f"arn:aws:sts::{ACCT}:assumed-role/AWSReservedSSO_AdminAccess_0a1b2c3d4e5f6a7b/sam.adams@example.com"


def _rec(i: int, name: str, ident: dict[str, Any], **extra: Any) -> dict[str, Any]:
    identity = {"accountId": ACCT, **ident}
    return api_call(i, f"2026-03-01T10:{i:02d}:00Z", ACCT, identity, name, **extra)


def _trail(tmp: Path) -> Path:
    console = {
        "type": "IAMUser",
        "principalId": "AIDACONSOLEEXAMPLE",
        "arn": f"arn:aws:iam::{ACCT}:user/JaneDoe",
        "accessKeyId": "ASIACONSOLE000000001",
        "userName": "JaneDoe",
        "sessionContext": {"attributes": {"mfaAuthenticated": "false"}},
    }
    sso = {
        "type": "AssumedRole",
        "principalId": "AROASSOEXAMPLE:sam.adams@example.com",
        "arn": SSO_ARN,
        "accessKeyId": "ASIASSO0000000000001",
    }
    saml = {"type": "SAMLUser", "principalId": "samlprov:pat", "userName": "pat@example.com"}
    fed = {
        "type": "AssumedRole",
        "principalId": "AROASAMLEXAMPLE:pat@example.com",
        "arn": f"arn:aws:sts::{ACCT}:assumed-role/SAMLAdmin/pat@example.com",
        "accessKeyId": "ASIASAML000000000001",
    }
    workload = {
        "type": "IAMUser",
        "principalId": "AIDAWORKLOADEXAMPLE",
        "arn": f"arn:aws:iam::{ACCT}:user/svc-batch",
        "accessKeyId": "AKIAWORKLOAD00000001",
        "userName": "svc-batch",
    }
    records = [
        _rec(
            1,
            "GetUserPolicy",
            console,
            source="iam.amazonaws.com",
            sessionCredentialFromConsole="true",
            ua="Mozilla/5.0",
        ),
        _rec(
            2,
            "ListRoles",
            console,
            source="iam.amazonaws.com",
            sessionCredentialFromConsole="true",
            ua="Mozilla/5.0",
        ),
        _rec(3, "ListBuckets", sso),
        _rec(
            4,
            "AssumeRoleWithSAML",
            saml,
            source="sts.amazonaws.com",
            params={"roleArn": f"arn:aws:iam::{ACCT}:role/SAMLAdmin"},
            response={
                "credentials": {
                    "accessKeyId": "ASIASAML000000000001",
                    "expiration": "Mar 1, 2026, 11:04:00 AM",
                },
                "assumedRoleUser": {"arn": fed["arn"]},
                "subject": "pat@example.com",
                "subjectType": "persistent",
            },
        ),
        _rec(5, "GetObject", fed, params={"bucketName": "finance", "key": "q1.csv"}),
        *[
            _rec(
                10 + i,
                "PutObject",
                workload,
                ua="Boto3/1.34.0",
                params={"bucketName": "batch", "key": f"o{i}"},
            )
            for i in range(5)
        ],
    ]
    path = tmp / "trail" / "AWSLogs" / ACCT / "CloudTrail" / "us-east-1" / "x.json.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(gzip.compress(json.dumps({"Records": records}).encode(), mtime=0))
    return tmp / "trail"


@pytest.mark.parametrize(
    ("human", "key", "detail"),
    [
        ("JaneDoe", "ASIACONSOLE000000001", "console"),
        ("sam.adams@example.com", "ASIASSO0000000000001", "identity-center"),
        ("pat@example.com", "ASIASAML000000000001", "saml"),
    ],
)
def test_human_seed_reaches_the_classifiers_person_sessions(
    tmp_path: Path, human: str, key: str, detail: str
) -> None:
    trail = _trail(tmp_path)
    doc = scope_duckdb(tmp_path / "out", [trail], [human]).manifest
    (seed,) = doc["seeds"]
    assert seed["matched_as"] == "human" and seed["credentials"] == [key]
    (member,) = [c for c in doc["closure"] if c["credential_id"] == key]
    assert f"person of this {detail} session" in member["why"]
    assert "AKIAWORKLOAD00000001" not in {c["credential_id"] for c in doc["closure"]}
    kept = json.loads(gzip.decompress((tmp_path / "out" / doc["outputs"][0]["path"]).read_bytes()))
    signed = {r["userIdentity"].get("accessKeyId") for r in kept["Records"]}
    assert key in signed and "AKIAWORKLOAD00000001" not in signed
    exact = scope_duckdb(tmp_path / "exact", [trail], [human], narrow=False).manifest
    assert exact["closure"] == doc["closure"] and exact["outputs"] == doc["outputs"]
