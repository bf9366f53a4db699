"""CloudTrail ingest on the real fixtures: counts, rejects, dedup, mapping, credential issues.

Expected counts were verified independently of keytrail (python ``json`` over each file:
``len(doc["Records"])``, array length, lines; eventIDs de-duplicated by hand).
"""

from __future__ import annotations

import gzip
import json
import shutil
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from keytrail.ingest.cloudtrail import adapter as cloudtrail
from keytrail.ingest.runner import ingest

CT = "cloudtrail"

#: path suffix -> (status, records, events after dedup, duplicates, rejected)
EXPECTED = {
    "cloudgrep/bad_cloudtrail.json": ("partial", 1, 0, 0, 1),
    "cloudgrep/cloudtrail.json": ("loaded", 1, 1, 0, 0),
    "cloudgrep/cloudtrail_singleline.json": ("loaded", 1, 1, 0, 0),
    "cloudtrail2sightings/aws.credential-access.secretsmanager-retrieve-secrets.json": (
        "loaded",
        10,
        10,
        0,
        0,
    ),
    "cloudtrail2sightings/aws.defense-evasion.cloudtrail-delete.json": ("loaded", 1, 1, 0, 0),
    # malformed upstream: two missing commas between records; all 3 records salvaged
    "cloudtrail2sightings/aws.execution.ec2-user-data.json": ("loaded", 3, 3, 0, 2),
    "cloudtrail2sightings/aws.exfiltration.ec2-share-ebs-snapshot.json": ("loaded", 1, 1, 0, 0),
    "elastic-integrations/test-assume-role-aws-service-json.log": ("loaded", 1, 1, 0, 0),
    "elastic-integrations/test-assume-role-email-session-json.log": ("loaded", 1, 1, 0, 0),
    "elastic-integrations/test-cloudtrail-digest-json.log": ("digest", 1, 0, 0, 0),
    "elastic-integrations/test-converse-json.log": ("loaded", 1, 1, 0, 0),
    "elastic-integrations/test-tls-details-json.log": ("loaded", 3, 3, 0, 0),
    "elastic-integrations/test-user-authentication.log": ("loaded", 1, 1, 0, 0),
    # 437 records, 387 with eventIDs of which 213 distinct (placeholders such as "1" x90), 50 without;
    # two are the AWS documentation's ConsoleLogin examples (signin-02, signin-03), loaded first
    "panther-analysis/panther_cloudtrail_test_events.ndjson": ("loaded", 437, 172, 265, 0),
    "panther-analysis/panther_cloudtrail_test_events.index.csv": ("skipped", 0, 0, 0, 0),
    "SOURCES.md": ("skipped", 0, 0, 0, 0),
    # both share eventID ee73c230-... with a Panther test event loaded earlier
    "stratus-red-team/pr-672/aws.defense-evasion.bedrock-guardrail-delete.json": (
        "loaded",
        1,
        0,
        1,
        0,
    ),
    "stratus-red-team/pr-672/aws.defense-evasion.bedrock-model-invocation-logging-delete.json": (
        "loaded",
        1,
        0,
        1,
        0,
    ),
    "trailscraper/111111111111_CloudTrail_eu-central-1_20171211T1505Z_A6kvhMoVeCsc7v8U.json": (
        "loaded",
        2,
        2,
        0,
        0,
    ),
    # the .gz twin of the .json above: same eventIDs
    "trailscraper/111111111111_CloudTrail_eu-central-1_20171211T1505Z_A6kvhMoVeCsc7v8U.json.gz": (
        "loaded",
        2,
        0,
        2,
        0,
    ),
    "trailscraper/events-for-smoke-test.json": ("loaded", 3, 1, 2, 0),
    # AWS documentation examples: one record per file (two without an eventID, keyed by a hash of the record)
    **{
        f"awsdocs-cloudtrail-user-guide/{n}": ("loaded", 1, 1, 0, 0)
        for n in (
            "AwsServiceEvent-kms-RotateKey.json",
            "log-example-cloudtrail-UpdateTrail-error.json",
            "log-example-ec2-CreateKeyPair-console.json",
            "log-example-iam-AddUserToGroup-console.json",
            "signin-01-iamuser-success-no-mfa.json",
            "signin-02-iamuser-success-with-mfa.json",
            "signin-03-iamuser-failure.json",
            "signin-04-iamuser-CheckMfa-single-device.json",
            "signin-06-root-success-no-mfa.json",
            "signin-08-root-failure.json",
            "signin-09-root-EnableMFADevice.json",
            "signin-10-root-PasswordUpdated.json",
        )
    },
    # the documentation reuses the eventID of the example before it
    "awsdocs-cloudtrail-user-guide/signin-05-iamuser-CheckMfa-multiple-devices.json": (
        "loaded",
        1,
        0,
        1,
        0,
    ),
    "awsdocs-cloudtrail-user-guide/signin-07-root-success-with-mfa.json": ("loaded", 1, 0, 1, 0),
    # a userIdentity fragment (no eventTime, eventName, eventSource): not a CloudTrail record
    "awsdocs-cloudtrail-user-guide/userIdentity-sourceIdentity-fragment.json": (
        "skipped",
        0,
        0,
        0,
        0,
    ),
    **{
        f"awsdocs-iam-identity-center-user-guide/signin-{i:02d}.json": ("loaded", 1, 1, 0, 0)
        for i in range(1, 15)
        if i != 4
    },
    # same eventID as signin-03 (the documentation's external-IdP variant of the same sign-in)
    "awsdocs-iam-identity-center-user-guide/signin-04.json": ("loaded", 1, 0, 1, 0),
    **{
        f"awsdocs-iam-identity-center-user-guide/sso-entries-0{i}.json": ("loaded", 1, 1, 0, 0)
        for i in (1, 2, 3)
    },
    **{
        f"awsdocs-iam-user-guide/{n}": ("loaded", 1, 1, 0, 0)
        for n in (
            "01-iam-GetUserPolicy-console-invokedBy-signin.json",
            "02-sts-AssumeRole-cross-account-caller-account-copy.json",
            "04-sts-AssumeRole-role-chaining-sourceIdentity.json",
            "05-s3-DeleteBucket-assumed-role-session.json",
            "09-signin-ConsoleLogin-failure.json",
            "10-signin-ConsoleLogin-failure-unknown-user.json",
        )
    },
    # the role account's copy of 02's cross-account AssumeRole: same eventID, stored once
    "awsdocs-iam-user-guide/03-sts-AssumeRole-cross-account-role-account-copy.json": (
        "loaded",
        1,
        0,
        1,
        0,
    ),
    # invalid JSON as AWS published it: the one record is a reject with its reason, the file is still read
    **{
        f"awsdocs-iam-user-guide/{n}": ("loaded", 1, 0, 0, 1)
        for n in (
            "06-sts-AssumeRoleWithSAML.INVALID-upstream.json",
            "07-sts-AssumeRoleWithWebIdentity.INVALID-upstream.json",
            "08-signin-ConsoleLogin-success.INVALID-upstream.json",
        )
    },
    "awsdocs-iam-user-guide/11-userIdentity-sourceIdentity-fragment.json": ("skipped", 0, 0, 0, 0),
}


@pytest.fixture(scope="module")
def fixture_case(
    tmp_path_factory: pytest.TempPathFactory, shared_fixtures: Path
) -> Iterator[duckdb.DuckDBPyConnection]:
    case = tmp_path_factory.mktemp("ct") / "case.duckdb"
    summary = ingest(case, [shared_fixtures / CT])
    assert not [f for f in summary.files if f.status == "failed"]
    con = duckdb.connect(str(case), read_only=True)
    yield con
    con.close()


def _rows(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None
) -> list[tuple[Any, ...]]:
    return con.execute(sql, params or []).fetchall()


def test_every_fixture_file_loads_with_expected_counts(
    fixture_case: duckdb.DuckDBPyConnection,
) -> None:
    rows = _rows(
        fixture_case, "SELECT path, status, records, events, duplicates, rejected FROM evidence"
    )
    got = {}
    for path, *rest in rows:
        rel = path.split(f"/{CT}/", 1)[1]
        got[rel] = tuple(rest)
    stratus = {k: v for k, v in got.items() if k.startswith("stratus-red-team/detonation-logs/")}
    assert len(stratus) == 35
    assert all(v[0] == "loaded" and v[4] == 0 for v in stratus.values())
    assert sum(v[1] for v in stratus.values()) == 310
    for rel, expected in EXPECTED.items():
        assert got[rel] == expected, rel
    assert _rows(fixture_case, "SELECT count(*) FROM events")[0][0] == 510 + 34 - 2
    # the one digest fixture names S3 objects that are not among the fixtures
    assert _rows(
        fixture_case, "SELECT DISTINCT integrity FROM evidence WHERE source = 'cloudtrail'"
    ) == [("no-digest",)]


def test_rejects_say_where_and_why(fixture_case: duckdb.DuckDBPyConnection) -> None:
    rows = _rows(
        fixture_case,
        """SELECT regexp_replace(v.path, '.*/', ''), r.record_no, r.byte_offset, r.reason
                                  FROM rejects r JOIN evidence v USING (file_id) ORDER BY 1, 3""",
    )
    assert rows == [
        (
            "06-sts-AssumeRoleWithSAML.INVALID-upstream.json",
            1,
            0,
            "invalid JSON: Expecting ',' delimiter",
        ),
        (
            "07-sts-AssumeRoleWithWebIdentity.INVALID-upstream.json",
            1,
            0,
            "invalid JSON: Expecting ',' delimiter",
        ),
        (
            "08-signin-ConsoleLogin-success.INVALID-upstream.json",
            1,
            0,
            "invalid JSON: Invalid \\escape",
        ),
        ("aws.execution.ec2-user-data.json", None, 3327, "missing ',' after record 1; reading on"),
        ("aws.execution.ec2-user-data.json", None, 6226, "missing ',' after record 2; reading on"),
        ("bad_cloudtrail.json", 1, 13, "data ends inside this record (truncated)"),
    ]
    salvaged = _rows(
        fixture_case,
        """SELECT record_no, action FROM events JOIN evidence v USING (file_id)
                                      WHERE v.path LIKE '%sightings/aws.execution.ec2-user-data.json' ORDER BY 1""",
    )
    assert salvaged == [
        (1, "ec2:StopInstances"),
        (2, "ec2:ModifyInstanceAttribute"),
        (3, "ec2:StartInstances"),
    ]


def test_assume_role_chain_and_derived_credential_use(
    fixture_case: duckdb.DuckDBPyConnection,
) -> None:
    issue = _rows(
        fixture_case,
        """SELECT kind, parent_credential_id, principal_uid, principal_name, confidence,
                                          expires_at::VARCHAR, reason
                                   FROM credential_issues WHERE credential_id = 'ASIANQQHHS551LWULIWD'""",
    )
    assert issue == [
        (
            "aws-temporary-key",
            "AKIAWOGXN38MFN92ING5",
            (
                "arn:aws:sts::457448411975:assumed-role/stratus-red-team-ec2-get-password-data-role/"
                "aws-go-sdk-1722375070115152000"
            ),
            "aws-go-sdk-1722375070115152000",
            "proven",
            "2024-07-30 21:46:15",
            "AssumeRole responseElements.credentials.accessKeyId",
        )
    ]
    used = _rows(
        fixture_case,
        """SELECT count(*), min(outcome), max(outcome), min(credential_kind), min(actor_type)
                                  FROM events WHERE credential_id = 'ASIANQQHHS551LWULIWD'""",
    )
    assert used == [(30, "denied", "denied", "aws-temporary-key", "AssumedRole")]


def test_federation_token_and_create_access_key(fixture_case: duckdb.DuckDBPyConnection) -> None:
    fed = _rows(
        fixture_case,
        """SELECT parent_credential_id, principal_uid, principal_name FROM credential_issues
                                 WHERE credential_id = 'ASIASTJKC5GCM7ZE6LUP'""",
    )
    assert fed == [
        (
            "AKIA6V1GNZTT65XQH36M",
            "arn:aws:sts::742491224508:federated-user/stratus_red_team",
            "stratus_red_team",
        )
    ]
    use = _rows(
        fixture_case,
        """SELECT action, actor_type, actor_name, session_id FROM events
                                 WHERE credential_id = 'ASIASTJKC5GCM7ZE6LUP'""",
    )
    assert use == [
        (
            "sts:GetCallerIdentity",
            "FederatedUser",
            "stratus_red_team",
            "arn:aws:sts::742491224508:federated-user/stratus_red_team",
        )
    ]
    key = _rows(
        fixture_case,
        """SELECT kind, parent_credential_id, principal_uid FROM credential_issues
                                 WHERE credential_id = 'AKIAL80DWDVKKM0UXEER'""",
    )
    assert key == [
        (
            "aws-access-key",
            "AKIA30BEZSJBVKOFKZW0",
            "arn:aws:iam::946986569305:user/stratus-red-team-backdoor-u-user",
        )
    ]


def test_only_successful_calls_issue_and_saml_has_no_parent(
    fixture_case: duckdb.DuckDBPyConnection,
) -> None:
    assert _rows(
        fixture_case,
        """SELECT count(*) FROM credential_issues c JOIN events e USING (event_uid)
                                  WHERE e.outcome <> 'success'""",
    ) == [(0,)]
    # AWSService AssumeRole (instance profile): no caller key, so no parent
    assert _rows(
        fixture_case,
        """SELECT parent_credential_id, principal_name FROM credential_issues
                                  WHERE credential_id = 'ASIAEXAMPLEEXAMPLE01'""",
    ) == [(None, "i-0123456789abcdef0")]


def test_secrets_never_reach_details_but_raw_is_untouched(
    fixture_case: duckdb.DuckDBPyConnection,
) -> None:
    n, masked, raw_kept = _rows(
        fixture_case,
        """
        SELECT count(*), count(*) FILTER (WHERE details->>'$.responseElements.credentials.sessionToken' = '****'),
               count(*) FILTER (WHERE raw LIKE '%"sessionToken"%')
        FROM events WHERE details::VARCHAR LIKE '%sessionToken%'""",
    )[0]
    assert n > 0 and masked == n and raw_kept == n


def test_column_mapping(fixture_case: duckdb.DuckDBPyConnection) -> None:
    ic = _rows(
        fixture_case,
        """SELECT action, actor_type, human_id, outcome FROM events
                                WHERE actor_type = 'IdentityCenterUser'""",
    )
    assert ic == [("signin:UserAuthentication", "IdentityCenterUser", "redacted", "success")]
    root = _rows(
        fixture_case,
        "SELECT count(*) FROM events WHERE actor_type = 'Root' AND actor_name = 'root'",
    )
    assert root[0][0] > 0
    s3 = _rows(
        fixture_case,
        """SELECT e.target, list(r.resource_type ORDER BY r.resource_type)
                                FROM events e JOIN event_resources r USING (event_uid)
                                WHERE e.source_event_id = ? GROUP BY ALL""",
        [_event_id(fixture_case, "cloudgrep/cloudtrail_singleline.json")],
    )
    assert len(s3) == 1 and s3[0][0].startswith("arn:aws:s3:::") and "AWS::S3::Object" in s3[0][1]
    naive = _rows(
        fixture_case,
        "SELECT time::VARCHAR FROM events WHERE time_raw = '2022-12-11 19:42:55' LIMIT 1",
    )
    assert naive == [("2022-12-11 19:42:55",)]
    assert _rows(
        fixture_case, "SELECT count(*) FROM events WHERE time_raw = '...' AND time IS NULL"
    ) == [(1,)]


def _event_id(con: duckdb.DuckDBPyConnection, rel: str) -> str:
    return str(
        _rows(
            con,
            "SELECT source_event_id FROM events JOIN evidence v USING (file_id) WHERE v.path LIKE ?",
            [f"%/{rel}"],
        )[0][0]
    )


def test_same_file_twice_is_a_no_op(tmp_path: Path, shared_fixtures: Path) -> None:
    src = (
        shared_fixtures
        / CT
        / "stratus-red-team/detonation-logs/aws.execution.ssm-send-command.json"
    )
    case = tmp_path / "c.duckdb"
    first = ingest(case, [src])
    again = ingest(case, [src])
    assert [f.status for f in first.files] == ["loaded"]
    assert [f.status for f in again.files] == ["already-ingested"]
    assert again.events_in_case == first.events_in_case == 56


def test_truncated_gzip_keeps_records_before_the_break(
    tmp_path: Path, shared_fixtures: Path
) -> None:
    events = json.loads(
        (
            shared_fixtures / CT / "stratus-red-team/detonation-logs/"
            "aws.credential-access.ec2-steal-instance-credentials.json"
        ).read_text()
    )
    content = json.dumps({"Records": events}, indent=2).encode()
    whole = gzip.compress(content)
    cut = tmp_path / "AWSLogs/111122223333/CloudTrail/us-east-1/2024/08/01/cut.json.gz"
    cut.parent.mkdir(parents=True)
    cut.write_bytes(whole[: len(whole) * 6 // 10])
    prefix = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(cut.read_bytes())
    # Independent expectation: records whose full text lies inside the readable prefix.
    text, dec, pos, complete = content.decode(), json.JSONDecoder(), content.index(b"[") + 1, 0
    for _ in events:
        while text[pos] in " \n,":
            pos += 1
        _, pos = dec.raw_decode(text, pos)
        complete += pos <= len(prefix)
    assert 0 < complete < len(events)
    summary = ingest(tmp_path / "c.duckdb", [cut])
    (f,) = summary.files
    assert f.status == "partial" and "gzip" in (f.note or "")
    con = duckdb.connect(str(tmp_path / "c.duckdb"), read_only=True)
    got = con.execute("SELECT source_event_id FROM events ORDER BY record_no").fetchall()
    assert [r[0] for r in got] == [e["eventID"] for e in events[:complete]]


def test_good_files_in_a_batch_survive_a_bad_one(tmp_path: Path, shared_fixtures: Path) -> None:
    tree = tmp_path / "AWSLogs/o-abc123/111122223333/CloudTrail/eu-west-1/2024/01/01"
    tree.mkdir(parents=True)
    events = json.loads(
        (
            shared_fixtures / CT / "stratus-red-team/detonation-logs/"
            "aws.execution.ec2-user-data.json"
        ).read_text()
    )
    for i in range(3):
        (tree / f"good{i}.json.gz").write_bytes(
            gzip.compress(json.dumps({"Records": events[i * 10 : (i + 1) * 10]}).encode())
        )
    bad = [json.dumps(e) for e in events[30:35]]
    bad[1] = bad[1][:-20]  # a broken record in the middle
    bad.insert(3, "42")  # not an object
    (tree / "mixed.json").write_text('{"Records": [' + ",".join(bad) + "]}")
    summary = ingest(tmp_path / "c.duckdb", [tmp_path / "AWSLogs"])
    by_name = {Path(f.path).name: f for f in summary.files}
    assert {n: (f.status, f.records, f.rejected) for n, f in by_name.items()} == {
        "good0.json.gz": ("loaded", 10, 0),
        "good1.json.gz": ("loaded", 10, 0),
        "good2.json.gz": ("loaded", 10, 0),
        "mixed.json": ("loaded", 6, 2),
    }
    assert summary.events_in_case == 34
    con = duckdb.connect(str(tmp_path / "c.duckdb"), read_only=True)
    rejects = con.execute("SELECT record_no, reason FROM rejects ORDER BY record_no").fetchall()
    assert [r[0] for r in rejects] == [2, 4]
    assert rejects[1][1] == "record is not a JSON object"


def test_records_without_event_source_are_rejected_not_dropped(tmp_path: Path) -> None:
    f = tmp_path / "odd.json"
    f.write_text(
        json.dumps(
            {
                "Records": [
                    {
                        "eventSource": "s3.amazonaws.com",
                        "eventName": "GetObject",
                        "eventID": "a1",
                        "eventTime": "2024-01-01T00:00:00Z",
                    },
                    {"hello": "world"},
                ]
            }
        )
    )
    summary = ingest(tmp_path / "c.duckdb", [f])
    assert (summary.files[0].records, summary.files[0].rejected, summary.events_in_case) == (
        2,
        1,
        1,
    )


def test_copy_of_fixture_gz_in_s3_layout_uses_bulk_path(
    tmp_path: Path, shared_fixtures: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_fallback(ctx: object) -> None:
        raise AssertionError("the bulk DuckDB scan refused a well-formed Records file")

    monkeypatch.setattr(cloudtrail, "_tolerant_read", no_fallback)
    name = "111111111111_CloudTrail_eu-central-1_20171211T1505Z_A6kvhMoVeCsc7v8U.json.gz"
    dst = tmp_path / "AWSLogs/111111111111/CloudTrail/eu-central-1/2017/12/11" / name
    dst.parent.mkdir(parents=True)
    shutil.copy(shared_fixtures / CT / "trailscraper" / name, dst)
    summary = ingest(tmp_path / "c.duckdb", [tmp_path])
    assert [(f.status, f.format, f.records) for f in summary.files] == [
        ("loaded", "cloudtrail-records", 2)
    ]
