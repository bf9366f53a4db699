"""Per-call delegation: the tool call behind an event, the person it served, the agents between.

When several people use one agent and one token, the DELEGATED edges of the agent name them
all; only the tool call behind one Vault or AWS call says whose request it served. The
``event_links`` table (:mod:`keytrail.graph.derive_causes`) holds that link; this module
follows it from an event up to the tool call (and from an MCP request up to the tool span
that sent it), reads the person on it (``enduser.id`` inherited from the web request), and
walks the tool span's ancestors for an agent that handed the work over (a triage agent whose
tool ran another agent). Nothing is guessed: ambiguous causes are listed, not picked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keytrail.graph.model import CONFIDENCE_RANK

if TYPE_CHECKING:
    from keytrail.store.case import CaseStore

#: Cause hops followed upwards (tool span -> MCP request -> Vault read is two).
MAX_HOPS = 5
#: Span ancestors walked for a delegating agent.
MAX_DEPTH = 50


@dataclass
class ChainPart:
    """One link of the chain as plain values (the trace turns it into its ChainLink)."""

    kind: str
    id: str
    reason: str
    confidence: str
    evidence: tuple[str, ...]


@dataclass
class CauseTrace:
    causes: list[dict[str, Any]]  # event_links rows, effect first
    human: ChainPart | None
    agents: list[ChainPart]  # outermost (delegating) first, the acting agent last
    gaps: list[str] = field(default_factory=list)
    candidates: list[dict[str, Any]] = field(default_factory=list)


def _weakest(*confs: str) -> str:
    return max(confs, key=lambda c: CONFIDENCE_RANK.get(c, 2))


def _links_to(store: CaseStore, uid: str) -> list[dict[str, Any]]:
    return store.query(
        """SELECT l.cause_uid, l.effect_uid, l.rule, l.reason, l.confidence, e.agent_id, e.human_id,
                  e.action, e.format, e.trace_id, e.span_id, e.parent_span_id,
                  e.details->>'human_id_source' AS human_source
           FROM event_links l JOIN events e ON e.event_uid = l.cause_uid
           WHERE l.effect_uid = ? AND l.rank = 1 ORDER BY l.cause_uid""",
        [uid],
    )


def _delegators(store: CaseStore, cause: dict[str, Any]) -> list[ChainPart]:
    """Agents above the tool call's agent in its trace (nearest last), with the spans showing it."""
    if not cause["trace_id"] or not cause["parent_span_id"]:
        return []
    spans = {
        r["span_id"]: r
        for r in store.query(
            "SELECT span_id, parent_span_id, agent_id, event_uid FROM events "
            "WHERE trace_id = ? AND span_id IS NOT NULL",
            [cause["trace_id"]],
        )
    }
    found: list[ChainPart] = []
    below_agent, below_uid = cause["agent_id"], cause["cause_uid"]
    key, depth = cause["parent_span_id"], 0
    while key in spans and depth < MAX_DEPTH:
        span = spans[key]
        if span["agent_id"] and span["agent_id"] != below_agent:
            found.append(
                ChainPart(
                    "agent",
                    span["agent_id"],
                    f"handed the work to agent {below_agent}: its span {span['event_uid']} is an "
                    f"ancestor of {below_uid} in trace {cause['trace_id']}",
                    "proven",
                    (span["event_uid"], below_uid),
                )
            )
            below_agent, below_uid = span["agent_id"], span["event_uid"]
        key, depth = span["parent_span_id"], depth + 1
    return list(reversed(found))


def trace_cause(store: CaseStore, uid: str) -> CauseTrace | None:
    """The cause chain of event ``uid``, or None when no tool call is linked to it."""
    first = _links_to(store, uid)
    if not first:
        return None
    if len({(r["human_id"], r["agent_id"]) for r in first}) > 1:
        people = ", ".join(sorted({str(r["human_id"] or "no person") for r in first}))
        why = (
            f"no person named: {len(first)} tool calls match this event equally ({people}); "
            "see candidates"
        )
        return CauseTrace(first, None, [], [why], candidates=first)
    causes, row = [first[0]], first[0]
    while len(causes) < MAX_HOPS:  # an MCP request caused by the tool span that sent it, ...
        up = _links_to(store, row["cause_uid"])
        if len(up) != 1:
            break
        causes.append(up[0])
        row = up[0]
    conf = _weakest(*(c["confidence"] for c in causes))
    evidence = tuple([c["cause_uid"] for c in reversed(causes)] + [uid])
    how = "; ".join(f"{c['cause_uid']} -> {c['effect_uid']}: {c['reason']}" for c in causes)
    outer = causes[-1]  # the outermost tool call
    agents = _delegators(store, outer)
    acting = [c for c in reversed(causes) if c["agent_id"]]
    for c in acting:
        if not agents or agents[-1].id != c["agent_id"]:
            agents.append(
                ChainPart(
                    "agent",
                    c["agent_id"],
                    f"its tool call {c['cause_uid']} caused this event ({how})",
                    conf,
                    evidence,
                )
            )
    named = next((c for c in causes if c["human_id"]), None)
    gaps: list[str] = []
    human = None
    if named is not None:
        src = named["human_source"] or "the tool call's user attribute"
        human = ChainPart(
            "human",
            named["human_id"],
            f"the tool call {named['cause_uid']} that caused this event was made for "
            f"{named['human_id']} ({src})",
            conf,
            evidence,
        )
    else:
        gaps.append(
            f"no person: the tool call {outer['cause_uid']} that caused this event names no end "
            "user, nor does any span above it (an agent acting on its own, e.g. a scheduled job)"
        )
    if conf == "inferred":
        gaps.append(f"the tool call was matched to this event by time and target (inferred): {how}")
    return CauseTrace(causes, human, agents, gaps)
