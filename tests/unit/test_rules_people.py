"""Rule files declaring ``identities = "non-human"`` do not fire on people.

Four callers do the same things (create an access key, stop a trail, hammer one denied call,
enumerate the account): a person in the AWS console, a person federated through SAML, an IAM
user the principal classifier calls a person (console sign-in) calling with a key of no firm
class of its own, and a workload's access key. Only the workload gets the ``nhi-*`` findings;
the community Sigma rule on ``StopLogging`` still fires for everyone.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from keytrail.analysis.rulefiles import parse_rule
from keytrail.cli.main import main
from keytrail.errors import ConfigError

ACCT = "123456789012"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0"
CONSOLE_KEY, SAML_KEY = "ASIACONSOLEBOB000001", "ASIASAMLDAVE00000001"
CAROL_KEY, WORKLOAD_KEY = "AKIACAROLEXAMPLE0001", "AKIADEPLOYEREXAMPLE1"
RULES = (
    "nhi-persistence-foothold",
    "nhi-logging-tampering",
    "nhi-denied-burst-one-action",
    "nhi-enumeration-burst",
)
STOP_LOGGING_SIGMA = "sigma:4db60cc0-36fb-42b7-9b58-a5b53019fb74"


def _user(name: str, key: str | None) -> dict[str, Any]:
    ident = {
        "type": "IAMUser",
        "principalId": f"AIDA{name.upper()}",
        "arn": f"arn:aws:iam::{ACCT}:user/{name}",
        "accountId": ACCT,
        "userName": name,
    }
    return {**ident, "accessKeyId": key} if key else ident


def _saml_session() -> dict[str, Any]:
    return {
        "type": "AssumedRole",
        "principalId": "AROASAML:dave",
        "arn": f"arn:aws:sts::{ACCT}:assumed-role/SAMLRole/dave",
        "accountId": ACCT,
        "accessKeyId": SAML_KEY,
        "sessionContext": {
            "sessionIssuer": {"type": "Role", "arn": f"arn:aws:iam::{ACCT}:role/SAMLRole"},
            "attributes": {"creationDate": "2026-01-05T10:00:00Z", "mfaAuthenticated": "false"},
        },
    }


def _ct(
    n: int,
    minute: int,
    second: int,
    name: str,
    source: str,
    ident: dict[str, Any],
    ua: str,
    **kw: Any,
) -> dict[str, Any]:
    rec = {
        "eventVersion": "1.09",
        "userIdentity": ident,
        "eventTime": f"2026-01-05T10:{minute:02d}:{second:02d}Z",
        "eventSource": f"{source}.amazonaws.com",
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": f"198.51.{100 + minute // 10}.7",
        "userAgent": ua,
        "requestParameters": None,
        "responseElements": None,
        "eventID": f"00000000-0000-4000-8000-{n:012d}",
        "eventType": "AwsApiCall",
        "recipientAccountId": ACCT,
    }
    rec.update(kw)
    return rec


def _the_same_things(n0: int, minute: int, ident: dict[str, Any], ua: str, **kw: Any) -> list[Any]:
    """A key created, a trail stopped, 12 denied GetPasswordData, 6 discovery calls."""
    recs = [
        _ct(
            n0,
            minute,
            0,
            "CreateAccessKey",
            "iam",
            ident,
            ua,
            **kw,
            requestParameters={"userName": "ci-bot"},
        ),
        _ct(
            n0 + 1,
            minute,
            1,
            "StopLogging",
            "cloudtrail",
            ident,
            ua,
            **kw,
            requestParameters={"name": "org-trail"},
        ),
    ]
    for i in range(12):
        recs.append(
            _ct(
                n0 + 2 + i,
                minute,
                2 + i,
                "GetPasswordData",
                "ec2",
                ident,
                ua,
                **kw,
                errorCode="Client.UnauthorizedOperation",
                requestParameters={"instanceId": "i-0123456789abcdef0"},
            )
        )
    discovery = [
        ("iam", "ListUsers"),
        ("iam", "ListRoles"),
        ("s3", "ListBuckets"),
        ("ec2", "DescribeInstances"),
        ("ec2", "DescribeVpcs"),
        ("sts", "GetCallerIdentity"),
    ]
    for i, (src, name) in enumerate(discovery):
        recs.append(_ct(n0 + 20 + i, minute, 20 + i, name, src, ident, ua, **kw))
    return recs


def _records() -> list[dict[str, Any]]:
    console = {"sessionCredentialFromConsole": "true"}
    recs = [
        # bob signs in to the console; his calls carry the console session's key
        _ct(
            1,
            0,
            0,
            "ConsoleLogin",
            "signin",
            _user("bob", None),
            BROWSER,
            responseElements={"ConsoleLogin": "Success"},
        ),
        *_the_same_things(100, 1, _user("bob", CONSOLE_KEY), BROWSER, **console),
        # dave federates through SAML; the key AssumeRoleWithSAML issued makes the calls
        _ct(
            2,
            10,
            0,
            "AssumeRoleWithSAML",
            "sts",
            {
                "type": "SAMLUser",
                "principalId": "IDP=:dave",
                "userName": "dave",
                "identityProvider": "IDP=",
            },
            "aws-internal/3",
            requestParameters={
                "roleArn": f"arn:aws:iam::{ACCT}:role/SAMLRole",
                "principalArn": f"arn:aws:iam::{ACCT}:saml-provider/Okta",
            },
            responseElements={
                "credentials": {"accessKeyId": SAML_KEY, "expiration": "Jan 5, 2026, 11:10:00 AM"},
                "assumedRoleUser": {"arn": f"arn:aws:sts::{ACCT}:assumed-role/SAMLRole/dave"},
            },
        ),
        *_the_same_things(200, 11, _saml_session(), "aws-cli/2.15.0"),
        # carol, an IAM user who signs in to the console, calls with her own CLI key
        _ct(
            3,
            20,
            0,
            "ConsoleLogin",
            "signin",
            _user("carol", None),
            BROWSER,
            responseElements={"ConsoleLogin": "Success"},
        ),
        *_the_same_things(300, 21, _user("carol", CAROL_KEY), "aws-cli/2.15.0"),
        # a deployment workload's key
        *_the_same_things(400, 31, _user("deployer", WORKLOAD_KEY), "Boto3/1.34.0 Python/3.12"),
    ]
    return recs


@pytest.fixture(scope="module")
def found(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    d = tmp_path_factory.mktemp("people")
    (d / "trail.json").write_text(json.dumps({"Records": _records()}), encoding="utf-8")
    case = d / "case.duckdb"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["ingest", str(case), str(d / "trail.json"), "-q"]) == 0
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["findings", str(case), "--json"]) == 0
    return case, list(json.loads(out.getvalue())["findings"])


def test_the_callers_are_classified_as_the_test_means(
    found: tuple[Path, list[dict[str, Any]]],
) -> None:
    with duckdb.connect(str(found[0]), read_only=True) as con:
        cls = dict(con.execute("SELECT subject, class FROM principal_classes").fetchall())
    assert cls[CONSOLE_KEY] == "person" and cls[SAML_KEY] == "person"
    assert cls[f"arn:aws:iam::{ACCT}:user/carol"] == "person"
    assert cls.get(CAROL_KEY) != "person"  # carol is excluded through her principal
    assert cls.get(WORKLOAD_KEY) != "person"


@pytest.mark.parametrize("rule", RULES)
def test_nhi_rules_fire_on_the_workload_only(
    found: tuple[Path, list[dict[str, Any]]], rule: str
) -> None:
    hits = [f for f in found[1] if f["rule"] == rule]
    subjects = {s for f in hits for s in f["subjects"]}
    assert WORKLOAD_KEY in subjects, f"{rule} did not fire on the workload"
    for person in (CONSOLE_KEY, SAML_KEY, CAROL_KEY):
        assert person not in subjects, f"{rule} fired on a person's {person}"
    # every hit cites the workload's own events
    for f in hits:
        assert all(e.startswith("00000000-0000-4000-8000-0000000004") for e in f["evidence"])


def test_sigma_still_fires_on_people(found: tuple[Path, list[dict[str, Any]]]) -> None:
    subjects = {s for f in found[1] if f["rule"] == STOP_LOGGING_SIGMA for s in f["subjects"]}
    assert {CONSOLE_KEY, SAML_KEY, CAROL_KEY, WORKLOAD_KEY} <= subjects


def test_identities_key_is_validated() -> None:
    base = 'id = "my-rule"\ntitle = "T"\nlevel = "low"\ndescription = "d"\n'
    rule = parse_rule(base + 'identities = "non-human"\n[match]\nactions = ["s3:*"]\n', "r.toml")
    assert rule.identities == "non-human"
    assert parse_rule(base + '[match]\nactions = ["s3:*"]\n', "r.toml").identities == "any"
    with pytest.raises(ConfigError, match="identities"):
        parse_rule(base + 'identities = "people"\n[match]\nactions = ["s3:*"]\n', "r.toml")
