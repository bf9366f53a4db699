"""The Spark engine: the same projection, closure and copy, with the trail read by Spark tasks.

Pass 1: the ``binaryFile`` source hands each task whole files from any path Spark reads (local,
``s3a://``, ``hdfs://``, ``abfss://``); the task loads them with the ingest adapters into a
scratch DuckDB case (:func:`keytrail.scope.project.project`, the DuckDB engine's code) and
returns, as Arrow batches (``mapInArrow``: no per-event Python objects), one small row per event
(ids and location, no record text), the ``credential_issues`` rows and each file's size, SHA-256
and status. With the needle gate (the default) the CloudTrail ``Records`` files are held back
and parsed only in the rounds that find a needle of the closure in them
(:mod:`keytrail.scope.spark_gate`); without it, every file at once.
Driver: the issuance facts (issues and their events, CloudTrail events under Vault-made names)
and one row per distinct (credential, principal, human, agent) (:mod:`keytrail.scope.facts`: one
SQL, run by Spark over the merged rows, by DuckDB over the driver's own pass 1a) go into a
DuckDB case, where
:mod:`keytrail.scope.closure` resolves the seeds and walks the closure: the same SQL.
Selection: a Spark filter of the event rows by the closure (broadcast); on a local master whose
driver ran pass 1a and so holds every merged row (:attr:`keytrail.scope.spark_gate.SparkGate.
on_driver`), the same filter by DuckDB there (:func:`_hits_local`).
Pass 2 (only the files that hold a kept record): tasks copy the records out, CloudTrail texts by
the adapter's bulk scan, lines at the byte offsets pass 1 found (:mod:`keytrail.scope.output`);
the driver writes them and the manifest. What tasks run is :mod:`keytrail.scope.spark_tasks`.
Between pass 1 and the facts: Vault request/response pairing and de-duplication across the
tasks' files (:mod:`keytrail.scope.spark_merge`, one shuffle of the ids by ``event_uid``; a local
driver's pass 1a is one ingest that pairs and de-duplicates, and its driver merges each gate
round's rows by DuckDB, :func:`keytrail.scope.spark_merge.merge_local`: Spark then runs only
the rounds' search-and-project jobs, and pass 2 of more than :data:`DRIVER_COPY` files).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keytrail.errors import InputError, UsageError
from keytrail.ingest.finalize import dedup_events
from keytrail.ingest.paths import expand_paths
from keytrail.ingest.runner import ingest
from keytrail.scope import closure as clo
from keytrail.scope import manifest, output
from keytrail.scope.engine_duckdb import WINDOW, ScopeResult, check_out, prepare_out
from keytrail.scope.facts import SUMMARY, duckdb_facts, spark_facts
from keytrail.scope.project import file_rows
from keytrail.scope.spark_gate import Local, SparkGate, hold_local
from keytrail.scope.spark_merge import merge, merge_local, person_events, person_events_local
from keytrail.scope.spark_tasks import EVENT_COLS, WHERE_COLS, Want, extract, local_path
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


#: A local master's session (one JVM, a few cores, a job of seconds; a cluster keeps its own
#: settings, docs/scale.md "Spark"): measured at 1M on local[2] (docs/performance.md, spark4).
LOCAL_CONF = {
    # Spark's 200 shuffle partitions are 200 tasks per shuffle stage: on a few local cores the
    # task overhead, not the data, made the run.
    "spark.sql.shuffle.partitions": "4",
    # A job of a minute: the JIT's second (C2) compiler and the parallel collector's threads
    # cost more CPU than they save on a few cores.
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
    "spark.ui.enabled": "false",
    # Spark packs files into a task up to 128 MB (a file opening counted as 4 MB): at 1M the
    # Vault log and the agents' traces shared one task, the other core idle for half of pass 1.
    "spark.sql.files.maxPartitionBytes": "64m",
    "spark.sql.files.openCostInBytes": "1m",
    # Each pass names its files: past 32 paths Spark lists them in a job of one task per
    # path (300 tasks, 3-6 s a pass at 1M); the local driver stats them itself.
    "spark.sql.sources.parallelPartitionDiscovery.threshold": "1000000",
}


#: Up to this many files holding kept records, a local master's driver copies the records out
#: itself, not a job of a task per file: at 1M, 7 files (3 of them CloudTrail files to scan
#: again) were 0.4 CPU-s of work in a job of 2.4-4 s (docs/performance.md, spark6 and spark7).
DRIVER_COPY = 16


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
        for key, value in LOCAL_CONF.items():
            builder = builder.config(key, value)
    return builder.getOrCreate()


def _local(master: str | None) -> bool:
    """Whether :func:`_spark` gives a local master: the one asked for, else a running
    session's, else ``local[*]`` (unless under ``spark-submit``, whose master is not known
    before its session starts: a cluster's, maybe)."""
    if master:
        return master.startswith("local")
    if "PYSPARK_GATEWAY_PORT" in os.environ:
        return False
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        return False  # _spark says what is missing
    active = SparkSession.getActiveSession()
    return active is None or str(active.sparkContext.master).startswith("local")


#: A local master's driver runs pass 1a itself while the JVM starts (:func:`_driver_pass1`) up
#: to this many input bytes whatever its cores: d1m's 270 MB took it 6.8-8.3 s of one core,
#: about the JVM's start and first plan (docs/performance.md, spark7).
DRIVER_PASS1_BYTES = 512 << 20


def _cores(master: str | None) -> int:
    """The cores a local master's tasks run on (``local``, ``local[N]``, ``local[N,F]``,
    ``local[*]``; no master: ``local[*]``, as :func:`_spark` makes it)."""
    m = re.fullmatch(r"local(?:\[(\*|\d+)(?:,\d+)?\])?", master or "local[*]")
    if m is None or m.group(1) == "*":
        return os.cpu_count() or 1
    return int(m.group(1) or 1)


def _driver_pass1(master: str | None, files: list[str]) -> bool:
    """Whether the driver runs pass 1a itself (:func:`keytrail.scope.spark_gate.hold_local`):
    a local master over local files, and either a small trail or a master of at most two cores.
    On one core of the driver, pass 1a at 1M took 6.8 s alone where two tasks' job took 14.4 s
    after the JVM start; on a master of many cores the tasks share a large trail, and the
    driver's one core would be the slower path."""
    if not (_local(master) and all(f.startswith("/") for f in files)):
        return False
    if _cores(master) <= 2:
        return True
    size = 0
    for f in files:
        try:
            size += os.path.getsize(f)
        except OSError:  # gone since the walk: the projection says so, wherever it runs
            continue
    return size <= DRIVER_PASS1_BYTES


def _utc(t: datetime | None) -> datetime | None:
    """A window bound as the events' times are stored: UTC wall time, no time zone."""
    if t is not None and t.tzinfo is not None:
        return t.astimezone(UTC).replace(tzinfo=None)
    return t


def _ntz(t: datetime | None) -> Any:
    """A window bound as the events' ``timestamp_ntz`` (UTC wall time, as DuckDB stores it):
    whatever the Python or session time zone, no shift. No bound: a condition that holds."""
    from pyspark.sql import functions as F

    t = _utc(t)
    if t is None:
        return F.col("time")
    return F.lit(t.isoformat(sep=" ")).cast("timestamp_ntz")


#: What the selection brings of a kept event: what pass 2 needs to copy it out.
_HIT_COLS = ("event_uid", "source", *WHERE_COLS)


def _hits_local(
    store: CaseStore,
    events: Any,
    keep: tuple[list[str], list[str], list[str]],
    since: datetime | None,
    until: datetime | None,
) -> list[dict[str, Any]]:
    """The selection (the Spark filter in :func:`scope_spark`) by DuckDB over the driver's
    merged rows (``events``, an Arrow table): the events of the closure's credentials and the
    agents' own within the window, and the lineage events (``keep``: the three id lists)."""
    creds, users, lineage = keep
    con = store.con
    con.register("_kt_rows", events)
    try:
        cur = con.execute(
            f"""SELECT {", ".join(_HIT_COLS)} FROM _kt_rows
                WHERE ((list_contains($creds, credential_id)
                        OR (source = 'agent' AND list_contains($users, agent_id)))
                       AND (time IS NULL OR (time >= coalesce($since::TIMESTAMP, time)
                                             AND time <= coalesce($until::TIMESTAMP, time))))
                   OR list_contains($lineage, event_uid)""",
            {
                "creds": creds,
                "users": users,
                "lineage": lineage,
                "since": _utc(since),
                "until": _utc(until),
            },
        )
        return [dict(zip(_HIT_COLS, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.unregister("_kt_rows")


def _driver_case(
    scratch: Path, inventory: Sequence[str | Path]
) -> tuple[CaseStore, list[dict[str, Any]]]:
    """The driver's DuckDB case with the inventory (its files' rows join the manifest's)."""
    summary = ingest(scratch, [], inventory=inventory, graph=False)
    return CaseStore.open(scratch, read_only=False), file_rows(summary)


def _fill(store: CaseStore, issues: list[tuple[Any, ...]], events: Any) -> None:
    """The driver's case's issues and needed ``events`` (an Arrow table of :data:`EVENT_COLS`),
    as loaded so far (again after each round of the gate that loads rows), and the issuance
    facts over them."""
    import pyarrow as pa

    from keytrail.graph.derive import mint_facts

    con = store.con
    con.execute("DELETE FROM events")
    con.execute("DELETE FROM credential_issues")
    names = [r[0] for r in con.execute("DESCRIBE credential_issues").fetchall()]
    if issues:
        t_issues = pa.table({n: [r[i] for r in issues] for i, n in enumerate(names)})  # noqa: F841
        con.execute("INSERT INTO credential_issues SELECT * FROM t_issues")
    if events.num_rows:
        con.register("_kt_spark_facts", events)
        try:
            con.execute(
                f"INSERT INTO events ({', '.join(EVENT_COLS)}) "
                f"SELECT {', '.join(EVENT_COLS)} FROM _kt_spark_facts"
            )
        finally:
            con.unregister("_kt_spark_facts")
    dedup_events(store)  # issues of one call logged in files two tasks read
    mint_facts(con)


def _real_evidence(members: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The closure with a summary row's id in its evidence replaced by the id of the row's first
    event (an original record), as the DuckDB engine's evidence names only events."""
    out = []
    for m in members:
        cited = [e.removeprefix(SUMMARY) for e in m.get("evidence") or []]
        out.append({**m, "evidence": sorted(set(cited))} if m.get("evidence") else m)
    return out


def scope_spark(
    out: str | Path,
    paths: Sequence[str | Path],
    seeds: Sequence[str],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    inventory: Sequence[str | Path] = (),
    master: str | None = None,
    gate: bool = True,
) -> ScopeResult:
    """:func:`keytrail.scope.engine_duckdb.scope_duckdb` on Spark (same arguments, same output).

    ``gate``: pass 1 parses the CloudTrail ``Records`` files only when they hold a needle
    (:mod:`keytrail.scope.spark_gate`); ``False``: every file (the manifest has no ``gate``)."""
    if not seeds:
        raise UsageError("give at least one --seed")
    check_out(out)
    files = _inputs(paths, inventory)
    if not files:
        raise InputError("no input files under the given paths")
    seedset = list(seeds)
    with tempfile.TemporaryDirectory(prefix="keytrail-scope-") as tmp:
        # The session starts on a thread (a local JVM: seconds of about one core) while this
        # one fills the driver's case with the inventory (docs/performance.md, spark6).
        # On a local master over local files, with the gate, the driver runs pass 1a itself
        # meanwhile (spark_gate.hold_local: the CloudTrail files held, the others projected).
        early = gate and _driver_pass1(master, files)
        local: Local | None = None
        with ThreadPoolExecutor(1, thread_name_prefix="keytrail-spark-start") as pool:
            starting = pool.submit(_spark, master)
            store, inventory_rows = _driver_case(Path(tmp) / "driver.duckdb", inventory)
            try:
                if early:
                    local = hold_local(Path(tmp) / "pass1", files, seedset)
            except BaseException:
                store.close()
                raise
        try:
            spark = starting.result()
        except BaseException:
            store.close()
            raise
        sc = spark.sparkContext
        from pyspark.sql import functions as F

        # A few tasks per core, so one slow file does not leave the other cores idle (unless
        # the session sets its own split: the tests give each file its own task).
        conf = spark.conf
        if conf.get("spark.sql.files.minPartitionNum", None) is None:
            conf.set("spark.sql.files.minPartitionNum", str(4 * sc.defaultParallelism))
        # Pass 1 hands Arrow batches to Spark: turning a million Python rows into a DataFrame
        # cost 30 s of the 1M run (docs/performance.md).
        passes = SparkGate(spark, files, seedset, gated=gate)
        merged: list[Any] = []
        done = [0]  # the parts merged so far

        def refresh(parts: list[Any]) -> CaseStore:
            # A round's rows are merged into what is merged already (the Vault pairing once
            # per scope, not once per round: spark_merge.merge's ``base``).
            new = parts[done[0] :]
            done[0] = len(parts)
            if passes.on_driver:
                # pass 1a of the driver: one ingest merged its rows and DuckDB computed their
                # facts (hold_local); the driver holds them and merges each round's rows by
                # DuckDB: no Spark plan or job but the rounds' own
                if merged:
                    import pyarrow as pa

                    events = merge_local(pa.concat_tables(new), passes.order, merged[0])
                    facts = duckdb_facts(events, passes.issues, seedset)
                else:
                    assert local is not None and len(new) == 1
                    events, facts = new[0], local.facts
                merged[:] = [events]
                _fill(store, passes.issues, facts)
                return store
            rows = reduce(lambda a, b: a.unionByName(b), new)
            per_task = rows.where(F.col("kind") == "event").select(*EVENT_COLS, *WHERE_COLS)
            events = merge(per_task, passes.order, base=merged[0] if merged else None)
            facts = spark_facts(events, passes.issues, seedset)
            for m in merged:
                m.unpersist()
            merged[:] = [events]
            _fill(store, passes.issues, facts)
            return store

        try:
            passes.run(refresh, local if passes.in_place else None)
            (events,) = merged
            if not passes.on_driver:
                for part in passes.parts:
                    part.unpersist()
            if clo.maybe_human(store, seedset):
                people = person_events_local if passes.on_driver else person_events
                people(store, events, EVENT_COLS)
            resolved = clo.resolve_seeds(store, seedset)
            members = _real_evidence(clo.closure(store))
            lineage = [
                r[0]
                for r in store.con.execute(
                    clo.selection_sql(WINDOW)
                    + " EXCEPT SELECT event_uid FROM events WHERE starts_with(event_uid, $summary)",
                    {"since": since, "until": until, "summary": SUMMARY},
                ).fetchall()
            ]
            creds = [c["credential_id"] for c in members]
            users = [
                r[0] for r in store.con.execute("SELECT agent_id FROM _kt_scope_users").fetchall()
            ]
            hits = None
            if passes.on_driver:
                hits = _hits_local(store, events, (creds, users, lineage), since, until)
        finally:
            store.close()
    inputs = passes.inputs() + inventory_rows
    dest = prepare_out(out)
    if hits is None:
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
        hits = [r.asDict() for r in chosen.select(*_HIT_COLS).collect()]
        events.unpersist()
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
        # a task per file, up to one per file: Spark packs small files into one task (at 1M
        # the Vault log and the six other files in one 5 s task, a core idle)
        if passes.in_place and len(hit_files) <= DRIVER_COPY:
            # a local master's few files: the driver copies them out itself (the same code)
            docs = list(extract(wanted)((f, None) for f in hit_files))
        else:
            if passes.in_place:  # a local master's tasks read the files where they are
                files_rdd = sc.parallelize([(f, None) for f in hit_files], len(hit_files))
            else:
                files_rdd = sc.binaryFiles(",".join(hit_files), minPartitions=len(hit_files))
            docs = files_rdd.mapPartitions(extract(wanted)).collect()
        passes.read("pass 2", [local_path(f) for f in hit_files], len(hit_files))
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
        extra={
            **({"gate": passes.gate.as_dict()} if passes.gate is not None else {}),
            "spark": {"master": sc.master, "version": spark.version, "passes": passes.passes},
        },
    )
    manifest.write(dest, doc)
    return ScopeResult(dest, doc)
