"""Split a Vault / OpenBao audit file into records, whatever framing it arrived in.

Vault writes one JSON object per line (file and socket devices), optionally after an
operator ``prefix``; syslog devices and log shippers put a header in front; people who
export logs pretty-print them, objects back to back. Vault server (operational) log
lines are often mixed into the same file. This module turns the decompressed bytes of a
file into :class:`Record` objects, one per audit entry, server log line or unusable
piece, each with its 1-based line number and byte offset, so nothing is dropped
silently and every reject can name where it was.

Invariants:
- every non-blank byte of the input belongs to exactly one record;
- a record's ``raw`` is the original text (framing included), decoded as UTF-8;
- recovery from a broken record is local: the next line that starts a record is read
  normally (a truncated JSON line never swallows the line after it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

#: Entry ``type`` values written by Vault and OpenBao (plugins may add others).
AUDIT_TYPES = frozenset({"request", "response", "kmip-request", "kmip-response"})

#: hclog server log line: ``2019-12-06T23:59:40.398Z [DEBUG] expiration: collecting leases``.
_SERVER_LOG = re.compile(
    rb"^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d))\s+"
    rb"\[(?P<level>TRACE|DEBUG|INFO|WARN|WARNING|ERROR|ERR)\]\s+(?P<msg>.*)$"
)
_TAG = rb"[\w./-]+(?:\[\d+\])?: ?"
#: Syslog headers in front of the JSON, most specific first.
_SYSLOG = (
    # RFC 5424: <PRI>VERSION TIMESTAMP HOST APP PROCID MSGID SD [BOM]
    re.compile(
        rb"^<\d{1,3}>\d{1,2} \S+ \S+ \S+ \S+ \S+ (?:-|(?:\[(?:[^\]\\]|\\.)*\])+) ?(?:\xef\xbb\xbf)?"
    ),
    # RFC 3164 as Vault writes it locally (<PRI>Mmm dd hh:mm:ss TAG[PID]: ), with or without a host.
    re.compile(rb"^(?:<\d{1,3}>)?[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d (?:\S+ )?" + _TAG),
    # rsyslog / journald with RFC 3339 time: 2024-01-01T00:00:00.123+00:00 host vault[1]:
    re.compile(
        rb"^(?:<\d{1,3}>)?\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d) \S+ " + _TAG
    ),
)
_BOM = b"\xef\xbb\xbf"
_loads = orjson.loads
#: How far a pretty-printed object may run before we give up looking for its end.
MAX_BLOCK_LINES = 500_000


@dataclass(slots=True)
class Record:
    """One piece of the file: an audit entry, a server log line, or something unusable."""

    kind: str  # "entry" | "server-log" | "bad"
    line_no: int
    offset: int
    raw: bytes
    #: ``json`` (bare line), ``prefix`` (operator prefix), ``syslog``, ``pretty`` (multi-line object).
    framing: str = "json"
    obj: dict[str, Any] | None = None
    #: For ``bad``: why. For ``server-log``: unused.
    reason: str | None = None
    #: For text server log lines: (time, level, message).
    log_fields: tuple[str, str, str] | None = None

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8", errors="replace")


def _classify_obj(obj: Any) -> tuple[str, str | None]:
    """``("entry"|"server-log"|"bad", reason)`` for a parsed JSON value."""
    if not isinstance(obj, dict):
        return "bad", f"JSON {type(obj).__name__} is not a Vault audit entry (expected an object)"
    if "@message" in obj or "@level" in obj:
        return "server-log", None
    typ = obj.get("type")
    if (
        isinstance(typ, str)
        and typ
        and (isinstance(obj.get("request"), dict) or isinstance(obj.get("auth"), dict))
    ):
        return "entry", None
    return (
        "bad",
        'JSON object is not a Vault audit entry (needs a string "type" and a "request" or "auth" object)',
    )


def _block_end(
    data: bytes, start: int, first_eol: int, indent: int
) -> tuple[Any, int] | tuple[None, int]:
    """Find the end of a pretty-printed object opened at ``start`` (``{`` at column ``indent``).

    Returns ``(obj, end)`` on success (``end`` just after the closing brace) or
    ``(None, stop)`` where ``stop`` is the start of the line where the search gave up:
    a line that opens a new top-level record, a line indented less than the opening
    brace, or the end of the data.
    """
    n = len(data)
    p = first_eol + 1
    closing = b" " * indent + b"}"
    for _ in range(MAX_BLOCK_LINES):
        if p >= n:
            return None, n
        e = data.find(b"\n", p)
        e = n if e < 0 else e
        line = data[p:e].rstrip(b"\r")
        stripped = line.lstrip()
        if stripped:
            lead = len(line) - len(stripped)
            if lead < indent or (lead == indent and stripped[:1] == b"{"):
                return None, p  # left the object without closing it, or a new object starts
            if line.startswith(closing):
                try:
                    return orjson.loads(data[start : p + indent + 1]), p + indent + 1
                except orjson.JSONDecodeError:
                    pass
        p = e + 1
    return None, p


def _strip_framing(line: bytes) -> tuple[str, int]:
    """``(framing, json_start)``: where the JSON starts in a line and what came before it."""
    if line[:1] == b"{":
        return "json", 0
    for rx in _SYSLOG:
        m = rx.match(line)
        if m:
            return "syslog", m.end()
    return "prefix", line.find(b"{")


def iter_records(data: bytes, *, pretty: bool = False) -> Iterator[Record]:
    """Every record in ``data`` (decompressed file bytes), in file order.

    ``pretty`` says the file is pretty-printed objects: an object that starts but never
    ends is then one reject spanning its lines. Otherwise (line-oriented files) each line
    is its own record, so a damaged line never takes its neighbours with it.
    """
    n = len(data)
    pos = 0
    line_no = 1
    counted_to = 0  # line_no is the line of byte ``counted_to``
    if data.startswith(_BOM):
        pos = len(_BOM)
    find = data.find
    while pos < n:
        if counted_to != pos:
            line_no += data.count(b"\n", counted_to, pos)
            counted_to = pos
        eol = find(b"\n", pos)
        eol = n if eol < 0 else eol
        if data[pos] == 0x7B and data[eol - 1] == 0x7D:
            # "{...}" with nothing around it: the bare JSON line of a file device, by far the
            # most common record (nothing to strip, no framing to look for).
            body = data[pos:eol]
            try:
                obj = _loads(body)
            except orjson.JSONDecodeError:
                pass  # the general path below rejects it
            else:
                kind, reason = _classify_obj(obj)
                yield Record(
                    kind, line_no, pos, body, "json", obj if kind != "bad" else None, reason
                )
                pos = counted_to = eol + 1
                line_no += 1
                continue
        line = data[pos:eol]
        lead = len(line) - len(line.lstrip())
        body = line.strip()
        if not body:
            pos = eol + 1
            continue
        start = pos + lead
        framing, js = _strip_framing(body)
        m = _SERVER_LOG.match(body) if framing != "json" else None
        if m is None and framing == "syslog":
            m = _SERVER_LOG.match(body[js:])
        if m is not None:
            fields = (
                m["ts"].decode(),
                m["level"].decode(),
                m["msg"].decode("utf-8", errors="replace"),
            )
            yield Record("server-log", line_no, start, body, framing, log_fields=fields)
            pos = eol + 1
            continue
        if js < 0:
            yield Record(
                "bad",
                line_no,
                start,
                body,
                framing,
                reason="not a Vault audit entry: no JSON object on the line",
            )
            pos = eol + 1
            continue
        try:
            obj = orjson.loads(body[js:])
        except orjson.JSONDecodeError as e:
            rest = body[js:].rstrip()
            if framing == "json" and rest == b"{":
                # A pretty-printed object: read on to its closing brace.
                obj, end = _block_end(data, pos + lead, eol, lead)
                if obj is not None:
                    kind, reason = _classify_obj(obj)
                    yield Record(
                        kind,
                        line_no,
                        start,
                        data[start:end],
                        "pretty",
                        obj if kind != "bad" else None,
                        reason=reason,
                    )
                    pos = end
                    continue
                if pretty:  # one reject for the whole broken object
                    yield Record(
                        "bad",
                        line_no,
                        start,
                        data[start:end].rstrip(),
                        "pretty",
                        reason="pretty-printed JSON object is incomplete or invalid",
                    )
                    pos = end if end > eol else eol + 1
                    continue
                # In a line-oriented file a lone "{" is one damaged line: the next line is read on its own.
            where = {"syslog": " after the syslog header", "prefix": " after the line prefix"}.get(
                framing, ""
            )
            yield Record("bad", line_no, start, body, framing, reason=f"invalid JSON{where}: {e}")
            pos = eol + 1
            continue
        kind, reason = _classify_obj(obj)
        yield Record(
            kind, line_no, start, body, framing, obj if kind != "bad" else None, reason=reason
        )
        pos = eol + 1


LABELS = {
    "json": "vault-audit-jsonl",
    "prefix": "vault-audit-prefixed",
    "syslog": "vault-audit-syslog",
    "pretty": "vault-audit-pretty",
}


def sniff_label(head: bytes, complete: bool, max_records: int = 500) -> str | None:
    """The format label when ``head`` is mostly Vault audit entries, else None.

    ``complete`` says whether ``head`` is the whole file; when it is not, the last
    (possibly cut) line is ignored. Over the first ``max_records`` records, audit
    entries must be at least as many as unusable records (server log lines count for
    neither), so a damaged first line does not hide a Vault file, and a document that
    merely quotes one entry (a YAML test file, a CloudTrail file) is not taken for one.
    The label names the framing of the first entry.
    """
    if not complete:
        cut = head.rfind(b"\n")
        if cut < 0:
            return _sniff_long_line(head)
        head = head[: cut + 1]
    first: str | None = None
    entries = bad = 0
    for i, rec in enumerate(iter_records(head, pretty=True)):
        if i >= max_records:
            break
        if rec.kind == "entry":
            entries += 1
            first = first or rec.framing
        elif rec.kind == "bad":
            bad += 1
    if first is None or entries < bad:
        return None
    return LABELS[first]


_ENTRY_TYPE = re.compile(rb'"type"\s*:\s*"(?:request|response|kmip-request|kmip-response)"')
_ENTRY_OBJ = re.compile(rb'"(?:request|auth)"\s*:\s*\{')


def _sniff_long_line(head: bytes) -> str | None:
    """The sample is one unfinished line (a multi-megabyte list or PKI response): judge its start."""
    line = head.lstrip(_BOM).strip()
    framing, js = _strip_framing(line)
    if js < 0 or not (_ENTRY_TYPE.search(line, js) and _ENTRY_OBJ.search(line, js)):
        return None
    return LABELS[framing]
