"""The needle gate: a scope parses only the CloudTrail files that can matter to its closure.

A CloudTrail record that contains none of a set of *needles* cannot add a fact the closure
reads (docs/scale.md, "The needle gate"). The needles (:mod:`keytrail.scope.needles`) are the
seeds, every closure credential as written, the Vault AWS-engine name prefixes of the closure's
Vault issues and the ``sharedEventID`` of every loaded issuing record. They grow with the
closure, so the gate runs to a fixpoint:

1. the runner loads every file but the plain ``Records`` CloudTrail files, which
   :class:`GatedCloudTrail` only registers (their ``file_id`` is the one the whole path gives
   them: load order, and so de-duplication, stay the whole path's);
2. a round computes the needles over what is loaded, inflates each registered file not opened
   yet (one inflate per round per file, on two threads: zlib and DuckDB release the GIL) and
   searches it for the needles that round added (an earlier round searched it for the rest);
   the first time a file is read, its records are counted (``json_array_length`` of the
   document: exact for any valid JSON) and it is checked for escapes;
3. a file holding a new needle, a ``\\u`` escape (a needle may hide behind one), a ``\\/`` escape
   while a needle has a ``/``, or that the count cannot read (not JSON, another shape, no
   records) is opened: loaded whole by the narrow path, as without the gate; the copies of
   every record it adds are de-duplicated again over all loaded rows;
4. it stops when a round adds no needle.

Read ahead (the DuckDB engine, ``Gate(..., ahead=True)``): each file is read once as the runner
holds it, on a thread of its own beside the Vault and agent adapters (whose Python keeps one
core busy): inflated, counted, checked for escapes and searched for the needles known before any
row is loaded (:func:`keytrail.scope.needles.early`), each needle's hits kept. A round then
searches only the needles it adds that were not read ahead (none: no file is read), and a file
holds a new needle when either search found one: the same files opened in the same rounds.
The read ahead also keeps each file's inflated text LZ4-compressed (about a seventh of its size,
up to :data:`KEEP_BYTES` in all): a round reads a kept file by decompressing it, a fraction of
inflating its gzip again (docs/performance.md, scope11). The text is the one the round would
inflate (the same bytes, already checked as UTF-8), so every search answers the same.

Whenever the needles cannot stand for the seeds (a human, an agent, a seed that matches nothing
after the first round, a needle that JSON would escape), every file not opened yet is opened:
the whole path, the same output and counts as without the gate. A file never opened has its
``records`` from the count and ``rejected`` not examined (``None``): a record holding none of
the needles cannot be kept, whatever its shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import duckdb
import pyarrow as pa

from keytrail.ingest.base import LoadContext
from keytrail.ingest.cloudtrail.adapter import MAX_OBJECT_BYTES, read_document
from keytrail.ingest.finalize import dedup_events
from keytrail.scope.narrow import NarrowCloudTrail
from keytrail.scope.needles import Needles, early, needles

if TYPE_CHECKING:
    from keytrail.ingest.cloudtrail.ahead import Staged
    from keytrail.ingest.runner import IngestSummary
    from keytrail.store.case import CaseStore

#: More new needles than this are searched as one RE2 alternation (one pass, about 3 CPU-s at 1M
#: events whatever their number) instead of one ``contains`` each (about 0.3 CPU-s per needle).
ALTERNATION_FROM = 10

#: The compressed texts the read ahead keeps for the rounds, in all (peak RSS: about 0.22 GB at
#: 1M events, 1.58 GB of text); a file read past it is inflated again by each round.
KEEP_BYTES = 384 << 20
_KEEP_CODEC = "lz4_raw"


@dataclass
class Held:
    """A ``Records`` file the runner gave the gate: where it is, and what the rounds found."""

    file_id: int
    path: Path
    format: str
    gzipped: bool
    max_record_bytes: int
    records: int | None = None  # the count, once read
    escaped: bool = False  # holds a \u escape
    slashed: bool = False  # holds a \/ escape
    searched: bool = False  # read once (counted, escapes checked)
    opened: int = 0  # the round that loaded it (0: never)
    why: str | None = None
    #: Once opened, what the narrow path counted: records, rejected, skipped, note, break note.
    result: tuple[int, int, int, str | None, str | None] | None = None
    #: The needles read ahead (:attr:`Gate.ahead`) that it holds.
    hits: frozenset[str] = frozenset()
    #: Its text as read ahead, compressed (:data:`KEEP_BYTES`), and that text's length.
    kept: bytes | None = None
    kept_size: int = 0


@dataclass
class Gate:
    """One scope's gate: the files held back, the needles searched, the rounds run."""

    seeds: list[str]
    held: list[Held] = field(default_factory=list)
    searched: set[str] = field(default_factory=set)
    rounds: int = 0
    fallback: str | None = None
    #: Read each held file ahead, beside the runner (module docstring); the Spark engine's
    #: tasks hold files without (their driver runs the rounds).
    ahead: bool = False
    _early: frozenset[str] = frozenset()
    _reads: list[Future[None]] = field(default_factory=list)
    _pool: ThreadPoolExecutor | None = None
    _con: duckdb.DuckDBPyConnection | None = None
    _kept_bytes: int = 0

    def __post_init__(self) -> None:
        if self.ahead:
            self._early = frozenset(early(self.seeds, ALTERNATION_FROM))

    def adapter(self) -> type[GatedCloudTrail]:
        """The narrow CloudTrail adapter bound to this gate (substituted by the runner)."""
        return type("BoundGatedCloudTrail", (GatedCloudTrail,), {"GATE": self})

    def hold(self, ctx: LoadContext) -> None:
        h = Held(ctx.file_id, ctx.path, ctx.format, ctx.gzipped, ctx.max_record_bytes)
        self.held.append(h)
        if self.ahead:
            if self._pool is None or self._con is None:
                # its own database: the runner's transactions and thread setting are not its
                self._con = duckdb.connect(config={"threads": 1})
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="keytrail-gate-ahead")
            self._reads.append(self._pool.submit(self._read_ahead, self._con, h))

    def _read_ahead(self, con: duckdb.DuckDBPyConnection, h: Held) -> None:
        needles = sorted(self._early)
        hit_sql = "[" + ", ".join(f"contains(doc, $n{i})" for i in range(len(needles))) + "]"
        # a pyarrow built without LZ4 keeps nothing: the rounds inflate the files as before
        keep = self._kept_bytes < KEEP_BYTES and pa.Codec.is_available(_KEEP_CODEC)
        got = _read(con, h, hit_sql, {f"n{i}": n for i, n in enumerate(needles)}, keep=keep)
        self._kept_bytes += len(h.kept) if h.kept is not None else 0  # this thread's alone
        # unreadable: opened by the first round whatever it holds (its count is None)
        h.hits = frozenset(
            needles if got is None else (n for n, hit in zip(needles, got, strict=True) if hit)
        )

    def stop_ahead(self, *, cancel: bool = False) -> None:
        """Wait for the reads ahead (their errors raise here) and free their thread. ``cancel``
        (the runner failed: nothing will use them): reads not started are dropped, and errors
        too. Idempotent."""
        pool, con, reads = self._pool, self._con, self._reads
        self._pool, self._con, self._reads = None, None, []
        if pool is None:
            return
        try:
            pool.shutdown(wait=True, cancel_futures=cancel)
            for r in reads if not cancel else []:
                r.result()
        finally:
            if con is not None:
                con.close()

    def run(self, store: CaseStore, summary: IngestSummary, after: Callable[[], None]) -> None:
        """The rounds, to the fixpoint; ``after``: what a change of the loaded rows needs done
        (the issuance facts again). ``summary``'s rows of the held files get their counts."""
        self.stop_ahead()
        if self.held:
            while True:
                found = needles(store, self.seeds, first=self.rounds == 0)
                if found.fallback is not None:
                    self._open_all(store, found.fallback)
                    after()
                    break
                new = found.ids - self.searched
                if not new:
                    break
                self.rounds += 1
                self.searched |= new
                opened = self._round(store, sorted(new), found)
                if opened:
                    after()
        self._drop_kept()
        by_path = {str(h.path): h for h in self.held}
        for f in summary.files:
            h = by_path.get(f.path)
            if h is None:
                continue
            if h.result is None:  # never opened: the count; rejected not examined (inputs())
                f.records = h.records or 0
                continue
            f.records, f.rejected, f.skipped, f.note, broke = h.result
            f.status = "partial" if broke else "loaded"

    def _drop_kept(self, files: list[Held] | None = None) -> None:
        """Free the kept texts of ``files`` (all: the rounds are over)."""
        for h in self.held if files is None else files:
            h.kept, h.kept_size = None, 0

    def not_examined(self) -> set[str]:
        """Paths of the held files never opened (their ``rejected`` is not known)."""
        return {str(h.path) for h in self.held if not h.opened}

    def as_dict(self) -> dict[str, Any]:
        opened = [h for h in self.held if h.opened]
        return {
            "files_opened": len(opened),
            "files_gated": len(self.held),
            "rounds": self.rounds,
            "needles": len(self.searched),
            "fallback": self.fallback,
            "not_opened_rejected": (
                "not examined: a record holding none of the needles cannot be kept, whatever its "
                "shape, so a file holding none was counted (its Records array's length), not "
                "parsed"
            ),
        }

    def _round(self, store: CaseStore, new: list[str], found: Needles) -> int:
        todo = [h for h in self.held if not h.opened]
        if not todo:
            return 0
        slash = any("/" in n for n in found.ids)
        rest = [n for n in new if n not in self._early]  # not read ahead: searched now
        known = self._early.intersection(new)
        hits = search(store.con, todo, rest) if rest else [False] * len(todo)
        for h, hit in zip(todo, hits, strict=True):
            why = why_open(h, hit or not known.isdisjoint(h.hits), slash=slash)
            if why is not None:
                h.opened, h.why = self.rounds, why
        opened = [h for h in todo if h.opened == self.rounds]
        self._drop_kept(opened)  # loaded now: never searched again
        return self._load(store, opened)

    def _open_all(self, store: CaseStore, why: str) -> None:
        self.fallback = why
        todo = [h for h in self.held if not h.opened]
        for h in todo:
            h.opened, h.why = max(self.rounds, 1), f"the whole path: {why}"
        self._load(store, todo)

    def _load(self, store: CaseStore, files: list[Held]) -> int:
        """Load ``files`` whole by the narrow path with their own file ids, in batches of the
        runner's rule, then de-duplicate every loaded row again (earliest copy by file id)."""
        if not files:
            return 0
        con = store.con
        batch: list[Held] = []
        size = 0

        def flush() -> None:
            ctxs = [
                LoadContext(
                    con, h.path, h.file_id, h.format, h.gzipped, max_record_bytes=h.max_record_bytes
                )
                for h in batch
            ]
            con.execute("BEGIN TRANSACTION")
            try:
                NarrowCloudTrail().load_batch(ctxs)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            for h, c in zip(batch, ctxs, strict=True):
                _counted(store, h, c)

        for h in sorted(files, key=lambda x: x.file_id):
            n = h.path.stat().st_size
            if batch and NarrowCloudTrail.batch_full(len(batch), size, n):
                flush()
                batch, size = [], 0
            batch.append(h)
            size += n
        if batch:
            flush()
        dedup_events(store)
        return len(files)


def _counted(store: CaseStore, held: Held, ctx: LoadContext) -> None:
    """The opened file's counts, as the runner states them (``records``, ``rejected``)."""
    note = "; ".join(([ctx.break_note] if ctx.break_note else []) + ctx.notes) or None
    store.con.execute(
        "UPDATE evidence SET status = ?, records = ?, rejected = ?, skipped = ?, note = ?"
        " WHERE file_id = ?",
        [
            "partial" if ctx.break_note else "loaded",
            ctx.records,
            ctx.rejected,
            ctx.skipped_records,
            note,
            held.file_id,
        ],
    )
    held.result = (ctx.records, ctx.rejected, ctx.skipped_records, note, ctx.break_note)


def why_open(h: Held, hit: bool, *, slash: bool) -> str | None:
    """Why a searched file is opened this round (``hit``: it holds a new needle; ``slash``: a
    needle has a ``/``), or ``None``: it stays closed (the Spark engine's tasks decide the same)."""
    return (
        "holds a \\u escape"
        if h.escaped
        else "holds a \\/ escape and a needle has a /"
        if h.slashed and slash
        else "the Records count cannot read it"
        if not h.records
        else "holds a needle"
        if hit
        else None
    )


def search(
    con: duckdb.DuckDBPyConnection, files: list[Held], new: list[str], workers: int = 2
) -> list[bool]:
    """Whether each file holds one of ``new``; a file read for the first time is also counted
    and checked for escapes (set on it). ``workers``: files read at once (a Spark task: 1, its
    executor runs a task per core)."""
    if len(new) >= ALTERNATION_FROM:
        hit_sql = "regexp_matches(doc, $alt)"
        params: dict[str, Any] = {"alt": "|".join(re.escape(n) for n in new)}
    else:
        hit_sql = " OR ".join(f"contains(doc, $n{i})" for i in range(len(new))) or "false"
        params = {f"n{i}": n for i, n in enumerate(new)}
    cursors = [con.cursor() for _ in range(workers)]
    free = list(cursors)

    def one(h: Held) -> bool:
        cur = free.pop()
        try:
            return _probe(cur, h, hit_sql, params)
        finally:
            free.append(cur)

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(one, files))
    finally:
        for c in cursors:
            c.close()


def _probe(cur: duckdb.DuckDBPyConnection, h: Held, hit_sql: str, params: dict[str, Any]) -> bool:
    got = _read(cur, h, hit_sql, params)
    return True if got is None else bool(got)


def _read(
    cur: duckdb.DuckDBPyConnection,
    h: Held,
    hit_sql: str,
    params: dict[str, Any],
    *,
    keep: bool = False,
) -> Any:
    """``hit_sql``'s value over ``h``'s text (counted and escape-checked the first time), or
    ``None`` when it cannot be read as one document (the count is then ``None``: opened).
    ``keep``: the text is kept compressed on ``h`` for the next read (the kept text is read
    instead of the file whenever ``h`` has one)."""
    if h.kept is not None:
        doc = _unkept(h.kept, h.kept_size)
    else:
        ctx = LoadContext(
            cur, h.path, h.file_id, h.format, h.gzipped, max_record_bytes=h.max_record_bytes
        )
        doc = read_document(ctx, min(MAX_OBJECT_BYTES, ctx.max_document_bytes), share=True)
    if doc is None:  # the bulk read refuses it: the narrow path's fallback reads it
        h.records = None
        return None
    if keep and h.kept is None:
        text = doc[0].as_buffer()  # the value's own bytes (a cast's buffer may be longer)
        # as bytes: the codec's own buffer keeps the capacity of its bound, the text's size
        h.kept, h.kept_size = pa.Codec(_KEEP_CODEC).compress(text, asbytes=True), text.size
    first = not h.searched
    h.searched = True
    # the escapes only where the file has a backslash at all (one fast search, usually none)
    first_sql = (
        "json_array_length(doc, '$.Records'), CASE WHEN contains(doc, '\\') THEN "
        "[contains(doc, '\\u'), contains(doc, '\\/')] ELSE [false, false] END"
        if first
        else "NULL, NULL"
    )
    cur.register("_kt_gate_doc", pa.table({"doc": doc}))
    try:
        rows = cur.execute(f"SELECT {first_sql}, {hit_sql} FROM _kt_gate_doc", params).fetchall()
    except duckdb.Error:  # not JSON: the narrow path reads it (and rejects what it must)
        h.records = None
        return None
    finally:
        cur.unregister("_kt_gate_doc")
    row = rows[0]
    if first:
        h.records = int(row[0]) if row[0] else None
        h.escaped, h.slashed = bool(row[1][0]), bool(row[1][1])
    return row[2]


def _unkept(kept: bytes, size: int) -> pa.Array:
    """The one-value text array :func:`read_document` gave, from its kept compressed bytes (a
    ``large_string`` again without a copy or a second UTF-8 check: the first read made one)."""
    text = pa.Codec(_KEEP_CODEC).decompress(kept, decompressed_size=size, asbytes=False)
    offsets = pa.array([0, size], pa.int64()).buffers()[1]
    return pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, text])


class GatedCloudTrail(NarrowCloudTrail):
    """:class:`NarrowCloudTrail` that hands the plain ``Records`` files to its gate instead of
    loading them (the gate opens those that can matter after the runner is done)."""

    GATE: ClassVar[Gate | None] = None

    def load_batch(
        self, ctxs: list[LoadContext], ahead: Staged | list[Staged] | None = None
    ) -> None:
        gate = type(self).GATE
        if gate is None:
            super().load_batch(ctxs, ahead)
            return
        # A file read from a UTF-8 copy (BOM, UTF-16) is loaded now: the copy is gone after
        # the batch, and its byte offsets are the copy's.
        held = [c for c in ctxs if c.format == "cloudtrail-records" and not c.notes]
        for c in held:
            gate.hold(c)
        rest = [c for c in ctxs if c not in held]
        if rest:
            super().load_batch(rest, ahead)
