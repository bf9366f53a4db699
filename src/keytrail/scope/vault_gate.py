"""The Vault gate: a scope builds the rows of only the Vault audit lines that can matter.

The Vault adapter spends most of its time building the rows of every request/response pair
(about 2.7 s of Python at 1M events, on the runner's thread). A line that holds none of the
gate's needles cannot add a row the closure reads (docs/scale.md, "The needle gate"), so the
gate holds the Vault files back as :mod:`keytrail.scope.gate` holds the CloudTrail files:

1. when the runner reaches a Vault file, :class:`VaultGate` reads it (no rows written) if every
   line is a bare JSON object (``{...}``, the file device's framing): each line is one record,
   and it is classified as the adapter's framing and pairing code would (entry, server log or
   reject; its ``type`` and ``request.id``) by simdjson, or by the adapter's own reader
   (:func:`~keytrail.ingest.vault.framing.iter_records`) for a line simdjson cannot state the
   same of (a backslash, a non-ASCII byte, a repeated key, JSON simdjson refuses). The file's
   ``records``, ``rejected``, skipped entries and notes are then the adapter's, exactly;
2. each round of the gate searches the held lines for the needles it adds (the CloudTrail
   needles, plus the Vault ones of :func:`keytrail.scope.needles.needles`) by the same SIMD
   substring search (many at once by one Aho-Corasick pass), takes every line holding one,
   every line with a ``\\u`` escape, and every line with a ``\\/`` escape once a needle has a
   ``/``; then every line of the same ``request.id`` (in any held file: the adapter pairs by
   it, within a file and across files); those lines, at their own line numbers and byte
   offsets, go through the unchanged adapter, then the adapter's cross-file pairing and the
   de-duplication run again.

A ``request.id``'s events depend only on the lines of that id (the adapter pairs by it and
nothing else), so the rows of the lines taken are those the whole file gives them. Whatever the
gate cannot read this way (a gz file, another framing, a blank line, a byte-order mark, a line
past ``--max-record-bytes``, a KMIP entry, a file too big to hold), is loaded whole by the
runner as without the gate; then every held file is loaded whole too (a pair may span files), as
when the CloudTrail gate falls back to the whole path.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import ahocorasick_rs
import simdjson

from keytrail.ingest import load_adapter
from keytrail.ingest.base import LoadContext
from keytrail.ingest.finalize import dedup_events
from keytrail.ingest.vault.adapter import VaultAdapter, notes
from keytrail.ingest.vault.framing import iter_records
from keytrail.ingest.vault.pairing import Pairing
from keytrail.scope.gate import Finder
from keytrail.scope.no_raw import NoRawContext, without_raw

if TYPE_CHECKING:
    from collections.abc import Generator, Iterable
    from pathlib import Path

    from keytrail.ingest.base import SourceAdapter
    from keytrail.store.case import CaseStore

#: A needle: every string a line must hold (one, or a Vault id and the path part its rule needs).
Needle = tuple[str, ...]
_KMIP = ("kmip-request", "kmip-response")
#: From this many first strings of new needles on, a round searches a held file once for all of
#: them (:func:`_found`).
ONE_PASS_FROM = 40
_BOM = b"\xef\xbb\xbf"


@dataclass
class HeldVault:
    """A Vault file the gate holds: its bytes, its lines and what each is."""

    file_id: int
    path: Path
    format: str
    max_record_bytes: int
    data: bytes
    starts: list[int]  # line i is data[starts[i]:ends[i]] (line number i + 1)
    ends: list[int]
    rids: list[str | None]  # each line's request.id, as the adapter pairs it
    escaped: list[int]  # lines with a \u escape
    slashed: list[int]  # lines with a \/ escape
    loaded: bytearray = field(default_factory=bytearray)

    def line_of(self, pos: int) -> int:
        return bisect_right(self.starts, pos) - 1


@dataclass
class Counted:
    """What the adapter would state of a file of bare JSON lines, without building a row."""

    records: int
    rejected: int
    skipped: int
    notes: list[str]
    rids: list[str | None]


@dataclass
class VaultGate:
    """One scope's Vault gate: the files held, the needles searched, the lines loaded."""

    files: list[HeldVault] = field(default_factory=list)
    #: Vault files the runner loaded whole, with why.
    whole: dict[str, str] = field(default_factory=dict)
    searched: set[Needle] = field(default_factory=set)
    by_rid: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    rounds: int = 0
    slash: bool = False  # the \/ lines taken
    fallback: str | None = None

    def adapter(self) -> type[SourceAdapter]:
        """The Vault adapter the runner gets: holds what the gate can read, loads the rest."""
        gate = self
        base = without_raw(load_adapter("vault"))

        class GatedVault(base):  # type: ignore[valid-type,misc]
            def load(self, ctx: LoadContext) -> None:
                if not gate.hold(ctx):
                    super().load(ctx)

        return GatedVault

    def hold(self, ctx: LoadContext) -> bool:
        """Hold ``ctx``'s file (its counts and notes set as the adapter's) or say why not."""
        why = self._cannot(ctx)
        data = ctx.path.read_bytes() if why is None else b""
        got = _read(data, ctx.max_record_bytes) if why is None else why
        if isinstance(got, str):
            self.whole[str(ctx.path)] = got
            return False
        starts, ends, counted = got
        ctx.records += counted.records
        ctx.rejected += counted.rejected
        ctx.skipped_records += counted.skipped
        ctx.notes += counted.notes
        fi = len(self.files)
        escaped, slashed = escapes(data, starts, ends)
        held = HeldVault(
            ctx.file_id,
            ctx.path,
            ctx.format,
            ctx.max_record_bytes,
            data,
            starts,
            ends,
            counted.rids,
            escaped,
            slashed,
            bytearray(len(starts)),
        )
        self.files.append(held)
        for i, rid in enumerate(counted.rids):
            if rid is not None:
                self.by_rid.setdefault(rid, []).append((fi, i))
        return True

    @staticmethod
    def _cannot(ctx: LoadContext) -> str | None:
        if ctx.gzipped:
            return "gzip"
        if ctx.format != "vault-audit-jsonl":
            return f"framing {ctx.format}"
        size = ctx.path.stat().st_size
        if size > ctx.max_document_bytes:
            return "larger than 4 x --max-record-bytes"
        return None if size else "empty"

    def pending(self) -> bool:
        """Whether a held line is not loaded yet."""
        return any(not all(f.loaded) for f in self.files)

    def start(self, store: CaseStore) -> bool:
        """Before the rounds: a Vault file the runner loaded whole may pair with a held one's
        lines, so then every held file is loaded whole. Whether rows were added."""
        if self.files and self.whole:
            return self.rest(store, "a Vault file was loaded whole: " + _first(self.whole))
        return False

    def wants(self, found: Iterable[Needle], *, slash: bool) -> bool:
        """Whether a round has something to search: a needle of ``found`` not searched yet, or
        the ``\\/`` lines once a needle has a ``/`` (``slash``)."""
        return self.pending() and (bool(set(found) - self.searched) or (slash and not self.slash))

    def round(self, store: CaseStore, found: Iterable[Needle], *, slash: bool) -> bool:
        """Search the held lines for the needles of ``found`` not searched yet; load the lines
        they take. Whether rows were added."""
        found = set(found)
        if not self.wants(found, slash=slash):
            return False
        new = sorted(found - self.searched)
        first = self.rounds == 0
        self.rounds += 1
        self.searched |= set(new)
        take: set[tuple[int, int]] = set()
        for fi, f in enumerate(self.files):
            if first:
                take |= {(fi, i) for i in f.escaped}
            if slash and not self.slash:
                take |= {(fi, i) for i in f.slashed}
            take |= {(fi, i) for i in _holding(f, new)}
        self.slash = self.slash or slash
        return self._load(store, take)

    def rest(self, store: CaseStore, why: str) -> bool:
        """The whole path: every held line not loaded yet. Whether rows were added."""
        self.fallback = self.fallback or why
        take = {(fi, i) for fi, f in enumerate(self.files) for i in range(len(f.starts))}
        return self._load(store, take)

    def _load(self, store: CaseStore, take: set[tuple[int, int]]) -> bool:
        """``take``'s lines and every line of their request ids, through the unchanged adapter
        at their own positions; then the cross-file pairing and the de-duplication."""
        for fi, i in list(take):
            rid = self.files[fi].rids[i]
            if rid is not None:
                take.update(self.by_rid[rid])
        by_file: dict[int, list[int]] = {}
        for fi, i in take:
            if not self.files[fi].loaded[i]:
                by_file.setdefault(fi, []).append(i)
        if not by_file:
            return False
        con = store.con
        con.execute("BEGIN TRANSACTION")
        try:
            for fi, lines in sorted(by_file.items()):
                f = self.files[fi]
                ctx = LinesContext(
                    con, f.path, f.file_id, f.format, False, max_record_bytes=f.max_record_bytes
                )
                ctx.chunks = list(_runs(f, sorted(lines)))
                VaultAdapter().load(ctx)
                ctx.flush_rejects()
                for i in lines:
                    f.loaded[i] = 1
            VaultAdapter.finalize(con)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        dedup_events(store)
        return True

    def release(self) -> None:
        """Drop the held bytes (the rounds are over)."""
        for f in self.files:
            f.data = b""

    def as_dict(self) -> dict[str, Any]:
        lines = sum(len(f.starts) for f in self.files)
        return {
            "files_held": len(self.files),
            "files_whole": len(self.whole),
            "lines_held": lines,
            "lines_loaded": sum(sum(f.loaded) for f in self.files),
            "rounds": self.rounds,
            "needles": len(self.searched),
            "fallback": self.fallback,
        }


def _first(whole: dict[str, str]) -> str:
    path, why = next(iter(whole.items()))
    return f"{path} ({why})"


def _holding(f: HeldVault, needles: list[Needle]) -> set[int]:
    """The lines of ``f`` holding every string of one of ``needles``: the first string of each
    searched in the bytes (:func:`_found`), the rest in each line found."""
    at = _found(f, sorted({n[0] for n in needles}))
    out: set[int] = set()
    for needle in needles:
        lines, rest = at[needle[0]], [n.encode() for n in needle[1:]]
        if rest:
            lines = {i for i in lines if all(r in f.data[f.starts[i] : f.ends[i]] for r in rest)}
        out |= lines
    return out


def _found(f: HeldVault, words: list[str]) -> dict[str, set[int]]:
    """The lines of ``f`` holding each of ``words`` (``''``: every line). A few are searched one
    by one (:class:`~keytrail.scope.gate.Finder`'s memchr search, about 0.012 s each over d1m's
    86 MB); from :data:`ONE_PASS_FROM` on, all at once by one Aho-Corasick automaton, every
    occurrence reported (overlapping), whatever their number: 0.02-0.5 s there (0.5 when its
    prefilter finds nothing to skip), where a principal's 135-240 needles took 1.6-2.9 s one by
    one (docs/performance.md, scope17)."""
    at: dict[str, set[int]] = {w: set(range(len(f.starts))) for w in words if not w}  # '': all
    words = [w for w in words if w]
    if len(words) < ONE_PASS_FROM:
        for w in words:
            (one,) = Finder([w]).automata
            at[w] = {f.line_of(m[1]) for m in one.find_matches_as_indexes(f.data)}
        return at
    at |= {w: set() for w in words}
    every = ahocorasick_rs.BytesAhoCorasick([w.encode() for w in words])
    for k, start, _end in every.find_matches_as_indexes(f.data, overlapping=True):
        at[words[k]].add(f.line_of(start))
    return at


def _runs(f: HeldVault, lines: list[int]) -> Generator[tuple[int, int, bytes], None, None]:
    """``(byte_offset, line_no, chunk)`` of each run of consecutive ``lines`` (sorted)."""
    i = 0
    while i < len(lines):
        j = i
        while j + 1 < len(lines) and lines[j + 1] == lines[j] + 1:
            j += 1
        a, b = lines[i], lines[j]
        yield f.starts[a], a + 1, f.data[f.starts[a] : f.ends[b]]
        i = j + 1


@dataclass
class LinesContext(NoRawContext):
    """A scope's load context over some lines of a file, at their own positions."""

    chunks: list[tuple[int, int, bytes]] = field(default_factory=list)

    def windows(self, size: int = 32 << 20) -> Generator[tuple[int, int, bytes], None, None]:
        yield from self.chunks


def _read(data: bytes, cap: int) -> tuple[list[int], list[int], Counted] | str:
    lines = split_lines(data, cap)
    if isinstance(lines, str):
        return lines
    counted = count(data, *lines)
    return counted if isinstance(counted, str) else (*lines, counted)


def split_lines(data: bytes, cap: int) -> tuple[list[int], list[int]] | str:
    """Where each line starts and ends, when every line is a bare JSON object line (``{`` first,
    ``}`` last, shorter than ``cap``: the adapter reads each as one record); else why not."""
    if data.startswith(_BOM):
        return "a byte-order mark"
    starts: list[int] = []
    ends: list[int] = []
    n = len(data)
    pos = 0
    find = data.find
    while pos < n:
        eol = find(b"\n", pos)
        eol = n if eol < 0 else eol
        if eol == pos or data[pos] != 0x7B or data[eol - 1] != 0x7D:
            return f"line {len(starts) + 1} is not a bare JSON object"
        if eol - pos >= cap:
            return f"line {len(starts) + 1} is longer than --max-record-bytes"
        starts.append(pos)
        ends.append(eol)
        pos = eol + 1
    return starts, ends


def escapes(data: bytes, starts: list[int], ends: list[int]) -> tuple[list[int], list[int]]:
    """The lines holding a ``\\u`` escape, and those holding a ``\\/`` escape."""
    u: list[int] = []
    s: list[int] = []
    if b"\\" not in data:
        return u, s
    for i, (a, b) in enumerate(zip(starts, ends, strict=True)):
        line = data[a:b]
        if b"\\u" in line:
            u.append(i)
        if b"\\/" in line:
            s.append(i)
    return u, s


def count(data: bytes, starts: list[int], ends: list[int]) -> Counted | str:
    """The adapter's counts of a file of bare JSON lines (:meth:`VaultAdapter.load`'s pairing,
    :class:`~keytrail.ingest.vault.pairing.Pairing`), or why the gate cannot state them (a KMIP
    entry)."""
    parser = simdjson.Parser()
    pairs: Pairing[None] = Pairing()
    server_logs = rejected = 0
    rids: list[str | None] = []
    for a, b in zip(starts, ends, strict=True):
        line = data[a:b]
        got = _fast(parser, line) if line.isascii() and b"\\" not in line else None
        kind, typ, rid = got if got is not None else _slow(line)
        rids.append(rid if kind == "entry" else None)
        if kind == "bad":
            rejected += 1
        elif kind == "server-log":
            server_logs += 1
        elif typ in _KMIP:
            return "a KMIP entry"
        elif rid is not None and typ == "response":
            pairs.response(rid)
        elif rid is not None and typ == "request":
            pairs.request(rid, None)
    return Counted(
        len(starts),
        rejected,
        pairs.skipped,
        notes(pairs.merged, pairs.repeated, pairs.late, server_logs, 0),
        rids,
    )


def _fast(parser: simdjson.Parser, line: bytes) -> tuple[str, str | None, str | None] | None:
    """``(kind, type, request.id)`` of an ASCII line without a backslash, as
    :func:`~keytrail.ingest.vault.framing.iter_records` and the adapter state them, read by
    simdjson; ``None`` where simdjson cannot tell the same: JSON it refuses (integers past 64
    bits, which orjson reads as floats) or a key repeated in the object or its ``request``
    (simdjson takes the first, orjson the last). simdjson reads every other such line as orjson
    does (tests/unit/test_scope_vault_gate.py)."""
    try:
        doc = parser.parse(line)
    except Exception:  # noqa: BLE001 - whatever simdjson refuses, the adapter's reader decides
        return None
    try:
        return _classified(doc)
    finally:
        del doc  # the parser is free again


def _classified(doc: Any) -> tuple[str, str | None, str | None] | None:
    if not isinstance(doc, simdjson.Object):
        return "bad", None, None
    keys = list(doc.keys())
    if len(set(keys)) != len(keys):
        return None
    if "@message" in doc or "@level" in doc:
        return "server-log", None, None
    typ, req = doc.get("type"), doc.get("request")
    if not (
        isinstance(typ, str)
        and typ
        and (isinstance(req, simdjson.Object) or isinstance(doc.get("auth"), simdjson.Object))
    ):
        return "bad", None, None
    rid = None
    if isinstance(req, simdjson.Object):
        rkeys = list(req.keys())
        if len(set(rkeys)) != len(rkeys):
            return None
        got = req.get("id")
        rid = got if isinstance(got, str) and got else None
    return "entry", typ, rid


def _slow(line: bytes) -> tuple[str, str | None, str | None]:
    """``(kind, type, request.id)`` of a line as the adapter's own reader states them."""
    rec = next(iter_records(line))
    if rec.kind != "entry" or rec.obj is None:
        return rec.kind, None, None
    req = rec.obj.get("request")
    rid = req.get("id") if isinstance(req, dict) else None
    return "entry", str(rec.obj.get("type")), rid if isinstance(rid, str) and rid else None
