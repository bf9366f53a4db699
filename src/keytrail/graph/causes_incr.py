"""The calls whose causes (``event_links``) a second ingest may change, found by time window.

A tool call causes only calls logged from ``SKEW_S`` before to ``WINDOW_S`` after it started on
its target, or the MCP request that carries its span id (:mod:`keytrail.graph.derive_causes`).
So a new tool call can change the candidates, and the ranking among them, of those calls only:
every other call keeps its links. Rebuilding every call's links instead, when an agent log is
added to a CloudTrail case, keys every old call's resources (1.4M rows at 1M events, about 2
CPU-s) even when the new tool calls cover one day of fourteen.

The set is exact whatever the order of the files: a call's time is what it is, so an old call
logged before the new tool call (clock skew, a day's log ingested late) is found like a later
one. A call that is also a cause (an MCP request, which a tool span caused and which causes the
server's calls) and is in the set can change which of its effects another cause keeps (a
candidate that caused another candidate gives way to it), so its window is added too, until no
new cause is added.

When the windows cover more than :data:`MAX_WINDOW_SHARE` of the case's time (agent logs that
span the whole trail, as in ``gen_scale.py`` data), the set would hold most calls and its filter
would cost more than it saves: :func:`windows` then says so and the caller rebuilds every call's
links.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keytrail.graph.derive_causes import SKEW_S, WINDOW_S

if TYPE_CHECKING:
    import duckdb

#: Above this share of the case's time inside the new tool calls' windows, every call's links are
#: found again.
MAX_WINDOW_SHARE = 0.5

_TOOL = "(e.service = 'tool' OR e.action = 'mcp:tools/call')"
_API = "(f.source IN ('vault', 'cloudtrail') OR f.action = 'mcp:tools/call')"
_BUCKET = f"epoch({{t}})::BIGINT // {WINDOW_S}"


def limit(con: duckdb.DuckDBPyConnection) -> float:
    """The seconds of the case's time the windows may cover (:data:`MAX_WINDOW_SHARE`): one
    scan of ``events.time``, made once by the caller of :func:`too_wide` and :func:`windows`."""
    span = con.execute(
        "SELECT epoch(max(time)) - epoch(min(time)) FROM events WHERE time IS NOT NULL"
    ).fetchone()
    return MAX_WINDOW_SHARE * float(span[0] if span and span[0] is not None else 0)


def _too_wide(con: duckdb.DuckDBPyConnection, tools: str, limit: float) -> bool:
    """Whether the windows of the tool calls in ``tools`` cover more than ``limit`` seconds."""
    covered = con.execute(
        f"SELECT count(DISTINCT {_BUCKET.format(t='time')} + d) FROM {tools}, "
        "(SELECT unnest([-1, 0, 1]) AS d)"
    ).fetchone()
    return bool(covered and covered[0] * WINDOW_S > limit)


#: The tool calls among a table of ``event_uid`` (``{effects}``), as :func:`windows` steps them.
_TOOLS_OF = f"""
    SELECT e.event_uid, e.time, e.format, e.trace_id, e.span_id FROM events e
    WHERE e.source = 'agent' AND {_TOOL} AND e.time IS NOT NULL
      AND e.event_uid IN (SELECT event_uid FROM {{effects}})"""


def too_wide(con: duckdb.DuckDBPyConnection, new: str, limit: float) -> bool:
    """Whether the windows of the tool calls in ``new`` (a table of ``event_uid``) alone cover
    more than ``limit`` seconds (:func:`limit`): then :func:`windows` of any set that
    holds them returns False in its first step (its windows cover at least these), and the
    caller may rebuild every call's links without making the set."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE _kt_inc_step AS {_TOOLS_OF.format(effects=new)}")
    return _too_wide(con, "_kt_inc_step", limit)


def windows(con: duckdb.DuckDBPyConnection, effects: str, limit: float) -> bool:
    """Add to ``effects`` (a table of ``event_uid``) every call a tool call in it may have
    caused, until no new tool call is added; False (the table half filled) when the windows
    cover more than ``limit`` seconds (:func:`limit`)."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _kt_inc_tools AS "
        "SELECT event_uid, time, format, trace_id, span_id FROM events WHERE false"
    )
    while True:
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _kt_inc_step AS {_TOOLS_OF.format(effects=effects)}
              AND e.event_uid NOT IN (SELECT event_uid FROM _kt_inc_tools)""")
        step = con.execute("SELECT count(*), min(time), max(time) FROM _kt_inc_step").fetchone()
        if not step or not step[0]:
            return True
        con.execute("INSERT INTO _kt_inc_tools SELECT * FROM _kt_inc_step")
        if _too_wide(con, "_kt_inc_tools", limit):
            return False
        # The bucket join finds every call within [start - SKEW_S, start + WINDOW_S] of a tool
        # call (three buckets around its own); the range lets the scan skip row groups.
        con.execute(
            f"""
            INSERT INTO {effects}
            SELECT f.event_uid FROM events f JOIN (
              SELECT time, {_BUCKET.format(t="time")} + d AS bucket
              FROM _kt_inc_step, (SELECT unnest([-1, 0, 1]) AS d)) c
              ON {_BUCKET.format(t="f.time")} = c.bucket
            WHERE f.time BETWEEN $lo - INTERVAL {SKEW_S} SECOND
                             AND $hi + INTERVAL {WINDOW_S} SECOND
              AND f.time BETWEEN c.time - INTERVAL {SKEW_S} SECOND
                             AND c.time + INTERVAL {WINDOW_S} SECOND
              AND {_API}
            UNION
            SELECT f.event_uid FROM events f JOIN _kt_inc_step c
              ON f.trace_id = c.trace_id AND f.span_id = c.span_id
            WHERE f.action = 'mcp:tools/call' AND c.format = 'otlp-traces'
            EXCEPT SELECT event_uid FROM {effects}""",
            {"lo": step[1], "hi": step[2]},
        )
