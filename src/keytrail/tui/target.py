"""What a picked row opens, as a typed value built where the row is made.

A table that knows its rows (the credentials ranking, a finding's evidence, a trace
chain) gives each row a :class:`Target` when it is built; the app opens the target and
never has to guess what a dict means. :func:`target_of` is the one place that maps the
rows of a generic analysis document (``--json`` sections) to a target, by section name
first and then by the id keys the engine's documents use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

#: What a row of a named section opens: (column, kind). Checked before :data:`ROW_TARGETS`.
SECTION_TARGETS = {
    "agents": ("agent", "agent"),
    "humans": ("human", "human"),
    "resources": ("resource", "resource"),
    "credentials": ("credential", "credential"),
    "top credentials": ("credential", "credential"),
    "derived_credentials": ("value", "credential"),
    "principals": ("value", "actor"),
}
#: How a row from an analysis document names what to open, strongest first.
ROW_TARGETS = (
    ("event_uid", "event"),
    ("event_id", "event"),
    ("credential_id", "credential"),
    ("credential", "credential"),
    ("agent_id", "agent"),
    ("agent", "agent"),
    ("human_id", "human"),
    ("resource_id", "resource"),
    ("resource", "resource"),
)
KINDS = (
    "event",
    "trace",
    "credential",
    "agent",
    "human",
    "actor",
    "resource",
    "timeline",
    "finding",
)


@dataclass(frozen=True)
class Target:
    """Open ``kind`` ``ident``; ``rank`` is a ranked credential row (its score shows at once)."""

    kind: str
    ident: str
    rank: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown target kind {self.kind!r}")


def target_of(section: str, row: dict[str, Any]) -> Target | None:
    """The target of a row of the analysis-document section ``section`` (``None``: opens nothing)."""
    if isinstance(row.get("credential"), str) and "score_terms" in row:
        return Target("credential", row["credential"], rank=row)  # a ranked row
    if section == "chain" and row.get("kind") and row.get("id"):
        kind = str(row["kind"]).lower()
        return Target(kind, str(row["id"])) if kind in KINDS else None
    named = SECTION_TARGETS.get(section)
    if named and isinstance(row.get(named[0]), str):
        return Target(named[1], row[named[0]])
    for key, kind in ROW_TARGETS:
        value = row.get(key)
        if isinstance(value, str) and value:
            return Target(kind, value)
    for key in ("evidence_uids", "evidence"):
        evidence = row.get(key)
        if isinstance(evidence, list) and evidence and isinstance(evidence[0], str):
            return Target("event", evidence[0])
    node = row.get("id") or row.get("node") or row.get("key")
    if isinstance(node, str) and re.match(r"^(credential|agent|human|resource|event):", node):
        kind, _, ident = node.partition(":")
        return Target(kind, ident)
    if section in ("credentials", "top credentials") and isinstance(node, str):
        return Target("credential", node)
    return None
