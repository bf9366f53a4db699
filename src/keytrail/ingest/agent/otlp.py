"""OTLP/JSON traces and logs (Collector file exporter lines, or one ``resourceSpans`` document).

One event per span and per log record. Span attributes are read over their resource
attributes and normalised by :mod:`keytrail.ingest.agent.attrs` (OTel GenAI current
and deprecated names, OpenInference). The agent, human and session of a span that
does not name them are inherited from its nearest ancestor in the same trace, in one
pass over the file after it is parsed (spans of one trace are spread over many lines
and arrive in no particular order). Format reference for users: ``docs/formats/otlp.md``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from keytrail.ingest.agent.attrs import (
    AgentView,
    any_value,
    key_values,
    normalise,
    otlp_id,
    unix_nano,
)
from keytrail.ingest.agent.common import (
    EventBatch,
    UidMaker,
    arr,
    iter_json_records,
    json_text,
    obj,
    sniff_object,
)
from keytrail.ingest.agent.refs import Resource, classify, resources_in_arguments
from keytrail.ingest.base import LoadContext, Sample, SourceAdapter

_HEAD = re.compile(rb'^\s*(?:\xef\xbb\xbf)?\{\s*"(resourceSpans|resourceLogs)"\s*:')
_ERROR_CODES = (2, "2", "STATUS_CODE_ERROR")
_OK_CODES = (1, "1", "STATUS_CODE_OK")
#: ``service.name`` values the SDKs write when the application set none: never an agent id.
_DEFAULT_SERVICE = re.compile(r"^unknown_service(:.*)?$")
_AGENT_OPS = ("invoke_agent", "create_agent")


@dataclass
class _Pending:
    """A span row waiting for the file-wide inheritance pass."""

    row: dict[str, Any]
    view: AgentView
    key: tuple[str, str] | None
    parent: tuple[str, str] | None
    service: str | None


class OtlpAdapter(SourceAdapter):
    NAME = "otlp"
    SOURCE = "agent"
    PRIORITY = 30  # strict sniffer (top-level resourceSpans/resourceLogs), ahead of lenient JSON ones

    @classmethod
    def sniff(cls, sample: Sample) -> str | None:
        m = _HEAD.match(sample.head)
        key = m.group(1).decode() if m else None
        if key is None:
            obj = sniff_object(sample)
            if obj is not None:
                key = "resourceSpans" if "resourceSpans" in obj else "resourceLogs" if "resourceLogs" in obj else None
        if key is None:
            return None
        return "otlp-traces" if key == "resourceSpans" else "otlp-logs"

    def load(self, ctx: LoadContext) -> None:
        batch = EventBatch(ctx)
        uid = UidMaker()
        pending: list[_Pending] = []
        for record_no, offset, text, doc in iter_json_records(ctx):
            if isinstance(doc, Exception):
                ctx.records += 1
                ctx.reject(f"not valid JSON: {doc}", record_no=record_no, byte_offset=offset, excerpt=text)
                continue
            if not isinstance(doc, dict) or not ("resourceSpans" in doc or "resourceLogs" in doc):
                ctx.records += 1
                ctx.reject("not an OTLP TracesData/LogsData object (no top-level resourceSpans or resourceLogs)",
                           record_no=record_no, byte_offset=offset, excerpt=text)
                continue
            where = (record_no, offset, text)
            for res, scope, item, path in _walk(doc, ctx, where):
                ctx.records += 1
                if path[0] == "span":
                    p = _span_row(res, scope, item, uid, where)
                    if isinstance(p, str):
                        ctx.reject(f"{path[1]}: {p}", record_no=record_no, byte_offset=offset, excerpt=text)
                    else:
                        pending.append(p)
                else:
                    row, resources = _log_row(res, scope, item, uid, where)
                    if row is None:
                        ctx.reject(f"{path[1]}: log record has neither timeUnixNano nor observedTimeUnixNano",
                                   record_no=record_no, byte_offset=offset, excerpt=text)
                    else:
                        batch.add(row, resources)
        _inherit(pending)
        for p in pending:
            batch.add(p.row, p.row.pop("_resources"))
        batch.flush()


def _walk(doc: dict[str, Any], ctx: LoadContext, where: tuple[int, int, bytes]) -> Any:
    """Yield ``(resource, scope, span_or_log, (kind, path))``; reject malformed containers."""
    for kind, outer, inner, leaf in (("span", "resourceSpans", "scopeSpans", "spans"),
                                     ("log", "resourceLogs", "scopeLogs", "logRecords")):
        for i, rs in enumerate(arr(doc.get(outer))):
            if not isinstance(rs, dict):
                ctx.records += 1
                ctx.reject(f"{outer}[{i}] is not an object", record_no=where[0], byte_offset=where[1],
                           excerpt=where[2])
                continue
            res = obj(rs.get("resource"))
            # instrumentationLibrary* are the pre-1.0 names of scope*; old exporters still write them.
            scopes = arr(rs.get(inner) or rs.get(inner.replace("scope", "instrumentationLibrary")))
            for j, ss in enumerate(scopes):
                if not isinstance(ss, dict):
                    continue
                scope = obj(ss.get("scope") or ss.get("instrumentationLibrary"))
                for k, item in enumerate(arr(ss.get(leaf))):
                    path = f"{outer}[{i}].{inner}[{j}].{leaf}[{k}]"
                    if isinstance(item, dict):
                        yield res, scope, item, (kind, path)
                    else:
                        ctx.records += 1
                        ctx.reject(f"{path} is not an object", record_no=where[0], byte_offset=where[1],
                                   excerpt=where[2])


def _common(view: AgentView, attrs: Mapping[str, Any], res_attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Columns read the same way from spans and log records."""
    return {
        "agent_id": view.agent_id,
        "actor_name": view.agent_name,
        "human_id": view.human_id,
        "session_id": view.session_id,
        "credential_id": view.credential_id,
        "credential_kind": view.credential_kind,
        "src_ip": _str(attrs.get("client.address")),
        "user_agent": _str(attrs.get("user_agent.original")),
        "account": _str(res_attrs.get("cloud.account.id")),
        "region": _str(res_attrs.get("cloud.region")),
        "source": "agent",
    }


def _str(v: Any) -> str | None:
    return str(v) if v not in (None, "") and not isinstance(v, (dict, list)) else None


def _resources(view: AgentView, attrs: Mapping[str, Any]) -> list[Resource]:
    found: list[Resource] = []
    if view.tool_arguments is not None:
        found += resources_in_arguments(view.tool_arguments, tool=view.tool_name)
    for key in ("mcp.resource.uri", "gen_ai.data_source.id"):
        if isinstance(attrs.get(key), str) and (r := classify(attrs[key])) and r not in found:
            found.append(r)
    return found


def _span_row(res: dict[str, Any], scope: dict[str, Any], span: dict[str, Any], uid: UidMaker,
              where: tuple[int, int, bytes]) -> _Pending | str:
    start = span.get("startTimeUnixNano")
    time = unix_nano(start)
    if time is None:
        return f"span {span.get('name')!r} has no usable startTimeUnixNano ({start!r})"
    res_attrs = key_values(res.get("attributes"))
    attrs = {**res_attrs, **key_values(span.get("attributes"))}
    view = normalise(attrs)
    trace_id, span_id = otlp_id(span.get("traceId"), 16), otlp_id(span.get("spanId"), 8)
    parent_id = otlp_id(span.get("parentSpanId"), 8)
    raw = json_text({"resource": res, "scope": scope, "span": span})
    event_uid = f"otlp:{trace_id}:{span_id}" if trace_id and span_id else uid("otlp:noid", raw)
    name = span.get("name") if isinstance(span.get("name"), str) else ""
    service, operation = view.action or ("span", name or "unnamed")
    status = obj(span.get("status"))
    exc: dict[str, Any] | None = next((key_values(e.get("attributes")) for e in arr(span.get("events"))
                                       if isinstance(e, dict) and e.get("name") == "exception"), None)
    code = status.get("code")
    failed = code in _ERROR_CODES or view.error_type is not None or exc is not None
    outcome = "failure" if failed else "success"
    resources = _resources(view, attrs)
    end = unix_nano(span.get("endTimeUnixNano"))
    details = {"span_name": name, "span_kind": span.get("kind"), "scope": scope.get("name"),
               "service_name": res_attrs.get("service.name"), **view.details()}
    if code is not None:
        details["status_code"] = code
    if end is not None:
        details["duration_ms"] = round((end - time).total_seconds() * 1000, 3)
    row = {
        **_common(view, attrs, res_attrs),
        "event_uid": event_uid, "source_event_id": span_id, "time": time, "time_raw": str(start),
        "action": f"{service}:{operation}", "service": service, "operation": operation,
        "outcome": outcome,
        "error_code": view.error_type or _str((exc or {}).get("exception.type")),
        "error_message": _str(status.get("message")) or _str((exc or {}).get("exception.message")),
        "target": resources[0][0] if resources else None,
        "trace_id": trace_id, "span_id": span_id, "parent_span_id": parent_id,
        "details": details, "raw": raw,
        "record_no": where[0], "byte_offset": where[1], "_resources": resources,
    }
    key = (trace_id, span_id) if trace_id and span_id else None
    parent = (trace_id, parent_id) if trace_id and parent_id else None
    return _Pending(row, view, key, parent, _str(res_attrs.get("service.name")))


def _log_row(res: dict[str, Any], scope: dict[str, Any], rec: dict[str, Any], uid: UidMaker,
             where: tuple[int, int, bytes]) -> tuple[dict[str, Any] | None, list[Resource]]:
    ts = rec.get("timeUnixNano")
    time = unix_nano(ts)
    if time is None:
        ts = rec.get("observedTimeUnixNano")
        time = unix_nano(ts)
    if time is None:
        return None, []
    res_attrs = key_values(res.get("attributes"))
    attrs = {**res_attrs, **key_values(rec.get("attributes"))}
    view = normalise(attrs, log_record=True)
    raw = json_text({"resource": res, "scope": scope, "logRecord": rec})
    event_name = _str(rec.get("eventName")) or _str(attrs.get("event.name"))
    service, operation = view.action or ("log", event_name or _str(rec.get("severityText")) or "record")
    # Claude Code tool_result / tool_decision events say success and the permission decision.
    success, decision = attrs.get("success"), str(attrs.get("decision") or "").lower()
    severity = rec.get("severityNumber")
    if decision in ("reject", "deny", "denied", "block"):
        outcome = "denied"
    elif success in (False, "false", "False") or view.error_type or (isinstance(severity, int) and severity >= 17):
        outcome = "failure"
    elif success in (True, "true", "True"):
        outcome = "success"
    else:
        outcome = "unknown"
    if view.agent_id is None and view.has_genai:
        svc = _str(res_attrs.get("service.name"))
        if svc and not _DEFAULT_SERVICE.match(svc):
            view.agent_id, view.agent_id_source = svc, "service.name"
    resources = _resources(view, attrs)
    body = rec.get("body")
    details = {"event_name": event_name, "severity_text": rec.get("severityText"), "severity_number": severity,
               "scope": scope.get("name"), "service_name": res_attrs.get("service.name"), **view.details()}
    body_value = any_value(body)
    if body_value is not None:
        details["body"] = body_value if not isinstance(body_value, str) else body_value[:2000]
    row = {
        **_common(view, attrs, res_attrs),
        "event_uid": uid("otlplog", raw), "source_event_id": None, "time": time, "time_raw": str(ts),
        "action": f"{service}:{operation}", "service": service, "operation": operation, "outcome": outcome,
        "error_code": view.error_type, "error_message": _str(attrs.get("error")),
        "actor_uid": view.agent_id, "actor_type": "agent" if view.agent_id else None,
        "target": resources[0][0] if resources else None,
        "trace_id": otlp_id(rec.get("traceId"), 16), "span_id": otlp_id(rec.get("spanId"), 8),
        "details": {k: v for k, v in details.items() if v is not None}, "raw": raw,
        "record_no": where[0], "byte_offset": where[1],
    }
    row["details"] = json_text(row["details"])
    return row, resources


def _inherit(pending: list[_Pending]) -> None:
    """Fill agent, human and session from the nearest ancestor that names them (one pass per file).

    An agent span (``invoke_agent``/``create_agent``) never inherits an agent: a nested
    agent span is another agent, invoked by its parent (delegation), not the parent itself;
    and the search for an agent stops at the nearest agent span, named or not.
    The ``service.name`` fallback for the agent applies only to spans with GenAI attributes.
    """
    by_key = {p.key: p for p in pending if p.key}
    fields = (("agent_id", "agent_id_source"), ("human_id", "human_id_source"), ("session_id", "session_id_source"))
    memo: dict[tuple[str, tuple[str, str]], tuple[str, str] | None] = {}

    def lookup(attr: str, key: tuple[str, str] | None) -> tuple[str, str] | None:
        """(value, span id it came from) from ``key`` or its ancestors; iterative, cycle-safe."""
        chain: list[tuple[str, str]] = []
        seen: set[tuple[str, str]] = set()
        found: tuple[str, str] | None = None
        while key and key in by_key and key not in seen:
            if (attr, key) in memo:
                found = memo[(attr, key)]
                break
            seen.add(key)
            chain.append(key)
            node = by_key[key]
            own = getattr(node.view, attr)
            if own:
                found = (own, key[1])
                break
            if attr == "agent_id" and node.view.operation in _AGENT_OPS:
                break  # the nearest agent span is an unnamed agent: not the outer one
            key = node.parent
        for k in chain:
            memo[(attr, k)] = found
        return found

    for p in pending:
        for attr, src in fields:
            if getattr(p.view, attr):
                continue
            if attr == "agent_id" and p.view.operation in _AGENT_OPS:
                continue
            hit = lookup(attr, p.parent)
            if hit:
                p.row[attr] = hit[0]
                p.row["details"][src] = f"inherited from span {hit[1]}"
        if not p.row.get("agent_id") and p.view.has_genai and p.service and not _DEFAULT_SERVICE.match(p.service):
            p.row["agent_id"] = p.service
            p.row["details"]["agent_id_source"] = "service.name"
        p.row["actor_uid"] = p.row.get("agent_id")
        p.row["actor_type"] = "agent" if p.row.get("agent_id") else None
        p.row["details"] = json_text({k: v for k, v in p.row["details"].items() if v is not None})
