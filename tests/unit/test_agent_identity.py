"""One agent, one id (graph/agent_identity.py): the two merge rules and what merges nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from keytrail.ingest.runner import ingest
from tests.conftest import case_rows

T0 = 1_780_000_000_000_000_000


def _span(trace: str, span: str, name: str, attrs: dict[str, str], t: int) -> dict[str, Any]:
    return {
        "traceId": trace * 32,
        "spanId": span * 16,
        "name": name,
        "kind": 1,
        "startTimeUnixNano": str(T0 + t),
        "endTimeUnixNano": str(T0 + t + 1000),
        "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attrs.items()],
    }


def _otlp(path: Path, spans: list[dict[str, Any]]) -> Path:
    doc = {
        "resourceSpans": [
            {
                "resource": {"attributes": []},
                "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}],
            }
        ]
    }
    path.write_text(json.dumps(doc) + "\n")
    return path


def test_id_and_name_on_one_span_merge_the_name(tmp_path: Path) -> None:
    spans = [
        _span(
            "a",
            "1",
            "invoke_agent",
            {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.id": "agt-x",
                "gen_ai.agent.name": "x-bot",
                "enduser.id": "dana",
            },
            0,
        ),
        _span(
            "b",
            "2",
            "invoke_agent x-bot",
            {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": "x-bot",
                "enduser.id": "omar",
            },
            10,
        ),
    ]
    case = tmp_path / "c.duckdb"
    ingest(case, [_otlp(tmp_path / "t.jsonl", spans)])
    same = case_rows(
        case, "SELECT src, dst, confidence, reason, evidence FROM links WHERE kind = 'SAME_AGENT'"
    )
    assert [(r["src"], r["dst"], r["confidence"]) for r in same] == [("x-bot", "agt-x", "proven")]
    assert "gen_ai.agent.id agt-x and gen_ai.agent.name x-bot" in same[0]["reason"]
    assert same[0]["evidence"] == ["otlp:" + "a" * 32 + ":" + "1" * 16]
    rows = case_rows(
        case, "SELECT agent_id, details->>'agent_id_logged' AS logged FROM events ORDER BY time"
    )
    assert [(r["agent_id"], r["logged"]) for r in rows] == [("agt-x", None), ("agt-x", "x-bot")]
    humans = case_rows(case, "SELECT src, dst FROM links WHERE kind = 'DELEGATED' ORDER BY src")
    assert [(r["src"], r["dst"]) for r in humans] == [("dana", "agt-x"), ("omar", "agt-x")]


def test_inventory_name_merges_only_when_it_names_one_agent(tmp_path: Path) -> None:
    spans = [
        _span(
            "c",
            "3",
            "invoke_agent",
            {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "helper"},
            0,
        ),
        _span(
            "d",
            "4",
            "invoke_agent",
            {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "ledger"},
            5,
        ),
    ]
    inv = tmp_path / "inventory.toml"
    inv.write_text(
        '[[agents]]\nid = "agt-1"\nname = "helper"\n\n[[agents]]\nid = "agt-2"\nname = "helper"\n\n'
        '[[agents]]\nid = "agt-3"\nname = "ledger"\n'
    )
    case = tmp_path / "c.duckdb"
    ingest(case, [_otlp(tmp_path / "t.jsonl", spans)], inventory=[inv])
    same = case_rows(
        case, "SELECT src, dst, confidence, evidence FROM links WHERE kind = 'SAME_AGENT'"
    )
    # 'helper' names two inventory agents: no merge; 'ledger' names one
    assert [(r["src"], r["dst"], r["confidence"]) for r in same] == [("ledger", "agt-3", "strong")]
    assert same[0]["evidence"][0].startswith("inventory:")
    agents = {r["agent_id"] for r in case_rows(case, "SELECT agent_id FROM events")}
    assert agents == {"helper", "agt-3"}
    # a second ingest re-derives from the logged ids: the merge is stable, not applied twice
    more = [
        _span(
            "e",
            "5",
            "invoke_agent",
            {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "other"},
            9,
        )
    ]
    ingest(case, [_otlp(tmp_path / "more.jsonl", more)])
    again = case_rows(
        case, "SELECT agent_id, details->>'agent_id_logged' AS logged FROM events ORDER BY time"
    )
    assert [(r["agent_id"], r["logged"]) for r in again] == [
        ("helper", None),
        ("agt-3", "ledger"),
        ("other", None),
    ]
    assert len(case_rows(case, "SELECT 1 FROM links WHERE kind = 'SAME_AGENT'")) == 1
