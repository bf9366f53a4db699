"""Every file under fixtures/agent either loads as agent events or is skipped with a reason."""

from __future__ import annotations

import json
from pathlib import Path

from keytrail.ingest.runner import ingest
from tests.unit.test_ingest_otlp import count_items, rows


def _expected(path: Path) -> int | None:
    """Events expected from one fixture, decided without keytrail: OTLP items or one MCP message."""
    text = path.read_text(errors="replace")
    if path.suffix not in (".json", ".jsonl"):
        return None
    try:
        docs = [json.loads(text)]
    except json.JSONDecodeError:
        try:
            docs = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError:
            return None
    first = docs[0]
    if not isinstance(first, dict):
        return None
    if "resourceSpans" in first or "resourceLogs" in first:
        return count_items(path)
    if first.get("jsonrpc") == "2.0" and ("method" in first or "id" in first):
        return len(docs)
    return None


def test_all_agent_fixtures(shared_fixtures: Path, case_path: Path) -> None:
    base = shared_fixtures / "agent"
    files = sorted(p for p in base.rglob("*") if p.is_file() and p.name != "SOURCES.md")
    expected = {str(p.resolve()): _expected(p) for p in files}
    summary = ingest(case_path, [base])
    assert len(summary.files) == len(files) + 1  # + SOURCES.md
    for f in summary.files:
        want = expected.get(f.path)
        assert f.status != "failed", f
        if want is None:
            assert f.status == "skipped" and f.note, f
        else:
            assert (f.status, f.source, f.records, f.rejected) == ("loaded", "agent", want, 0), f
    loaded = [n for n in expected.values() if n is not None]
    # 18 before jaeger/ arrived, + jaeger/otlp2jaeger-in.json (the OTLP input of Jaeger's converter test)
    assert len(loaded) == 19
    got = rows(case_path, "SELECT count(*) AS n FROM events")[0]["n"]
    # otlp2jaeger-in.json holds one span twice (same traceId and spanId): stored once
    assert sum(loaded) == 66
    assert got == 65
