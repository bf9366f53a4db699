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
    return _hex_ids(MessageToDict(message, use_integers_for_enums=True))  # type: ignore[no-any-return]


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
