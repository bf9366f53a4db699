"""Agent, human and session inherited from ancestor spans, resolved once per file.

Frameworks name the agent (``gen_ai.agent.id``), the user and the session on the
agent's span, not on every tool and LLM span below it. After a file is read, each
span that lacks one of them takes it from its nearest ancestor in the same trace.
Span rows are written as they are read (memory stays flat on a large trace file);
only a small node per span is kept, and the inherited values are applied to the
file's rows with one bulk ``UPDATE``.

Rules (``docs/formats/otlp.md``): an agent span (``invoke_agent``/``create_agent``)
never inherits an agent, and the search for an agent stops at the nearest agent
span, named or not (a nested agent span is another agent, invoked by its parent).
Without an agent after that, a span with GenAI attributes takes its resource's
``service.name`` when that is not an SDK default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from keytrail.ingest.agent.common import json_text

if TYPE_CHECKING:
    from keytrail.ingest.base import LoadContext

Key = tuple[str, str]  # (trace id, span id)
FIELDS = (
    ("agent_id", "agent_id_source"),
    ("human_id", "human_id_source"),
    ("session_id", "session_id_source"),
)


@dataclass(slots=True)
class SpanNode:
    """What inheritance needs to know about one span."""

    event_uid: str
    key: Key | None
    parent: Key | None
    agent_id: str | None
    human_id: str | None
    session_id: str | None
    is_agent_span: bool
    #: ``service.name`` when the span may fall back to it (GenAI attributes, not an SDK default).
    fallback_agent: str | None


def resolve(nodes: list[SpanNode]) -> list[dict[str, Any]]:
    """Updates ``{event_uid, agent_id, human_id, session_id, patch}`` for spans that inherit something."""
    by_key = {n.key: n for n in nodes if n.key}
    memo: dict[tuple[str, Key], tuple[str, str] | None] = {}

    def lookup(attr: str, key: Key | None) -> tuple[str, str] | None:
        """(value, span id it came from) from ``key`` or its ancestors; iterative and cycle-safe."""
        chain: list[Key] = []
        seen: set[Key] = set()
        found: tuple[str, str] | None = None
        while key and key in by_key and key not in seen:
            if (attr, key) in memo:
                found = memo[(attr, key)]
                break
            seen.add(key)
            chain.append(key)
            node = by_key[key]
            own = getattr(node, attr)
            if own:
                found = (own, key[1])
                break
            if attr == "agent_id" and node.is_agent_span:
                break
            key = node.parent
        for k in chain:
            memo[(attr, k)] = found
        return found

    updates: list[dict[str, Any]] = []
    for n in nodes:
        upd: dict[str, Any] = {}
        patch: dict[str, str] = {}
        for attr, src in FIELDS:
            if getattr(n, attr) or (attr == "agent_id" and n.is_agent_span):
                continue
            hit = lookup(attr, n.parent)
            if hit:
                upd[attr] = hit[0]
                patch[src] = f"inherited from span {hit[1]}"
        if not n.agent_id and "agent_id" not in upd and n.fallback_agent:
            upd["agent_id"] = n.fallback_agent
            patch["agent_id_source"] = "service.name"
        if upd:
            updates.append(
                {
                    "event_uid": n.event_uid,
                    "agent_id": upd.get("agent_id"),
                    "human_id": upd.get("human_id"),
                    "session_id": upd.get("session_id"),
                    "patch": json_text(patch),
                }
            )
    return updates


def apply(ctx: LoadContext, updates: list[dict[str, Any]]) -> None:
    """Write inherited values into this file's span rows (one UPDATE)."""
    if not updates:
        return
    table = pa.Table.from_pylist(
        updates,
        schema=pa.schema(
            [(c, pa.string()) for c in ("event_uid", "agent_id", "human_id", "session_id", "patch")]
        ),
    )
    ctx.con.register("_kt_inherit", table)
    try:
        ctx.con.execute(
            """UPDATE events SET
                 agent_id = coalesce(events.agent_id, u.agent_id),
                 actor_uid = coalesce(events.actor_uid, u.agent_id),
                 actor_type = CASE WHEN coalesce(events.agent_id, u.agent_id) IS NULL THEN events.actor_type
                                   ELSE 'agent' END,
                 human_id = coalesce(events.human_id, u.human_id),
                 session_id = coalesce(events.session_id, u.session_id),
                 details = json_merge_patch(coalesce(events.details, '{}'::JSON), u.patch::JSON)
               FROM _kt_inherit u
               WHERE events.file_id = ? AND events.event_uid = u.event_uid""",
            [ctx.file_id],
        )
    finally:
        ctx.con.unregister("_kt_inherit")
