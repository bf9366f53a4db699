"""The raw pass's answers kept in the case, so a snapshot reads each record's JSON once, ever.

The one read of every CloudTrail record (:mod:`.rawpass`: every Sigma rule's hits and the
console-session flag) is the costliest part of the findings at a million events (2 s of 6), and
its answer for a record depends on that record and the query alone. ``raw_pass_cache`` keeps the
rows it produced, ``(r, event_uid)``; ``case_meta`` ``rawpass.cache`` says for which query and
which records, as JSON ``{"fingerprint", "through", "events"}``:

- ``fingerprint``: a hash of the analysis code and of the query's text (the converted rules, the
  fields they read, the flag): other rules, another rule folder, another pySigma conversion or
  another keytrail give another query, and the cache is not read (and is replaced when the
  snapshot runs);
- ``through``: the last ``file_id`` whose records it covers. A later ingest's files have higher
  ids (an interrupted ingest's committed files included): only their records are read, and the
  cache is extended with their rows;
- ``events``: a digest of the CloudTrail events of files up to ``through`` (their number and a
  sum of hashes of their id and position, file and record: 0.05 CPU-s at 1M events).
  De-duplication keeps the earliest copy of an event, so it never removes one of those; were one
  removed, added or replaced anyway, the digest differs and the cache is ignored and rebuilt.

Only :func:`keytrail.analysis.snapshot.refresh` writes it (the rows and the meta row in one
transaction: an interrupted write leaves the cache as it was); a live findings run reads it when
it is valid, and reads the rest of the records itself.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable

    import duckdb


class Reader(Protocol):
    """What the cache needs of a findings run (:class:`~.context.Context`, or the snapshot's
    own cursor that fills the cache beside the findings, :func:`.rawpass.prefill`)."""

    cur: duckdb.DuckDBPyConnection
    keep_raw_pass: bool

    def scalar(self, sql: str, params: list[Any] | None = None) -> Any: ...


KEY = "rawpass.cache"
TABLE = "raw_pass_cache"
_CT = "source = 'cloudtrail'"


def fingerprint(sql: str) -> str:
    """The analysis code's fingerprint and the text of the query that makes the rows."""
    from keytrail.analysis.code_hash import code_fingerprint

    return hashlib.sha256((code_fingerprint() + sql).encode()).hexdigest()[:24]


def _covered(ctx: Reader, fp: str) -> int | None:
    """The last file the stored rows cover when they answer ``fp`` for this case, else None."""
    value = ctx.scalar("SELECT value FROM case_meta WHERE key = ?", [KEY])
    if value is None:
        return None
    state = json.loads(value)
    if state.get("fingerprint") != fp:
        return None
    through = int(state["through"])
    return through if _digest(ctx, through) == state.get("events") else None


def _digest(ctx: Reader, through: int) -> str:
    """The number of CloudTrail events of files up to ``through`` and a sum of hashes of their
    id, file and record."""
    n, total = ctx.cur.execute(
        f"""SELECT count(*), coalesce(sum(hash(event_uid, file_id, record_no)), 0)::VARCHAR
            FROM events WHERE {_CT} AND file_id <= ?""",
        [through],
    ).fetchone() or (0, "0")
    return f"{n}:{total}"


def make(ctx: Reader, sql_for: Callable[[str | None], str], current: str | None = None) -> str:
    """A relation (table name or subquery) with the rows of ``sql_for(None)``, the query over
    every CloudTrail record: the stored rows for the records they cover, ``sql_for(where)`` read
    now for the others. With ``ctx.keep_raw_pass`` the cache is first brought up to date and is
    the relation (the rows are written once, not copied from a temporary table); the caller
    drops the temporary tables named ``_kt_raw_*`` when done. ``current``: the fingerprint of
    the query the cache was just brought up to date for, on this case as it is (the snapshot's
    :func:`.rawpass.prefill`): the cache is the relation when it is this query's, unchecked."""
    fp = fingerprint(sql_for(None))
    if current is not None and current == fp:
        return TABLE
    through = _covered(ctx, fp)
    top = int(ctx.scalar("SELECT coalesce(max(file_id), 0) FROM evidence"))
    if through == top:
        return TABLE
    if through is None and not ctx.keep_raw_pass:
        ctx.cur.execute(f"CREATE OR REPLACE TEMP TABLE _kt_raw_all AS {sql_for(None)}")
        return "_kt_raw_all"
    new = sql_for(None if through is None else f"file_id > {through}")
    if through is not None:
        ctx.cur.execute(f"CREATE OR REPLACE TEMP TABLE _kt_raw_new AS {new}")
        new = "SELECT r, event_uid FROM _kt_raw_new"
    if not ctx.keep_raw_pass:
        return f"(SELECT r, event_uid FROM {TABLE} UNION ALL {new})"
    state = json.dumps({"fingerprint": fp, "through": top, "events": _digest(ctx, top)})
    cur = ctx.cur
    cur.execute("BEGIN TRANSACTION")
    try:
        if through is None:
            cur.execute(f"DELETE FROM {TABLE}")
        cur.execute(f"INSERT INTO {TABLE} {new}")
        cur.execute("INSERT OR REPLACE INTO case_meta VALUES (?, ?)", [KEY, state])
        cur.execute("COMMIT")
    except BaseException:
        cur.execute("ROLLBACK")
        raise
    return TABLE
