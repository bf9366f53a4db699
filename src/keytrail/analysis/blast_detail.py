"""The blast radius of one credential: its score row plus the detail lists (resources, secrets,
sensitive actions, agents, humans).

The score and the ranking query are :mod:`keytrail.analysis.ranking`'s; whether the score row
comes from the case's snapshot is decided by :mod:`keytrail.analysis.answers`, which hands it
in. Every query restricts ``events`` to D(c) with a semi-join on the closure, so the cost is one
filtered scan per list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from keytrail.analysis import classify
from keytrail.analysis.finding_score import finding_values
from keytrail.analysis.lineage import LineageNode, closure_sql, lineage_tree
from keytrail.analysis.lookup import resolve_credential
from keytrail.analysis.ranking import TIME as _TIME
from keytrail.analysis.ranking import params as _params
from keytrail.analysis.ranking import query, rank_sql, to_rank
from keytrail.analysis.scoring import ScoreTerm
from keytrail.graph.principal_class import decision, holders
from keytrail.timefmt import format_utc

if TYPE_CHECKING:
    from keytrail.analysis.findings import Finding
    from keytrail.store.case import CaseStore

#: Longest lists returned (the counts are always complete).
MAX_ITEMS = 1000

_D = closure_sql("SELECT $root AS root")
_IN_D = "e.credential_id IN (SELECT credential_id FROM clo)"


@dataclass
class BlastRadius:
    """The answer of ``keytrail blast``; :meth:`as_dict` is its JSON document."""

    credential: str
    kind: str | None
    score: float
    score_terms: list[ScoreTerm]
    derived_credentials: list[str]
    resources: list[dict[str, Any]]
    principals: list[str]
    accounts: list[str]
    agents: list[dict[str, Any]]
    humans: list[dict[str, Any]]
    origin: str | None = None
    principal: str | None = None
    services: list[str] = field(default_factory=list)
    secrets_read: list[dict[str, Any]] = field(default_factory=list)
    sensitive_actions: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    lineage: LineageNode | None = None
    filters: dict[str, Any] = field(default_factory=dict)
    holder: dict[str, Any] | None = None
    """The principal classifier's decision on who holds it (class, detail, person, reason, ...)."""

    def as_dict(self) -> dict[str, Any]:
        def res(r: dict[str, Any]) -> dict[str, Any]:
            return {
                **r,
                "first_seen": format_utc(r["first_seen"]),
                "last_seen": format_utc(r["last_seen"]),
            }

        return {
            "credential": self.credential,
            "kind": self.kind,
            "origin": self.origin,
            "holder": self.holder,
            "principal": self.principal,
            "score": self.score,
            "score_terms": [t.as_dict() for t in self.score_terms],
            "derived_credentials": self.derived_credentials,
            "resources": [res(r) for r in self.resources],
            "principals": self.principals,
            "accounts": self.accounts,
            "services": self.services,
            "agents": self.agents,
            "humans": self.humans,
            "secrets_read": [res(r) for r in self.secrets_read],
            "sensitive_actions": [res(r) for r in self.sensitive_actions],
            "counts": self.counts,
            "first_seen": format_utc(self.first_seen),
            "last_seen": format_utc(self.last_seen),
            "lineage": self.lineage.as_dict() if self.lineage else None,
            "filters": self.filters,
        }


def _resources(store: CaseStore, p: dict[str, Any]) -> list[dict[str, Any]]:
    # The per-resource lists are built for the top MAX_ITEMS resources only, with plain
    # GROUP BYs: a correlated subquery per resource took seconds for a root with 11k
    # descendants.
    rows = query(
        store,
        _D
        + f""",
      x AS (SELECT r.resource_id, r.resource_type, e.action, e.outcome, e.time, e.credential_id
            FROM events e JOIN event_resources r ON r.event_uid = e.event_uid WHERE {_IN_D} AND {_TIME}),
      top AS (SELECT resource_id, min(resource_type) AS type, count(*) AS events, min(time) AS first_seen,
                     max(time) AS last_seen, count(*) FILTER (WHERE outcome = 'denied') AS denied
              FROM x GROUP BY resource_id ORDER BY events DESC, resource_id LIMIT {MAX_ITEMS}),
      acts AS (SELECT resource_id, action, count(*) AS n FROM x
               WHERE resource_id IN (SELECT resource_id FROM top) GROUP BY ALL),
      alist AS (SELECT resource_id, list({{'action': action, 'count': n}} ORDER BY n DESC, action) AS actions
                FROM acts GROUP BY resource_id),
      clist AS (SELECT resource_id, list(credential_id ORDER BY credential_id) AS credentials
                FROM (SELECT DISTINCT resource_id, credential_id FROM x
                      WHERE resource_id IN (SELECT resource_id FROM top)) GROUP BY resource_id)
      SELECT top.resource_id AS resource, top.type, alist.actions, top.events, top.first_seen, top.last_seen,
             top.denied, clist.credentials
      FROM top JOIN alist USING (resource_id) JOIN clist USING (resource_id) ORDER BY events DESC, resource""",
        p,
    )
    for r in rows:
        r["actions"] = [
            {"action": a["action"], "count": int(a["count"])} for a in r["actions"] or []
        ]
        r["events"] = int(r["events"])
        r["denied"] = int(r["denied"])
    return rows


def _classified(store: CaseStore, p: dict[str, Any], predicate: str) -> list[dict[str, Any]]:
    rows = query(
        store,
        _D
        + f"""
      SELECT CASE WHEN {classify.DENIED} THEN 'denied' WHEN {classify.PERMISSION} THEN 'permission'
                  WHEN {classify.DELETE} THEN 'delete' WHEN {classify.WRITE} THEN 'write' ELSE 'read' END AS category,
             e.action, coalesce(r.resource_id, e.target) AS resource, e.credential_id AS credential,
             count(*) AS events,
             min(e.time) AS first_seen, max(e.time) AS last_seen,
             list(e.event_uid ORDER BY e.time, e.event_uid)[1:10] AS evidence
      FROM events e LEFT JOIN event_resources r ON r.event_uid = e.event_uid
      WHERE {_IN_D} AND {_TIME} AND {predicate}
      GROUP BY ALL
      -- every grouped column breaks ties: the same case gives the same list on every run
      ORDER BY first_seen, action, resource NULLS FIRST, credential NULLS FIRST, category
      LIMIT {MAX_ITEMS}""",
        p,
    )
    for r in rows:
        r["events"] = int(r["events"])
    return rows


def _values(store: CaseStore, p: dict[str, Any], column: str, extra: str = "") -> list[str]:
    rows = query(
        store,
        _D
        + f"""
      SELECT DISTINCT {column} AS v FROM events e WHERE {_IN_D} AND {_TIME} AND {column} IS NOT NULL {extra}
      ORDER BY 1""",
        p,
    )
    return [r["v"] for r in rows]


def _edges(store: CaseStore, p: dict[str, Any], sql: str) -> list[dict[str, Any]]:
    rows = query(store, _D + sql, p)
    return [{**r, "evidence": list(r["evidence"] or [])} for r in rows]


def blast_radius(
    store: CaseStore,
    credential_id: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    min_confidence: str = "inferred",
    stored_row: Callable[[CaseStore, str], dict[str, Any] | None] | None = None,
    findings: Callable[[], list[Finding]] | None = None,
) -> BlastRadius:
    """The observed blast radius of one credential (see docs/blast-radius.md).

    ``stored_row(store, credential_id)`` returns the credential's stored ranking row or None
    (the snapshot, when :mod:`keytrail.analysis.answers` decides it answers this question);
    without it, or when it returns None, the row is computed, its ``findings`` term from
    ``findings()`` (the default findings; computed now when omitted).

    Raises:
        NotFoundError: the credential is not in the case (with the closest ids).
    """
    cred = resolve_credential(store, credential_id)
    cid = cred["credential_id"]
    p = _params(since, until, min_confidence, root=cid)
    row = stored_row(store, cid) if stored_row is not None else None
    if row is None:
        row = query(store, rank_sql("SELECT $root AS root"), p)[0]
        row["findings"] = finding_values(store, findings() if findings else None).get(cid, 0.0)
        row["holder"] = holders(store.con, [cid]).get(cid)
    rank = to_rank(row)
    derived = [
        r["credential_id"]
        for r in query(
            store, _D + " SELECT credential_id FROM clo WHERE credential_id <> $root ORDER BY 1", p
        )
    ]
    principals = sorted(
        set(_values(store, p, "e.actor_uid", "AND e.source IN ('cloudtrail', 'vault')"))
        | {
            r["principal_uid"]
            for r in query(
                store,
                _D + " SELECT c.principal_uid FROM credentials c JOIN clo USING (credential_id) "
                "WHERE c.principal_uid IS NOT NULL",
                p,
            )
        }
    )
    agents = _edges(
        store,
        p,
        """
      SELECT l.src AS agent, l.dst AS credential, l.reason, l.confidence, l.evidence
      FROM links l JOIN clo ON l.kind = 'USES' AND l.dst = clo.credential_id
      WHERE list_contains($allowed, l.confidence) ORDER BY agent, credential, confidence""",
    )
    humans = _edges(
        store,
        p,
        """
      SELECT d.src AS human, d.dst_kind AS via_kind, d.dst AS via, d.reason, d.confidence, d.evidence
      FROM links d WHERE d.kind = 'DELEGATED' AND list_contains($allowed, d.confidence) AND (
        (d.dst_kind = 'credential' AND d.dst IN (SELECT credential_id FROM clo))
        OR (d.dst_kind = 'agent' AND d.dst IN (
              SELECT l.src FROM links l JOIN clo ON l.kind = 'USES' AND l.dst = clo.credential_id
              WHERE list_contains($allowed, l.confidence))))
      ORDER BY human, via""",
    )
    counts = {t.name: int(t.value) for t in rank.score_terms}
    return BlastRadius(
        credential=cid,
        kind=cred["kind"],
        score=rank.score,
        score_terms=rank.score_terms,
        derived_credentials=derived,
        resources=_resources(store, p),
        principals=principals,
        accounts=_values(store, p, "e.account"),
        agents=agents,
        humans=humans,
        origin=cred["origin"],
        principal=cred["principal_uid"],
        services=_values(store, p, "e.service"),
        secrets_read=_classified(store, p, f"{classify.SECRET_READ} AND {classify.SUCCESS}"),
        sensitive_actions=_classified(
            store, p, f"({classify.WRITE} OR {classify.PERMISSION} OR {classify.DENIED})"
        ),
        counts=counts,
        first_seen=rank.first_seen,
        last_seen=rank.last_seen,
        lineage=lineage_tree(store, cid, min_confidence=min_confidence),
        filters={"since": since, "until": until, "min_confidence": min_confidence},
        holder=decision(store.con, cid),
    )
