"""Every file under fixtures/agent either loads as agent events or is skipped with a reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from keytrail.ingest.runner import ingest
from tests.unit.test_ingest_otlp import count_items, rows


def _jaeger_spans(doc: object) -> list[dict[str, Any]] | None:
    """The spans of a Jaeger export (query API envelope, one UI trace, flat span array), else
    None."""
    if isinstance(doc, list) and doc and all(isinstance(s, dict) and "spanID" in s for s in doc):
        return doc
    if isinstance(doc, dict) and isinstance(doc.get("data"), list):
        return [s for t in doc["data"] for s in t["spans"]]
    if isinstance(doc, dict) and "traceID" in doc and isinstance(doc.get("spans"), list):
        return list(doc["spans"])
    return None


def _jaeger_keys(path: Path) -> set[tuple[str, str]]:
    """(trace id, span id) as OTLP writes them: full width, lower case (Jaeger drops leading
    zeros)."""
    spans = _jaeger_spans(json.loads(path.read_text())) or []
    return {
        (s["traceID"].lower().rjust(32, "0"), s["spanID"].lower().rjust(16, "0")) for s in spans
    }


def _expected(path: Path) -> int | None:
    """Events expected from one fixture, decided without keytrail: OTLP items, Jaeger spans or one
    MCP message."""
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
    if (spans := _jaeger_spans(first)) is not None:
        return len(spans)
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
    # 18 OTLP/MCP files, jaeger/otlp2jaeger-in.json (the OTLP input of Jaeger's converter test) and
    # six Jaeger exports (the UI's Redux-state file TraceFlamegraph-testTrace.json is no export:
    # skipped)
    assert len(loaded) == 25
    got = rows(case_path, "SELECT count(*) AS n FROM events")[0]["n"]
    jaeger = [
        p
        for p in files
        if p.suffix == ".json" and _jaeger_spans(json.loads(p.read_text())) is not None
    ]
    assert sorted(p.name for p in jaeger) == [
        "anonymizer-uiconv-trace_success.json",
        "genaiTestTrace.json",
        "oltp2jaeger-multi-out.json",
        "otlp2jaeger-out.json",
        "otlp2jaeger-out.json",
        "ui_01.json",
    ]
    in_jaeger = {str(j.resolve()) for j in jaeger}
    jaeger_spans = sum(n for p, n in expected.items() if n is not None and p in in_jaeger)
    # by hand: anonymizer 2, otlp2jaeger-out 2 (one span twice) in each repo, ui_01 5,
    # genai 57, multi 4
    assert jaeger_spans == 72
    # otlp2jaeger-in.json holds one span twice (same traceId and spanId): stored once; the Jaeger
    # files add their distinct spans, except the one that is that same OTLP span converted
    keys = set().union(*(_jaeger_keys(p) for p in jaeger))
    otlp_in = json.loads((base / "jaeger" / "jaeger" / "otlp2jaeger-in.json").read_text())
    otlp_keys = {
        (sp["traceId"].lower(), sp["spanId"].lower())
        for rs in otlp_in["resourceSpans"]
        for ss in rs["scopeSpans"]
        for sp in ss["spans"]
    }
    assert otlp_keys <= keys  # the converter's output is the same span
    assert sum(loaded) == 66 + jaeger_spans
    assert got == 65 + len(keys - otlp_keys)
    sql = "SELECT count(*) AS n FROM events WHERE format = 'jaeger-traces'"
    n_jaeger = rows(case_path, sql)[0]["n"]
    assert n_jaeger == len(keys - otlp_keys)
