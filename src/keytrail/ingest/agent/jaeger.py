"""Jaeger trace JSON: the query API, the UI's "Download JSON", and flat span arrays.

A responder often gets an agent's OTel GenAI spans as a Jaeger export rather than OTLP. Three
shapes are read (fixtures: ``jaeger/`` in the shared fixtures, SOURCES.md there):

- the query API (``/api/traces``): ``{"data": [{"traceID", "spans", "processes"}], "total", ...}``;
- one trace as the UI's "Download JSON" writes it: ``{"traceID", "spans", "processes"}``;
- a flat array of spans each carrying its ``process`` (the anonymizer's output).

Each Jaeger span is turned into the OTLP span it came from (tags -> attributes, process ->
resource, ``CHILD_OF``/``FOLLOWS_FROM`` -> parent, microseconds -> nanoseconds, ``logs`` ->
span events, ``otel.status_code``/``error`` -> status) and read by the OTLP adapter's own span
reader, so the same span exported as OTLP or as Jaeger becomes the same event
(``otlp:<traceId>:<spanId>``, ids left-padded to 32/16 hex digits as Jaeger strips leading
zeros) and the GenAI normalisation (:mod:`keytrail.ingest.agent.attrs`) is shared. ``raw``
keeps the Jaeger span with its process as exported.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from keytrail.ingest.agent.common import (
    EventBatch,
    UidMaker,
    arr,
    iter_json_records,
    json_text,
    obj,
)
from keytrail.ingest.agent.inherit import SpanNode, apply, resolve
from keytrail.ingest.agent.otlp import _Scope, _span_row
from keytrail.ingest.base import LoadContext, Sample, SourceAdapter

_HEX = re.compile(r"^[0-9a-fA-F]+$")
_SNIFF = re.compile(rb'"traceID"\s*:')
#: How an export too large for the sniffing sample opens: the API envelope, a flat span array,
#: or one trace (the UI's download may put a ``_comment`` first).
_OPENING = re.compile(
    rb'^(\{\s*"data"\s*:\s*\[\s*\{\s*"traceID"|\[\s*\{\s*"traceID"'
    rb'|\{\s*("_comment"\s*:\s*"[^"]*"\s*,\s*)?"traceID")'
)
_TYPES = {
    "string": "stringValue",
    "bool": "boolValue",
    "int64": "intValue",
    "float64": "doubleValue",
    "binary": "bytesValue",
}
_KINDS = {"server": 2, "client": 3, "producer": 4, "consumer": 5, "internal": 1}


class _RawScope(_Scope):
    """A scope whose records' raw text is the Jaeger span as exported (with its process)."""

    def __init__(self, res_attrs: dict[str, Any], scope_name: Any, original: str) -> None:
        super().__init__(res_attrs, scope_name, "")
        self.original = original

    def raw(self, kind: str, item: dict[str, Any]) -> str:
        return self.original


class JaegerAdapter(SourceAdapter):
    NAME = "jaeger"
    SOURCE = "agent"
    PRIORITY = 32  # after OTLP's strict sniffer, ahead of the lenient JSON-lines ones

    @classmethod
    def sniff(cls, sample: Sample) -> str | None:
        head = sample.head.lstrip(b"\xef\xbb\xbf \t\r\n")
        if (
            not head.startswith((b"{", b"["))
            or not _SNIFF.search(head)
            or b'"operationName"' not in head
        ):
            return None
        try:
            doc = orjson.loads(head)
        except orjson.JSONDecodeError:  # larger than the sample, or JSON lines: the opening decides
            line = head.split(b"\n", 1)[0]
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError:
                return "jaeger-traces" if _OPENING.match(head) else None
        return "jaeger-traces" if _spans(doc) is not None else None

    def load(self, ctx: LoadContext) -> None:
        batch = EventBatch(ctx)
        uid = UidMaker()
        nodes: list[SpanNode] = []
        for record_no, offset, text, doc in iter_json_records(ctx):
            where = (record_no, offset, text)
            if isinstance(doc, Exception):
                ctx.records += 1
                ctx.reject(
                    f"not valid JSON: {doc}", record_no=record_no, byte_offset=offset, excerpt=text
                )
                continue
            spans = _spans(doc)
            if spans is None:
                ctx.records += 1
                ctx.reject(
                    'not a Jaeger trace export ({"data": [traces]}, a trace with spans and '
                    "processes, "
                    "or an array of spans)",
                    record_no=record_no,
                    byte_offset=offset,
                    excerpt=text,
                )
                continue
            for path, span, process in spans:
                ctx.records += 1
                if not isinstance(span, dict):
                    ctx.reject(
                        f"{path} is not an object",
                        record_no=record_no,
                        byte_offset=offset,
                        excerpt=text,
                    )
                    continue
                otlp, scope = _to_otlp(span, process)
                sc = _RawScope(_resource(process), scope, json_text({**span, "process": process}))
                got = _span_row(sc, otlp, uid, where)
                if isinstance(got, str):
                    ctx.reject(
                        f"{path}: {got}", record_no=record_no, byte_offset=offset, excerpt=text
                    )
                    continue
                batch.add(got[0], got[1])
                nodes.append(got[2])
        batch.flush()
        apply(ctx, resolve(nodes))


def _spans(doc: Any) -> list[tuple[str, Any, dict[str, Any]]] | None:
    """``(path, span, process)`` for every span of a document, or ``None`` for another shape."""
    if isinstance(doc, list):
        if not all(isinstance(s, dict) and "spanID" in s for s in doc):
            return None
        return [(f"[{i}]", s, obj(s.get("process"))) for i, s in enumerate(doc)]
    if not isinstance(doc, dict):
        return None
    if isinstance(doc.get("data"), list):
        traces, prefix = doc["data"], "data"
    elif isinstance(doc.get("spans"), list) and "traceID" in doc:
        traces, prefix = [doc], "trace"
    else:
        return None
    out: list[tuple[str, Any, dict[str, Any]]] = []
    for i, t in enumerate(traces):
        t = obj(t)
        procs = obj(t.get("processes"))
        for j, s in enumerate(arr(t.get("spans"))):
            proc = (
                obj(s.get("process"))
                if isinstance(s, dict) and "process" in s
                else obj(procs.get(str(s.get("processID"))))
                if isinstance(s, dict)
                else {}
            )
            out.append(
                (f"{prefix}[{i}].spans[{j}]" if prefix == "data" else f"spans[{j}]", s, proc)
            )
    return out


def _id(value: Any, digits: int) -> Any:
    """Jaeger writes ids without leading zeros; OTLP writes them full width."""
    if isinstance(value, str) and _HEX.match(value) and len(value) <= digits:
        return value.lower().rjust(digits, "0")
    return value


def _kv(tags: Any) -> list[dict[str, Any]]:
    out = []
    for t in arr(tags):
        if isinstance(t, dict) and isinstance(t.get("key"), str):
            v = t.get("value")
            kind = _TYPES.get(str(t.get("type") or "string").lower(), "stringValue")
            if kind == "boolValue" and isinstance(v, str):
                v = v.lower() == "true"
            out.append({"key": t["key"], "value": {kind: v}})
    return out


def _resource(process: dict[str, Any]) -> dict[str, Any]:
    from keytrail.ingest.agent.attrs import key_values

    attrs = key_values(_kv(process.get("tags")))
    if process.get("serviceName") is not None:
        attrs["service.name"] = process["serviceName"]
    return attrs


def _to_otlp(span: dict[str, Any], process: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """The OTLP span a Jaeger span came from, and its instrumentation scope name."""
    tags = _kv(span.get("tags"))
    by_key = {t["key"]: next(iter(t["value"].values())) for t in tags}
    parent = next(
        (
            r.get("spanID")
            for r in arr(span.get("references"))
            if isinstance(r, dict) and r.get("refType") in ("CHILD_OF", "FOLLOWS_FROM")
        ),
        None,
    )
    start = span.get("startTime")
    dur = span.get("duration")
    events = []
    for log in arr(span.get("logs")):
        fields = _kv(obj(log).get("fields"))
        name = next((next(iter(f["value"].values())) for f in fields if f["key"] == "event"), "log")
        events.append(
            {
                "name": name,
                "timeUnixNano": _nanos(obj(log).get("timestamp")),
                "attributes": [f for f in fields if f["key"] != "event"],
            }
        )
    status: dict[str, Any] = {}
    code = str(by_key.get("otel.status_code") or "").upper()
    if code == "ERROR" or by_key.get("error") in (True, "true"):
        status["code"] = 2
    elif code == "OK":
        status["code"] = 1
    if by_key.get("otel.status_description"):
        status["message"] = by_key["otel.status_description"]
    drop = {
        "span.kind",
        "otel.status_code",
        "otel.status_description",
        "otel.scope.name",
        "otel.library.name",
        "otel.scope.version",
        "otel.library.version",
    }
    otlp: dict[str, Any] = {
        "traceId": _id(span.get("traceID"), 32),
        "spanId": _id(span.get("spanID"), 16),
        "parentSpanId": _id(parent, 16) if parent else None,
        "name": span.get("operationName"),
        "kind": _KINDS.get(str(by_key.get("span.kind") or "").lower()),
        "startTimeUnixNano": _nanos(start),
        "endTimeUnixNano": _nanos(start + dur)
        if isinstance(start, int) and isinstance(dur, int)
        else None,
        "attributes": [t for t in tags if t["key"] not in drop],
        "events": events,
        "status": status,
    }
    return otlp, by_key.get("otel.scope.name") or by_key.get("otel.library.name")


def _nanos(micros: Any) -> str | None:
    return str(micros * 1000) if isinstance(micros, int) and not isinstance(micros, bool) else None
