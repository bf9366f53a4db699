"""The pure mapping helpers behind the agent adapters: OTLP values, ids, argument resources."""

from __future__ import annotations

import base64
from datetime import datetime

import pytest

from keytrail.ingest.agent.attrs import any_value, key_values, normalise, otlp_id, unix_nano
from keytrail.ingest.agent.refs import (
    credential_kind,
    credentials_in_arguments,
    resources_in_arguments,
)


def test_any_value_every_type() -> None:
    kvs = [
        {"key": "s", "value": {"stringValue": "x"}},
        {
            "key": "i",
            "value": {"intValue": "9007199254740993"},
        },  # beyond float precision: kept exact
        {"key": "b", "value": {"boolValue": True}},
        {"key": "d", "value": {"doubleValue": 0.5}},
        {"key": "a", "value": {"arrayValue": {"values": [{"stringValue": "p"}, {"intValue": 2}]}}},
        {
            "key": "k",
            "value": {"kvlistValue": {"values": [{"key": "n", "value": {"boolValue": False}}]}},
        },
        {"key": "y", "value": {"bytesValue": "AAE="}},
        {"key": "z", "value": {}},
        {"value": {"stringValue": "no key"}},
    ]
    assert key_values(kvs) == {
        "s": "x",
        "i": 9007199254740993,
        "b": True,
        "d": 0.5,
        "a": ["p", 2],
        "k": {"n": False},
        "y": "AAE=",
        "z": None,
    }
    assert any_value(None) is None and any_value("raw") is None


@pytest.mark.parametrize(
    "value,nbytes,want",
    [
        ("5B8EFFF798038103D269B633813FC60C", 16, "5b8efff798038103d269b633813fc60c"),
        (base64.b64encode(bytes.fromhex("eee19b7ec3c1b174")).decode(), 8, "eee19b7ec3c1b174"),
        ("", 8, None),
        (None, 8, None),
        ("0000000000000000", 8, None),
        (
            "span_d9f018c386654a98aa1a8d65",
            8,
            "span_d9f018c386654a98aa1a8d65",
        ),  # neither: kept as written
    ],
)
def test_otlp_ids(value: object, nbytes: int, want: str | None) -> None:
    assert otlp_id(value, nbytes) == want


def test_unix_nano_exact_microseconds() -> None:
    assert unix_nano("1581452772000200521") == datetime(2020, 2, 11, 20, 26, 12, 200)
    assert unix_nano(1544712660000000000) == datetime(2018, 12, 13, 14, 51)
    assert unix_nano("0") is None and unix_nano("soon") is None and unix_nano(True) is None


def test_normalise_dialects() -> None:
    oi_agent = normalise({"openinference.span.kind": "AGENT", "graph.node.id": "planner"})
    assert (oi_agent.action, oi_agent.agent_id, oi_agent.agent_id_source) == (
        ("agent", "invoke_agent"),
        "planner",
        "graph.node.id",
    )
    # agent.name / graph.node.id name the agent only on agent spans
    assert normalise({"openinference.span.kind": "LLM", "agent.name": "x"}).agent_id is None
    retrieval = normalise({"gen_ai.operation.name": "retrieval", "gen_ai.data_source.id": "KB1"})
    assert retrieval.action == ("agent", "retrieval")
    assert normalise({"http.method": "GET"}).action is None
    lease = normalise({"gen_ai.tool.name": "db", "credential.id": "database/creds/ro/AbCdEf123456"})
    assert (lease.action, lease.credential_kind) == (("tool", "db"), "vault-lease")


def test_argument_resources() -> None:
    args = {
        "SecretId": "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCd",
        "nested": [{"bucket_name": "logs"}, {"RoleArn": "arn:aws:iam::123456789012:role/deployer"}],
        "uri": "https://api.example.com/v1",
        "secret_name": "payroll/db",
    }
    assert resources_in_arguments(args) == [
        (
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCd",
            "AWS::SecretsManager::Secret",
        ),
        ("https://api.example.com/v1", "tool-target"),
        ("payroll/db", "AWS::SecretsManager::Secret"),
        ("arn:aws:s3:::logs", "AWS::S3::Bucket"),
        ("arn:aws:iam::123456789012:role/deployer", "AWS::IAM::Role"),
    ]
    # not a Vault tool: the path is kept as logged (a tool target), not guessed to be a Vault path
    assert resources_in_arguments({"path": "secret/data/x"}) == [("secret/data/x", "tool-target")]
    assert resources_in_arguments({"path": "/secret/data/x/"}, tool="vault_kv_read") == [
        ("vault:secret/data/x", "vault-secret")
    ]


def test_argument_credentials_are_references_not_secrets() -> None:
    args = {
        "aws_access_key_id": "AKIAEXAMPLE000000007",
        "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG",
        "token": "hvs.CAESIJ",
        "cmd": "export AWS_ACCESS_KEY_ID=ASIAEXAMPLE000000008",
    }
    assert credentials_in_arguments(args) == ["AKIAEXAMPLE000000007", "ASIAEXAMPLE000000008"]
    assert [
        credential_kind(c) for c in ("AKIAEXAMPLE000000007", "ASIAEXAMPLE000000008", "acc-1", None)
    ] == ["aws-access-key", "aws-temporary-key", "agent-credential-ref", None]
