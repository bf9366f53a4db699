"""Who is a person, who is a workload (issue 13, items 1, 2, 3, 6, 7), on real formats.

Vault lines follow the file audit device's response entry (as in learn-vault-monitoring);
CloudTrail records follow the AWS documentation's examples (console sign-in, SwitchRole
with MFA, Identity Center, SAML, web identity, EC2 instance-profile sessions). Every case
is ingested with the real adapters into a real DuckDB case.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from keytrail.analysis.findings.run import live_findings
from keytrail.config import load_config
from keytrail.ingest.runner import ingest
from keytrail.store.case import CaseStore

ACCT = "111122223333"
OTHER = "444455556666"


def _vault_login(n: int, mount: str, mount_type: str, display: str, meta: dict[str, str]) -> str:
    auth = {
        "client_token": f"hmac-sha256:tok{n:04d}",
        "accessor": f"hmac-sha256:acc{n:04d}",
        "display_name": display,
        "policies": ["default"],
        "token_policies": ["default"],
        "metadata": meta,
        "entity_id": f"ent-{n}",
        "token_type": "service",
    }
    return json.dumps(
        {
            "time": f"2026-01-05T10:0{n}:00.000Z",
            "type": "response",
            "auth": auth,
            "request": {
                "id": f"req-{n:04d}",
                "operation": "update",
                "mount_type": mount_type,
                "namespace": {"id": "root"},
                "path": f"auth/{mount}/login",
                "remote_address": "10.0.0.5",
            },
            "response": {"mount_type": mount_type, "auth": auth},
        }
    )


def _ct(
    n: int,
    name: str,
    source: str,
    identity: dict[str, Any],
    *,
    ua: str = "aws-cli/2.15.0",
    account: str = ACCT,
    **extra: Any,
) -> dict[str, Any]:
    rec = {
        "eventVersion": "1.08",
        "userIdentity": identity,
        "eventTime": f"2026-01-05T11:{n:02d}:00Z",
        "eventSource": f"{source}.amazonaws.com",
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7",
        "userAgent": ua,
        "requestParameters": None,
        "responseElements": None,
        "requestID": f"req-{n:04d}",
        "eventID": f"ev-{n:04d}",
        "eventType": "AwsApiCall",
        "recipientAccountId": account,
    }
    rec.update(extra)
    return rec


def _role_session(
    role: str, session: str, key: str, *, mfa: bool = False, **ctx: Any
) -> dict[str, Any]:
    return {
        "type": "AssumedRole",
        "principalId": f"AROAEXAMPLE:{session}",
        "arn": f"arn:aws:sts::{ACCT}:assumed-role/{role}/{session}",
        "accountId": ACCT,
        "accessKeyId": key,
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": "AROAEXAMPLE",
                "arn": f"arn:aws:iam::{ACCT}:role/{role}",
                "accountId": ACCT,
                "userName": role,
            },
            "attributes": {
                "creationDate": "2026-01-05T11:00:00Z",
                "mfaAuthenticated": "true" if mfa else "false",
            },
            **ctx,
        },
    }


BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0 Safari/537.36"
)


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cls")
    (d / "vault.log").write_text(
        "\n".join(
            [
                # 1. Terraform Cloud workload identity, GitHub Actions, Kubernetes, GitLab
                _vault_login(
                    1,
                    "jwt",
                    "jwt",
                    "jwt-organization:acme:project:infra:workspace:prod:run_phase:apply",
                    {"role": "tfc-prod"},
                ),
                _vault_login(
                    2, "jwt", "jwt", "jwt-repo:acme/deploy:ref:refs/heads/main", {"role": "gha"}
                ),
                _vault_login(
                    3, "jwt", "jwt", "jwt-system:serviceaccount:payments:api", {"role": "k8s"}
                ),
                _vault_login(
                    4,
                    "gitlab",
                    "jwt",
                    "gitlab-42",
                    {"role": "ci", "project_path": "acme/app", "pipeline_source": "push"},
                ),
                # a person's OIDC login (e-mail claim), and a JWT login whose claims say nothing
                _vault_login(
                    5,
                    "oidc",
                    "oidc",
                    "oidc-ana@acme.example",
                    {"role": "eng", "email": "ana@acme.example"},
                ),
                _vault_login(6, "jwt", "jwt", "jwt-4f1c2", {"role": "mystery"}),
            ]
        )
        + "\n"
    )
    sso = "AWSReservedSSO_AdministratorAccess_0123456789abcdef"
    records = [
        # 2. console SwitchRole with MFA and a browser into an admin role, then CreateUser
        _ct(
            1,
            "SwitchRole",
            "signin",
            {
                "type": "IAMUser",
                "principalId": "AIDAEXAMPLEBOB",
                "arn": f"arn:aws:iam::{ACCT}:user/bob",
                "accountId": ACCT,
                "userName": "bob",
            },
            ua=BROWSER,
            responseElements={"SwitchRole": "Success"},
        ),
        _ct(
            2,
            "CreateUser",
            "iam",
            _role_session("Admin", "bob", "ASIACONSOLEBOB000001", mfa=True),
            ua=BROWSER,
            requestParameters={"userName": "new-hire"},
            sessionCredentialFromConsole="true",
        ),
        _ct(
            3,
            "AttachUserPolicy",
            "iam",
            _role_session("Admin", "bob", "ASIACONSOLEBOB000001", mfa=True),
            ua=BROWSER,
            sessionCredentialFromConsole="true",
            requestParameters={
                "userName": "new-hire",
                "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess",
            },
        ),
        # Identity Center session
        _ct(
            4,
            "ListUsers",
            "iam",
            _role_session(sso, "carol@acme.example", "ASIASSOCAROL00000001"),
            ua=BROWSER,
        ),
        # SAML federation: AssumeRoleWithSAML issues the key
        _ct(
            5,
            "AssumeRoleWithSAML",
            "sts",
            {
                "type": "SAMLUser",
                "principalId": "SAMPLEcdmc3JzY8pOwvZs8kn=:dave",
                "userName": "dave",
                "identityProvider": "SAMPLEcdmc3JzY8pOwvZs8kn=",
            },
            requestParameters={
                "roleArn": f"arn:aws:iam::{ACCT}:role/SAMLRole",
                "principalArn": f"arn:aws:iam::{ACCT}:saml-provider/Okta",
            },
            responseElements={
                "credentials": {
                    "accessKeyId": "ASIASAMLDAVE00000001",
                    "expiration": "Jan 5, 2026, 12:05:00 PM",
                },
                "assumedRoleUser": {"arn": f"arn:aws:sts::{ACCT}:assumed-role/SAMLRole/dave"},
                "subject": "dave",
                "subjectType": "transient",
            },
        ),
        # GitHub Actions web identity
        _ct(
            6,
            "AssumeRoleWithWebIdentity",
            "sts",
            {
                "type": "WebIdentityUser",
                "principalId": "token.actions.githubusercontent.com:sts.amazonaws.com:repo",
                "userName": "repo:acme/deploy:ref:refs/heads/main",
                "identityProvider": "token.actions.githubusercontent.com",
            },
            requestParameters={
                "roleArn": f"arn:aws:iam::{ACCT}:role/gha-deploy",
                "roleSessionName": "gha",
            },
            responseElements={
                "credentials": {
                    "accessKeyId": "ASIAGHADEPLOY0000001",
                    "expiration": "Jan 5, 2026, 12:06:00 PM",
                },
                "subjectFromWebIdentityToken": "repo:acme/deploy:ref:refs/heads/main",
                "provider": (
                    f"arn:aws:iam::{ACCT}:oidc-provider/token.actions.githubusercontent.com"
                ),
                "assumedRoleUser": {"arn": f"arn:aws:sts::{ACCT}:assumed-role/gha-deploy/gha"},
            },
        ),
        # 7. EC2 instance-profile session
        _ct(
            7,
            "GetObject",
            "s3",
            _role_session(
                "web-server", "i-0abc1234def567890", "ASIAEC2INSTANCE00001", ec2RoleDelivery="2.0"
            ),
            ua="aws-sdk-go-v2/1.24.0",
            requestParameters={"bucketName": "acme-assets", "key": "logo.png"},
        ),
        # the CLI with an SDK agent key that attaches an AWS-managed policy (3.)
        _ct(
            8,
            "AttachRolePolicy",
            "iam",
            {
                "type": "IAMUser",
                "principalId": "AIDABOT",
                "arn": f"arn:aws:iam::{ACCT}:user/deploy-bot",
                "accountId": ACCT,
                "accessKeyId": "AKIADEPLOYBOT0000001",
                "userName": "deploy-bot",
            },
            ua="Boto3/1.34.0 md/Botocore#1.34.0",
            requestParameters={
                "roleName": "app",
                "policyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess",
            },
        ),
    ]
    # the Identity Center session and the bot's key each also act in a second account
    records.append(
        _ct(
            10,
            "ListBuckets",
            "s3",
            _role_session(sso, "carol@acme.example", "ASIASSOCAROL00000001"),
            ua=BROWSER,
            account=OTHER,
        )
    )
    records.append(
        _ct(
            11,
            "ListBuckets",
            "s3",
            {
                "type": "IAMUser",
                "principalId": "AIDABOT",
                "arn": f"arn:aws:iam::{ACCT}:user/deploy-bot",
                "accountId": ACCT,
                "accessKeyId": "AKIADEPLOYBOT0000001",
                "userName": "deploy-bot",
            },
            ua="Boto3/1.34.0 md/Botocore#1.34.0",
            account=OTHER,
        )
    )
    # 6. a cross-account AssumeRole delivered to both accounts with distinct eventIDs
    caller = {
        "type": "IAMUser",
        "principalId": "AIDAJOHN",
        "arn": f"arn:aws:iam::{OTHER}:user/JohnDoe",
        "accountId": OTHER,
        "accessKeyId": "AKIAJOHNDOE000000001",
        "userName": "JohnDoe",
    }
    body = {
        "requestParameters": {
            "roleArn": f"arn:aws:iam::{ACCT}:role/EC2-dev",
            "roleSessionName": "JohnDoe",
        },
        "responseElements": {
            "credentials": {
                "accessKeyId": "ASIAXACCOUNT00000001",
                "expiration": "Jan 5, 2026, 12:09:00 PM",
            },
            "assumedRoleUser": {"arn": f"arn:aws:sts::{ACCT}:assumed-role/EC2-dev/JohnDoe"},
        },
        "sharedEventID": "shared-0001",
    }
    records.append(_ct(9, "AssumeRole", "sts", caller, account=OTHER, **body))
    copy = _ct(
        9,
        "AssumeRole",
        "sts",
        {"type": "AWSAccount", "principalId": "AIDAJOHN", "accountId": OTHER},
        account=ACCT,
        **body,
    )
    copy["eventID"] = "ev-0009-copy"
    records.append(copy)
    (d / "ct.json").write_text(json.dumps({"Records": records}))
    path = d / "case.duckdb"
    ingest(path, [d / "vault.log", d / "ct.json"])
    return path


def _cls(case: Path, subject: str) -> dict[str, Any]:
    with duckdb.connect(str(case), read_only=True) as con:
        row = con.execute(
            "SELECT class, detail, person, confidence, reason, evidence FROM principal_classes "
            "WHERE subject_kind = 'credential' AND subject = ?",
            [subject],
        ).fetchone()
    assert row is not None, subject
    return dict(
        zip(("class", "detail", "person", "confidence", "reason", "evidence"), row, strict=True)
    )


@pytest.mark.parametrize(
    ("accessor", "cls", "detail"),
    [
        ("hmac-sha256:acc0001", "workload", "terraform-cloud"),
        ("hmac-sha256:acc0002", "workload", "github-actions"),
        ("hmac-sha256:acc0003", "workload", "kubernetes"),
        ("hmac-sha256:acc0004", "workload", "gitlab-ci"),
        ("hmac-sha256:acc0005", "person", "vault-oidc"),
        ("hmac-sha256:acc0006", "unknown", "vault-jwt"),
    ],
)
def test_vault_jwt_logins_by_claims(case: Path, accessor: str, cls: str, detail: str) -> None:
    c = _cls(case, accessor)
    assert (c["class"], c["detail"]) == (cls, detail)
    assert c["evidence"] == [f"vault:req-{accessor[-4:]}"]


def test_ci_jwt_login_is_no_human(case: Path) -> None:
    """Item 1: the Terraform Cloud login no longer makes a human with a proven DELEGATED edge."""
    with duckdb.connect(str(case), read_only=True) as con:
        humans = {
            r[0]: r[1]
            for r in con.execute(
                "SELECT dst, src FROM links WHERE kind = 'DELEGATED' AND dst_kind = 'credential'"
            ).fetchall()
        }
        kinds = dict(con.execute("SELECT principal_id, kind FROM principals").fetchall())
    for n in (1, 2, 3, 4, 6):
        assert f"hmac-sha256:acc000{n}" not in humans
    assert humans["hmac-sha256:acc0005"] == "ana@acme.example"
    assert not any(k == "human" and "organization:" in p for p, k in kinds.items())


def test_holders_of_some_credentials_are_the_whole_map_s(case: Path) -> None:
    """A trace asks for its chain's credentials only; the answer is the whole map's entries."""
    from keytrail.graph.principal_class import holders

    with duckdb.connect(str(case), read_only=True) as con:
        whole = holders(con)
        assert len(set(whole.values())) >= 2
        some = sorted(whole)[::2] + ["not-a-credential", "it's"]
        assert holders(con, some) == {k: whole[k] for k in some if k in whole}
        assert holders(con, []) == {}


def test_console_switchrole_with_mfa_is_a_person(case: Path) -> None:
    """Item 2: the console session is bob's, and admin use by a person is no NHI finding."""
    c = _cls(case, "ASIACONSOLEBOB000001")
    assert (c["class"], c["detail"], c["person"], c["confidence"]) == (
        "person",
        "console",
        "bob",
        "strong",
    )
    assert "MFA" in c["reason"] and "browser" in c["reason"]
    assert c["evidence"] == ["cloudtrail:ev-0002", "cloudtrail:ev-0003"]
    with CaseStore.open(case) as store:
        delegated = store.query(
            "SELECT src FROM links WHERE kind = 'DELEGATED' AND dst = 'ASIACONSOLEBOB000001'"
        )
        found = live_findings(store, load_config(None))
    assert [r["src"] for r in delegated] == ["bob"]
    on_bob = [f for f in found if "ASIACONSOLEBOB000001" in f.subjects]
    assert not [f for f in on_bob if f.rule in ("admin-or-root-use", "iam-or-policy-change")], (
        on_bob
    )
    # the SDK bot's own IAM change is still reported
    assert any(
        f.rule == "iam-or-policy-change" and "AKIADEPLOYBOT0000001" in f.subjects for f in found
    )


@pytest.mark.parametrize(
    ("key", "cls", "detail", "person"),
    [
        ("ASIASSOCAROL00000001", "person", "identity-center", "carol@acme.example"),
        ("ASIASAMLDAVE00000001", "person", "saml", "dave"),
        ("ASIAGHADEPLOY0000001", "workload", "github-actions", None),
        ("AKIADEPLOYBOT0000001", "workload", "sdk", None),
    ],
)
def test_federation_and_user_agents(
    case: Path, key: str, cls: str, detail: str, person: str | None
) -> None:
    c = _cls(case, key)
    assert (c["class"], c["detail"], c["person"]) == (cls, detail, person)


def test_instance_role_session_is_a_workload_bound_to_its_instance(case: Path) -> None:
    """Item 7: ``assumed-role/<role>/i-0abc...`` with ``ec2RoleDelivery``."""
    c = _cls(case, "ASIAEC2INSTANCE00001")
    assert (c["class"], c["detail"], c["confidence"]) == ("workload", "ec2-instance", "strong")
    assert "i-0abc1234def567890" in c["reason"]
    with duckdb.connect(str(case), read_only=True) as con:
        attrs = con.execute(
            "SELECT attributes->>'instance' FROM principal_classes WHERE subject = ?",
            ["ASIAEC2INSTANCE00001"],
        ).fetchone()
    assert attrs == ("i-0abc1234def567890",)


def test_aws_managed_policies_carry_no_account(case: Path) -> None:
    """Item 3: ``arn:aws:iam::aws:policy/...`` is no account; account counts use 12-digit
    ids only."""
    with duckdb.connect(str(case), read_only=True) as con:
        accounts = dict(
            con.execute(
                "SELECT resource_id, account FROM event_resources "
                "WHERE resource_id LIKE 'arn:aws:iam::aws:%'"
            ).fetchall()
        )
    assert accounts == {
        "arn:aws:iam::aws:policy/ReadOnlyAccess": None,
        "arn:aws:iam::aws:policy/AdministratorAccess": None,
    }
    with CaseStore.open(case) as store:
        found = live_findings(store, load_config(None))
    assert not [
        f
        for f in found
        if f.rule == "environment-crossing" and "aws" in f.details.get("accounts", [])
    ]


def test_cross_account_copies_make_one_issue_row_with_its_parent(case: Path) -> None:
    """Item 6: distinct eventIDs, one sharedEventID; the AWSAccount copy adds no parentless row."""
    with duckdb.connect(str(case), read_only=True) as con:
        rows = con.execute(
            "SELECT parent_credential_id, event_uid FROM credential_issues "
            "WHERE credential_id = 'ASIAXACCOUNT00000001'"
        ).fetchall()
        edge = con.execute(
            "SELECT evidence FROM links WHERE kind = 'MINTED' AND dst = 'ASIAXACCOUNT00000001'"
        ).fetchall()
        events = con.execute(
            "SELECT count(*) FROM events WHERE shared_event_id = 'shared-0001'"
        ).fetchone()
    assert rows == [("AKIAJOHNDOE000000001", "cloudtrail:ev-0009")]
    assert [sorted(e[0]) for e in edge] == [["cloudtrail:ev-0009", "cloudtrail:ev-0009-copy"]]
    assert events == (2,)


def test_docs_fixture_cross_account_pair(shared_fixtures: Path, tmp_path: Path) -> None:
    """The AWS documentation's two copies (files 02 and 03) reuse one eventID: one event,
    one issue row."""
    base = shared_fixtures / "cloudtrail" / "awsdocs-iam-user-guide"
    files = sorted(base.glob("0[23]-*.json"))
    assert len(files) == 2
    ingest(tmp_path / "c.duckdb", files)
    with duckdb.connect(str(tmp_path / "c.duckdb"), read_only=True) as con:
        n = con.execute(
            "SELECT count(*), count(DISTINCT credential_id) FROM credential_issues"
        ).fetchone()
    assert n == (1, 1)


def test_environment_crossing_is_for_non_human_identities(case: Path) -> None:
    """NHI8 fires on the bot's key in two accounts, not on a person's Identity Center session."""
    with CaseStore.open(case) as store:
        found = live_findings(store, load_config(None))
    crossing = {f.subjects[0] for f in found if f.rule == "environment-crossing"}
    assert "AKIADEPLOYBOT0000001" in crossing
    assert "ASIASSOCAROL00000001" not in crossing


def test_the_full_derive_reads_raw_once_with_the_scoped_paths_facts(
    case: Path, tmp_path: Path
) -> None:
    """A full derive reads the sampled and the issuing records' ``raw`` fields in one pass
    (``_kt_ct_raw``); the incremental derive reads each set on its own. Both must give every
    credential the same facts and the same decision: on this case's console, MFA, SAML,
    web-identity, EC2 and service-issued sessions, the scoped paths re-run over every credential
    equal the full derive's rows."""
    from keytrail.graph import derive, principal_class

    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(case.read_bytes())
    facts_sql = "SELECT * FROM credential_facts ORDER BY credential_id"
    cls_sql = "SELECT * FROM principal_classes WHERE subject_kind = 'credential' ORDER BY subject"
    with CaseStore.open(copy, read_only=False) as store:
        con = store.con
        full_facts, full_cls = con.execute(facts_sql).fetchall(), con.execute(cls_sql).fetchall()
        shown = con.execute(
            "SELECT count(ev_console), count(ev_mfa), count(ev_ec2) FROM credential_facts"
        ).fetchone()
        assert shown and all(shown)  # facts from the sampled records' raw
        details = {r[3] for r in full_cls}
        assert {"saml", "github-actions", "ec2-instance", "console"} <= details
        derive.mint_facts(con)
        con.execute("CREATE TEMP TABLE _all AS SELECT credential_id FROM credentials")
        con.execute("DELETE FROM credential_facts")
        # every credential as a first-seen one of a second ingest (since 0: every file)
        principal_class.refresh_facts(con, "_all", 0)
        assert con.execute(facts_sql).fetchall() == full_facts
        principal_class.classify_credentials(con, scope="_all", write="_all")
        assert con.execute(cls_sql).fetchall() == full_cls
        # and the full path again without a prior refresh_facts (it reads raw itself)
        principal_class.classify_credentials(con)
        assert con.execute(cls_sql).fetchall() == full_cls
        assert not con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = '_kt_ct_raw'"
        ).fetchone()[0]
