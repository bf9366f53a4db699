"""Check a scenario folder: ingest it, trace each Vault and MCP action, compare with expect.json.

Shared by the live tests (frameworks installed, fresh evidence) and the fixture tests (the kept
evidence under ``tests/fixtures/agents``), so both hold keytrail to the same answers. Needs only
keytrail itself: no agent framework is imported here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from keytrail.analysis.delegation import trace_event
from keytrail.ingest.runner import ingest
from keytrail.store.case import CaseStore

EVIDENCE_SUFFIXES = (".jsonl", ".log")


def load(folder: Path, case: Path) -> None:
    """Ingest a scenario folder (its evidence files, with its inventory) into ``case``."""
    files = sorted(p for p in folder.iterdir() if p.suffix in EVIDENCE_SUFFIXES)
    summary = ingest(case, files, inventory=[folder / "inventory.toml"])
    bad = [(f.path, f.status) for f in summary.files if f.status != "loaded"]
    assert not bad, f"files not loaded: {bad}"


def _events(store: CaseStore, source: str, target: str) -> list[str]:
    if source == "mcp":
        rows = store.query(
            "SELECT event_uid FROM events WHERE starts_with(format, 'mcp') AND action = ? "
            "ORDER BY time",
            [f"mcp:{target}"],
        )
    elif target == "login":
        rows = store.query(
            "SELECT event_uid FROM events WHERE source = 'vault' AND regexp_matches(target, "
            "'^auth/.+/login$') ORDER BY time"
        )
    else:
        rows = store.query(
            "SELECT event_uid FROM events WHERE source = 'vault' AND target = ? ORDER BY time",
            [target.removeprefix("vault:")],
        )
    return [str(r["event_uid"]) for r in rows]


def traces(folder: Path, case: Path) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``(expectation, trace as a dict)`` for every action ``expect.json`` names (one per event)."""
    expects = json.loads((folder / "expect.json").read_text())["expects"]
    out = []
    with CaseStore.open(case) as store:
        for e in expects:
            uids = _events(store, e["source"], e["target"])
            assert uids, f"no {e['source']} event for {e['target']} in {folder.name}"
            out += [(e, trace_event(store, uid).as_dict()) for uid in uids]
    return out


def problems(expect: dict[str, Any], trace: dict[str, Any]) -> list[str]:
    """What the trace gets wrong against the expectation (empty when it is right)."""
    chain, gaps = trace["chain"], trace["gaps"]
    where = f"{trace['event']['action']} {trace['event']['event_uid']}"
    humans = [c["id"] for c in chain if c["kind"] == "human"]
    agents = [c["id"] for c in chain if c["kind"] == "agent"]
    creds = [c for c in chain if c["kind"] == "credential"]
    out = []
    if expect["human"] is None:
        # "no person" (nobody asked) or an ambiguity keytrail states instead of picking someone
        if humans or not any("no person" in g or "cannot be attributed" in g for g in gaps):
            out.append(f"{where}: expected 'no person', got humans {humans}, gaps {gaps}")
    elif humans != [expect["human"]]:
        out.append(f"{where}: expected person {expect['human']}, got {humans}; gaps {gaps}")
    if expect["agent"] is not None and (not agents or agents[-1] != expect["agent"]):
        out.append(f"{where}: expected agent {expect['agent']}, got {agents}; gaps {gaps}")
    if expect.get("via_agent") and expect["via_agent"] not in agents[:-1]:
        out.append(
            f"{where}: expected delegation from agent {expect['via_agent']}, got agents {agents}"
        )
    if expect.get("role"):
        # the root token's login names the mount; the role is named where the token meets the agent
        reasons = " ".join(c["reason"] for c in chain if c["kind"] in ("agent", "credential"))
        if (
            not creds
            or "login" not in creds[0]["reason"]
            or f"role {expect['role']}" not in reasons
        ):
            out.append(
                f"{where}: expected a credential chain rooted in an AppRole login of role "
                f"{expect['role']}, "
                f"got {[c['reason'] for c in chain]}"
            )
    return out


def check(folder: Path, case: Path) -> list[str]:
    """Every problem over the scenario (ingests ``folder`` into ``case`` first)."""
    load(folder, case)
    return [p for e, t in traces(folder, case) for p in problems(e, t)]
