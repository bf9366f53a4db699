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
   the first time a file is read, its records are counted (what DuckDB's ``json_array_length``
   of the document states: simdjson's count where it can tell the same, :func:`records_count`,
   else DuckDB's) and it is checked for escapes; its inflated bytes are searched for the
   needles (:class:`Finder`: a SIMD substring search each, from ``ALTERNATION_FROM`` needles
   on one Aho-Corasick pass for all), or by one DuckDB query where simdjson cannot count;
3. a file holding a new needle, a ``\\u`` escape (a needle may hide behind one), a ``\\/`` escape
   while a needle has a ``/``, or that the count cannot read (not JSON, another shape, no
   records) is opened: loaded whole by the narrow path, as without the gate; the copies of
   every record it adds are de-duplicated again over all loaded rows;
4. it stops when a round adds no needle.

Whenever the needles cannot stand for the seeds (a human, an agent, a seed that matches nothing
after the first round, a needle that JSON would escape), every file not opened yet is opened:
the whole path, the same output and counts as without the gate. A file never opened has its
``records`` from the count and ``rejected`` not examined (``None``): a record holding none of
the needles cannot be kept, whatever its shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import ahocorasick_rs
import duckdb
import pyarrow as pa
import simdjson

from keytrail.ingest.base import LoadContext
from keytrail.ingest.cloudtrail.adapter import MAX_OBJECT_BYTES, as_document, read_bytes
from keytrail.ingest.finalize import dedup_events
from keytrail.scope.narrow import NarrowCloudTrail
from keytrail.scope.needles import needles

if TYPE_CHECKING:
    from keytrail.ingest.cloudtrail.ahead import Staged
    from keytrail.ingest.runner import IngestSummary
    from keytrail.scope.vault_gate import VaultGate
    from keytrail.store.case import CaseStore

#: From this many new needles on, a file's bytes are searched for all of them in one pass of one
#: Aho-Corasick automaton (:class:`Finder`), and a DuckDB query for them (a file simdjson cannot
#: count) is one RE2 alternation, instead of one search each (memchr; DuckDB's ``contains``).
ALTERNATION_FROM = 10


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


@dataclass
class Gate:
    """One scope's gate: the files held back, the needles searched, the rounds run."""

    seeds: list[str]
    held: list[Held] = field(default_factory=list)
    searched: set[str] = field(default_factory=set)
    rounds: int = 0
    fallback: str | None = None
    #: The Vault gate (the DuckDB engine's; ``None``: the Vault files are loaded whole).
    vault: VaultGate | None = None

    def adapter(self) -> type[GatedCloudTrail]:
        """The narrow CloudTrail adapter bound to this gate (substituted by the runner)."""
        return type("BoundGatedCloudTrail", (GatedCloudTrail,), {"GATE": self})

    def hold(self, ctx: LoadContext) -> None:
        self.held.append(Held(ctx.file_id, ctx.path, ctx.format, ctx.gzipped, ctx.max_record_bytes))

    def run(self, store: CaseStore, summary: IngestSummary, after: Callable[[], None]) -> None:
        """The rounds, to the fixpoint; ``after``: what a change of the loaded rows needs done
        (the issuance facts again). ``summary``'s rows of the held files get their counts."""

        def refresh() -> CaseStore:
            after()
            return store

        def open_round(todo: list[Held], new: list[str], slash: bool, whole: bool) -> int:
            return self._round(store, todo, new, slash=slash, whole=whole)

        fixpoint(self, store, open_round, refresh)
        if self.vault is not None:
            self.vault.release()
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
            **({"vault": self.vault.as_dict()} if self.vault is not None else {}),
            "not_opened_rejected": (
                "not examined: a record holding none of the needles cannot be kept, whatever its "
                "shape, so a file holding none was counted (its Records array's length), not "
                "parsed"
            ),
        }

    def _round(
        self, store: CaseStore, todo: list[Held], new: list[str], *, slash: bool, whole: bool
    ) -> int:
        """One round in the scratch case (:data:`OpenRound`): ``todo`` searched for ``new``,
        those holding one (or all: ``whole``) loaded."""
        if not whole:
            for h, hit in zip(todo, search(store.con, todo, new), strict=True):
                why = why_open(h, hit, slash=slash)
                if why is not None:
                    h.opened, h.why = self.rounds, why
        return self._load(store, [h for h in todo if h.opened == self.rounds or whole])

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


#: One round's search and load, as an engine runs it: ``(todo, new, slash, whole)`` -> how many
#: files it opened. ``todo``: the held files not opened yet; ``new``: the needles the round adds,
#: searched in ``todo`` (:func:`why_open` decides, ``slash`` its argument); ``whole``: the
#: fallback, every file of ``todo`` opened (their ``opened`` and ``why`` already set).
OpenRound = Callable[[list[Held], list[str], bool, bool], int]


def fixpoint(
    gate: Gate, store: CaseStore, open_round: OpenRound, refresh: Callable[[], CaseStore]
) -> CaseStore:
    """The gate's rounds to the fixpoint, one loop for both engines (the DuckDB engine opens a
    round's files in its scratch case, the Spark engine in a job over the trail): the needles over
    what is loaded, the fallback to the whole path, the needles not searched yet, a round.
    ``refresh``: the case again after a round loaded rows (the issuance facts); the last one is
    returned. The Vault gate (``gate.vault``, the DuckDB engine's) searches its held lines in
    the same rounds, for the same needles and its own (:func:`keytrail.scope.needles.needles`)."""
    vault = gate.vault
    if vault is not None and vault.start(store):
        store = refresh()
    while gate.held or (vault is not None and vault.files):
        found = needles(store, gate.seeds, first=gate.rounds == 0, vault=vault is not None)
        todo = [h for h in gate.held if not h.opened]
        if found.fallback is not None:
            gate.fallback = found.fallback
            for h in todo:
                h.opened, h.why = max(gate.rounds, 1), f"the whole path: {found.fallback}"
            loaded = bool(todo)
            if todo:
                open_round(todo, [], False, True)
            if vault is not None and vault.rest(store, f"the whole path: {found.fallback}"):
                loaded = True
            if loaded:
                store = refresh()
            break
        if vault is not None:
            # The Vault lines first, to their own fixpoint (a round there costs a search of the
            # held lines; a CloudTrail round inflates every file not opened): the CloudTrail
            # files are then searched for what the Vault side adds in the same round.
            wanted = {(n,) for n in found.ids} | found.vault
            if vault.round(store, wanted, slash=any("/" in s for n in wanted for s in n)):
                store = refresh()
                continue
        new = found.ids - gate.searched
        if not new:
            break
        gate.rounds += 1
        gate.searched |= new
        slash = any("/" in n for n in found.ids)
        if todo and open_round(todo, sorted(new), slash, False):
            store = refresh()
    return store


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
    few = len(new) < ALTERNATION_FROM
    if few:
        hit_sql = " OR ".join(f"contains(doc, $n{i})" for i in range(len(new))) or "false"
        params: dict[str, Any] = {f"n{i}": n for i, n in enumerate(new)}
    else:
        hit_sql = "regexp_matches(doc, $alt)"
        params = {"alt": "|".join(re.escape(n) for n in new)}
    find = Finder(new)
    # a cursor and a JSON parser per worker (a simdjson parser holds one document at a time)
    free = [(con.cursor(), simdjson.Parser()) for _ in range(workers)]
    cursors = [c for c, _ in free]

    def one(h: Held) -> bool:
        cur, parser = free.pop()
        try:
            if h.searched:
                return _probe_bytes(cur, h, find)
            return _probe(cur, parser, h, hit_sql, params, find)
        finally:
            free.append((cur, parser))

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(one, files))
    finally:
        for c in cursors:
            c.close()


def _context(cur: duckdb.DuckDBPyConnection, h: Held) -> tuple[LoadContext, int]:
    """``h``'s load context and the bound on its inflated bytes (the narrow path's)."""
    ctx = LoadContext(
        cur, h.path, h.file_id, h.format, h.gzipped, max_record_bytes=h.max_record_bytes
    )
    return ctx, min(MAX_OBJECT_BYTES, ctx.max_document_bytes)


class Finder:
    """Whether bytes hold one of the needles: each needle's UTF-8 bytes searched in them (what
    DuckDB's ``contains`` decides over the same text) outside the GIL. A few (under
    :data:`ALTERNATION_FROM`): one search each, by the Rust ``memchr`` crate's SIMD substring
    search (``ahocorasick_rs`` with one pattern per automaton: one automaton of several patterns
    was 9x slower on CloudTrail text), about a third of the CPU of Python's ``bytes`` ``in``
    (which holds the GIL) and of DuckDB's ``contains`` per needle at 1M events. More: one pass
    of one Aho-Corasick DFA over all of them (any match of any pattern: the file holds one, as
    the RE2 alternation of the same literals decides): a principal seed's 421 needles over 380
    MB of its trail, 0.68-0.70 CPU-s against 1.60-1.82 for that RE2 query."""

    def __init__(self, needles: list[str]) -> None:
        encoded = [n.encode() for n in needles]
        self.always = any(not n for n in encoded)  # contains(doc, '') holds for every text
        parts = [n for n in encoded if n]
        self.automata = (
            [
                ahocorasick_rs.BytesAhoCorasick(
                    parts, implementation=_DFA if len(parts) <= _DFA_UPTO else None
                )
            ]
            if len(parts) >= ALTERNATION_FROM
            else [ahocorasick_rs.BytesAhoCorasick([n]) for n in parts]
        )

    def __call__(self, data: bytes) -> bool:
        return self.always or any(a.find_matches_as_indexes(data) for a in self.automata)


#: A DFA's table grows with the needles' bytes: past this many, the crate's own choice (an NFA).
_DFA_UPTO = 4096
_DFA = ahocorasick_rs.Implementation.DFA


def _probe_bytes(cur: duckdb.DuckDBPyConnection, h: Held, find: Finder) -> bool:
    """:func:`_probe` of a file read before (counted, escapes checked): its
    inflated bytes searched by ``find`` (a needle's UTF-8 bytes in the text's, what DuckDB's
    ``contains`` decides) instead of a DuckDB query over them: DuckDB's first ``contains`` of a
    document takes in the whole 5 MB string, and a later round asks nothing else of a file. The
    text is checked as UTF-8 again, as :func:`~keytrail.ingest.cloudtrail.adapter.as_document`
    does."""
    ctx, limit = _context(cur, h)
    data = read_bytes(ctx, limit)
    if data is None or not (data.isascii() or _utf8(data)):
        h.records = None  # as _probe: the bulk read refuses it, the narrow path's fallback reads it
        return True
    return find(data)


def _utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def _probe(
    cur: duckdb.DuckDBPyConnection,
    parser: simdjson.Parser,
    h: Held,
    hit_sql: str,
    params: dict[str, Any],
    find: Finder,
) -> bool:
    """Whether ``h`` holds a needle; read the first time, it is also counted and checked for
    escapes. ``find``: the needles' search in the bytes (a first read counted by
    :func:`records_count`); where simdjson cannot count, one DuckDB query (``hit_sql``) that
    also counts and checks escapes."""
    ctx, limit = _context(cur, h)
    data = read_bytes(ctx, limit)
    if data is None:  # the bulk read refuses it: the narrow path's fallback reads it
        h.records = None
        return True
    first = not h.searched
    # what json_array_length states, without DuckDB (records_count; None where it cannot)
    count = records_count(parser, data) if first else None
    if count is not None:
        h.searched, h.records = True, count or None
        backslash = b"\\" in data  # the escapes only where the file has a backslash at all
        h.escaped = backslash and b"\\u" in data
        h.slashed = backslash and b"\\/" in data
        return find(data)
    doc = as_document(data, share=True)
    if doc is None:  # not UTF-8: the bulk read refuses it, the narrow path's fallback reads it
        h.records = None
        return True
    return _query(cur, h, doc, hit_sql, params, first=first)


def _query(
    cur: duckdb.DuckDBPyConnection,
    h: Held,
    doc: pa.Array,
    hit_sql: str,
    params: dict[str, Any],
    *,
    first: bool,
) -> bool:
    """The search of ``doc`` in DuckDB (``hit_sql``); ``first``: it also counts the records
    (``json_array_length`` of the document: exact for any valid JSON) and checks the escapes."""
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
        return True
    finally:
        cur.unregister("_kt_gate_doc")
    row = rows[0]
    if first:
        h.records = int(row[0]) if row[0] else None
        h.escaped, h.slashed = bool(row[1][0]), bool(row[1][1])
    return bool(row[2])


#: simdjson's array size saturates here (``dom::array::size``): a larger count is DuckDB's.
_SATURATED = 0xFFFFFF
_BOM = b"\xef\xbb\xbf"


def records_count(parser: simdjson.Parser, data: bytes) -> int | None:
    """The number of elements of the document's top-level ``Records`` array, as DuckDB's
    ``json_array_length(doc, '$.Records')`` states it, parsed by simdjson (about half the CPU of
    DuckDB's yyjson at 1M events: it builds no values); ``None`` where simdjson cannot tell the
    same thing, and DuckDB is asked: not valid JSON to simdjson (stricter than DuckDB's reader:
    trailing commas, ``NaN``, numbers past a double or a 64-bit integer, nesting past 1024 are
    refused by it and read by DuckDB), no ``Records`` key, a ``Records`` that is not an array,
    a byte-order mark (simdjson skips it, DuckDB refuses the document) or a saturated size.
    A valid document simdjson reads, DuckDB reads to the same count: both take the first of
    duplicate keys, and simdjson checks the UTF-8 (the bytes are DuckDB's text)."""
    if data.startswith(_BOM):
        return None
    try:
        n = _length(parser.parse(data))  # the proxies go with _length's frame: the parser is free
    except Exception:  # noqa: BLE001 - whatever simdjson refuses, DuckDB decides
        return None
    return None if n is None or n >= _SATURATED else n


def _length(doc: Any) -> int | None:
    arr = doc["Records"] if isinstance(doc, simdjson.Object) else None
    return len(arr) if isinstance(arr, simdjson.Array) else None


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
