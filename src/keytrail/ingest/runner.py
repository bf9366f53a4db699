"""The ingest driver: paths in, a consistent case out.

Per file: hash (SHA-256; a file already loaded is a no-op), sniff by content, then
load inside one transaction together with its ``evidence`` row, so an interrupted
ingest leaves only whole files behind and re-running it completes the job. After
the last file, :func:`keytrail.ingest.finalize.finalize` de-duplicates and rebuilds
the derived tables in bulk.

Overlap: a closed batch whose adapter reads ahead (:meth:`SourceAdapter.read_ahead`; CloudTrail
``Records`` files) is read on a worker thread while the batch before it is written, with DuckDB
on one thread per query meanwhile (the two streams fill the two cores). A batch closed while
nothing waits to be written (the first, or one after a file of another kind) would leave the
writer idle for its whole read: its files are read in two halves of about half the bytes, one on
each core (:class:`~keytrail.ingest.base.ReadAheads`), and written as one batch. Loads still
happen one batch at a time, in plan order, each in its own transaction.

Isolation (docs/security.md, "Ingest bounds"): a batch whose load raises is rolled back and
its files are loaded again one per transaction, so only the file that breaks an adapter is
``failed`` and every other file, before or after, loads. Paths that are not regular readable
files (symlink loops, dangling links, FIFOs, sockets, devices, unreadable files) are
``skipped`` with the reason, never opened for reading. A failure to write the case (disk full,
file size limit, I/O error) stops the ingest with :class:`keytrail.errors.CaseWriteError`
(exit 4): the open transaction is rolled back and the case keeps every file committed before.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from keytrail.ingest import provenance, sniff
from keytrail.ingest.base import (
    MAX_RECORD_BYTES,
    READ_AHEAD_DB,
    ReadAheadHandle,
    ReadAheads,
    SourceAdapter,
    read_sample,
)
from keytrail.ingest.batch_load import (
    FileResult,
    Planned,
    load_batch,
    record_provenance,
    record_skipped,
    record_unusable,
    writing,
)
from keytrail.ingest.finalize import finalize
from keytrail.ingest.paths import expand_paths, file_size
from keytrail.store.case import CaseStore

#: Statuses that make a re-ingest of the same bytes a no-op.
DONE_STATUSES = ("loaded", "partial", "digest")


@dataclass
class Progress:
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    records: int
    rejected: int
    elapsed: float
    current: str | None = None


@dataclass
class IngestSummary:
    case: str
    files: list[FileResult] = field(default_factory=list)
    elapsed: float = 0.0
    events_in_case: int = 0

    @property
    def loaded_files(self) -> int:
        return sum(1 for f in self.files if f.status in ("loaded", "partial", "digest"))

    @property
    def records(self) -> int:
        return sum(f.records for f in self.files)

    @property
    def rejected(self) -> int:
        return sum(f.rejected for f in self.files)

    def as_dict(self) -> dict[str, Any]:
        by_status: dict[str, int] = {}
        for f in self.files:
            by_status[f.status] = by_status.get(f.status, 0) + 1
        return {
            "case": self.case,
            "files": [asdict(f) for f in self.files],
            "files_by_status": by_status,
            "records": self.records,
            "rejected": self.rejected,
            "events_in_case": self.events_in_case,
            "elapsed_seconds": round(self.elapsed, 3),
        }


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def halves(items: list[Planned]) -> list[list[Planned]]:
    """``items`` as two runs of files of about half the bytes each (one run: a single file)."""
    if len(items) < 2:
        return [items]
    half, run, cut = sum(p.size for p in items) / 2, 0, 1
    for cut, item in enumerate(items, 1):
        run += item.size
        if run >= half:
            break
    cut = min(cut, len(items) - 1)
    return [items[:cut], items[cut:]]


def ingest(
    case_path: str | Path,
    paths: Iterable[str | Path],
    *,
    inventory: Iterable[str | Path] = (),
    progress: Callable[[Progress], None] | None = None,
    max_record_bytes: int = MAX_RECORD_BYTES,
    graph: bool = True,
    substitutes: dict[str, type[SourceAdapter]] | None = None,
    loaded: Callable[[CaseStore, IngestSummary], None] | None = None,
    loading: Callable[[type[SourceAdapter]], None] | None = None,
) -> IngestSummary:
    """Load ``paths`` (and inventory files) into the case at ``case_path``, creating it if needed.

    ``graph=False`` skips the derived tables (see :func:`keytrail.ingest.finalize.finalize`).
    ``substitutes`` maps an adapter ``NAME`` to a subclass that loads its files instead (``keytrail
    scope`` writes only the columns it reads: :mod:`keytrail.scope.narrow`). ``loaded``: called
    after the last file is loaded, before the finalize (a scope's agent logs, loaded in a child
    process, join the case there: :mod:`keytrail.scope.beside`). ``loading``: called with a batch's
    adapter before the batch loads (the scope's child is told its files once the runner's load
    moves past them).

    Raises:
        InputError: a path is missing (checked before the case is touched).
        CaseLockedError: another process is writing the case.
    """
    unusable: list[tuple[Path, str]] = []
    inv_files = expand_paths(inventory, unusable)
    # An inventory inside a walked directory is read once, as the inventory (not skipped as a
    # log first).
    files = [p for p in expand_paths(paths, unusable) if p not in set(inv_files)]
    start = time.monotonic()
    summary = IngestSummary(case=str(case_path))
    total_bytes = sum(file_size(p) for p in files + inv_files)
    done_bytes = 0
    store = CaseStore.open(case_path, read_only=False, create=True)
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="keytrail-read-ahead")
    pending: tuple[list[Planned], ReadAheadHandle | None] | None = None
    try:
        with writing(store):
            store.set_meta("finalized", "false")
            summary.files.extend(record_unusable(store, path, why) for path, why in unusable)
        con = store.con
        known = {
            row[0]
            for row in con.execute(
                "SELECT sha256 FROM evidence"
                " WHERE status IN ('loaded','partial','digest','provenance')"
            ).fetchall()
        }

        def report(current: str | None) -> None:
            if progress:
                progress(
                    Progress(
                        len(summary.files),
                        len(files) + len(inv_files),
                        done_bytes,
                        total_bytes,
                        summary.records,
                        summary.rejected,
                        time.monotonic() - start,
                        current,
                    )
                )

        row = con.execute("SELECT current_setting('threads')").fetchone()
        threads, one_thread = int(row[0]) if row else 1, False
        # Plan: hash and sniff every file, then load in adapter batches. A closed batch is read
        # ahead (SourceAdapter.read_ahead) while the batch before it is written; every other step
        # drains it first, so files still get their ids and rows in plan order.
        batch: list[Planned] = []

        def close_batch(last: bool = False) -> None:
            nonlocal pending
            if not batch:
                return
            closed = list(batch)
            batch.clear()
            adapter = closed[0].adapter
            reads = adapter.READS_AHEAD and any(p.codec is None for p in closed)
            # With nothing pending the writer has nothing to do but wait for this read (the first
            # batch, or one after a file of another kind): it is read in two halves, one per core.
            parts = halves(closed) if reads and pending is None else [closed]
            # The read of the batch about to be written was done before the writer needs it: the
            # reading thread had time to spare, so this read may take over work of the write.
            # Read and write then even out batch by batch, whichever is the heavier on a machine.
            # Two reads always take it: one with nothing pending (the writer only waits for it; in
            # halves it runs on both cores) and the last before a flush (its write then runs alone
            # on one core, while the read runs beside the write before it): work moved onto these
            # reads never lengthens the load.
            ready = pending is not None and pending[1] is not None and pending[1].ready()
            spare = ready or last or pending is None
            if reads:  # nothing runs in the background now: a pending read-ahead ran lean too
                lean(True)
            started: list[ReadAheadHandle] = []
            try:
                for part in parts:
                    plain = [(p.path, p.fmt, p.gzipped) for p in part if p.codec is None]
                    handle = adapter.read_ahead(con, plain, max_record_bytes, pool, spare)
                    if handle is not None:
                        started.append(handle)
                drain()
            except BaseException:
                for handle in started:  # a write failure or Ctrl-C: stop the reads just started
                    handle.close()
                raise
            if not reads:  # after the drain: no read-ahead is running any more
                lean(False)
            ahead = started[0] if len(started) == 1 else ReadAheads(started) if started else None
            pending = (closed, ahead)

        def lean(on: bool) -> None:
            # While batches are read ahead, the read and the write are two streams on the two
            # cores: one DuckDB thread per query then did the same work for about a quarter less
            # CPU (300k CloudTrail records). Other steps keep every thread. Only switched while
            # no read-ahead runs (DuckDB's thread count is the whole database's).
            nonlocal one_thread
            if on != one_thread:
                con.execute(f"SET threads = {1 if on else threads}")
                one_thread = on

        def drain() -> None:
            nonlocal done_bytes, pending
            if pending is None:
                return
            items, ahead = pending
            pending = None
            report(str(items[0].path))
            try:
                if loading is not None:
                    loading(items[0].adapter)
                with writing(store):
                    results = load_batch(store, items, max_record_bytes, ahead)
            finally:
                if ahead is not None:
                    ahead.close()
            summary.files.extend(results)
            done_bytes += sum(p.size for p in items)
            report(None)

        def flush() -> None:
            close_batch(last=True)
            drain()
            lean(False)  # nothing is pending or read ahead now

        from keytrail.ingest.inventory import InventoryAdapter

        plan: list[tuple[Path, type[SourceAdapter] | None]] = [(p, None) for p in files]
        plan += [(p, InventoryAdapter) for p in inv_files]
        for path, forced in plan:
            try:
                size = path.stat().st_size
                sha = sha256_file(path)
                sample = read_sample(path)
            except OSError as e:  # vanished or unreadable since the walk
                why = f"cannot read: {e.strerror or e}"
                flush()
                with writing(store):
                    summary.files.append(record_unusable(store, path, why))
                continue
            if sha in known:
                flush()
                summary.files.append(
                    FileResult(
                        str(path),
                        sha,
                        size,
                        "already-ingested",
                        note="same SHA-256 already in the case",
                    )
                )
                done_bytes += size
                continue
            known.add(sha)
            if forced is None and provenance.is_manifest(sample.head):
                flush()
                with writing(store):
                    summary.files.append(record_provenance(store, path, sha, size))
                done_bytes += size
                continue
            if forced is not None:
                found: tuple[type[SourceAdapter], str] | None = (
                    forced,
                    forced.sniff(sample) or "inventory",
                )
            else:
                found = sniff(sample)
            if found is None:
                flush()
                with writing(store):
                    summary.files.append(record_skipped(store, path, sha, size, sample.head))
                done_bytes += size
                continue
            adapter, fmt = found
            adapter = (substitutes or {}).get(adapter.NAME, adapter)
            if batch and (
                batch[0].adapter is not adapter
                or adapter.batch_full(len(batch), sum(p.size for p in batch), size)
            ):
                close_batch()
            batch.append(Planned(path, sha, size, adapter, fmt, sample))
        flush()
        if loaded is not None:
            with writing(store):
                loaded(store, summary)
        report("finalising")
        with writing(store):
            finalize(store, graph=graph)
        summary.events_in_case = int(store.scalar("SELECT count(*) FROM events") or 0)
    finally:
        if pending is not None and pending[1] is not None:
            pending[1].close()  # an error or Ctrl-C left a batch read ahead: stop it first
        pool.shutdown(wait=True)
        try:
            store.con.execute(f"DETACH DATABASE IF EXISTS {READ_AHEAD_DB}")
        except duckdb.Error:
            pass
        try:
            store.close()
        except duckdb.Error:  # after a write failure DuckDB may refuse the final checkpoint too
            pass
    summary.elapsed = time.monotonic() - start
    return summary
