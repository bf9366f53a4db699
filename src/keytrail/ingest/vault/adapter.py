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

from functools import cache
from itertools import accumulate
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa

from keytrail.ingest.base import SNIFF_BYTES, LoadContext, Sample, SourceAdapter, arrow_type
from keytrail.ingest.vault.bulk import BulkFile
from keytrail.ingest.vault.bulk_sql import STAGED
from keytrail.ingest.vault.framing import Record, iter_records, sniff_label
from keytrail.ingest.vault.rows import Entry, Rows, build, build_kmip, build_server_log, raw_hash
from keytrail.store.schema import TABLES_BY_NAME

if TYPE_CHECKING:
    import duckdb

#: Events per insert batch (bounds memory on big files).
BATCH_EVENTS = 20_000


class _Writer:
    """Buffers rows and appends them to the case in Arrow batches.

    Every row dict of a table has all of its columns, so a batch turns into columns with one
    C-level ``itemgetter`` per row and one ``zip`` (no per-cell Python work).

    With ``staged`` (the bulk reader) batches go to temp tables ``_kt_vs_<table>`` with the
    position each row has in the order the sequential reader writes them (``key``: phase, line
    number; see :mod:`keytrail.ingest.vault.bulk`), so the SQL rows and these can be written to
    the case in that order (evidence lists capped after ``ORDER BY time`` follow it on ties).
    """

    def __init__(self, ctx: LoadContext) -> None:
        self.ctx = ctx
        self.events: list[dict[str, Any]] = []
        self.resources: list[dict[str, Any]] = []
        self.issues: list[dict[str, Any]] = []
        self.count = 0
        self.staged = False
        self.key = (0, 0)  # set by the reader before ``add``
        self.keys: dict[str, list[tuple[int, int, int]]] = {t: [] for t in STAGED}
        self.seq = 0

    def add(self, rows: Rows) -> None:
        if self.staged:
            self._keys(rows)
        if rows.event is None:  # credential issues only (bulk.py: the event is written in SQL)
            self.issues.extend(rows.issues)
            if len(self.issues) >= BATCH_EVENTS:
                self.flush()
            return
        self.events.append(rows.event)
        if rows.resources:
            self.resources.extend(rows.resources)
        if rows.issues:
            self.issues.extend(rows.issues)
        self.count += 1
        if len(self.events) >= BATCH_EVENTS:
            self.flush()

    def _keys(self, rows: Rows) -> None:
        phase, key = self.key
        for table, n in (
            ("events", 0 if rows.event is None else 1),
            ("event_resources", len(rows.resources)),
            ("credential_issues", len(rows.issues)),
        ):
            for _ in range(n):
                self.seq += 1
                self.keys[table].append((phase, key, self.seq))

    def flush(self) -> None:
        for table, rows in (
            ("events", self.events),
            ("event_resources", self.resources),
            ("credential_issues", self.issues),
        ):
            if not rows:
                continue
            arrow = _to_arrow(table, rows)
            if not self.staged:
                self.ctx.insert(table, arrow)
                continue
            keys = self.keys[table]
            for i, name in enumerate(("_phase", "_key", "_seq")):
                arrow = arrow.append_column(name, pa.array([k[i] for k in keys], pa.int64()))
            self.keys[table] = []
            con = self.ctx.con
            con.register("_kt_vs_new", arrow)
            try:
                con.execute(f"INSERT INTO {STAGED[table]} BY NAME SELECT * FROM _kt_vs_new")
            finally:
                con.unregister("_kt_vs_new")
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
                pa.py_buffer(b"".join(values)),
            )  # type: ignore[arg-type]
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
    """Arrow schema of the columns this adapter writes (every row dict has all of them)."""
    return pa.schema(
        [(c.name, arrow_type(c.type)) for c in TABLES_BY_NAME[table].columns if c.name != "file_id"]
    )


class VaultAdapter(SourceAdapter):
    NAME = "vault"
    SOURCE = "vault"
    PRIORITY = 40

    @classmethod
    def sniff(cls, sample: Sample) -> str | None:
        return sniff_label(sample.head, complete=len(sample.head) < SNIFF_BYTES)

    def load(self, ctx: LoadContext) -> None:
        if ctx.format == "vault-audit-pretty":  # an object spans lines: one document
            load_sequential(ctx, ctx.read_all(), pretty=True)
            return
        # Line-oriented: DuckDB reads the lines it is sure of, the loop the rest (bulk.py).
        loop = _Loop(ctx)
        loop.sql_pairs = loop.out.staged = True
        bulk = BulkFile(ctx, loop.feed)
        bulk.read()
        sql_records, merged, repeated, late = bulk.pair(loop.out, ctx.format)
        loop.records += sql_records
        loop.merged += merged
        loop.repeated += repeated
        loop.late += late
        loop.finish()  # the kmip and pending rows of the Python path, then everything in order
        bulk.write(STAGED)

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


def load_sequential(ctx: LoadContext, data: bytes, *, pretty: bool = False) -> None:
    """Read ``data`` record by record: pretty-printed files, and the reference the bulk reader of
    line-oriented files is held equal to (``tests/unit/test_ingest_vault_bulk.py``)."""
    loop = _Loop(ctx)
    for rec in iter_records(data, pretty=pretty):
        loop.feed(rec)
    loop.finish()


def _build_one(uid: str, entry: Entry, fmt: str) -> Rows:
    if entry.type == "request":
        return build(uid, entry, None, fmt)
    return build(uid, None, entry, fmt)


class _Loop:
    """The sequential reader: every record of a pretty-printed file, and in a line-oriented file
    the records DuckDB does not read (framing, server log lines, KMIP, broken lines...).

    With ``sql_pairs`` the requests and responses that have a ``request.id`` are only handed
    back (``feed`` returns them): :mod:`keytrail.ingest.vault.bulk` pairs them in SQL."""

    def __init__(self, ctx: LoadContext) -> None:
        self.ctx = ctx
        self.out = _Writer(ctx)
        self.sql_pairs = False
        self.pending: dict[str, Entry] = {}  # request entries waiting for their response
        self.answered: set[str] = set()  # request ids whose response has been written
        self.kmip_pending: dict[bytes, Entry] = {}
        self.merged = self.repeated = self.late = self.server_logs = self.kmip = 0
        self.records = 0

    def feed(self, rec: Record) -> Entry | None:
        ctx, out = self.ctx, self.out
        self.records += 1
        out.key = (0, rec.line_no)
        if rec.kind == "bad":
            ctx.reject(
                rec.reason or "unreadable record",
                record_no=rec.line_no,
                byte_offset=rec.offset,
                excerpt=rec.raw,
            )
            return None
        if rec.kind != "entry":  # server-log
            self.server_logs += 1
            out.add(
                build_server_log(
                    f"vault:log:{raw_hash(rec.text)}",
                    rec.line_no,
                    rec.offset,
                    rec.raw,
                    ctx.format,
                    rec.log_fields,
                    rec.obj,
                )
            )
            return None
        assert rec.obj is not None
        entry = Entry(rec.obj, rec.line_no, rec.offset, rec.raw)
        typ, rid = entry.type, entry.request_id
        if rid is not None and typ in ("request", "response") and self.sql_pairs:
            return entry
        pending = self.pending
        if rid is not None and typ == "response":
            req = pending.pop(rid, None)
            if req is not None:
                self.merged += 1
            self.answered.add(rid)
            out.add(build(f"vault:{rid}", req, entry, ctx.format))
            return None
        if rid is not None and typ == "request" and rid not in pending and rid not in self.answered:
            pending[rid] = entry
            return None
        if typ in ("kmip-request", "kmip-response"):
            self._kmip(entry)
        elif rid is None:
            # No request.id (older help operations): cannot be paired, kept as its own event.
            out.add(_build_one(f"vault:noid:{raw_hash(entry.raw)}", entry, ctx.format))
        elif typ == "request":  # a new request went into ``pending`` above
            if rid in pending:
                self.repeated += 1
            else:
                self.late += 1
        else:
            # Plugin-submitted or unknown entry types: their own event, keyed by id and type.
            out.add(_build_one(f"vault:{rid}:{typ}", entry, ctx.format))
        return None

    def _kmip(self, entry: Entry) -> None:
        self.kmip += 1
        fmt, kmip_pending = self.ctx.format, self.kmip_pending
        key = orjson.dumps(entry.obj.get("request"), option=orjson.OPT_SORT_KEYS)
        if entry.type == "kmip-request":
            if key in kmip_pending:  # an unanswered earlier request: keep it as its own event
                old = kmip_pending.pop(key)
                self.out.add(build_kmip(f"vault:kmip:{raw_hash(old.raw)}", old, None, fmt))
            kmip_pending[key] = entry
        else:
            req = kmip_pending.pop(key, None)
            if req is not None:
                self.merged += 1
            anchor = req or entry
            self.out.add(build_kmip(f"vault:kmip:{raw_hash(anchor.raw)}", req, entry, fmt))

    def finish(self) -> None:
        ctx, out = self.ctx, self.out
        for req in self.pending.values():
            out.key = (1, req.line_no)
            out.add(build(f"vault:{req.request_id}", req, None, ctx.format))
        for req in self.kmip_pending.values():
            out.key = (2, req.line_no)
            out.add(build_kmip(f"vault:kmip:{raw_hash(req.raw)}", req, None, ctx.format))
        out.flush()
        ctx.records += self.records
        ctx.skipped_records += self.merged + self.repeated + self.late
        if self.merged:
            ctx.notes.append(f"{self.merged} request entries merged into their response events")
        if self.repeated:
            ctx.notes.append(
                f"{self.repeated} repeated request entries (same request.id) not stored again"
            )
        if self.late:
            ctx.notes.append(
                f"{self.late} request entries written after their response, merged into it"
            )
        if self.server_logs:
            ctx.notes.append(
                f"{self.server_logs} Vault server log lines stored as vault:server-log events"
            )
        if self.kmip:
            ctx.notes.append(f"{self.kmip} KMIP entries stored as vault:kmip-* events")
