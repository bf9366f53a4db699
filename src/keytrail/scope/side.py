"""A scope's Vault and agent files, loaded beside its CloudTrail pass.

The CloudTrail pass of a scope's pass 1 keeps both cores busy only part of the time, and the
Vault and agent adapters (Python, one core) used to run after it. Here they run at the same
time, on a worker thread, into a second scratch case (the *side* case), and the main ingest
takes their rows in when it reaches those files in its plan:

- The side ingest is the same :func:`keytrail.ingest.runner.ingest` over the same paths, with
  every other adapter replaced by one that loads nothing (:func:`skipping`). So it plans,
  hashes, sniffs and batches exactly as the main ingest does and gives every file the same
  ``evidence`` id (one row per file, in plan order, whatever its outcome): rows need no
  renumbering, not even a Vault pair's ``request_file_id``. It is not finalized
  (``finish=False``).
- The main ingest loads the Vault and agent files through :func:`elsewhere`: at such a batch it
  waits for the side ingest, then copies the batch's files' rows (``events``, ``rejects``, their
  events' ``credential_issues`` and ``event_resources``) and their counts and notes; a file that
  failed there fails here with the same message, so the runner's isolation runs as it did
  there. The main ingest's finalize (Vault pairing across files, de-duplication, counts) then
  runs over every row, as before.
- If the side ingest fails (anything it raises), the main ingest loads those files itself, as
  before (:func:`keytrail.scope.no_raw.without_raw`).

The overlap covers the CloudTrail files planned before the first Vault or agent file (in a
folder walked in name order, ``AWSLogs/`` before ``agents/`` and ``vault/``); a Vault or agent
file planned first waits for the side ingest before the CloudTrail pass starts: slower, the
same rows.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import duckdb

from keytrail.ingest import adapter_names, load_adapter
from keytrail.ingest.base import LoadContext, SourceAdapter
from keytrail.ingest.cloudtrail.adapter import fetch_arrow
from keytrail.ingest.inventory import InventoryAdapter
from keytrail.ingest.runner import FileFacts, ingest
from keytrail.scope.no_raw import without_raw

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from keytrail.ingest.base import Sample

#: The adapters whose files the side ingest loads (their rows written without their text).
SIDE = ("vault", "otlp", "jaeger", "mcp", "agent_jsonl")
#: The tables whose rows a file's load writes, by file id or by its events' ids.
_BY_FILE = ("events", "rejects", "inventory_agents", "grants")
_BY_EVENT = ("credential_issues", "event_resources")


def skipping(cls: type[SourceAdapter]) -> type[SourceAdapter]:
    """``cls`` loading nothing (the side ingest's stand-in for the main ingest's adapters): the
    same name, source, batches and sniffing, so files get the same ids and batches."""

    class Skip(cls):  # type: ignore[valid-type,misc]
        READS_AHEAD: ClassVar[bool] = False

        @classmethod
        def read_ahead(cls, *args: Any, **kwargs: Any) -> None:
            return None

        def load(self, ctx: LoadContext) -> None:
            return None

        def load_batch(self, ctxs: list[LoadContext]) -> None:
            return None

    Skip.__name__ = Skip.__qualname__ = f"Skip{cls.__name__}"
    return Skip


class SharedFacts(FileFacts):
    """Each file's size, hash, sample and sniff, found once for the two ingests of a scope (the
    first to ask reads the file, the other waits for it) and dropped once both have it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._memo: dict[tuple[str, Path], list[Any]] = {}  # key -> [lock, (value,) or None, uses]

    def _once(self, key: tuple[str, Path], compute: Callable[[], Any]) -> Any:
        with self._lock:
            entry = self._memo.setdefault(key, [threading.Lock(), None, 0])
        with entry[0]:
            if entry[1] is None:  # an error is not kept: the other ingest meets it again
                entry[1] = (compute(),)
            entry[2] += 1
            if entry[2] == 2:
                with self._lock:
                    self._memo.pop(key, None)
            return entry[1][0]

    def read(self, path: Path) -> tuple[int, str, Sample]:
        got: tuple[int, str, Sample] = self._once(
            ("read", path), lambda: FileFacts.read(self, path)
        )
        return got

    def sniff(self, sample: Sample) -> tuple[type[SourceAdapter], str] | None:
        got: tuple[type[SourceAdapter], str] | None = self._once(
            ("sniff", sample.path), lambda: FileFacts.sniff(self, sample)
        )
        return got


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
        subs = {n: without_raw(load_adapter(n)) for n in SIDE}
        for n in adapter_names():
            if n not in SIDE:
                subs[n] = skipping(load_adapter(n))
        subs[InventoryAdapter.NAME] = skipping(InventoryAdapter)
        ingest(
            self.case,
            self._paths,
            inventory=self._inventory,
            graph=False,
            substitutes=subs,
            finish=False,
            progress=self._check,
            facts=self.facts,  # called between batches: where a stopped scope ends it
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


def _copy(ctxs: list[LoadContext], side: duckdb.DuckDBPyConnection, name: str) -> None:
    """Copy the side case's rows, counts and notes of ``ctxs``' files into ``ctxs``' case."""
    ids = [int(c.file_id) for c in ctxs]
    found = {
        int(r[0]): r[1:]
        for r in side.execute(
            "SELECT file_id, status, records, rejected, skipped, note FROM evidence"
            " WHERE list_contains(?, file_id)",
            [ids],
        ).fetchall()
    }
    failed = [found[i] for i in ids if found[i][0] == "failed"]
    if failed:  # as in the side ingest: the batch fails, then each file on its own
        raise _failure(str(failed[0][4]), name)
    con = ctxs[0].con
    for table in (*_BY_FILE, *_BY_EVENT):
        where = "list_contains($ids, file_id)"
        if table in _BY_EVENT:
            where = f"event_uid IN (SELECT event_uid FROM events WHERE {where})"
        part = fetch_arrow(
            side.sql(f"SELECT * FROM {table} WHERE {where} ORDER BY rowid", params={"ids": ids})
        )
        if part.num_rows:
            con.register("_kt_side_rows", part)
            try:
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _kt_side_rows")
            finally:
                con.unregister("_kt_side_rows")
    for c in ctxs:
        status, records, rejected, skipped, note = found[int(c.file_id)]
        c.records, c.rejected, c.skipped_records = int(records), int(rejected), int(skipped)
        c.notes = [str(note)] if note and status != "partial" else []
        c.break_note = str(note) if status == "partial" else None


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
                _copy([ctx], read, cls.NAME)

        def load_batch(self, ctxs: list[LoadContext]) -> None:
            read = side.ready()
            if read is None:
                super().load_batch(ctxs)
            else:
                _copy(ctxs, read, cls.NAME)

    Elsewhere.__name__ = Elsewhere.__qualname__ = f"Elsewhere{cls.__name__}"
    return Elsewhere
