"""Kept agent-framework evidence (tests/fixtures/agents, made by scripts/make_agent_fixtures.py).

Real pydantic-ai, LangGraph + OpenInference and mcp SDK runs against a real OpenBao server,
kept so the attribution they exercised stays pinned without the frameworks installed: for
every Vault and MCP action, ``keytrail trace`` must name the person (or say there is none),
the agent (merged onto its inventory id) and the AppRole credential chain in expect.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from keytrail.store.case import CaseStore
from tests.agents.expect import check, load, traces

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "agents"
SCENARIOS = sorted(p.name for p in FIXTURES.iterdir() if (p / "expect.json").is_file())


def test_every_scenario_is_kept() -> None:
    assert SCENARIOS == [
        "handoff",
        "langgraph",
        "mcp",
        "retry",
        "shared-agent",
        "strands",
        "unknown-tool",
    ]


@pytest.mark.parametrize("name", SCENARIOS)
def test_trace_names_person_agent_and_chain(name: str, tmp_path: Path) -> None:
    assert check(FIXTURES / name, tmp_path / "case.duckdb") == []


def test_two_people_one_agent_one_token_each_read_is_theirs(tmp_path: Path) -> None:
    """The issue's case: dana's read of payroll/2025-10 is dana's, not 'dana or omar'."""
    case = tmp_path / "case.duckdb"
    load(FIXTURES / "shared-agent", case)
    by_target = {t["event"]["target"]: t for e, t in traces(FIXTURES / "shared-agent", case)}
    dana = by_target["secret/data/payroll/2025-10"]
    assert [(c["kind"], c["id"]) for c in dana["chain"][:2]] == [
        ("human", "dana"),
        ("agent", "agt-ledger-1"),
    ]
    assert (
        dana["chain"][0]["confidence"] == "strong"
    )  # inside the tool span, on the agent's own token
    nightly = by_target["secret/data/payroll/2025-09"]
    assert any(g.startswith("no person: the tool call") for g in nightly["gaps"])
    with CaseStore.open(case) as store:
        same = store.query(
            "SELECT src, dst, confidence, evidence FROM links WHERE kind = 'SAME_AGENT'"
        )
        assert [(r["src"], r["dst"], r["confidence"]) for r in same] == [
            ("ledger-reconciler", "agt-ledger-1", "strong")
        ]
        assert same[0]["evidence"][0].startswith("inventory:")
        # one agent: the token's USES edge and the people's DELEGATED edges meet on the inventory id
        edges = store.query(
            "SELECT kind, src, dst FROM links WHERE kind IN ('DELEGATED', 'USES') ORDER BY ALL"
        )
        assert [(r["kind"], r["src"]) for r in edges] == [
            ("DELEGATED", "dana"),
            ("DELEGATED", "omar"),
            ("USES", "agt-ledger-1"),
        ]
        assert {r["dst"] for r in edges if r["kind"] == "DELEGATED"} == {"agt-ledger-1"}
        agents = {
            r["principal_id"]
            for r in store.query("SELECT principal_id FROM principals WHERE kind = 'agent'")
        }
        assert agents == {"agt-ledger-1"}
        causes = store.query("SELECT rule, confidence FROM event_links ORDER BY rule")
        assert [r["rule"] for r in causes] == ["target"] * 3  # the start-up login is no tool call's


def test_mcp_request_is_linked_to_the_tool_span_by_traceparent(tmp_path: Path) -> None:
    case = tmp_path / "case.duckdb"
    load(FIXTURES / "mcp", case)
    with CaseStore.open(case) as store:
        rows = store.query("""
            SELECT l.rule, l.confidence, c.action AS cause, e.action AS effect FROM event_links l
            JOIN events c ON c.event_uid = l.cause_uid JOIN events e ON e.event_uid = l.effect_uid
            ORDER BY l.rule, e.action""")
    assert [(r["rule"], r["confidence"], r["cause"], r["effect"]) for r in rows] == [
        ("issued-token", "inferred", "mcp:tools/call", "vault:update"),
        ("target", "inferred", "mcp:tools/call", "vault:read"),
        ("traceparent", "proven", "tool:read_secret", "mcp:tools/call"),
    ]


def test_expectations_cover_every_vault_action(tmp_path: Path) -> None:
    """No Vault request of a scenario escapes expect.json (a new call needs an expected answer)."""
    for name in SCENARIOS:
        case = tmp_path / f"{name}.duckdb"
        load(FIXTURES / name, case)
        traced = {t["event"]["event_uid"] for _, t in traces(FIXTURES / name, case)}
        with CaseStore.open(case) as store:
            vault = {
                r["event_uid"]
                for r in store.query("SELECT event_uid FROM events WHERE source = 'vault'")
            }
        assert vault <= traced, (name, json.dumps(sorted(vault - traced)))


def test_two_people_on_one_target_at_once_name_nobody(tmp_path: Path) -> None:
    """A second person's tool call on the same path at the same moment: the read is nobody's."""
    folder = tmp_path / "shared"
    folder.mkdir()
    for p in (FIXTURES / "shared-agent").iterdir():
        (folder / p.name).write_bytes(p.read_bytes())
    case = tmp_path / "probe.duckdb"
    load(FIXTURES / "shared-agent", case)
    with CaseStore.open(case) as store:
        (row,) = store.query(
            "SELECT strftime(time, '%Y-%m-%dT%H:%M:%S.%fZ') AS t FROM events "
            "WHERE action = 'tool:read_secret' AND human_id = 'dana'"
        )
    line = {
        "time": row["t"],
        "agent_id": "agt-ledger-1",
        "operation": "tool_call",
        "tool": "read_secret",
        "arguments": {"path": "payroll/2025-10"},
        "on_behalf_of": "omar",
    }
    (folder / "other-agent.jsonl").write_text(json.dumps(line) + "\n")
    by_target = {t["event"]["target"]: t for _, t in _traced(folder, tmp_path / "c.duckdb")}
    read = by_target["secret/data/payroll/2025-10"]
    assert "human" not in {c["kind"] for c in read["chain"]}
    assert any(g.startswith("no person named: 2 tool calls") for g in read["gaps"])
    assert {c["human_id"] for c in read["candidates"]["causes"]} == {"dana", "omar"}
    # the other reads keep their person
    assert by_target["secret/data/payroll/2025-11"]["chain"][0]["id"] == "omar"


def _traced(folder: Path, case: Path) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    load(folder, case)
    return traces(folder, case)


def test_model_asking_for_a_tool_it_was_not_given_is_visible(tmp_path: Path) -> None:
    """pydantic-ai refuses the call (no tool span); the chat span's output is the only evidence."""
    case = tmp_path / "case.duckdb"
    load(FIXTURES / "unknown-tool", case)
    with CaseStore.open(case) as store:
        rows = store.query(
            "SELECT action, details->>'undeclared_tool_calls' AS asked FROM events "
            "WHERE details->>'undeclared_tool_calls' IS NOT NULL"
        )
        tools = store.query(
            "SELECT DISTINCT action FROM events WHERE service = 'tool' ORDER BY action"
        )
    assert [(r["action"], json.loads(r["asked"])) for r in rows] == [
        ("llm:chat", ["export_all_secrets"])
    ]
    assert [r["action"] for r in tools] == ["tool:read_secret"]  # the refused tool never ran


@pytest.mark.parametrize("name", SCENARIOS)
def test_jaeger_export_holds_the_same_spans(name: str) -> None:
    """The Jaeger UI download of each run (kept for a Jaeger reader) has the OTLP file's spans."""
    otlp = {
        (s["traceId"], s["spanId"], s.get("parentSpanId", ""), s["name"])
        for line in (FIXTURES / name / "traces.otlp.jsonl").read_text().splitlines()
        for rs in json.loads(line)["resourceSpans"]
        for ss in rs["scopeSpans"]
        for s in ss["spans"]
    }
    jaeger = {
        (
            s["traceID"],
            s["spanID"],
            next((r["spanID"] for r in s["references"]), ""),
            s["operationName"],
        )
        for t in json.loads((FIXTURES / name / "traces.jaeger.json").read_text())["data"]
        for s in t["spans"]
    }
    assert otlp == jaeger and len(otlp) > 3


def test_strands_tool_arguments_come_from_its_span_event(tmp_path: Path) -> None:
    """Strands (default conventions) logs tool input only as a gen_ai.tool.message span event."""
    case = tmp_path / "case.duckdb"
    load(FIXTURES / "strands", case)
    with CaseStore.open(case) as store:
        (row,) = store.query(
            "SELECT target, details->>'tool_arguments_source' AS src, agent_id, human_id "
            "FROM events "
            "WHERE action = 'tool:read_secret'"
        )
    assert (row["target"], row["src"]) == ("payroll/2025-12", "span event gen_ai.tool.message")
    assert (row["agent_id"], row["human_id"]) == ("agt-strands-4", "ivan")
