"""The agent logs of a scope's pass 1, loaded in a child process beside the runner.

The runner loads one file after the other on one thread, and the Vault and agent adapters are
Python: the GIL keeps them on one core while the other idles (docs/performance.md, scope13).
A thread beside them was measured and dropped (scope7: the GIL); a process is not bound by it.
The runner hands its agent files to one child process (:class:`Beside`, the adapters
:func:`Beside.adapter` substitutes), with the file ids it gave them, once its load moves past
them (the runner's ``loading`` hook: the child then knows them all and starts with the largest)
and goes on to the Vault log while the child loads them into a DuckDB file of its own, one file
after the other, the largest first, by the same adapters through the same no-raw context
(:mod:`keytrail.scope.no_raw`), a transaction per file and the runner's isolation (the file
that fails is ``failed``, with the runner's note: :func:`_load`). At its ``loaded`` join
(:func:`keytrail.ingest.runner.ingest`'s, before the finalize), :meth:`Beside.join` takes back
the files the child has not started, the largest first, one at a time, and loads each itself by
that same :func:`_load` into the scratch case, while the child loads the rest: the two end about
together (docs/performance.md, scope17). Then it copies the child's rows into the scratch case
and sets each file's counts, status and note in ``evidence`` and in the summary, as the runner
would have. An adapter only writes and updates its own file's rows (``LoadContext``), and every
later step orders by file id, record number: the same rows, the same closure, whichever side
loaded a file.

A child that cannot start, dies or fails to write its file stops the scope with an error
naming it (:class:`ChildError`); it is never taken for a file's failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pyarrow as pa

import keytrail
from keytrail.errors import CaseWriteError, KeytrailError
from keytrail.ingest import load_adapter
from keytrail.ingest.base import WRITABLE_TABLES, LoadContext, SourceAdapter
from keytrail.ingest.batch_load import adapter_failure, is_write_failure, isolated
from keytrail.scope.no_raw import without_raw
from keytrail.store.case import CaseStore

if TYPE_CHECKING:
    import duckdb

    from keytrail.ingest.runner import IngestSummary

#: The adapters whose files a scope loads in the child (the agent logs; the Vault log, after
#: them in the plan, is loaded by the runner meanwhile).
AGENTS = ("otlp", "jaeger", "mcp", "agent_jsonl")

_ATTACHED = "_kt_beside"


class ChildError(KeytrailError):
    """The child process that loads the agent logs failed (not one of the files: exit 2)."""


#: A gzipped file's bytes weigh this many times a plain file's in the order the files load in
#: (d1m's three agent logs gzip 8.8-12.7x): an order, not a promise of either side's time.
_GZ_WEIGHT = 10


def _weight(ctx: LoadContext) -> int:
    """What loading ``ctx``'s file weighs against the others: its bytes (d1m's OTLP, MCP and
    native logs took 0.08-0.15 CPU-s a MB alike)."""
    try:
        size = ctx.path.stat().st_size
    except OSError:  # gone since the plan: its adapter says so, wherever it loads
        size = 0
    return size * _GZ_WEIGHT if ctx.gzipped else size


class Beside:
    """One child process loading the agent logs into ``db`` while the runner goes on."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.log = db.with_suffix(".log")
        #: started by :func:`keytrail.scope.project.project` before the runner's plan (its
        #: imports and DuckDB file ready by the first agent file), else by the first message; a
        #: trail without agent logs closes it with nothing loaded
        self.proc: subprocess.Popen[bytes] | None = None
        #: file id -> path of every file handed over (loaded by the child or taken back)
        self.sent: dict[int, str] = {}
        #: the files handed over and not told to the child yet: adapter name, path, file id,
        #: format, gzipped, max record bytes, weight (:func:`_weight`)
        self.held: list[list[Any]] = []
        self.mine: set[type[SourceAdapter]] = set()  # the adapters :meth:`adapter` made
        self.broken: str | None = None  # why a hand-over failed (raised by join, not by the load)
        self._said = b""  # the child's last line, read when it was asked for a file
        self.answered = False  # its answer read: it closed its file and exits

    def start(self) -> subprocess.Popen[bytes]:
        """The child process, started on the first call."""
        if self.proc is None:
            root = str(Path(keytrail.__file__).resolve().parent.parent)
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
            with self.log.open("wb") as err:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "keytrail.scope.beside", str(self.db)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    env=env,
                )
        return self.proc

    def adapter(self, name: str) -> type[SourceAdapter]:
        """The no-raw adapter ``name`` whose files go to the child. A file the runner converted
        to a UTF-8 copy (its notes say so) is loaded at once: the copy is gone after the batch."""
        base = without_raw(load_adapter(name))
        beside = self

        class ToChild(base):  # type: ignore[valid-type,misc]
            def load(self, ctx: LoadContext) -> None:
                self.load_batch([ctx])

            def load_batch(self, ctxs: list[LoadContext]) -> None:
                for c in ctxs:  # one by one, as the agent adapters' load_batch does
                    if c.notes:
                        super().load(c)
                beside.hand(name, [c for c in ctxs if not c.notes])  # told once the rest loaded

        ToChild.__name__ = ToChild.__qualname__ = f"ToChild{base.__name__}"
        self.mine.add(ToChild)
        return ToChild

    def hand(self, name: str, ctxs: list[LoadContext]) -> None:
        """Hand ``ctxs``' files over (told to the child by :meth:`loading` or the join)."""
        for c in ctxs:
            self.sent[c.file_id] = str(c.path)
            file = [str(c.path), c.file_id, c.format, c.gzipped, c.max_record_bytes]
            self.held.append([name, *file, _weight(c)])

    def loading(self, adapter: type[SourceAdapter]) -> None:
        """The runner's ``loading`` hook: a batch of another adapter than the child's loads, so
        the files handed over before it are told to the child now, all together (it starts with
        the largest: told one by one, it would start with the first in the plan)."""
        if adapter not in self.mine:
            self.tell()

    def tell(self) -> None:
        """Tell the child the files handed over since the last time."""
        if self.held:
            files, self.held = self.held, []
            self._write({"load": files})

    def _write(self, msg: dict[str, Any]) -> None:
        if self.broken is not None:
            return
        stdin = self.start().stdin
        assert stdin is not None
        try:
            stdin.write(json.dumps(msg).encode() + b"\n")
            stdin.flush()
        except OSError as e:  # the child is gone: said by join, never as the file's failure
            self.broken = f"{type(e).__name__}: {e}"

    def join(self, store: CaseStore, summary: IngestSummary) -> None:
        """Load the files the child has not started (the runner's ``loaded`` hook: after the
        last file, before finalize), wait for the child, copy its rows into ``store`` and set the
        files' results there and in ``summary``.

        Raises:
            ChildError: the child failed or died.
            CaseWriteError: the child could not write its file.
        """
        self.tell()
        outcomes: list[dict[str, Any]] = []
        while (took := self._take()) is not None:  # the runner's share: the largest not started
            outcomes.extend(_load(store, took[0], [took[1:6]], checkpoint=False))
        theirs = self._answer() if self.proc is not None else []  # none handed over
        outcomes.extend(theirs)
        missing = set(self.sent) - {int(o["file_id"]) for o in outcomes}
        if missing:
            raise ChildError(f"the child process did not load file ids {sorted(missing)}")
        if not self.sent:
            return
        con = store.con
        con.execute("BEGIN TRANSACTION")
        try:
            if theirs:
                self._copy(con)
            results = _results(outcomes)
            for file_id, r in results.items():
                con.execute(
                    "UPDATE evidence SET status = ?, records = ?, rejected = ?, skipped = ?,"
                    " note = ? WHERE file_id = ?",
                    [r["status"], r["records"], r["rejected"], r["skipped"], r["note"], file_id],
                )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        by_path = {self.sent[i]: r for i, r in results.items()}
        for f in summary.files:
            got = by_path.get(f.path)
            if got is not None:
                f.status, f.records, f.rejected = got["status"], got["records"], got["rejected"]
                f.skipped, f.note = got["skipped"] or 0, got["note"]

    def _copy(self, con: duckdb.DuckDBPyConnection) -> None:
        """The child's rows into the scratch case (inside the join's transaction)."""
        db = str(self.db).replace("'", "''")
        con.execute(f"ATTACH '{db}' AS {_ATTACHED} (READ_ONLY)")
        try:
            for table in WRITABLE_TABLES:
                con.execute(f"INSERT INTO {table} SELECT * FROM {_ATTACHED}.{table}")
        finally:
            con.execute(f"DETACH {_ATTACHED}")

    def _take(self) -> list[Any] | None:
        """The largest file the child has not started, taken back from it (``None``: it has
        started every file, or it stopped: then :meth:`_answer` says why)."""
        if self.proc is None or not self.sent:
            return None
        self._write({"take": True})
        if self.broken is not None or self.proc.stdout is None:
            return None
        line = self.proc.stdout.readline()
        try:
            got = json.loads(line)
        except ValueError:
            got = None
        if not isinstance(got, dict) or "took" not in got:
            self._said = line  # its answer, sent early: it stopped
            return None
        return list(got["took"]) if got["took"] else None

    def _answer(self) -> list[dict[str, Any]]:
        """The started child's outcomes, once it is told to close.

        Raises:
            ChildError: it failed or died.
            CaseWriteError: it could not write its file.
        """
        assert self.proc is not None and self.proc.stdout is not None
        self._write({"close": True})
        answer, lines = None, [self._said] if self._said else []
        while answer is None:  # its answer is written once its file is closed: not its exit
            line = lines.pop() if lines else self.proc.stdout.readline()
            if not line:
                self.proc.wait()
                break
            try:
                got = json.loads(line)
            except (ValueError, UnicodeDecodeError):
                continue
            if isinstance(got, dict) and ("outcomes" in got or "error" in got):
                answer = got
        self.answered = answer is not None
        if self.broken is not None or answer is None or "error" in answer:
            why = (
                answer["error"]
                if answer is not None and "error" in answer
                else self.broken or f"exit code {self.proc.returncode}"
            )
            tail = self.log.read_text(errors="replace").strip().splitlines()[-3:]
            msg = f"the child process loading the agent logs failed: {why}" + (
                f" ({' / '.join(tail)})" if tail else ""
            )
            if answer is not None and answer.get("write"):
                raise CaseWriteError(msg)
            raise ChildError(msg)
        return list(answer.get("outcomes", []))

    def close(self) -> None:
        """Wait for the child's exit once it answered, else stop it (the runner failed or was
        interrupted)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            if not self.answered:
                self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:  # a write the child never read
                    pass


def _results(outcomes: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Each file's status, counts and note as the runner states them (``batch_load``)."""
    out: dict[int, dict[str, Any]] = {}
    for o in outcomes:
        if "failed" in o:  # the runner's failed row: records and rejected 0, skipped NULL
            r = {"status": "failed", "records": 0, "rejected": 0, "skipped": None}
            r["note"] = o["failed"]
        else:
            brk, notes = o["break_note"], o["notes"]
            r = {
                "status": "partial" if brk else "loaded",
                "records": o["records"],
                "rejected": o["rejected"],
                "skipped": o["skipped"],
                "note": "; ".join(([brk] if brk else []) + notes) or None,
            }
        out[int(o["file_id"])] = r
    return out


# -- the loads: the child's, and the runner's share at the join -----------------------------------


def _load(
    store: CaseStore, name: str, files: list[list[Any]], checkpoint: bool = True
) -> list[dict[str, Any]]:
    """``files`` in one transaction, with the runner's isolation (:func:`isolated`: files that
    fail together are loaded one at a time, the file that fails is ``failed`` with the runner's
    note). Both callers give one file at a time (the child takes the largest first and the
    runner takes back what it has not started), so a file's failure is its own.
    ``checkpoint``: the child's file written out at once, beside the runner's work, not at the
    join."""
    cls = without_raw(load_adapter(name))
    con = store.con

    def attempt(batch: list[list[Any]]) -> list[dict[str, Any]]:
        ctxs = [
            LoadContext(con, Path(p), int(i), str(fmt), bool(gz), max_record_bytes=int(m))
            for p, i, fmt, gz, m in batch
        ]
        adapter = cls()
        if len(ctxs) == 1:
            adapter.load(ctxs[0])
        else:
            adapter.load_batch(ctxs)
        for c in ctxs:
            c.flush_rejects()
        return [
            {
                "file_id": c.file_id,
                "records": c.records,
                "rejected": c.rejected,
                "skipped": c.skipped_records,
                "break_note": c.break_note,
                "notes": c.notes,
            }
            for c in ctxs
        ]

    def failed(f: list[Any], e: BaseException) -> list[dict[str, Any]]:
        return [{"file_id": int(f[1]), "failed": adapter_failure(cls.NAME, e)}]

    out = isolated(con, files, attempt, failed)
    if checkpoint:
        con.execute("CHECKPOINT")
    return out


def _ready() -> None:
    """What the first batch would pay before its first row, paid while the child waits for it
    (it starts before the runner's plan: :func:`keytrail.scope.project.project`): the agent
    adapters' modules, and pyarrow's import of pandas (when installed) the first time it makes an
    array from Python objects, 0.25-0.3 CPU-s (as ``analysis.snapshot._arrow_ready``)."""
    for name in AGENTS:
        load_adapter(name)
    pa.array([0], pa.int64())


class _Files:
    """The files the child is told, loaded the largest first; the runner takes back any it has
    not started (``take``: the largest, answered by the thread that reads the runner's messages,
    while the child loads)."""

    def __init__(self, inp: IO[bytes], out: IO[bytes]) -> None:
        self.out = out
        self.said = threading.Lock()
        self.cond = threading.Condition()
        self.files: list[list[Any]] = []  # as :attr:`Beside.held`
        self.closed = False
        self.stopped: Exception | None = None  # the messages ended without ``close``
        self.reader = threading.Thread(target=self._read, args=(inp,), daemon=True)
        self.reader.start()

    def _read(self, inp: IO[bytes]) -> None:
        stopped: Exception | None = EOFError("the scope stopped before it closed the child")
        try:
            for line in inp:
                msg = json.loads(line)
                if msg.get("close"):
                    stopped = None
                    break
                if msg.get("take"):
                    self.say({"took": self.pop()})
                    continue
                with self.cond:
                    self.files.extend(msg["load"])
                    self.cond.notify()
        except Exception as e:  # noqa: BLE001 - answered by the loading thread
            stopped = e
        with self.cond:
            self.closed, self.stopped = stopped is None, stopped
            self.cond.notify()

    def pop(self) -> list[Any] | None:
        """The largest file not started (the first in the plan of equal weights), or ``None``."""
        with self.cond:
            if not self.files:
                return None
            i = max(range(len(self.files)), key=lambda k: (self.files[k][-1], -k))
            return self.files.pop(i)

    def next(self) -> list[Any] | None:
        """The next file to load; ``None`` once closed and every file loaded or taken back.

        Raises:
            Exception: the messages ended without ``close``, or one could not be read.
        """
        with self.cond:
            while not self.files and not self.closed and self.stopped is None:
                self.cond.wait()
            got = self.pop()
            if got is not None or self.stopped is None:
                return got
            raise self.stopped

    def say(self, msg: dict[str, Any]) -> None:
        with self.said:
            self.out.write(json.dumps(msg).encode() + b"\n")
            self.out.flush()


def child(db: str, inp: IO[bytes], out: IO[bytes]) -> int:
    """The child's loop: the files told on ``inp`` (JSON lines), the largest first, until
    ``close``, then the outcomes (or the error) as one JSON line on ``out``; ``take`` answered
    on ``out`` meanwhile."""
    files = _Files(inp, out)
    outcomes: list[dict[str, Any]] = []
    answer: dict[str, Any]
    try:
        store = CaseStore.open(db, read_only=False, create=True)
        try:
            _ready()
            while (f := files.next()) is not None:
                outcomes.extend(_load(store, f[0], [f[1:6]]))
        finally:
            store.close()
        answer = {"outcomes": outcomes}
    except Exception as e:  # noqa: BLE001 - told to the scope, which stops with it (ChildError)
        answer = {"error": f"{type(e).__name__}: {e}", "write": is_write_failure(e)}
    files.say(answer)
    return 1 if "error" in answer else 0


if __name__ == "__main__":
    _out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but the answer on the pipe
    sys.exit(child(sys.argv[1], sys.stdin.buffer, _out))
