"""Spark: the ingest's end-of-load bookkeeping over the whole trail, not one task's files.

Each Spark task loads its own files into its own scratch case, whose finalize pairs Vault
requests with responses and drops duplicate events only among those files. Across tasks the
same two steps run here, as the ingest runs them (:meth:`keytrail.ingest.vault.adapter.
VaultAdapter.finalize`, then :func:`keytrail.ingest.finalize.dedup_events`), with one shuffle by
``event_uid``:

1. a Vault request-only event whose request id has a response (or a pair) anywhere is dropped;
   a response-only event takes the time of that request's first copy and remembers its file,
   so the pair's two lines are both copied out;
2. of the copies of one event, the first in load order (input file order, then record number)
   stays, as the ingest's de-duplication keeps the lowest ``(file_id, record_no)``.
"""

from __future__ import annotations

from typing import Any


def merge(events: Any, files: list[str]) -> Any:
    """``events`` (one row per event per task, with ``path``, ``record_no``, ``entry``,
    ``request_path``) paired and de-duplicated across tasks; ``files`` in load order."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    spark = events.sparkSession
    order = spark.createDataFrame(list(enumerate(files)), "ord int, path string")
    ev = events.join(F.broadcast(order), "path", "left").fillna({"ord": len(files)})
    load_order = ("ord", "path", "record_no")
    vault = F.col("source") == "vault"
    answered = (
        ev.where(vault & F.col("entry").isin("response", "pair")).select("event_uid").distinct()
    )
    requests = ev.where(vault & (F.col("entry") == "request")).join(
        answered, "event_uid", "left_semi"
    )
    first_request = (
        requests.withColumn(
            "_n", F.row_number().over(Window.partitionBy("event_uid").orderBy(*load_order))
        )
        .where(F.col("_n") == 1)
        .select("event_uid", F.col("time").alias("_req_time"), F.col("path").alias("_req_path"))
    )
    dropped = requests.select("event_uid", "path", "record_no").withColumn("_drop", F.lit(True))
    response = vault & (F.col("entry") == "response") & F.col("_req_path").isNotNull()
    paired = (
        ev.join(dropped, ["event_uid", "path", "record_no"], "left")
        .where(F.col("_drop").isNull())
        .join(first_request, "event_uid", "left")
        .withColumn(
            "time", F.when(response, F.coalesce("_req_time", "time")).otherwise(F.col("time"))
        )
        .withColumn(
            "request_path",
            F.when(response, F.col("_req_path")).otherwise(F.col("request_path")),
        )
        .withColumn("entry", F.when(response, F.lit("pair")).otherwise(F.col("entry")))
    )
    first = F.row_number().over(Window.partitionBy("event_uid").orderBy(*load_order))
    return paired.withColumn("_n", first).where(F.col("_n") == 1).select(*events.columns)
