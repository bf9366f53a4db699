"""CloudTrail adapter: every shape a responder is handed, bulk-loaded through DuckDB.

Formats (recognised by content, never by file name; see ``docs/formats/cloudtrail.md``):

- ``cloudtrail-records``: ``{"Records":[...]}`` files, gz or plain, one line or pretty;
  S3 delivery trees (account and organization layouts) are directories of these;
- ``cloudtrail-array``: a JSON array of records (console Event history JSON, Stratus logs);
- ``cloudtrail-json``: one or more (pretty-printed) record objects back to back;
- ``cloudtrail-jsonl``: one record per line (SIEM exports, ``jq -c '.Records[]'``);
- ``cloudtrail-lookup-events``: ``aws cloudtrail lookup-events`` output (``CloudTrailEvent``
  is the record as an embedded JSON string);
- ``cloudtrail-cwl``: CloudWatch Logs exports (``<timestamp> <json>`` lines or
  ``{"timestamp":..,"message":"<json>"}``);
- ``cloudtrail-eventbridge``: ``AWS API Call via CloudTrail`` envelopes (record in ``detail``);
- ``cloudtrail-console-csv``: console Event history CSV (``CloudTrail event`` column).

Speed: ``Records`` files are read ``BATCH_FILES`` at a time by one DuckDB
``read_json_objects`` scan on a separate cursor (so a malformed file cannot abort the
ingest transaction), unnested into an Arrow table of record texts, and mapped to case
rows in SQL (:mod:`keytrail.ingest.cloudtrail.sql`). Python never loops over those
records. A batch the scan refuses is retried file by file; a file it still refuses, and
every other shape, goes through the tolerant reader (:mod:`keytrail.ingest.cloudtrail.parse`),
which keeps every good record and rejects the bad ones with their position.
"""

from __future__ import annotations

import importlib
import re
import zlib
from typing import TYPE_CHECKING, Any, ClassVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

try:  # ISA-L's inflate: 3.6x zlib's speed on CloudTrail files (docs/performance.md, session 8)
    _gz: Any = importlib.import_module("isal.isal_zlib")
except ImportError:  # no wheel for this platform: the standard library's zlib, same bytes
    _gz = zlib
#: What a bad or truncated stream raises (ISA-L's error is not a ``zlib.error``).
_GZ_ERRORS: tuple[type[BaseException], ...] = (zlib.error, _gz.error)
#: What a file's read or inflate raises when it cannot be read (:func:`read_bytes`).
_READ_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, *_GZ_ERRORS)

from keytrail.ingest.base import LoadContext, ReadAheadHandle, ReadAheads, Sample, SourceAdapter
from keytrail.ingest.cloudtrail.ahead import ReadAhead, Staged
from keytrail.ingest.cloudtrail.parse import Bad, Rec, parse_console_csv, parse_json
from keytrail.ingest.cloudtrail.sql import insert_staged, map_staged

if TYPE_CHECKING:
    from collections.abc import Iterable
    from concurrent.futures import Executor
    from pathlib import Path

#: A CloudTrail record is somewhere in the sample (also inside escaped JSON strings).
_CT_SOURCE = re.compile(r'\\*"eventSource\\*"\s*:\s*\\*"[A-Za-z0-9.-]+\.amazonaws\.com\\*"')
_CT_NAME = re.compile(r'\\*"eventName\\*"\s*:')
_CWL_LINE = re.compile(r"\d{4}-\d\d-\d\d[T ][0-9:.]+(?:Z|[+-]\d\d:?\d\d)?[ \t]+\{")
_DIGEST = re.compile(r'"digestStartTime"\s*:|"logFiles"\s*:\s*\[')

#: Largest single JSON document the bulk scan accepts; bigger files use the tolerant reader. DuckDB
#: allocates read buffers of about twice this per thread, so it must stay well under the writer's
#: memory limit (``store.case.WRITER_MEMORY_LIMIT``) or every scan fails and falls back.
MAX_OBJECT_BYTES = 64 * 1024 * 1024

_STAGE_SCHEMA = pa.schema(
    [
        ("file_id", pa.int32()),
        ("record_no", pa.int64()),
        ("byte_offset", pa.int64()),
        ("format", pa.string()),
        ("rec", pa.string()),
    ]
)

_DOC_ROWS = """
SELECT file_id, generate_subscripts(recs, 1)::BIGINT AS record_no, NULL::BIGINT AS byte_offset,
       format, unnest(recs)::VARCHAR AS rec
FROM (SELECT file_id, format, json_extract(doc, '$.Records[*]') AS recs FROM _kt_ct_docs)
"""


def _sniff_text(text: str) -> str | None:
    t = text.lstrip("\ufeff").lstrip()
    if not t:
        return None
    head = t[:4096]
    first_line = head.split("\n", 1)[0]
    if "cloudtrail event" in first_line.lower() and (
        "event id" in first_line.lower() or "event name" in first_line.lower()
    ):
        return "cloudtrail-console-csv"
    if not (_CT_SOURCE.search(t) and _CT_NAME.search(t)):
        return None
    if t[0] == "{":
        if _DIGEST.search(head) and '"Records"' not in head:
            return None
        if re.match(r'\{\s*"Records"\s*:', t) or '"Records"' in head[:2048]:
            return "cloudtrail-records"
        if '"CloudTrailEvent"' in head:
            return "cloudtrail-lookup-events"
        if '"detail-type"' in head:
            return "cloudtrail-eventbridge"
        if '"message"' in first_line and '"eventSource"' not in first_line:
            return "cloudtrail-cwl"
        if first_line.rstrip().endswith("}") and _CT_SOURCE.search(first_line):
            return "cloudtrail-jsonl"
        return "cloudtrail-json"
    if t[0] == "[":
        return "cloudtrail-lookup-events" if '"CloudTrailEvent"' in head else "cloudtrail-array"
    if _CWL_LINE.match(t):
        return "cloudtrail-cwl"
    return None


class CloudTrailAdapter(SourceAdapter):
    NAME = "cloudtrail"
    SOURCE = "cloudtrail"
    PRIORITY = 30
    #: Files per DuckDB scan: large enough to amortise the scan, small enough to keep memory flat.
    BATCH_FILES: ClassVar[int] = 128
    # ~24 MiB of .json.gz is ~250 MiB of JSON: at 1M events in 3000-record files, 128 files
    # per batch held ~1 GiB of records in flight and peaked at 2.5 GiB RSS. Since batches are
    # read ahead (two in flight: ``ahead``), 16 MiB: 1M peaked at 1.42 GiB with 24, 1.31 with 16.
    BATCH_BYTES: ClassVar[int] = 16 << 20
    READS_AHEAD: ClassVar[bool] = True

    @classmethod
    def sniff(cls, sample: Sample) -> str | None:
        return _sniff_text(sample.text)

    def load(self, ctx: LoadContext) -> None:
        self.load_batch([ctx])

    @classmethod
    def read_ahead(
        cls,
        con: duckdb.DuckDBPyConnection,
        files: list[tuple[Path, str, bool]],
        max_record_bytes: int,
        pool: Executor,
        spare: bool = False,
    ) -> ReadAhead | None:
        """With ``spare``, the read-ahead also masks ``raw`` (:func:`~keytrail.ingest.cloudtrail.
        sql.stage_select` ``premask``), which the writer would do otherwise."""
        records = [(p, gz) for p, fmt, gz in files if fmt == "cloudtrail-records"]
        if not records:
            return None
        return ReadAhead(con, records, max_record_bytes, pool, bulk_read, premask=spare)

    def load_read_ahead(self, ctxs: list[LoadContext], ahead: ReadAheadHandle) -> None:
        parts = ahead.parts if isinstance(ahead, ReadAheads) else [ahead]
        staged = [s for p in parts if isinstance(p, ReadAhead) and (s := p.staged()) is not None]
        self.load_batch(ctxs, staged)

    def load_batch(
        self, ctxs: list[LoadContext], ahead: Staged | list[Staged] | None = None
    ) -> None:
        """Bulk-read the ``Records`` files (or take them as staged ahead, in one part or more),
        salvage the rest."""
        if not ctxs:
            return
        con = ctxs[0].con
        bulk = [c for c in ctxs if c.format == "cloudtrail-records"]
        slow = [c for c in ctxs if c.format != "cloudtrail-records"]
        counts: dict[int, tuple[int, int]] = {}
        refused: list[LoadContext] = []
        for part in [ahead] if isinstance(ahead, Staged) else ahead or []:
            # files a read-ahead covered: only their refused ones are left
            index = {p: i for i, p in enumerate(part.paths)}
            ids = [0] * len(part.paths)
            for c in bulk:
                if str(c.path) in index:
                    ids[index[str(c.path)]] = c.file_id
            if part.table is not None:
                counts |= insert_staged(
                    ctxs[0], part.table, ids, part.resources, part.issues, part.premasked
                )
            refused += [c for c in bulk if str(c.path) in part.refused]
            bulk = [c for c in bulk if str(c.path) not in index]
        slow = refused + slow
        parts: list[pa.Table] = []
        if bulk:
            table, refused = bulk_read(con, bulk)
            if table is not None:
                parts.append(table)
            slow = refused + slow
        for ctx in slow:
            parts.append(_tolerant_read(ctx))
        if parts:
            counts |= map_staged(ctxs[0], pa.concat_tables(parts))
        for ctx in ctxs:
            records, rejected = counts.get(ctx.file_id, (0, 0))
            ctx.records += records
            ctx.rejected += rejected


def bulk_read(
    con: duckdb.DuckDBPyConnection, ctxs: list[LoadContext]
) -> tuple[pa.Table | None, list[LoadContext]]:
    """The staged records of ``Records`` files, and the files refused (for the tolerant reader).

    One parse per file: each file is decompressed here (zlib releases the GIL) and its document
    parsed once by DuckDB's ``json_extract``, on its own cursor (a failing parse cannot abort the
    ingest transaction), a few files per query. DuckDB's ``read_json_objects`` parsed each file
    a first time only to find its one object (40 files, 113k records: 1.06-1.14 CPU-s against
    0.67-0.82). The refusals are those of that scan: a ``.gz`` name that does not inflate, a
    document over the bound, text that is not UTF-8, not exactly one JSON document, no records
    (``Records`` missing, empty or not an array): a query that fails is retried file by file."""
    limit = bulk_limit(ctxs[0])
    parts: list[pa.Table] = []
    refused: list[LoadContext] = []
    chunk: list[tuple[LoadContext, pa.Array]] = []
    held = 0
    for c in ctxs:
        # the inflated bytes wrapped, not copied: the query only reads them (0.26 against 0.30
        # CPU-s for a batch of 30 files, 153 MB)
        doc = read_document(c, limit, share=True)
        if doc is None:
            refused.append(c)
            continue
        chunk.append((c, doc))
        held += doc.nbytes
        if held >= _CHUNK_BYTES:
            parts += _parse_documents(con, chunk, refused)
            chunk, held = [], 0
    if chunk:
        parts += _parse_documents(con, chunk, refused)
    if not parts:
        return None, refused
    table = pa.concat_tables(parts)
    # Refuse (for the tolerant reader) files with no records and files whose record numbers
    # repeat or skip.
    stats = table.group_by("file_id").aggregate([("record_no", "count"), ("record_no", "max")])
    ok = {
        int(f)
        for f, n, m in zip(
            stats["file_id"].to_pylist(),
            stats["record_no_count"].to_pylist(),
            stats["record_no_max"].to_pylist(),
        )
        if n == m
    }
    done = {c.file_id for c in refused}
    refused += [c for c in ctxs if c.file_id not in ok and c.file_id not in done]
    if len(ok) < len(set(stats["file_id"].to_pylist())):
        table = table.filter(pc.is_in(table["file_id"], pa.array(sorted(ok), pa.int32())))
    order = {id(c): i for i, c in enumerate(ctxs)}
    refused.sort(key=lambda c: order[id(c)])
    return table.cast(_STAGE_SCHEMA), refused


def bulk_limit(ctx: LoadContext) -> int:
    """The inflated bytes past which :func:`bulk_read` refuses a file. DuckDB's scan held whole
    documents up to about twice max(maximum_object_size, 16 MiB) (its read buffers); the same
    bound keeps the same files on this path (measured at 1-134 MB)."""
    return 2 * max(min(MAX_OBJECT_BYTES, ctx.max_document_bytes), _DUCKDB_MIN_OBJECT)


#: Decompressed document bytes per query (memory: this, its records' text, twice at most).
_CHUNK_BYTES = 16 << 20
_DUCKDB_MIN_OBJECT = 16 << 20


def read_document(ctx: LoadContext, limit: int, *, share: bool = False) -> pa.Array | None:
    """One file's text as a one-value Arrow array; ``None`` where DuckDB's scan refused the file
    (compression is chosen by the ``.gz`` name, as DuckDB's ``compression = 'auto'`` did). Also
    the scope's one-parse pass (:mod:`keytrail.scope.narrow`) and its needle gate
    (:mod:`keytrail.scope.gate`) read their files here, so all are bounded the same way against a
    file that inflates to gigabytes.

    ``share``: the array wraps the inflated bytes instead of copying them (the gate reads every
    file once per round and only searches it: the copy's fresh pages cost about 0.6 CPU-s per
    round at 1M events; :func:`bulk_read` only parses it)."""
    data = read_bytes(ctx, limit)
    return None if data is None else as_document(data, share=share)


def as_document(data: bytes, *, share: bool = False) -> pa.Array | None:
    """:func:`read_document` of bytes already read: ``None`` where they are not UTF-8."""
    try:
        doc = (
            pa.Array.from_buffers(
                pa.large_binary(),
                1,
                [None, pa.array([0, len(data)], pa.int64()).buffers()[1], pa.py_buffer(data)],
            )
            if share
            else pa.array([data], pa.large_binary())
        )
        # ASCII is UTF-8: only other text needs the check (the cast, 1.6 CPU-s at 1M records)
        return doc.view(pa.large_string()) if data.isascii() else doc.cast(pa.large_string())
    except pa.ArrowInvalid:
        return None


def read_bytes(ctx: LoadContext, limit: int) -> bytes | None:
    """One file's bytes, inflated (by the ``.gz`` name) and not checked as text: what
    :func:`read_document` wraps; ``None`` past ``limit`` bytes or where the read or the inflate
    fails. The scope's gate searches a file's bytes again in its later rounds with it (the text
    was checked the first time)."""
    gz = ctx.path.name.lower().endswith(".gz")
    try:
        if not gz and ctx.path.stat().st_size > limit:
            return None
        data = _inflate(ctx.path.read_bytes(), limit) if gz else ctx.path.read_bytes()
    except _READ_ERRORS:
        return None
    return None if data is None or len(data) > limit else data


def _inflate(data: bytes, limit: int) -> bytes | None:
    """Every gzip member of ``data``, inflated; ``None`` past ``limit`` bytes (a small file that
    inflates to gigabytes costs ``limit``, not the machine). Raises on a truncated or bad stream
    (a file refused here goes to the tolerant reader, whose messages are zlib's). ISA-L releases
    the GIL as zlib does: the read-ahead threads inflate side by side."""
    out: list[bytes] = []
    total = 0
    while data:
        d = _gz.decompressobj(16 + zlib.MAX_WBITS)
        part = d.decompress(data, limit + 1 - total)
        total += len(part)
        if total > limit:
            return None
        if not d.eof:
            raise EOFError("truncated gzip stream")
        out.append(part)
        data = d.unused_data
    return b"".join(out)


def _parse_documents(
    con: duckdb.DuckDBPyConnection,
    chunk: list[tuple[LoadContext, pa.Array]],
    refused: list[LoadContext],
) -> list[pa.Table]:
    """The records of ``chunk``'s documents (one Arrow batch per file, so DuckDB's threads split
    them); a query that fails is retried file by file, and a file that fails alone is refused."""
    docs = pa.Table.from_batches(
        [
            pa.record_batch(
                [pa.array([c.file_id], pa.int32()), pa.array([c.format], pa.string()), d],
                names=["file_id", "format", "doc"],
            )
            for c, d in chunk
        ]
    )
    cur = con.cursor()  # its own connection: a failing parse cannot abort the ingest transaction
    try:
        cur.register("_kt_ct_docs", docs)
        return [fetch_arrow(cur.sql(_DOC_ROWS))]
    except duckdb.Error:
        if len(chunk) == 1:
            refused.append(chunk[0][0])
            return []
        return [t for one in chunk for t in _parse_documents(con, [one], refused)]
    finally:
        cur.close()


def fetch_arrow(rel: Any) -> pa.Table:
    for name in ("to_arrow_table", "fetch_arrow_table"):  # DuckDB 2 / 1.x spelling
        if hasattr(rel, name):
            result = getattr(rel, name)()
            return result if isinstance(result, pa.Table) else result.read_all()
    raise RuntimeError("this DuckDB build cannot return Arrow tables")


def _tolerant_read(ctx: LoadContext) -> pa.Table:
    """Salvage every good record of one file; reject the rest with position and reason."""
    data = ctx.read_all()
    text = data.decode("utf-8", errors="replace")
    items: Iterable[Rec | Bad] = (
        parse_console_csv(text) if ctx.format == "cloudtrail-console-csv" else parse_json(text)
    )
    nos: list[int] = []
    offs: list[int | None] = []
    recs: list[str] = []
    for item in items:
        if isinstance(item, Rec) and len(item.text) > ctx.max_record_bytes:
            ctx.reject(
                f"record longer than --max-record-bytes ({ctx.max_record_bytes} bytes): {len(item.text)} "
                "characters",
                record_no=item.record_no,
                byte_offset=item.byte_offset,
                excerpt=item.text[:512],
            )
            ctx.records += 1
            continue
        if isinstance(item, Rec):
            nos.append(item.record_no)
            offs.append(item.byte_offset)
            recs.append(item.text)
            continue
        ctx.reject(
            item.reason,
            record_no=item.record_no,
            byte_offset=item.byte_offset,
            excerpt=item.excerpt,
        )
        if item.is_record:
            ctx.records += 1
        if "(truncated)" in item.reason and ctx.break_note is None:
            ctx.break_note = item.reason
    n = len(recs)
    return pa.table(
        {
            "file_id": pa.array([ctx.file_id] * n, pa.int32()),
            "record_no": pa.array(nos, pa.int64()),
            "byte_offset": pa.array(offs, pa.int64()),
            "format": pa.array([ctx.format] * n, pa.string()),
            "rec": pa.array(recs, pa.string()),
        },
        schema=_STAGE_SCHEMA,
    )
