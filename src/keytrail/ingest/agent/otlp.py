"""OTLP/JSON traces and logs (Collector file exporter lines, or one ``resourceSpans`` document).

One event per span and per log record. Span attributes are read over their resource
attributes and normalised by :mod:`keytrail.ingest.agent.attrs` (OTel GenAI current
and deprecated names, OpenInference). The agent, human and session of a span that
does not name them are inherited from its nearest ancestor in the same trace
(:mod:`keytrail.ingest.agent.inherit`): rows are written as they are read and the
inherited values applied in bulk once the file is read, because the spans of one
trace are spread over many lines in no particular order. Format reference for
users: ``docs/formats/otlp.md``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from keytrail.ingest.agent.attrs import (
    TOOL_ARGUMENT_KEYS,
    AgentView,
    any_value,
    key_values,
    normalise,
    otlp_id,
    parse_jsonish,
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
from keytrail.ingest.agent.inherit import SpanNode, apply, resolve
from keytrail.ingest.agent.refs import Resource, classify, resources_in_arguments
from keytrail.ingest.base import LoadContext, Sample, SourceAdapter

_HEAD = re.compile(rb'^\s*(?:\xef\xbb\xbf)?\{\s*"(resourceSpans|resourceLogs)"\s*:')
_ERROR_CODES = (2, "2", "STATUS_CODE_ERROR")
#: ``service.name`` values the SDKs write when the application set none: never an agent id.
_DEFAULT_SERVICE = re.compile(r"^unknown_service(:.*)?$")
_AGENT_OPS = ("invoke_agent", "create_agent")
#: Agent span names that carry the agent's name: the GenAI rule ``invoke_agent {gen_ai.agent.name}``
#: (also ``create_agent``) and Google ADK's ``agent_run [name]``.
_SPAN_AGENT = re.compile(r"^(?:(?:invoke|create)_agent (\S.{0,199})|agent_run \[([^\]]{1,200})\])$")


@dataclass
class _Scope:
    """A resource and scope, decoded once for all the spans or log records under them."""

    res_attrs: dict[str, Any]
    scope_name: Any
    raw_prefix: str  # '{"resource":...,"scope":...,' : each record's raw is this + its own JSON
    #: ``service.name`` when it may stand for the agent (not an SDK default): :func:`_fallback_agent`.
    service_agent: str | None = field(init=False)

    def __post_init__(self) -> None:
        svc = _str(self.res_attrs.get("service.name"))
        self.service_agent = svc if svc and not _DEFAULT_SERVICE.match(svc) else None

    def raw(self, kind: str, item: dict[str, Any]) -> str:
        return f'{self.raw_prefix}"{kind}":{json_text(item)}}}'


class OtlpAdapter(SourceAdapter):
    NAME = "otlp"
    SOURCE = "agent"
    PRIORITY = (
        30  # strict sniffer (top-level resourceSpans/resourceLogs), ahead of lenient JSON ones
    )

    @classmethod
    def sniff(cls, sample: Sample) -> str | None:
        m = _HEAD.match(sample.head)
        key = m.group(1).decode() if m else None
        if key is None:
            obj = sniff_object(sample)
            if obj is not None:
                key = (
                    "resourceSpans"
                    if "resourceSpans" in obj
                    else "resourceLogs"
                    if "resourceLogs" in obj
                    else None
                )
        if key is None:
            return None
        return "otlp-traces" if key == "resourceSpans" else "otlp-logs"

    def load(self, ctx: LoadContext) -> None:
        batch = EventBatch(ctx)
        uid = UidMaker()
        nodes: list[SpanNode] = []
        for record_no, offset, text, doc in iter_json_records(ctx):
            if isinstance(doc, Exception):
                ctx.records += 1
                ctx.reject(
                    f"not valid JSON: {doc}", record_no=record_no, byte_offset=offset, excerpt=text
                )
                continue
            if not isinstance(doc, dict) or not ("resourceSpans" in doc or "resourceLogs" in doc):
                ctx.records += 1
                ctx.reject(
                    "not an OTLP TracesData/LogsData object (no top-level resourceSpans or resourceLogs)",
                    record_no=record_no,
                    byte_offset=offset,
                    excerpt=text,
                )
                continue
            where = (record_no, offset, text)
            for sc, item, kind, loc in _walk(doc, ctx, where):
                ctx.records += 1
                if kind == "span":
                    got = _span_row(sc, item, uid, where)
                    if isinstance(got, str):
                        ctx.reject(
                            f"{_path(loc)}: {got}",
                            record_no=record_no,
                            byte_offset=offset,
                            excerpt=text,
                        )
                    else:
                        batch.add(got[0], got[1])
                        nodes.append(got[2])
                else:
                    row, resources = _log_row(sc, item, uid, where)
                    if row is None:
                        ctx.reject(
                            f"{_path(loc)}: log record has neither timeUnixNano nor "
                            "observedTimeUnixNano",
                            record_no=record_no,
                            byte_offset=offset,
                            excerpt=text,
                        )
                    else:
                        batch.add(row, resources)
        batch.flush()
        apply(ctx, resolve(nodes))


def _path(loc: tuple[Any, ...]) -> str:
    """``resourceSpans[i].scopeSpans[j].spans[k]`` from :func:`_walk`'s location tuple."""
    return "{}[{}].{}[{}].{}[{}]".format(*loc)


def _walk(doc: dict[str, Any], ctx: LoadContext, where: tuple[int, int, bytes]) -> Any:
    """Yield ``(scope context, span_or_log, kind, location)``; reject malformed containers.

    The location is a tuple, formatted by :func:`_path` only for a reject."""
    for kind, outer, inner, leaf in (
        ("span", "resourceSpans", "scopeSpans", "spans"),
        ("log", "resourceLogs", "scopeLogs", "logRecords"),
    ):
        for i, rs in enumerate(arr(doc.get(outer))):
            if not isinstance(rs, dict):
                ctx.records += 1
                ctx.reject(
                    f"{outer}[{i}] is not an object",
                    record_no=where[0],
                    byte_offset=where[1],
                    excerpt=where[2],
                )
                continue
            res = obj(rs.get("resource"))
            res_attrs = key_values(res.get("attributes"))
            # instrumentationLibrary* are the pre-1.0 names of scope*; old exporters still write them.
            scopes = arr(rs.get(inner) or rs.get(inner.replace("scope", "instrumentationLibrary")))
            for j, ss in enumerate(scopes):
                if not isinstance(ss, dict):
                    ctx.records += 1
                    ctx.reject(
                        f"{outer}[{i}].{inner}[{j}] is not an object",
                        record_no=where[0],
                        byte_offset=where[1],
                        excerpt=where[2],
                    )
                    continue
                scope = obj(ss.get("scope") or ss.get("instrumentationLibrary"))
                sc = _Scope(
                    res_attrs,
                    scope.get("name"),
                    f'{{"resource":{json_text(res)},"scope":{json_text(scope)},',
                )
                for k, item in enumerate(arr(ss.get(leaf))):
                    if isinstance(item, dict):
                        yield sc, item, kind, (outer, i, inner, j, leaf, k)
                    else:
                        ctx.records += 1
                        ctx.reject(
                            f"{_path((outer, i, inner, j, leaf, k))} is not an object",
                            record_no=where[0],
                            byte_offset=where[1],
                            excerpt=where[2],
                        )


def _common(
    view: AgentView, attrs: Mapping[str, Any], res_attrs: Mapping[str, Any]
) -> dict[str, Any]:
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


def _span_row(
    sc: _Scope, span: dict[str, Any], uid: UidMaker, where: tuple[int, int, bytes]
) -> tuple[dict[str, Any], list[Resource], SpanNode] | str:
    start = span.get("startTimeUnixNano")
    time = unix_nano(start)
    if time is None:
        return f"span {span.get('name')!r} has no usable startTimeUnixNano ({start!r})"
    res_attrs = sc.res_attrs
    attrs = key_values(span.get("attributes"), dict(res_attrs))  # span attributes over resource
    events = arr(span.get("events"))
    args_from = _arguments_from_events(attrs, events) if events else None
    view = normalise(attrs)
    if args_from:
        view.extra["tool_arguments_source"] = args_from
    trace_id, span_id = otlp_id(span.get("traceId"), 16), otlp_id(span.get("spanId"), 8)
    parent_id = otlp_id(span.get("parentSpanId"), 8)
    raw = sc.raw("span", span)
    event_uid = f"otlp:{trace_id}:{span_id}" if trace_id and span_id else uid("otlp:noid", raw)
    name = _str(span.get("name")) or ""
    if view.operation in _AGENT_OPS and not view.agent_id and (named := _SPAN_AGENT.match(name)):
        view.agent_id = view.agent_name = (named.group(1) or named.group(2)).strip()
        view.agent_id_source = "span name"
    service, operation = view.action or ("span", name or "unnamed")
    status = obj(span.get("status"))
    exc: dict[str, Any] | None = None
    for e in events:
        if isinstance(e, dict) and e.get("name") == "exception":
            exc = key_values(e.get("attributes"))
            break
    code = status.get("code")
    failed = code in _ERROR_CODES or view.error_type is not None or exc is not None
    outcome = "failure" if failed else "success"
    resources = _resources(view, attrs)
    end = unix_nano(span.get("endTimeUnixNano"))
    details = {
        "span_name": name,
        "span_kind": span.get("kind"),
        "scope": sc.scope_name,
        "service_name": res_attrs.get("service.name"),
        **view.details(),
    }
    if code is not None:
        details["status_code"] = code
    if view.kind == "llm" and (undeclared := _undeclared_tool_calls(attrs)):
        details["undeclared_tool_calls"] = undeclared
    if end is not None:
        details["duration_ms"] = round((end - time).total_seconds() * 1000, 3)
    row = {
        **_common(view, attrs, res_attrs),
        "event_uid": event_uid,
        "source_event_id": span_id,
        "time": time,
        "time_raw": str(start),
        "action": f"{service}:{operation}",
        "service": service,
        "operation": operation,
        "outcome": outcome,
        "error_code": view.error_type or _str((exc or {}).get("exception.type")),
        "error_message": _str(status.get("message")) or _str((exc or {}).get("exception.message")),
        "target": resources[0][0] if resources else None,
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": parent_id,
        "actor_uid": view.agent_id,
        "actor_type": "agent" if view.agent_id else None,
        "details": json_text({k: v for k, v in details.items() if v is not None}),
        "raw": raw,
        "record_no": where[0],
        "byte_offset": where[1],
    }
    key = (trace_id, span_id) if trace_id and span_id else None
    parent = (trace_id, parent_id) if trace_id and parent_id else None
    node = SpanNode(
        event_uid,
        key,
        parent,
        view.agent_id,
        view.human_id,
        view.session_id,
        view.operation in _AGENT_OPS,
        _fallback_agent(view, sc),
    )
    return row, resources, node


def _arguments_from_events(attrs: dict[str, Any], events: list[Any]) -> str | None:
    """Tool arguments a tool span logs as span events instead of attributes; sets them in ``attrs``.

    Strands Agents (and the GenAI event conventions before ``gen_ai.tool.call.arguments``)
    write them as a ``gen_ai.tool.message`` event (``content``); the newer opt-in form is a
    ``gen_ai.client.inference.operation.details`` event whose ``gen_ai.input.messages`` holds
    the ``tool_call`` part. Returns the event name used, None when nothing was taken.
    """
    is_tool = attrs.get("gen_ai.operation.name") == "execute_tool" or "gen_ai.tool.name" in attrs
    if not is_tool or any(attrs.get(k) not in (None, "") for k in TOOL_ARGUMENT_KEYS):
        return None
    for event in events:
        if not isinstance(event, dict):
            continue
        name, eattrs = event.get("name"), key_values(event.get("attributes"))
        if name == "gen_ai.tool.message" and eattrs.get("content") not in (None, ""):
            attrs["gen_ai.tool.call.arguments"] = eattrs["content"]
            return "span event gen_ai.tool.message"
        for msg in arr(parse_jsonish(eattrs.get("gen_ai.input.messages"))):
            for part in arr(msg.get("parts")) if isinstance(msg, dict) else []:
                if (
                    isinstance(part, dict)
                    and part.get("type") == "tool_call"
                    and "arguments" in part
                ):
                    attrs["gen_ai.tool.call.arguments"] = part["arguments"]
                    return f"span event {name}"
    return None


def _names(value: Any, kind: str) -> list[str]:
    """Tool names in GenAI JSON: ``tool_call`` parts (messages) or tool definitions."""
    value = parse_jsonish(value)
    out: list[str] = []
    for item in value if isinstance(value, list) else []:
        if not isinstance(item, dict):
            continue
        if kind == "definitions" and isinstance(item.get("name"), str):
            out.append(item["name"])
        for part in arr(item.get("parts")) if kind == "calls" else []:
            if (
                isinstance(part, dict)
                and part.get("type") == "tool_call"
                and isinstance(part.get("name"), str)
            ):
                out.append(part["name"])
    return out


def _undeclared_tool_calls(attrs: Mapping[str, Any]) -> list[str]:
    """Tools the model asked for that the span's ``gen_ai.tool.definitions`` does not offer.

    A model asking for a tool it was not given (a prompt injection naming a tool, a confused
    model) leaves no tool span: only the chat span's output says so.
    """
    if "gen_ai.tool.definitions" not in attrs or "gen_ai.output.messages" not in attrs:
        return []
    offered = set(_names(attrs["gen_ai.tool.definitions"], "definitions"))
    return sorted({n for n in _names(attrs["gen_ai.output.messages"], "calls") if n not in offered})


def _fallback_agent(view: AgentView, sc: _Scope) -> str | None:
    """The resource's ``service.name`` as a last-resort agent id, when the rules allow it."""
    return sc.service_agent if view.has_genai else None


def _log_row(
    sc: _Scope, rec: dict[str, Any], uid: UidMaker, where: tuple[int, int, bytes]
) -> tuple[dict[str, Any] | None, list[Resource]]:
    ts = rec.get("timeUnixNano")
    time = unix_nano(ts)
    if time is None:
        ts = rec.get("observedTimeUnixNano")
        time = unix_nano(ts)
    if time is None:
        return None, []
    res_attrs = sc.res_attrs
    attrs = key_values(rec.get("attributes"), dict(res_attrs))
    view = normalise(attrs, log_record=True)
    raw = sc.raw("logRecord", rec)
    event_name = _str(rec.get("eventName")) or _str(attrs.get("event.name"))
    service, operation = view.action or (
        "log",
        event_name or _str(rec.get("severityText")) or "record",
    )
    # Claude Code tool_result / tool_decision events say success and the permission decision.
    success, decision = attrs.get("success"), str(attrs.get("decision") or "").lower()
    severity = rec.get("severityNumber")
    if decision in ("reject", "deny", "denied", "block"):
        outcome = "denied"
    elif (
        success in (False, "false", "False")
        or view.error_type
        or (isinstance(severity, int) and severity >= 17)
    ):
        outcome = "failure"
    elif success in (True, "true", "True"):
        outcome = "success"
    else:
        outcome = "unknown"
    if view.agent_id is None and (svc := _fallback_agent(view, sc)):
        view.agent_id, view.agent_id_source = svc, "service.name"
    resources = _resources(view, attrs)
    body = rec.get("body")
    details = {
        "event_name": event_name,
        "severity_text": rec.get("severityText"),
        "severity_number": severity,
        "scope": sc.scope_name,
        "service_name": res_attrs.get("service.name"),
        **view.details(),
    }
    body_value = any_value(body)
    if body_value is not None:
        details["body"] = body_value if not isinstance(body_value, str) else body_value[:2000]
    row = {
        **_common(view, attrs, res_attrs),
        "event_uid": uid("otlplog", raw),
        "source_event_id": None,
        "time": time,
        "time_raw": str(ts),
        "action": f"{service}:{operation}",
        "service": service,
        "operation": operation,
        "outcome": outcome,
        "error_code": view.error_type,
        "error_message": _str(attrs.get("error")),
        "actor_uid": view.agent_id,
        "actor_type": "agent" if view.agent_id else None,
        "target": resources[0][0] if resources else None,
        "trace_id": otlp_id(rec.get("traceId"), 16),
        "span_id": otlp_id(rec.get("spanId"), 8),
        "details": {k: v for k, v in details.items() if v is not None},
        "raw": raw,
        "record_no": where[0],
        "byte_offset": where[1],
    }
    row["details"] = json_text(row["details"])
    return row, resources
