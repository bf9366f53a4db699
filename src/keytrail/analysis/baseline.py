"""Behaviour baselines per agent and per credential, and what departed from them.

A subject's baseline is what it did in its baseline window: by default its first
``baseline.days`` days in the evidence, or everything before ``baseline_until``. Five
dimensions are compared: services, actions, resource types, source networks (IPv4 /24,
IPv6 /48 by default; service names such as ``s3.amazonaws.com`` as logged) and hours of
the day (UTC). Any value first seen after the window is a departure, with its count,
first time and evidence. Agents' events are those logged with their id plus those
signed by credentials they hold (and credentials minted from those).

The same SQL serves ``keytrail baseline CASE ID`` (one subject) and the ``scope-drift``
rule (every subject at once), so both always agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from keytrail.timefmt import format_utc

if TYPE_CHECKING:
    import duckdb

    from keytrail.config import FindingsConfig
    from keytrail.store.case import CaseStore

DIMENSIONS = ("services", "actions", "resource_types", "source_networks", "hours")


def _network_table_sql(v4: int, v6: int) -> str:
    """SQL: one row per distinct ``src_ip`` with its network (IPv4 /v4, IPv6 first v6/16 groups,
    anything else as logged). Computed per distinct address, not per event: the addresses are
    made distinct first (``MATERIALIZED``), else DuckDB pushes the address tests below the
    ``DISTINCT`` and runs both regular expressions on every event (0.14 against 0.08 CPU-s at
    1M events, 51 addresses)."""
    mask = 2 ** (32 - v4)
    groups = max(1, v6 // 16)
    octets = ", ".join(
        f"try_cast(split_part(src_ip, '.', {i}) AS BIGINT) AS o{i}" for i in range(1, 5)
    )
    v4_text = " || '.' || ".join(f"(m // {256 ** (3 - i)} % 256)::VARCHAR" for i in range(4))
    return f"""
      WITH ips AS MATERIALIZED (SELECT DISTINCT src_ip FROM events)
      SELECT src_ip, {v4_text} || '/{v4}' AS network FROM (
        SELECT src_ip, (o1 * 16777216 + o2 * 65536 + o3 * 256 + o4) // {mask} * {mask} AS m FROM (
          SELECT src_ip, {octets} FROM ips
          WHERE regexp_full_match(src_ip, '(\\d{{1,3}}\\.){{3}}\\d{{1,3}}')))
      UNION ALL
      SELECT src_ip, CASE WHEN contains(src_ip, ':') AND regexp_full_match(src_ip, '[0-9A-Fa-f:.]+') THEN
        array_to_string(list_transform(string_split(src_ip, ':')[1:{groups}],
                                       lambda g: CASE WHEN g = '' THEN '0' ELSE lower(g) END), ':') || '::/{v6}'
        ELSE src_ip END
      FROM ips
      WHERE src_ip IS NOT NULL AND NOT regexp_full_match(src_ip, '(\\d{{1,3}}\\.){{3}}\\d{{1,3}}')"""


def build(
    cur: duckdb.DuckDBPyConnection,
    cfg: FindingsConfig,
    until: datetime | None,
    subject: tuple[str, str] | None = None,
    min_events: int = 0,
    values: bool = True,
) -> None:
    """Create ``_kt_win`` (subject, window, baseline event count), ``_kt_base`` (values seen in
    the window, with counts) and ``_kt_dep`` (values first seen after it, for subjects with at
    least ``min_events`` baseline events: count, first/last time, first event).

    Needs the context tables (``_kt_agent_event``). ``subject`` = (kind, id) restricts to one.
    ``values=False`` leaves ``_kt_base`` out: the ``scope-drift`` rule reads only the departures
    and the windows, and at 1M events the window's values are 368k rows joined to their subjects'
    ids for nothing. It also groups the rows of only the subjects that can depart: a
    departure's rows all come after the window, so a subject none of whose events does
    (``last_t < end_t``) has none (at 1M events 51 of 33,036 subjects have later events: 0.96M
    of 1.89M rows). ``_kt_win`` then holds ``n_base`` only for the subjects with later events
    (0 for the others); thin windows are left out after the grouping, as before.
    """
    b = cfg.baseline
    filt_a = filt_c = ""
    if subject is not None:
        kind, _sid = subject
        filt_a = "AND ae.agent_id = $s" if kind == "agent" else "AND FALSE"
        filt_c = "AND e.credential_id = $s" if kind == "credential" else "AND FALSE"
    cur.execute(
        f"CREATE OR REPLACE TEMP TABLE _kt_net AS {_network_table_sql(b.ipv4_prefix, b.ipv6_prefix)}"
    )
    # A subject's events (agents' from the context table, credentials' their own rows: neither
    # joins back to `events`), read twice (windows, then rows) rather than stored once more.
    se = f"""
              SELECT 'agent' AS subject_kind, ae.agent_id AS subject, ae.event_uid,
                     ae.time, ae.service, ae.action, ae.src_ip
              FROM _kt_agent_event ae
              WHERE ae.time IS NOT NULL {filt_a}
              UNION ALL
              SELECT 'credential', e.credential_id, e.event_uid, e.time, e.service, e.action, e.src_ip
              FROM events e WHERE e.credential_id IS NOT NULL AND e.time IS NOT NULL {filt_c}"""
    end = "$until::TIMESTAMP" if until is not None else f"min(time) + INTERVAL {int(b.days)} DAY"
    params: dict[str, Any] = {"until": until} if until is not None else {}
    if subject is not None:
        params["s"] = subject[1]
    cur.execute(
        f"""CREATE OR REPLACE TEMP TABLE _kt_win AS
            SELECT subject_kind, subject, min(time) AS start_t, {end} AS end_t, max(time) AS last_t,
                   0 AS n_base, row_number() OVER () AS sid
            FROM ({se}) GROUP BY subject_kind, subject""",
        params or None,
    )
    # Only departures wanted: the rows of subjects with events after their window (see above).
    wins = "_kt_win" if values else "(SELECT * FROM _kt_win WHERE last_t >= end_t)"
    # Each event row gets its subject's number and whether it falls in the window, in one join:
    # the groupings below then compare a number and two short texts instead of the subject's
    # kind and id (long credential ids; 1.9M rows at 1M events), and the subject's own columns
    # come back in a join of the (much fewer) result rows. The hour is kept as a number and
    # written as text ('07') once per group, not once per row.
    cur.execute(
        f"""CREATE OR REPLACE TEMP TABLE _kt_sv AS
            SELECT w.sid, se.time < w.end_t AS inw, se.event_uid, se.time, se.service, se.action,
                   n.network, hour(se.time)::UTINYINT AS hour
            FROM ({se}) se JOIN {wins} w USING (subject_kind, subject)
            LEFT JOIN _kt_net n ON n.src_ip = se.src_ip""",
        {"s": subject[1]} if subject is not None else None,
    )
    cur.execute(
        """UPDATE _kt_win SET n_base = c.n FROM (
             SELECT sid, count(*) AS n FROM _kt_sv WHERE inw GROUP BY sid) c
           WHERE _kt_win.sid = c.sid"""
    )
    # (dimension, grouping key, the value's text from the key `k`, join it needs)
    dims = [
        ("services", "service", "k", ""),
        ("actions", "action", "k", ""),
        ("source_networks", "network", "k", ""),
        ("hours", "hour", "lpad(k::VARCHAR, 2, '0')", ""),
        ("resource_types", "r.resource_type", "k", " JOIN event_resources r USING (event_uid)"),
    ]

    def per_dim(rel: str, aggs: str) -> str:
        """One grouping per dimension over ``rel`` (a subset of ``_kt_sv``), UNION ALL."""
        return " UNION ALL ".join(
            f"SELECT sid, '{name}' AS dim, {text} AS value, * EXCLUDE (sid, k) FROM ("
            f"SELECT sid, {key} AS k, {aggs} FROM {rel}{join} WHERE {key} IS NOT NULL "
            "GROUP BY sid, k)"
            for name, key, text, join in dims
        )

    # Every (subject, dimension, value) of all its rows, grouped once: its count in the window
    # and over all, first and last time. A value departed when none of its rows is in the
    # window (the window is every row before its end, so its first time is after it), and then
    # all its rows are later ones: the departure's count and times are the group's own. Grouping
    # the window's rows and the later ones apart and anti-joining them (before session 12) cost
    # 1.6-2.9 against 1.4-2.1 CPU-s for this function at 1M events, the same rows.
    cur.execute(
        f"""CREATE OR REPLACE TEMP TABLE _kt_bv AS {
            per_dim(
                "_kt_sv",
                "count(*) FILTER (WHERE inw) AS n_in, count(*) AS n, min(time) AS t0, max(time) AS t1",
            )
        }"""
    )
    deep = f"(SELECT sid FROM _kt_win WHERE n_base >= {int(min_events)})"
    cur.execute(
        f"""CREATE OR REPLACE TEMP TABLE _kt_gd AS
            SELECT d.sid, d.dim, d.value, d.n, d.t0, d.t1 FROM _kt_bv d
            WHERE d.n_in = 0
              AND d.sid IN {deep}"""
    )
    # A departure's first event, from the later rows of the subjects that departed only (none
    # of 1M events' 33k subjects): an arg_min in the grouping above would cost every group it.
    later = per_dim(
        "(SELECT * FROM _kt_sv WHERE NOT inw AND sid IN (SELECT sid FROM _kt_gd))",
        "arg_min(event_uid, (time, event_uid)) AS uid",
    )
    cur.execute(
        f"""CREATE OR REPLACE TEMP TABLE _kt_dep AS
            SELECT w.subject_kind, w.subject, d.dim, d.value, d.n, d.t0, d.t1, u.uid
            FROM _kt_gd d JOIN ({later}) u USING (sid, dim, value) JOIN _kt_win w USING (sid)"""
    )
    if values:
        cur.execute(
            """CREATE OR REPLACE TEMP TABLE _kt_base AS
               SELECT w.subject_kind, w.subject, b.dim, b.value, b.n_in AS n
               FROM _kt_bv b JOIN _kt_win w USING (sid) WHERE b.n_in > 0"""
        )
    for t in ("_kt_gd", "_kt_bv", "_kt_sv"):
        cur.execute(f"DROP TABLE {t}")


def departures(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Values first seen after each subject's window (from :func:`build`), ordered by subject."""
    rel = cur.execute(
        """SELECT a.subject_kind, a.subject, a.dim, a.value, a.n, a.t0, a.t1, [a.uid] AS uids,
                  w.start_t, w.end_t, w.n_base
           FROM _kt_dep a JOIN _kt_win w USING (subject_kind, subject)
           ORDER BY a.subject_kind, a.subject, a.dim, a.t0, a.value"""
    )
    names = [d[0] for d in rel.description or []]
    return [dict(zip(names, r)) for r in rel.fetchall()]


@dataclass(frozen=True)
class Baseline:
    subject: str
    kind: str
    window_start: datetime | None
    window_end: datetime | None
    baseline_events: int
    last_seen: datetime | None
    values: dict[str, list[dict[str, Any]]]
    """Per dimension: values seen in the window with their counts."""
    departed: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Per dimension: values first seen after the window, with count, first/last time and evidence."""
    thin: bool = False
    """True when the window holds fewer events than ``baseline.min_events``."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "kind": self.kind,
            "window": {
                "start": format_utc(self.window_start),
                "end": format_utc(self.window_end),
                "events": self.baseline_events,
            },
            "last_seen": format_utc(self.last_seen),
            "thin_baseline": self.thin,
            **{dim: self.values.get(dim, []) for dim in DIMENSIONS},
            "departures": {dim: self.departed.get(dim, []) for dim in DIMENSIONS},
        }


def _resolve(store: CaseStore, cur: duckdb.DuckDBPyConnection, subject_id: str) -> tuple[str, str]:
    from keytrail.errors import NotFoundError

    if cur.execute(
        "SELECT 1 FROM _kt_agent_event WHERE agent_id = ? LIMIT 1", [subject_id]
    ).fetchone():
        return "agent", subject_id
    if cur.execute("SELECT 1 FROM events WHERE credential_id = ? LIMIT 1", [subject_id]).fetchone():
        return "credential", subject_id
    from keytrail.analysis.lookup import unique_prefix

    def run(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        return cur.execute(sql, params).fetchall()

    for kind, table, column in (
        ("agent", "_kt_agent_event", "agent_id"),
        ("credential", "events", "credential_id"),
    ):
        full = unique_prefix(run, table, column, subject_id)  # a unique prefix, or hmac:… as shown
        if full is not None:
            return kind, full
    close = [
        r[0]
        for r in cur.execute(
            """SELECT id FROM (SELECT DISTINCT agent_id AS id FROM _kt_agent_event
                           UNION SELECT DISTINCT credential_id FROM events WHERE credential_id IS NOT NULL)
           ORDER BY jaro_winkler_similarity(id, ?) DESC, id LIMIT 5""",
            [subject_id],
        ).fetchall()
    ]
    raise NotFoundError(f"no agent or credential {subject_id!r} acted in case {store.path}", close)


def baseline(
    store: CaseStore,
    subject_id: str,
    *,
    baseline_until: datetime | str | None = None,
    config: FindingsConfig | None = None,
) -> Baseline:
    """The baseline of one agent or credential (as logged) and what departed from it.

    Raises:
        NotFoundError: no agent or credential with that id acted in the case (exit 1).
    """
    from keytrail.analysis.findings.catalog import RULES
    from keytrail.analysis.findings.context import Context, parse_time
    from keytrail.config import load_config

    cfg = config or load_config(rule_ids=RULES)
    until = parse_time(baseline_until)
    cur = store.cursor()
    try:
        Context(cur, cfg, until)  # builds the chain tables the subject's events come from
        kind, sid = _resolve(store, cur, subject_id)
        build(cur, cfg, until, (kind, sid))
        win = cur.execute("SELECT start_t, end_t, n_base, last_t FROM _kt_win").fetchone()
        values: dict[str, list[dict[str, Any]]] = {d: [] for d in DIMENSIONS}
        for dim, value, n in cur.execute(
            "SELECT dim, value, n FROM _kt_base ORDER BY dim, n DESC, value"
        ).fetchall():
            values[dim].append({"value": value, "events": int(n)})
        departed: dict[str, list[dict[str, Any]]] = {d: [] for d in DIMENSIONS}
        for r in departures(cur):
            ids = dict(
                cur.execute(
                    "SELECT event_uid, coalesce(source_event_id, event_uid) FROM events WHERE event_uid IN "
                    "(SELECT unnest(?::VARCHAR[]))",
                    [r["uids"]],
                ).fetchall()
            )
            departed[r["dim"]].append(
                {
                    "value": r["value"],
                    "events": int(r["n"]),
                    "first_seen": format_utc(r["t0"]),
                    "last_seen": format_utc(r["t1"]),
                    "evidence": [ids[u] for u in r["uids"] if u in ids],
                    "evidence_uids": list(r["uids"]),
                }
            )
    finally:
        cur.close()
    start, end, n_base, last = win if win else (None, None, 0, None)
    return Baseline(
        sid,
        kind,
        start,
        end,
        int(n_base or 0),
        last,
        values,
        departed,
        thin=int(n_base or 0) < cfg.baseline.min_events,
    )
