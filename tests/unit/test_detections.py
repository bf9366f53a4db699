"""docs/detections.md holds: every Stratus Red Team AWS technique it lists surfaces in the
findings it names, with the technique's own events as evidence (real detonation logs where
the shared fixtures have them, CloudTrail records built from the technique's documented
calls for the others)."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from keytrail.cli.main import main

DOC = Path(__file__).resolve().parents[2] / "docs" / "detections.md"
ROW = re.compile(r"^\| `(aws\.[a-z-]+\.[a-z0-9-]+)` \| (.*?) \| (log|constructed) \|$")
ACCOUNT = "123456789012"


def techniques() -> dict[str, tuple[list[str], str]]:
    out = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        m = ROW.match(line)
        if m:
            out[m.group(1)] = (re.findall(r"`([^`]+)`", m.group(2)), m.group(3))
    return out


def _ingest_and_find(tmp: Path, inputs: list[Path]) -> list[dict[str, Any]]:
    case = str(tmp / "case.duckdb")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["ingest", case, *map(str, inputs), "-q"]) == 0
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["findings", case, "--json"]) == 0
    return list(json.loads(out.getvalue())["findings"])


def _check(name: str, rules: list[str], findings: list[dict[str, Any]], ids: set[str]) -> None:
    for rule in rules:
        hits = [f for f in findings if f["rule"] == rule and ids & set(f["evidence"])]
        assert hits, f"{name}: no {rule} finding citing the technique's events"


def test_table_lists_the_current_techniques() -> None:
    t = techniques()
    assert len(t) == 43 and all(rules for rules, _ in t.values())


@pytest.fixture(scope="module")
def stratus(
    shared_fixtures: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[dict[str, Any]]]:
    logs = shared_fixtures / "cloudtrail" / "stratus-red-team" / "detonation-logs"
    if not logs.is_dir():
        pytest.skip("Stratus Red Team detonation logs not in the shared fixtures")
    return logs, _ingest_and_find(tmp_path_factory.mktemp("stratus"), [logs])


def test_techniques_with_detonation_logs(stratus: tuple[Path, list[dict[str, Any]]]) -> None:
    logs, findings = stratus
    checked = 0
    for name, (rules, how) in techniques().items():
        if how != "log":
            continue
        records = json.loads((logs / f"{name}.json").read_text(encoding="utf-8"))
        _check(name, rules, findings, {r["eventID"] for r in records})
        checked += 1
    assert checked >= 30


def test_sigma_findings_credit_the_rule_author(stratus: tuple[Path, list[dict[str, Any]]]) -> None:
    _, findings = stratus
    sigma = [f for f in findings if f["rule"].startswith("sigma:")]
    assert sigma
    for f in sigma:
        assert f["details"]["author"] and f["details"]["author"] in f["description"]
        assert (
            "SigmaHQ (DRL 1.1)" in f["description"]
            and f["details"]["licence"] == "SigmaHQ (DRL 1.1)"
        )


# -- constructed cases ---------------------------------------------------------------------


def _rec(
    n: int,
    name: str,
    source: str,
    *,
    t: str = "2025-01-10T10:00:00Z",
    key: str = "AKIAEXAMPLEATTACK001",
    ip: str = "198.51.100.9",
    request: dict[str, Any] | None = None,
    identity: dict[str, Any] | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    ident = identity or {
        "type": "IAMUser",
        "principalId": "AIDAEXAMPLE",
        "accountId": ACCOUNT,
        "arn": f"arn:aws:iam::{ACCOUNT}:user/mallory",
        "userName": "mallory",
        "accessKeyId": key,
    }
    return {
        "eventVersion": "1.09",
        "userIdentity": ident,
        "eventTime": t,
        "eventSource": f"{source}.amazonaws.com",
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": ip,
        "userAgent": "aws-cli/2.15.0",
        "requestParameters": request or {},
        "responseElements": None,
        "requestID": f"req-{n}",
        "eventID": event_id or f"00000000-0000-4000-8000-{n:012d}",
        "eventType": "AwsApiCall",
        "readOnly": False,
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
    }


def _at(i: int) -> str:
    return f"2025-01-10T10:{i // 60:02d}:{i % 60:02d}Z"


def _constructed() -> dict[str, list[dict[str, Any]]]:
    instance = {
        "type": "AssumedRole",
        "principalId": "AROAEXAMPLE:i-0abc1234def567890",
        "accountId": ACCOUNT,
        "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/app-role/i-0abc1234def567890",
        "accessKeyId": "ASIAEXAMPLEINSTANCE1",
        "sessionContext": {
            "sessionIssuer": {"type": "Role", "arn": f"arn:aws:iam::{ACCOUNT}:role/app-role"},
            "ec2RoleDelivery": "2.0",
        },
    }
    discovery = [
        ("sts", "GetCallerIdentity"),
        ("iam", "ListRoles"),
        ("iam", "ListUsers"),
        ("s3", "ListBuckets"),
        ("ec2", "DescribeInstances"),
        ("ec2", "DescribeVpcs"),
        ("ec2", "DescribeSecurityGroups"),
        ("lambda", "ListFunctions20150331"),
    ]
    ses = [
        "GetAccountSendingEnabled",
        "GetSendQuota",
        "ListIdentities",
        "GetIdentityVerificationAttributes",
        "ListEmailIdentities",
    ]
    bucket = "victim-data"
    return {
        "aws.defense-evasion.cloudtrail-lifecycle-rule": [
            _rec(
                1,
                "CreateTrail",
                "cloudtrail",
                request={"name": "org-trail", "s3BucketName": "org-logs-7f3a"},
            ),
            _rec(
                2,
                "PutBucketLifecycle",
                "s3",
                t=_at(60),
                request={
                    "bucketName": "org-logs-7f3a",
                    "LifecycleConfiguration": {"Rule": {"Expiration": {"Days": 1}}},
                },
            ),
        ],
        "aws.execution.sagemaker-update-lifecycle-config": [
            _rec(
                3,
                "CreateNotebookInstanceLifecycleConfig",
                "sagemaker",
                request={"onStart": [{"content": "x"}]},
            ),
            _rec(
                4,
                "UpdateNotebookInstance",
                "sagemaker",
                t=_at(5),
                request={"lifecycleConfigName": "evil"},
            ),
        ],
        "aws.discovery.ec2-enumerate-from-instance": [
            _rec(
                10 + i,
                op,
                svc,
                t=_at(i),
                identity=instance,
                key="ASIAEXAMPLEINSTANCE1",
                ip="10.0.1.15",
            )
            for i, (svc, op) in enumerate(discovery)
        ],
        "aws.discovery.ses-enumerate": [
            _rec(30 + i, op, "ses", t=_at(i)) for i, op in enumerate(ses)
        ],
        "aws.exfiltration.s3-backdoor-bucket-policy": [
            _rec(
                40,
                "PutBucketPolicy",
                "s3",
                request={
                    "bucketName": bucket,
                    "bucketPolicy": {
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
                                "Action": "s3:*",
                            }
                        ]
                    },
                },
            )
        ],
        "aws.impact.s3-ransomware-batch-deletion": [
            _rec(
                100 + i,
                "DeleteObjects",
                "s3",
                t=_at(i),
                request={"bucketName": bucket, "delete": ""},
            )
            for i in range(25)
        ],
        "aws.impact.s3-ransomware-individual-deletion": [
            _rec(
                200 + i,
                "DeleteObject",
                "s3",
                t=_at(i),
                request={"bucketName": bucket, "key": f"f{i}"},
            )
            for i in range(25)
        ],
        "aws.impact.s3-ransomware-client-side-encryption": [
            _rec(
                300 + i,
                "CopyObject",
                "s3",
                t=_at(i),
                request={
                    "bucketName": bucket,
                    "key": f"f{i}",
                    "x-amz-server-side-encryption-customer-algorithm": "AES256",
                },
            )
            for i in range(25)
        ],
    }


def test_constructed_techniques(tmp_path: Path) -> None:
    cases = _constructed()
    table = techniques()
    assert {n for n, (_, how) in table.items() if how == "constructed"} == set(cases)
    inputs = []
    for i, (name, records) in enumerate(cases.items()):
        for r in (
            records
        ):  # one attacker key per technique, so windows of one case do not hide another's
            if r["userIdentity"]["type"] == "IAMUser":
                r["userIdentity"] = {
                    **r["userIdentity"],
                    "accessKeyId": f"AKIAEXAMPLEATTACK{i:03d}",
                }
        p = tmp_path / f"{name}.json"
        p.write_text(json.dumps({"Records": records}), encoding="utf-8")
        inputs.append(p)
    findings = _ingest_and_find(tmp_path, inputs)
    for name, records in cases.items():
        _check(name, table[name][0], findings, {r["eventID"] for r in records})
