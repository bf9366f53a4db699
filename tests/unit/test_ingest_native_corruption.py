"""Corrupt valid agent logs at random: the adapters never crash and never lose a good record.

Each example loads straight into an in-memory DuckDB with the case schema (no runner,
no finalize), so the accounting is exact: every record read is an event, a reject, or a
counted merge (an MCP response folded into its request).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keytrail.ingest.agent.mcp import McpAdapter
from keytrail.ingest.agent.native import NativeAgentAdapter
from keytrail.ingest.agent.otlp import OtlpAdapter
from keytrail.ingest.base import LoadContext, SourceAdapter
from keytrail.store.schema import TABLES

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def native_line(i: int) -> bytes:
    return json.dumps(
        {
            "time": f"2026-03-01T12:00:{i % 60:02d}Z",
            "event_id": f"e{i}",
            "agent_id": f"a{i % 3}",
            "operation": "tool_call",
            "tool": "s3_get",
            "arguments": {"Bucket": "b", "Key": f"k{i}"},
            "credential": "AKIAEXAMPLE000000006",
            "outcome": "success",
        }
    ).encode()


def otlp_line(i: int) -> bytes:
    spans = [
        {
            "traceId": f"{i + 1:032x}",
            "spanId": f"{j + 1:016x}",
            "name": "tool",
            "startTimeUnixNano": str(1760460269952000000 + j),
            "attributes": [
                {"key": "gen_ai.operation.name", "value": {"stringValue": "execute_tool"}},
                {"key": "gen_ai.tool.name", "value": {"stringValue": f"t{j}"}},
            ],
        }
        for j in range(1 + i % 3)
    ]
    return json.dumps(
        {
            "resourceSpans": [
                {"resource": {"attributes": []}, "scopeSpans": [{"scope": {}, "spans": spans}]}
            ]
        }
    ).encode()


def mcp_line(i: int) -> bytes:
    msg = {
        "jsonrpc": "2.0",
        "method": "notifications/progress",
        "params": {"progressToken": f"p{i}"},
    }
    return json.dumps(
        {"time": f"2026-03-01T12:00:{i % 60:02d}Z", "session": "s", "message": msg}
    ).encode()


def expected_uids(adapter: type[SourceAdapter], i: int, line: bytes) -> set[str]:
    if adapter is NativeAgentAdapter:
        return {f"agent:e{i}"}
    if adapter is OtlpAdapter:
        return {f"otlp:{i + 1:032x}:{j + 1:016x}" for j in range(1 + i % 3)}
    return set()  # MCP notifications are hashed: checked through the line count instead


mutation = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("replace"), st.floats(0, 1), st.binary(min_size=1, max_size=3)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=8)),
)


def mutate(line: bytes, m: tuple[Any, ...]) -> bytes:
    pos = int(m[1] * len(line))
    if m[0] == "truncate":
        return line[:pos]
    extra: bytes = m[2]
    if m[0] == "replace":
        return line[:pos] + extra + line[pos + len(extra) :]
    return line[:pos] + extra + line[pos:]


def load(
    adapter: type[SourceAdapter], data: bytes, fmt: str
) -> tuple[LoadContext, duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    for t in TABLES:
        con.execute(t.ddl())
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "log.jsonl"
        path.write_bytes(data)
        ctx = LoadContext(con, path, 1, fmt, False)
        adapter().load(ctx)
        ctx.flush_rejects()  # what the runner does before it records the file's counts
    return ctx, con


@SETTINGS
@given(
    st.sampled_from(
        [
            (NativeAgentAdapter, native_line, "agent-jsonl"),
            (OtlpAdapter, otlp_line, "otlp-traces"),
            (McpAdapter, mcp_line, "mcp-jsonrpc-wrapped"),
        ]
    ),
    st.integers(2, 12),
    st.dictionaries(st.integers(0, 11), mutation, max_size=6),
)
def test_corruption_never_crashes_or_loses_good_records(
    case: Any, n: int, muts: dict[int, Any]
) -> None:
    adapter, make, fmt = case
    lines, good = [], set()
    intact = 0
    for i in range(n):
        line = make(i)
        if i in muts and i > 0:  # line 0 stays valid so the file keeps its JSON-lines shape
            line = mutate(line, muts[i])
        else:
            good |= expected_uids(adapter, i, line)
            intact += 1
        lines.append(line)
    ctx, con = load(adapter, b"\n".join(lines) + b"\n", fmt)
    events = con.execute("SELECT event_uid FROM events").fetchall()
    uids = {r[0] for r in events}
    assert ctx.records == len(events) + ctx.rejected + ctx.skipped_records
    assert good <= uids, "a record that was not corrupted must be loaded"
    assert con.execute("SELECT count(*) FROM rejects").fetchone() == (ctx.rejected,)
    if adapter is McpAdapter:
        assert len(events) >= intact
