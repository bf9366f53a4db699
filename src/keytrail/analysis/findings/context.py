"""Shared state of one findings run: the cursor, the config, and the chain tables.

The temporary tables built here answer, for every credential, the questions most
rules share, once and in bulk:

- ``_kt_minted(parent, child)``: MINTED pairs (from ``links``, ``credentials`` and
  ``credential_issues``, so the rules also work on a case whose graph is partial);
- ``_kt_creds``: one row per credential with kind, principal, first/last use;
- ``_kt_anc(credential_id, ancestor_id)``: every credential with itself and all the
  credentials that minted it, transitively (cycles terminate: set semantics), stopping
  at long-term access keys, which are identities of their own;
- ``_kt_root(credential_id, root_id)``: the chain's root (no known parent);
- ``_kt_owner(credential_id, agent_id, uids, t0, t1, how, rank)``: agents that use a
  credential directly: USES edges (rank 3 proven, 2 strong, 1 inferred) and agent ids
  logged on its events (rank 3); the sharing rule counts only ranks at or above
  ``[credential_reuse] min_confidence``;
- ``_kt_chain_agent`` / ``_kt_chain_human``: agents and humans the chain reaches
  (owners of the credential or of any ancestor; humans delegating to those agents or to
  a chain credential, logged on the chain's events, principals of kind ``human``, or
  IAM Identity Center sessions, whose session name is the user).
- ``_kt_person(credential_id, subject_kind, detail, reason)``: credentials (and principals,
  ``subject_kind = 'principal'``) the principal classifier decided a person holds;
  ``_kt_person_held(credential_id, actor_uid)``: whether an event's caller is such a person.
- ``_kt_agent_event(agent_id, event_uid, time, service, action, src_ip, credential_id,
  human_id)``: events an agent did, with the event columns their readers need.

Rules add :class:`Draft` findings; :meth:`Context.finish` resolves evidence uids to
the source's own ids and containment steps for the credentials involved in one query
each, and drops any draft without evidence.
"""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from keytrail.analysis.findings import Finding
from keytrail.analysis.findings.catalog import RULES, RuleInfo
from keytrail.analysis.findings.containment import containment_steps
from keytrail.analysis.findings.macros import define_macros
from keytrail.analysis.lineage import closure_sql
from keytrail.errors import UsageError
from keytrail.levels import Level
from keytrail.store.sqltext import quote_literal
from keytrail.timefmt import to_utc

if TYPE_CHECKING:
    from collections.abc import Callable

    import duckdb

    from keytrail.config import FindingsConfig

#: Evidence ids kept per finding (the total is in ``evidence_count``).
MAX_EVIDENCE = 25
_CONF_RANK = {"proven": 3, "strong": 2, "inferred": 1}


def parse_time(value: datetime | str | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return to_utc(value) if value is not None else None
    parsed = to_utc(value)
    if parsed is None:
        raise UsageError(
            f"--baseline-until: {value!r} is not a time; use ISO 8601 such as 2024-05-01T00:00:00Z",
            "bad time",
        )
    return parsed


@dataclass
class Draft:
    rule: str
    subjects: list[str]
    uids: list[str]
    description: str
    impact: str
    first_seen: datetime | None
    last_seen: datetime | None
    contain: list[str] = field(default_factory=list)
    """Credentials whose containment steps go into the recommendation."""
    advice: str = ""
    """Rule-specific advice placed before the containment steps."""
    count: int = 0
    level: Level | None = None
    details: dict[str, Any] = field(default_factory=dict)


def glob_sql(column: str, patterns: tuple[str, ...] | list[str]) -> str:
    """A SQL predicate: ``column`` matches any glob (``*`` = anything); quoted safely."""
    if not patterns:
        return "FALSE"
    parts = []
    for p in patterns:
        like = p.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_").replace("*", "%")
        parts.append(f"{column} LIKE '{like.replace(chr(39), chr(39) * 2)}' ESCAPE '\\'")
    return "(" + " OR ".join(parts) + ")"


def contains_any_sql(column: str, needles: tuple[str, ...] | list[str]) -> str:
    """A SQL predicate: ``column`` contains any needle, case-insensitive."""
    if not needles:
        return "FALSE"
    parts = [f"contains(lower({column}), {quote_literal(n.lower())})" for n in needles]
    return "coalesce(" + " OR ".join(parts) + ", FALSE)"


class Context:
    def __init__(
        self,
        cur: duckdb.DuckDBPyConnection,
        cfg: FindingsConfig,
        until: datetime | None,
        shared: str | None = None,
        helper: duckdb.DuckDBPyConnection | None = None,
    ) -> None:
        self.cur = cur
        self.shared = shared
        """An attached in-memory database that every cursor of the case sees: the context tables
        are made there instead of as temporary tables, so the families can run on two cursors at
        once (:meth:`beside`; the snapshot, :func:`keytrail.analysis.findings.run.live_findings`)."""
        self.cfg = cfg
        self.until = until
        self.drafts: list[Draft] = []
        self._actions: list[str] | None = None
        self._levels: dict[str, Level] = {}
        self.extra_rules: dict[str, RuleInfo] = {}
        """Rules loaded at run time (Sigma, rule files): id -> info, looked up like the catalog."""
        self.sigma_errors: dict[str, str] = {}
        """Sigma rules that converted but whose SQL failed on this case: id -> reason."""
        self.raw_pass: object = None
        """What :func:`keytrail.analysis.findings.rawpass.ensure` made (once per run)."""
        self.keep_raw_pass = False
        """Store the raw pass's rows in the case (:mod:`.rawcache`; the snapshot refresh)."""
        self.raw_ready: Callable[[], object] | None = None
        """Called before the raw pass is read: waits for the snapshot's prefill of the cache
        (:func:`keytrail.analysis.findings.rawpass.prefill`)."""
        if shared is not None:
            cur.execute(f"SET search_path = 'main,{shared}.main'")
        if helper is not None and shared is not None:
            helper.execute(f"SET search_path = 'main,{shared}.main'")
        self._build(helper if shared is not None else None)

    def beside(self, cur: duckdb.DuckDBPyConnection) -> Context:
        """This run's context on another cursor of the same case, with drafts of its own: it reads
        the context tables in ``shared`` (temporary tables are the cursor's own) and defines the
        macros for itself."""
        if self.shared is None:
            raise ValueError("a context on another cursor needs the shared database")
        cur.execute(f"SET search_path = 'main,{self.shared}.main'")
        define_macros(cur)
        other = copy.copy(self)
        other.cur = cur
        other.drafts = []
        return other

    # -- queries -----------------------------------------------------------------
    def rows(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        rel = self.cur.execute(sql, params or [])
        names = [d[0] for d in rel.description or []]
        return [dict(zip(names, r)) for r in rel.fetchall()]

    def scalar(self, sql: str, params: list[Any] | None = None) -> Any:
        row = self.cur.execute(sql, params or []).fetchone()
        return None if row is None else row[0]

    def actions(self) -> list[str]:
        """The case's distinct actions, sorted (read once per cursor: seven rule-file families
        resolve their action globs against them)."""
        if self._actions is None:
            rows = self.cur.execute(
                "SELECT DISTINCT action FROM events WHERE action IS NOT NULL ORDER BY 1"
            ).fetchall()
            self._actions = [a for (a,) in rows]
        return self._actions

    @property
    def has_inventory(self) -> bool:
        return bool(self.scalar("SELECT count(*) FROM inventory_agents"))

    @property
    def has_agent_data(self) -> bool:
        """Whether attribution to agents can be judged at all (agent logs or an inventory)."""
        return self.has_inventory or bool(
            self.scalar(
                "SELECT count(*) FROM (SELECT 1 FROM events WHERE source = 'agent' LIMIT 1)"
            )
        )

    def info(self, rule: str) -> RuleInfo:
        return self.extra_rules.get(rule) or RULES[rule]

    def level(self, rule: str) -> Level:
        cached = self._levels.get(rule)
        if cached is None:
            cached = self._levels[rule] = self.cfg.level_of(rule, self.info(rule).level)
        return cached

    def add(self, draft: Draft) -> None:
        self.drafts.append(draft)

    # -- shared tables -------------------------------------------------------------
    def _build(self, helper: duckdb.DuckDBPyConnection | None) -> None:
        # With ``shared`` every table goes into the attached database both cursors see (families
        # then run on either, :func:`keytrail.analysis.findings.run.live_findings`); temporary
        # tables are the cursor's own. With a ``helper`` cursor too, the tables that do not wait
        # for each other are made on both at once (at 1M events the chain from `_kt_creds` to
        # `_kt_agent_event` is 0.7 of the 0.95 CPU-s; the rest runs on the helper beside it).
        t = "TEMP TABLE " if self.shared is None else f"TABLE {self.shared}."
        other = helper if helper is not None else self.cur
        _together((self._lineage, self.cur), (self._owners, other), t)
        self._chain_agents(self.cur, t)
        _together((self._agent_events, self.cur), (self._chains, other), t)
        define_macros(self.cur)

    @staticmethod
    def _lineage(cur: duckdb.DuckDBPyConnection, t: str) -> None:
        """``_kt_minted``, ``_kt_creds`` and ``_kt_anc``."""
        x = cur.execute
        x(f"""CREATE OR REPLACE {t}_kt_minted AS
             SELECT DISTINCT parent, child FROM (
               SELECT src AS parent, dst AS child FROM links
                 WHERE kind = 'MINTED' AND src_kind = 'credential' AND dst_kind = 'credential'
               UNION ALL SELECT parent_credential_id, credential_id FROM credentials
               UNION ALL SELECT parent_credential_id, credential_id FROM credential_issues)
             WHERE parent IS NOT NULL AND child IS NOT NULL AND parent <> child""")
        x(f"""CREATE OR REPLACE {t}_kt_creds AS
             WITH ev AS (
               SELECT credential_id, max(credential_kind) AS kind,
                      mode(actor_uid ORDER BY actor_uid) AS actor,
                      min(time) AS t0, max(time) AS t1, count(*) AS n,
                      arg_min(event_uid, (time, event_uid)) AS first_uid, arg_max(event_uid, (time, event_uid)) AS last_uid
               FROM events WHERE credential_id IS NOT NULL GROUP BY credential_id),
             iss AS (
               SELECT credential_id, max(kind) AS kind, max(principal_uid) AS principal,
                      min(issued_at) AS issued_at, max(expires_at) AS expires_at,
                      arg_min(event_uid, (issued_at, event_uid)) AS issue_uid
               FROM credential_issues GROUP BY credential_id),
             der AS (SELECT credential_id, max(kind) AS kind, max(principal_uid) AS principal
                     FROM credentials GROUP BY credential_id)
             SELECT coalesce(ev.credential_id, iss.credential_id, der.credential_id) AS credential_id,
                    coalesce(iss.kind, der.kind, ev.kind) AS kind,
                    coalesce(iss.principal, der.principal, ev.actor) AS principal,
                    iss.issued_at, iss.expires_at, iss.issue_uid,
                    ev.t0, ev.t1, coalesce(ev.n, 0) AS n, ev.first_uid, ev.last_uid
             FROM ev FULL JOIN iss USING (credential_id) FULL JOIN der USING (credential_id)""")
        # A long-term access key is an identity of its own: whoever created it (CreateAccessKey)
        # is reported by the privilege rules, but its later use is not the creator's session, so
        # chains stop there and the key is its own root.
        anc = closure_sql(
            "SELECT credential_id AS root FROM _kt_creds",
            edges="SELECT child AS src, parent AS dst FROM _kt_minted",
            stop="clo.credential_id IN (SELECT credential_id FROM _kt_creds "
            "WHERE kind = 'aws-access-key' OR credential_id LIKE 'AKIA%')",
        )
        x(f"""CREATE OR REPLACE {t}_kt_anc AS {anc}
             SELECT root AS credential_id, credential_id AS ancestor_id FROM clo""")

    @staticmethod
    def _owners(cur: duckdb.DuckDBPyConnection, t: str) -> None:
        """``_kt_owner``, ``_kt_person`` and ``_kt_not_person``: read only the case's tables."""
        x = cur.execute
        x(f"""CREATE OR REPLACE {t}_kt_owner AS
              SELECT credential_id, agent_id, flatten(list(uids ORDER BY t0, rank, uids)) AS uids, min(t0) AS t0, max(t1) AS t1,
                     list_sort(list_distinct(list(how))) AS how, max(rank) AS rank
              FROM (
                SELECT dst AS credential_id, src AS agent_id, evidence[1:5] AS uids,
                       first_seen AS t0, last_seen AS t1, reason AS how,
                       CASE confidence WHEN 'proven' THEN 3 WHEN 'strong' THEN 2 ELSE 1 END AS rank
                FROM links WHERE kind = 'USES' AND src_kind = 'agent' AND dst_kind = 'credential'
                UNION ALL
                SELECT credential_id, agent_id, arg_min(event_uid, (time, event_uid), 5), min(time), max(time),
                       'agent id logged on its events', 3
                FROM events WHERE credential_id IS NOT NULL AND agent_id IS NOT NULL
                GROUP BY credential_id, agent_id)
              GROUP BY credential_id, agent_id""")
        # Credentials the principal classifier (graph.principal_class) says a person holds, not
        # inferred: NHI rules do not fire on them (a person's console session is not NHI misuse).
        from keytrail.graph.principal_class import table_sql

        x(f"""CREATE OR REPLACE {t}_kt_person AS
              SELECT subject AS credential_id, subject_kind, detail, reason
              FROM {table_sql(cur)}
              WHERE class = 'person' AND confidence <> 'inferred'""")
        # One event's caller is a person: its credential is a person's, or (no credential, or one
        # with no firm decision of its own) its principal is. Rule files declaring
        # `identities = "non-human"` leave such events out (findings.declared).
        x(f"""CREATE OR REPLACE {t}_kt_not_person AS
              SELECT subject AS credential_id FROM {table_sql(cur)}
              WHERE subject_kind = 'credential' AND class NOT IN ('person', 'unknown')
                AND confidence <> 'inferred'""")

    @staticmethod
    def _chain_agents(cur: duckdb.DuckDBPyConnection, t: str) -> None:
        """``_kt_chain_agent``: needs ``_kt_anc`` and ``_kt_owner``."""
        x = cur.execute
        x(f"""CREATE OR REPLACE {t}_kt_chain_agent AS
             SELECT DISTINCT a.credential_id, o.agent_id
             FROM _kt_anc a JOIN _kt_owner o ON o.credential_id = a.ancestor_id""")

    @staticmethod
    def _chains(cur: duckdb.DuckDBPyConnection, t: str) -> None:
        """``_kt_root`` and ``_kt_chain_human``: beside ``_kt_agent_event``."""
        x = cur.execute
        x(f"""CREATE OR REPLACE {t}_kt_root AS
             SELECT c.credential_id, coalesce(r.root_id, c.credential_id) AS root_id
             FROM _kt_creds c LEFT JOIN (
               SELECT credential_id, min(ancestor_id) AS root_id FROM _kt_anc a
               WHERE NOT EXISTS (SELECT 1 FROM _kt_anc b WHERE b.credential_id = a.ancestor_id
                                 AND b.ancestor_id <> a.ancestor_id)
               GROUP BY credential_id) r
             USING (credential_id)""")
        x(f"""CREATE OR REPLACE {t}_kt_chain_human AS
             SELECT DISTINCT credential_id, human_id FROM (
               SELECT ca.credential_id, l.src AS human_id FROM _kt_chain_agent ca
                 JOIN links l ON l.kind = 'DELEGATED' AND l.src_kind = 'human' AND l.dst = ca.agent_id
               UNION ALL
               SELECT a.credential_id, l.src FROM _kt_anc a
                 JOIN links l ON l.kind = 'DELEGATED' AND l.src_kind = 'human'
                             AND l.dst_kind = 'credential' AND l.dst = a.ancestor_id
               UNION ALL
               SELECT a.credential_id, l.dst FROM _kt_anc a
                 JOIN links l ON l.kind = 'AUTHENTICATES_AS' AND l.src = a.ancestor_id
                 JOIN principals p ON p.principal_id = l.dst AND p.kind = 'human'
               UNION ALL
               -- IAM Identity Center sessions (AWSReservedSSO_* roles) are people; the session
               -- name is the user name.
               SELECT a.credential_id, regexp_extract(c.principal, '/([^/]+)$', 1) FROM _kt_anc a
                 JOIN _kt_creds c ON c.credential_id = a.ancestor_id
               WHERE regexp_matches(c.principal, ':assumed-role/AWSReservedSSO_[^/]+/[^/]+$')
               UNION ALL
               SELECT a.credential_id, h.human_id FROM _kt_anc a JOIN (
                 SELECT DISTINCT credential_id, human_id FROM events
                 WHERE credential_id IS NOT NULL AND human_id IS NOT NULL) h
                 ON h.credential_id = a.ancestor_id)""")

    @staticmethod
    def _agent_events(cur: duckdb.DuckDBPyConnection, t: str) -> None:
        """``_kt_agent_event``."""
        x = cur.execute
        # Events an agent did: logged with its id, or (when the event names no agent) signed by a
        # credential it holds or one minted from it. The event's columns the scope-drift baseline
        # and the unattributed rule read ride along: both scans read `events` anyway, and joining
        # ~1M rows back to `events` on their text id cost more than carrying them.
        cols = "event_uid, time, service, action, src_ip, credential_id, human_id"
        x(f"""CREATE OR REPLACE {t}_kt_agent_event AS
             SELECT agent_id, {cols} FROM events WHERE agent_id IS NOT NULL
             UNION ALL
             SELECT ca.agent_id, {", ".join("e." + c for c in cols.split(", "))} FROM events e
               JOIN _kt_chain_agent ca ON ca.credential_id = e.credential_id
             WHERE e.agent_id IS NULL""")

    def register_ids(self, name: str, values: list[str]) -> None:
        """Register ``values`` as a one-column (``id``) table ``name`` for a join."""
        import pyarrow as pa

        self.cur.register(name, pa.table({"id": pa.array(values, pa.string())}))

    # -- output ----------------------------------------------------------------------
    def finish(self) -> list[Finding]:
        return [f for f in self.resolve(self.drafts) if f is not None]

    def resolve(self, given: list[Draft]) -> list[Finding | None]:
        """Each draft's finding, or None for one without evidence in the case. A draft's finding
        does not depend on the others resolved with it (the evidence's chronological order is
        the events' own), so the drafts can be resolved in parts (findings.run: per cursor)."""
        drafts = [d for d in given if d.uids]
        all_uids = sorted({u for d in drafts for u in d.uids})
        ids: dict[str, str] = {}
        order: dict[str, int] = {}
        if all_uids:
            self.register_ids("_kt_want", all_uids)
            for i, (uid, sid) in enumerate(
                self.cur.execute(
                    """SELECT event_uid, coalesce(source_event_id, event_uid) FROM events
                   SEMI JOIN _kt_want ON _kt_want.id = events.event_uid ORDER BY time, event_uid"""
                ).fetchall()
            ):
                ids[uid] = sid
                order[uid] = i
        creds = sorted({c for d in drafts for c in d.contain})
        info: dict[str, dict[str, Any]] = {}
        if creds:
            self.register_ids("_kt_wantc", creds)
            for r in self.rows(
                """SELECT c.credential_id, c.kind, c.principal, list(m.parent ORDER BY m.parent) FILTER (WHERE m.parent IS NOT NULL)
                          AS parents
                   FROM _kt_creds c SEMI JOIN _kt_wantc w ON w.id = c.credential_id
                   LEFT JOIN _kt_minted m ON m.child = c.credential_id
                   GROUP BY c.credential_id, c.kind, c.principal"""
            ):
                info[r["credential_id"]] = r
        out: list[Finding | None] = []
        for d in given:
            uids = sorted(
                (u for u in set(d.uids) if u in ids), key=order.__getitem__
            )  # chronological
            if not uids:
                out.append(None)  # evidence that is not in the case cannot be cited
                continue
            shown = uids[:MAX_EVIDENCE]
            rule = self.info(d.rule)
            steps = containment_steps([c for c in dict.fromkeys(d.contain)], info)
            reco = " ".join(s for s in [d.advice, *steps] if s)
            out.append(
                Finding(
                    rule=d.rule,
                    title=rule.title,
                    level=self.level(d.rule)
                    if d.level is None or d.rule in self.cfg.levels
                    else d.level,
                    frameworks=rule.frameworks,
                    subjects=tuple(dict.fromkeys(s for s in d.subjects if s)),
                    evidence=tuple(dict.fromkeys(ids[u] for u in shown)),
                    evidence_uids=tuple(shown),
                    evidence_count=max(d.count, len(uids)),
                    description=d.description,
                    recommendation=reco,
                    impact=d.impact,
                    first_seen=d.first_seen,
                    last_seen=d.last_seen,
                    details=d.details,
                )
            )
        return out


def _together(
    first: tuple[Callable[[duckdb.DuckDBPyConnection, str], None], duckdb.DuckDBPyConnection],
    second: tuple[Callable[[duckdb.DuckDBPyConnection, str], None], duckdb.DuckDBPyConnection],
    t: str,
) -> None:
    """Run ``first`` and ``second`` (a step and its cursor), at once when their cursors differ."""
    if first[1] is second[1]:
        first[0](first[1], t)
        second[0](second[1], t)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kt-context") as pool:
        done = pool.submit(second[0], second[1], t)
        first[0](first[1], t)
        done.result()
