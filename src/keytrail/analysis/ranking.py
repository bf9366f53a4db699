"""Credential ranking: every credential's blast-radius score in one set-based query.

D(c) is c plus its ``MINTED`` descendants at or above ``min_confidence``. All
aggregation runs in DuckDB over ``events`` joined to the transitive closure, so
:func:`live_ranking` scores every credential of a case in a handful of
set-based queries (one scan of ``events``), and
:func:`keytrail.analysis.blast_detail.blast_radius` runs the same query
(:func:`rank_sql`) for one root plus the detail lists. The score is
:mod:`keytrail.analysis.scoring`; both use it, so they always agree. Whether a
question is answered from the case's snapshot or computed here is decided one layer
up, in :mod:`keytrail.analysis.answers`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from keytrail.analysis import classify
from keytrail.analysis.finding_score import Graph, finding_values
from keytrail.analysis.finding_score import graph as finding_graph
from keytrail.analysis.lineage import closure_sql
from keytrail.analysis.rank_score import term_values
from keytrail.analysis.scoring import ScoreTerm, score_terms, total
from keytrail.graph.model import allowed_confidences
from keytrail.graph.principal_class import holders
from keytrail.timefmt import format_utc

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from keytrail.analysis.findings import Finding
    from keytrail.store.case import CaseStore

#: The time window over ``events e``: ``$since`` / ``$until`` (TIMESTAMP or NULL for open).
TIME = "($since::TIMESTAMP IS NULL OR e.time >= $since::TIMESTAMP) AND ($until::TIMESTAMP IS NULL OR e.time <= $until::TIMESTAMP)"


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


#: Distinct values (resources, accounts, identities) per root and dimension, over its closure.
_dcount_one = """dcount AS (
        SELECT clo.root, dims.dim, count(DISTINCT dims.v) AS n
        FROM clo JOIN dims ON dims.credential_id = clo.credential_id GROUP BY clo.root, dims.dim"""
#: The same numbers for every root at once. Joining every root's closure to its members' values
#: and de-duplicating (3.9M rows of long text keys at 1M events) cost most of the ranking; but a
#: value that only one credential has (most resources: an object key, a session's own ARN) is
#: counted once by each root whose closure holds that credential, with no de-duplication: only
#: the values several credentials share go through the distinct count. ``clo`` is a set (UNION)
#: and a ``dv`` group of one row one value, so the sum is the distinct count (NULL, which
#: count(DISTINCT) skips, is left out).
#: Which values are shared is one grouping (``dv``: how many rows of ``dims`` have it, and the
#: least credential), not a window over every row partitioned by value: the window sorted 800k
#: rows of text at 1M events (1.7 -> 1.35 CPU-s for the whole query, the same rows). It groups by
#: the value's hash (:data:`SHARED_KEY`), not the text: at 1M events 887k rows make 715k groups,
#: nearly all of one row, and a hash table of 715k long texts (copied, compared) cost a quarter
#: of the query (0.41 of 1.3-1.6 CPU-s). A hash that one row alone has is a value in one row
#: (equal values hash alike), so the first way is exact; the rows of any other hash, values shared
#: or merely colliding, go through the distinct count, which is exact for any value.
#: ``dims`` is not made distinct (a UNION's grouping of 800k rows of three texts, a fifth of the
#: query at 1M events): a value in one row is one credential's, and a value in several rows goes
#: through the distinct count even when they are one credential's repeated (the graph derive
#: makes one edge per pair, so that does not happen in a case it made): each value is counted
#: on exactly one of the two ways, once per root whose closure holds a credential that has it.
SHARED_KEY = "hash({v})"


def _dcount_every(key: str = SHARED_KEY) -> str:
    """The every-root ``dv`` and ``dcount`` CTEs, values grouped by ``key`` (a SQL template of
    ``{v}``: equal values must give equal keys; unequal ones may too)."""
    return f"""dv AS (
        SELECT dim, {key.format(v="v")} AS h, count(*) AS k, min(credential_id) AS c FROM dims
        WHERE v IS NOT NULL GROUP BY dim, h
      ), dcount AS (
        SELECT root, dim, sum(n)::BIGINT AS n FROM (
          SELECT clo.root, u.dim, u.n FROM clo JOIN (
            SELECT c AS credential_id, dim, count(*) AS n FROM dv WHERE k = 1
            GROUP BY c, dim) u ON u.credential_id = clo.credential_id
          UNION ALL
          SELECT clo.root, s.dim, count(DISTINCT s.v) FROM clo JOIN (
            SELECT d.credential_id, d.dim, d.v FROM dims d
            SEMI JOIN (SELECT dim, h FROM dv WHERE k > 1) x
              ON x.dim = d.dim AND x.h = {key.format(v="d.v")}
            WHERE d.v IS NOT NULL) s
            ON s.credential_id = clo.credential_id GROUP BY clo.root, s.dim)
        GROUP BY root, dim"""


def _ev_rows(in_clo: str) -> str:
    """The events the ranking groups, with ``details`` only where the secret-read test reads it
    (``ssm:GetParameter*``, whose ``withDecryption`` it holds): two scans with the action test
    in the scan, so the JSON of every other event is never read (a tenth of the query at 1M
    events, the same groups)."""
    cols = "e.credential_id, e.source, e.service, e.operation, e.action, e.outcome, e.account, "
    where = f"e.credential_id IS NOT NULL AND {TIME} AND {in_clo}"
    ssm = "starts_with(e.action, 'ssm:GetParameter')"
    return (
        f"SELECT {cols}e.target, NULL AS details, e.time FROM events e "
        f"WHERE {where} AND NOT coalesce({ssm}, FALSE) "
        f"UNION ALL SELECT {cols}e.target, e.details, e.time FROM events e WHERE {where} AND {ssm}"
    )


#: The columns of a grouped event row (``ev0``) that the action classifiers read.
_KEY = "source, service, operation, action, outcome, target, details"


def _flags() -> str:
    """Every counter's predicate (:data:`keytrail.analysis.classify.COUNTERS`) as a column, over
    the distinct classifier inputs ``e``: at 1M events the 136k grouped rows hold 116 of them,
    and the predicates' regular expressions ran on every grouped row."""
    return ", ".join(f"({pred}) AS {name}" for name, pred in classify.COUNTERS)


def _counts() -> str:
    """Every counter as the sum of the grouped rows' counts where ``cls`` (``c``) flags it."""
    return ", ".join(f"sum(e.n) FILTER (WHERE c.{n}) AS {n}" for n, _ in classify.COUNTERS)


def _same_key() -> str:
    """``cls`` row ``c`` is grouped row ``e``'s classifier inputs (NULL equal to NULL)."""
    return " AND ".join(f"c.{k} IS NOT DISTINCT FROM e.{k}" for k in _KEY.split(", "))


def rank_sql(
    roots_sql: str, *, filtered: bool = True, every_root: bool = False, shared_key: str = SHARED_KEY
) -> str:
    """The ranking query. Events are first grouped by (credential, action, outcome, ...), and the
    action classifiers run once per distinct (action, outcome, ...) of those rows (``cls``), not
    once per event or per credential. Without a time filter
    (``filtered=False``) the distinct resources and identities come from the ``ACTED_ON`` and
    ``AUTHENTICATES_AS`` links, which already aggregate the events.

    ``every_root``: the roots are every credential, so nearly every event's credential is in the
    closure; the closure test then runs on the grouped rows (a seventh of the events at 1M)
    instead of on every event (the same rows: it tests a grouping column). One root keeps the
    test before grouping, where it drops all but that root's events. ``shared_key``: what
    ``every_root`` groups the values by to find the shared ones (:func:`_dcount_every`)."""
    in_clo = "e.credential_id IN (SELECT credential_id FROM clo)"
    ev_in_clo, grp_in_clo = ("TRUE", in_clo) if every_root else (in_clo, "TRUE")
    if filtered:
        dims = f"""
        SELECT DISTINCT e.credential_id, 'r' AS dim, r.resource_id AS v
        FROM events e JOIN event_resources r ON r.event_uid = e.event_uid
        WHERE e.credential_id IS NOT NULL AND {TIME} AND {in_clo}
        UNION
        SELECT DISTINCT e.credential_id, 'p', e.actor_uid FROM events e
        WHERE e.credential_id IS NOT NULL AND e.actor_uid IS NOT NULL AND e.source IN ('cloudtrail', 'vault')
          AND {TIME} AND {in_clo}"""
    else:
        dims = """
        SELECT src AS credential_id, CASE kind WHEN 'ACTED_ON' THEN 'r' ELSE 'p' END AS dim, dst AS v FROM links
        WHERE kind = 'ACTED_ON' OR (kind = 'AUTHENTICATES_AS' AND NOT starts_with(reason, 'issued for'))"""
    return (
        closure_sql(roots_sql)
        + f""",
      ev0g AS (
        SELECT e.credential_id, e.source, e.service, e.operation, e.action, e.outcome, e.account,
               CASE WHEN e.source = 'vault' THEN e.target END AS target, e.details,
               count(*) AS n, min(e.time) AS t0, max(e.time) AS t1
        FROM ({_ev_rows(ev_in_clo)}) e
        GROUP BY ALL
      ), ev0 AS (
        SELECT * FROM ev0g e WHERE {grp_in_clo}
      ), cls AS (
        SELECT e.*, {_flags()} FROM (SELECT DISTINCT {_KEY} FROM ev0) e
      ), ev AS (
        SELECT e.credential_id, sum(e.n) AS n, min(e.t0) AS t0, max(e.t1) AS t1,
               {_counts()}
        FROM ev0 e JOIN cls c ON {_same_key()}
        GROUP BY e.credential_id
      ), dims AS ({dims}
        UNION ALL
        SELECT DISTINCT credential_id, 'a', account FROM ev0 WHERE account IS NOT NULL
      ), agg AS (
        SELECT clo.root, sum(ev.n) AS events, min(ev.t0) AS t0, max(ev.t1) AS t1,
               sum(ev.writes) AS writes, sum(ev.deletes) AS deletes,
               sum(ev.permission_changes) AS permission_changes, sum(ev.secrets_read) AS secrets_read,
               sum(ev.denied) AS denied
        FROM clo JOIN ev ON ev.credential_id = clo.credential_id GROUP BY clo.root
      ), {_dcount_every(shared_key) if every_root else _dcount_one}
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
    )


def query(store: CaseStore, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """``store.query`` with only the named parameters the SQL uses (DuckDB rejects extras)."""
    return store.query(sql, {k: v for k, v in params.items() if f"${k}" in sql})  # type: ignore[arg-type]


def params(
    since: datetime | None, until: datetime | None, min_confidence: str, **extra: Any
) -> dict[str, Any]:
    return {"since": since, "until": until, "allowed": allowed_confidences(min_confidence), **extra}


def to_rank(row: dict[str, Any]) -> CredentialRank:
    terms = score_terms(term_values(row))
    return CredentialRank(
        credential=row["credential_id"],
        kind=row["kind"],
        score=total(terms),
        agents=list(row["agents"]),
        humans=list(row["humans"]),
        events=int(row["events"]),
        first_seen=row["t0"],
        last_seen=row["t1"],
        origin=row["origin"],
        principal=row["principal_uid"],
        own_events=int(row["own_events"] or 0),
        derived_credentials=list(row["derived"]),
        score_terms=terms,
        holder=row.get("holder"),
    )


def live_rank_rows(
    store: CaseStore,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    min_confidence: str = "inferred",
    found: list[Finding] | None = None,
) -> list[dict[str, Any]]:
    """The ranking query's rows for every credential, unsorted and unscored (what the analysis
    snapshot stores, and what :func:`live_ranking` scores), with the ``findings`` term's value
    (from ``found``, the default findings: :mod:`keytrail.analysis.answers` passes the stored
    ones) and the holder class (:mod:`keytrail.graph.principal_class`)."""
    rows = rank_query_rows(store, since=since, until=until, min_confidence=min_confidence)
    return with_findings(store, rows, found)


def rank_query_rows(
    store: CaseStore,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    min_confidence: str = "inferred",
) -> list[dict[str, Any]]:
    """The ranking query alone (one fresh cursor): it does not read the findings (the snapshot
    runs it beside them, as :func:`rank_query_table`)."""
    sql = rank_sql(
        "SELECT credential_id AS root FROM credentials",
        filtered=since is not None or until is not None,
        every_root=True,
    )
    return query(store, sql, params(since, until, min_confidence))


def rank_query_table(store: CaseStore) -> pa.Table:
    """:func:`rank_query_rows` (no window, every confidence) as an Arrow table: the snapshot
    stores it as it is plus three columns, with no row ever a Python dict."""
    cur = store.cursor()
    try:
        table: pa.Table = _rank_relation(cur).to_arrow_table()  # duckdb>=2 (pyproject)
        return table
    finally:
        cur.close()


def rank_query_columns(cur: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """The (name, DuckDB type) of every column of :func:`rank_query_table`, from binding the
    query on ``cur``, not running it (the snapshot reads the stored columns back as these
    types)."""
    rel = _rank_relation(cur)
    return [(c, str(t)) for c, t in zip(rel.columns, rel.types, strict=True)]


def _rank_relation(cur: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyRelation:
    sql = rank_sql("SELECT credential_id AS root FROM credentials", filtered=False, every_root=True)
    args = params(None, None, "inferred")
    return cur.sql(sql, params={k: v for k, v in args.items() if f"${k}" in sql})


def with_findings(
    store: CaseStore, rows: list[dict[str, Any]], found: list[Finding] | None
) -> list[dict[str, Any]]:
    """Add the ``findings`` term's value and the holder class to :func:`rank_query_rows`' rows."""
    graph, held = term_inputs(store)
    values = finding_values(store, found, graph)
    for r in rows:
        r["findings"] = values.get(r["credential_id"], 0.0)
        r["holder"] = held.get(r["credential_id"])
    return rows


def term_inputs(store: CaseStore) -> tuple[Graph, dict[str, str]]:
    """What :func:`with_findings` reads from the case besides the findings: the findings term's
    graph and the holder class of every credential (the snapshot reads them beside the
    findings run)."""
    cur = store.cursor()
    try:
        held = holders(cur)
    finally:
        cur.close()
    return finding_graph(store), held


def live_ranking(
    store: CaseStore,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    min_confidence: str = "inferred",
    limit: int | None = None,
    found: list[Finding] | None = None,
) -> list[CredentialRank]:
    """Every credential with its blast-radius score, computed now, highest first (ties: more
    events, then id). :func:`keytrail.analysis.answers.rank_credentials` reads the snapshot
    first."""
    ranks = [
        to_rank(r)
        for r in live_rank_rows(
            store, since=since, until=until, min_confidence=min_confidence, found=found
        )
    ]
    if since is not None or until is not None:
        # A credential with no event (its own or its minted ones') in the window did nothing in it:
        # listing it with window-independent terms (minted, long-lived) would rank the idle.
        ranks = [r for r in ranks if r.events]
    ranks.sort(key=lambda r: (-r.score, -r.events, r.credential))
    return ranks[:limit] if limit is not None else ranks
