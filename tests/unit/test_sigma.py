"""Sigma rules through pySigma and keytrail's DuckDB backend: every shipped rule converts,
the SQL keeps Sigma's matching semantics on real CloudTrail-shaped records, and a rule
folder's failures are listed."""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path

import duckdb
import pytest

from keytrail.analysis.sigma import fields
from keytrail.analysis.sigma.prefilter import event_names
from keytrail.analysis.sigma.rules import RuleSet, load_rules, shipped_dir


def test_every_shipped_rule_converts_and_keeps_its_credit() -> None:
    rs = load_rules()
    assert len(rs.rules) == len(list(shipped_dir().glob("*.yml"))) == 57 and not rs.failed
    for r in rs.rules:
        assert r.id == f"sigma:{r.sigma_id}" and r.author and r.where
        assert "SigmaHQ (DRL 1.1)" in r.credit() and r.author in r.credit()
    flow = next(r for r in rs.rules if r.sigma_id == "e386b9b5-af12-450e-afff-761730fb8a98")
    assert flow.tactics == ("stealth",) and flow.techniques == ()
    trail = next(r for r in rs.rules if r.sigma_id == "4db60cc0-36fb-42b7-9b58-a5b53019fb74")
    assert trail.techniques == ("T1685.002",) and trail.tactics == ("defense-impairment",)
    assert (shipped_dir().parent / "SOURCES.md").is_file() and (
        shipped_dir().parent / "LICENSE.md"
    ).is_file()


def _write(
    d: Path, name: str, detection: str, logsource: str = "product: aws\n  service: cloudtrail"
) -> None:
    (d / f"{name}.yml").write_text(
        f"title: {name}\nid: 00000000-0000-4000-8000-{zlib.crc32(name.encode()):012d}\n"
        "author: tester\n"
        f"logsource:\n  {logsource}\ndetection:\n{detection}\nlevel: high\n",
        encoding="utf-8",
    )


def _matches(tmp_path: Path, detection: str, records: list[dict[str, object]]) -> list[str]:
    d = tmp_path / "rules"
    d.mkdir(exist_ok=True)
    for old in d.glob("*.yml"):
        old.unlink()
    _write(d, "r", detection)
    rs = load_rules(d)
    assert not rs.failed, rs.failed
    con = duckdb.connect()
    con.execute("CREATE TABLE events (event_uid VARCHAR, source VARCHAR, raw VARCHAR)")
    for i, rec in enumerate(records):
        con.execute("INSERT INTO events VALUES (?, 'cloudtrail', ?)", [f"e{i}", json.dumps(rec)])
    return _both_ways(con, rs)[0]


def _both_ways(con: duckdb.DuckDBPyConnection, rs: RuleSet) -> list[list[str]]:
    """Each rule's hits as the findings get them (request and response fields read only for
    the event names the rules allow, :func:`keytrail.analysis.findings.rawpass._hits_sql`, and
    every rule in one read, :func:`keytrail.analysis.findings.rawpass.one_pass_sql`), asserted
    equal to each rule's predicate on a table with every field of every record."""
    from keytrail.analysis.findings.rawpass import _hits_sql

    fields.build(con, rs.fields, rs.lower_fields)
    full = [
        [
            r[0]
            for r in con.execute(
                f"SELECT event_uid FROM {fields.TABLE} WHERE {rule.where} ORDER BY 1"
            ).fetchall()
        ]
        for rule in rs.rules
    ]
    fields.build(con, rs.fields, rs.lower_fields, everywhere=rs.everywhere, names=rs.names)
    fast: list[list[str]] = [[] for _ in rs.rules]
    for i, uid in con.execute(
        f"SELECT * FROM ({_hits_sql(list(enumerate(rs.rules)))}) ORDER BY 1, 2"
    ).fetchall():
        fast[i].append(uid)
    assert fast == full
    # ...and equal to the hits of the one query the findings run (every rule in one read)
    from keytrail.analysis.findings.rawpass import one_pass_sql

    once: list[list[str]] = [[] for _ in rs.rules]
    for i, uid in con.execute(
        f"SELECT * FROM ({one_pass_sql(rs, list(rs.rules))}) ORDER BY 1, 2"
    ).fetchall():
        once[i].append(uid)
    assert once == full
    return fast


def test_values_match_case_insensitively_and_wildcards_are_literal_elsewhere(
    tmp_path: Path,
) -> None:
    det = "  sel:\n    eventName: 'stoplogging'\n    userAgent|contains: '100%_x'\n  condition: sel"
    recs = [
        {"eventName": "StopLogging", "userAgent": "a 100%_x b"},  # match, other case
        {"eventName": "StopLogging", "userAgent": "a 100AAx b"},  # % and _ are not wildcards
        {"eventName": "StopLoggingX", "userAgent": "100%_x"},
    ]
    assert _matches(tmp_path, det, recs) == ["e0"]


def test_negation_is_true_when_the_field_is_absent(tmp_path: Path) -> None:
    det = (
        "  sel:\n    eventName: ListBuckets\n  filter:\n    userIdentity.type: AssumedRole\n"
        "  condition: sel and not filter"
    )
    recs = [
        {"eventName": "ListBuckets", "userIdentity": {"type": "IAMUser"}},
        {"eventName": "ListBuckets", "userIdentity": {"type": "AssumedRole"}},
        {"eventName": "ListBuckets"},
    ]
    assert _matches(tmp_path, det, recs) == ["e0", "e2"]


def test_objects_arrays_regex_and_null(tmp_path: Path) -> None:
    det = (
        "  sel:\n    requestParameters|contains: Suspended\n"
        "  arr:\n"
        "    requestParameters.containerDefinitions.command|contains: CREDENTIALS_RELATIVE\n"
        "  rx:\n    userIdentity.arn|re: '.+:assumed-role/aws:.+'\n"
        "  nul:\n    errorCode: null\n"
        "  condition: (sel or arr or rx) and nul"
    )
    recs = [
        {"requestParameters": {"VersioningConfiguration": {"Status": "Suspended"}}},
        {
            "requestParameters": {
                "containerDefinitions": [
                    {"command": ["sh", "curl $AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"]}
                ]
            }
        },
        {"userIdentity": {"arn": "arn:aws:sts::1:assumed-role/aws:ec2-instance/i-1"}},
        {
            "userIdentity": {"arn": "arn:aws:sts::1:assumed-role/aws:ec2-instance/i-1"},
            "errorCode": "AccessDenied",
        },
        {"requestParameters": {"x": "y"}},
    ]
    assert _matches(tmp_path, det, recs) == ["e0", "e1", "e2"]


def test_rules_that_do_not_convert_are_listed_with_the_reason(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "windows",
        "  sel:\n    EventID: 4624\n  condition: sel",
        "product: windows\n  service: security",
    )
    (tmp_path / "broken.yml").write_text("title: broken\ndetection: [\n", encoding="utf-8")
    _write(tmp_path, "good", "  sel:\n    eventName: DeleteTrail\n  condition: sel")
    rs = load_rules(tmp_path)
    assert [r.title for r in rs.rules] == ["good"]
    reasons = {Path(f.path).name: f.reason for f in rs.failed}
    assert set(reasons) == {"windows.yml", "broken.yml"} and "cloudtrail" in reasons["windows.yml"]


def test_missing_rule_folder_is_a_usage_error(tmp_path: Path) -> None:
    from keytrail.errors import UsageError

    with pytest.raises(UsageError):
        load_rules(tmp_path / "nope")


def test_event_name_constraint_is_what_every_match_needs(tmp_path: Path) -> None:
    from sigma.collection import SigmaCollection

    def names(detection: str) -> tuple[str, ...] | None:
        _write(tmp_path, "c", detection)
        rule = SigmaCollection.from_yaml((tmp_path / "c.yml").read_text()).rules[0]
        return event_names(rule)

    assert names("  a:\n    eventName: [StopLogging, DeleteTrail]\n  condition: a") == (
        "deletetrail",
        "stoplogging",
    )
    assert names(
        "  a:\n    eventName|startswith: Update_Fn\n  b:\n    eventSource: x\n  condition: a and b"
    ) == ("update\\_fn%",)
    # an OR with an unconstrained side, and anything under NOT, allow every name
    assert names("  a:\n    eventName: X\n  b:\n    userAgent: y\n  condition: a or b") is None
    assert names("  a:\n    eventName: X\n  condition: not a") is None
    assert names(
        "  a:\n    eventName: [X, Y]\n  b:\n    eventName: [Y, Z]\n  condition: a and b"
    ) == ("y",)


def test_shipped_rules_hit_the_same_events_on_the_sample_incident() -> None:
    rs = load_rules()
    assert rs.names and "userIdentity.type" in rs.everywhere
    assert "requestParameters" not in rs.everywhere  # the costly objects are read selectively
    con = duckdb.connect()
    con.execute("CREATE TABLE events (event_uid VARCHAR, source VARCHAR, raw VARCHAR)")
    incident = Path(__file__).resolve().parents[2] / "sample_data" / "incident"
    n = 0
    for f in sorted(incident.rglob("*.json.gz")):
        doc = json.loads(gzip.decompress(f.read_bytes()))
        for rec in doc.get("Records", []) if isinstance(doc, dict) else []:
            n += 1
            con.execute(
                "INSERT INTO events VALUES (?, 'cloudtrail', ?)", [f"e{n}", json.dumps(rec)]
            )
    assert n > 100
    hits = _both_ways(con, rs)
    assert sum(1 for h in hits if h) >= 4


def test_a_rule_whose_sql_fails_is_noted_and_the_others_still_match(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one read of the records (Sigma hits and the console-session flag, findings.rawpass)
    fails as a whole when one rule's SQL does; each part is then made on its own (the Sigma hits
    from the field table one rule at a time), so only the failing rule is lost, and noted."""
    from dataclasses import replace

    from keytrail.analysis.findings.catalog import RULES
    from keytrail.analysis.findings.context import Context
    from keytrail.analysis.findings.rawpass import ensure
    from keytrail.config import load_config
    from keytrail.store.case import CaseStore

    d = tmp_path / "rules"
    d.mkdir()
    _write(d, "good", "  sel:\n    eventName: StopLogging\n  condition: sel")
    _write(d, "broken", "  sel:\n    userAgent: x\n  condition: sel")
    base = load_config(None, rule_ids=RULES)
    cfg = replace(base, sigma=replace(base.sigma, rules_dir=str(d)))
    records = [
        {"eventName": "StopLogging", "userAgent": "ab", "sessionCredentialFromConsole": "true"},
        {"eventName": "x", "userAgent": "x"},
    ]
    for fail in (False, True):
        rs = load_rules(d)
        if fail:  # a converted rule whose SQL fails on this data (pySigma rejects bad patterns)
            broken = replace(
                rs,
                rules=tuple(
                    replace(r, where='CAST("userAgent" AS INTEGER) = 1')
                    if r.title == "broken"
                    else r
                    for r in rs.rules
                ),
            )
            monkeypatch.setattr("keytrail.analysis.sigma.rules._load", lambda *_a, b=broken: b)
        with CaseStore.open(tmp_path / f"c{fail}.duckdb", read_only=False, create=True) as st:
            for i, rec in enumerate(records):
                st.con.execute(
                    "INSERT INTO events (event_uid, source, raw) VALUES (?, 'cloudtrail', ?)",
                    [f"e{i}", json.dumps(rec)],
                )
            cur = st.cursor()
            ctx = Context(cur, cfg, None)
            made = ensure(ctx)
            assert made.sigma and made.rules is not None and ensure(ctx) is made
            good = next(i for i, r in enumerate(made.rules.rules) if r.title == "good")
            bad = next(i for i, r in enumerate(made.rules.rules) if r.title == "broken")
            hits = cur.execute("SELECT r, event_uid FROM _kt_sigma_hit ORDER BY ALL").fetchall()
            assert hits == ([(good, "e0")] if fail else sorted([(good, "e0"), (bad, "e1")]))
            assert cur.execute("SELECT event_uid FROM _kt_console_ct").fetchall() == [("e0",)]
            bad_id = made.rules.rules[bad].id
            assert (list(ctx.sigma_errors) == [bad_id]) if fail else not ctx.sigma_errors
            cur.close()


def test_a_hit_on_a_record_without_an_event_source_is_a_finding(tmp_path: Path) -> None:
    # Hostile or truncated evidence: a record with an eventName but no eventSource has no
    # action (service:name). The snapshot once failed on it (a NULL joined into the finding's
    # text); now the hit is a finding that names the operation.
    from keytrail.analysis.answers import run_findings
    from keytrail.cli.main import main
    from keytrail.store.case import CaseStore

    ident = {
        "type": "AssumedRole",
        "arn": "arn:aws:sts::111122223333:assumed-role/r/s",
        "accessKeyId": "ASIAXXXXXXXXXXXXXXX1",
        "sessionContext": {"sessionIssuer": {"type": "Role"}},
    }
    base = {
        "eventVersion": "1.08",
        "userIdentity": ident,
        "eventTime": "2026-01-01T00:00:00Z",
        "eventName": "AssumeRole",
        "eventSource": "sts.amazonaws.com",
        "sourceIPAddress": "1.2.3.4",
        "userAgent": "x",
        "eventID": "e1",
        "eventType": "AwsApiCall",
        "recipientAccountId": "111122223333",
    }
    bare = {k: v for k, v in base.items() if k != "eventSource"}
    trail = tmp_path / "trail.json"
    trail.write_text(json.dumps({"Records": [base, {**bare, "eventID": "e2"}]}), encoding="utf-8")
    case = tmp_path / "case.duckdb"
    assert main(["ingest", str(case), str(trail), "-q"]) == 0
    with CaseStore.open(case) as store:
        hits = [f for f in run_findings(store) if f.details.get("actions")]
    assert hits, "the AssumeRole rule matches both records"
    for f in hits:
        assert f.evidence_count == 2 and f.details["actions"] == ["AssumeRole", "sts:AssumeRole"]
        assert "AssumeRole, sts:AssumeRole" in f.description
