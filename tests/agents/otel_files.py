"""Spans out of the real OpenTelemetry SDK into the files a responder is handed.

The Collector's ``file`` exporter writes one OTLP/JSON ``TracesData`` object per line: the
protobuf JSON mapping of ``ExportTraceServiceRequest`` (camelCase keys, 64-bit integers as
strings, enums as integers) except that trace and span ids are hex, not base64 (the OTLP/JSON
rule). :class:`OtlpJsonLinesExporter` encodes each batch with the SDK's own protobuf encoder
(``opentelemetry.exporter.otlp.proto.common``) and ``MessageToDict``, then rewrites the ids as
the Collector does, so keytrail reads exactly what a Collector would have written.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

_ID_KEYS = ("traceId", "spanId", "parentSpanId")


def _hex_ids(node: Any) -> Any:
    """Base64 ids (protobuf JSON) -> lower-case hex (OTLP/JSON), everywhere in the document."""
    if isinstance(node, dict):
        return {
            k: (base64.b64decode(v).hex() if k in _ID_KEYS and isinstance(v, str) else _hex_ids(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_hex_ids(v) for v in node]
    return node


def otlp_json(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """One ``TracesData`` document for ``spans``, as the Collector's file exporter writes it."""
    message = encode_spans(spans)
    doc = MessageToDict(message, use_integers_for_enums=True)
    return _hex_ids(doc)  # type: ignore[no-any-return]


class OtlpJsonLinesExporter(SpanExporter):
    """Append each exported batch to ``path`` as one OTLP/JSON line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if spans:
            line = json.dumps(otlp_json(spans), separators=(",", ":"))
            with self._lock, self.path.open("a", encoding="utf-8") as f:
                f.write(line + "\n")
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def _jaeger_tag(key: str, value: Any) -> dict[str, Any]:
    kind = (
        "bool"
        if isinstance(value, bool)
        else "int64"
        if isinstance(value, int)
        else "float64"
        if isinstance(value, float)
        else "string"
    )
    if isinstance(value, (list, tuple)):
        value = json.dumps(list(value))
    return {"key": key, "type": kind, "value": value}


class JaegerJsonExporter(SpanExporter):
    """Collect spans; at shutdown write them as a Jaeger UI "Download JSON" (``{"data": [...]}``).

    Jaeger's export shape: one object per trace with ``spans`` (``traceID``/``spanID`` hex,
    ``operationName``, ``references`` CHILD_OF the parent, ``startTime``/``duration`` in
    microseconds, typed ``tags``, ``processID``) and ``processes`` (service name and resource tags).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._spans: list[ReadableSpan] = []
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            self._spans.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        traces: dict[str, dict[str, Any]] = {}
        for span in self._spans:
            ctx = span.get_span_context()
            assert ctx is not None
            trace_id = f"{ctx.trace_id:032x}"
            doc = traces.setdefault(trace_id, {"traceID": trace_id, "spans": [], "processes": {}})
            res = dict(span.resource.attributes)
            process = {
                "serviceName": str(res.get("service.name", "unknown_service")),
                "tags": [_jaeger_tag(k, v) for k, v in sorted(res.items()) if k != "service.name"],
            }
            pid = next(
                (k for k, v in doc["processes"].items() if v == process),
                f"p{len(doc['processes']) + 1}",
            )
            doc["processes"][pid] = process
            refs = (
                [
                    {
                        "refType": "CHILD_OF",
                        "traceID": trace_id,
                        "spanID": f"{span.parent.span_id:016x}",
                    }
                ]
                if span.parent is not None
                else []
            )
            tags = [_jaeger_tag(k, v) for k, v in (span.attributes or {}).items()]
            tags.append(_jaeger_tag("span.kind", span.kind.name.lower()))
            if span.status.status_code.name == "ERROR":
                tags.append(_jaeger_tag("error", True))
            start, end = span.start_time or 0, span.end_time or span.start_time or 0
            doc["spans"].append(
                {
                    "traceID": trace_id,
                    "spanID": f"{ctx.span_id:016x}",
                    "operationName": span.name,
                    "references": refs,
                    "startTime": start // 1000,
                    "duration": (end - start) // 1000,
                    "tags": tags,
                    "logs": [
                        {
                            "timestamp": e.timestamp // 1000,
                            "fields": [_jaeger_tag(k, v) for k, v in (e.attributes or {}).items()]
                            + [_jaeger_tag("event", e.name)],
                        }
                        for e in span.events
                    ],
                    "processID": pid,
                    "warnings": None,
                }
            )
        self.path.write_text(json.dumps({"data": list(traces.values())}, indent=1) + "\n")
