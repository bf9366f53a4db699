"""The SQL the explorer runs directly on the case (no textual import here).

Analysis answers (ranking, blast radius, traces, findings, baselines) come from
``keytrail.analysis``; this module only holds what the screens need to *browse* the
store: the filtered, paged timeline, one event's raw record, counts by kind, the
lineage rows around a credential and palette look-ups. Every function takes a DuckDB
cursor (the caller's thread-local one) so a worker can ``interrupt()`` it.

Timeline paging is keyset paging on ``(time, event_uid)``: a page is at most
:data:`PAGE_SIZE` rows, so no widget ever holds more than one page, whatever the
case size. Events without a time sort first.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from keytrail.idfmt import expand_short
from keytrail.store import carried
from keytrail.timefmt import to_utc

if TYPE_CHECKING:
    import duckdb

PAGE_SIZE = 200
#: Rows kept in any result table (SQL console, lists).
TABLE_CAP = 10_000

TIMELINE_COLUMNS = (
    "time",
    "source",
    "action",
    "outcome",
    "actor_name",
    "credential_id",
    "agent_id",
    "human_id",
    "src_ip",
    "target",
    "source_event_id",
    "event_uid",
)
_FILTER_KEYS = {
    "source": "source = ?",
    "action": "action ILIKE ?",
    "outcome": "outcome = ?",
    "cred": "credential_id = ?",
    # the credential and everything minted from it (its blast radius D(c)), cycles stopped by UNION
    "family": """credential_id IN (WITH RECURSIVE fam(id) AS (SELECT ? UNION
                   SELECT l.dst FROM links l JOIN fam ON l.src = fam.id
                   WHERE l.kind = 'MINTED' AND l.dst_kind = 'credential') SELECT id FROM fam)""",
    "credential": "credential_id = ?",
    "agent": "agent_id = ?",
    "human": "human_id = ?",
    "actor": "actor_uid ILIKE ?",
    "resource": "event_uid IN (SELECT event_uid FROM event_resources WHERE resource_id = ?)",
    "file": "file_id = ?",
}
_TIME_KEYS = ("since", "until")
#: Filter terms whose value is an id a unique prefix may name: (table, column) holding the ids.
_PREFIX_LOOKUPS = {
    "cred": ("credentials", "credential_id"),
    "credential": ("credentials", "credential_id"),
    "family": ("credentials", "credential_id"),
    "agent": ("events", "agent_id"),
    "human": ("events", "human_id"),
}


@dataclass
class TimelineFilter:
    """A parsed filter line: ``source:vault action:s3:* since:2024-05-01T00:00Z some text``."""

    terms: dict[str, str] = field(default_factory=dict)
    since: datetime | None = None
    until: datetime | None = None
    text: str = ""

    @classmethod
    def parse(cls, line: str) -> TimelineFilter:
        """Parse a filter line; ``key:value`` for known keys, everything else is free text.

        Raises:
            ValueError: a ``since:``/``until:`` value is not a timestamp.
        """
        f = cls()
        try:
            words = shlex.split(line)
        except ValueError:
            words = line.split()
        rest: list[str] = []
        for w in words:
            key, sep, value = w.partition(":")
            key = key.lower()
            if sep and value and key in _FILTER_KEYS:
                f.terms[key] = value
            elif sep and value and key in _TIME_KEYS:
                t = to_utc(value)
                if t is None:
                    raise ValueError(f"{key}: {value!r} is not a time (use 2024-05-01T12:00:00Z)")
                setattr(f, key, t)
            else:
                rest.append(w)
        f.text = " ".join(rest)
        return f

    def expanded(self, cur: duckdb.DuckDBPyConnection) -> TimelineFilter:
        """This filter with each id term that is a unique prefix (or ``hmac:…``) made whole.

        The explorer shows long ids short (``hmac:4b900e35…``); typed back into a filter
        they name the one id they start. An exact id, an ambiguous or an unknown prefix
        stays as typed (it then matches what it matches: nothing, for a typo).
        """
        terms = dict(self.terms)
        for key, value in self.terms.items():
            lookup = _PREFIX_LOOKUPS.get(key)
            if lookup is None:
                continue
            wanted = expand_short(value)
            table, column = lookup
            exact = f"SELECT 1 FROM {table} WHERE {column} = ? LIMIT 1"
            if cur.execute(exact, [wanted]).fetchone():
                terms[key] = wanted
                continue
            starts = f"SELECT DISTINCT {column} FROM {table} WHERE starts_with({column}, ?) LIMIT 2"
            rows = cur.execute(starts, [wanted]).fetchall() if len(wanted) >= 4 else []
            terms[key] = str(rows[0][0]) if len(rows) == 1 else value
        return TimelineFilter(terms, self.since, self.until, self.text)

    def where(self) -> tuple[str, list[Any]]:
        """The SQL ``WHERE`` body and its parameters (``TRUE`` for no filter)."""
        parts: list[str] = []
        params: list[Any] = []
        for key, value in self.terms.items():
            sql = _FILTER_KEYS[key]
            if key == "action":
                value = value.replace("*", "%")
            if key == "actor":
                value = f"%{value}%"
            if key == "file":
                value = int(value) if value.isdigit() else -1  # type: ignore[assignment]
            parts.append(sql)
            params.append(value)
        if self.since is not None:
            parts.append("time >= ?")
            params.append(self.since)
        if self.until is not None:
            parts.append("time <= ?")
            params.append(self.until)
        if self.text:
            parts.append("(raw ILIKE ? OR event_uid ILIKE ? OR coalesce(action, '') ILIKE ?)")
            params += [f"%{self.text}%"] * 3
        return (" AND ".join(parts) or "TRUE"), params


@dataclass
class Page:
    """One timeline page: rows (tuples in :data:`TIMELINE_COLUMNS` order) and the keys around it."""

    rows: list[tuple[Any, ...]]
    first_key: tuple[Any, str] | None
    last_key: tuple[Any, str] | None
    offset: int


def _key(row: tuple[Any, ...]) -> tuple[Any, str]:
    return (row[0], row[-1])


_ASC = "ORDER BY time NULLS FIRST, event_uid"
_DESC = "ORDER BY time DESC NULLS LAST, event_uid DESC"


def _after(key: tuple[Any, str]) -> tuple[str, list[Any]]:
    # Written as plain range predicates (not a row comparison on an expression) so DuckDB
    # can skip row groups by their time zone maps: a page costs tens of ms at 1M events.
    t, uid = key
    if t is None:
        return "((time IS NULL AND event_uid > ?) OR time IS NOT NULL)", [uid]
    return "(time >= ? AND (time > ? OR event_uid > ?))", [t, t, uid]


def _before(key: tuple[Any, str]) -> tuple[str, list[Any]]:
    t, uid = key
    if t is None:
        return "(time IS NULL AND event_uid < ?)", [uid]
    return "((time <= ? AND (time < ? OR event_uid < ?)) OR time IS NULL)", [t, t, uid]


def timeline_page(
    cur: duckdb.DuckDBPyConnection,
    flt: TimelineFilter,
    *,
    after: tuple[Any, str] | None = None,
    before: tuple[Any, str] | None = None,
    offset: int = 0,
    size: int = PAGE_SIZE,
) -> Page:
    """A page of events in ``(time, event_uid)`` order (events without a time first).

    ``after``/``before`` are keyset cursors (the last/first key of the neighbouring
    page); without them the page starts at ``offset`` rows into the filtered timeline.
    ``offset`` on the result is the caller's bookkeeping of the page's first row number.
    """
    where, params = flt.where()
    cols = ", ".join(TIMELINE_COLUMNS)
    if after is not None:
        cond, extra = _after(after)
        sql = f"SELECT {cols} FROM events WHERE {where} AND {cond} {_ASC} LIMIT ?"
        rows = cur.execute(sql, [*params, *extra, size]).fetchall()
    elif before is not None:
        cond, extra = _before(before)
        sql = f"SELECT {cols} FROM events WHERE {where} AND {cond} {_DESC} LIMIT ?"
        rows = cur.execute(sql, [*params, *extra, size]).fetchall()[::-1]
    else:
        sql = f"SELECT {cols} FROM events WHERE {where} {_ASC} LIMIT ? OFFSET ?"
        rows = cur.execute(sql, [*params, size, offset]).fetchall()
    if not rows:
        return Page([], None, None, offset)
    return Page(rows, _key(rows[0]), _key(rows[-1]), offset)


def timeline_last_page(
    cur: duckdb.DuckDBPyConnection, flt: TimelineFilter, size: int = PAGE_SIZE
) -> Page:
    """The last page (a top-N in reverse order, not an OFFSET scan) with its row offset."""
    where, params = flt.where()
    total = timeline_count(cur, flt)
    rows = cur.execute(
        f"SELECT {', '.join(TIMELINE_COLUMNS)} FROM events WHERE {where} {_DESC} LIMIT ?",
        [*params, size],
    ).fetchall()[::-1]
    offset = max(0, total - len(rows))
    if not rows:
        return Page([], None, None, 0)
    return Page(rows, _key(rows[0]), _key(rows[-1]), offset)


def timeline_count(cur: duckdb.DuckDBPyConnection, flt: TimelineFilter) -> int:
    where, params = flt.where()
    row = cur.execute(f"SELECT count(*) FROM events WHERE {where}", params).fetchone()
    return int(row[0]) if row else 0


def event_record(cur: duckdb.DuckDBPyConnection, event_uid: str) -> dict[str, Any] | None:
    """One event with its raw record and where it came from (file path and record number)."""
    rel = cur.execute(
        """SELECT e.*, v.path AS file_path FROM events e LEFT JOIN evidence v USING (file_id)
           WHERE e.event_uid = ? OR e.source_event_id = ? ORDER BY (e.event_uid = ?) DESC LIMIT 1""",
        [event_uid, event_uid, event_uid],
    )
    names = [d[0] for d in rel.description or []]
    row = rel.fetchone()
    if row is None:
        return None
    # not the fields the CloudTrail ingest keeps for the analysis: raw shows them
    return {k: v for k, v in zip(names, row) if k not in carried.COLUMNS}


def principal_kinds(cur: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Principals per kind (``human``, ``agent``, ``assumed-role`` ...)."""
    rows = cur.execute(
        "SELECT kind, count(*) FROM principals GROUP BY kind ORDER BY 2 DESC"
    ).fetchall()
    return {str(k): int(n) for k, n in rows}


def linked_identities(cur: duckdb.DuckDBPyConnection, node: str) -> list[tuple[Any, ...]]:
    """Graph edges touching ``node`` other than ``ACTED_ON``: (direction, kind, other kind, other, confidence, reason, evidence count)."""
    return cur.execute(
        """SELECT 'in', kind, src_kind, src, confidence, reason, evidence_count FROM links
             WHERE dst = ? AND kind <> 'ACTED_ON'
           UNION ALL
           SELECT 'out', kind, dst_kind, dst, confidence, reason, evidence_count FROM links
             WHERE src = ? AND kind <> 'ACTED_ON'
           ORDER BY 2, 4 LIMIT 1000""",
        [node, node],
    ).fetchall()


def activity(
    cur: duckdb.DuckDBPyConnection, column: str, values: list[str], buckets: int = 60
) -> list[tuple[datetime, int]]:
    """Events per time bucket for ``events.<column>`` in ``values`` (bucket width adapts to the span)."""
    if column not in ("credential_id", "agent_id", "human_id"):
        raise ValueError(column)
    span = cur.execute(
        f"SELECT min(time), max(time) FROM events WHERE list_contains(?, {column})", [values]
    ).fetchone()
    if not span or span[0] is None:
        return []
    seconds = max(1.0, (span[1] - span[0]).total_seconds() / buckets)
    width = next(
        (w for w in (1, 60, 300, 900, 3600, 21600, 86400, 604800) if w >= seconds), 2592000
    )
    rows = cur.execute(
        f"""SELECT time_bucket(INTERVAL '{width} seconds', time) AS b, count(*) FROM events
            WHERE list_contains(?, {column}) AND time IS NOT NULL GROUP BY b ORDER BY b""",
        [values],
    ).fetchall()
    counts = {r[0]: int(r[1]) for r in rows}
    if not counts:
        return []
    step = timedelta(seconds=width)
    out, b = [], min(counts)
    while b <= max(counts):  # empty buckets as zeros, so the sparkline is proportional to time
        out.append((b, counts.get(b, 0)))
        b += step
    return out


def agents(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every agent seen in events, principals or the inventory, with owner, humans and credentials."""
    rel = cur.execute(
        """WITH ids AS (
             SELECT principal_id AS agent_id FROM principals WHERE kind = 'agent'
             UNION SELECT agent_id FROM inventory_agents
             UNION SELECT DISTINCT agent_id FROM events WHERE agent_id IS NOT NULL)
           SELECT ids.agent_id,
                  min(i.owner) AS owner,
                  (SELECT string_agg(DISTINCT src, ', ') FROM links
                     WHERE kind = 'DELEGATED' AND dst = ids.agent_id) AS humans,
                  (SELECT count(DISTINCT dst) FROM links WHERE kind = 'USES' AND src = ids.agent_id) AS credentials,
                  (SELECT count(*) FROM events e WHERE e.agent_id = ids.agent_id) AS events,
                  min(i.retired) AS retired
           FROM ids LEFT JOIN inventory_agents i ON i.agent_id = ids.agent_id
           GROUP BY ids.agent_id ORDER BY events DESC, ids.agent_id LIMIT ?""",
        [TABLE_CAP],
    )
    names = [d[0] for d in rel.description or []]
    return [dict(zip(names, r)) for r in rel.fetchall()]


_SAFE_LIKE = re.compile(r"([%_\\])")


def search_ids(cur: duckdb.DuckDBPyConnection, text: str, limit: int = 8) -> list[tuple[str, str]]:
    """Palette look-up: ``(kind, id)`` of credentials, agents, resources, events matching ``text``.

    ``text`` may be an id as the explorer shows it short (``hmac:4b900e35…``): it is
    matched as the full id it abbreviates.
    """
    text = expand_short(text)
    pattern = "%" + _SAFE_LIKE.sub(r"\\\1", text) + "%"
    out: list[tuple[str, str]] = []
    queries = (
        (
            "credential",
            "SELECT DISTINCT credential_id FROM credentials WHERE credential_id ILIKE ? ESCAPE '\\' LIMIT ?",
        ),
        (
            "agent",
            (
                "SELECT DISTINCT principal_id FROM principals WHERE kind = 'agent' AND principal_id ILIKE ? "
                "ESCAPE '\\' UNION SELECT agent_id FROM inventory_agents WHERE agent_id ILIKE ? ESCAPE '\\' LIMIT ?"
            ),
        ),
        (
            "resource",
            "SELECT DISTINCT resource_id FROM event_resources WHERE resource_id ILIKE ? ESCAPE '\\' LIMIT ?",
        ),
    )
    for kind, sql in queries:
        n = sql.count("ILIKE ?")
        for (value,) in cur.execute(sql, [pattern] * n + [limit]).fetchall():
            out.append((kind, str(value)))
    # events: prefix match only (a substring scan of a million ids is too slow to run per keystroke)
    prefix = _SAFE_LIKE.sub(r"\\\1", text) + "%"
    for (value,) in cur.execute(
        "SELECT event_uid FROM events WHERE source_event_id LIKE ? ESCAPE '\\' OR event_uid LIKE ? ESCAPE '\\' "
        "LIMIT ?",
        [prefix, prefix, limit],
    ).fetchall():
        out.append(("event", str(value)))
    return out


def credential_head(cur: duckdb.DuckDBPyConnection, credential_id: str) -> dict[str, Any] | None:
    """The ``credentials`` row of one credential (one indexed lookup: what a credential view shows first)."""
    rel = cur.execute(
        "SELECT credential_id AS credential, kind, origin, principal_uid AS principal, events AS own_events, first_seen, last_seen "
        "FROM credentials WHERE credential_id = ?",
        [credential_id],
    )
    names = [d[0] for d in rel.description or []]
    row = rel.fetchone()
    return dict(zip(names, row)) if row else None
