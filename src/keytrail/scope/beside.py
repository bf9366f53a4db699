"""The agent logs of a scope's pass 1, loaded in a child process beside the runner.

The runner loads one file after the other on one thread, and the Vault and agent adapters are
Python: the GIL keeps them on one core while the other idles (docs/performance.md, scope13).
A thread beside them was measured and dropped (scope7: the GIL); a process is not bound by it.
The agent adapters' files come before the Vault log in the runner's plan, so the runner hands
them to one child process (:class:`Beside`, the adapters :func:`Beside.adapter` substitutes)
and goes on to the Vault log while the child loads them into a DuckDB file of its own, with the
file ids the runner gave them, by the same adapters through the same no-raw context
(:mod:`keytrail.scope.no_raw`), a transaction per batch and the runner's isolation (a batch
that fails is loaded again one file at a time; the file that fails is ``failed``, with the
runner's note). Before the runner's finalize (:func:`keytrail.ingest.runner.ingest`'s
``loaded``), :meth:`Beside.join` waits for the child, copies its rows into the scratch case and
sets each file's counts, status and note in ``evidence`` and in the summary, as the runner
would have. An adapter only writes and updates its own file's rows (``LoadContext``), and every
later step orders by file id, record number: the same rows, the same closure.

A child that cannot start, dies or fails to write its file stops the scope with an error
naming it (:class:`ChildError`); it is never taken for a file's failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
    from keytrail.ingest.runner import IngestSummary

#: The adapters whose files a scope loads in the child (the agent logs; the Vault log, after
#: them in the plan, is loaded by the runner meanwhile).
AGENTS = ("otlp", "jaeger", "mcp", "agent_jsonl")

_ATTACHED = "_kt_beside"


class ChildError(KeytrailError):
    """The child process that loads the agent logs failed (not one of the files: exit 2)."""


class Beside:
    """One child process loading the agent logs into ``db`` while the runner goes on."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.log = db.with_suffix(".log")
        #: started by :func:`keytrail.scope.project.project` before the runner's plan (its
        #: imports and DuckDB file ready by the first agent file), else by the first
        #: :meth:`send`; a trail without agent logs closes it with nothing loaded
        self.proc: subprocess.Popen[bytes] | None = None
        #: file id -> path of every file handed to the child
        self.sent: dict[int, str] = {}
        self.broken: str | None = None  # why a hand-over failed (raised by join, not by the load)

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
                later = [c for c in ctxs if not c.notes]  # sent once the rest loaded
                if later:
                    beside.send(name, later)

        ToChild.__name__ = ToChild.__qualname__ = f"ToChild{base.__name__}"
        return ToChild

    def send(self, name: str, ctxs: list[LoadContext]) -> None:
        """Hand ``ctxs``' files to the child (one batch, as the runner formed it)."""
        for c in ctxs:
            self.sent[c.file_id] = str(c.path)
        files = [[str(c.path), c.file_id, c.format, c.gzipped, c.max_record_bytes] for c in ctxs]
        self._write({"load": name, "files": files})

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
        """Wait for the child, copy its rows into ``store`` and set the files' results there and
        in ``summary`` (the runner's ``loaded`` hook: after the last file, before finalize).

        Raises:
            ChildError: the child failed or died.
            CaseWriteError: the child could not write its file.
        """
        outcomes = self._finish()
        if not self.sent:
            return
        con = store.con
        con.execute("BEGIN TRANSACTION")
        try:
            db = str(self.db).replace("'", "''")
            con.execute(f"ATTACH '{db}' AS {_ATTACHED} (READ_ONLY)")
            try:
                for table in WRITABLE_TABLES:
                    con.execute(f"INSERT INTO {table} SELECT * FROM {_ATTACHED}.{table}")
            finally:
                con.execute(f"DETACH {_ATTACHED}")
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

    def _finish(self) -> list[dict[str, Any]]:
        got = self._answer() if self.proc is not None else []  # never started: none handed over
        missing = set(self.sent) - {int(o["file_id"]) for o in got}
        if missing:
            raise ChildError(f"the child process did not load file ids {sorted(missing)}")
        return got

    def _answer(self) -> list[dict[str, Any]]:
        """The started child's outcomes, once it is told to close.

        Raises:
            ChildError: it failed or died.
            CaseWriteError: it could not write its file.
        """
        assert self.proc is not None
        self._write({"close": True})
        out, _ = self.proc.communicate()
        try:
            answer = json.loads(out.decode().strip().splitlines()[-1]) if out.strip() else None
        except (ValueError, UnicodeDecodeError):
            answer = None
        if self.broken is not None or not isinstance(answer, dict) or "error" in answer:
            why = (
                answer["error"]
                if isinstance(answer, dict) and "error" in answer
                else self.broken or f"exit code {self.proc.returncode}"
            )
            tail = self.log.read_text(errors="replace").strip().splitlines()[-3:]
            msg = f"the child process loading the agent logs failed: {why}" + (
                f" ({' / '.join(tail)})" if tail else ""
            )
            if isinstance(answer, dict) and answer.get("write"):
                raise CaseWriteError(msg)
            raise ChildError(msg)
        return list(answer.get("outcomes", []))

    def close(self) -> None:
        """Stop the child if it still runs (the runner failed or was interrupted)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


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


# -- the child ---------------------------------------------------------------------------------


def _load(store: CaseStore, name: str, files: list[list[Any]]) -> list[dict[str, Any]]:
    """One batch in one transaction, with the runner's isolation (:func:`isolated`: a batch that
    fails is loaded one file at a time, the file that fails is ``failed`` with the runner's
    note)."""
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
    con.execute("CHECKPOINT")  # written out now, beside the runner's Vault load, not at the join
    return out


def _ready() -> None:
    """What the first batch would pay before its first row, paid while the child waits for it
    (it starts before the runner's plan: :func:`keytrail.scope.project.project`): the agent
    adapters' modules, and pyarrow's import of pandas (when installed) the first time it makes an
    array from Python objects, 0.25-0.3 CPU-s (as ``analysis.snapshot._arrow_ready``)."""
    for name in AGENTS:
        load_adapter(name)
    pa.array([0], pa.int64())


def child(db: str, inp: IO[bytes], out: IO[bytes]) -> int:
    """The child's loop: batches from ``inp`` (JSON lines) until ``close``, then the outcomes (or
    the error) as one JSON line on ``out``."""
    outcomes: list[dict[str, Any]] = []
    answer: dict[str, Any]
    try:
        store = CaseStore.open(db, read_only=False, create=True)
        try:
            _ready()
            for line in inp:
                msg = json.loads(line)
                if msg.get("close"):
                    break
                outcomes.extend(_load(store, str(msg["load"]), list(msg["files"])))
            else:
                raise EOFError("the scope stopped before it closed the child")
        finally:
            store.close()
        answer = {"outcomes": outcomes}
    except Exception as e:  # noqa: BLE001 - told to the scope, which stops with it (ChildError)
        answer = {"error": f"{type(e).__name__}: {e}", "write": is_write_failure(e)}
    out.write(json.dumps(answer).encode() + b"\n")
    out.flush()
    return 1 if "error" in answer else 0


if __name__ == "__main__":
    _out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but the answer on the pipe
    sys.exit(child(sys.argv[1], sys.stdin.buffer, _out))
