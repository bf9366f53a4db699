"""Jaeger exports (query API, UI download, flat span arrays) map to the same events as OTLP.

Expectations come from the fixtures read with plain ``json`` (shared fixtures, ``jaeger/``,
see its SOURCES.md): Jaeger's own converter test pairs ``otlp2jaeger-in.json`` (OTLP) with
``otlp2jaeger-out.json`` (its Jaeger form), so both must give the same event.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb

from keytrail.ingest.runner import ingest

COLS = "event_uid, time, action, parent_span_id, outcome, agent_id"


def _rows(case: Path, where: str = "TRUE") -> list[tuple[Any, ...]]:
    with duckdb.connect(str(case), read_only=True) as con:
        return con.execute(f"SELECT {COLS} FROM events WHERE {where} ORDER BY event_uid").fetchall()


def test_jaeger_and_otlp_forms_of_one_span_are_one_event(
    shared_fixtures: Path, tmp_path: Path
) -> None:
    base = shared_fixtures / "agent" / "jaeger" / "jaeger"
    ingest(tmp_path / "otlp.duckdb", [base / "otlp2jaeger-in.json"])
    ingest(tmp_path / "jaeger.duckdb", [base / "otlp2jaeger-out.json"])
    otlp, jaeger = _rows(tmp_path / "otlp.duckdb"), _rows(tmp_path / "jaeger.duckdb")
    assert otlp == jaeger and len(jaeger) == 1
    assert jaeger[0][0] == "otlp:83a9efd15c1c98a977e0711cc93ee28b:e127af99e3b3e074"
    with duckdb.connect(str(tmp_path / "jaeger.duckdb"), read_only=True) as con:
        raw, fmt, dup = con.execute(
            "SELECT e.raw, e.format, v.duplicates FROM events e JOIN evidence v USING (file_id)"
        ).fetchone()  # type: ignore[misc]
    assert fmt == "jaeger-traces" and dup == 1  # the file holds the span twice
    assert json.loads(raw)["process"]["serviceName"] == "telemetrygen"


def test_genai_trace_from_the_jaeger_ui(shared_fixtures: Path, tmp_path: Path) -> None:
    path = shared_fixtures / "agent" / "jaeger" / "jaeger-ui" / "genaiTestTrace.json"
    doc = json.loads(path.read_text())
    tags = [{t["key"]: t["value"] for t in s["tags"]} for s in doc["spans"]]
    # one execute_tool span names its tool only in the span name: the OTLP reader calls it "unknown"
    tools = sorted(
        t.get("gen_ai.tool.name", "unknown")
        for t in tags
        if t.get("gen_ai.operation.name") == "execute_tool"
    )
    errors = sum(
        1
        for t in tags
        if str(t.get("otel.status_code", "")).upper() == "ERROR" or t.get("error") is True
    )
    ingest(tmp_path / "c.duckdb", [path])
    with duckdb.connect(str(tmp_path / "c.duckdb"), read_only=True) as con:
        n, failed = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE outcome = 'failure') FROM events"
        ).fetchone()  # type: ignore[misc]
        got_tools = [
            r[0]
            for r in con.execute(
                "SELECT operation FROM events WHERE service = 'tool' ORDER BY operation"
            ).fetchall()
        ]
        agents = {
            r[0]
            for r in con.execute(
                "SELECT DISTINCT agent_id FROM events WHERE agent_id IS NOT NULL"
            ).fetchall()
        }
    assert n == len(doc["spans"]) == 57
    assert got_tools == tools and len(tools) == 7
    assert failed >= errors
    assert "triage-agent" in agents


def test_flat_span_array_larger_than_the_sniffing_sample(tmp_path: Path) -> None:
    """The anonymizer's shape, 3,000 spans (over 256 KB): recognised by how it opens."""
    spans = [
        {
            "traceID": "2be38093ead7a083",
            "spanID": f"{i + 1:016x}",
            "flags": 1,
            "operationName": "execute_tool s3_get_object",
            "references": [],
            "startTime": 1605223981761425 + i,
            "duration": 10,
            "tags": [
                {"key": "gen_ai.operation.name", "type": "string", "value": "execute_tool"},
                {"key": "gen_ai.tool.name", "type": "string", "value": "s3_get_object"},
            ],
            "logs": [],
            "process": {"serviceName": "copilot", "tags": []},
        }
        for i in range(3000)
    ]
    path = tmp_path / "spans.json"
    path.write_text(json.dumps(spans, indent=1))
    assert path.stat().st_size > 256 * 1024
    summary = ingest(tmp_path / "c.duckdb", [path])
    assert [(f.status, f.format, f.records, f.rejected) for f in summary.files] == [
        ("loaded", "jaeger-traces", 3000, 0)
    ]
    rows = _rows(tmp_path / "c.duckdb", "span_id = '0000000000000001'")
    assert rows[0][0] == "otlp:00000000000000002be38093ead7a083:0000000000000001"
    assert rows[0][2] == "tool:s3_get_object"
