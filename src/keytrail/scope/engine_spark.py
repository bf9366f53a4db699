"""The Spark engine: the same projection, closure and copy, with the trail read by Spark tasks.

Pass 1 (the whole trail, once): the ``binaryFile`` source hands each task whole files from any
path Spark reads (local, ``s3a://``, ``hdfs://``, ``abfss://``); the task loads them with the
ingest adapters into a scratch DuckDB case (:func:`keytrail.scope.project.project`, the DuckDB
engine's code) and returns, as Arrow batches (``mapInArrow``: no per-event Python objects), one
small row per event (ids and location, no record text), the ``credential_issues`` rows and each
file's size, SHA-256 and status.
Driver: the issuance facts (issues and their events, CloudTrail events under Vault-made names)
and one row per distinct (credential, principal, human, agent) go into a DuckDB case, where
:mod:`keytrail.scope.closure` resolves the seeds and walks the closure: the same SQL.
Selection: a Spark filter of the event rows by the closure (broadcast).
Pass 2 (only the files that hold a kept record): tasks copy the records out, CloudTrail texts by
the adapter's bulk scan, lines at the byte offsets pass 1 found (:mod:`keytrail.scope.output`);
the driver writes them and the manifest. What tasks run is :mod:`keytrail.scope.spark_tasks`.
Between pass 1 and the facts: Vault request/response pairing and de-duplication across the
tasks' files (:mod:`keytrail.scope.spark_merge`, one shuffle of the ids by ``event_uid``).
"""

from __future__ import annotations

import os
import pickle
import sys
import tempfile
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keytrail.errors import InputError, UsageError
from keytrail.ingest.finalize import dedup_events
from keytrail.ingest.paths import expand_paths
from keytrail.ingest.runner import ingest
from keytrail.scope import closure as clo
from keytrail.scope import manifest, output
from keytrail.scope.engine_duckdb import WINDOW, ScopeResult, check_out, prepare_out
from keytrail.scope.project import file_rows
from keytrail.scope.spark_merge import merge, person_events, same_bytes
from keytrail.scope.spark_tasks import (
    EVENT_COLS,
    PASS1_DDL,
    WHERE_COLS,
    Want,
    extract,
    local_path,
    project_arrow,
)
from keytrail.store.case import CaseStore

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

_REMOTE = (
    "s3a://",
    "s3://",
    "s3n://",
    "hdfs://",
    "abfss://",
    "abfs://",
    "gs://",
    "wasbs://",
    "dbfs:/",
)


def _inputs(paths: Sequence[str | Path], inventory: Sequence[str | Path]) -> list[str]:
    """Input files (local folders walked like ingest does; an inventory file is not a log)."""
    local = [str(p) for p in paths if not str(p).startswith(_REMOTE)]
    inv = set(expand_paths(inventory))
    return [str(p) for p in expand_paths(local) if p not in inv] + [
        str(p) for p in paths if str(p).startswith(_REMOTE)
    ]


def _spark(master: str | None) -> Any:
    try:
        from pyspark.sql import SparkSession
    except ImportError as e:
        raise UsageError(
            "--engine spark needs PySpark: pip install 'keytrail[spark]' (and Java 17)"
        ) from e
    builder = SparkSession.builder.appName("keytrail-scope")
    # Under spark-submit (or inside a running session) the master is already chosen.
    submitted = "PYSPARK_GATEWAY_PORT" in os.environ or SparkSession.getActiveSession() is not None
    if master:
        builder = builder.master(master)
    elif not submitted:
        builder = builder.master(master := "local[*]")
    if master and master.startswith("local") and not submitted:
        # Local tasks must run this interpreter (the one keytrail is installed in), not python3;
        # the local JVM is driver and executor at once (persisted rows included): 1 GB is tight.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        memory = os.environ.get("KEYTRAIL_SPARK_MEMORY", "3g")
        builder = builder.config("spark.driver.memory", memory)
        # Spark's 200 shuffle partitions are 200 tasks per shuffle stage: on a few local cores
        # the task overhead, not the data, made the run (a cluster keeps its own setting).
        builder = builder.config("spark.sql.shuffle.partitions", "8")
    return builder.getOrCreate()


def _ntz(t: datetime | None) -> Any:
    """A window bound as the events' ``timestamp_ntz`` (UTC wall time, as DuckDB stores it):
    whatever the Python or session time zone, no shift. No bound: a condition that holds."""
    from pyspark.sql import functions as F

    if t is None:
        return F.col("time")
    if t.tzinfo is not None:
        t = t.astimezone(UTC).replace(tzinfo=None)
    return F.lit(t.isoformat(sep=" ")).cast("timestamp_ntz")


def _driver_case(
    scratch: Path,
    inventory: Sequence[str | Path],
    inputs: list[dict[str, Any]],
    issues: list[tuple[Any, ...]],
    events: list[tuple[Any, ...]],
) -> CaseStore:
    """The driver's DuckDB case: inventory (its files join ``inputs``), issues, needed events."""
    import pyarrow as pa

    summary = ingest(scratch, [], inventory=inventory, graph=False)
    inputs += file_rows(summary)
    store = CaseStore.open(scratch, read_only=False)
    con = store.con
    names = [r[0] for r in con.execute("DESCRIBE credential_issues").fetchall()]
    if issues:
        t_issues = pa.table({n: [r[i] for r in issues] for i, n in enumerate(names)})  # noqa: F841
        con.execute("INSERT INTO credential_issues SELECT * FROM t_issues")
    if events:
        cols = enumerate(EVENT_COLS)
        t_events = pa.table({n: [r[i] for r in events] for i, n in cols})  # noqa: F841
        con.execute(f"INSERT INTO events ({', '.join(EVENT_COLS)}) SELECT * FROM t_events")
    from keytrail.graph.derive import mint_facts

    dedup_events(store)  # issues of one call logged in files two tasks read
    mint_facts(con)
    return store


def scope_spark(
    out: str | Path,
    paths: Sequence[str | Path],
    seeds: Sequence[str],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    inventory: Sequence[str | Path] = (),
    master: str | None = None,
) -> ScopeResult:
    """:func:`keytrail.scope.engine_duckdb.scope_duckdb` on Spark (same arguments, same output)."""
    if not seeds:
        raise UsageError("give at least one --seed")
    check_out(out)
    files = _inputs(paths, inventory)
    if not files:
        raise InputError("no input files under the given paths")
    spark = _spark(master)
    sc = spark.sparkContext
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    # A few tasks per core, so one slow file does not leave the other cores idle (unless the
    # session sets its own split: the tests give each file its own task).
    conf = spark.conf
    if conf.get("spark.sql.files.minPartitionNum", None) is None:
        conf.set("spark.sql.files.minPartitionNum", str(4 * sc.defaultParallelism))
    # Pass 1 hands Arrow batches to Spark: turning a million Python rows into a DataFrame
    # cost 30 s of the 1M run (docs/performance.md).
    raw = spark.read.format("binaryFile").load(files)
    proj = raw.mapInArrow(project_arrow, PASS1_DDL).persist(StorageLevel.MEMORY_AND_DISK)
    proj.count()
    small = proj.where(F.col("kind") != "event").select("kind", "payload").collect()
    inputs = same_bytes(
        [pickle.loads(r["payload"]) for r in small if r["kind"] == "file"],
        [local_path(f) for f in files],
    )
    issues = [pickle.loads(r["payload"]) for r in small if r["kind"] == "issue"]
    per_task = proj.where(F.col("kind") == "event").select(*EVENT_COLS, *WHERE_COLS)
    events = merge(per_task, [local_path(f) for f in files]).persist(StorageLevel.MEMORY_AND_DISK)
    events.count()
    proj.unpersist()
    issue_uids = spark.createDataFrame(
        [(str(i[3]),) for i in issues] or [("",)], "event_uid string"
    )
    seedset = list(seeds)
    keep = (F.col("actor_name").like("vault-%") | F.col("actor_uid").like("%vault-%")) & (
        F.col("source") == "cloudtrail"
    )
    # The Vault AWS name match joins on a name's stem and compares the issue time with the last
    # use: the first and the last event per (key, name) decide it, so only those go to the
    # driver (at 1M events sending all of them ran the driver out of heap). The one difference
    # from the DuckDB engine: a Vault AWS link's evidence cites those events, not the first 100.
    by_name = Window.partitionBy("credential_id", "actor_name", "actor_uid")
    first = F.row_number().over(by_name.orderBy("time", "event_uid"))
    last = F.row_number().over(by_name.orderBy(F.col("time").desc(), F.col("event_uid").desc()))
    named = (
        events.where(keep)
        .withColumn("_first", first)
        .withColumn("_last", last)
        .where((F.col("_first") == 1) | (F.col("_last") == 1))
        .select(*EVENT_COLS, *WHERE_COLS)
    )
    facts = events.join(F.broadcast(issue_uids), "event_uid", "left_semi").union(named)
    people = (
        events.where(
            F.col("credential_id").isNotNull()
            | F.col("human_id").isNotNull()
            | F.col("agent_id").isNotNull()
            | F.col("actor_uid").isin(seedset)
        )
        .groupBy("source", "credential_id", "actor_uid", "human_id", "agent_id")
        .agg(F.min("time").alias("time"))
    )
    fact_rows = [
        tuple(r[c] for c in EVENT_COLS) for r in facts.dropDuplicates(["event_uid"]).collect()
    ]
    people_rows = [
        tuple(
            {
                "event_uid": f"scope:summary:{i}",
                "source": r["source"],
                "time": r["time"],
                "credential_id": r["credential_id"],
                "actor_uid": r["actor_uid"],
                "human_id": r["human_id"],
                "agent_id": r["agent_id"],
            }.get(c)
            for c in EVENT_COLS
        )
        for i, r in enumerate(people.collect())
    ]
    with tempfile.TemporaryDirectory(prefix="keytrail-scope-") as tmp:
        store = _driver_case(
            Path(tmp) / "driver.duckdb", inventory, inputs, issues, fact_rows + people_rows
        )
        try:
            if clo.maybe_human(store, seedset):
                person_events(store, events, EVENT_COLS)
            resolved = clo.resolve_seeds(store, seedset)
            members = clo.closure(store)
            lineage = [
                r[0]
                for r in store.con.execute(
                    clo.selection_sql(WINDOW)
                    + " EXCEPT SELECT event_uid FROM events WHERE starts_with(event_uid, "
                    "'scope:summary:')",
                    {"since": since, "until": until},
                ).fetchall()
            ]
            creds = [c["credential_id"] for c in members]
            users = [
                r[0] for r in store.con.execute("SELECT agent_id FROM _kt_scope_users").fetchall()
            ]
        finally:
            store.close()
    dest = prepare_out(out)
    in_window = F.col("time").isNull() | (
        (F.col("time") >= _ntz(since)) & (F.col("time") <= _ntz(until))
    )
    chosen = events.where(
        (
            (
                F.col("credential_id").isin(creds)
                | ((F.col("source") == "agent") & F.col("agent_id").isin(users))
            )
            & in_window
        )
        | F.col("event_uid").isin(lineage)
    )
    hits = chosen.select("event_uid", "source", *WHERE_COLS).collect()
    wanted: dict[str, list[Want]] = {}
    counts_out: dict[str, int] = {}
    for r in hits:
        hit = (r["event_uid"], r["source"], r["record_no"], r["format"])
        wanted.setdefault(r["path"], []).append((*hit, r["byte_offset"]))
        if r["request_offset"] is not None:  # a Vault pair's request line, maybe in another file
            wanted.setdefault(r["request_path"] or r["path"], []).append(
                (*hit, r["request_offset"])
            )
        counts_out[r["source"]] = counts_out.get(r["source"], 0) + 1
    docs: list[tuple[str, str, int, bytes]] = []
    if wanted:
        hit_files = [f for f in files if local_path(f) in wanted or f in wanted]
        docs = sc.binaryFiles(",".join(hit_files)).mapPartitions(extract(wanted)).collect()
    events.unpersist()
    outputs = output.write(dest, sorted(docs))  # one file's documents per task, any order
    doc = manifest.build(
        engine="spark",
        seeds=[s.as_dict() for s in resolved],
        since=since,
        until=until,
        closure=members,
        inputs=inputs,
        counts_out=counts_out,
        outputs=outputs,
        extra={"spark": {"master": sc.master, "version": spark.version}},
    )
    manifest.write(dest, doc)
    return ScopeResult(dest, doc)
