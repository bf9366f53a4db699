"""Opening a case file: one writer (ingest), any number of read-only viewers.

DuckDB allows one process to hold a database file for writing; everything except
ingest opens the case read-only, so the TUI, ``serve``, reports and queries can run
side by side. Threads must not share a connection: use :meth:`CaseStore.cursor`.

A front end that must be able to stop an analysis call (the TUI's Escape) runs it on a
:meth:`CaseStore.session`: a :class:`CaseSession` is a ``CaseStore`` (analysis code takes
either unchanged) whose every cursor is tracked, so :meth:`CaseSession.interrupt` from
any thread stops whatever query is running and the call raises :class:`Cancelled`.
"""

from __future__ import annotations

import os
import re
import threading
import time
import weakref
from collections.abc import Callable
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, Self, TypeVar

import duckdb

from keytrail import __version__
from keytrail.errors import Cancelled, CaseError, CaseLockedError
from keytrail.store.schema import (
    ADDED_COLUMNS,
    MASKED_SINCE,
    SCHEMA_VERSION,
    SECRETS_MASKED,
    TABLES,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

P = ParamSpec("P")
T = TypeVar("T")

_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<prog>.+?) \(PID (?P<pid>\d+)\)")


def _lock_message(path: Path, err: Exception) -> str:
    text = str(err)
    m = _LOCK_HOLDER.search(text)
    holder = f"{m.group('prog')} (PID {m.group('pid')})" if m else "another process"
    return (
        f"case {path} is locked by {holder}: DuckDB allows one writer at a time. "
        f"Wait for that process to finish (or stop it), then run the command again."
    )


#: DuckDB buffer pool of the writer (ingest). Without a limit it grows toward 80% of RAM as the case
#: grows (2+ GiB half-way through 1M CloudTrail events); with it, 1M events peak at ~1.36 GiB RSS
#: (Arrow batches and Python sit outside this limit). Override with KEYTRAIL_MEMORY_LIMIT, e.g. ``4GB``.
WRITER_MEMORY_LIMIT = "1GB"
_MEMORY = re.compile(r"^\d+(\.\d+)?\s*[KMGT]i?B$", re.IGNORECASE)


def finalize_memory_limit() -> str:
    """DuckDB memory for the end-of-ingest derive: ``KEYTRAIL_FINALIZE_MEMORY_LIMIT``, else the
    writer's (``KEYTRAIL_MEMORY_LIMIT`` or :data:`WRITER_MEMORY_LIMIT`).

    The derive's big aggregates (one ``ACTED_ON`` group per credential and resource, with evidence
    lists) run in partitions of a bounded number of rows (:mod:`keytrail.graph.derive_links`), so
    they fit the writer's 1 GB at any size: at 2.7M CloudTrail events the whole derive peaked at
    1.17 GB RSS under 1 GB (1.88 GB under half the RAM, which it used because it could). Raise it
    for speed on a big machine; a lower peak is what keeps an ingest flat in memory as cases grow.
    """
    wanted = os.environ.get("KEYTRAIL_FINALIZE_MEMORY_LIMIT", "")
    if _MEMORY.match(wanted):
        return wanted
    return str(_writer_config()["memory_limit"])


@contextmanager
def roomy_memory(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run a block under :func:`finalize_memory_limit`, then restore the writer's limit."""
    row = con.execute("SELECT current_setting('memory_limit')").fetchone()
    con.execute(f"SET memory_limit = '{finalize_memory_limit()}'")
    try:
        yield
    finally:
        if row:
            con.execute(f"SET memory_limit = '{row[0]}'")


#: DuckDB's checkpoints merge runs of row groups that would fit in fewer ("vacuum") by
#: decompressing and compressing them again, and every checkpoint looks at every table. A CloudTrail
#: ingest commits batches of ~87k events (a row group holds 122,880), so each batch's checkpoint
#: made groups the next one merged: at 1M events the ingest's commits cost 19.7 CPU-s on the one
#: writing thread, 9.4 without the merges; and turned off for the load alone, the merges came back
#: at the next checkpoint (7.9 CPU-s in the end-of-ingest commit). Off for every writer: the rows
#: are the same, groups stay as batches made them, a group whose rows are all deleted is still
#: dropped; only the space of some deleted rows is not given back (ingest deletes only duplicates).
MAX_VACUUM_TASKS = 0


def _writer_config() -> dict[str, str | bool | int | float | list[str]]:
    wanted = os.environ.get("KEYTRAIL_MEMORY_LIMIT", WRITER_MEMORY_LIMIT)
    return {
        "memory_limit": wanted if _MEMORY.match(wanted) else WRITER_MEMORY_LIMIT,
        "max_vacuum_tasks": MAX_VACUUM_TASKS,
    }


def old_case_message(path: Path) -> str:
    """What to do with a case ingested before secrets were masked at ingest (schema 1)."""
    return (
        f"{path} was ingested by an older keytrail that stored secret values (session tokens, passwords) "
        "as logged and cannot read originals back. Re-ingest the evidence into a new case: "
        f"keytrail ingest NEW_CASE PATH... (then delete {path} if it must not be shared)"
    )


class CaseStore:
    """A keytrail case: a DuckDB file with the schema in :mod:`keytrail.store.schema`."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path, read_only: bool) -> None:
        self.con = con
        self.path = path
        self.read_only = read_only
        self._lock = threading.Lock()
        self._sessions: weakref.WeakSet[CaseSession] = weakref.WeakSet()

    # -- opening -----------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, *, read_only: bool = True, create: bool = False) -> CaseStore:
        """Open (or with ``create`` make) a case.

        Raises:
            CaseError: the file is missing (read-only), or not a keytrail case.
            CaseLockedError: another process holds the write lock.
        """
        p = Path(path)
        if read_only and not p.exists():
            raise CaseError(
                f"case {p} does not exist. Create it with: keytrail ingest {p} PATH...",
                "no such case",
            )
        config: dict[str, str | bool | int | float | list[str]] = (
            {} if read_only else _writer_config()
        )
        try:
            con = duckdb.connect(str(p), read_only=read_only, config=config)
        except duckdb.IOException as e:
            if "lock" in str(e).lower():
                raise CaseLockedError(_lock_message(p, e), "case locked") from e
            raise CaseError(f"cannot open case {p}: {e}", "cannot open case") from e
        except duckdb.Error as e:
            raise CaseError(f"{p} is not a DuckDB case file: {e}", "not a case") from e
        store = cls(con, p, read_only)
        if read_only:
            store._check_schema()
        else:
            store._ensure_schema()
        return store

    def _check_schema(self) -> None:
        try:
            row = self.con.execute(
                "SELECT value FROM case_meta WHERE key = 'schema_version'"
            ).fetchone()
        except duckdb.CatalogException as e:
            raise CaseError(f"{self.path} is not a keytrail case (no case_meta table)") from e
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise CaseError(
                f"{self.path} was written by a newer keytrail (schema {version} > {SCHEMA_VERSION}); upgrade keytrail"
            )

    def _ensure_schema(self) -> None:
        self._check_schema_for_writing()
        for table in TABLES:
            self.con.execute(table.ddl())
        self._migrate()
        now = datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"
        self.con.execute(
            "INSERT OR IGNORE INTO case_meta VALUES ('schema_version', ?), ('created_at', ?), ('secrets', ?)",
            [str(SCHEMA_VERSION), now, SECRETS_MASKED],
        )
        self.set_meta("keytrail_version", __version__)

    def _check_schema_for_writing(self) -> None:
        """Refuse to add to a case an older keytrail wrote: it holds secrets unmasked, and mixing would
        leave a case that looks safe to hand over but is not."""
        try:
            row = self.con.execute(
                "SELECT value FROM case_meta WHERE key = 'schema_version'"
            ).fetchone()
        except duckdb.CatalogException:
            return  # a new file
        if row is None:
            return
        self._check_schema()
        if int(row[0]) < MASKED_SINCE:
            raise CaseError(old_case_message(self.path), "case from an older keytrail")

    def _migrate(self) -> None:
        """Bring a case of an earlier version (at least :data:`MASKED_SINCE`) to this one: the
        columns added since (:data:`~keytrail.store.schema.ADDED_COLUMNS`, NULL for the rows
        already there), in one transaction with the new version number."""
        row = self.con.execute(
            "SELECT value FROM case_meta WHERE key = 'schema_version'"
        ).fetchone()
        if row is None or int(row[0]) >= SCHEMA_VERSION:
            return
        self.con.execute("BEGIN TRANSACTION")
        try:
            for version, table, col in ADDED_COLUMNS:
                if version > int(row[0]):
                    self.con.execute(
                        f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {col.name} {col.type}"
                    )
            self.set_meta("schema_version", str(SCHEMA_VERSION))
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    # -- helpers -----------------------------------------------------------------
    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A new cursor for the calling thread (DuckDB connections are not thread-safe)."""
        return self.con.cursor()

    def set_meta(self, key: str, value: str) -> None:
        self.con.execute("INSERT OR REPLACE INTO case_meta VALUES (?, ?)", [key, value])

    def meta(self, key: str) -> str | None:
        row = self.con.execute("SELECT value FROM case_meta WHERE key = ?", [key]).fetchone()
        return None if row is None else str(row[0])

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        """Run SQL on a fresh cursor and return rows as dicts (small results only)."""
        cur = self.cursor()
        try:
            rel = cur.execute(sql, params or [])
            names = [d[0] for d in rel.description or []]
            return [dict(zip(names, row)) for row in rel.fetchall()]
        finally:
            cur.close()

    def scalar(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        cur = self.cursor()
        try:
            row = cur.execute(sql, params or []).fetchone()
            return None if row is None else row[0]
        finally:
            cur.close()

    def interrupt(self) -> None:
        """Cancel the running query on the main connection (a :meth:`session` stops every cursor)."""
        self.con.interrupt()

    def session(self) -> CaseSession:
        """A cancellable view of this case for analysis calls (see :class:`CaseSession`)."""
        session = CaseSession(self)
        with self._lock:
            self._sessions.add(session)
        return session

    def close(self, wait: float = 10.0) -> None:
        """Interrupt the calls of every session, give them up to ``wait`` seconds to return, close.

        DuckDB refuses to close a connection while a cursor of it is running a query.
        """
        with self._lock:
            sessions = list(self._sessions)
        for session in sessions:
            session.interrupt()
        deadline = time.monotonic() + wait
        while any(session.active for session in sessions) and time.monotonic() < deadline:
            time.sleep(REINTERRUPT_SECONDS)
        self.con.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: While a call of an interrupted session still runs, its cursors are interrupted again this often:
#: DuckDB drops an interrupt that reaches a cursor between two queries.
REINTERRUPT_SECONDS = 0.01
#: ... for at most this long (a caller that never returns must not keep a thread spinning).
REINTERRUPT_LIMIT_SECONDS = 60.0


class CaseSession(CaseStore):
    """A cancellable view of a case: a ``CaseStore`` whose every query runs on a cursor it tracks.

    Analysis functions take it in place of the store, unchanged: ``cursor()``, ``query()``,
    ``scalar()``, ``meta()`` and ``con`` (a cursor of the calling thread) all go through
    tracked cursors of the same read-only connection. :meth:`interrupt`, from any thread,
    interrupts all of them; the running query raises, the call raises :class:`Cancelled`,
    and every later call on the session raises :class:`Cancelled` at once (a session is
    single-use: take a new one for the next request). Wrap a multi-query call in
    :meth:`run` so an interrupt that lands between two of its queries still stops it.
    Closing a session interrupts it; the case stays open.
    """

    def __init__(self, store: CaseStore) -> None:  # no super().__init__: ``con`` is per thread here
        self.store = store
        self.path = store.path
        self.read_only = store.read_only
        self._lock = threading.Lock()
        self._cursors: weakref.WeakSet[duckdb.DuckDBPyConnection] = weakref.WeakSet()
        self._local = threading.local()
        self._stop = threading.Event()
        self._active = 0
        self._interrupter: threading.Thread | None = None

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """A tracked cursor of the calling thread (code that uses ``store.con`` stays cancellable)."""
        cur: duckdb.DuckDBPyConnection | None = getattr(self._local, "cur", None)
        if cur is None:
            cur = self._local.cur = self.cursor()
        self.check()
        return cur

    @con.setter
    def con(self, value: duckdb.DuckDBPyConnection) -> None:
        raise AttributeError("a session's connection is per thread; it cannot be replaced")

    @property
    def cancelled(self) -> bool:
        return self._stop.is_set()

    @property
    def active(self) -> int:
        """How many calls (:meth:`run`, :meth:`query`, :meth:`scalar`, :meth:`meta`) are running."""
        with self._lock:
            return self._active

    def check(self) -> None:
        """Raise :class:`Cancelled` when the session was interrupted (long Python loops may call it)."""
        if self._stop.is_set():
            raise Cancelled

    def cursor(self) -> duckdb.DuckDBPyConnection:
        self.check()
        cur = self.store.con.cursor()
        with self._lock:
            self._cursors.add(cur)
        if self._stop.is_set():  # interrupted while it was being made: never hand it out
            cur.close()
            raise Cancelled
        return cur

    @contextmanager
    def _call(self) -> Iterator[None]:
        """Count a running call (the interrupter runs while any is) and report an interrupt as Cancelled."""
        self.check()
        with self._lock:
            self._active += 1
        try:
            yield
        except Cancelled:
            raise
        except Exception as e:
            # The interrupted query's InterruptException, or an engine error wrapping it, or a cursor
            # closed under the call: once interrupted, any database failure is the cancellation.
            if self._stop.is_set() and (
                isinstance(e, duckdb.Error) or isinstance(e.__cause__, duckdb.Error)
            ):
                raise Cancelled from e
            raise
        finally:
            with self._lock:
                self._active -= 1

    def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` (e.g. ``session.run(blast_radius, session, cid)``), stoppable whole.

        Raises:
            Cancelled: :meth:`interrupt` was called before ``fn`` returned, even between its queries.
        """
        with self._call():
            result = fn(*args, **kwargs)
        self.check()  # an interrupt after the last query still cancels: the caller asked to stop
        return result

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        with self._call():
            return super().query(sql, params)

    def scalar(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        with self._call():
            return super().scalar(sql, params)

    def meta(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM case_meta WHERE key = ?", [key])
        return str(rows[0]["value"]) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        raise CaseError(
            "a session is for reading; set case metadata on the CaseStore", "read-only session"
        )

    def interrupt(self) -> None:
        """Stop every running query of this session; thread-safe, idempotent, returns at once."""
        self._stop.set()
        self._interrupt_all()
        with self._lock:
            start = self._interrupter is None and self._active > 0
            if start:
                self._interrupter = threading.Thread(
                    target=self._keep_interrupting, daemon=True, name="keytrail-session-interrupt"
                )
        if start and self._interrupter is not None:
            self._interrupter.start()

    def _interrupt_all(self) -> None:
        with self._lock:
            cursors = list(self._cursors)
        for cur in cursors:
            try:
                cur.interrupt()
            except duckdb.Error:  # already closed: nothing runs on it any more
                with self._lock:
                    self._cursors.discard(cur)

    def _keep_interrupting(self) -> None:
        deadline = time.monotonic() + REINTERRUPT_LIMIT_SECONDS
        while time.monotonic() < deadline:
            with self._lock:
                if self._active == 0:
                    return
            self._interrupt_all()
            time.sleep(REINTERRUPT_SECONDS)

    def session(self) -> CaseSession:
        """A new session of the same case (this one may be interrupted; a new one is not)."""
        return self.store.session()

    def close(self, wait: float = 0.0) -> None:
        """Interrupt the session's calls; the case's connection stays open (close the store for that)."""
        self.interrupt()
