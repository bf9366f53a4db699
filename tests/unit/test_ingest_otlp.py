"""OTLP/JSON traces and logs: real fixtures, id and number encodings, GenAI/OpenInference mapping."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from keytrail.ingest.runner import ingest

from ..conftest import case_rows as rows

AGENT = "agent"


def kv(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    """A flat attribute map as an OTLP KeyValue list (strings, ints as strings, doubles, bools, arrays)."""

    def val(v: Any) -> dict[str, Any]:
        if isinstance(v, bool):
            return {"boolValue": v}
        if isinstance(v, int):
            return {"intValue": str(v)}
        if isinstance(v, float):
            return {"doubleValue": v}
        if isinstance(v, list):
            return {"arrayValue": {"values": [val(x) for x in v]}}
        return {"stringValue": str(v)}

    return [{"key": k, "value": val(v)} for k, v in attrs.items()]


def span(
    trace: str,
    span_id: str,
    parent: str = "",
    name: str = "s",
    attrs: dict[str, Any] | None = None,
    start: Any = "1760460269952000000",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "traceId": trace,
        "spanId": span_id,
        "parentSpanId": parent,
        "name": name,
        "startTimeUnixNano": start,
        "endTimeUnixNano": "1760460270952000000",
        "attributes": kv(attrs or {}),
        **extra,
    }


def traces(spans: list[dict[str, Any]], resource: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": kv(resource or {})},
                "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}],
            }
        ]
    }


def write_lines(path: Path, docs: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


def count_items(path: Path) -> int:
    """Spans + log records, counted with the standard library, independently of the adapter."""
    text = path.read_text()
    try:
        docs = [json.loads(text)]
    except json.JSONDecodeError:
        docs = [json.loads(line) for line in text.splitlines() if line.strip()]
    n = 0
    for d in docs:
        for rs in d.get("resourceSpans", []):
            n += sum(len(ss.get("spans", [])) for ss in rs.get("scopeSpans", []))
        for rl in d.get("resourceLogs", []):
            n += sum(len(sl.get("logRecords", [])) for sl in rl.get("scopeLogs", []))
    return n


OTLP_FIXTURES = [
    "otlp-json/opentelemetry-proto-examples-trace.json",
    "otlp-json/otel-spec-file-exporter-example-traces.jsonl",
    "otlp-json/otel-spec-file-exporter-example-logs.jsonl",
    "derived/langfuse-google-adk-2025-08-28.otlp.jsonl",
    "derived/langfuse-koog-2025-08-26.otlp.jsonl",
    "derived/langfuse-microsoft-agent-2025-10-14.otlp.jsonl",
    "derived/langfuse-openai-agents-2025-09-30.otlp.jsonl",
    "derived/langfuse-pydantic-ai-tools-2025-12-04.otlp.jsonl",
]


@pytest.mark.parametrize("rel", OTLP_FIXTURES)
def test_every_otlp_fixture_loads_one_event_per_span_or_log_record(
    shared_fixtures: Path, case_path: Path, rel: str
) -> None:
    path = shared_fixtures / AGENT / rel
    expected = count_items(path)
    assert expected > 0
    summary = ingest(case_path, [path])
    (f,) = summary.files
    assert f.status == "loaded" and f.source == "agent" and f.rejected == 0
    assert f.format == ("otlp-logs" if "logs" in rel else "otlp-traces")
    assert f.records == expected
    ev = rows(
        case_path,
        "SELECT count(*) AS n, count(DISTINCT event_uid) AS u, count(time) AS t FROM events",
    )[0]
    assert ev == {"n": expected, "u": expected, "t": expected}


def test_spec_examples_empty_ids_and_string_times(shared_fixtures: Path, case_path: Path) -> None:
    # 4 lines x 2 spans, every id empty: each span is its own event, none merged by de-duplication.
    ingest(
        case_path,
        [shared_fixtures / AGENT / "otlp-json/otel-spec-file-exporter-example-traces.jsonl"],
    )
    got = rows(
        case_path,
        "SELECT event_uid, trace_id, span_id, time, time_raw, action, outcome, error_message "
        "FROM events ORDER BY record_no, time_raw",
    )
    assert len(got) == 8
    assert all(r["event_uid"].startswith("otlp:noid:") and r["trace_id"] is None for r in got)
    a = next(r for r in got if r["action"] == "span:operationA")
    assert a["time_raw"] == "1581452772000000321"
    assert a["time"].isoformat() == "2020-02-11T20:26:12"  # 321 ns: below the microsecond
    assert "2020-02-11T20:26:12.000200" in {r["time"].isoformat() for r in got}  # ...200521 ns
    assert a["outcome"] == "failure" and a["error_message"] == "status-cancelled"  # status code 2
    assert {r["outcome"] for r in got if r["action"] == "span:operationB"} == {"success"}


def test_proto_example_uppercase_hex_and_numeric_times(
    shared_fixtures: Path, case_path: Path
) -> None:
    ingest(
        case_path, [shared_fixtures / AGENT / "otlp-json/opentelemetry-proto-examples-trace.json"]
    )
    (r,) = rows(case_path, "SELECT * FROM events")
    assert r["event_uid"] == "otlp:5b8efff798038103d269b633813fc60c:eee19b7ec3c1b174"
    assert r["source_event_id"] == "eee19b7ec3c1b174" and r["parent_span_id"] == "eee19b7ec3c1b173"
    assert r["time"].isoformat() == "2018-12-13T14:51:00"
    assert r["action"] == "span:I'm a server span"
    assert r["agent_id"] is None  # service.name is not an agent for a span without GenAI attributes
    raw = json.loads(r["raw"])
    assert (
        raw["span"]["spanId"] == "EEE19B7EC3C1B174"
        and raw["resource"]["attributes"][0]["key"] == "service.name"
    )


def test_base64_and_hex_ids_and_int_or_string_numbers_are_the_same_event(
    tmp_path: Path, case_path: Path
) -> None:
    trace, sid = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
    b64 = (
        base64.b64encode(bytes.fromhex(trace)).decode(),
        base64.b64encode(bytes.fromhex(sid)).decode(),
    )
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 12}
    hex_doc = traces([span(trace.upper(), sid.upper(), attrs=attrs, start="1760460269952000000")])
    b64_doc = traces([span(*b64, attrs=attrs, start=1760460269952000000)])
    b64_doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"][1]["value"] = {
        "intValue": 12
    }
    ingest(
        case_path,
        [
            write_lines(tmp_path / "hex.jsonl", [hex_doc]),
            write_lines(tmp_path / "b64.jsonl", [b64_doc]),
        ],
    )
    got = rows(
        case_path,
        "SELECT e.event_uid, e.time, e.details->>'input_tokens' AS tok, v.duplicates "
        "FROM events e JOIN evidence v USING (file_id)",
    )
    assert len(got) == 1, "the same span in two encodings must de-duplicate to one event"
    assert got[0]["event_uid"] == f"otlp:{trace}:{sid}" and got[0]["tok"] == "12"
    dup = rows(case_path, "SELECT sum(duplicates) AS d FROM evidence")[0]["d"]
    assert dup == 1


def _tool_and_chat(tool_attrs: dict[str, Any], chat_attrs: dict[str, Any]) -> list[dict[str, Any]]:
    t = "0af7651916cd43dd8448eb211c80319c"
    return [
        span(
            t,
            "00000000000000a1",
            name="agent",
            attrs={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.id": "asst_1"},
        ),
        span(t, "00000000000000a2", "00000000000000a1", "chat", chat_attrs),
        span(t, "00000000000000a3", "00000000000000a1", "tool", tool_attrs),
    ]


def test_deprecated_and_current_genai_names_normalise_the_same(
    tmp_path: Path, case_path: Path
) -> None:
    current = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "gcp.vertex_ai",
        "gen_ai.request.model": "gemini-2.0",
        "gen_ai.usage.input_tokens": 97,
        "gen_ai.usage.output_tokens": 52,
        "gen_ai.conversation.id": "conv_1",
        "enduser.id": "alice",
    }
    deprecated = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "vertex_ai",
        "gen_ai.request.model": "gemini-2.0",
        "gen_ai.usage.prompt_tokens": "97",
        "gen_ai.usage.completion_tokens": "52",
        "session.id": "conv_1",
        "user.id": "alice",
    }
    t1, t2 = "11111111111111111111111111111111", "22222222222222222222222222222222"
    docs = [
        traces([span(t1, "1111111111111111", attrs=current)]),
        traces([span(t2, "2222222222222222", attrs=deprecated)]),
    ]
    ingest(case_path, [write_lines(tmp_path / "t.jsonl", docs)])
    got = rows(
        case_path,
        "SELECT action, session_id, human_id, details->>'provider' AS provider, "
        "details->>'model' AS model, details->>'input_tokens' AS i, details->>'output_tokens' AS o "
        "FROM events ORDER BY trace_id",
    )
    assert len(got) == 2 and got[0] == got[1]
    assert got[0] == {
        "action": "llm:chat",
        "session_id": "conv_1",
        "human_id": "alice",
        "provider": "gcp.vertex_ai",
        "model": "gemini-2.0",
        "i": "97",
        "o": "52",
    }


def test_paired_attribute_fixtures_give_the_same_normalised_fields(
    shared_fixtures: Path, tmp_path: Path, case_path: Path
) -> None:
    # openinference-genai-attrs/ holds flat attribute maps, not OTLP (the sniffer skips them);
    # wrapped in a span they must normalise alike: current vs deprecated GenAI, and OpenInference.
    base = shared_fixtures / AGENT / "openinference-genai-attrs"
    names = [
        "otel_genai_client_span_tool_calls.json",
        "otel_genai_deprecated_client_span_tool_calls.json",
        "openinference_client_span_tool_calls.json",
    ]
    docs = [
        traces([span(f"{i + 1:032x}", f"{i + 1:016x}", attrs=json.loads((base / n).read_text()))])
        for i, n in enumerate(names)
    ]
    summary = ingest(case_path, [write_lines(tmp_path / "wrapped.jsonl", docs), base])
    assert {f.status for f in summary.files if "openinference-genai-attrs" in f.path} == {"skipped"}
    got = rows(
        case_path,
        "SELECT action, details->>'provider' AS p, details->>'input_tokens' AS i, "
        "details->>'output_tokens' AS o, details->>'response_id' AS r FROM events ORDER BY trace_id",
    )
    assert (
        got[0]
        == got[1]
        == {
            "action": "llm:chat",
            "p": "openai",
            "i": "97",
            "o": "52",
            "r": "chatcmpl-CQF10eCkoFphJZJQkzzN6EkTD0AVF",
        }
    )
    assert {k: got[2][k] for k in ("action", "p", "i", "o")} == {
        "action": "llm:chat",
        "p": "openai",
        "i": "97",
        "o": "52",
    }


def test_tool_span_execution_fixture_is_a_tool_call(
    shared_fixtures: Path, tmp_path: Path, case_path: Path
) -> None:
    attrs = json.loads(
        (
            shared_fixtures
            / AGENT
            / "openinference-genai-attrs/otel_genai_tool_execution_span.json"
        ).read_text()
    )
    oi = {
        "openinference.span.kind": "TOOL",
        "tool.name": "get_weather",
        "tool.parameters": '{"city": "New York"}',
    }
    ingest(
        case_path,
        [
            write_lines(
                tmp_path / "t.jsonl",
                [
                    traces(
                        [span("a" * 32, "b" * 16, attrs=attrs), span("c" * 32, "d" * 16, attrs=oi)]
                    )
                ],
            )
        ],
    )
    got = rows(
        case_path,
        "SELECT action, service, operation, details->>'tool_call_id' AS call FROM events "
        "ORDER BY trace_id",
    )
    assert [r["action"] for r in got] == ["tool:get_weather", "tool:get_weather"]
    assert (
        got[0]["call"] == "1234"
        and got[0]["service"] == "tool"
        and got[0]["operation"] == "get_weather"
    )


def test_agent_id_is_inherited_from_the_nearest_ancestor_across_lines(
    tmp_path: Path, case_path: Path
) -> None:
    t = "0af7651916cd43dd8448eb211c80319c"
    # child lines come before the parent line: inheritance is resolved per file, not per line.
    lines = [
        traces(
            [
                span(
                    t,
                    "00000000000000c3",
                    "00000000000000c2",
                    "tool",
                    {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "read_s3"},
                )
            ]
        ),
        traces([span(t, "00000000000000c2", "00000000000000c1", "step", {})]),
        traces(
            [
                span(
                    t,
                    "00000000000000c1",
                    "",
                    "invoke_agent",
                    {
                        "gen_ai.operation.name": "invoke_agent",
                        "gen_ai.agent.id": "ledger-reconciler",
                        "user.id": "alice@example.com",
                    },
                ),
                span(
                    t,
                    "00000000000000d1",
                    "00000000000000c1",
                    "sub-agent",
                    {"gen_ai.operation.name": "invoke_agent"},
                ),
                span(
                    t,
                    "00000000000000d2",
                    "00000000000000d1",
                    "sub-tool",
                    {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "x"},
                ),
            ],
            resource={"service.name": "agent-host"},
        ),
    ]
    ingest(case_path, [write_lines(tmp_path / "t.jsonl", lines)])
    got = {
        r["span_id"]: r
        for r in rows(
            case_path,
            "SELECT span_id, agent_id, human_id, actor_type, "
            "details->>'agent_id_source' AS src FROM events",
        )
    }
    assert got["00000000000000c3"]["agent_id"] == "ledger-reconciler"
    assert got["00000000000000c3"]["src"] == "inherited from span 00000000000000c1"
    assert got["00000000000000c3"]["human_id"] == "alice@example.com"
    assert got["00000000000000c2"]["agent_id"] == "ledger-reconciler"
    # a nested unnamed agent is another agent: neither it nor its tools take the outer agent's id;
    # with GenAI attributes they fall back to the resource's service.name.
    assert (
        got["00000000000000d1"]["agent_id"] == "agent-host"
        and got["00000000000000d1"]["src"] == "service.name"
    )
    assert got["00000000000000d2"]["agent_id"] == "agent-host"
    assert got["00000000000000c1"]["actor_type"] == "agent"


def test_fixture_inheritance_koog_and_openinference_agents(
    shared_fixtures: Path, case_path: Path
) -> None:
    d = shared_fixtures / AGENT / "derived"
    ingest(
        case_path,
        [
            d / "langfuse-koog-2025-08-26.otlp.jsonl",
            d / "langfuse-openai-agents-2025-09-30.otlp.jsonl",
            d / "langfuse-google-adk-2025-08-28.otlp.jsonl",
        ],
    )
    got = rows(
        case_path,
        "SELECT action, agent_id, human_id, session_id FROM events WHERE service = 'tool' "
        "ORDER BY action",
    )
    assert got == [
        {
            "action": "tool:ByeTool",
            "agent_id": "f9f77d1a-437f-4ba6-890e-b592a50cbd21",
            "human_id": None,
            "session_id": "6f8d2449-33ed-4c7c-82e7-5410e34ee4e6",
        },
        {
            "action": "tool:HelloTool",
            "agent_id": "f9f77d1a-437f-4ba6-890e-b592a50cbd21",
            "human_id": None,
            "session_id": "6f8d2449-33ed-4c7c-82e7-5410e34ee4e6",
        },
        {
            "action": "tool:get_weather",
            "agent_id": "Hello world",
            "human_id": None,
            "session_id": None,
        },
        # ADK names its agent only in the span name (agent_run [hello_agent])
        {
            "action": "tool:say_hello",
            "agent_id": "hello_agent",
            "human_id": "demo-user",
            "session_id": "demo-session",
        },
    ]


def test_tool_arguments_give_resources_and_credentials(tmp_path: Path, case_path: Path) -> None:
    tool = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "s3_get",
        "gen_ai.tool.call.arguments": json.dumps(
            {
                "Bucket": "ledger",
                "Key": "2026/03/q1.csv",
                "profile": {"aws_access_key_id": "ASIAEXAMPLE000000001"},
            }
        ),
    }
    vault = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "vault_read",
        "gen_ai.tool.call.arguments": '{"path": "secret/data/ledger/db"}',
        "vault.token.accessor": "acc123",
        "error.type": "permission_denied",
    }
    oi = {
        "openinference.span.kind": "TOOL",
        "tool.name": "fetch",
        "input.value": '{"url": "s3://reports/x.pdf", "note": "key AKIAEXAMPLE000000002 seen"}',
    }
    t = "ab" * 16
    doc = traces(
        [
            span(t, "0000000000000001", attrs=tool),
            span(t, "0000000000000002", attrs=vault),
            span(t, "0000000000000003", attrs=oi),
        ]
    )
    ingest(case_path, [write_lines(tmp_path / "t.jsonl", [doc])])
    got = {
        r["operation"]: r
        for r in rows(
            case_path,
            "SELECT operation, target, credential_id, credential_kind, "
            "outcome, error_code FROM events",
        )
    }
    assert got["s3_get"]["target"] == "arn:aws:s3:::ledger/2026/03/q1.csv"
    assert (got["s3_get"]["credential_id"], got["s3_get"]["credential_kind"]) == (
        "ASIAEXAMPLE000000001",
        "aws-temporary-key",
    )
    assert got["vault_read"]["target"] == "vault:secret/data/ledger/db"
    assert (got["vault_read"]["credential_id"], got["vault_read"]["credential_kind"]) == (
        "acc123",
        "vault-token",
    )
    assert (got["vault_read"]["outcome"], got["vault_read"]["error_code"]) == (
        "failure",
        "permission_denied",
    )
    assert got["fetch"]["target"] == "arn:aws:s3:::reports/x.pdf"
    assert got["fetch"]["credential_kind"] == "aws-access-key"
    res = rows(case_path, "SELECT resource_id, resource_type FROM event_resources ORDER BY 1")
    assert res == [
        {"resource_id": "arn:aws:s3:::ledger/2026/03/q1.csv", "resource_type": "AWS::S3::Object"},
        {"resource_id": "arn:aws:s3:::reports/x.pdf", "resource_type": "AWS::S3::Object"},
        {"resource_id": "vault:secret/data/ledger/db", "resource_type": "vault-secret"},
    ]


def test_bad_lines_are_rejected_and_the_rest_loads(tmp_path: Path, case_path: Path) -> None:
    good = json.dumps(traces([span("ab" * 16, "0000000000000001")]))
    no_time = json.dumps(traces([span("ab" * 16, "0000000000000002", start="")]))
    path = tmp_path / "t.jsonl"
    path.write_text(f'{good}\n{{"resourceSpans": [\n{no_time}\n{{"foo": 1}}\n"text"\n')
    summary = ingest(case_path, [path])
    assert summary.files[0].status == "loaded" and summary.files[0].rejected == 4
    rej = rows(case_path, "SELECT record_no, reason FROM rejects ORDER BY record_no")
    assert [r["record_no"] for r in rej] == [2, 3, 4, 5]
    assert "not valid JSON" in rej[0]["reason"]
    assert (
        "startTimeUnixNano" in rej[1]["reason"]
        and "resourceSpans[0].scopeSpans[0].spans[0]" in rej[1]["reason"]
    )
    assert "resourceSpans or resourceLogs" in rej[2]["reason"]
    assert rows(case_path, "SELECT count(*) AS n FROM events")[0]["n"] == 1


def test_log_records_with_genai_tool_attributes(tmp_path: Path, case_path: Path) -> None:
    rec = {
        "timeUnixNano": "1760460269952000000",
        "eventName": "claude_code.tool_result",
        "traceId": "AB" * 16,
        "spanId": "CD" * 8,
        "attributes": kv(
            {
                "tool_name": "Bash",
                "success": "false",
                "session.id": "s-1",
                "user.email": "bob@example.com",
                "tool_parameters": '{"bash_command": "aws s3 cp s3://ledger/q1.csv ."}',
            }
        ),
    }
    rej = {
        "observedTimeUnixNano": "1760460270952000000",
        "body": {"stringValue": "denied"},
        "attributes": kv({"tool_name": "Write", "decision": "reject"}),
    }
    doc = {
        "resourceLogs": [
            {
                "resource": {"attributes": kv({"service.name": "claude-code"})},
                "scopeLogs": [
                    {"scope": {"name": "com.anthropic.claude_code"}, "logRecords": [rec, rej]}
                ],
            }
        ]
    }
    summary = ingest(case_path, [write_lines(tmp_path / "logs.jsonl", [doc])])
    assert summary.files[0].format == "otlp-logs"
    got = rows(
        case_path,
        "SELECT event_uid, action, outcome, agent_id, human_id, session_id, trace_id, span_id "
        "FROM events ORDER BY time",
    )
    assert got[0]["event_uid"].startswith("otlplog:") and got[0]["action"] == "tool:Bash"
    # a recognised tool action with no agent attribute falls back to the resource's service.name
    assert (got[0]["outcome"], got[0]["agent_id"], got[0]["human_id"]) == (
        "failure",
        "claude-code",
        "bob@example.com",
    )
    assert (got[0]["trace_id"], got[0]["span_id"]) == ("ab" * 16, "cd" * 8)
    assert (got[1]["action"], got[1]["outcome"]) == ("tool:Write", "denied")


def test_agent_named_only_in_the_span_name(tmp_path: Path, case_path: Path) -> None:
    t = "0af7651916cd43dd8448eb211c80319d"
    doc = traces(
        [
            span(
                t,
                "00000000000000e1",
                "",
                "invoke_agent Math Tutor",
                {"gen_ai.operation.name": "invoke_agent"},
            ),
            span(
                t,
                "00000000000000e2",
                "00000000000000e1",
                "execute_tool calc",
                {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "calc"},
            ),
            span(
                t, "00000000000000e3", "", "invoke_agent", {"gen_ai.operation.name": "invoke_agent"}
            ),
        ]
    )
    ingest(case_path, [write_lines(tmp_path / "t.jsonl", [doc])])
    got = {
        r["span_id"]: r
        for r in rows(
            case_path,
            "SELECT span_id, agent_id, actor_name, details->>'agent_id_source' AS src FROM events",
        )
    }
    assert (got["00000000000000e1"]["agent_id"], got["00000000000000e1"]["src"]) == (
        "Math Tutor",
        "span name",
    )
    assert got["00000000000000e1"]["actor_name"] == "Math Tutor"
    assert got["00000000000000e2"]["agent_id"] == "Math Tutor"
    assert got["00000000000000e3"]["agent_id"] is None


def test_gzip_and_truncated_gzip(shared_fixtures: Path, tmp_path: Path, case_path: Path) -> None:
    import gzip

    src = shared_fixtures / AGENT / "otlp-json/otel-spec-file-exporter-example-traces.jsonl"
    whole = gzip.compress(src.read_bytes())
    (tmp_path / "t.jsonl.gz").write_bytes(whole)
    (tmp_path / "cut.jsonl.gz").write_bytes(gzip.compress(src.read_bytes()[:2500])[:-12])
    summary = ingest(case_path, [tmp_path / "t.jsonl.gz", tmp_path / "cut.jsonl.gz"])
    full, cut = sorted(summary.files, key=lambda f: f.path, reverse=True)
    assert (full.status, full.records, full.rejected) == ("loaded", 8, 0)
    # the cut file keeps the complete lines before the break; the partial line and the break are rejected
    assert (cut.status, cut.records, cut.rejected) == ("partial", 5, 2)
