"""MCP JSON-RPC message logs: spec examples, request/response pairing, wrapped envelopes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from keytrail.ingest.agent.mcp import McpAdapter
from keytrail.ingest.base import read_sample
from keytrail.ingest.runner import ingest

from ..conftest import case_rows as rows

EXAMPLES = Path("agent/mcp-spec-examples/2026-07-28")


def write(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_spec_examples_messages_load_and_fragments_are_skipped(
    shared_fixtures: Path, case_path: Path
) -> None:
    base = shared_fixtures / EXAMPLES
    files = sorted(base.rglob("*.json"))
    # Independently: a file is a whole JSON-RPC message when it says jsonrpc 2.0 and has a method or an id.
    messages = {
        str(p)
        for p in files
        if (d := json.loads(p.read_text())).get("jsonrpc") == "2.0" and ("method" in d or "id" in d)
    }
    assert len(messages) == 10 and len(files) == 26
    summary = ingest(case_path, [base])
    by_path = {f.path: f for f in summary.files}
    for p in files:
        f = by_path[str(p.resolve())]
        if str(p) in messages:
            assert (f.status, f.format, f.records, f.rejected) == ("loaded", "mcp-jsonrpc", 1, 0), p
        else:
            # params / result / error fragments are not messages: skipped by sniff, with the reason noted
            assert f.status == "skipped" and "no known format" in (f.note or ""), p
    got = {
        r["action"]: r
        for r in rows(case_path, "SELECT * FROM events WHERE action <> 'mcp:response'")
    }
    assert set(got) == {
        "mcp:tools/call",
        "mcp:server/discover",
        "mcp:tools/list",
        "mcp:resources/read",
        "mcp:notifications/cancelled",
        "mcp:notifications/message",
    }
    call = got["mcp:tools/call"]
    assert call["outcome"] == "unknown"  # its response is in another file: not paired across files
    assert call["target"] == "get_weather" and call["request_id"] == "call-tool-example"
    assert call["agent_id"] == "ExampleClient"  # self-asserted clientInfo.name (no envelope)
    assert json.loads(call["details"])["arguments"] == {"location": "New York"}
    assert got["mcp:resources/read"]["target"] == "file:///project/src/main.rs"
    responses = rows(
        case_path, "SELECT outcome, error_code FROM events WHERE action = 'mcp:response' ORDER BY 2"
    )
    assert responses == [
        {"outcome": "failure", "error_code": "-32020"},
        {"outcome": "success", "error_code": None},
        {"outcome": "success", "error_code": None},
        {"outcome": "success", "error_code": None},
    ]


def test_request_and_response_pair_into_one_event(
    shared_fixtures: Path, tmp_path: Path, case_path: Path
) -> None:
    base = shared_fixtures / EXAMPLES
    req = json.loads((base / "CallToolRequest/call-tool-request.json").read_text())
    resp = json.loads((base / "CallToolResultResponse/call-tool-result-response.json").read_text())
    summary = ingest(case_path, [write(tmp_path / "mcp.jsonl", [req, resp])])
    f = summary.files[0]
    assert (f.records, f.rejected) == (2, 0)
    (ev,) = rows(case_path, "SELECT * FROM events")
    assert ev["action"] == "mcp:tools/call" and ev["outcome"] == "success" and ev["record_no"] == 1
    assert ev["event_uid"].startswith("mcp:") and len(ev["event_uid"]) == 36
    assert json.loads(ev["raw"]) == [req, resp]
    assert json.loads(ev["details"])["response_record_no"] == 2


ENV = {
    "session": "sess-1",
    "server": "aws-tools",
    "client": "ledger-reconciler",
    "user": "alice@example.com",
}


def _wrapped(t: str, direction: str, msg: dict[str, Any], **env: Any) -> dict[str, Any]:
    return {"time": t, "direction": direction, **ENV, **env, "message": msg}


def test_wrapped_log_pairs_by_session_and_id(tmp_path: Path, case_path: Path) -> None:
    call = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {
            "name": "s3_get_object",
            "arguments": {
                "bucket": "ledger",
                "key": "q1.csv",
                "access_key_id": "AKIAEXAMPLE000000003",
            },
            "_meta": {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        },
    }
    lines = [
        _wrapped("2026-03-01T10:00:00Z", "client_to_server", call),
        # same id 7 in another session: must not pair with the first call
        _wrapped(
            "2026-03-01T10:00:00.5Z",
            "client_to_server",
            {**call, "params": {"name": "list"}},
            session="sess-2",
        ),
        _wrapped(
            "2026-03-01T10:00:01.250Z",
            "server_to_client",
            {
                "jsonrpc": "2.0",
                "id": 7,
                "result": {"content": [{"type": "text", "text": "AccessDenied"}], "isError": True},
            },
        ),
        _wrapped(
            "2026-03-01T10:00:02Z",
            "server_to_client",
            {"jsonrpc": "2.0", "id": 7, "error": {"code": -32602, "message": "Unknown tool: list"}},
            session="sess-2",
        ),
        {
            "timestamp": "2026-03-01T10:00:03Z",
            "message": {"jsonrpc": "2.0", "method": "notifications/initialized"},
        },
        {"ts": "yesterday", "message": {"jsonrpc": "2.0", "method": "ping", "id": 1}},
        {"time": "2026-03-01T10:00:04Z", "message": {"hello": "world"}},
    ]
    summary = ingest(case_path, [write(tmp_path / "mcp.jsonl", lines)])
    f = summary.files[0]
    assert f.format == "mcp-jsonrpc-wrapped" and (f.records, f.rejected) == (7, 2)
    got = rows(case_path, "SELECT * FROM events ORDER BY time")
    assert (
        len(got) == 3
    )  # two paired calls + one notification; 2 responses merged, 2 lines rejected
    first, second, note = got
    assert (first["action"], first["outcome"], first["error_code"]) == (
        "mcp:tools/call",
        "failure",
        "isError",
    )
    assert first["error_message"] == "AccessDenied"
    assert (first["agent_id"], first["human_id"], first["session_id"]) == (
        "ledger-reconciler",
        "alice@example.com",
        "sess-1",
    )
    assert (first["credential_id"], first["credential_kind"]) == (
        "AKIAEXAMPLE000000003",
        "aws-access-key",
    )
    assert first["target"] == "arn:aws:s3:::ledger/q1.csv"
    assert (first["trace_id"], first["span_id"]) == (
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203331",
    )
    d = json.loads(first["details"])
    assert (
        d["tool"] == "s3_get_object" and d["server"] == "aws-tools" and d["duration_ms"] == 1250.0
    )
    assert (second["session_id"], second["outcome"], second["error_code"]) == (
        "sess-2",
        "failure",
        "-32602",
    )
    assert note["action"] == "mcp:notifications/initialized" and note["outcome"] == "unknown"
    rej = rows(case_path, "SELECT record_no, reason FROM rejects ORDER BY record_no")
    assert [r["record_no"] for r in rej] == [6, 7]
    assert "RFC 3339" in rej[0]["reason"] and "JSON-RPC 2.0" in rej[1]["reason"]
    res = rows(case_path, "SELECT resource_id, resource_type FROM event_resources")
    assert res == [
        {"resource_id": "arn:aws:s3:::ledger/q1.csv", "resource_type": "AWS::S3::Object"}
    ]


def test_unanswered_and_reused_ids_and_identical_lines(tmp_path: Path, case_path: Path) -> None:
    ping = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    lines = [ping, ping, {"jsonrpc": "2.0", "id": 1, "result": {"tools": []}}]
    ingest(case_path, [write(tmp_path / "bare.jsonl", lines)])
    got = rows(case_path, "SELECT event_uid, outcome, record_no FROM events ORDER BY record_no")
    # the first request was never answered (its id was reused); identical lines stay two events
    assert [(r["outcome"], r["record_no"]) for r in got] == [("unknown", 1), ("success", 2)]
    assert got[0]["event_uid"] != got[1]["event_uid"]


@pytest.mark.parametrize(
    "text,label",
    [
        ('{"jsonrpc":"2.0","id":1,"method":"tools/list"}\n', "mcp-jsonrpc"),
        ('{\n  "jsonrpc": "2.0",\n  "method": "ping"\n}\n', "mcp-jsonrpc"),
        (
            '{"time":"2026-01-01T00:00:00Z","message":{"jsonrpc":"2.0","id":1,"result":{}}}\n',
            "mcp-jsonrpc-wrapped",
        ),
        ('{"code": -32602, "message": "Invalid cursor"}\n', None),
        ('{"time":"2026-01-01T00:00:00Z","agent_id":"a","operation":"login"}\n', None),
    ],
)
def test_sniff(tmp_path: Path, text: str, label: str | None) -> None:
    p = tmp_path / "x.json"
    p.write_text(text)
    assert McpAdapter.sniff(read_sample(p)) == label


def test_documented_examples_load(tmp_path: Path, case_path: Path) -> None:
    """Each jsonl example in docs/formats/mcp.md is a valid log: a paired call, no rejects."""
    doc = (Path(__file__).resolve().parents[2] / "docs/formats/mcp.md").read_text()
    blocks = [b.split("```", 1)[0] for b in doc.split("```jsonl\n")[1:]]
    assert len(blocks) == 2
    for i, block in enumerate(blocks):
        p = tmp_path / f"example{i}.jsonl"
        p.write_text(block)
    summary = ingest(case_path, [tmp_path / "example0.jsonl", tmp_path / "example1.jsonl"])
    assert [(f.records, f.rejected) for f in summary.files] == [(2, 0), (2, 0)]
    got = rows(case_path, "SELECT action, outcome FROM events ORDER BY outcome")
    assert got == [
        {"action": "mcp:tools/call", "outcome": "failure"},
        {"action": "mcp:tools/call", "outcome": "success"},
    ]


def test_hostile_envelope_values_do_not_break_the_file(tmp_path: Path, case_path: Path) -> None:
    odd = {
        "time": "2026-03-01T10:00:00Z",
        "session": {"a": 1},
        "server": [1],
        "direction": ["x"],
        "client": {"name": "x"},
        "message": {
            "jsonrpc": "2.0",
            "id": {"weird": True},
            "method": "tools/call",
            "params": {"name": 5, "arguments": "not an object"},
        },
    }
    summary = ingest(
        case_path,
        [
            write(
                tmp_path / "odd.jsonl",
                [odd, {**odd, "message": {"jsonrpc": "2.0", "id": {"weird": True}, "result": {}}}],
            )
        ],
    )
    f = summary.files[0]
    assert (f.status, f.records, f.rejected) == ("loaded", 2, 0)
    (ev,) = rows(case_path, "SELECT action, outcome, agent_id, session_id FROM events")
    assert ev == {
        "action": "mcp:tools/call",
        "outcome": "success",
        "agent_id": None,
        "session_id": None,
    }
