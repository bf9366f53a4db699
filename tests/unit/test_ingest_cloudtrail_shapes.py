"""Every CloudTrail shape a responder meets, built in tmp from real fixture events.

Event history CSV, lookup-events, CloudWatch Logs and EventBridge samples are not in
the fixtures (research gap), so these wrap real Stratus events in those envelopes.
"""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keytrail.ingest.base import read_sample
from keytrail.ingest.cloudtrail.adapter import CloudTrailAdapter
from keytrail.ingest.cloudtrail.parse import Bad, Rec, parse_json
from keytrail.ingest.runner import ingest

STRATUS = "cloudtrail/stratus-red-team/detonation-logs/aws.credential-access.secretsmanager-retrieve-secrets.json"


@pytest.fixture()
def events(shared_fixtures: Path) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((shared_fixtures / STRATUS).read_text())
    assert len(data) == 21
    return data


def _load(
    tmp_path: Path, name: str, payload: bytes
) -> tuple[str | None, list[tuple[Any, ...]], int]:
    f = tmp_path / name
    f.write_bytes(payload)
    fmt = CloudTrailAdapter.sniff(read_sample(f))
    summary = ingest(tmp_path / "case.duckdb", [f])
    con = duckdb.connect(str(tmp_path / "case.duckdb"), read_only=True)
    rows = con.execute(
        "SELECT record_no, source_event_id, action, raw FROM events ORDER BY record_no"
    ).fetchall()
    con.close()
    return fmt, rows, summary.rejected


def test_lookup_events_output(tmp_path: Path, events: list[dict[str, Any]]) -> None:
    doc = {
        "Events": [
            {
                "EventId": e["eventID"],
                "EventName": e["eventName"],
                "ReadOnly": "true",
                "EventTime": 1722455550.0,
                "EventSource": e["eventSource"],
                "Resources": [],
                "CloudTrailEvent": json.dumps(e),
            }
            for e in events[:5]
        ],
        "NextToken": "abc",
    }
    fmt, rows, rejected = _load(tmp_path, "lookup.json", json.dumps(doc, indent=4).encode())
    assert fmt == "cloudtrail-lookup-events" and rejected == 0
    assert [(r[0], r[1]) for r in rows] == [
        (i, e["eventID"]) for i, e in enumerate(events[:5], start=1)
    ]
    assert json.loads(rows[0][3]) == events[0]  # raw is the embedded record itself


def test_console_event_history_csv(tmp_path: Path, events: list[dict[str, Any]]) -> None:
    path = tmp_path / "event_history.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "Event ID",
                "Event name",
                "Event time",
                "User name",
                "Event source",
                "Resource type",
                "Resource name",
                "AWS access key",
                "Source IP address",
                "Error code",
                "CloudTrail event",
            ]
        )
        for e in events[:4]:
            w.writerow(
                [
                    e["eventID"],
                    e["eventName"],
                    e["eventTime"],
                    "u",
                    e["eventSource"],
                    "",
                    "",
                    "",
                    "",
                    "",
                    json.dumps(e, indent=2),
                ]
            )
        w.writerow(["x", "Broken", "", "", "", "", "", "", "", "", "{not json"])
    fmt, rows, rejected = _load(tmp_path, "event_history.csv", path.read_bytes())
    assert fmt == "cloudtrail-console-csv" and rejected == 1
    assert [r[1] for r in rows] == [e["eventID"] for e in events[:4]]


def test_cloudwatch_logs_exports(tmp_path: Path, events: list[dict[str, Any]]) -> None:
    lines = "".join(f"{e['eventTime'].replace('Z', '.000Z')} {json.dumps(e)}\n" for e in events[:6])
    fmt, rows, rejected = _load(tmp_path, "000000.gz", gzip.compress(lines.encode()))
    assert fmt == "cloudtrail-cwl" and rejected == 0
    assert [(r[0], r[1]) for r in rows] == [
        (i, e["eventID"]) for i, e in enumerate(events[:6], start=1)
    ]
    (tmp_path / "case.duckdb").unlink()
    wrapped = "".join(
        json.dumps({"timestamp": 1722455550000, "message": json.dumps(e), "ingestionTime": 1})
        + "\n"
        for e in events[:3]
    )
    fmt, rows, rejected = _load(tmp_path, "cwl.jsonl", wrapped.encode())
    assert fmt == "cloudtrail-cwl" and [r[1] for r in rows] == [e["eventID"] for e in events[:3]]


def test_jsonl_eventbridge_and_pretty_objects(tmp_path: Path, events: list[dict[str, Any]]) -> None:
    jsonl = (
        "".join(json.dumps(e) + "\n" for e in events[:5])
        + "{broken\n"
        + json.dumps(events[5])
        + "\n"
    )
    fmt, rows, rejected = _load(tmp_path, "a.ndjson", jsonl.encode())
    assert fmt == "cloudtrail-jsonl" and rejected == 1
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5, 7]  # line numbers; line 6 rejected
    (tmp_path / "case.duckdb").unlink()
    eb = "\n".join(
        json.dumps(
            {
                "version": "0",
                "detail-type": "AWS API Call via CloudTrail",
                "source": "aws.secretsmanager",
                "detail": e,
            }
        )
        for e in events[:2]
    )
    fmt, rows, _ = _load(tmp_path, "eb.json", eb.encode())
    assert fmt == "cloudtrail-eventbridge" and [r[1] for r in rows] == [
        e["eventID"] for e in events[:2]
    ]
    (tmp_path / "case.duckdb").unlink()
    pretty = "\n".join(json.dumps(e, indent=2) for e in events[:3])
    fmt, rows, _ = _load(tmp_path, "p.json", pretty.encode())
    assert fmt == "cloudtrail-json" and [r[1] for r in rows] == [e["eventID"] for e in events[:3]]


@pytest.mark.parametrize(
    "text",
    [
        '{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","eventName":"ObjectCreated:Put"}]}',  # S3 notification
        '{"awsAccountId":"1","digestStartTime":"x","digestS3Object":"k","logFiles":[]}',
        "line,eventName,userIdentity_type\n1,ConsoleLogin,IAMUser\n",
        '{"time":"2024-01-01T00:00:00Z","type":"request","request":{"id":"x"}}',
    ],
)
def test_sniff_rejects_other_formats(tmp_path: Path, text: str) -> None:
    f = tmp_path / "x"
    f.write_text(text)
    assert CloudTrailAdapter.sniff(read_sample(f)) is None


_RECORDS = [
    {
        "eventVersion": "1.08",
        "eventID": f"id-{i}",
        "eventTime": "2024-01-01T00:00:00Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": "GetObject",
        "userIdentity": {"type": "IAMUser", "accessKeyId": "AKIAEXAMPLE"},
        "requestParameters": {"bucketName": "b", "key": f"k{i}"},
        "resources": [{"ARN": f"arn:aws:s3:::b/k{i}", "type": "AWS::S3::Object"}],
    }
    for i in range(8)
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_corruption_never_loses_an_untouched_record(data: st.DataObject) -> None:
    pretty = data.draw(st.booleans())
    parts = [json.dumps(r, indent=2 if pretty else None) for r in _RECORDS]
    head = '{"Records": [\n'
    text = head + ",\n".join(parts) + "\n]}\n"
    spans, pos = [], len(head)
    for p in parts:
        spans.append((pos, pos + len(p)))
        pos += len(p) + 2
    a = data.draw(st.integers(0, len(text) - 1))
    b = data.draw(st.integers(a, min(len(text), a + 60)))
    junk = data.draw(st.sampled_from(["", "x", '"', "{", "}", ",", "]", "\x00", '{"a":']))
    truncate = data.draw(st.booleans())
    broken = text[:a] if truncate else text[:a] + junk + text[b:]
    items = list(parse_json(broken))  # must not raise
    got = [i.text for i in items if isinstance(i, Rec)]
    assert all(isinstance(i, (Rec, Bad)) for i in items)
    for (s, e), p in zip(spans, parts):
        untouched = e <= a if truncate else (e <= a or s >= b)
        if untouched:
            # Normally the record comes back on its own. A deletion can also splice two records into
            # one *valid* JSON object (duplicate keys are legal); then its text is kept inside that
            # record's raw, still findable, never dropped.
            assert p in got or any(p in t for t in got), (a, b, junk, truncate)


@pytest.mark.parametrize("junk", ["]", "],", "] ,", "]}", "x", "]}x"])
@pytest.mark.parametrize("pretty", [False, True])
def test_stray_bracket_between_records_loses_no_record(junk: str, pretty: bool) -> None:
    # Found by the property test above: a ']' before the ',' after a record closed the array early
    # and the reader took the following records for the object's tail ("key": value pairs).
    parts = [json.dumps(r, indent=2 if pretty else None) for r in _RECORDS]
    for cut in range(1, len(parts)):
        text = (
            '{"Records": [\n'
            + ",\n".join(parts[:cut])
            + junk
            + ",\n"
            + ",\n".join(parts[cut:])
            + "\n]}\n"
        )
        items = list(parse_json(text))
        got = [i.text for i in items if isinstance(i, Rec)]
        assert got == parts, (cut, junk)
        assert any(isinstance(i, Bad) for i in items)
