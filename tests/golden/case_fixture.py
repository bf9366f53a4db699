"""A small, fixed incident case built by inserting rows into the case tables.

Used by the golden-file and report tests. Everything is literal (ids, times, hashes), so
exports and reports of this case are byte-stable. The story: alice creates an access key
for the ``ledger-agent`` IAM user; the agent uses it to assume ``agent-runner``; the
session reads a ledger export and is denied a write; the agent also logs in to Vault and
reads the ledger database secret. Several strings are hostile on purpose: a ``<script>``
user agent, an ``onerror`` attribute in an S3 key, spreadsheet formulas, a pipe, a session
token in the raw record.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from keytrail.ingest.finalize import finalize
from keytrail.store.case import CaseStore

ACCOUNT = "111122223333"
XSS_UA = "<script>alert(1)</script>"
XSS_KEY = 'exports/q3"><img src=x onerror=alert(2)>.csv'
FORMULA = "=cmd|' /C calc'!A0"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKENVALUE0123456789"

ALICE_KEY = "AKIAEXAMPLEALICE0001"
AGENT_KEY = "AKIAEXAMPLEAGENT0001"
SESSION_KEY = "ASIAEXAMPLESESSION01"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/agent-runner"
SESSION_ARN = f"arn:aws:sts::{ACCOUNT}:assumed-role/agent-runner/ledger-run-1"
VAULT_ACCESSOR = "hmac-sha256:3f1c0a4e9d7b5a2c1e0f9d8c7b6a5e4d3c2b1a0f9e8d7c6b5a4e3d2c1b0a9f8e"
LEASE_ID = "database/creds/ledger-ro/Xk3pQ9rT2vW8yZ1a"


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _ct(
    n: int,
    when: str,
    name: str,
    source: str,
    identity: dict[str, Any],
    *,
    ua: str = "aws-cli/2.15.0",
    request: dict[str, Any] | None = None,
    response: dict[str, Any] | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": identity,
        "eventTime": when,
        "eventSource": f"{source}.amazonaws.com",
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7",
        "userAgent": ua,
        "requestParameters": request,
        "responseElements": response,
        "requestID": f"req-{n:04d}",
        "eventID": f"0000000{n}-aaaa-bbbb-cccc-dddddddddddd",
        "readOnly": name.startswith(("Get", "List")),
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
    }
    if error:
        rec["errorCode"] = error
        rec["errorMessage"] = "User is not authorized to perform this action"
    return rec


ALICE = {
    "type": "IAMUser",
    "principalId": "AIDAALICE",
    "arn": f"arn:aws:iam::{ACCOUNT}:user/alice",
    "accountId": ACCOUNT,
    "accessKeyId": ALICE_KEY,
    "userName": "alice",
}
AGENT = {
    "type": "IAMUser",
    "principalId": "AIDAAGENT",
    "arn": f"arn:aws:iam::{ACCOUNT}:user/ledger-agent",
    "accountId": ACCOUNT,
    "accessKeyId": AGENT_KEY,
    "userName": "ledger-agent",
}
SESSION = {
    "type": "AssumedRole",
    "principalId": "AROAEXAMPLE:ledger-run-1",
    "arn": SESSION_ARN,
    "accountId": ACCOUNT,
    "accessKeyId": SESSION_KEY,
    "sessionContext": {
        "sessionIssuer": {"type": "Role", "arn": ROLE_ARN, "userName": "agent-runner"},
        "attributes": {"creationDate": "2026-03-02T10:05:00Z", "mfaAuthenticated": "false"},
    },
}

# (n, time, eventName, service, identity, kwargs, outcome, credential, actor, resources, target, user agent)
CT_EVENTS: list[dict[str, Any]] = [
    {
        "n": 1,
        "time": "2026-03-02T09:58:00Z",
        "name": "ConsoleLogin",
        "svc": "signin",
        "id": ALICE,
        "kw": {"response": {"ConsoleLogin": "Success"}},
        "resources": [],
    },
    {
        "n": 2,
        "time": "2026-03-02T10:00:00Z",
        "name": "CreateAccessKey",
        "svc": "iam",
        "id": ALICE,
        "kw": {
            "request": {"userName": "ledger-agent"},
            "response": {
                "accessKey": {
                    "accessKeyId": AGENT_KEY,
                    "status": "Active",
                    "userName": "ledger-agent",
                }
            },
        },
        "resources": [(f"arn:aws:iam::{ACCOUNT}:user/ledger-agent", "AWS::IAM::User")],
    },
    {
        "n": 3,
        "time": "2026-03-02T10:05:00Z",
        "name": "AssumeRole",
        "svc": "sts",
        "id": AGENT,
        "kw": {
            "ua": XSS_UA,
            "request": {"roleArn": ROLE_ARN, "roleSessionName": "ledger-run-1"},
            "response": {
                "credentials": {
                    "accessKeyId": SESSION_KEY,
                    "sessionToken": SESSION_TOKEN,
                    "expiration": "Mar 2, 2026, 11:05:00 AM",
                },
                "assumedRoleUser": {"arn": SESSION_ARN},
            },
        },
        "resources": [(ROLE_ARN, "AWS::IAM::Role")],
    },
    {
        "n": 4,
        "time": "2026-03-02T10:06:00Z",
        "name": "GetObject",
        "svc": "s3",
        "id": SESSION,
        "kw": {"request": {"bucketName": "ledger-prod", "key": XSS_KEY}},
        "resources": [(f"arn:aws:s3:::ledger-prod/{XSS_KEY}", "AWS::S3::Object")],
    },
    {
        "n": 5,
        "time": "2026-03-02T10:07:00Z",
        "name": "PutObject",
        "svc": "s3",
        "id": SESSION,
        "kw": {
            "ua": FORMULA,
            "request": {"bucketName": "ledger-prod", "key": "exports/q3|tampered.csv"},
            "error": "AccessDenied",
        },
        "resources": [("arn:aws:s3:::ledger-prod/exports/q3|tampered.csv", "AWS::S3::Object")],
    },
    {
        "n": 6,
        "time": "2026-03-02T10:08:00Z",
        "name": "ListBuckets",
        "svc": "s3",
        "id": SESSION,
        "kw": {"ua": "+SUM(1,2)"},
        "resources": [],
    },
]


def _ct_row(e: dict[str, Any]) -> dict[str, Any]:
    kw = dict(e["kw"])
    raw = _ct(e["n"], e["time"], e["name"], e["svc"], e["id"], **kw)
    error = kw.get("error")
    ident = e["id"]
    return {
        "event_uid": f"cloudtrail:{raw['eventID']}",
        "source": "cloudtrail",
        "format": "cloudtrail-records",
        "source_event_id": raw["eventID"],
        "time": _t(e["time"]),
        "time_raw": e["time"],
        "action": f"{e['svc']}:{e['name']}",
        "service": e["svc"],
        "operation": e["name"],
        "read_only": raw["readOnly"],
        "outcome": "denied" if error else "success",
        "error_code": error,
        "error_message": raw.get("errorMessage"),
        "actor_uid": ident["arn"],
        "actor_type": ident["type"],
        "actor_name": ident.get("userName") or ident["arn"].rsplit("/", 1)[-1],
        "credential_id": ident["accessKeyId"],
        "credential_kind": "aws-temporary-key"
        if ident["accessKeyId"].startswith("ASIA")
        else "aws-access-key",
        "session_id": SESSION_ARN if ident is SESSION else None,
        "agent_id": None,
        "human_id": None,
        "src_ip": raw["sourceIPAddress"],
        "user_agent": raw["userAgent"],
        "account": ACCOUNT,
        "region": "us-east-1",
        "target": e["resources"][0][0] if e["resources"] else None,
        "request_id": raw["requestID"],
        "raw": json.dumps(raw, sort_keys=True),
        # as the CloudTrail ingest stores it (ingest/cloudtrail/sql.py): rule files read
        # request and response fields from here
        "details": json.dumps(
            {
                "requestParameters": raw.get("requestParameters"),
                "responseElements": raw.get("responseElements"),
            }
        ),
        "file_id": 1,
        "record_no": e["n"],
    }


def _other_rows() -> list[dict[str, Any]]:
    vault_login = {
        "time": "2026-03-02T10:10:00Z",
        "type": "response",
        "auth": {"accessor": VAULT_ACCESSOR, "display_name": "approle-ledger-agent"},
        "request": {
            "id": "7d1e2f3a-0000-4000-8000-000000000001",
            "operation": "update",
            "path": "auth/approle/login",
            "remote_address": "10.0.0.5",
        },
    }
    vault_read = {
        "time": "2026-03-02T10:11:00Z",
        "type": "response",
        "auth": {
            "accessor": VAULT_ACCESSOR,
            "display_name": "approle-ledger-agent",
            "client_token": "hvs.CAESIEXAMPLEEXAMPLEEXAMPLEEXAMPLE",
        },
        "request": {
            "id": "7d1e2f3a-0000-4000-8000-000000000002",
            "operation": "read",
            "path": "database/creds/ledger-ro",
            "remote_address": "10.0.0.5",
        },
        "response": {"secret": {"lease_id": LEASE_ID}},
    }
    agent_call = {
        "event_id": "evt-0001",
        "time": "2026-03-02T10:04:30Z",
        "agent_id": "ledger-agent",
        "user_id": "alice@example.com",
        "tool": "aws_cli",
        "credential_ref": AGENT_KEY,
        "args": {"command": "aws sts assume-role --role-arn " + ROLE_ARN},
    }
    common: dict[str, Any] = {
        "format": None,
        "error_code": None,
        "error_message": None,
        "session_id": None,
        "region": None,
        "request_id": None,
        "user_agent": None,
    }
    return [
        {
            **common,
            "event_uid": "vault:7d1e2f3a-0000-4000-8000-000000000001",
            "source": "vault",
            "format": "vault-audit-jsonl",
            "source_event_id": "7d1e2f3a-0000-4000-8000-000000000001",
            "time": _t("2026-03-02T10:10:00Z"),
            "time_raw": "2026-03-02T10:10:00Z",
            "action": "vault:update",
            "service": "vault",
            "operation": "update",
            "read_only": False,
            "outcome": "success",
            "actor_uid": "approle-ledger-agent",
            "actor_type": "vault-token",
            "actor_name": "approle-ledger-agent",
            "credential_id": None,
            "credential_kind": None,
            "agent_id": None,
            "human_id": None,
            "src_ip": "10.0.0.5",
            "account": "root",
            "target": "vault:auth/approle/login",
            "raw": json.dumps(vault_login, sort_keys=True),
            "file_id": 2,
            "record_no": 1,
        },
        {
            **common,
            "event_uid": "vault:7d1e2f3a-0000-4000-8000-000000000002",
            "source": "vault",
            "format": "vault-audit-jsonl",
            "source_event_id": "7d1e2f3a-0000-4000-8000-000000000002",
            "time": _t("2026-03-02T10:11:00Z"),
            "time_raw": "2026-03-02T10:11:00Z",
            "action": "vault:read",
            "service": "vault",
            "operation": "read",
            "read_only": True,
            "outcome": "success",
            "actor_uid": "approle-ledger-agent",
            "actor_type": "vault-token",
            "actor_name": "approle-ledger-agent",
            "credential_id": VAULT_ACCESSOR,
            "credential_kind": "vault-token",
            "agent_id": None,
            "human_id": None,
            "src_ip": "10.0.0.5",
            "account": "root",
            "target": "vault:database/creds/ledger-ro",
            "raw": json.dumps(vault_read, sort_keys=True),
            "file_id": 2,
            "record_no": 2,
        },
        {
            **common,
            "event_uid": "agent:evt-0001",
            "source": "agent",
            "format": "keytrail-agent-jsonl",
            "source_event_id": "evt-0001",
            "time": _t("2026-03-02T10:04:30Z"),
            "time_raw": "2026-03-02T10:04:30Z",
            "action": "tool:aws_cli",
            "service": "tool",
            "operation": "aws_cli",
            "read_only": None,
            "outcome": "success",
            "actor_uid": "ledger-agent",
            "actor_type": "agent",
            "actor_name": "ledger-agent",
            "credential_id": AGENT_KEY,
            "credential_kind": "aws-access-key",
            "agent_id": "ledger-agent",
            "human_id": "alice@example.com",
            "src_ip": None,
            "account": None,
            "target": "sts:AssumeRole",
            "raw": json.dumps(agent_call, sort_keys=True),
            "file_id": 3,
            "record_no": 1,
        },
    ]


EVIDENCE = [
    (
        1,
        "/evidence/AWSLogs/111122223333/CloudTrail/us-east-1/2026/03/02/trail.json.gz",
        "a" * 64,
        4096,
        "cloudtrail",
        "cloudtrail-records",
        "cloudtrail",
        "loaded",
        7,
        1,
        "no-digest",
        None,
    ),
    (
        2,
        "/evidence/vault/audit.log",
        "b" * 64,
        2048,
        "vault",
        "vault-audit-jsonl",
        "vault",
        "loaded",
        2,
        0,
        None,
        None,
    ),
    (
        3,
        "/evidence/agents/ledger-agent.jsonl",
        "c" * 64,
        512,
        "agent",
        "keytrail-agent-jsonl",
        "agent_jsonl",
        "loaded",
        1,
        0,
        None,
        None,
    ),
    (
        4,
        "/evidence/notes/readme.txt",
        "d" * 64,
        100,
        None,
        None,
        None,
        "skipped",
        0,
        0,
        None,
        "no known log format",
    ),
]


def build_case(path: Path) -> Path:
    """Create the fixed case at ``path`` (a new DuckDB file) and finalize it like an ingest would."""
    store = CaseStore.open(path, read_only=False, create=True)
    try:
        con = store.con
        store.set_meta("created_at", "2026-03-03T08:00:00Z")
        for ev in EVIDENCE:
            (
                fid,
                p,
                sha,
                size,
                source,
                fmt,
                adapter,
                status,
                records,
                rejected,
                integrity,
                note,
            ) = ev
            con.execute(
                """INSERT INTO evidence (file_id, path, sha256, bytes, source, format, adapter, status, records,
                   rejected, ingested_at, integrity, note) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)""",
                [
                    fid,
                    p,
                    sha,
                    size,
                    source,
                    fmt,
                    adapter,
                    status,
                    records,
                    rejected,
                    _t("2026-03-03T08:00:00"),
                    integrity,
                    note,
                ],
            )
        rows = [_ct_row(e) for e in CT_EVENTS] + _other_rows()
        cols = list(rows[0])
        for row in rows:
            con.execute(
                f"INSERT INTO events ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                [row.get(c) for c in cols],
            )
        for e in CT_EVENTS:
            for rid, rtype in e["resources"]:
                con.execute(
                    "INSERT INTO event_resources VALUES (?, ?, ?, ?)",
                    [
                        f"cloudtrail:0000000{e['n']}-aaaa-bbbb-cccc-dddddddddddd",
                        rid,
                        rtype,
                        ACCOUNT,
                    ],
                )
        con.execute(
            "INSERT INTO event_resources VALUES (?, ?, ?, ?)",
            [
                "vault:7d1e2f3a-0000-4000-8000-000000000002",
                "vault:database/creds/ledger-ro",
                "vault-secret",
                "root",
            ],
        )
        issues = [
            (
                AGENT_KEY,
                "aws-access-key",
                ALICE_KEY,
                "cloudtrail:00000002-aaaa-bbbb-cccc-dddddddddddd",
                "2026-03-02T10:00:00",
                None,
                f"arn:aws:iam::{ACCOUNT}:user/ledger-agent",
                "ledger-agent",
                "{}",
                "proven",
                "CreateAccessKey responseElements.accessKey.accessKeyId",
            ),
            (
                SESSION_KEY,
                "aws-temporary-key",
                AGENT_KEY,
                "cloudtrail:00000003-aaaa-bbbb-cccc-dddddddddddd",
                "2026-03-02T10:05:00",
                "2026-03-02T11:05:00",
                SESSION_ARN,
                "ledger-run-1",
                "{}",
                "proven",
                "AssumeRole responseElements.credentials.accessKeyId",
            ),
            (
                VAULT_ACCESSOR,
                "vault-token",
                None,
                "vault:7d1e2f3a-0000-4000-8000-000000000001",
                "2026-03-02T10:10:00",
                "2026-03-02T11:10:00",
                "approle-ledger-agent",
                "approle-ledger-agent",
                '{"role": "ledger-agent", "policies": ["ledger-read"]}',
                "proven",
                "login response.auth.accessor",
            ),
            (
                LEASE_ID,
                "vault-lease",
                VAULT_ACCESSOR,
                "vault:7d1e2f3a-0000-4000-8000-000000000002",
                "2026-03-02T10:11:00",
                "2026-03-02T11:11:00",
                None,
                None,
                "{}",
                "proven",
                "response.secret.lease_id",
            ),
        ]
        for cid, kind, parent, ev_uid, at, exp, puid, pname, attrs, conf, reason in issues:
            con.execute(
                "INSERT INTO credential_issues VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [
                    cid,
                    kind,
                    parent,
                    ev_uid,
                    _t(at),
                    _t(exp) if exp else None,
                    puid,
                    pname,
                    attrs,
                    conf,
                    reason,
                ],
            )
        con.execute(
            "INSERT INTO rejects VALUES (1, 7, NULL, 'not a JSON object', ?)",
            ['{"eventTime": ' + FORMULA],
        )
        con.execute(
            """INSERT INTO inventory_agents (agent_id, name, owner, purpose, created, identities)
               VALUES ('ledger-agent', 'Ledger agent', 'alice@example.com', 'exports the ledger',
                       TIMESTAMP '2026-01-01 00:00:00', ['arn:aws:iam::111122223333:user/ledger-agent'])"""
        )
        finalize(store)
    finally:
        store.close()
    return path
