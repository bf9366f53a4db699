"""keytrail's native agent JSONL: the documented fields round-trip, bad lines are rejected by line."""

from __future__ import annotations

import json
from pathlib import Path

from keytrail.ingest.agent.native import NativeAgentAdapter
from keytrail.ingest.base import read_sample
from keytrail.ingest.runner import ingest

from ..conftest import case_rows as rows

REPO = Path(__file__).resolve().parents[2]


FULL = {
    "time": "2026-03-01T12:00:00.250+01:00",
    "event_id": "evt-0001",
    "agent_id": "ledger-reconciler",
    "agent_name": "Ledger reconciler",
    "session_id": "run-42",
    "on_behalf_of": "alice@example.com",
    "operation": "tool_call",
    "tool": "s3_get_object",
    "target": "s3://ledger-prod/2026/q1.csv",
    "arguments": {"Bucket": "ledger-prod", "Key": "2026/q1.csv"},
    "credential": "ASIAEXAMPLE000000004",
    "outcome": "denied",
    "error": "AccessDenied",
    "error_code": "AccessDenied",
    "trace_id": "0AF7651916CD43DD8448EB211C80319C",
    "span_id": "B7AD6B7169203331",
    "host": "worker-3",
    "source_ip": "10.0.0.7",
    "user_agent": "ledger-bot/1.2",
    "ticket": "INC-7",
}


def test_every_field_round_trips(tmp_path: Path, case_path: Path) -> None:
    p = tmp_path / "agent.jsonl"
    p.write_text(json.dumps(FULL) + "\n")
    summary = ingest(case_path, [p])
    assert (summary.files[0].format, summary.files[0].source) == ("agent-jsonl", "agent")
    (ev,) = rows(case_path, "SELECT * FROM events")
    assert ev["event_uid"] == "agent:evt-0001" and ev["source_event_id"] == "evt-0001"
    assert ev["time"].isoformat() == "2026-03-01T11:00:00.250000" and ev["time_raw"] == FULL["time"]
    assert (ev["action"], ev["service"], ev["operation"]) == (
        "tool:s3_get_object",
        "tool",
        "s3_get_object",
    )
    assert (ev["agent_id"], ev["actor_uid"], ev["actor_type"], ev["actor_name"]) == (
        "ledger-reconciler",
        "ledger-reconciler",
        "agent",
        "Ledger reconciler",
    )
    assert (ev["human_id"], ev["session_id"]) == ("alice@example.com", "run-42")
    assert (ev["credential_id"], ev["credential_kind"]) == (
        "ASIAEXAMPLE000000004",
        "aws-temporary-key",
    )
    assert (ev["outcome"], ev["error_code"], ev["error_message"]) == (
        "denied",
        "AccessDenied",
        "AccessDenied",
    )
    assert ev["target"] == "arn:aws:s3:::ledger-prod/2026/q1.csv"
    assert (ev["trace_id"], ev["span_id"]) == (
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203331",
    )
    assert (ev["src_ip"], ev["user_agent"]) == ("10.0.0.7", "ledger-bot/1.2")
    d = json.loads(ev["details"])
    assert (
        d["arguments"] == FULL["arguments"]
        and d["host"] == "worker-3"
        and d["extra"] == {"ticket": "INC-7"}
    )
    assert json.loads(ev["raw"]) == FULL
    res = rows(case_path, "SELECT resource_id, resource_type FROM event_resources")
    assert res == [
        {"resource_id": "arn:aws:s3:::ledger-prod/2026/q1.csv", "resource_type": "AWS::S3::Object"}
    ]


def test_bad_lines_are_rejected_with_their_line_number(tmp_path: Path, case_path: Path) -> None:
    good = {
        "time": "2026-03-01T12:00:00Z",
        "agent_id": "a1",
        "operation": "login",
        "credential": "vault:approle/a1",
    }
    lines = [
        json.dumps(good),
        "",  # blank lines are not records
        json.dumps({**good, "outcome": "ok"}),
        json.dumps({**good, "time": "last tuesday"}),
        json.dumps({**good, "operation": "tool_call"}),
        json.dumps({"time": "2026-03-01T12:00:01Z", "operation": "login"}),
        '{"time": "2026-03-01T12:00:01Z", "agent_id": ',
        json.dumps({**good, "arguments": ["not", "an", "object"]}),
        json.dumps({**good, "operation": "message"}),
    ]
    p = tmp_path / "agent.jsonl"
    p.write_text("\n".join(lines) + "\n")
    summary = ingest(case_path, [p])
    f = summary.files[0]
    assert (f.status, f.records, f.rejected) == ("loaded", 8, 6)
    rej = rows(case_path, "SELECT record_no, reason FROM rejects ORDER BY record_no")
    assert [r["record_no"] for r in rej] == [3, 4, 5, 6, 7, 8]
    reasons = [r["reason"] for r in rej]
    assert reasons[0].startswith("line 3: 'outcome' is 'ok'; allowed: success, failure, denied")
    assert "'time'" in reasons[1] and "RFC 3339" in reasons[1]
    assert "'tool' is required when operation is tool_call" in reasons[2]
    assert "'agent_id' is required" in reasons[3]
    assert "not valid JSON" in reasons[4]
    assert "'arguments' must be a JSON object" in reasons[5]
    got = rows(
        case_path,
        "SELECT action, outcome, credential_id, credential_kind, record_no FROM events "
        "ORDER BY record_no",
    )
    assert got == [
        {
            "action": "agent:login",
            "outcome": "unknown",
            "credential_id": "vault:approle/a1",
            "credential_kind": "agent-credential-ref",
            "record_no": 1,
        },
        {
            "action": "agent:message",
            "outcome": "unknown",
            "credential_id": "vault:approle/a1",
            "credential_kind": "agent-credential-ref",
            "record_no": 9,
        },
    ]


def test_events_without_event_id_hash_their_line_and_repeat_safely(
    tmp_path: Path, case_path: Path
) -> None:
    line = json.dumps({"time": "2026-03-01T12:00:00Z", "agent_id": "a1", "operation": "llm_call"})
    p = tmp_path / "a.jsonl"
    p.write_text(f"{line}\n{line}\n")
    ingest(case_path, [p])
    copy = tmp_path / "copy.jsonl"
    copy.write_text(f"{line}\n{line}\n\n")  # same records, different bytes: a new file, same events
    summary = ingest(case_path, [copy])
    uids = [r["event_uid"] for r in rows(case_path, "SELECT event_uid FROM events ORDER BY 1")]
    assert len(uids) == 2 and len(set(uids)) == 2 and all(u.startswith("agent:") for u in uids)
    assert summary.files[0].status == "loaded"
    assert rows(case_path, "SELECT sum(duplicates) AS d FROM evidence")[0]["d"] == 2


def test_documented_example_loads(tmp_path: Path, case_path: Path) -> None:
    """The example in docs/formats/agent-jsonl.md is a valid file, line for line."""
    doc = (REPO / "docs/formats/agent-jsonl.md").read_text()
    block = doc.split("```jsonl\n", 1)[1].split("```", 1)[0]
    p = tmp_path / "example.jsonl"
    p.write_text(block)
    summary = ingest(case_path, [p])
    n = len([ln for ln in block.splitlines() if ln.strip()])
    assert n >= 4 and (summary.files[0].records, summary.files[0].rejected) == (n, 0)


def test_sniff_needs_time_agent_id_and_operation(tmp_path: Path) -> None:
    p = tmp_path / "x"
    p.write_text('{"time": "2026-03-01T12:00:00Z", "agent_id": "a", "operation": "login"}\n')
    assert NativeAgentAdapter.sniff(read_sample(p)) == "agent-jsonl"
    p.write_text('{"time": "2026-03-01T12:00:00Z", "agent": "a", "operation": "login"}\n')
    assert NativeAgentAdapter.sniff(read_sample(p)) is None
    p.write_text('{"type": "request", "time": "2026-03-01T12:00:00Z", "auth": {}}\n')
    assert NativeAgentAdapter.sniff(read_sample(p)) is None
