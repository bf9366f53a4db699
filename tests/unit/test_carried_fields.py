"""The CloudTrail fields the ingest keeps for the raw pass (``keytrail.store.carried``).

They replace a parse of ``events.raw`` only where the masking left the record as read
(``ct_plain``); the raw pass must then give exactly the rows it gives from the text alone: the
same Sigma hits and the same console-session flag, for records whose masking changes a kept
field, for every shape of the flag, for a path whose middle is an array, and for an old case
without the columns."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from keytrail.analysis.findings.catalog import RULES
from keytrail.analysis.findings.rawpass import CONSOLE, console_sql, one_pass_sql
from keytrail.analysis.findings.run import live_findings
from keytrail.analysis.sigma import fields
from keytrail.analysis.sigma.rules import RuleSet, load_rules
from keytrail.cli.main import main
from keytrail.config import load_config
from keytrail.ingest.cloudtrail.sql import SPEC, events_sql, stage_select
from keytrail.store import carried
from keytrail.store.case import CaseStore

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
ARN = "arn:aws:sts::111122223333:assumed-role/deploy/ci"


def _rec(i: int, **extra: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "eventVersion": "1.08",
        "eventID": f"00000000-0000-4000-8000-{i:012d}",
        "eventTime": f"2026-03-01T00:{i // 60:02d}:{i % 60:02d}Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": "ListBuckets",
        "eventType": "AwsApiCall",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7",
        "userAgent": "aws-cli/2.15.0",
        "recipientAccountId": "111122223333",
        "userIdentity": {
            "type": "AssumedRole",
            "arn": ARN,
            "accountId": "111122223333",
            "accessKeyId": "ASIAEXAMPLE000000001",
            "sessionContext": {"sessionIssuer": {"type": "Role", "arn": "arn:aws:iam::1:role/x"}},
        },
    }
    rec.update(extra)
    return rec


#: Records the masking changes (a secret in a kept field or elsewhere), the console flag in
#: every shape, odd values of kept fields, and paths the ingest's parse cannot give.
RECORDS: list[dict[str, Any]] = [
    _rec(0),
    _rec(1, userAgent=f"aws-cli/2 password={SECRET}"),  # the secret inside userAgent
    _rec(
        2,
        userIdentity={"type": "IAMUser", "arn": f"arn:aws:iam::1:user/token={SECRET}"},
    ),  # ... inside the ARN
    _rec(3, requestParameters={"secretAccessKey": SECRET}),  # elsewhere in the record
    _rec(4, sessionCredentialFromConsole=True),
    _rec(5, sessionCredentialFromConsole="true"),
    _rec(6, sessionCredentialFromConsole=False),
    _rec(7, sessionCredentialFromConsole="TRUE"),
    _rec(8, sessionCredentialFromConsole=1),
    _rec(9, sessionCredentialFromConsole={"v": True}),
    _rec(10, sessionCredentialFromConsole=None),
    _rec(11, sessionCredentialFromConsole=True, userAgent=f"x token={SECRET}"),  # masked
    _rec(12, sourceIPAddress="", eventType=None, userAgent=7),
    _rec(13, userIdentity={"type": "Root", "arn": "arn:aws:iam::1:root"}),
    _rec(14, userIdentity={"arn": ARN, "sessionContext": [{"sessionIssuer": {}}]}),
    _rec(
        15,
        userIdentity={
            "arn": ARN,
            "sessionContext": [{"sessionIssuer": {"type": "Role"}}, {"x": 1}],
        },
    ),
    _rec(16, userIdentity={"arn": ARN, "sessionContext": {"sessionIssuer": 5}}),
    _rec(22, eventSource="s3.amazonaws.com.amazonaws.com"),  # service cannot give it back
    _rec(23, userIdentity={"type": "AWSService", "invokedBy": "ec2.amazonaws.com"}),  # no ARN
    _rec(24, userAgent=""),
    _rec(25, userAgent=None, sourceIPAddress=None),
    _rec(17, eventName="AssumeRole", eventSource="sts.amazonaws.com"),
    _rec(18, eventName="ConsoleLogin", eventType="AwsConsoleSignIn", userAgent="Mozilla"),
    _rec(19, eventName={"nested": "name"}),
    _rec(20, userAgent="TruffleHog"),
    _rec(21, userIdentity={"type": "Root", "arn": ARN, "invokedBy": "x"}, eventSource=""),
]


def _write(folder: Path, records: list[dict[str, Any]], extra_text: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "111122223333_CloudTrail_us-east-1_20260301T0000Z_test.json"
    text = json.dumps({"Records": records})
    if extra_text:  # a record written by hand (a key with an escape) after the others
        text = text[:-2] + ", " + extra_text + "]}"
    path.write_text(text, encoding="utf-8")
    return path


#: The console key written with an escape: the parse finds it, the text search does not.
ESCAPED_KEY = (
    '{"eventID": "e-escaped", "eventTime": "2026-03-01T01:00:00Z", "eventSource": '
    '"iam.amazonaws.com", "eventName": "ListUsers", '
    '"userIdentity": {"arn": "arn:aws:iam::1:user/u"},'
    ' "session\\u0043redentialFromConsole": true}'
)


def _ingest(case: Path, *paths: Path, snap: bool = False) -> None:
    args = ["ingest", str(case), *map(str, paths), "-q", *([] if snap else ["--no-snapshot"])]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(args) == 0


def _pass(con: duckdb.DuckDBPyConnection, carried_fields: bool) -> list[tuple[int, str]]:
    rs = load_rules()
    sql = one_pass_sql(rs, list(rs.rules), (CONSOLE, -1), None, carried_fields)
    return sorted(con.execute(sql).fetchall())


def _rows_sql(rs: RuleSet, kept: bool) -> str:
    return fields.select_sql(
        rs.fields, rs.lower_fields, rs.everywhere, rs.names, None, CONSOLE, kept
    )


@pytest.fixture
def case(tmp_path: Path) -> Path:
    path = tmp_path / "case.duckdb"
    _ingest(path, _write(tmp_path / "logs", RECORDS, ESCAPED_KEY))
    return path


def test_fields_are_kept_only_where_the_masking_left_the_text(case: Path) -> None:
    con = duckdb.connect(str(case), read_only=True)
    rows = {
        uid[-2:]: (plain, event_type)
        for uid, plain, event_type in con.execute(
            "SELECT event_uid, ct_plain, ct_event_type FROM events"
        ).fetchall()
    }
    # masked (a secret in userAgent, the ARN, elsewhere), or a field a column cannot give back
    other = {"01", "02", "03", "11", "12", "21", "22", "23", "24"}
    assert {k for k, v in rows.items() if v[0] is False} == other
    assert all(v == (False, None) for k, v in rows.items() if k in other)
    assert rows["00"] == (True, "AwsApiCall") and rows["25"][0] is True
    # no kept column holds the secret
    kept = " || ".join(f"coalesce({c}::VARCHAR, '')" for c in sorted(carried.COLUMNS))
    assert con.execute(
        f"SELECT count(*) FROM events WHERE contains({kept}, '{SECRET}')"
    ).fetchone() == (0,)
    # where kept, each field is what json_extract_string reads from the stored text
    for field, column in carried.FIELDS.items():
        path = "$." + field
        differ = con.execute(
            f"SELECT count(*) FROM events WHERE ct_plain AND {column} IS DISTINCT FROM "
            f"json_extract_string(raw, '{path}')"
        ).fetchone()
        assert differ == (0,), field
    flags = con.execute(
        f"SELECT count(*) FILTER (WHERE ct_console IS DISTINCT FROM coalesce({console_sql('raw')}, "
        "false)), count(*) FILTER (WHERE ct_console) FROM events WHERE ct_plain"
    ).fetchone()
    # the boolean and the string "true" (and the escaped key, which the bulk reader wrote out
    # again unescaped); not TRUE, 1 or an object
    assert flags == (0, 3)


def test_the_raw_pass_gives_the_same_rows_with_and_without_the_kept_fields(case: Path) -> None:
    con = duckdb.connect(str(case), read_only=True)
    with_fields, from_text = _pass(con, True), _pass(con, False)
    assert with_fields == from_text
    uids = {u[-2:] for r, u in from_text if r == -1}
    assert uids == {"04", "05", "11", "ed"}  # the masked record's flag read from its text
    assert any(r >= 0 for r, _ in from_text)  # the any-event rules match here
    # the deep path through an array: record 15's issuer type is read from its text
    rs = load_rules()
    deep = "userIdentity.sessionContext.sessionIssuer.type"
    assert deep in rs.everywhere
    got = [
        con.execute(
            f'SELECT event_uid[-2:], "{deep}" FROM ({_rows_sql(rs, kept)}) '
            "WHERE event_uid[-2:] IN ('00', '13', '14', '15', '16') ORDER BY 1"
        ).fetchall()
        for kept in (True, False)
    ]
    assert (
        got[0]
        == got[1]
        == [("00", "Role"), ("13", None), ("14", None), ("15", "Role"), ("16", None)]
    )


@pytest.mark.parametrize("premask", [False, True])
def test_both_ways_of_masking_give_the_same_rows(premask: bool) -> None:
    con = duckdb.connect()
    texts = [json.dumps(r) for r in RECORDS] + [ESCAPED_KEY]
    con.execute(
        "CREATE TABLE src AS SELECT 0 AS file_id, i::BIGINT AS record_no, NULL::BIGINT AS "
        "byte_offset, 'cloudtrail-records' AS format, t AS rec FROM "
        "(SELECT unnest($t) AS t, generate_subscripts($t, 1) AS i)",
        {"t": texts},
    )
    con.execute(f"CREATE TABLE st AS {stage_select('src', premask=premask)}")
    rows = con.execute(
        "SELECT record_no, ct_plain, raw, user_agent, ct_console "
        f"FROM ({events_sql('st', premasked=premask)}) "
        "ORDER BY 1"
    ).fetchall()
    assert len(rows) == len(texts)
    for _, plain, raw, ua, console in rows:
        assert plain is False or "****" not in raw
        assert SECRET not in raw and (ua is None or SECRET not in ua)
        flag = con.execute(f"SELECT coalesce({console_sql('$t')}, false)", {"t": raw}).fetchone()
        assert console is (flag[0] if plain else None)  # type: ignore[index]
    # the key written with an escape is parsed but not found in the text: no flag
    assert rows[-1][1] is True and rows[-1][4] is False


def test_json_transform_reads_values_as_json_extract_string_does() -> None:
    """The kept fields come from the ingest's ``json_transform``; the raw pass reads the text
    with ``json_extract_string``: the same text for every kind of JSON value."""
    con = duckdb.connect()
    values = ['"a"', "5", "5.50", "1e3", "-0", "true", "null", '{"b": 1, "a": [1, 2]}', '[1, "x"]']
    values += ['""', '"x\\u00e9\\n\\"q"', "12345678901234567890", '"\\ud83d\\ude00"']
    for v in values:
        text = f'{{"eventType": {v}, "eventType": "second", "userIdentity": {{"arn": {v}}}}}'
        got = con.execute(
            f"SELECT r.eventType, r.userIdentity.arn, json_extract_string($t, '$.eventType'), "
            f"json_extract_string($t, '$.userIdentity.arn') FROM (SELECT json_transform($t, "
            f"'{SPEC}') AS r)",
            {"t": text},
        ).fetchone()
        assert got is not None and got[0] == got[2] and got[1] == got[3], v


def test_an_old_case_without_the_columns_gives_the_same_findings(
    case: Path, tmp_path: Path
) -> None:
    cfg = load_config(None, rule_ids=RULES)
    with CaseStore.open(case) as store:
        new = [f.as_dict() for f in live_findings(store, cfg)]
    old = tmp_path / "old.duckdb"
    old.write_bytes(case.read_bytes())
    con = duckdb.connect(str(old))
    for name in sorted(carried.COLUMNS):
        con.execute(f"ALTER TABLE events DROP COLUMN {name}")
    con.execute("UPDATE case_meta SET value = '2' WHERE key = 'schema_version'")
    con.close()
    with CaseStore.open(old, read_only=True) as store:  # read as it is: every record parsed
        assert [f.as_dict() for f in live_findings(store, cfg)] == new != []
    # opened for writing: migrated, the columns added, NULL for its rows
    with CaseStore.open(old, read_only=False) as store:
        assert store.meta("schema_version") == "3"
        assert store.con.execute("SELECT count(ct_plain) FROM events").fetchone() == (0,)
        assert [f.as_dict() for f in live_findings(store, cfg)] == new
    # a later ingest into the migrated case keeps the fields of its own records
    _ingest(old, _write(tmp_path / "more", [_rec(100 + i) for i in range(3)]))
    con = duckdb.connect(str(old), read_only=True)
    assert con.execute("SELECT count(*) FILTER (WHERE ct_plain) FROM events").fetchone() == (3,)
    assert _pass(con, True) == _pass(con, False)


def test_a_record_named_only_by_rules_that_read_kept_fields_is_not_parsed(case: Path) -> None:
    """A record a rule selects by name is parsed only when a rule allowing that name reads a
    field the ingest does not keep (``RuleSet.parsed_names``): the others (``ListBuckets``:
    its rule reads ``userIdentity.type``) are read from the columns like unnamed records."""
    rs = load_rules()
    assert "listbuckets" in rs.names and "listbuckets" not in rs.parsed_names
    assert "consolelogin" in rs.parsed_names
    mfa = next(i for i, r in enumerate(rs.rules) if "additionalEventData.MFAUsed" in r.fields)
    con = duckdb.connect(str(case))
    before = _pass(con, True)
    assert before == _pass(con, False)
    listed = "ct_plain AND operation = 'ListBuckets'"
    named = {u for (u,) in con.execute(f"SELECT event_uid FROM events WHERE {listed}").fetchall()}
    assert len(named) > 10 and named & {u for r, u in before if r >= 0}
    # Their stored text replaced: the kept fields answer, the text is not read (main parsed it)
    con.execute(f"""UPDATE events SET raw = '{{"eventName": "Other"}}' WHERE {listed}""")
    assert _pass(con, True) == before
    # A ConsoleLogin record is still parsed: its rules read the response and extra data
    login = con.execute(
        "SELECT event_uid FROM events WHERE ct_plain AND operation = 'ConsoleLogin'"
    )
    (uid,) = login.fetchone() or ("",)
    assert (mfa, uid) not in before
    text = _rec(
        18,
        eventName="ConsoleLogin",
        eventSource="signin.amazonaws.com",
        additionalEventData={"MFAUsed": "No"},
        responseElements={"ConsoleLogin": "Success"},
    )
    con.execute("UPDATE events SET raw = ? WHERE event_uid = ?", [json.dumps(text), uid])
    assert (mfa, uid) in _pass(con, True)
