"""Tolerant CloudTrail reader: salvage every good record from any shape, reject the rest.

The bulk DuckDB path reads well-formed S3 ``Records`` files. Everything else comes
here: JSON arrays, single or back-to-back (pretty-printed) objects, JSON lines,
``lookup-events`` output, CloudWatch Logs exports, EventBridge envelopes, console CSV,
and any ``Records`` file the bulk reader refused (malformed, truncated). The reader
walks the text itself (``raw_decode`` element by element), so one broken record, a
missing comma or a cut-off tail costs exactly the records involved, never the file.

It yields :class:`Rec` (record number, byte offset when known, the record's JSON text
as found) and :class:`Bad` (where, why, an excerpt). ``record_no`` is the 1-based index
inside ``Records``/``Events``/a top-level array, else the line the record starts on.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass

import orjson

EXCERPT = 512

_DECODER = json.JSONDecoder()
_WS = re.compile(r"[ \t\r\n]*")
_ARRAY_HEAD = re.compile(r'\{\s*"(Records|Events)"\s*:\s*\[')
_CWL_PREFIX = re.compile(r"(\d{4}-\d\d-\d\d[T ][0-9:.]+(?:Z|[+-]\d\d:?\d\d)?)[ \t]+")
_CANDIDATE = re.compile(r"\{")
_EVENT_KEYS = ("eventName", "eventSource", "eventID", "eventTime", "CloudTrailEvent", "EventId")
_NEXT_TOP = re.compile(r"\n(?=[{\[\d])")


@dataclass(frozen=True)
class Rec:
    record_no: int
    byte_offset: int | None
    text: str


@dataclass(frozen=True)
class Bad:
    record_no: int | None
    byte_offset: int | None
    reason: str
    excerpt: str
    #: False for structural faults between records (a missing comma): no record was lost.
    is_record: bool = True


Item = Rec | Bad


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.ascii = text.isascii()
        self._line_pos = 0
        self._line_no = 1
        self._idx = 0

    def offset(self, pos: int) -> int:
        """Byte offset of a character position (exact for ASCII; computed for rejects otherwise)."""
        return pos if self.ascii else len(self.text[:pos].encode("utf-8"))

    def rec_offset(self, pos: int) -> int | None:
        return pos if self.ascii else None

    def line_of(self, pos: int) -> int:
        if pos < self._line_pos:
            return self.text.count("\n", 0, pos) + 1
        self._line_no += self.text.count("\n", self._line_pos, pos)
        self._line_pos = pos
        return self._line_no

    def skip(self, pos: int) -> int:
        m = _WS.match(self.text, pos)
        return m.end() if m else pos

    def skipped(self, pos: int, to: int) -> str:
        """The reject note for damage between ``pos`` and the next readable record at ``to``."""
        return f"skipped {self.offset(to) - self.offset(pos)} bytes to the next record"

    def excerpt(self, pos: int) -> str:
        return self.text[pos : pos + EXCERPT]

    # -- top level ---------------------------------------------------------------
    def items(self) -> Iterator[Item]:
        text, n = self.text, len(self.text)
        pos = self.skip(0)
        while pos < n:
            ch = text[pos]
            line = self.line_of(pos)
            if ch == "[":
                pos = yield from self._array(pos + 1, None)
            elif ch == "{" and (m := _ARRAY_HEAD.match(text, pos)):
                pos = yield from self._array(m.end(), m.group(1))
                pos, resume = yield from self._object_tail(pos)
                while resume is not None:  # a stray ']' closed the array early: records follow
                    pos = yield from self._array(resume, m.group(1), start=self._idx)
                    pos, resume = yield from self._object_tail(pos)
            elif ch == "{":
                try:
                    value, end = _DECODER.raw_decode(text, pos)
                except json.JSONDecodeError as e:
                    nxt = _NEXT_TOP.search(text, pos + 1)
                    stop = nxt.end() if nxt else n
                    inner = self._resync(pos + 1)
                    if inner is not None and inner < stop:
                        # Damage in front of a readable record (e.g. a mangled array head).
                        yield Bad(
                            line,
                            self.offset(pos),
                            f"invalid JSON: {e.msg}; {self.skipped(pos, inner)}",
                            self.excerpt(pos),
                        )
                        pos = inner
                        continue
                    where = (
                        "data ends inside this record (truncated)"
                        if e.pos >= n - 1 or stop == n and not text[pos:stop].rstrip().endswith("}")
                        else f"invalid JSON: {e.msg}"
                    )
                    yield Bad(line, self.offset(pos), where, self.excerpt(pos))
                    pos = self.skip(stop)
                    continue
                yield from self._value(value, text[pos:end], line, self.rec_offset(pos))
                pos = end
            elif ch.isdigit() and (m := _CWL_PREFIX.match(text, pos)):
                start = m.end()
                eol = text.find("\n", start)
                eol = n if eol < 0 else eol
                yield from self._json_text(text[start:eol].strip(), line, self.rec_offset(start))
                pos = eol
            else:
                eol = text.find("\n", pos)
                eol = n if eol < 0 else eol
                inner = self._resync(pos + 1)
                if inner is not None and inner < eol:
                    # Junk in front of a record on the same line (e.g. a damaged array head): report
                    # the junk, read the record.
                    yield Bad(
                        line,
                        self.offset(pos),
                        f"not JSON; {self.skipped(pos, inner)}",
                        self.excerpt(pos),
                    )
                    pos = inner
                    continue
                if not text[pos:eol].strip(",[]} \t\r"):
                    # Only separators left over from a damaged array or object: not a record.
                    yield Bad(
                        line,
                        self.offset(pos),
                        "stray JSON separators",
                        self.excerpt(pos),
                        is_record=False,
                    )
                else:
                    yield Bad(
                        line,
                        self.offset(pos),
                        "not JSON and not a CloudWatch Logs export line",
                        self.excerpt(pos),
                    )
                pos = eol
            pos = self.skip(pos)

    def lines(self) -> Iterator[Item]:
        """JSON lines: one record (or envelope, or CloudWatch export line) per line."""
        pos = 0
        for line_no, line in enumerate(self.text.split("\n"), start=1):
            start, pos = pos, pos + len(line) + 1
            body = line.strip()
            if not body:
                continue
            if body[0].isdigit() and (m := _CWL_PREFIX.match(body)):
                yield from self._json_text(body[m.end() :].strip(), line_no, self.rec_offset(start))
                continue
            try:
                value = orjson.loads(body)
            except orjson.JSONDecodeError as e:
                yield Bad(line_no, self.offset(start), f"invalid JSON: {e}", body[:EXCERPT])
                continue
            yield from self._value(value, body, line_no, self.rec_offset(start))

    def _object_tail(self, pos: int) -> Generator[Item, None, tuple[int, int | None]]:
        """Consume ``, "key": value ...}`` after the records array (e.g. ``NextToken``).

        Returns (position after the object, None), or (position, where records resume) when
        what follows the array is not the object's tail but more records (a stray ``]`` or
        junk closed the array early): the caller reads on, so no intact record is lost."""
        text, n = self.text, len(self.text)
        pos = self.skip(pos)
        while pos < n and text[pos] == ",":
            key_at = self.skip(pos + 1)
            if (
                text[key_at : key_at + 1] == "{"
            ):  # an object, not a "key": records after a stray ']'
                pos = key_at
                break
            try:
                _, pos = _DECODER.raw_decode(text, key_at)
                pos = self.skip(pos)
                if pos < n and text[pos] == ":":
                    _, pos = _DECODER.raw_decode(text, self.skip(pos + 1))
                pos = self.skip(pos)
            except json.JSONDecodeError:
                resume = yield from self._records_resume(pos)
                if resume is not None:
                    return resume, resume
                yield Bad(
                    None,
                    self.offset(pos),
                    "unreadable data after the records array",
                    self.excerpt(pos),
                    is_record=False,
                )
                return n, None
        if pos < n and text[pos] == "}":
            return pos + 1, None
        if pos < n:
            resume = yield from self._records_resume(pos)
            if resume is not None:
                return resume, resume
            yield Bad(
                None,
                self.offset(pos),
                "unexpected data after the records array",
                self.excerpt(pos),
                is_record=False,
            )
            nxt = _NEXT_TOP.search(text, pos)
            return (nxt.end() if nxt else n), None
        return n, None

    def _records_resume(self, pos: int) -> Generator[Item, None, int | None]:
        """Where records resume after junk that closed the records array early (reported), or None."""
        resume = self._resync(pos)
        if resume is not None:
            yield Bad(
                None,
                self.offset(pos),
                f"unexpected data after the records array; {self.skipped(pos, resume)}, reading on",
                self.excerpt(pos),
                is_record=False,
            )
        return resume

    def _array(self, pos: int, key: str | None, start: int = 0) -> Generator[Item, None, int]:
        """Yield the elements of an array whose ``[`` ends just before ``pos``; return the position after ``]``.

        ``start`` is the number of elements already read (records resumed after a stray ``]``);
        ``self._idx`` holds the count when it returns."""
        text, n = self.text, len(self.text)
        idx = start
        while True:
            self._idx = idx
            pos = self.skip(pos)
            if pos >= n:
                if idx == 0 or text[pos - 1 : pos] != "]":
                    yield Bad(
                        None,
                        self.offset(pos),
                        f"data ends inside the {key or 'top-level'} array "
                        f"after record {idx} (truncated)",
                        "",
                        is_record=False,
                    )
                return n
            if text[pos] == "]":
                return pos + 1
            idx += 1
            self._idx = idx
            try:
                value, end = _DECODER.raw_decode(text, pos)
            except json.JSONDecodeError as e:
                nxt = self._resync(pos + 1)
                truncated = nxt is None and e.pos >= len(text.rstrip()) - 1
                reason = (
                    "data ends inside this record (truncated)"
                    if truncated
                    else f"invalid JSON in record: {e.msg}"
                )
                if nxt is not None:
                    reason += f"; {self.skipped(pos, nxt)}"
                elif not truncated:
                    reason += "; no readable record after it"
                yield Bad(idx, self.offset(pos), reason, self.excerpt(pos))
                if nxt is None:
                    return n
                pos = nxt
                continue
            if (
                isinstance(value, str)
                and (inner := self._resync(pos + 1)) is not None
                and inner < end
            ):
                # A stray quote turned the start of a record into a string ("{"): read the record.
                yield Bad(
                    idx,
                    self.offset(pos),
                    f"record is not a JSON object; {self.skipped(pos, inner)}",
                    self.excerpt(pos),
                )
                pos = inner
                continue
            yield from self._element(value, text[pos:end], idx, self.rec_offset(pos), key)
            pos = self.skip(end)
            if pos < n and text[pos] == ",":
                pos += 1
            elif pos < n and text[pos] == "]":
                return pos + 1
            elif pos < n:
                yield Bad(
                    None,
                    self.offset(pos),
                    f"missing ',' after record {idx}; reading on",
                    self.excerpt(pos),
                    is_record=False,
                )

    def _resync(self, start: int) -> int | None:
        """Start of the next element that parses and looks like an event, after a broken one."""
        for m in _CANDIDATE.finditer(self.text, start):
            try:
                value, _ = _DECODER.raw_decode(self.text, m.start())
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict) and any(k in value for k in _EVENT_KEYS):
                return m.start()
        return None

    # -- dispatch ----------------------------------------------------------------
    def _element(
        self, value: object, raw: str, idx: int, off: int | None, key: str | None
    ) -> Iterator[Item]:
        if key == "Events":
            yield from self._lookup_item(value, idx, off)
        elif key == "Records" and isinstance(value, dict):
            yield Rec(idx, off, raw)
        elif isinstance(value, dict):
            yield from self._value(value, raw, idx, off)
        else:
            yield Bad(idx, off, "record is not a JSON object", raw[:EXCERPT])

    def _value(self, value: object, raw: str, no: int, off: int | None) -> Iterator[Item]:
        """A parsed top-level value: an envelope (Records, Events, CWL, EventBridge) or a record."""
        if isinstance(value, list):
            for i, v in enumerate(value, start=1):
                yield from self._value(v, _dumps(v), i, None)
            return
        if not isinstance(value, dict):
            yield Bad(no, off, "record is not a JSON object", raw[:EXCERPT])
            return
        if isinstance(value.get("Records"), list):
            for i, v in enumerate(value["Records"], start=1):
                yield from self._element(v, _dumps(v), i, None, "Records")
        elif isinstance(value.get("Events"), list):
            for i, v in enumerate(value["Events"], start=1):
                yield from self._lookup_item(v, i, None)
        elif "CloudTrailEvent" in value:
            yield from self._lookup_item(value, no, off)
        elif isinstance(value.get("message"), str) and "eventVersion" not in value:
            yield from self._json_text(value["message"].strip(), no, off)
        elif isinstance(value.get("detail"), dict) and "detail-type" in value:
            yield Rec(no, off, _dumps(value["detail"]))
        else:
            yield Rec(no, off, raw)

    def _lookup_item(self, value: object, no: int, off: int | None) -> Iterator[Item]:
        event = value.get("CloudTrailEvent") if isinstance(value, dict) else None
        if isinstance(event, str):
            yield from self._json_text(event, no, off, what="CloudTrailEvent")
        elif isinstance(event, dict):
            yield Rec(no, off, _dumps(event))
        else:
            yield Bad(
                no, off, "lookup-events item without a CloudTrailEvent", _dumps(value)[:EXCERPT]
            )

    def _json_text(
        self, raw: str, no: int, off: int | None, what: str = "message"
    ) -> Iterator[Item]:
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            yield Bad(no, off, f"{what} is not valid JSON: {e}", raw[:EXCERPT])
            return
        if isinstance(value, dict):
            yield Rec(no, off, raw)
        else:
            yield Bad(no, off, f"{what} is not a JSON object", raw[:EXCERPT])


def _dumps(value: object) -> str:
    """JSON text of a parsed value; a string holding a lone surrogate (from a ``\\ud800`` escape) is
    written escaped, so the record reaches the SQL mapping and is rejected there with its position."""
    try:
        return orjson.dumps(value).decode("utf-8")
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=True)


def parse_json(text: str) -> Iterator[Item]:
    """Records from any JSON-based CloudTrail shape."""
    text = text.lstrip("\ufeff")
    if _is_json_lines(text):
        return _Reader(text).lines()
    return _Reader(text).items()


def _is_json_lines(text: str) -> bool:
    """True when the first two non-blank lines are each a whole JSON object.

    Then the file is JSON lines and every line is one record: a damaged line must
    cost exactly that line. The stream reader would let a line cut down to ``{"k":``
    swallow the intact line after it (a valid nested object) and lose it.
    """
    seen = 0
    for line in text.split("\n", 64)[:64]:
        line = line.strip()
        if not line:
            continue
        if not line.startswith("{"):
            return False
        try:
            if not isinstance(orjson.loads(line), dict):
                return False
        except orjson.JSONDecodeError:
            return False
        seen += 1
        if seen == 2:
            return True
    return False


def parse_console_csv(text: str) -> Iterator[Item]:
    """Console Event history CSV: the ``CloudTrail event`` column holds the full record."""
    csv.field_size_limit(1 << 26)
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    header = next(reader, None)
    if not header:
        return
    names = [h.strip().lower() for h in header]
    if "cloudtrail event" not in names:
        yield Bad(1, 0, "CSV has no 'CloudTrail event' column", ",".join(header)[:EXCERPT])
        return
    col = names.index("cloudtrail event")
    sub = _Reader("")
    line = reader.line_num
    for row in reader:
        start, line = line + 1, reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= col or not row[col].strip():
            yield Bad(start, None, "CSV row has no CloudTrail event JSON", ",".join(row)[:EXCERPT])
            continue
        yield from sub._json_text(row[col].strip(), start, None, what="CloudTrail event column")
