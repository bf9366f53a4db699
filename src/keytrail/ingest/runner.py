"""The ingest driver: paths in, a consistent case out.

Per file: hash (SHA-256; a file already loaded is a no-op), sniff by content, then
load inside one transaction together with its ``evidence`` row, so an interrupted
ingest leaves only whole files behind and re-running it completes the job. After
the last file, :func:`keytrail.ingest.finalize.finalize` de-duplicates and rebuilds
the derived tables in bulk.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keytrail.errors import InputError
from keytrail.ingest import provenance, sniff
from keytrail.ingest.base import LoadContext, SourceAdapter, read_sample
from keytrail.store.case import CaseStore
from keytrail.ingest.finalize import finalize

#: Statuses that make a re-ingest of the same bytes a no-op.
DONE_STATUSES = ("loaded", "partial", "digest")


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


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files under the given paths, in a stable order (directories walked recursively).

    Raises:
        InputError: a path does not exist.
    """
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise InputError(f"{p}: no such file or directory. Check the path and run the command again.")
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs.sort()
                out.extend(Path(root) / name for name in sorted(files) if not name.startswith("."))
        else:
            out.append(p)
    return [p.resolve() for p in out]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class _Planned:
    __slots__ = ("adapter", "ctx", "fmt", "path", "sha", "size")

    def __init__(self, path: Path, sha: str, size: int, adapter: type[SourceAdapter], fmt: str) -> None:
        self.path, self.sha, self.size, self.adapter, self.fmt = path, sha, size, adapter, fmt
        self.ctx: LoadContext | None = None


def ingest(
    case_path: str | Path,
    paths: Iterable[str | Path],
    *,
    inventory: Iterable[str | Path] = (),
    progress: Callable[[Progress], None] | None = None,
    graph: bool = True,
) -> IngestSummary:
    """Load ``paths`` (and inventory files) into the case at ``case_path``, creating it if needed.

    ``graph=False`` skips the derived tables (see :func:`keytrail.ingest.finalize.finalize`).

    Raises:
        InputError: a path is missing (checked before the case is touched).
        CaseLockedError: another process is writing the case.
    """
    inv_files = expand_paths(inventory)
    # An inventory inside a walked directory is read once, as the inventory (not skipped as a log first).
    files = [p for p in expand_paths(paths) if p not in set(inv_files)]
    start = time.monotonic()
    summary = IngestSummary(case=str(case_path))
    total_bytes = sum(p.stat().st_size for p in files + inv_files)
    done_bytes = 0
    store = CaseStore.open(case_path, read_only=False, create=True)
    try:
        store.set_meta("finalized", "false")
        con = store.con
        known = {row[0] for row in con.execute(
            "SELECT sha256 FROM evidence"
            " WHERE status IN ('loaded','partial','digest','provenance')").fetchall()}

        def report(current: str | None) -> None:
            if progress:
                progress(Progress(len(summary.files), len(files) + len(inv_files), done_bytes, total_bytes,
                                  summary.records, summary.rejected, time.monotonic() - start, current))

        # Plan: hash and sniff every file, then load in adapter batches.
        batch: list[_Planned] = []

        def flush() -> None:
            nonlocal done_bytes
            if not batch:
                return
            report(str(batch[0].path))
            results = _load_batch(store, batch)
            summary.files.extend(results)
            done_bytes += sum(p.size for p in batch)
            batch.clear()
            report(None)

        from keytrail.ingest.inventory import InventoryAdapter

        plan: list[tuple[Path, type[SourceAdapter] | None]] = [(p, None) for p in files]
        plan += [(p, InventoryAdapter) for p in inv_files]
        for path, forced in plan:
            size = path.stat().st_size
            sha = sha256_file(path)
            if sha in known:
                flush()
                summary.files.append(FileResult(str(path), sha, size, "already-ingested",
                                                note="same SHA-256 already in the case"))
                done_bytes += size
                continue
            known.add(sha)
            sample = read_sample(path)
            if forced is None and provenance.is_manifest(sample.head):
                flush()
                summary.files.append(_record_provenance(store, path, sha, size))
                done_bytes += size
                continue
            if forced is not None:
                found: tuple[type[SourceAdapter], str] | None = (forced, forced.sniff(sample) or "inventory")
            else:
                found = sniff(sample)
            if found is None:
                flush()
                summary.files.append(_record_skipped(store, path, sha, size, sample.head))
                done_bytes += size
                continue
            adapter, fmt = found
            if batch and (batch[0].adapter is not adapter or len(batch) >= adapter.BATCH_FILES
                          or sum(p.size for p in batch) + size > adapter.BATCH_BYTES):
                flush()
            batch.append(_Planned(path, sha, size, adapter, fmt))
        flush()
        report("finalising")
        finalize(store, graph=graph)
        summary.events_in_case = int(store.scalar("SELECT count(*) FROM events") or 0)
    finally:
        store.close()
    summary.elapsed = time.monotonic() - start
    return summary


def _next_file_id(store: CaseStore) -> int:
    # Not a DuckDB sequence: after a killed ingest a sequence can restart below ids that
    # committed rows already hold. The runner is the only writer, so max + 1 is safe.
    return int(store.con.execute("SELECT coalesce(max(file_id), 0) + 1 FROM evidence").fetchone()[0])  # type: ignore[index]


def _insert_evidence(store: CaseStore, file_id: int, path: Path, sha: str, size: int, source: str | None,
                     fmt: str | None, adapter: str | None, status: str, note: str | None) -> None:
    store.con.execute(
        "INSERT INTO evidence (file_id, path, sha256, bytes, source, format, adapter, status, records,"
        " rejected, ingested_at, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?, ?)",
        [file_id, str(path), sha, size, source, fmt, adapter, status, _now(), note],
    )


def _record_skipped(store: CaseStore, path: Path, sha: str, size: int, head: bytes) -> FileResult:
    if not head.strip():
        why = "empty file"
    else:
        why = "content matches no known format (CloudTrail, Vault audit, OTLP JSON, MCP, keytrail agent JSONL)"
    _insert_evidence(store, _next_file_id(store), path, sha, size, None, None, None, "skipped", why)
    return FileResult(str(path), sha, size, "skipped", note=why)


def _record_provenance(store: CaseStore, path: Path, sha: str, size: int) -> FileResult:
    try:
        note, status = provenance.record(store, path, sha), "provenance"
    except (OSError, ValueError) as e:
        note, status = f"unreadable keytrail scope manifest: {e}", "skipped"
    _insert_evidence(store, _next_file_id(store), path, sha, size, "scope" if status == "provenance" else None,
                     "keytrail-scope-manifest", None, status, note)
    return FileResult(str(path), sha, size, status, note=note)


def _load_batch(store: CaseStore, batch: list[_Planned]) -> list[FileResult]:
    adapter_cls = batch[0].adapter
    con = store.con
    con.execute("BEGIN TRANSACTION")
    try:
        ctxs = []
        for item in batch:
            file_id = _next_file_id(store)
            _insert_evidence(store, file_id, item.path, item.sha, item.size, adapter_cls.SOURCE,
                             item.fmt, adapter_cls.NAME, "loading", None)
            item.ctx = LoadContext(con, item.path, file_id, item.fmt, read_sample(item.path, 2).gzipped)
            ctxs.append(item.ctx)
        adapter = adapter_cls()
        if len(ctxs) == 1:
            adapter.load(ctxs[0])
        else:
            adapter.load_batch(ctxs)
        results = []
        for item in batch:
            ctx = item.ctx
            assert ctx is not None
            status = "digest" if adapter_cls.SOURCE == "digest" else ("partial" if ctx.break_note else "loaded")
            note = "; ".join(([ctx.break_note] if ctx.break_note else []) + ctx.notes) or None
            con.execute("UPDATE evidence SET status = ?, records = ?, rejected = ?, skipped = ?, note = ?"
                        " WHERE file_id = ?", [status, ctx.records, ctx.rejected, ctx.skipped_records, note, ctx.file_id])
            results.append(FileResult(str(item.path), item.sha, item.size, status, adapter_cls.SOURCE,
                                      item.fmt, ctx.records, ctx.rejected, ctx.skipped_records, note))
        con.execute("COMMIT")
        return results
    except Exception as e:  # noqa: BLE001 - an adapter failure costs one file, never the case
        con.execute("ROLLBACK")
        results = []
        for item in batch:
            msg = f"{adapter_cls.NAME} adapter failed on this file: {type(e).__name__}: {e}"
            _insert_evidence(store, _next_file_id(store), item.path, item.sha, item.size, adapter_cls.SOURCE,
                             item.fmt, adapter_cls.NAME, "failed", msg)
            results.append(FileResult(str(item.path), item.sha, item.size, "failed", adapter_cls.SOURCE,
                                      item.fmt, note=msg))
        return results
