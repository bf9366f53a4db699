"""Spark: what needs the whole trail, not one task's files: pairing, de-duplication, persons.

Each Spark task loads its own files into its own scratch case, whose finalize pairs Vault
requests with responses and drops duplicate events only among those files. Across tasks the
same two steps run here, as the ingest runs them (:meth:`keytrail.ingest.vault.adapter.
VaultAdapter.finalize`, then :func:`keytrail.ingest.finalize.dedup_events`), with one shuffle
of the ids by ``event_uid``:

1. a Vault request-only event whose request id has a response (or a pair) anywhere is dropped;
   a response-only event takes the time of that request's first copy and remembers its file,
   so the pair's two lines are both copied out;
2. of the copies of one event, the first in load order (input file order, then record number)
   stays, as the ingest's de-duplication keeps the lowest ``(file_id, record_no)``.

On a local master whose driver ran pass 1a (:func:`keytrail.scope.spark_gate.hold_local`: the
ingest of one scratch case paired and de-duplicated its rows) the driver holds every loaded row as
Arrow and merges a gate round's rows itself, by DuckDB (:func:`merge_local`: :func:`merge` with a
``base``, the same first copy): at 1M a round's merge on Spark was 5-14 s of cold plans and jobs
(docs/performance.md, spark9 and spark10).

And for a human seed, :func:`person_events` brings to the driver every CloudTrail event of the
credentials the person/workload classifier may give a person, so it decides them there on the
same rows as the DuckDB engine does (:func:`person_events_local`: from the driver's rows).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keytrail.ingest.runner import DONE_STATUSES
from keytrail.scope.spark_arrow import from_arrow

if TYPE_CHECKING:
    from keytrail.store.case import CaseStore


def _person_marks(match: str) -> str:
    """Marks of a credential the classifier may call a person's (``graph.principal_class``):
    console, Identity Center, SAML, MFA, ``sourceIdentity``/``onBehalfOf`` (``human_id``).
    ``match``: the dialect's regular-expression search, ``{col}`` and ``{pattern}`` in it
    (Spark's ``RLIKE``, DuckDB's ``regexp_matches``; both find the pattern anywhere)."""
    sso = match.format(col="actor_uid", pattern="':assumed-role/AWSReservedSSO_'")
    mfa = match.format(
        col="raw", pattern="""'"(sessionCredentialFromConsole|mfaAuthenticated)"[ ]*:[ ]*"?true'"""
    )
    return (
        "action IN ('signin:ConsoleLogin', 'signin:SwitchRole')"
        f" OR {sso} OR actor_type = 'SAMLUser' OR human_id IS NOT NULL OR {mfa}"
    )


#: Events logged more than once up to which their ids are broadcast (about 100 bytes each).
_MAX_COPIES = 1_000_000


def merge(events: Any, files: list[str], base: Any = None) -> Any:
    """``events`` (one row per event per task, with ``path``, ``record_no``, ``entry``,
    ``request_path``) paired and de-duplicated across tasks; ``files`` in load order. Persisted
    and computed: the pairing runs once (counting the copies and keeping them read it twice).

    ``base``: rows this already merged, to which ``events`` adds a gate round's rows. A round
    loads ``Records`` files only, whose rows are CloudTrail events, so the Vault pairing of
    ``base`` stands as it is (it reads Vault rows only); the round's rows and ``base`` are
    de-duplicated together, which keeps the same first copy as merging every row again."""
    import pyarrow as pa
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    spark = events.sparkSession
    order = from_arrow(
        spark,
        pa.table(
            {"ord": pa.array(range(len(files)), pa.int32()), "path": pa.array(files, pa.string())}
        ),
    )
    load_order = ("ord", "path", "record_no")

    def ordered(frame: Any) -> Any:
        return frame.join(F.broadcast(order), "path", "left").fillna({"ord": len(files)})

    if base is not None:
        merged = ordered(base.unionByName(events)).persist(StorageLevel.MEMORY_AND_DISK)
        return _first_copies(merged, events.columns)
    ev = ordered(events)
    vault = ev.where(F.col("source") == "vault")  # the pairing's joins see Vault rows only
    answered = vault.where(F.col("entry").isin("response", "pair")).select("event_uid").distinct()
    requests = vault.where(F.col("entry") == "request").join(answered, "event_uid", "left_semi")
    first_request = (
        requests.withColumn(
            "_n", F.row_number().over(Window.partitionBy("event_uid").orderBy(*load_order))
        )
        .where(F.col("_n") == 1)
        .select(
            "event_uid",
            F.col("time").alias("_req_time"),
            F.col("path").alias("_req_path"),
            F.col("byte_offset").alias("_req_offset"),
        )
    )
    dropped = requests.select("event_uid", "path", "record_no").withColumn("_drop", F.lit(True))
    response = (F.col("entry") == "response") & F.col("_req_path").isNotNull()
    paired = (
        vault.join(dropped, ["event_uid", "path", "record_no"], "left")
        .where(F.col("_drop").isNull())
        .join(first_request, "event_uid", "left")
        .withColumn(
            "time", F.when(response, F.coalesce("_req_time", "time")).otherwise(F.col("time"))
        )
        .withColumn(
            "request_path",
            F.when(response, F.col("_req_path")).otherwise(F.col("request_path")),
        )
        .withColumn(
            "request_offset",
            F.when(response, F.col("_req_offset")).otherwise(F.col("request_offset")),
        )
        .withColumn("entry", F.when(response, F.lit("pair")).otherwise(F.col("entry")))
        .select(*ev.columns)
    )
    merged = (
        ev.where(F.col("source") != "vault")
        .unionByName(paired)
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    return _first_copies(merged, events.columns)


def merge_local(rows: Any, files: list[str], base: Any) -> Any:
    """:func:`merge` of a gate round's ``rows`` into ``base`` (both Arrow tables of
    :data:`keytrail.scope.spark_tasks.EVENT_COLS` and ``WHERE_COLS``, ``base`` merged already),
    by DuckDB on the driver, as an Arrow table: of the copies of one event the first in load
    order (``files``, then path and record number, as :func:`_first_copies`), the Vault pairing
    of ``base`` as it stands (a round loads ``Records`` files only). Only the ids the round
    brings are ranked; the rest of ``base`` is kept as it is."""
    import duckdb
    import pyarrow as pa

    order = pa.table(
        {"ord": pa.array(range(len(files)), pa.int32()), "path": pa.array(files, pa.string())}
    )
    cols = ", ".join(base.column_names)
    con = duckdb.connect()
    try:
        for name, table in (("kt_base", base), ("kt_round", rows), ("kt_order", order)):
            con.register(name, table)
        return con.sql(
            f"""
SELECT {cols} FROM kt_base ANTI JOIN (SELECT DISTINCT event_uid FROM kt_round) USING (event_uid)
UNION ALL
SELECT {cols} FROM (
  SELECT *, row_number() OVER (
      PARTITION BY event_uid
      ORDER BY coalesce(ord, {len(files)}) NULLS FIRST, path NULLS FIRST, record_no NULLS FIRST
    ) AS _n
  FROM (
    SELECT {cols} FROM kt_base SEMI JOIN kt_round USING (event_uid)
    UNION ALL SELECT {cols} FROM kt_round
  ) LEFT JOIN kt_order USING (path)
) WHERE _n = 1
"""
        ).to_arrow_table()
    finally:
        con.close()


def _first_copies(merged: Any, columns: list[str]) -> Any:
    """Of the copies of one event in ``merged`` (persisted, with ``ord``), the first in load
    order, persisted and computed; ``merged`` unpersisted."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    first = F.row_number().over(Window.partitionBy("event_uid").orderBy("ord", "path", "record_no"))
    # Only the ids go through the shuffle that finds the copies (a few dozen bytes per event,
    # not the whole row); the copies, few in a trail, are broadcast to keep the first in load
    # order. A trail of mostly copies takes the one full shuffle instead.
    twice = merged.groupBy("event_uid").count().where(F.col("count") > 1).select("event_uid")
    twice = twice.persist()
    if twice.count() > _MAX_COPIES:
        out = merged.withColumn("_n", first).where(F.col("_n") == 1).select(*columns)
    else:
        once = merged.join(F.broadcast(twice), "event_uid", "left_anti")
        copies = merged.join(F.broadcast(twice), "event_uid", "left_semi").withColumn("_n", first)
        kept = copies.where(F.col("_n") == 1).select(*once.columns)
        out = once.unionByName(kept).select(*columns)
    out = settle(out)
    merged.unpersist()
    twice.unpersist()
    return out


def settle(rows: Any) -> Any:
    """``rows`` computed and kept for the plans that read them again (the facts, the next
    round's merge)."""
    from pyspark import StorageLevel

    if rows.sparkSession.sparkContext.master.startswith("local"):
        # One JVM: its blocks cannot be lost to a dead executor, so the rows are kept without
        # their lineage. Every later plan over them (the facts, the next round's merge) is
        # analysed from a small plan, not from the whole pairing: at 1M that analysis, not
        # any job, was 5-10 s of a round's driver wall (docs/performance.md, spark5). Its
        # blocks stay until the session's cleaner drops them (a CLI scope ends its session).
        return rows.localCheckpoint(eager=True)
    rows = rows.persist(StorageLevel.MEMORY_AND_DISK)
    rows.count()
    return rows


def person_events(store: CaseStore, events: Any, cols: tuple[str, ...]) -> None:
    """Replace, in the driver's case, the summary rows of the credentials that carry a person
    mark (or were issued by SAML federation), and of the credentials that minted them (a
    decision may be inherited), by all their CloudTrail events (``cols``)."""
    import pyarrow as pa
    from pyspark.sql import functions as F

    ct = events.where((F.col("source") == "cloudtrail") & F.col("credential_id").isNotNull())
    marks = _person_marks("{col} RLIKE {pattern}")
    marked = {r[0] for r in ct.where(marks).select("credential_id").distinct().collect()}
    creds = _person_creds(store, marked)
    if not creds:
        return
    rows = [
        tuple(r[c] for c in cols)
        for r in ct.where(F.col("credential_id").isin(creds)).select(*cols).collect()
    ]
    _person_rows(store, creds, pa.table({c: [r[i] for r in rows] for i, c in enumerate(cols)}))


def person_events_local(store: CaseStore, events: Any, cols: tuple[str, ...]) -> None:
    """:func:`person_events` from the driver's rows (``events``: an Arrow table,
    :func:`merge_local`), by DuckDB in the driver's case."""
    con = store.con
    con.register("_kt_rows", events)
    try:
        ct = "FROM _kt_rows WHERE source = 'cloudtrail' AND credential_id IS NOT NULL"
        marks = _person_marks("regexp_matches({col}, {pattern})")
        marked = {
            r[0]
            for r in con.execute(f"SELECT DISTINCT credential_id {ct} AND ({marks})").fetchall()
        }
        creds = _person_creds(store, marked)
        if creds:
            got = con.sql(
                f"SELECT {', '.join(cols)} {ct} AND list_contains($c, credential_id)",
                params={"c": creds},
            ).to_arrow_table()
            _person_rows(store, creds, got)
    finally:
        con.unregister("_kt_rows")


def _person_creds(store: CaseStore, marked: set[str]) -> list[str]:
    """The credentials :func:`person_events` brings all events of: the ``marked`` ones, those
    SAML or web-identity federation issued, and the credentials that minted them."""
    con = store.con
    marked |= {
        str(r[0])
        for r in con.execute(
            """SELECT i.credential_id FROM credential_issues i JOIN events e USING (event_uid)
               WHERE e.action IN ('sts:AssumeRoleWithSAML', 'sts:AssumeRoleWithWebIdentity')"""
        ).fetchall()
    }
    parents = con.execute(
        "SELECT DISTINCT src FROM _kt_mint WHERE list_contains($c, dst)", {"c": sorted(marked)}
    ).fetchall()
    return sorted(marked | {str(r[0]) for r in parents})


def _person_rows(store: CaseStore, creds: list[str], t_person: Any) -> None:
    """The summary rows of ``creds`` in the driver's case replaced by their events
    (``t_person``, an Arrow table of the case's event columns)."""
    con = store.con
    con.execute(
        "DELETE FROM events WHERE source = 'cloudtrail' AND list_contains($c, credential_id)"
        " AND starts_with(event_uid, 'scope:summary:')",
        {"c": creds},
    )
    con.register("_kt_person", t_person)
    try:
        con.execute(
            f"INSERT INTO events ({', '.join(t_person.column_names)}) SELECT * FROM _kt_person"
            " WHERE event_uid NOT IN (SELECT event_uid FROM events)"
        )
    finally:
        con.unregister("_kt_person")


def same_bytes(inputs: list[dict[str, Any]], order: list[str]) -> list[dict[str, Any]]:
    """A file whose bytes an earlier file (in load order) already has is not read again by the
    ingest (``already-ingested``); two tasks do not know that of each other's files."""
    rank = {p: i for i, p in enumerate(order)}
    seen: set[str] = set()
    out = []
    for r in sorted(inputs, key=lambda r: (rank.get(r["path"], len(rank)), r["path"])):
        if r["sha256"] and r["sha256"] in seen and r["status"] in DONE_STATUSES:
            r = {
                **{k: None for k in r},
                "path": r["path"],
                "bytes": r["bytes"],
                "sha256": r["sha256"],
                "status": "already-ingested",
                "records": 0,
                "rejected": 0,
                "note": "same SHA-256 already in the case",
            }
        seen.add(r["sha256"])
        out.append(r)
    return sorted(out, key=lambda r: r["path"])
