"""Credential issuance rules that the public fixtures do not cover: the AWS secrets engine,
namespaces, response wrapping, orphan tokens, and the human / agent attribution rules.

No real ``aws/creds`` audit entry is public (fixtures/vault/SOURCES.md, "Gaps"), so these
entries are real learn-vault-monitoring lines with the request path, mount and response
replaced by the documented shapes (research/vault.md §2.4, §5.3, §6.1): ``response.secret``
carries only ``lease_id``; ``response.data`` values are HMACs unless the mount was tuned
with ``audit_non_hmac_response_keys=access_key``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from keytrail.ingest.runner import ingest
from keytrail.ingest.vault.mint import aws_username_prefix
from keytrail.ingest.vault.rows import agent_of, human_of, resource_type

LEARN = "vault/hashicorp-education_learn-vault-monitoring/vault-audit.log"
LAB_ADMINS = "hmac-sha256:18e2ca53bac3d2821fe22b5ad63969fb79ff13bc07525f320ceafefefc93f907"
HMAC_KEY = "hmac-sha256:" + "ab" * 32
IAM_HMAC_KEY = "hmac-sha256:" + "cd" * 32


def test_aws_username_prefix_follows_the_default_template() -> None:
    assert (
        aws_username_prefix("token-lab-admins", "deploy", 1588256831)
        == "vault-token-lab-admins-deploy-1588256831"
    )
    # Characters outside [a-zA-Z0-9+=,.@_-] become "_", in the display name and the role alike.
    assert (
        aws_username_prefix("oidc-Jane Doe/ops", "s3:read", 1)
        == "vault-oidc-Jane_Doe_ops-s3_read-1"
    )
    # "<display>-<role>" is cut to 42 characters; the unix time always survives the 64 cut.
    long = aws_username_prefix(
        "kubernetes-payments-prod-ledger-reconciler", "readonly-s3", 1700000000
    )
    assert (
        long
        == "vault-" + "kubernetes-payments-prod-ledger-reconciler-readonly-s3"[:42] + "-1700000000"
    )
    assert len(long) == 6 + 42 + 11 <= 64


@pytest.mark.parametrize(
    ("auth", "human"),
    [
        (
            {"display_name": "oidc-12349999999999999999", "metadata": {"email": "a@example.com"}},
            "a@example.com",
        ),
        ({"display_name": "oidc-alice@example.com"}, "alice@example.com"),
        (
            {"display_name": "userpass-lab-user-1", "metadata": {"username": "lab-user-1"}},
            "lab-user-1",
        ),
        ({"display_name": "ldap-bob"}, "bob"),
        ({"display_name": "approle", "metadata": {"role_name": "my-role"}}, None),
        (
            {"display_name": "jwt-repo:org/app:ref:refs/heads/main"},
            None,
        ),  # CI workload, not a person
        ({"display_name": "token-lab-admins"}, None),
        ({"display_name": "kubernetes-default-agent-sa"}, None),
    ],
)
def test_human_rule(auth: dict[str, Any], human: str | None) -> None:
    assert human_of(auth) == human


def test_agent_only_when_metadata_names_one() -> None:
    assert agent_of({"metadata": {"agent_id": "ledger-reconciler"}}) == "ledger-reconciler"
    assert agent_of({"display_name": "approle", "metadata": {"role_name": "agent-role"}}) is None


@pytest.mark.parametrize(
    ("path", "mount_type", "kind"),
    [
        ("secret/data/ledger/db", None, "vault-secret"),
        ("kv-v2/data/x", None, "vault-secret"),
        ("apps/data/x", "kv", "vault-secret"),
        ("auth/approle/login", None, "vault-auth"),
        ("sys/mounts", None, "vault-sys"),
        ("aws/creds/deploy", "aws", "vault-creds"),
        ("database/creds/readonly", None, "vault-creds"),
        ("transit/encrypt/k", None, "vault-transit"),
        ("internal-ca/issue/web", "pki", "vault-pki"),
        ("custom/thing", None, "vault-path"),
    ],
)
def test_resource_types(path: str, mount_type: str | None, kind: str) -> None:
    assert resource_type(path, mount_type) == kind


def _pair(
    template: dict[str, Any],
    rid: str,
    path: str,
    response: dict[str, Any],
    *,
    req_time: str,
    resp_time: str,
    namespace: dict[str, str] | None = None,
) -> list[str]:
    resp = copy.deepcopy(template)
    resp["request"].update(
        {"id": rid, "path": path, "operation": "read", "mount_type": path.split("/")[0]}
    )
    resp["request"].pop("data", None)
    if namespace:
        resp["request"]["namespace"] = namespace
    resp["response"] = response
    resp["time"] = resp_time
    req = copy.deepcopy(resp)
    req.pop("response")
    req.update({"type": "request", "time": req_time})
    return [json.dumps(req), json.dumps(resp)]


@pytest.fixture()
def case(shared_fixtures: Path, tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    lines = (shared_fixtures / LEARN).read_text().splitlines()
    # A real response by token-lab-admins (one of its kv writes) as the template.
    template = next(
        json.loads(x)
        for x in lines
        if json.loads(x)["type"] == "response"
        and json.loads(x)["auth"].get("display_name") == "token-lab-admins"
        and json.loads(x)["request"]["path"].startswith("kv/")
    )
    out: list[str] = []
    out += _pair(
        template,
        "aaaaaaaa-0000-0000-0000-000000000001",
        "aws/creds/deploy",
        {
            "secret": {"lease_id": "aws/creds/deploy/toZdCnMUaPGF4tn1PcW3Mm32"},
            "mount_type": "aws",
            "data": {
                "access_key": "AKIAIOSFODNN7EXAMPLE",
                "secret_key": HMAC_KEY,
                "security_token": None,
            },
        },
        req_time="2020-04-30T14:30:00.9Z",
        resp_time="2020-04-30T14:30:01.4Z",
    )
    out += _pair(
        template,
        "aaaaaaaa-0000-0000-0000-000000000002",
        "aws/sts/deploy",
        {
            "secret": {"lease_id": "aws/sts/deploy/Qw3rTy"},
            "mount_type": "aws",
            "data": {"access_key": HMAC_KEY, "secret_key": HMAC_KEY, "security_token": HMAC_KEY},
        },
        req_time="2020-04-30T14:31:00.1Z",
        resp_time="2020-04-30T14:31:00.2Z",
    )
    out += _pair(
        template,
        "aaaaaaaa-0000-0000-0000-000000000003",
        "aws/sts/deploy",
        {
            "secret": {"lease_id": "aws/sts/deploy/Zx9"},
            "mount_type": "aws",
            "data": {
                "access_key": "ASIAIOSFODNN7EXAMPLE",
                "secret_key": HMAC_KEY,
                "arn": "arn:aws:sts::1:x",
            },
        },
        req_time="2020-04-30T14:32:00Z",
        resp_time="2020-04-30T14:32:00Z",
    )
    out += _pair(
        template,
        "aaaaaaaa-0000-0000-0000-000000000004",
        "secret/data/ledger/db",
        {
            "wrap_info": {
                "accessor": "Bh57rT8zuhspG9APjXpGpiAJ",
                "ttl": 300,
                "creation_path": "secret/data/ledger/db",
            }
        },
        req_time="2020-04-30T14:33:00Z",
        resp_time="2020-04-30T14:33:00Z",
        namespace={"id": "Rk2xa", "path": "team-a/"},
    )
    # An IAM user key (no session token) whose id the device HMAC'd, handed out under a 1 h lease.
    out += _pair(
        template,
        "aaaaaaaa-0000-0000-0000-000000000005",
        "aws/creds/deploy",
        {
            "secret": {"lease_id": "aws/creds/deploy/Hm4cUser", "lease_duration": 3600},
            "mount_type": "aws",
            "data": {"access_key": IAM_HMAC_KEY, "secret_key": HMAC_KEY, "security_token": None},
        },
        req_time="2020-04-30T14:34:00Z",
        resp_time="2020-04-30T14:34:00Z",
    )
    f = tmp_path / "aws.log"
    f.write_text("\n".join(out) + "\n")
    ingest(tmp_path / "c.duckdb", [f])
    con = duckdb.connect(str(tmp_path / "c.duckdb"), read_only=True)
    yield con
    con.close()


def _issues(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[Any, ...]]:
    return {
        r[0]: r[1:]
        for r in con.execute(
            "SELECT credential_id, kind, parent_credential_id, issued_at, principal_uid, attributes, event_uid"
            " FROM credential_issues"
        ).fetchall()
    }


def test_aws_iam_user_key_in_clear(case: duckdb.DuckDBPyConnection) -> None:
    rows = _issues(case)
    lease = rows["aws/creds/deploy/toZdCnMUaPGF4tn1PcW3Mm32"]
    key = rows["AKIAIOSFODNN7EXAMPLE"]
    assert lease[:2] == ("vault-lease", LAB_ADMINS)
    assert key[:2] == (
        "aws-access-key",
        "aws/creds/deploy/toZdCnMUaPGF4tn1PcW3Mm32",
    )  # key minted under the lease
    assert (
        key[2] == datetime(2020, 4, 30, 14, 30, 1, 400000)
        and key[5] == "vault:aaaaaaaa-0000-0000-0000-000000000001"
    )
    attrs = json.loads(key[4])
    unix = 1588257000  # 2020-04-30T14:30:00Z, the request entry; Vault names the user while handling it
    assert attrs["username_prefix"] == f"vault-token-lab-admins-deploy-{unix}"
    assert attrs["username_prefix_candidates"] == [
        f"vault-token-lab-admins-deploy-{unix}",
        f"vault-token-lab-admins-deploy-{unix + 1}",
    ]
    assert attrs["federation_name_prefix"] == f"vault-{unix}" and attrs["aws_role"] == "deploy"
    assert json.loads(lease[4])["username_prefix"] == attrs["username_prefix"]
    ev = case.execute(
        "SELECT action, target, r.resource_type FROM events JOIN event_resources r USING (event_uid)"
        " WHERE event_uid = ?",
        [key[5]],
    ).fetchone()
    assert ev == ("vault:read", "aws/creds/deploy", "vault-creds")


def test_aws_hmac_key_kept_as_logged_with_name_stem(case: duckdb.DuckDBPyConnection) -> None:
    rows = _issues(case)
    lease = rows["aws/sts/deploy/Qw3rTy"]
    assert lease[0] == "vault-lease"
    attrs = json.loads(lease[4])
    assert attrs["access_key"] == HMAC_KEY, "the HMAC is kept as logged for sys/audit-hash matching"
    assert attrs["username_prefix"] == "vault-token-lab-admins-deploy-1588257060"
    # The key itself, under its HMAC: an STS key (a session token came with it), minted under the lease,
    # carrying the name stem the graph matches against CloudTrail session names.
    key = [
        (cid, r)
        for cid, r in rows.items()
        if r[5] == "vault:aaaaaaaa-0000-0000-0000-000000000002" and r[0] != "vault-lease"
    ]
    assert len(key) == 1 and key[0][0] == HMAC_KEY
    assert key[0][1][:2] == ("aws-temporary-key", "aws/sts/deploy/Qw3rTy")
    kattrs = json.loads(key[0][1][4])
    assert kattrs["hmac"] is True and kattrs["username_prefix"] == attrs["username_prefix"]


def test_aws_hmac_iam_user_key_under_a_lease_is_temporary(case: duckdb.DuckDBPyConnection) -> None:
    # Vault deletes the IAM user when the lease ends: a temporary credential with the lease's
    # expiry, never a long-term key (issue 13 item 5: no long-term-credential-minted, no
    # update-access-key on an HMAC).
    from keytrail.analysis.findings.containment import step

    kind, parent = case.execute(
        "SELECT kind, parent_credential_id FROM credential_issues WHERE credential_id = ?",
        [IAM_HMAC_KEY],
    ).fetchone() or (None, None)
    assert (kind, parent) == ("aws-temporary-key", "aws/creds/deploy/Hm4cUser")
    ttl = case.execute(
        "SELECT epoch(expires_at - issued_at) FROM credential_issues WHERE credential_id = ?",
        [IAM_HMAC_KEY],
    ).fetchone()
    assert ttl == (3600,)
    text = step(IAM_HMAC_KEY, kind, None, [parent])
    assert "vault lease revoke aws/creds/deploy/Hm4cUser" in text and "sys/leases/lookup" in text
    assert "sys/audit-hash" in text and "update-access-key" not in text
    # every command argument is a real id: the HMAC appears only where the text says it is an HMAC
    assert text.count(IAM_HMAC_KEY) == 1 and f"HMAC in this audit log ({IAM_HMAC_KEY})" in text
    # the report's containment checklist acts on the lease too
    from keytrail.report.containment import _credential_item

    row = {
        "credential_id": IAM_HMAC_KEY,
        "kind": kind,
        "parent_credential_id": parent,
        "principal_uid": None,
        "issued_by_event": "vault:x",
    }
    item = _credential_item(row, IAM_HMAC_KEY, "")
    assert item is not None
    assert (item["category"], item["target"], item["command"]) == (
        "Revoke Vault leases",
        parent,
        f"vault lease revoke {parent}",
    )


def test_aws_sts_temporary_key(case: duckdb.DuckDBPyConnection) -> None:
    key = _issues(case)["ASIAIOSFODNN7EXAMPLE"]
    assert key[:2] == ("aws-temporary-key", "aws/sts/deploy/Zx9") and key[3] == "arn:aws:sts::1:x"


def test_namespace_and_response_wrapping(case: duckdb.DuckDBPyConnection) -> None:
    wrap = _issues(case)["Bh57rT8zuhspG9APjXpGpiAJ"]
    assert wrap[:2] == ("vault-token", LAB_ADMINS)
    assert json.loads(wrap[4])["wrapping"] is True
    ev = case.execute(
        "SELECT e.account, r.resource_id, r.account FROM events e JOIN event_resources r USING (event_uid)"
        " WHERE e.event_uid = ?",
        [wrap[5]],
    ).fetchone()
    assert ev == ("team-a/", "vault:team-a/secret/data/ledger/db", "team-a/")
