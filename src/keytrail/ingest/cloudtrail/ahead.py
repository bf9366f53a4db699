"""Read and stage the next batch of ``Records`` files while the runner inserts the current one.

A CloudTrail batch costs two kinds of work: reading (gunzip, parsing each document, cutting out the
records, parsing each record with the field spec, every derived value: :func:`~keytrail.ingest.
cloudtrail.sql.stage_select`, then the batch's ``event_resources`` and ``credential_issues`` rows)
and writing (the masked inserts into the case and the commit). The
inserts run on one DuckDB thread (their source is one or two row groups), so done one after the
other the second core idled for most of the write. :class:`ReadAhead` runs the read of batch N+1
on a worker thread and its own DuckDB cursor (DuckDB releases the GIL) while the runner writes
batch N; the staged rows wait in a table of an in-memory database attached to the case
connection (:data:`keytrail.ingest.base.READ_AHEAD_DB`, never part of the case file), so the
writer's inserts read them in place.

Nothing about what is loaded changes: the scan and the staging are the same SQL as the one-batch
path (:func:`~keytrail.ingest.cloudtrail.adapter.bulk_read`, the same per-file retry of a batch the
scan refuses), the files it refuses are handed back to the tolerant reader at load time, and a
read-ahead that fails in any way is dropped and the batch is read the old way, inside its
transaction. File ids are given by the runner at load time; the staged ``file_id`` is the file's
index in the batch and :func:`~keytrail.ingest.cloudtrail.sql.insert_staged` maps it.

Memory: at most two batches are held (the one written and the one read ahead, or the two halves
of a first batch and the batch after it), each bounded by ``CloudTrailAdapter.BATCH_BYTES``; the
staged table lives in DuckDB's buffer pool, under the writer's memory limit.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import duckdb

from keytrail.ingest.base import READ_AHEAD_DB as AHEAD_DB
from keytrail.ingest.base import LoadContext
from keytrail.ingest.cloudtrail.sql import STAGED_MASKED, issues_sql, resources_sql, stage_select

if TYPE_CHECKING:
    from collections.abc import Callable
    from concurrent.futures import Executor, Future
    from pathlib import Path

    import pyarrow as pa

    #: :func:`keytrail.ingest.cloudtrail.adapter.bulk_read`: staged records and refused files.
    BulkRead = Callable[
        [duckdb.DuckDBPyConnection, list[LoadContext]], tuple[pa.Table | None, list[LoadContext]]
    ]

_names = itertools.count()


@dataclass
class Staged:
    """A batch read ahead: ``table`` holds the staged rows of ``paths`` (``file_id`` = index),
    ``resources`` and ``issues`` their ``event_resources`` and ``credential_issues`` rows
    (:func:`~keytrail.ingest.cloudtrail.sql.resources_sql`, :func:`~keytrail.ingest.cloudtrail.
    sql.issues_sql`; unmasked: the writer's inserts mask them like any other rows); ``premasked``
    the columns of ``table`` the read masked already (:data:`~keytrail.ingest.cloudtrail.sql.
    STAGED_MASKED` or none)."""

    table: str | None
    paths: list[str]
    refused: set[str] = field(default_factory=set)
    resources: str | None = None
    issues: str | None = None
    premasked: frozenset[str] = frozenset()


class ReadAhead:
    """One batch's ``Records`` files read and staged on ``pool``; :meth:`staged` waits for it."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        files: list[tuple[Path, bool]],
        max_record_bytes: int,
        pool: Executor,
        read: BulkRead,
        premask: bool = False,
    ) -> None:
        self._read = read
        self._premask = premask
        self._cur = con.cursor()  # its own connection: the writer's transaction is not touched
        self._cur.execute(f"ATTACH IF NOT EXISTS ':memory:' AS {AHEAD_DB}")
        self.table = f"{AHEAD_DB}.ct_{next(_names)}"
        self.resources, self.issues = f"{self.table}_res", f"{self.table}_iss"
        self.paths = [str(p) for p, _gz in files]
        ctxs = [
            LoadContext(
                self._cur, p, i, "cloudtrail-records", gz, max_record_bytes=max_record_bytes
            )
            for i, (p, gz) in enumerate(files)
        ]
        self._future: Future[Staged] = pool.submit(self._run, ctxs)

    def _run(self, ctxs: list[LoadContext]) -> Staged:
        table, refused = self._read(self._cur, ctxs)
        for ctx in ctxs:  # bulk_read refuses, never rejects; were one held, it is written here
            ctx.flush_rejects()
        staged = Staged(None, self.paths, {str(c.path) for c in refused})
        if table is not None and table.num_rows:
            self._cur.register("_kt_ahead_arrow", table)
            try:
                select = stage_select("_kt_ahead_arrow", premask=self._premask)
                self._cur.execute(f"CREATE TABLE {self.table} AS {select}")
            finally:
                self._cur.unregister("_kt_ahead_arrow")
            staged.table = self.table
            staged.premasked = STAGED_MASKED if self._premask else frozenset()
            # The batch's resource and issue rows too: they need only the staged rows, and computed
            # here they move a fifth of the writer's work (0.4 of ~2.2 CPU-s a batch) to the
            # reading core (at 1M events the writer then did 23.6 CPU-s, the reader 19.7).
            self._cur.execute(f"CREATE TABLE {self.resources} AS {resources_sql(self.table)}")
            self._cur.execute(f"CREATE TABLE {self.issues} AS {issues_sql(self.table)}")
            staged.resources, staged.issues = self.resources, self.issues
        return staged

    def ready(self) -> bool:
        return self._future.done()

    def staged(self) -> Staged | None:
        """The staged batch, or ``None`` when reading ahead failed (the caller reads it itself)."""
        try:
            return self._future.result()
        except (duckdb.Error, OSError, MemoryError):
            return None

    def close(self) -> None:
        """Stop the read if it still runs, wait for it, drop its table, close the cursor."""
        if not self._future.done():
            self._cur.interrupt()
        try:
            self._future.exception()  # waits; an error was either used or is moot now
            self._cur.execute(f"DROP TABLE IF EXISTS {self.table}")
            for table in (self.resources, self.issues):
                self._cur.execute(f"DROP TABLE IF EXISTS {table}")
        except duckdb.Error:
            pass
        finally:
            self._cur.close()
