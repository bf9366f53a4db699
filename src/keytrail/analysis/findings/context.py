"""Shared state of one findings run: the cursor, the config, and the chain tables.

The chain tables (:mod:`keytrail.analysis.findings.context_tables`) answer, for every
credential, the questions most rules share, once and in bulk.

Rules add :class:`Draft` findings; :meth:`Context.finish` resolves evidence uids to
the source's own ids and containment steps for the credentials involved in one query
each, and drops any draft without evidence.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from keytrail.analysis.findings import Finding
from keytrail.analysis.findings.catalog import RULES, RuleInfo
from keytrail.analysis.findings.containment import containment_steps
from keytrail.analysis.findings.context_tables import build_tables
from keytrail.analysis.findings.macros import define_macros
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
        self.raw_ready: Callable[[], str | None] | None = None
        """Called before the raw pass is read: waits for the snapshot's prefill of the cache
        (:func:`keytrail.analysis.findings.rawpass.prefill`) and returns what it returned."""
        if shared is not None:
            for c in (cur, helper) if helper is not None else (cur,):
                c.execute(f"SET search_path = 'main,{shared}.main'")
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
        # tables are the cursor's own.
        t = "TEMP TABLE " if self.shared is None else f"TABLE {self.shared}."
        build_tables(self.cur, helper, t)
        define_macros(self.cur)

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
