"""What the Spark engine's driver case needs of the merged events: one SQL, two engines.

The driver walks the closure in a DuckDB case (:mod:`keytrail.scope.closure`) that holds not
every event but, of the merged event rows (:data:`keytrail.scope.spark_tasks.EVENT_COLS`):

- the issuing events (of the ``credential_issues`` rows);
- the first and the last CloudTrail event per (key, name) of a Vault-made name: the Vault AWS
  name match joins on a name's stem and compares the issue time with the last use, so only those
  two decide it (at 1M events sending all of them ran the driver out of heap). The one
  difference from the DuckDB engine: a Vault AWS link's evidence cites those events, not the
  first 100;
- one summary row per (source, credential, principal, human, agent), named by
  :data:`SUMMARY` and the id of the group's first event (a timed one before any untimed; the
  manifest cites that event), with the group's first time.

:func:`facts_sql` says it once, in SQL that Spark and DuckDB both read the same way (the null
order of every window spelled out; a group's first event by an aggregate, not a sort): Spark
runs it over the merged rows of a round (:func:`spark_facts`), DuckDB over the rows of the
driver's own pass 1a (:func:`duckdb_facts`, :func:`keytrail.scope.spark_gate.hold_local`), so
Spark plans no job for round 0's facts.
The merged rows hold one row per ``event_uid`` (the ingest's or the merge's de-duplication): an
issuing event that is also a name's first or last is one row (``UNION``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keytrail.scope.spark_tasks import EVENT_COLS

if TYPE_CHECKING:
    from collections.abc import Sequence

#: The driver's one row per (source, credential, principal, human, agent) is named by this and
#: the id of the group's first event (the manifest's evidence cites that event).
SUMMARY = "scope:summary:"

_GROUP = ("source", "credential_id", "actor_uid", "human_id", "agent_id")
_NAME = "credential_id, actor_name, actor_uid"


def _summary_col(c: str) -> str:
    if c == "event_uid":
        return f"concat('{SUMMARY}', event_uid) AS event_uid"
    if c in (*_GROUP, "time"):
        return c
    return f"CAST(NULL AS STRING) AS {c}"


def facts_sql(events: str, issues: str, seeds: str, *, struct: str) -> str:
    """The facts over the tables (or Spark's ``{name}`` placeholders) ``events`` (the merged
    rows), ``issues`` (column ``event_uid``: the issuing events' ids) and ``seeds`` (column
    ``seed``). ``struct``: the dialect's name of the function that makes an unnamed struct
    (Spark's ``struct``, DuckDB's ``row``; both order structs field by field, a null first)."""
    cols = ", ".join(EVENT_COLS)
    group = ", ".join(_GROUP)
    return f"""
SELECT {cols} FROM {events} WHERE event_uid IN (SELECT event_uid FROM {issues})
UNION
SELECT {cols} FROM (
  SELECT {cols},
    row_number() OVER (PARTITION BY {_NAME}
                       ORDER BY time ASC NULLS FIRST, event_uid ASC NULLS FIRST) AS _first,
    row_number() OVER (PARTITION BY {_NAME}
                       ORDER BY time DESC NULLS LAST, event_uid DESC NULLS LAST) AS _last
  FROM {events}
  WHERE (actor_name LIKE 'vault-%' OR actor_uid LIKE '%vault-%') AND source = 'cloudtrail'
) WHERE _first = 1 OR _last = 1
UNION ALL
SELECT {", ".join(_summary_col(c) for c in EVENT_COLS)} FROM (
  SELECT {group}, min(time) AS time,
    min_by(event_uid, {struct}(time IS NULL, time, event_uid)) AS event_uid
  FROM {events}
  WHERE credential_id IS NOT NULL OR human_id IS NOT NULL OR agent_id IS NOT NULL
     OR actor_uid IN (SELECT seed FROM {seeds})
  GROUP BY {group}
)
"""


def _keys(issues: Sequence[tuple[Any, ...]], seeds: Sequence[str]) -> tuple[Any, Any]:
    """The issuing events' ids (a ``credential_issues`` row's fourth column) and the seeds, as
    Arrow tables."""
    import pyarrow as pa

    uids = pa.table({"event_uid": pa.array([str(i[3]) for i in issues], pa.string())})
    return uids, pa.table({"seed": pa.array(list(seeds), pa.string())})


def duckdb_facts(events: Any, issues: Sequence[tuple[Any, ...]], seeds: Sequence[str]) -> Any:
    """:func:`facts_sql` by DuckDB over ``events`` (an Arrow table with :data:`EVENT_COLS`), as an
    Arrow table."""
    import duckdb

    uids, seed_rows = _keys(issues, seeds)
    con = duckdb.connect()
    try:
        for name, table in (("kt_events", events), ("kt_issues", uids), ("kt_seeds", seed_rows)):
            con.register(name, table)
        return con.sql(
            facts_sql("kt_events", "kt_issues", "kt_seeds", struct="row")
        ).to_arrow_table()
    finally:
        con.close()


def spark_facts(events: Any, issues: Sequence[tuple[Any, ...]], seeds: Sequence[str]) -> Any:
    """:func:`facts_sql` by Spark over ``events`` (a DataFrame with :data:`EVENT_COLS`), as an
    Arrow table on the driver."""
    from keytrail.scope.spark_arrow import from_arrow, to_arrow

    spark = events.sparkSession
    uids, seed_rows = _keys(issues, seeds)
    sql = facts_sql("{events}", "{issues}", "{seeds}", struct="struct")
    return to_arrow(
        spark.sql(
            sql, events=events, issues=from_arrow(spark, uids), seeds=from_arrow(spark, seed_rows)
        )
    )
