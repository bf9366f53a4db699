"""Blast radius: what a credential and every credential minted from it did.

D(c) is c plus its ``MINTED`` descendants at or above ``min_confidence``. All
aggregation runs in DuckDB over ``events`` joined to the transitive closure, so
:func:`rank_credentials` scores every credential of a case in a handful of
set-based queries (one scan of ``events``), and :func:`blast_radius` runs the
same query for one root plus the detail lists. The score is
:mod:`keytrail.analysis.scoring`; both functions use it, so they always agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from keytrail.analysis import classify
from keytrail.analysis.lineage import LineageNode, closure_sql
from keytrail.analysis.scoring import ScoreTerm, score_terms, total
from keytrail.graph.model import allowed_confidences
from keytrail.timefmt import format_utc

if TYPE_CHECKING:
    from keytrail.analysis.findings import Finding
    from keytrail.store.case import CaseStore

_TIME = "($since::TIMESTAMP IS NULL OR e.time >= $since::TIMESTAMP) AND ($until::TIMESTAMP IS NULL OR e.time <= $until::TIMESTAMP)"
LONG_LIVED_KINDS = ("aws-access-key", "vault-token")


@dataclass
class CredentialRank:
    """One row of ``keytrail credentials``."""

    credential: str
    kind: str | None
    score: float
    agents: list[str]
    humans: list[str]
    events: int
    first_seen: datetime | None
    last_seen: datetime | None
    origin: str | None = None
    principal: str | None = None
    own_events: int = 0
    derived_credentials: list[str] = field(default_factory=list)
    score_terms: list[ScoreTerm] = field(default_factory=list)
    holder: str | None = None
    """The principal classifier's class of whoever holds it (person, workload, agent, ...)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "credential": self.credential,
            "kind": self.kind,
            "holder": self.holder,
            "score": self.score,
            "agents": self.agents,
            "humans": self.humans,
            "events": self.events,
            "first_seen": format_utc(self.first_seen),
            "last_seen": format_utc(self.last_seen),
            "origin": self.origin,
            "principal": self.principal,
            "own_events": self.own_events,
            "derived_credentials": self.derived_credentials,
            "derived_count": len(self.derived_credentials),
            "score_terms": [t.as_dict() for t in self.score_terms],
        }


def _rank_sql(roots_sql: str, *, filtered: bool = True) -> str:
    """The ranking query. Events are first grouped by (credential, action, outcome, ...) so the
    action classifiers run once per distinct action, not once per event. Without a time filter
    (``filtered=False``) the distinct resources and identities come from the ``ACTED_ON`` and
    ``AUTHENTICATES_AS`` links, which already aggregate the events."""
    in_clo = "e.credential_id IN (SELECT credential_id FROM clo)"
    if filtered:
        dims = f"""
        SELECT DISTINCT e.credential_id, 'r' AS dim, r.resource_id AS v
        FROM events e JOIN event_resources r ON r.event_uid = e.event_uid
        WHERE e.credential_id IS NOT NULL AND {_TIME} AND {in_clo}
        UNION
        SELECT DISTINCT e.credential_id, 'p', e.actor_uid FROM events e
        WHERE e.credential_id IS NOT NULL AND e.actor_uid IS NOT NULL AND e.source IN ('cloudtrail', 'vault')
          AND {_TIME} AND {in_clo}"""
    else:
        dims = """
        SELECT src AS credential_id, CASE kind WHEN 'ACTED_ON' THEN 'r' ELSE 'p' END AS dim, dst AS v FROM links
        WHERE kind = 'ACTED_ON' OR (kind = 'AUTHENTICATES_AS' AND NOT starts_with(reason, 'issued for'))"""
    return closure_sql(roots_sql) + f""",
      ev0 AS (
        SELECT e.credential_id, e.source, e.service, e.operation, e.action, e.outcome, e.account,
               CASE WHEN e.source = 'vault' THEN e.target END AS target,
               CASE WHEN starts_with(e.action, 'ssm:GetParameter') THEN e.details END AS details,
               count(*) AS n, min(e.time) AS t0, max(e.time) AS t1
        FROM events e WHERE e.credential_id IS NOT NULL AND {_TIME} AND {in_clo}
        GROUP BY ALL
      ), ev AS (
        SELECT e.credential_id, sum(n) AS n, min(t0) AS t0, max(t1) AS t1,
               {classify.counter_columns().replace("count(*) FILTER", "sum(n) FILTER")}
        FROM ev0 e GROUP BY e.credential_id
      ), dims AS ({dims}
        UNION
        SELECT DISTINCT credential_id, 'a', account FROM ev0 WHERE account IS NOT NULL
      ), agg AS (
        SELECT clo.root, sum(ev.n) AS events, min(ev.t0) AS t0, max(ev.t1) AS t1,
               sum(ev.writes) AS writes, sum(ev.deletes) AS deletes,
               sum(ev.permission_changes) AS permission_changes, sum(ev.secrets_read) AS secrets_read,
               sum(ev.denied) AS denied
        FROM clo JOIN ev ON ev.credential_id = clo.credential_id GROUP BY clo.root
      ), dcount AS (
        SELECT clo.root, dims.dim, count(DISTINCT dims.v) AS n
        FROM clo JOIN dims ON dims.credential_id = clo.credential_id GROUP BY clo.root, dims.dim
      ), dagg AS (
        SELECT root, sum(n) FILTER (WHERE dim = 'r') AS resources, sum(n) FILTER (WHERE dim = 'a') AS accounts,
               sum(n) FILTER (WHERE dim = 'p') AS principals
        FROM dcount GROUP BY root
      ), minted AS (
        SELECT root, count(*) - 1 AS n,
               coalesce(list(credential_id ORDER BY credential_id) FILTER (WHERE credential_id <> root), [])
                 AS derived
        FROM clo GROUP BY root
      ), ag AS (
        SELECT clo.root, list(DISTINCT l.src ORDER BY l.src) AS agents
        FROM clo JOIN links l ON l.kind = 'USES' AND l.dst = clo.credential_id AND list_contains($allowed, l.confidence)
        GROUP BY clo.root
      ), hu AS (
        SELECT root, list(DISTINCT human ORDER BY human) AS humans FROM (
          SELECT clo.root, l.src AS human FROM clo JOIN links l
            ON l.kind = 'DELEGATED' AND l.dst_kind = 'credential' AND l.dst = clo.credential_id
            AND list_contains($allowed, l.confidence)
          UNION ALL
          SELECT clo.credential_id, l.src FROM clo JOIN links l
            ON l.kind = 'DELEGATED' AND l.dst_kind = 'credential' AND l.dst = clo.root
            AND list_contains($allowed, l.confidence)
          UNION ALL
          SELECT clo.root, d.src FROM clo JOIN links u
            ON u.kind = 'USES' AND u.dst = clo.credential_id AND list_contains($allowed, u.confidence)
            JOIN links d ON d.kind = 'DELEGATED' AND d.dst_kind = 'agent' AND d.dst = u.src
            AND list_contains($allowed, d.confidence)
        ) GROUP BY root
      )
      SELECT c.credential_id, c.kind, c.origin, c.principal_uid, c.expires_at, c.events AS own_events,
             coalesce(agg.events, 0) AS events, agg.t0, agg.t1,
             coalesce(agg.writes, 0) AS writes, coalesce(agg.deletes, 0) AS deletes,
             coalesce(agg.permission_changes, 0) AS permission_changes,
             coalesce(agg.secrets_read, 0) AS secrets_read, coalesce(agg.denied, 0) AS denied,
             coalesce(dagg.resources, 0) AS resources, coalesce(dagg.accounts, 0) AS accounts,
             coalesce(dagg.principals, 0) AS principals, coalesce(minted.n, 0) AS credentials_minted,
             minted.derived,
             coalesce(ag.agents, []) AS agents, coalesce(hu.humans, []) AS humans
      FROM credentials c JOIN minted ON minted.root = c.credential_id
      LEFT JOIN agg ON agg.root = c.credential_id
      LEFT JOIN dagg ON dagg.root = c.credential_id
      LEFT JOIN ag ON ag.root = c.credential_id
      LEFT JOIN hu ON hu.root = c.credential_id"""


def query(store: CaseStore, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """``store.query`` with only the named parameters the SQL uses (DuckDB rejects extras)."""
    return store.query(sql, {k: v for k, v in params.items() if f"${k}" in sql})  # type: ignore[arg-type]


def _params(since: datetime | None, until: datetime | None, min_confidence: str, **extra: Any) -> dict[str, Any]:
    return {"since": since, "until": until, "allowed": allowed_confidences(min_confidence), **extra}


def _to_rank(row: dict[str, Any]) -> CredentialRank:
    values = {k: row[k] for k in ("permission_changes", "secrets_read", "writes", "deletes", "resources",
                                  "credentials_minted", "accounts", "principals", "denied", "events")}
    values["findings"] = row.get("findings") or 0
    values["long_lived"] = int(row["kind"] in LONG_LIVED_KINDS and row["expires_at"] is None)
    values["origin_unknown"] = int(row["origin"] == "unknown" and row["kind"] == "aws-temporary-key")
    terms = score_terms(values)
    return CredentialRank(
        credential=row["credential_id"], kind=row["kind"], score=total(terms), agents=list(row["agents"]),
        humans=list(row["humans"]), events=int(row["events"]), first_seen=row["t0"], last_seen=row["t1"],
        origin=row["origin"], principal=row["principal_uid"], own_events=int(row["own_events"] or 0),
        derived_credentials=list(row["derived"]), score_terms=terms, holder=row.get("holder"),
    )


def live_rank_rows(store: CaseStore, *, since: datetime | None = None, until: datetime | None = None,
                   min_confidence: str = "inferred",
                   found: list[Finding] | None = None) -> list[dict[str, Any]]:
    """The ranking query's rows for every credential, unsorted and unscored (what the analysis
    snapshot stores, and what :func:`rank_credentials` scores when it computes), with the
    ``findings`` term's value (from ``found``, else the default findings)."""
    from keytrail.analysis.finding_score import finding_values

    sql = _rank_sql("SELECT credential_id AS root FROM credentials", filtered=since is not None or until is not None)
    rows = query(store, sql, _params(since, until, min_confidence))
    from keytrail.graph.principal_class import holders

    values = finding_values(store, found)
    held = holders(store.con)
    for r in rows:
        r["findings"] = values.get(r["credential_id"], 0.0)
        r["holder"] = held.get(r["credential_id"])
    return rows


def rank_credentials(store: CaseStore, *, since: datetime | None = None, until: datetime | None = None,
                     min_confidence: str = "inferred", limit: int | None = None,
                     use_snapshot: bool = True) -> list[CredentialRank]:
    """Every credential with its blast-radius score, highest first (ties: more events, then id).

    The default question (no window, ``inferred``) is answered from the case's analysis
    snapshot when it is current (:mod:`keytrail.analysis.snapshot`), else computed
    (``use_snapshot=False`` always computes)."""
    if use_snapshot and since is None and until is None and min_confidence == "inferred":
        from keytrail.analysis import snapshot

        cached = snapshot.rank_rows(store, limit)
        if cached is not None:
            return [_to_rank(r) for r in cached]
    ranks = [_to_rank(r) for r in live_rank_rows(store, since=since, until=until, min_confidence=min_confidence)]
    if since is not None or until is not None:
        # A credential with no event (its own or its minted ones') in the window did nothing in it:
        # listing it with window-independent terms (minted, long-lived) would rank the idle.
        ranks = [r for r in ranks if r.events]
    ranks.sort(key=lambda r: (-r.score, -r.events, r.credential))
    return ranks[:limit] if limit is not None else ranks


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
            return {**r, "first_seen": format_utc(r["first_seen"]), "last_seen": format_utc(r["last_seen"])}

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


def blast_radius(store: CaseStore, credential_id: str, *, since: datetime | None = None,
                 until: datetime | None = None, min_confidence: str = "inferred") -> BlastRadius:
    """The observed blast radius of one credential (see docs/blast-radius.md).

    Raises:
        NotFoundError: the credential is not in the case (with the closest ids).
    """
    from keytrail.analysis.blast_detail import blast_radius as detail

    return detail(store, credential_id, since=since, until=until, min_confidence=min_confidence)
