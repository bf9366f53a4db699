"""One batch of files into the case: one transaction, its ``evidence`` rows, and isolation.

The runner (:mod:`keytrail.ingest.runner`) plans the files and overlaps the read of one batch
with the write of the one before; this module is the write. A batch's files get their
``evidence`` rows (status ``loading``) and their records in one transaction, then their final
status and counts, so an interrupted ingest leaves only whole files. A batch whose adapter
raises is rolled back and loaded again one file per transaction, so only the file that breaks
an adapter is ``failed``. A failure to write the case itself (disk full, I/O) is not an adapter
failure: :func:`writing` turns it into one :class:`~keytrail.errors.CaseWriteError` that stops
the ingest with every earlier file kept.

Files that load no records still get an ``evidence`` row saying why (:func:`record_skipped`,
:func:`record_unusable`, :func:`record_provenance`): nothing given to an ingest goes unlisted.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import duckdb

from keytrail.errors import CaseWriteError
from keytrail.ingest import provenance
from keytrail.ingest.base import (
    MAX_RECORD_BYTES,
    LoadContext,
    ReadAheadHandle,
    Sample,
    SourceAdapter,
    read_sample,
)
from keytrail.ingest.encoding import utf8_copy
from keytrail.store.case import CaseStore


@dataclass
class FileResult:
    path: str
    sha256: str
    bytes: int
    status: str  # loaded | partial | skipped | digest | failed | already-ingested
    source: str | None = None
    format: str | None = None
    records: int = 0
    rejected: int = 0
    skipped: int = 0
    note: str | None = None


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Planned:
    """A file the plan gives to an adapter: what the sniff found, then its load context."""

    __slots__ = ("adapter", "codec", "ctx", "fmt", "gzipped", "path", "sha", "size")

    def __init__(
        self,
        path: Path,
        sha: str,
        size: int,
        adapter: type[SourceAdapter],
        fmt: str,
        sample: Sample,
    ) -> None:
        self.path, self.sha, self.size, self.adapter, self.fmt = path, sha, size, adapter, fmt
        self.gzipped, self.codec = sample.gzipped, sample.codec
        self.ctx: LoadContext | None = None


def _next_file_id(store: CaseStore) -> int:
    # Not a DuckDB sequence: after a killed ingest a sequence can restart below ids that
    # committed rows already hold. The runner is the only writer, so max + 1 is safe.
    row = store.con.execute("SELECT coalesce(max(file_id), 0) + 1 FROM evidence").fetchone()
    return int(row[0]) if row else 1


def _insert_evidence(
    store: CaseStore,
    file_id: int,
    path: Path,
    sha: str,
    size: int | None,
    source: str | None,
    fmt: str | None,
    adapter: str | None,
    status: str,
    note: str | None,
) -> None:
    store.con.execute(
        "INSERT INTO evidence (file_id, path, sha256, bytes, source, format, adapter, status,"
        " records, rejected, ingested_at, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?, ?)",
        [file_id, str(path), sha, size, source, fmt, adapter, status, _now(), note],
    )


def record_skipped(store: CaseStore, path: Path, sha: str, size: int, head: bytes) -> FileResult:
    if not head.strip():
        why = "empty file"
    else:
        why = (
            "content matches no known format "
            "(CloudTrail, Vault audit, OTLP JSON, MCP, keytrail agent JSONL)"
        )
    _insert_evidence(store, _next_file_id(store), path, sha, size, None, None, None, "skipped", why)
    return FileResult(str(path), sha, size, "skipped", note=why)


def _item_evidence(store: CaseStore, item: Planned, status: str, note: str | None) -> int:
    """The ``evidence`` row of a planned file under the next file id (its adapter's source,
    format and name); returns the id."""
    file_id = _next_file_id(store)
    adapter = item.adapter
    _insert_evidence(
        store,
        file_id,
        item.path,
        item.sha,
        item.size,
        adapter.SOURCE,
        item.fmt,
        adapter.NAME,
        status,
        note,
    )
    return file_id


def _batch_evidence(store: CaseStore, batch: list[Planned]) -> list[int]:
    """The ``evidence`` rows (status ``loading``) of a batch's files under the next file ids, in
    one statement: the same rows as :func:`_item_evidence` file by file (a scope holds about 300
    CloudTrail files at 1M events, whose two statements each cost about 0.3 CPU-s in all)."""
    first = _next_file_id(store)
    ids = list(range(first, first + len(batch)))
    store.con.execute(
        "INSERT INTO evidence (file_id, path, sha256, bytes, source, format, adapter, status,"
        " records, rejected, ingested_at, note) SELECT unnest($id), unnest($path), unnest($sha),"
        " unnest($size), unnest($source), unnest($fmt), unnest($adapter), 'loading', 0, 0,"
        " unnest($at), NULL",
        {
            "id": ids,
            "path": [str(i.path) for i in batch],
            "sha": [i.sha for i in batch],
            "size": [i.size for i in batch],
            "source": [i.adapter.SOURCE for i in batch],
            "fmt": [i.fmt for i in batch],
            "adapter": [i.adapter.NAME for i in batch],
            "at": [_now() for _ in batch],
        },
    )
    return ids


def _batch_counts(store: CaseStore, batch: list[Planned], results: list[FileResult]) -> None:
    """Each loaded file's final status, counts and note (``results``, in ``batch``'s order), in
    one statement (one ``UPDATE`` per file cost as much as its ``INSERT``:
    :func:`_batch_evidence`)."""
    store.con.execute(
        "UPDATE evidence SET status = u.status, records = u.records, rejected = u.rejected,"
        " skipped = u.skipped, note = u.note FROM (SELECT unnest($id) AS file_id,"
        " unnest($status) AS status, unnest($records) AS records,"
        " unnest($rejected) AS rejected, unnest($skipped) AS skipped,"
        " unnest($note::VARCHAR[]) AS note) u WHERE evidence.file_id = u.file_id",
        {
            "id": [i.ctx.file_id for i in batch if i.ctx is not None],
            "status": [r.status for r in results],
            "records": [r.records for r in results],
            "rejected": [r.rejected for r in results],
            "skipped": [r.skipped for r in results],
            "note": [r.note for r in results],
        },
    )


def record_provenance(store: CaseStore, path: Path, sha: str, size: int) -> FileResult:
    try:
        note, status = provenance.record(store, path, sha), "provenance"
    except (OSError, ValueError) as e:
        note, status = f"unreadable keytrail scope manifest: {e}", "skipped"
    source = "scope" if status == "provenance" else None
    _insert_evidence(
        store,
        _next_file_id(store),
        path,
        sha,
        size,
        source,
        "keytrail-scope-manifest",
        None,
        status,
        note,
    )
    return FileResult(str(path), sha, size, status, note=note)


def is_write_failure(e: BaseException) -> bool:
    """True for errors writing the case file (disk full, file size limit, I/O), as opposed to an
    adapter choking on a file: those must stop the ingest, not fail every later file the same
    way."""
    if isinstance(e, OSError) and e.errno in (
        errno.ENOSPC,
        errno.EFBIG,
        errno.EIO,
        errno.EDQUOT,
        errno.EROFS,
    ):
        return True
    text = str(e)
    return isinstance(e, duckdb.Error) and any(
        m in text
        for m in (
            "No space left",
            "File too large",
            "Could not write",
            "Failed to commit",
            "Disk quota",
            "Read-only file system",
            "database has been invalidated",
        )
    )


@contextmanager
def writing(store: CaseStore) -> Iterator[None]:
    """A step that writes the case: a write failure becomes one clear :class:`CaseWriteError`."""
    try:
        yield
    except Exception as e:
        if not is_write_failure(e):
            raise
        try:
            store.con.execute("ROLLBACK")
        except duckdb.Error:
            pass
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CaseWriteError(
            f"writing the case {store.path} failed: {first}. Files loaded before this one are kept "
            "and the case is marked unfinished; free space (or fix the device) and run the same "
            "command again"
        ) from e


def record_unusable(store: CaseStore, path: Path, why: str) -> FileResult:
    """A path that is not a readable regular file: listed as skipped (no hash: never read)."""
    _insert_evidence(store, _next_file_id(store), path, "", None, None, None, None, "skipped", why)
    return FileResult(str(path), "", 0, "skipped", note=why)


_T = TypeVar("_T")
_R = TypeVar("_R")


def adapter_failure(name: str, e: BaseException) -> str:
    """The note of a file that broke its adapter (``evidence.note``, the ingest summary)."""
    return f"{name} adapter failed on this file: {type(e).__name__}: {e}"


def isolated(
    con: duckdb.DuckDBPyConnection,
    batch: list[_T],
    attempt: Callable[[list[_T]], list[_R]],
    failed: Callable[[_T, BaseException], list[_R]],
) -> list[_R]:
    """``attempt(batch)`` in one transaction; a batch that raises is rolled back and attempted
    again one file per transaction, so only the file that breaks an adapter is ``failed``. A
    failure to write the case is raised, never taken for a file's (the runner's batches and
    ``keytrail scope``'s child, :mod:`keytrail.scope.beside`, share this rule)."""
    con.execute("BEGIN TRANSACTION")
    try:
        out = attempt(batch)
        con.execute("COMMIT")
        return out
    except Exception as e:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            if not is_write_failure(e):
                raise
        if is_write_failure(e):
            raise
        if len(batch) > 1:  # isolate the culprit: every other file of the batch loads on its own
            return [r for item in batch for r in isolated(con, [item], attempt, failed)]
        return failed(batch[0], e)


def load_batch(
    store: CaseStore,
    batch: list[Planned],
    max_record_bytes: int = MAX_RECORD_BYTES,
    ahead: ReadAheadHandle | None = None,
) -> list[FileResult]:
    copies: list[Path] = []

    def failed(item: Planned, e: BaseException) -> list[FileResult]:
        cls = item.adapter
        msg = adapter_failure(cls.NAME, e)
        _item_evidence(store, item, "failed", msg)
        return [
            FileResult(
                str(item.path), item.sha, item.size, "failed", cls.SOURCE, item.fmt, note=msg
            )
        ]

    try:
        return isolated(
            store.con,
            batch,
            # the read-ahead serves the whole batch's first attempt only
            lambda b: _attempt(store, b, copies, max_record_bytes, ahead if b is batch else None),
            failed,
        )
    finally:
        for c in copies:
            c.unlink(missing_ok=True)
            c.parent.rmdir()


def _attempt(
    store: CaseStore,
    batch: list[Planned],
    copies: list[Path],
    max_record_bytes: int,
    ahead: ReadAheadHandle | None,
) -> list[FileResult]:
    """The batch's ``evidence`` rows, records and counts (inside :func:`isolated`'s
    transaction)."""
    adapter_cls = batch[0].adapter
    con = store.con
    ctxs = []
    for item, file_id in zip(batch, _batch_evidence(store, batch), strict=True):
        head = read_sample(item.path, 8)
        if head.codec is not None:  # BOM / UTF-16 / UTF-32: the adapter reads a UTF-8 copy
            copy = utf8_copy(item.path, head.gzipped, head.codec)
            copies.append(copy)
            item.ctx = LoadContext(
                con, copy, file_id, item.fmt, False, max_record_bytes=max_record_bytes
            )
            item.ctx.notes.append(
                f"read as {head.codec} (converted to UTF-8; byte offsets "
                "count in the converted text)"
            )
        else:
            item.ctx = LoadContext(
                con,
                item.path,
                file_id,
                item.fmt,
                head.gzipped,
                max_record_bytes=max_record_bytes,
            )
        ctxs.append(item.ctx)
    adapter = adapter_cls()
    if ahead is not None:
        adapter.load_read_ahead(ctxs, ahead)
    elif len(ctxs) == 1:
        adapter.load(ctxs[0])
    else:
        adapter.load_batch(ctxs)
    results = []
    for item in batch:
        ctx = item.ctx
        assert ctx is not None
        ctx.flush_rejects()  # the held rejects, inside the file's transaction
        status = (
            "digest"
            if adapter_cls.SOURCE == "digest"
            else ("partial" if ctx.break_note else "loaded")
        )
        note = "; ".join(([ctx.break_note] if ctx.break_note else []) + ctx.notes) or None
        results.append(
            FileResult(
                str(item.path),
                item.sha,
                item.size,
                status,
                adapter_cls.SOURCE,
                item.fmt,
                ctx.records,
                ctx.rejected,
                ctx.skipped_records,
                note,
            )
        )
    _batch_counts(store, batch, results)
    return results
