"""The identity graph's ontology: node kinds, edge kinds, confidences and the Edge type.

Every edge in keytrail carries a reason and the event uids that prove it; the
:class:`Edge` constructor refuses an edge without them, so no code path can add an
unexplained edge to the graph. The same names are the values of ``links.kind``,
``links.src_kind`` / ``links.dst_kind`` and ``links.confidence`` in the case.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from keytrail.timefmt import format_utc


@dataclass(frozen=True)
class NodeKind:
    name: str
    description: str


@dataclass(frozen=True)
class EdgeKind:
    name: str
    src: tuple[str, ...]
    dst: tuple[str, ...]
    description: str


HUMAN = NodeKind(
    "human", "A person: an end user an agent acts for, or whoever logged in to mint a credential."
)
AGENT = NodeKind("agent", "An AI agent or automation, from the inventory or agent logs.")
CREDENTIAL = NodeKind(
    "credential", "A secret as logged: AKIA/ASIA key id, Vault token accessor (or HMAC), lease id."
)
PRINCIPAL = NodeKind(
    "principal", "An identity a credential acts as: IAM user/role/session, Vault entity."
)
RESOURCE = NodeKind("resource", "Something acted on: ARN, Vault path, tool target.")
ACCOUNT = NodeKind("account", "An AWS account or Vault namespace.")

NODE_KINDS: dict[str, NodeKind] = {
    k.name: k for k in (HUMAN, AGENT, CREDENTIAL, PRINCIPAL, RESOURCE, ACCOUNT)
}

DELEGATED = EdgeKind(
    "DELEGATED",
    ("human",),
    ("agent", "credential"),
    "A human delegated to an agent (or, when no agent is known, to a credential) to act on their behalf.",
)
USES = EdgeKind("USES", ("agent",), ("credential",), "An agent holds and uses a credential.")
MINTED = EdgeKind(
    "MINTED",
    ("credential",),
    ("credential",),
    "A credential was used to create another (AssumeRole, CreateAccessKey, Vault token/lease issuance).",
)
AUTHENTICATES_AS = EdgeKind(
    "AUTHENTICATES_AS",
    ("credential",),
    ("principal",),
    "A credential authenticates as an identity.",
)
ACTED_ON = EdgeKind(
    "ACTED_ON",
    ("credential",),
    ("resource",),
    "A credential acted on a resource (aggregated events).",
)

SAME_AGENT = EdgeKind(
    "SAME_AGENT",
    ("agent",),
    ("agent",),
    "Two names of one agent: a logged name and the id it is merged onto (graph/agent_identity.py).",
)

EDGE_KINDS: dict[str, EdgeKind] = {
    k.name: k for k in (DELEGATED, USES, MINTED, AUTHENTICATES_AS, ACTED_ON, SAME_AGENT)
}

#: Confidence levels, strongest first. ``proven``: the same identifier is logged on both
#: sides; ``strong``: a documented issuance or naming rule; ``inferred``: time and target.
CONFIDENCES: tuple[str, ...] = ("proven", "strong", "inferred")
CONFIDENCE_RANK: dict[str, int] = {c: i for i, c in enumerate(CONFIDENCES)}


def check_confidence(value: str) -> str:
    """Validate a ``min_confidence`` argument; returns it lower-cased."""
    v = (value or "").lower()
    if v not in CONFIDENCE_RANK:
        from keytrail.errors import UsageError

        raise UsageError(f"unknown confidence {value!r}: use one of {', '.join(CONFIDENCES)}")
    return v


def allowed_confidences(min_confidence: str) -> list[str]:
    """The confidences at least as strong as ``min_confidence`` (for SQL ``IN`` lists)."""
    rank = CONFIDENCE_RANK[check_confidence(min_confidence)]
    return [c for c in CONFIDENCES if CONFIDENCE_RANK[c] <= rank]


def node_id(kind: str, ident: str) -> str:
    """Graph node id: ``kind:id`` (ids stay exactly as logged after the first colon)."""
    return f"{kind}:{ident}"


@dataclass(frozen=True)
class Edge:
    """One explained edge. Construction fails without a reason or without evidence."""

    kind: str
    src_kind: str
    src: str
    dst_kind: str
    dst: str
    reason: str
    confidence: str
    evidence: tuple[str, ...]
    evidence_count: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    attributes: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        ek = EDGE_KINDS.get(self.kind)
        if ek is None:
            raise ValueError(f"unknown edge kind {self.kind!r}")
        if self.src_kind not in ek.src or self.dst_kind not in ek.dst:
            raise ValueError(f"{self.kind} cannot join {self.src_kind} -> {self.dst_kind}")
        if not self.reason or not self.reason.strip():
            raise ValueError(f"{self.kind} edge {self.src} -> {self.dst} has no reason")
        if not self.evidence:
            raise ValueError(f"{self.kind} edge {self.src} -> {self.dst} has no evidence")
        if self.confidence not in CONFIDENCE_RANK:
            raise ValueError(f"bad confidence {self.confidence!r}")
        if self.evidence_count < len(self.evidence):
            object.__setattr__(self, "evidence_count", len(self.evidence))

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "src_kind": self.src_kind,
            "src": self.src,
            "dst_kind": self.dst_kind,
            "dst": self.dst,
            "reason": self.reason,
            "confidence": self.confidence,
            "evidence": list(self.evidence),
            "evidence_count": self.evidence_count,
            "first_seen": format_utc(self.first_seen),
            "last_seen": format_utc(self.last_seen),
            "attributes": self.attributes,
        }
