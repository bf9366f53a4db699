"""Plumbing shared by the agent-log adapters: reading JSON records, stable ids, batched writes.

Agent logs are small next to CloudTrail, so they are parsed in Python (orjson), but
rows are still collected per file and written as Arrow tables in a few inserts,
never one INSERT per record.

Ids: a record without an id of its own gets ``<prefix>:<sha256 of its text>[:32]``.
Identical lines *within one file* are distinct records (a tool called twice with the
same arguments in a format without timestamps), so the n-th copy of the same text
in a file hashes the text plus ``#n``; the same file content delivered twice in two
files still yields the same ids and is de-duplicated by ``ingest.finalize``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from itertools import repeat
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa

from keytrail.ingest.base import SNIFF_BYTES, arrow_type
from keytrail.store.schema import TABLES_BY_NAME

if TYPE_CHECKING:
    from keytrail.ingest.agent.refs import Resource
    from keytrail.ingest.base import LoadContext, Sample

#: Rows per Arrow insert (keeps memory flat on an unusually large agent log).
FLUSH_ROWS = 50_000
_HEX = re.compile(r"^[0-9a-fA-F]+$")


def json_text(obj: Any) -> str:
    """Compact JSON text (``details``, synthesised ``raw``); non-JSON values become strings."""
    try:
        return orjson.dumps(obj, default=str).decode()
    except TypeError:  # an integer beyond 64 bits (orjson reads 1e30 as a float, int() widens it)
        return orjson.dumps(_wide_ints(obj), default=str).decode()


def _wide_ints(value: Any) -> Any:
    """``value`` with integers orjson cannot write (beyond 64 bits) as their decimal text."""
    if isinstance(value, dict):
        return {k: _wide_ints(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_wide_ints(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return str(value)
    return value


def rows_table(table: str, rows: list[dict[str, Any]]) -> pa.Table:
    """Arrow columns typed like the case table from row dicts: a column for every key any row has
    (missing keys are NULL), the same table ``LoadContext.insert`` builds from a list, with one
    C-level pass per column instead of a Python test per row and column."""
    present = set().union(*rows)
    cols = [c for c in TABLES_BY_NAME[table].columns if c.name in present]
    values: Iterator[Sequence[Any]]
    if len(cols) > 1 and all(n == len(present) for n in map(len, rows)):
        values = zip(*map(itemgetter(*(c.name for c in cols)), rows))  # all keys in every row
    else:
        values = (list(map(dict.get, rows, repeat(c.name))) for c in cols)
    return pa.table(
        {c.name: pa.array(list(v), type=arrow_type(c.type)) for c, v in zip(cols, values)}
    )


def obj(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty dict (log fields are untrusted shapes)."""
    return value if isinstance(value, dict) else {}


def arr(value: Any) -> list[Any]:
    """``value`` when it is a JSON array, else an empty list."""
    return value if isinstance(value, list) else []


class UidMaker:
    """``prefix:sha256(text)[:32]``, with a per-file occurrence counter for repeated texts."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def __call__(self, prefix: str, text: str | bytes) -> str:
        data = text.encode() if isinstance(text, str) else text
        digest = hashlib.sha256(data).hexdigest()
        n = self._seen.get(digest, 0)
        self._seen[digest] = n + 1
        if n:
            digest = hashlib.sha256(data + f"#{n}".encode()).hexdigest()
        return f"{prefix}:{digest[:32]}"


def hex_id(value: Any) -> str | None:
    """A trace/span id given as text (native, MCP ``traceparent``) as lower-case hex when it is hex."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    return text.lower() if _HEX.match(text) else text


class EventBatch:
    """Rows for ``events`` and ``event_resources`` of one file, written in bulk."""

    def __init__(self, ctx: LoadContext) -> None:
        self.ctx = ctx
        self.events: list[dict[str, Any]] = []
        self.resources: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any], resources: Sequence[Resource] = ()) -> None:
        if "format" not in row:
            row["format"] = self.ctx.format
        self.events.append(row)
        for rid, rtype in resources:
            account = rid.split(":")[4] if rid.startswith("arn:") and rid.count(":") >= 5 else None
            self.resources.append(
                {
                    "event_uid": row["event_uid"],
                    "resource_id": rid,
                    "resource_type": rtype,
                    "account": account or None,
                }
            )
        if len(self.events) >= FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.events:
            self.ctx.insert("events", rows_table("events", self.events))
            self.events = []
        if self.resources:
            self.ctx.insert("event_resources", rows_table("event_resources", self.resources))
            self.resources = []


# -- reading JSON ------------------------------------------------------------------------------


def first_line(sample: Sample) -> bytes | None:
    """The first non-blank line of the sample if it is complete (ends before the sample does)."""
    whole_file = len(sample.head) < SNIFF_BYTES
    for line in sample.head.lstrip(b"\xef\xbb\xbf").splitlines(keepends=True):
        if line.strip():
            return line.strip() if line.endswith((b"\n", b"\r")) or whole_file else None
    return None


def sniff_object(sample: Sample) -> dict[str, Any] | None:
    """The first JSON object of a sample: its first line, or the whole sample when it is one document."""
    line = first_line(sample)
    if line and line.startswith(b"{"):
        try:
            obj = orjson.loads(line)
            return obj if isinstance(obj, dict) else None
        except orjson.JSONDecodeError:
            pass
    text = sample.head.strip().lstrip(b"\xef\xbb\xbf")
    if text.startswith(b"{"):
        try:
            obj = orjson.loads(text)
            return obj if isinstance(obj, dict) else None
        except orjson.JSONDecodeError:
            return None
    return None


def iter_json_records(ctx: LoadContext) -> Iterator[tuple[int, int, bytes, Any]]:
    """``(record_no, byte_offset, text, parsed)`` for a JSON-lines file or a single JSON document.

    JSON lines when the first non-blank line is valid JSON on its own: then the file is read in
    windows of whole lines (bounded memory, a line over ``--max-record-bytes`` rejected by the
    window reader). Otherwise the whole content is tried as one (pretty-printed) document,
    which is record 1. When neither parses, lines are yielded one by one so each bad line can be
    rejected where it is. ``parsed`` is the ``orjson.JSONDecodeError`` for a line that does not parse.
    """
    windows = ctx.windows()
    first = True
    for base_off, base_line, data in windows:
        body = data.lstrip(b"\xef\xbb\xbf") if base_off == 0 else data
        offset = base_off + len(data) - len(body)
        for line_no, line in enumerate(body.splitlines(keepends=True), start=base_line):
            text = line.strip()
            if text:
                try:
                    parsed: Any = orjson.loads(text)
                except orjson.JSONDecodeError as e:
                    parsed = e
                    if first:  # maybe one pretty-printed document: read it whole (bounded)
                        windows.close()
                        yield from _whole_document(ctx)
                        return
                first = False
                yield line_no, offset, text, parsed
            offset += len(line)


def _whole_document(ctx: LoadContext) -> Iterator[tuple[int, int, bytes, Any]]:
    """The file as one JSON document (record 1), else line by line with each bad line its own reject."""
    data = ctx.read_all()
    body = data.lstrip(b"\xef\xbb\xbf")
    offset = len(data) - len(body)
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    else:
        first = next((n for n, line in enumerate(body.splitlines(), start=1) if line.strip()), 1)
        yield first, offset, body.strip(), doc
        return
    for line_no, line in enumerate(body.splitlines(keepends=True), start=1):
        text = line.strip()
        if text:
            try:
                parsed: Any = orjson.loads(text)
            except orjson.JSONDecodeError as e:
                parsed = e
            yield line_no, offset, text, parsed
        offset += len(line)
