"""A scope's Vault and agent files, loaded beside its CloudTrail pass.

The CloudTrail pass of a scope's pass 1 keeps both cores busy only part of the time, and the
Vault and agent adapters (Python, one core) used to run after it. Here they run at the same
time, on a worker thread, into a second scratch case (the *side* case), and the main ingest
takes their rows in when its plan reaches those files:

- The worker plans the trail as the ingest does (the same walk, then each file's sample:
  provenance manifests and files no adapter reads are not its), and ingests the files a
  :data:`SIDE` adapter reads, in plan order, with :func:`keytrail.ingest.runner.ingest` and the
  adapters the main ingest would run (their rows without text), unfinalized (``finish=False``).
  Those adapters load one file per transaction (``BATCH_FILES`` 1: checked, else the scope loads
  them in line), so each file loads alone in both ingests, whatever lies between them; a
  duplicate of a Vault or agent file is one of them too, found the same way.
- The main ingest loads those files through :func:`elsewhere`: it waits for the side ingest,
  then copies the file's rows (``events``, ``rejects``, their events' ``credential_issues`` and
  ``event_resources``) under its own file id, and its counts and notes; a file that failed there
  fails here with the same message. Nothing a load writes holds another file's id (a Vault pair
  across files is made by the finalize), so nothing else is renumbered. The main ingest's
  finalize (Vault pairing across files, de-duplication, counts) runs over every row, as before.
- The two share each file's sniff (:class:`SharedFacts`). If the side ingest fails (anything it
  raises), the main ingest loads the files itself, as before.

The overlap covers the CloudTrail files planned before the first Vault or agent file (in a
folder walked in name order, ``AWSLogs/`` before ``agents/`` and ``vault/``); a Vault or agent
file planned first waits for the side ingest: slower, the same rows.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import duckdb

from keytrail.ingest import load_adapter, provenance
from keytrail.ingest.base import LoadContext, SourceAdapter
from keytrail.ingest.cloudtrail.adapter import fetch_arrow
from keytrail.ingest.paths import expand_paths
from keytrail.ingest.runner import FileFacts, ingest
from keytrail.scope.no_raw import without_raw

if TYPE_CHECKING:
    from collections.abc import Iterable

    from keytrail.ingest.base import Sample

#: The adapters whose files the side ingest loads (their rows written without their text).
SIDE = ("vault", "otlp", "jaeger", "mcp", "agent_jsonl")
#: The tables whose rows a file's load writes, by file id or by its events' ids.
_BY_FILE = ("events", "rejects", "inventory_agents", "grants")
_BY_EVENT = ("credential_issues", "event_resources")


def text_free() -> dict[str, type[SourceAdapter]]:
    """The :data:`SIDE` adapters writing their rows without their text (a scope's pass 1)."""
    return {name: without_raw(load_adapter(name)) for name in SIDE}


class SharedFacts(FileFacts):
    """Each file's sniff, found once for the two ingests of a scope (the first to ask reads it;
    a few dozen bytes per file are kept). Hashes and samples are read by each (a sample is up to
    256 KiB: kept for every file the worker planned ahead, they would add to the peak memory)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._memo: dict[Path, list[Any]] = {}  # path -> [lock, (found,) or None]

    def sniff(self, sample: Sample) -> tuple[type[SourceAdapter], str] | None:
        with self._lock:
            entry = self._memo.setdefault(sample.path, [threading.Lock(), None])
        with entry[0]:
            if entry[1] is None:
                entry[1] = (FileFacts.sniff(self, sample),)
            found: tuple[type[SourceAdapter], str] | None = entry[1][0]
            return found


def side_files(
    paths: Iterable[str | Path], inventory: Iterable[str | Path], facts: FileFacts
) -> list[Path]:
    """The files of the ingest's plan that a :data:`SIDE` adapter loads, in plan order."""
    inv = set(expand_paths(inventory, []))
    mine = []
    for p in expand_paths(paths, []):
        if p in inv:
            continue
        try:
            sample = facts.read(p)[2]
        except OSError:  # the main ingest lists it as unusable
            continue
        if provenance.is_manifest(sample.head):
            continue
        found = facts.sniff(sample)
        if found is not None and found[0].NAME in SIDE:
            mine.append(p)
    return mine


class SideLoad:
    """The side ingest of one scope: started at once on a worker thread, waited for by the
    main ingest's :func:`elsewhere` adapters."""

    def __init__(
        self,
        case: Path,
        paths: Iterable[str | Path],
        inventory: Iterable[str | Path],
        facts: FileFacts | None = None,
    ) -> None:
        self.case, self.facts = case, facts
        self._paths, self._inventory = list(paths), list(inventory)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="keytrail-scope-side")
        self._future: Future[None] = self._pool.submit(self._run)
        self._read: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def _check(self, _progress: object) -> None:
        if self._stop.is_set():
            raise _Stopped("the scope stopped")

    def _run(self) -> None:
        facts = self.facts or FileFacts()
        files = side_files(self._paths, self._inventory, facts)
        self._check(None)
        ingest(
            self.case,
            files,
            graph=False,
            substitutes=text_free(),
            finish=False,
            progress=self._check,  # called between batches: where a stopped scope ends it
            facts=facts,
        )

    def ready(self) -> duckdb.DuckDBPyConnection | None:
        """The side case, read-only, once its ingest is done; ``None`` if that ingest failed."""
        with self._lock:
            if self._read is None and self._future.exception() is None:
                self._read = duckdb.connect(str(self.case), read_only=True)
            return self._read

    def close(self, stop: bool = False) -> None:
        """Wait for the side ingest and close the side case; ``stop``: the side ingest ends at
        its next batch (the scope failed or was interrupted: its rows are not wanted)."""
        if stop:
            self._stop.set()
        self._pool.shutdown(wait=True)
        if self._read is not None:
            self._read.close()
            self._read = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        self.close(stop=kind is not None)


class _Stopped(Exception):
    """Raised into the side ingest by a scope that no longer wants its rows."""


class SideFailed(Exception):
    """A file the side ingest's adapter failed on (re-raised with that failure's name)."""


def _failure(note: str, name: str) -> Exception:
    """The exception whose runner note is ``note`` (``NAME adapter failed on this file: T: m``)."""
    head = f"{name} adapter failed on this file: "
    kind, _, msg = note.removeprefix(head).partition(": ")
    named: type[SideFailed] = type(kind, (SideFailed,), {})
    return named(msg)


def _copy(ctx: LoadContext, side: duckdb.DuckDBPyConnection, name: str) -> None:
    """Copy the side case's rows, counts and notes of ``ctx``'s file into ``ctx``'s case."""
    con = ctx.con
    path = con.execute("SELECT path FROM evidence WHERE file_id = ?", [ctx.file_id]).fetchall()
    rows = side.execute(
        "SELECT file_id, status, records, rejected, skipped, note FROM evidence WHERE path = ?",
        [path[0][0] if path else None],
    ).fetchall()
    if not rows:
        raise RuntimeError(f"{ctx.path}: not in the side case (changed while the scope ran?)")
    old, status, records, rejected, skipped, note = rows[0]
    if status == "failed":  # as in the side ingest
        raise _failure(str(note), name)
    by_file = "SELECT * REPLACE ($new::INTEGER AS file_id) FROM {} WHERE file_id = $old"
    by_event = (
        "SELECT * FROM {} WHERE event_uid IN (SELECT event_uid FROM events WHERE file_id = $old)"
    )
    for table in (*_BY_FILE, *_BY_EVENT):
        if table in _BY_FILE:  # under the main ingest's id for the file
            sql, params = by_file.format(table), {"old": old, "new": ctx.file_id}
        else:
            sql, params = by_event.format(table), {"old": old}
        part = fetch_arrow(side.sql(f"{sql} ORDER BY rowid", params=params))
        if part.num_rows:
            con.register("_kt_side_rows", part)
            try:
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _kt_side_rows")
            finally:
                con.unregister("_kt_side_rows")
    ctx.records, ctx.rejected, ctx.skipped_records = int(records), int(rejected), int(skipped)
    ctx.notes = [str(note)] if note and status != "partial" else []
    ctx.break_note = str(note) if status == "partial" else None


def elsewhere(cls: type[SourceAdapter], side: SideLoad) -> type[SourceAdapter]:
    """``cls`` (a :data:`SIDE` adapter) taking its files' rows from ``side``'s case, or loading
    them itself (without their text) if the side ingest failed."""
    base = without_raw(cls)

    class Elsewhere(base):  # type: ignore[valid-type,misc]
        def load(self, ctx: LoadContext) -> None:
            read = side.ready()
            if read is None:
                super().load(ctx)
            else:
                _copy(ctx, read, cls.NAME)

    Elsewhere.__name__ = Elsewhere.__qualname__ = f"Elsewhere{cls.__name__}"
    return Elsewhere
