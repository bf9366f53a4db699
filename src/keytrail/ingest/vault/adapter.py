"""HashiCorp Vault / OpenBao audit logs -> events, resources and minted credentials.

Reads every framing Vault output arrives in (file-device JSON lines with or without an
operator ``prefix``, syslog headers, pretty-printed objects back to back, gz; see
:mod:`keytrail.ingest.vault.framing`) and pairs request and response entries on
``request.id`` into one event ``vault:<request.id>`` whose ``raw`` is the response
line (it repeats ``auth`` and ``request``). KMIP entries become ``vault:kmip-<Op>``
events; Vault server log lines mixed into the file become ``vault:server-log`` events
(they are the only record of automatic lease and token revocation).

Accounting, per file: every record is an event, a reject, or counted in
``skipped_records`` with the reason in the file's note (a request entry merged into
its response event, a repeated request entry). A request whose response arrives in a
later file is upgraded by :meth:`VaultAdapter.finalize`, in bulk SQL, before the
case-wide de-duplication.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from itertools import accumulate
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa

from keytrail.ingest.base import SNIFF_BYTES, LoadContext, Sample, SourceAdapter, arrow_type
from keytrail.ingest.vault.framing import Record, iter_records, sniff_label
from keytrail.ingest.vault.pairing import Pairing
from keytrail.ingest.vault.rows import Entry, Rows, build, build_kmip, build_server_log, raw_hash
from keytrail.store import carried
from keytrail.store.schema import TABLES_BY_NAME

if TYPE_CHECKING:
    import duckdb

#: Events per insert batch (bounds memory on big files).
BATCH_EVENTS = 20_000


class _Writer:
    """Buffers rows and appends them to the case in Arrow batches.

    Every row dict of a table has all of its columns, so a batch turns into columns with one
    C-level ``itemgetter`` per row and one ``zip`` (no per-cell Python work).
    """

    def __init__(self, ctx: LoadContext) -> None:
        self.ctx = ctx
        self.events: list[dict[str, Any]] = []
        self.resources: list[dict[str, Any]] = []
        self.issues: list[dict[str, Any]] = []
        self.count = 0

    def add(self, rows: Rows) -> None:
        self.events.append(rows.event)
        if rows.resources:
            self.resources.extend(rows.resources)
        if rows.issues:
            self.issues.extend(rows.issues)
        self.count += 1
        if len(self.events) >= BATCH_EVENTS:
            self.flush()

    def flush(self) -> None:
        for table, rows in (
            ("events", self.events),
            ("event_resources", self.resources),
            ("credential_issues", self.issues),
        ):
            if rows:
                self.ctx.insert(table, _to_arrow(table, rows))
        self.events, self.resources, self.issues = [], [], []


#: Columns whose values may be UTF-8 bytes (record text as read, JSON from orjson) rather than str.
_TEXT_COLUMNS = frozenset({"raw", "details", "attributes"})


def _to_arrow(table: str, rows: list[dict[str, Any]]) -> pa.Table:
    """The rows as an Arrow table typed like the case table (what ``from_pylist`` gives, faster).

    Text columns (``raw``, ``details``, ``attributes``) may hold UTF-8 bytes: see :func:`_text_array`.
    """
    schema = _schema(table)
    columns = zip(*map(itemgetter(*schema.names), rows), strict=True)
    return pa.Table.from_arrays(
        [
            _text_array(col) if f.name in _TEXT_COLUMNS else pa.array(col, f.type)
            for col, f in zip(columns, schema, strict=True)
        ],
        schema=schema,
    )


def _text_array(values: tuple[bytes | str, ...]) -> pa.Array:
    """A string array of ``values``, each bytes decoded as UTF-8 with replacement (or already a str).

    When every value is bytes and the lot is valid UTF-8 (the usual case), the array is the
    joined bytes plus offsets: one copy, no per-record decode, the same strings.
    """
    if all(v.__class__ is bytes for v in values):
        lengths = list(accumulate(map(len, values), initial=0))
        if lengths[-1] < 1 << 31:
            arr = pa.StringArray.from_buffers(
                len(values),
                pa.array(lengths, pa.int32()).buffers()[1],
                pa.py_buffer(b"".join(values)),  # type: ignore[arg-type]
            )
            try:
                arr.validate(full=True)  # UTF-8 checked: decoding would change nothing
                return arr
            except pa.ArrowInvalid:
                pass
    return pa.array(
        [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else v for v in values],
        pa.string(),
    )


@cache
def _schema(table: str) -> pa.Schema:
    """Arrow schema of the columns this adapter writes (every row dict has all of them; not
    the CloudTrail ingest's ``ct_*`` columns, :mod:`keytrail.store.carried`)."""
    return pa.schema(
        [
            (c.name, arrow_type(c.type))
            for c in TABLES_BY_NAME[table].columns
            if c.name != "file_id" and c.name not in carried.COLUMNS
        ]
    )


class VaultAdapter(SourceAdapter):
    NAME = "vault"
    SOURCE = "vault"
    PRIORITY = 40

    @classmethod
    def sniff(cls, sample: Sample) -> str | None:
        return sniff_label(sample.head, complete=len(sample.head) < SNIFF_BYTES)

    def load(self, ctx: LoadContext) -> None:
        out = _Writer(ctx)
        pairs: Pairing[Entry] = Pairing()
        kmip_pending: dict[bytes, Entry] = {}
        kmip_merged = server_logs = kmip = records = 0
        fmt = ctx.format
        add = out.add
        for rec in _records(ctx):
            records += 1
            if rec.kind == "entry":
                assert rec.obj is not None
                entry = Entry(rec.obj, rec.line_no, rec.offset, rec.raw)
                typ, rid = entry.type, entry.request_id
                if rid is not None and typ == "response":
                    add(build(f"vault:{rid}", pairs.response(rid), entry, fmt))
                    continue
                if rid is not None and typ == "request":
                    pairs.request(rid, entry)  # waits, or a repeat or late one: counted
                    continue
            elif rec.kind == "bad":
                ctx.reject(
                    rec.reason or "unreadable record",
                    record_no=rec.line_no,
                    byte_offset=rec.offset,
                    excerpt=rec.raw,
                )
                continue
            else:  # server-log
                server_logs += 1
                add(
                    build_server_log(
                        f"vault:log:{raw_hash(rec.text)}",
                        rec.line_no,
                        rec.offset,
                        rec.raw,
                        fmt,
                        rec.log_fields,
                        rec.obj,
                    )
                )
                continue
            if typ in ("kmip-request", "kmip-response"):
                kmip += 1
                key = orjson.dumps(entry.obj.get("request"), option=orjson.OPT_SORT_KEYS)
                if typ == "kmip-request":
                    if (
                        key in kmip_pending
                    ):  # an unanswered earlier request: keep it as its own event
                        old = kmip_pending.pop(key)
                        out.add(
                            build_kmip(f"vault:kmip:{raw_hash(old.raw)}", old, None, ctx.format)
                        )
                    kmip_pending[key] = entry
                else:
                    req = kmip_pending.pop(key, None)
                    if req is not None:
                        kmip_merged += 1
                    anchor = req or entry
                    out.add(
                        build_kmip(f"vault:kmip:{raw_hash(anchor.raw)}", req, entry, ctx.format)
                    )
            elif rid is None:
                # No request.id (older help operations): cannot be paired, kept as its own event.
                out.add(_build_one(f"vault:noid:{raw_hash(entry.raw)}", entry, ctx.format))
            else:
                # Plugin-submitted or unknown entry types: their own event, keyed by id and type.
                out.add(_build_one(f"vault:{rid}:{typ}", entry, ctx.format))
        for req in pairs.pending.values():
            out.add(build(f"vault:{req.request_id}", req, None, ctx.format))
        for req in kmip_pending.values():
            out.add(build_kmip(f"vault:kmip:{raw_hash(req.raw)}", req, None, ctx.format))
        out.flush()
        ctx.records += records
        ctx.skipped_records += pairs.skipped + kmip_merged
        ctx.notes += notes(
            pairs.merged + kmip_merged, pairs.repeated, pairs.late, server_logs, kmip
        )

    @classmethod
    def finalize(cls, con: duckdb.DuckDBPyConnection) -> None:
        """Pair request-only events with response events that came from another file.

        The response event takes the request's time and position (in ``details``), the
        request-only copy is deleted, and its file's ``skipped`` count and note say so.
        Runs before de-duplication, in bulk SQL, over the whole case.
        """
        con.execute(
            """CREATE OR REPLACE TEMP TABLE _kt_vault_req AS
               SELECT e.rowid AS rid, e.event_uid, e.file_id, e.record_no, e.byte_offset, e.time, e.time_raw
               FROM events e
               WHERE e.source = 'vault' AND e.details->>'entry' = 'request'
                 AND e.event_uid IN (SELECT event_uid FROM events
                                     WHERE source = 'vault' AND details->>'entry' IN ('response', 'pair'))"""
        )
        n = con.execute("SELECT count(*) FROM _kt_vault_req").fetchone()
        if n and n[0]:
            con.execute(
                """UPDATE events SET
                     details = json_merge_patch(events.details, json_object(
                        'entry', 'pair', 'request_file_id', r.file_id, 'request_record_no', r.record_no,
                        'request_byte_offset', r.byte_offset, 'request_time', r.time_raw)),
                     time = coalesce(r.time, events.time), time_raw = coalesce(r.time_raw, events.time_raw)
                   FROM (SELECT event_uid, arg_min(file_id, (file_id, record_no)) AS file_id,
                                arg_min(record_no, (file_id, record_no)) AS record_no,
                                arg_min(byte_offset, (file_id, record_no)) AS byte_offset,
                                arg_min(time, (file_id, record_no)) AS time,
                                arg_min(time_raw, (file_id, record_no)) AS time_raw
                         FROM _kt_vault_req GROUP BY event_uid) r
                   WHERE events.event_uid = r.event_uid AND events.source = 'vault'
                     AND events.details->>'entry' = 'response'"""
            )
            con.execute(
                """UPDATE evidence SET skipped = coalesce(skipped, 0) + r.n,
                          note = concat_ws('; ', note, r.n || ' request entries paired with responses in other files')
                   FROM (SELECT file_id, count(*) AS n FROM _kt_vault_req GROUP BY file_id) r
                   WHERE evidence.file_id = r.file_id"""
            )
            con.execute("DELETE FROM events WHERE rowid IN (SELECT rid FROM _kt_vault_req)")
        con.execute("DROP TABLE _kt_vault_req")


def notes(merged: int, repeated: int, late: int, server_logs: int, kmip: int) -> list[str]:
    """A file's notes from its pairing counts (what :meth:`VaultAdapter.load` appends; a scope's
    Vault gate states them of lines it counted, not built: :mod:`keytrail.scope.vault_gate`)."""
    out = []
    if merged:
        out.append(f"{merged} request entries merged into their response events")
    if repeated:
        out.append(f"{repeated} repeated request entries (same request.id) not stored again")
    if late:
        out.append(f"{late} request entries written after their response, merged into it")
    if server_logs:
        out.append(f"{server_logs} Vault server log lines stored as vault:server-log events")
    if kmip:
        out.append(f"{kmip} KMIP entries stored as vault:kmip-* events")
    return out


def _records(ctx: LoadContext) -> Iterator[Record]:
    """The file's records; line-oriented files are read in windows of whole lines (bounded memory
    whatever the file size, a line over ``--max-record-bytes`` rejected by the window reader)."""
    if ctx.format == "vault-audit-pretty":  # an object spans lines: one document
        yield from iter_records(ctx.read_all(), pretty=True)
        return
    for base_off, base_line, chunk in ctx.windows():
        for rec in iter_records(chunk):
            rec.line_no += base_line - 1
            rec.offset += base_off
            yield rec


def _build_one(uid: str, entry: Entry, fmt: str) -> Rows:
    if entry.type == "request":
        return build(uid, entry, None, fmt)
    return build(uid, None, entry, fmt)
