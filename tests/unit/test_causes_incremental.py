"""A second ingest of agent logs finds the causes of the old calls inside the new tool calls'
time windows only (:mod:`keytrail.graph.causes_incr`), with the rows of a full rebuild (the
oracles of ``test_derive_incremental``).

The CloudTrail is ingested first, the tool calls a day later: old calls just inside and just
outside a window on both sides (logged after the tool call started, and before it: clock skew),
and calls hours away that no window holds.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from keytrail.graph import derive_causes

from ..conftest import REPO
from . import test_derive_incremental as base
from .test_derive_incremental import _check, _write_records

incremental = base.incremental

T0 = datetime(2026, 3, 2, 9, 0, 0)
BUCKET = "finco-reports"
KEY_ID = "AKIAQ7EXAMPLE0CAUSE1"


def _z(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _get(n: int, key: str, t: datetime) -> dict[str, Any]:
    """A CloudTrail GetObject of ``BUCKET``/``key``."""
    return {
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAQ7EXAMPLE0CAUSE1",
            "arn": "arn:aws:iam::418295730164:user/svc-reports",
            "accountId": "418295730164",
            "accessKeyId": KEY_ID,
            "userName": "svc-reports",
        },
        "eventTime": _z(t),
        "eventSource": "s3.amazonaws.com",
        "eventName": "GetObject",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.30",
        "userAgent": "Boto3/1.34.69",
        "requestParameters": {"bucketName": BUCKET, "key": key},
        "responseElements": None,
        "requestID": f"REQ{n:08d}",
        "eventID": f"00000000-0000-4000-8000-{n:012d}",
        "readOnly": True,
        "resources": [
            {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{BUCKET}/{key}"},
            {"type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{BUCKET}"},
        ],
        "eventType": "AwsApiCall",
        "managementEvent": False,
        "recipientAccountId": "418295730164",
        "eventCategory": "Data",
    }


def _tool(n: int, key: str, t: datetime) -> str:
    """A native agent log's tool call naming ``BUCKET``/``key``."""
    return json.dumps(
        {
            "time": _z(t),
            "event_id": f"rp-{n:04d}",
            "operation": "tool_call",
            "tool": "s3_get_object",
            "target": f"arn:aws:s3:::{BUCKET}/{key}",
            "arguments": {"Bucket": BUCKET, "Key": key},
            "outcome": "success",
            "agent_id": "report-bot",
            "session_id": "rp-1",
        }
    )


#: (object key, tool call time, old call time, whether the tool call caused the old call)
CASES = (
    ("q1/inside-after.csv", T0, T0 + timedelta(seconds=derive_causes.WINDOW_S), True),
    ("q1/outside-after.csv", T0, T0 + timedelta(seconds=derive_causes.WINDOW_S + 1), False),
    ("q1/inside-before.csv", T0, T0 - timedelta(seconds=derive_causes.SKEW_S), True),
    ("q1/outside-before.csv", T0, T0 - timedelta(seconds=derive_causes.SKEW_S + 1), False),
)


@pytest.fixture()
def seen(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Each call of :func:`derive_causes.caused`: its effects table and that table's size."""
    calls: list[tuple[str, int]] = []
    real = derive_causes.caused

    def counted(con: duckdb.DuckDBPyConnection, effects: str = "") -> None:
        row = con.execute(f"SELECT count(*) FROM {effects}").fetchone() if effects else None
        calls.append((effects, int(row[0]) if row else -1))
        real(con, effects)

    monkeypatch.setattr(derive_causes, "caused", counted)
    return calls


def _files(tmp: Path, far_hours: int) -> tuple[list[Path], list[Path]]:
    records = [_get(i, key, t_old) for i, (key, _, t_old, _) in enumerate(CASES)]
    # calls no window holds: hours away, on the same targets
    records += [
        _get(100 + i, key, T0 + timedelta(hours=h))
        for i, (key, _, _, _) in enumerate(CASES)
        for h in (-far_hours, far_hours)
    ]
    trail = _write_records(tmp / "ct", "trail.json.gz", records)
    log = tmp / "agents" / "report-bot.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text("".join(_tool(i, key, t) + "\n" for i, (key, t, _, _) in enumerate(CASES)))
    return [trail], [log]


def _all(case: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(case), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _caused_keys(case: Path) -> set[str]:
    keys = _all(
        case,
        "SELECT DISTINCT r.resource_id FROM event_links l "
        "JOIN event_resources r ON r.event_uid = l.effect_uid",
    )
    return {str(k[0]).removeprefix(f"arn:aws:s3:::{BUCKET}/") for k in keys}


def test_new_tool_calls_find_old_calls_in_their_windows_only(
    tmp_path: Path, incremental: list[int], seen: list[tuple[str, int]]
) -> None:
    first, second = _files(tmp_path, far_hours=6)
    case = _check(tmp_path, first, second, incremental, None)
    # the second ingest looked at the calls in the windows, not at the far ones
    assert seen[1][0] == "_kt_inc_effects", seen  # the second ingest's (then the oracles')
    # the new tool calls and the two old calls inside their windows
    assert seen[1][1] == len(CASES) + sum(inside for *_, inside in CASES)
    caused = _caused_keys(case)
    for key, _, _, inside in CASES:
        assert (key in caused) == inside, (key, caused)


def test_windows_covering_most_of_the_case_find_every_call_again(
    tmp_path: Path, incremental: list[int], seen: list[tuple[str, int]]
) -> None:
    # the far calls a few minutes away: the windows cover most of the case's time
    first, second = _files(tmp_path, far_hours=0)
    _check(tmp_path, first, second, incremental, None)
    # derives: the first ingest, the second, then the oracles'
    assert seen[1][0] == "", seen


def test_otlp_spans_after_the_mcp_requests_they_sent(
    tmp_path: Path, incremental: list[int], seen: list[tuple[str, int]]
) -> None:
    """The OTLP trace after the MCP gateway's log and the Vault log (``tests/fixtures/agents/mcp``):
    the old MCP request carries the new tool span's id (traceparent), and the old Vault read the
    request caused is found again through the request's own window (the span, which names the
    same path, gives way to the request). CloudTrail calls hours away widen the case."""
    mcp = REPO / "tests" / "fixtures" / "agents" / "mcp"
    t = datetime(2026, 12, 6, 3, 12, 0)
    far = [_get(i, "far.csv", t + timedelta(hours=h)) for i, h in enumerate((-6, 6))]
    first = [
        _write_records(tmp_path / "ct", "far.json.gz", far),
        mcp / "vault-audit.log",
        mcp / "mcp-gateway.jsonl",
    ]
    case = _check(tmp_path, first, [mcp / "traces.otlp.jsonl"], incremental, None)
    assert seen[1][0] == "_kt_inc_effects", seen  # the second ingest's (then the oracles')
    rules = _all(
        case,
        "SELECT l.rule, c.action, e.action FROM event_links l "
        "JOIN events c ON c.event_uid = l.cause_uid JOIN events e ON e.event_uid = l.effect_uid",
    )
    assert ("traceparent", "tool:read_secret", "mcp:tools/call") in rules, rules
    assert ("target", "mcp:tools/call", "vault:read") in rules, rules
