"""The adapter contract: how a log family gets from files into the case.

An adapter is a class with a content sniffer and a loader. The runner
(:mod:`keytrail.ingest.runner`) hashes each file, asks every adapter's ``sniff``
in priority order, opens one transaction per file (or per batch for adapters that
set ``BATCH_FILES``), and hands the adapter a :class:`LoadContext` to write through.

Adapters write only the *ingested* tables (``events``, ``event_resources``,
``credential_issues``, ``inventory_agents``, ``grants``, ``rejects``). De-duplication, per-file
counts and time ranges, and every derived table are computed afterwards in bulk by
:mod:`keytrail.ingest.finalize`, so adapters may insert an event that is already in
the case; the earliest copy wins.

Invariants an adapter must keep:
- never raise on a bad record: call :meth:`LoadContext.reject` and carry on;
- never drop a record silently: every record is an event, a reject, or counted in
  ``ctx.skipped_records`` with a reason (e.g. a Vault request entry merged into its
  response);
- keep the raw record text in ``events.raw``; write through :meth:`LoadContext.insert`,
  :meth:`LoadContext.insert_sql` and :meth:`LoadContext.reject`, which mask secret values
  (:func:`keytrail.store.sqltext.mask_stored_sql`) in DuckDB before anything is stored.
"""

from __future__ import annotations

import gzip
import io
import zlib
from abc import ABC, abstractmethod
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from keytrail.ingest.encoding import as_utf8, text_codec
from keytrail.redact import VAULT_TOKEN_HINT
from keytrail.store.schema import TABLES_BY_NAME, masked_columns
from keytrail.store.sqltext import mask_stored_sql

if TYPE_CHECKING:
    from concurrent.futures import Executor

    import duckdb

SNIFF_BYTES = 256 * 1024
EXCERPT_CHARS = 512
#: Default ``--max-record-bytes``: far above any real record (CloudTrail caps events at 256 KB;
#: a Vault response or an OTLP export line with thousands of spans is a few MB), and low enough
#: that the few copies a reader makes of one record (bytes, text, parsed, Arrow) stay well under
#: the 1.5 GiB peak the ingest promises.
MAX_RECORD_BYTES = 64 << 20
#: Rejects held before they are written (:meth:`LoadContext.reject`): rows, bytes of excerpts.
REJECT_BATCH = 4096
REJECT_BYTES = 32 << 20
#: One reject: ``(reason, record_no, byte_offset, excerpt)``.
RejectRow = tuple[str, int | None, int | None, bytes | str | None]

#: Necessary for :func:`keytrail.store.sqltext.mask_stored_sql` to change a text (see
#: :func:`unchanged_by_masking`).
_MAY_CHANGE = f"[:=]|{VAULT_TOKEN_HINT}"

#: Tables an adapter may append to.
WRITABLE_TABLES = (
    "events",
    "event_resources",
    "credential_issues",
    "inventory_agents",
    "grants",
    "rejects",
)


@dataclass(frozen=True)
class Sample:
    """What a sniffer sees: the path and the first bytes (decompressed when gz)."""

    path: Path
    head: bytes
    gzipped: bool
    codec: str | None = None
    """Set when the file is not plain UTF-8 (BOM, UTF-16, UTF-32): ``head`` is already UTF-8."""

    @property
    def text(self) -> str:
        return self.head.decode("utf-8", errors="replace")


def is_gzip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def read_sample(path: Path, limit: int = SNIFF_BYTES) -> Sample:
    gz = is_gzip(path)
    if gz:
        head = b""
        try:
            with gzip.open(path, "rb") as fh:
                head = fh.read(limit)
        except (OSError, EOFError, zlib.error):
            # Truncated or corrupt gzip: sniff what decompresses.
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            with path.open("rb") as fh:
                try:
                    head = d.decompress(fh.read(limit * 4), limit)
                except zlib.error:
                    head = b""
    else:
        with path.open("rb") as fh:
            head = fh.read(limit)
    codec = text_codec(head)
    if codec is not None:
        return Sample(path, as_utf8(head, codec), gz, codec)
    return Sample(path, head, gz)


@dataclass
class LoadContext:
    """One input file being loaded inside the runner's transaction."""

    con: duckdb.DuckDBPyConnection
    path: Path
    file_id: int
    format: str
    gzipped: bool
    records: int = 0
    rejected: int = 0
    skipped_records: int = 0
    #: Set when the file stopped early (truncated gzip, unreadable tail); status becomes ``partial``.
    break_note: str | None = None
    notes: list[str] = field(default_factory=list)
    #: ``--max-record-bytes``: a longer record is a reject; whole-document readers hold 4 x this.
    max_record_bytes: int = MAX_RECORD_BYTES
    #: Rejects not written yet (:meth:`reject`), with the bytes their excerpts hold.
    #: (Not copied with the context's fields: a copy holds and flushes its own.)
    _pending: list[RejectRow] = field(default_factory=list, init=False, repr=False)
    _pending_bytes: int = field(default=0, init=False, repr=False)

    # -- reading -----------------------------------------------------------------
    def open_binary(self) -> io.BufferedIOBase:
        """The file's bytes, decompressed when gz. Prefer :meth:`iter_lines` for line formats."""
        if self.gzipped:
            return gzip.open(self.path, "rb")
        return self.path.open("rb")

    def _blocks(self) -> Generator[bytes, None, None]:
        """The decompressed content in blocks of at most 1 MiB, never more in memory at once.

        A corrupt or truncated gzip ends the stream with ``break_note`` set; concatenated gzip
        members (log rotation) are read in order."""
        if not self.gzipped:
            with self.path.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    yield chunk
            return
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        total = 0
        with self.path.open("rb") as fh:
            while chunk := fh.read(1 << 16):
                data = chunk
                while data:
                    if d.eof:  # the next gzip member
                        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    try:
                        out = d.decompress(data, 1 << 20)
                    except zlib.error as e:
                        self.note_break(f"gzip data corrupt after {total} decompressed bytes: {e}")
                        return
                    total += len(out)
                    if out:
                        yield out
                    data = d.unconsumed_tail or (d.unused_data if d.eof else b"")
        if not d.eof:
            self.note_break(f"gzip stream truncated after {total} decompressed bytes")

    @property
    def max_document_bytes(self) -> int:
        """Most decompressed bytes a whole-document reader holds: 4 x ``--max-record-bytes``."""
        return 4 * self.max_record_bytes

    def read_all(self) -> bytes:
        """Whole (decompressed) content, at most :attr:`max_document_bytes` of it.

        On a truncated gzip returns what was readable; past the bound it stops reading. Both set
        ``break_note`` (status ``partial``, a reject saying where and why), so a 4 MB gzip that
        inflates to gigabytes costs bounded memory, not the machine."""
        out = bytearray()
        limit = self.max_document_bytes
        blocks = self._blocks()
        for block in blocks:
            if len(out) + len(block) > limit:
                out += block[: limit - len(out)]
                blocks.close()
                self.note_break(
                    f"decompressed content is larger than {limit} bytes (4 x --max-record-bytes) and this "
                    "format is read as one document: records after that point are not read. Raise "
                    "--max-record-bytes, or split the file (e.g. jq -c '.Records[]') and ingest the parts"
                )
                break
            out += block
        return bytes(out)

    def windows(self, size: int = 32 << 20) -> Generator[tuple[int, int, bytes], None, None]:
        """``(byte_offset, line_no, chunk)``: the content as chunks of whole lines (about ``size``
        bytes each), for line-oriented readers that must not hold a whole file.

        A line longer than ``max_record_bytes`` is never held: it is rejected with its line number
        and offset and the stream read past it.

        The blocks read are kept as a list and joined once per chunk (the block holding the last
        newline cut there), their newlines counted while each block is fresh in the cache: one
        copy of the content instead of three (a growing ``bytearray``, its slice, ``bytes`` of
        it), which took 0.3 CPU-s for a 144 MB Vault file, 7% of its whole load
        (docs/performance.md). Chunks, offsets and line numbers are those of the reader it
        replaces (a test holds them equal).
        """
        cap = self.max_record_bytes
        parts: list[bytes] = []  # blocks since the last chunk; the first may be a line's tail
        held = 0  # their length
        done = 0  # where their whole lines end (just after the last newline); 0: no newline yet
        cut = -1  # index in ``parts`` of the block holding that newline
        lines = 0  # newlines in them
        base_off, base_line = 0, 1
        skip: list[Any] | None = None  # [offset, line, excerpt, bytes skipped]
        for block in self._blocks():
            if skip is not None:
                nl = block.find(b"\n")
                if nl < 0:
                    skip[3] += len(block)
                    continue
                skip[3] += nl + 1
                self._reject_long(*skip)
                base_off, base_line, skip = skip[0] + skip[3], skip[1] + 1, None
                block = block[nl + 1 :]
            nl = block.rfind(b"\n")
            if nl >= 0:
                done, cut = held + nl + 1, len(parts)
                lines += block.count(b"\n")
            parts.append(block)
            held += len(block)
            if held - done > cap:  # the unfinished line is already too long: flush, then skip it
                data = b"".join(parts)
                chunk = data[:done]
                excerpt = data[done : done + EXCERPT_CHARS]
                long, whole, newlines = held - done, done, lines
                del data  # nothing but the chunk held while the reader works on it
                parts, held, done, cut, lines = [], 0, 0, -1, 0
                if whole:
                    yield base_off, base_line, chunk
                    base_line += newlines
                    base_off += whole
                del chunk
                skip = [base_off, base_line, excerpt, long]
            elif held >= size and done:
                last = parts[cut]
                at = done - (held - sum(map(len, parts[cut:])))  # the cut inside ``last``
                chunk = b"".join([*parts[:cut], last[:at]] if at < len(last) else parts[: cut + 1])
                rest = [last[at:]] if at < len(last) else []
                rest += parts[cut + 1 :]
                whole, newlines = done, lines
                # blocks let go before the reader works on the chunk (one copy held, not two)
                del last
                parts, held, done, cut, lines = rest, held - done, 0, -1, 0
                yield base_off, base_line, chunk
                del chunk
                base_off += whole
                base_line += newlines
        if skip is not None:
            self._reject_long(*skip)
        elif held:
            yield base_off, base_line, b"".join(parts)

    def _reject_long(self, offset: int, line: int, excerpt: bytes, length: int) -> None:
        self.reject(
            f"record longer than --max-record-bytes ({self.max_record_bytes} bytes): {length} bytes "
            "skipped",
            record_no=line,
            byte_offset=offset,
            excerpt=excerpt,
        )
        self.records += 1

    def iter_lines(self) -> Iterator[tuple[int, int, bytes]]:
        """Yield ``(line_no, byte_offset, line)`` for non-blank lines (1-based numbers).

        A truncated gzip yields every complete line before the break (the partial
        last line too, so it can be rejected with its position) and sets ``break_note``.
        """
        for base_off, base_line, data in self.windows():
            offset = base_off
            for line_no, line in enumerate(data.splitlines(keepends=True), start=base_line):
                stripped = line.strip()
                if stripped:
                    yield line_no, offset, stripped
                offset += len(line)

    # -- writing -----------------------------------------------------------------
    def insert(self, table: str, rows: pa.Table | list[dict[str, Any]]) -> int:
        """Append rows (an Arrow table or a list of dicts) to an ingested table.

        Columns are matched by name; missing columns become NULL; ``file_id`` is filled
        in for tables that have it. Returns the number of rows inserted.
        """
        if table not in WRITABLE_TABLES:
            raise ValueError(f"adapters may not write {table}")
        if isinstance(rows, list):
            if not rows:
                return 0
            rows = rows_to_arrow(table, rows)
        if rows.num_rows == 0:
            return 0
        schema_cols = TABLES_BY_NAME[table].column_names
        if "file_id" in schema_cols and "file_id" not in rows.column_names:
            rows = rows.append_column(
                "file_id", pa.array([self.file_id] * rows.num_rows, pa.int32())
            )
        unknown = [c for c in rows.column_names if c not in schema_cols]
        if unknown:
            raise ValueError(f"{table} has no columns {unknown}")
        # Registered as a one-shot stream, not as the table: DuckDB keeps a registered Arrow table
        # (and the buffers it borrows, e.g. record text) alive until the transaction ends, so a big
        # file, loaded in one transaction, held every batch it ever appended (docs/performance.md).
        self.con.register(
            "_kt_staged", pa.RecordBatchReader.from_batches(rows.schema, rows.to_batches())
        )
        try:
            cols = ", ".join(rows.column_names)
            select = masked_select(table, rows.column_names, unchanged_by_masking(table, rows))
            self.con.execute(f"INSERT INTO {table} ({cols}) SELECT {select} FROM _kt_staged")
        finally:
            self.con.unregister("_kt_staged")
        return int(rows.num_rows)

    def insert_sql(
        self,
        table: str,
        select_sql: str,
        params: list[Any] | None = None,
        *,
        premasked: frozenset[str] = frozenset(),
    ) -> int:
        """Append the result of a SELECT (columns named as in the schema) to an ingested table.

        This is the bulk path: DuckDB reads and reshapes the file, Python never sees a record.
        ``premasked``: columns the SELECT already passes through
        :func:`~keytrail.store.sqltext.mask_stored_sql` (the CloudTrail staging masks ``raw`` on
        the reading thread, :func:`keytrail.ingest.cloudtrail.sql.stage_select`); they are not
        masked a second time. Every other masked column is masked here.
        """
        if table not in WRITABLE_TABLES:
            raise ValueError(f"adapters may not write {table}")
        # Secrets are masked on the way in (masked_select); DuckDB answers an INSERT with the number of
        # rows it wrote: no count(*) of the table around it
        names = [
            d[0]
            for d in self.con.execute(
                f"SELECT * FROM ({select_sql}) LIMIT 0", params or []
            ).description
        ]
        row = self.con.execute(
            f"INSERT INTO {table} BY NAME SELECT {masked_select(table, names, premasked)} "
            f"FROM ({select_sql})",
            params or [],
        ).fetchone()
        return int(row[0]) if row else 0

    def reject(
        self,
        reason: str,
        *,
        record_no: int | None = None,
        byte_offset: int | None = None,
        excerpt: bytes | str | None = None,
    ) -> None:
        """Quarantine one record: where it was, why, and what it looked like.

        Held and written with the next ones (:meth:`flush_rejects`: one statement per
        ``REJECT_BATCH`` rows or 32 MB of excerpts, and at the latest when the runner ends the
        file, inside the file's transaction): a statement with the masking costs about 16 ms
        before its first row, so a hostile file of 100k bad lines written one by one took
        about half an hour of CPU (docs/performance.md). ``rejected`` counts it at once."""
        self._pending.append((reason, record_no, byte_offset, excerpt))
        self._pending_bytes += len(excerpt) if excerpt else 0
        self.rejected += 1
        if len(self._pending) >= REJECT_BATCH or self._pending_bytes >= REJECT_BYTES:
            self.flush_rejects()

    def flush_rejects(self) -> None:
        """Write the rejects :meth:`reject` holds (the runner calls it before it records the
        file's counts; whoever calls an adapter's ``load`` directly calls it before reading
        ``rejects``)."""
        rows, self._pending, self._pending_bytes = self._pending, [], 0
        self._write_rejects(rows)

    def _write_rejects(self, rows: list[RejectRow]) -> None:
        """``rows`` into ``rejects`` in one statement, reasons and excerpts masked in DuckDB."""
        if not rows:
            return
        reasons, nos, offsets, excerpts = zip(*rows, strict=True)
        text = [
            e.decode("utf-8", errors="replace") if isinstance(e, bytes) else e for e in excerpts
        ]
        table = pa.table(
            {
                "r": pa.array(reasons, pa.string()),
                "n": pa.array(nos, pa.int64()),
                "o": pa.array(offsets, pa.int64()),
                "e": pa.array([e or "" for e in text], pa.string()),
            }
        )
        self.con.register(
            "_kt_rejects", pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
        )
        try:
            self.con.execute(
                f"INSERT INTO rejects SELECT $f, n, o, {mask_stored_sql('r')}, "
                f"left({mask_stored_sql('e')}, {EXCERPT_CHARS}) FROM _kt_rejects",
                {"f": self.file_id},
            )
        finally:
            self.con.unregister("_kt_rejects")

    def note_break(self, note: str) -> None:
        """Record that the file stopped early; the rows read before the break are kept (once: a reader
        that reads the file again after a first look does not report the same break twice)."""
        if self.break_note == note:
            return
        self.break_note = note
        self.reject(note, excerpt="")


def masked_select(table: str, names: list[str], premasked: frozenset[str] = frozenset()) -> str:
    """A SELECT list of ``names`` (columns of ``table``) with the masked columns passed through the
    secret masking, so a secret in a record is never written to the case (docs/security.md).
    ``premasked``: columns passed as they are, because their values went through the same masking
    already or hold no text it could change (:func:`unchanged_by_masking`)."""
    masked = set(masked_columns(table)) - premasked
    return ", ".join(f"{mask_stored_sql(n)} AS {n}" if n in masked else n for n in names)


def unchanged_by_masking(table: str, rows: pa.Table) -> frozenset[str]:
    """The masked text columns of ``rows`` in which no value can be changed by the masking.

    Each masked column costs its INSERT about 15 ms before the first row (the masking's 22
    regular expressions are compiled for every statement), whatever the batch holds:
    for a Vault batch the paths, user agents, error messages and issue reasons were a third of
    what the masking cost (docs/performance.md). A text can only change when it holds ``:`` or
    ``=`` (every key rule needs one after the key: :data:`keytrail.redact.KEY_RULES_HINT`) or
    matches :data:`keytrail.redact.VAULT_TOKEN_HINT` (the Vault-token rule's gate), which
    ``mask_stored_sql`` tests before anything else; Arrow's RE2 answers that for the whole column
    and stops at the first ``:`` of a JSON text."""
    masked = set(masked_columns(table))
    out = []
    for name in rows.column_names:
        if name in masked:
            col = rows.column(name)
            if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
                hit = pc.any(pc.match_substring_regex(col, _MAY_CHANGE)).as_py()
                if not hit:
                    out.append(name)
    return frozenset(out)


def rows_to_arrow(table: str, rows: list[dict[str, Any]]) -> pa.Table:
    """Build an Arrow table typed like the case table, from dicts (small batches, Python adapters)."""
    cols = TABLES_BY_NAME[table].columns
    present = [c for c in cols if any(c.name in r for r in rows)]
    arrays = {}
    for c in present:
        arrays[c.name] = pa.array([r.get(c.name) for r in rows], type=arrow_type(c.type))
    return pa.table(arrays)


def arrow_type(sql_type: str) -> pa.DataType:
    """The Arrow type of a case column's DuckDB type (adapters that build Arrow tables share it)."""
    base = sql_type.split()[0].upper()
    return {
        "VARCHAR": pa.string(),
        "JSON": pa.string(),
        "TIMESTAMP": pa.timestamp("us"),
        "BIGINT": pa.int64(),
        "INTEGER": pa.int32(),
        "BOOLEAN": pa.bool_(),
        "VARCHAR[]": pa.list_(pa.string()),
    }[base]


#: An in-memory database attached to the case connection during an ingest, for batches read ahead
#: (:meth:`SourceAdapter.read_ahead`); the runner detaches it at the end, it is never in the case.
READ_AHEAD_DB = "kt_ahead"


class ReadAheadHandle(Protocol):
    """Work an adapter started ahead of a batch's transaction (:meth:`SourceAdapter.read_ahead`)."""

    def ready(self) -> bool:
        """Whether the work has finished (loading the batch will not wait for it)."""

    def close(self) -> None:
        """Stop the work if it still runs and free what it holds."""


class ReadAheads:
    """One batch read ahead in parts, each started by :meth:`SourceAdapter.read_ahead` on its own
    worker (the runner reads a batch the writer waits for in two halves, one per core); still
    loaded as one batch, in one transaction."""

    def __init__(self, parts: list[ReadAheadHandle]) -> None:
        self.parts = parts

    def ready(self) -> bool:
        return all(part.ready() for part in self.parts)

    def close(self) -> None:
        for part in self.parts:
            part.close()


class SourceAdapter(ABC):
    """A log family's reader. Subclasses are registered under ``keytrail.sources``."""

    #: Registry name (the entry-point name).
    NAME: ClassVar[str]
    #: Value written to ``events.source`` / ``evidence.source``.
    SOURCE: ClassVar[str]
    #: Lower runs first; a specific sniffer should precede a lenient one.
    PRIORITY: ClassVar[int] = 50
    #: Files per transaction; >1 lets an adapter bulk-load many files with one DuckDB scan.
    BATCH_FILES: ClassVar[int] = 1
    #: Bytes on disk per transaction (a batch closes at whichever limit comes first). Memory
    #: scales with the records in flight, so the byte cap keeps peak RSS flat whatever the
    #: records-per-file of a trail.
    BATCH_BYTES: ClassVar[int] = 1 << 62
    #: :meth:`read_ahead` reads batches ahead: the runner then runs DuckDB on one thread per
    #: query while such batches load (reading and writing already fill the two cores).
    READS_AHEAD: ClassVar[bool] = False

    @classmethod
    def batch_full(cls, files: int, size: int, next_size: int) -> bool:
        """Whether a batch of ``files`` files and ``size`` bytes closes before a file of
        ``next_size`` bytes: the one rule the runner and ``keytrail scope``'s re-reads batch by."""
        return files >= cls.BATCH_FILES or size + next_size > cls.BATCH_BYTES

    @classmethod
    @abstractmethod
    def sniff(cls, sample: Sample) -> str | None:
        """Return a format label (e.g. ``cloudtrail-records``) if this adapter reads the file.

        Must look at content, not the file name, and must not raise.
        """

    @abstractmethod
    def load(self, ctx: LoadContext) -> None:
        """Load one file through ``ctx``.

        Raises:
            Nothing for bad records (they go to ``ctx.reject``). An exception means
            the adapter itself failed; the runner rolls back the file's transaction,
            records the file as failed with the message, and continues with the next.
        """

    def load_batch(self, ctxs: list[LoadContext]) -> None:
        """Load several files in one transaction. Default: one by one.

        An adapter overriding this must contain per-file failures itself (fall back
        to :meth:`load` for the file that broke the bulk path), because an exception
        here fails every file of the batch.
        """
        for ctx in ctxs:
            self.load(ctx)

    @classmethod
    def read_ahead(
        cls,
        con: duckdb.DuckDBPyConnection,
        files: list[tuple[Path, str, bool]],
        max_record_bytes: int,
        pool: Executor,
        spare: bool = False,
    ) -> ReadAheadHandle | None:
        """Start reading a closed batch on ``pool`` while the runner writes the batch before it
        (``files``: ``(path, format, gzipped)`` of its plain UTF-8 files); ``None``: nothing to
        read ahead (the default).

        ``spare``: the last batch read ahead was ready before the writer asked for it, so the
        reading thread has time to spare, or the write of this batch would wait for the read or
        run alone (a batch read in halves, the batch before a flush): an adapter may move work
        of the write onto the read (same rows either way). The runner hands the handle to
        :meth:`load_read_ahead` when the batch loads, and closes it after the batch's transaction
        ends, whether it committed or not."""
        return None

    def load_read_ahead(self, ctxs: list[LoadContext], ahead: ReadAheadHandle) -> None:
        """:meth:`load_batch` with what :meth:`read_ahead` prepared (default: ignore it)."""
        self.load_batch(ctxs)

    @classmethod
    def finalize(cls, con: duckdb.DuckDBPyConnection) -> None:
        """Optional end-of-ingest fix-up over the whole case (runs before de-duplication)."""
