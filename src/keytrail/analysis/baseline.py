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


def _network_sql(v4: int, v6: int) -> str:
    """SQL text: ``src_ip`` as its network (IPv4 /v4, IPv6 first v6/16 groups), else as logged."""
    mask = 2 ** (32 - v4)
    groups = max(1, v6 // 16)
    octet = "try_cast(split_part(src_ip, '.', {i}) AS BIGINT)"
    n = " + ".join(f"{octet.format(i=i)} * {256 ** (4 - i)}" for i in range(1, 5))
    m = f"(({n}) // {mask} * {mask})"
    v4_text = " || '.' || ".join(f"({m} // {256 ** (3 - i)} % 256)::VARCHAR" for i in range(4))
    return f"""CASE
      WHEN regexp_full_match(src_ip, '(\\d{{1,3}}\\.){{3}}\\d{{1,3}}') THEN {v4_text} || '/{v4}'
      WHEN contains(src_ip, ':') AND regexp_full_match(src_ip, '[0-9A-Fa-f:.]+') THEN
        array_to_string(list_transform(string_split(src_ip, ':')[1:{groups}],
                                       lambda g: CASE WHEN g = '' THEN '0' ELSE lower(g) END), ':')
        || '::/{v6}'
      ELSE src_ip END"""


def build(cur: duckdb.DuckDBPyConnection, cfg: FindingsConfig, until: datetime | None,
          subject: tuple[str, str] | None = None) -> None:
    """Create ``_kt_win`` (one row per subject and window) and ``_kt_dims`` (per subject,
    dimension, value and side of the window: count, first/last time, evidence uids).

    Needs the context tables (``_kt_agent_event``). ``subject`` = (kind, id) restricts to one.
    """
    b = cfg.baseline
    filt_a = filt_c = ""
    params: list[Any] = []
    if subject is not None:
        kind, sid = subject
        filt_a = "AND ae.agent_id = $s" if kind == "agent" else "AND FALSE"
        filt_c = "AND e.credential_id = $s" if kind == "credential" else "AND FALSE"
    cur.execute(
        f"""CREATE OR REPLACE TEMP TABLE _kt_sev AS
            SELECT 'agent' AS subject_kind, ae.agent_id AS subject, e.event_uid, e.time, e.service, e.action,
                   e.src_ip, e.outcome
            FROM _kt_agent_event ae JOIN events e USING (event_uid) WHERE e.time IS NOT NULL {filt_a}
            UNION ALL
            SELECT 'credential', e.credential_id, e.event_uid, e.time, e.service, e.action, e.src_ip, e.outcome
            FROM events e WHERE e.credential_id IS NOT NULL AND e.time IS NOT NULL {filt_c}""",
        {"s": subject[1]} if subject is not None else None,
    )
    end = "$until::TIMESTAMP" if until is not None else f"min(time) + INTERVAL {int(b.days)} DAY"
    cur.execute(
        f"""CREATE OR REPLACE TEMP TABLE _kt_win AS
            SELECT subject_kind, subject, min(time) AS start_t, {end} AS end_t, max(time) AS last_t, 0 AS n_base
            FROM _kt_sev GROUP BY subject_kind, subject""",
        {"until": until} if until is not None else None,
    )
    cur.execute(
        """UPDATE _kt_win SET n_base = c.n FROM (
             SELECT s.subject_kind, s.subject, count(*) AS n FROM _kt_sev s
             JOIN _kt_win w USING (subject_kind, subject) WHERE s.time < w.end_t GROUP BY ALL) c
           WHERE _kt_win.subject_kind = c.subject_kind AND _kt_win.subject = c.subject"""
    )
    net = _network_sql(b.ipv4_prefix, b.ipv6_prefix)
    dims = [
        ("services", "service", "_kt_sev"),
        ("actions", "action", "_kt_sev"),
        ("source_networks", net, "_kt_sev"),
        ("hours", "lpad(hour(time)::VARCHAR, 2, '0')", "_kt_sev"),
        ("resource_types", "r.resource_type", "_kt_sev JOIN event_resources r USING (event_uid)"),
    ]
    selects = [
        f"""SELECT subject_kind, subject, '{name}' AS dim, {expr} AS value, event_uid, time FROM {src}"""
        for name, expr, src in dims
    ]
    cur.execute(
        f"""CREATE OR REPLACE TEMP TABLE _kt_dims AS
            SELECT d.subject_kind, d.subject, d.dim, d.value, d.time >= w.end_t AS after,
                   count(*) AS n, min(d.time) AS t0, max(d.time) AS t1, arg_min(d.event_uid, d.time, 3) AS uids
            FROM ({' UNION ALL '.join(selects)}) d JOIN _kt_win w USING (subject_kind, subject)
            WHERE d.value IS NOT NULL
            GROUP BY ALL"""
    )


def departures(cur: duckdb.DuckDBPyConnection, min_events: int) -> list[dict[str, Any]]:
    """Per subject with a baseline of at least ``min_events`` events: values new after the window."""
    rel = cur.execute(
        """SELECT a.subject_kind, a.subject, a.dim, a.value, a.n, a.t0, a.t1, a.uids, w.start_t, w.end_t, w.n_base
           FROM _kt_dims a JOIN _kt_win w USING (subject_kind, subject)
           LEFT JOIN _kt_dims b ON b.subject_kind = a.subject_kind AND b.subject = a.subject
                               AND b.dim = a.dim AND b.value = a.value AND NOT b.after
           WHERE a.after AND b.value IS NULL AND w.n_base >= ?
           ORDER BY a.subject_kind, a.subject, a.dim, a.t0""",
        [min_events],
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
            "window": {"start": format_utc(self.window_start), "end": format_utc(self.window_end),
                       "events": self.baseline_events},
            "last_seen": format_utc(self.last_seen),
            "thin_baseline": self.thin,
            **{dim: self.values.get(dim, []) for dim in DIMENSIONS},
            "departures": {dim: self.departed.get(dim, []) for dim in DIMENSIONS},
        }


def _resolve(store: CaseStore, cur: duckdb.DuckDBPyConnection, subject_id: str) -> tuple[str, str]:
    from keytrail.errors import NotFoundError

    if cur.execute("SELECT 1 FROM _kt_agent_event WHERE agent_id = ? LIMIT 1", [subject_id]).fetchone():
        return "agent", subject_id
    if cur.execute("SELECT 1 FROM events WHERE credential_id = ? LIMIT 1", [subject_id]).fetchone():
        return "credential", subject_id
    close = [r[0] for r in cur.execute(
        """SELECT id FROM (SELECT DISTINCT agent_id AS id FROM _kt_agent_event
                           UNION SELECT DISTINCT credential_id FROM events WHERE credential_id IS NOT NULL)
           ORDER BY jaro_winkler_similarity(id, ?) DESC, id LIMIT 5""", [subject_id]).fetchall()]
    raise NotFoundError(f"no agent or credential {subject_id!r} acted in case {store.path}", close)


def baseline(store: CaseStore, subject_id: str, *, baseline_until: datetime | str | None = None,
             config: FindingsConfig | None = None) -> Baseline:
    """The baseline of one agent or credential (as logged) and what departed from it.

    Raises:
        NotFoundError: no agent or credential with that id acted in the case (exit 1).
    """
    from keytrail.analysis.findings.context import Context, parse_time
    from keytrail.config import load_config

    cfg = config or load_config()
    until = parse_time(baseline_until)
    cur = store.cursor()
    try:
        Context(cur, cfg, until)  # builds the chain tables the subject's events come from
        kind, sid = _resolve(store, cur, subject_id)
        build(cur, cfg, until, (kind, sid))
        win = cur.execute("SELECT start_t, end_t, n_base, last_t FROM _kt_win").fetchone()
        values: dict[str, list[dict[str, Any]]] = {d: [] for d in DIMENSIONS}
        for dim, value, n in cur.execute(
            "SELECT dim, value, n FROM _kt_dims WHERE NOT after ORDER BY dim, n DESC, value"
        ).fetchall():
            values[dim].append({"value": value, "events": int(n)})
        departed: dict[str, list[dict[str, Any]]] = {d: [] for d in DIMENSIONS}
        for r in departures(cur, 0):
            ids = dict(cur.execute(
                "SELECT event_uid, coalesce(source_event_id, event_uid) FROM events WHERE event_uid IN "
                "(SELECT unnest(?::VARCHAR[]))", [r["uids"]]).fetchall())
            departed[r["dim"]].append({
                "value": r["value"], "events": int(r["n"]),
                "first_seen": format_utc(r["t0"]), "last_seen": format_utc(r["t1"]),
                "evidence": [ids[u] for u in r["uids"] if u in ids], "evidence_uids": list(r["uids"]),
            })
    finally:
        cur.close()
    start, end, n_base, last = win if win else (None, None, 0, None)
    return Baseline(sid, kind, start, end, int(n_base or 0), last, values, departed,
                    thin=int(n_base or 0) < cfg.baseline.min_events)
