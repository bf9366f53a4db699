"""Credential lineage over ``MINTED`` links: descendants (blast radius) and ancestry (trace).

Both walks are recursive SQL over the ``links`` table, so they cost a few
milliseconds whatever the size of ``events``. ``UNION`` (not ``UNION ALL``) in the
recursive CTEs makes cycles harmless: a credential is visited once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keytrail.graph.model import allowed_confidences

if TYPE_CHECKING:
    from keytrail.store.case import CaseStore

#: Longest chain walked back by :func:`ancestry` (role chaining is capped far lower by AWS).
MAX_DEPTH = 50


def closure_sql(
    roots_sql: str = "SELECT credential_id AS root FROM credentials",
    *,
    confidence: bool = True,
    max_depth: int | None = None,
    edges: str | None = None,
    stop: str | None = None,
) -> str:
    """The one MINTED closure every query walks: a ``WITH RECURSIVE clo(root, credential_id)``
    CTE holding each root (``roots_sql`` selects a ``root`` column) and every credential reachable
    from it, the root included; the caller appends its own CTEs (``, x AS (...)``) or a SELECT.

    The callers differ on purpose, so the differences are parameters:

    - ``confidence`` (default): follow only MINTED links whose confidence is in ``$allowed``
      (the analysis' ``min_confidence``). The report passes False: it states its numbers for
      every MINTED link and shows each link's confidence next to it (equal to ``inferred``).
    - ``max_depth``: also carry ``depth`` (0 at the root) and stop at that depth. ``UNION`` makes
      a cycle terminate only while rows repeat exactly, and a depth column makes every lap new,
      so a depth needs a cap; the report orders derived credentials and key events by depth.
    - ``edges``: walk this relation of ``(src, dst)`` pairs instead of ``links`` MINTED src -> dst.
      The findings walk up (child -> parent) over MINTED pairs gathered from links, credentials
      and credential_issues, so their rules also work on a case whose graph is partial.
    - ``stop``: a condition on ``clo.credential_id``; a credential meeting it is kept but not
      walked past (the findings stop at long-term access keys, identities of their own).
    """
    depth = max_depth is not None
    if edges is None:
        join = "links l\n          ON l.kind = 'MINTED' AND l.src = clo.credential_id" + (
            " AND list_contains($allowed, l.confidence)" if confidence else ""
        )
    else:
        join = f"({edges}) l\n          ON l.src = clo.credential_id"
    where = [f"clo.depth < {int(max_depth)}"] if max_depth is not None else []
    where += [f"NOT ({stop})"] if stop else []
    step = "\n        WHERE " + " AND ".join(where) if where else ""
    return f"""
      WITH RECURSIVE clo(root, credential_id{", depth" if depth else ""}) AS (
        SELECT root, root{", 0" if depth else ""} FROM ({roots_sql})
        UNION
        SELECT clo.root, l.dst{", clo.depth + 1" if depth else ""} FROM clo JOIN {join}{step}
      )"""


def descendants(
    store: CaseStore, credential_id: str, *, min_confidence: str = "inferred"
) -> list[str]:
    """D(c) without c: every credential minted from ``credential_id``, transitively."""
    sql = (
        closure_sql("SELECT $root AS root")
        + " SELECT credential_id FROM clo WHERE credential_id <> $root ORDER BY 1"
    )
    cur = store.cursor()
    try:
        rows = cur.execute(
            sql, {"root": credential_id, "allowed": allowed_confidences(min_confidence)}
        ).fetchall()
    finally:
        cur.close()
    return [r[0] for r in rows]


@dataclass
class LineageNode:
    """One credential in a lineage tree with the MINTED link from its parent."""

    credential: str
    kind: str | None
    reason: str | None = None
    confidence: str | None = None
    evidence: list[str] = field(default_factory=list)
    children: list[LineageNode] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "credential": self.credential,
            "kind": self.kind,
            "reason": self.reason,
            "confidence": self.confidence,
            "evidence": self.evidence,
            "children": [c.as_dict() for c in self.children],
        }


def lineage_tree(
    store: CaseStore, credential_id: str, *, min_confidence: str = "inferred"
) -> LineageNode:
    """The tree of credentials minted from ``credential_id`` (each child once, under its first parent)."""
    allowed = allowed_confidences(min_confidence)
    sql = (
        closure_sql("SELECT $root AS root")
        + """
      SELECT l.src, l.dst, l.reason, l.confidence, l.evidence, c.kind
      FROM links l JOIN clo ON clo.credential_id = l.src
      LEFT JOIN credentials c ON c.credential_id = l.dst
      WHERE l.kind = 'MINTED' AND list_contains($allowed, l.confidence)
      ORDER BY l.first_seen NULLS LAST, l.dst"""
    )
    kinds = store.query("SELECT kind FROM credentials WHERE credential_id = ?", [credential_id])
    root = LineageNode(credential_id, kinds[0]["kind"] if kinds else None)
    cur = store.cursor()
    try:
        rows = cur.execute(sql, {"root": credential_id, "allowed": allowed}).fetchall()
    finally:
        cur.close()
    nodes = {credential_id: root}
    pending = list(rows)
    # Attach children breadth-first; a credential with two parents appears once.
    progress = True
    while pending and progress:
        progress = False
        rest = []
        for src, dst, reason, conf, ev, kind in pending:
            if dst in nodes:
                progress = True
                continue
            parent = nodes.get(src)
            if parent is None:
                rest.append((src, dst, reason, conf, ev, kind))
                continue
            node = LineageNode(dst, kind, reason, conf, list(ev or []))
            parent.children.append(node)
            nodes[dst] = node
            progress = True
        pending = rest
    return root


@dataclass(frozen=True)
class MintStep:
    """``parent`` minted ``child``: one step of an ancestry chain."""

    parent: str
    child: str
    reason: str
    confidence: str
    evidence: tuple[str, ...]


def ancestry(store: CaseStore, credential_id: str) -> tuple[list[MintStep], bool]:
    """Walk from ``credential_id`` up to its root along the preferred parent.

    Returns the steps root-first and whether a cycle or the depth cap stopped the walk.
    The preferred parent is ``credentials.parent_credential_id`` (see docs/graph.md).
    """
    sql = f"""
      WITH RECURSIVE up(cred, depth, path) AS (
        SELECT $c, 0, [$c]
        UNION ALL
        SELECT c.parent_credential_id, up.depth + 1, list_append(up.path, c.parent_credential_id)
        FROM up JOIN credentials c ON c.credential_id = up.cred
        WHERE c.parent_credential_id IS NOT NULL AND NOT list_contains(up.path, c.parent_credential_id)
          AND up.depth < {MAX_DEPTH}
      )
      SELECT up.depth, c.credential_id, c.parent_credential_id, l.reason, l.confidence, l.evidence,
             list_contains(up.path, c.parent_credential_id) AS cycle
      FROM up JOIN credentials c ON c.credential_id = up.cred
      LEFT JOIN (SELECT src, dst, min_by(reason, r) AS reason, min_by(confidence, r) AS confidence,
                        min_by(evidence, r) AS evidence
                 FROM (SELECT *, CASE confidence WHEN 'proven' THEN 0 WHEN 'strong' THEN 1 ELSE 2 END AS r
                       FROM links WHERE rowid IN (SELECT rowid FROM links WHERE kind = 'MINTED'
                                                  AND dst IN (SELECT cred FROM up)))
                 GROUP BY src, dst) l
        ON l.src = c.parent_credential_id AND l.dst = c.credential_id
      ORDER BY up.depth DESC"""
    cur = store.cursor()
    try:
        rows = cur.execute(sql, {"c": credential_id}).fetchall()
    finally:
        cur.close()
    steps = [
        MintStep(parent, child, reason or "recorded as parent", conf or "strong", tuple(ev or ()))
        for _depth, child, parent, reason, conf, ev, _cycle in rows
        if parent is not None and not _cycle
    ]
    stopped = any(r[6] for r in rows) or (bool(rows) and rows[0][0] >= MAX_DEPTH)
    return steps, stopped
