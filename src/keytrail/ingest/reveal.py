"""Read an event's original record back from its evidence file (``--reveal``, ``v`` in the explorer).

Secrets are masked at ingest (docs/security.md, "Secrets in the case"), so the case cannot show
them, by design: the case file can be handed over. A responder who holds the evidence and needs a
value (the session token an attacker used, to search for it elsewhere) reveals it from the
evidence itself:

1. the case must be one that masks at ingest (``case_meta`` ``secrets``); an older case stores
   secrets as logged and cannot be trusted to locate records, so it asks for a re-ingest;
2. the evidence file is found by the path stored at ingest and must still exist;
3. its SHA-256 must equal the one stored at ingest, or nothing is read from it (a changed file
   may not hold the same record at the same place, and may hold attacker text instead);
4. the record is read where ingest found it: at its byte offset (the JSON value or line starting
   there) for line and document formats; by its record number, re-reading the file with the same
   tolerant reader, for CloudTrail (the bulk ``Records`` scan does not report offsets); a file
   ingest converted from UTF-16/32 (or read past a BOM) is converted the same way first, since
   its offsets count in the converted text.

Nothing revealed is written anywhere; callers display it and forget it.
"""

from __future__ import annotations

import codecs
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from keytrail.errors import KeytrailError
from keytrail.ingest.base import MAX_RECORD_BYTES, read_sample
from keytrail.ingest.cloudtrail.parse import Rec, parse_console_csv, parse_json
from keytrail.ingest.runner import sha256_file
from keytrail.store.case import old_case_message
from keytrail.store.schema import SECRETS_MASKED

if TYPE_CHECKING:
    import duckdb


class RevealError(KeytrailError):
    """The original record cannot be read back: old case, missing or changed evidence (exit 2)."""

    exit_code = 2


@dataclass(frozen=True)
class Located:
    event_uid: str
    source: str
    format: str | None
    record_no: int | None
    byte_offset: int | None
    path: str
    sha256: str


class Revealer:
    """Reveals many events of one case, hashing each evidence file once."""

    def __init__(self, con: duckdb.DuckDBPyConnection, case: str | Path = "the case") -> None:
        self.con = con
        row = con.execute("SELECT value FROM case_meta WHERE key = 'secrets'").fetchone()
        if row is None or row[0] != SECRETS_MASKED:
            raise RevealError(old_case_message(Path(case)), "case from an older keytrail")
        self._checked: dict[str, str | None] = {}  # path -> problem (None: verified)
        self._ct: dict[str, dict[int, str]] = {}
        self._codecs: dict[str, str | None] = {}

    def locate(self, event_uid: str) -> Located:
        row = self.con.execute(
            """SELECT e.event_uid, e.source, e.format, e.record_no, e.byte_offset, v.path, v.sha256
               FROM events e JOIN evidence v USING (file_id) WHERE e.event_uid = ? OR e.source_event_id = ?
               ORDER BY (e.event_uid = ?) DESC LIMIT 1""",
            [event_uid, event_uid, event_uid],
        ).fetchone()
        if row is None:
            raise RevealError(
                f"no event {event_uid!r} in the case (or its evidence file is not recorded)"
            )
        return Located(*row)

    def original(self, event_uid: str) -> str:
        """The record as the evidence file holds it (decoded as UTF-8), secrets included.

        Raises:
            RevealError: the event is unknown, or its evidence file is missing or changed.
        """
        loc = self.locate(event_uid)
        self._verify(loc)
        if loc.source == "cloudtrail":
            return self._cloudtrail(loc)
        if loc.byte_offset is None:
            raise RevealError(
                f"{loc.event_uid}: the case does not record where this record starts in {loc.path}"
            )
        return _record_at(Path(loc.path), loc.byte_offset, codec=self._codec(loc.path))

    def _codec(self, path: str) -> str | None:
        """The text encoding ingest converted the file from (UTF-16/32, BOMs): offsets count in
        the UTF-8 text, so the file is read back through the same conversion."""
        if path not in self._codecs:
            self._codecs[path] = read_sample(Path(path), 8).codec
        return self._codecs[path]

    def _verify(self, loc: Located) -> None:
        if loc.path not in self._checked:
            p = Path(loc.path)
            if not p.is_file():
                problem: str | None = (
                    f"the evidence file {loc.path} is missing: the original record cannot be "
                    "read (the case holds the record with its secrets masked)"
                )
            else:
                now = sha256_file(p)
                problem = (
                    None
                    if now == loc.sha256
                    else (
                        f"the evidence file {loc.path} has changed since it was ingested (SHA-256 {now[:16]}..., "
                        f"at ingest {loc.sha256[:16]}...): nothing is read from it"
                    )
                )
            self._checked[loc.path] = problem
        problem = self._checked[loc.path]
        if problem:
            raise RevealError(problem, "evidence not available")

    def _cloudtrail(self, loc: Located) -> str:
        if loc.path not in self._ct:
            data = _decompressed(Path(loc.path), codec=self._codec(loc.path))
            text = data.decode("utf-8", errors="replace")
            items = (
                parse_console_csv(text)
                if loc.format == "cloudtrail-console-csv"
                else parse_json(text)
            )
            self._ct[loc.path] = {i.record_no: i.text for i in items if isinstance(i, Rec)}
        found = self._ct[loc.path].get(loc.record_no or 0)
        if found is None:
            raise RevealError(
                f"{loc.event_uid}: record {loc.record_no} is not readable in {loc.path}"
            )
        return found


def _decompressed(path: Path, limit: int = 4 * MAX_RECORD_BYTES, codec: str | None = None) -> bytes:
    return b"".join(_blocks(path, limit, codec))


def _blocks(path: Path, limit: int, codec: str | None = None) -> Iterator[bytes]:
    """Decompressed content (gz or plain) as UTF-8, at most ``limit`` bytes, streamed; a file in
    another ``codec`` is converted as ingest converted it (undecodable bytes become U+FFFD)."""
    if codec is None:
        yield from _raw_blocks(path, limit)
        return
    dec = codecs.getincrementaldecoder(codec)("replace")
    total = 0
    for chunk in _raw_blocks(path, 4 * limit):
        out = dec.decode(chunk).encode("utf-8")[: limit - total]
        total += len(out)
        yield out
        if total >= limit:
            return
    yield dec.decode(b"", final=True).encode("utf-8")[: limit - total]


def _raw_blocks(path: Path, limit: int) -> Iterator[bytes]:
    """Decompressed content (gz or plain), at most ``limit`` bytes, streamed."""
    with path.open("rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
        fh.seek(0)
        d = zlib.decompressobj(16 + zlib.MAX_WBITS) if gz else None
        total = 0
        while total < limit and (chunk := fh.read(1 << 16)):
            data = chunk
            while data and total < limit:
                if d is None:
                    out, data = data, b""
                else:
                    if d.eof:
                        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    try:
                        out = d.decompress(data, 1 << 20)
                    except zlib.error:
                        return
                    data = d.unconsumed_tail or (d.unused_data if d.eof else b"")
                out = out[: limit - total]
                total += len(out)
                yield out


def _record_at(
    path: Path, offset: int, cap: int = MAX_RECORD_BYTES, codec: str | None = None
) -> str:
    """The JSON value (a one-line or pretty-printed object) or, failing that, the line at ``offset``.

    Reads past the offset only as far as the record goes (at most ``cap`` bytes are held)."""
    buf = bytearray()
    pos = 0
    for block in _blocks(path, offset + cap, codec):
        if pos + len(block) <= offset:
            pos += len(block)
            continue
        buf += block[max(0, offset - pos) :]
        pos += len(block)
        found = _complete(bytes(buf))
        if found is not None:
            return found
    text = bytes(buf).decode("utf-8", errors="replace")
    return text.split("\n", 1)[0].rstrip("\r")


def _complete(data: bytes) -> str | None:
    """The record at the start of ``data`` if it is complete in it, else None."""
    text = data.decode("utf-8", errors="replace")
    body = text.lstrip(" \t")
    if body[:1] in ("{", "["):
        try:
            _, end = json.JSONDecoder().raw_decode(body)
            return body[:end]
        except ValueError:
            return None
    if "\n" in text:
        return text.split("\n", 1)[0].rstrip("\r")
    return None
