"""MCP JSON-RPC message logs: one message per line, bare or wrapped with who/when.

MCP defines no audit-log format (research A2.1); hosts and proxies log the JSON-RPC
messages themselves. keytrail reads bare JSON-RPC 2.0 lines, the wrapped form
``{"time", "direction", "session", "server", "client", "user", "message": {...}}``,
and a single (possibly pretty-printed) message per file such as the specification's
examples. A request and its response are paired on (session, server, id, direction)
into one event, so a ``tools/call`` carries its outcome; the response line is then
counted as a merged, non-event record. Format reference: ``docs/formats/mcp.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from keytrail.ingest.agent.common import (
    EventBatch,
    UidMaker,
    arr,
    hex_id,
    iter_json_records,
    json_text,
    obj,
    sniff_object,
)
from keytrail.ingest.agent.refs import (
    Resource,
    classify,
    credential_kind,
    credentials_in_arguments,
    resources_in_arguments,
)
from keytrail.ingest.base import LoadContext, Sample, SourceAdapter
from keytrail.timefmt import utc_z_time

_HEAD = re.compile(rb'^\s*(?:\xef\xbb\xbf)?\{\s*"jsonrpc"\s*:\s*"2\.0"')
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")
_OPPOSITE = {"client_to_server": "server_to_client", "server_to_client": "client_to_server"}
_TIME_KEYS = ("time", "timestamp", "ts")
_CLIENT_INFO = "io.modelcontextprotocol/clientInfo"


def _is_jsonrpc(msg: Any) -> bool:
    return (
        isinstance(msg, dict) and msg.get("jsonrpc") == "2.0" and ("method" in msg or "id" in msg)
    )


@dataclass
class _Msg:
    """One JSON-RPC message with its envelope and position."""

    msg: dict[str, Any]
    env: dict[str, Any]
    text: str
    record_no: int
    offset: int
    time: Any
    time_raw: str | None


class McpAdapter(SourceAdapter):
    NAME = "mcp"
    SOURCE = "agent"
    PRIORITY = 35

    @classmethod
    def sniff(cls, sample: Sample) -> str | None:
        obj = sniff_object(sample)
        if obj is None:
            return "mcp-jsonrpc" if _HEAD.match(sample.head) else None
        if _is_jsonrpc(obj):
            return "mcp-jsonrpc"
        if _is_jsonrpc(obj.get("message")):
            return "mcp-jsonrpc-wrapped"
        return None

    def load(self, ctx: LoadContext) -> None:
        batch = EventBatch(ctx)
        uid = UidMaker()
        pending: dict[tuple[Any, ...], _Msg] = {}
        for record_no, offset, text, doc in iter_json_records(ctx):
            ctx.records += 1
            if isinstance(doc, Exception):
                ctx.reject(
                    f"not valid JSON: {doc}", record_no=record_no, byte_offset=offset, excerpt=text
                )
                continue
            env: dict[str, Any] = {}
            msg: Any = doc
            if isinstance(doc, dict) and "message" in doc and "jsonrpc" not in doc:
                env, msg = doc, doc["message"]
            if not _is_jsonrpc(msg):
                ctx.reject(
                    'not a JSON-RPC 2.0 message (needs "jsonrpc": "2.0" and a method or an id), '
                    'bare or wrapped as {"time", ..., "message": {...}}',
                    record_no=record_no,
                    byte_offset=offset,
                    excerpt=text,
                )
                continue
            time_raw = next((str(env[k]) for k in _TIME_KEYS if env.get(k) not in (None, "")), None)
            time = utc_z_time(time_raw) if time_raw else None
            if time_raw and time is None:
                ctx.reject(
                    f"time {time_raw!r} is not an RFC 3339 timestamp or a unix time",
                    record_no=record_no,
                    byte_offset=offset,
                    excerpt=text,
                )
                continue
            m = _Msg(
                msg, env, text.decode("utf-8", errors="replace"), record_no, offset, time, time_raw
            )
            is_request = "method" in msg and msg.get("id") is not None
            is_response = "method" not in msg and ("result" in msg or "error" in msg)
            if is_request:
                key = _key(m, _str(env.get("direction")))
                if (
                    key in pending
                ):  # id reused before a response: the earlier request stays unanswered
                    _emit(batch, uid, pending.pop(key), None)
                pending[key] = m
            elif is_response:
                key = _key(m, _OPPOSITE.get(str(env.get("direction"))))
                req = pending.pop(key, None)
                if req is not None:
                    ctx.skipped_records += 1  # merged into its request's event
                _emit(batch, uid, req or m, m if req is not None else None)
            elif "method" in msg:
                _emit(batch, uid, m, None)  # notification
            else:
                ctx.reject(
                    "JSON-RPC message with an id but neither method, result nor error",
                    record_no=record_no,
                    byte_offset=offset,
                    excerpt=text,
                )
        for req in pending.values():
            _emit(batch, uid, req, None)
        batch.flush()


def _key(m: _Msg, request_direction: Any) -> tuple[Any, ...]:
    rid = m.msg.get("id")
    # str() of each part: envelope values are untrusted and may be unhashable (objects, arrays)
    return (
        str(m.env.get("session")),
        str(m.env.get("server")),
        type(rid).__name__,
        str(rid),
        request_direction,
    )


def _str(v: Any) -> str | None:
    return str(v) if v not in (None, "") and not isinstance(v, (dict, list)) else None


def _emit(batch: EventBatch, uid: UidMaker, m: _Msg, resp: _Msg | None) -> None:
    """One event for a request (with its response when paired), a notification, or a lone response."""
    msg, env = m.msg, m.env
    method = _str(msg.get("method"))
    params = obj(msg.get("params"))
    meta = obj(params.get("_meta"))
    # 2026-07-28 sends clientInfo in every request's _meta; earlier versions only in initialize's params
    client_info = obj(meta.get(_CLIENT_INFO)) or (
        obj(params.get("clientInfo")) if method == "initialize" else {}
    )
    details: dict[str, Any] = {
        "jsonrpc_id": msg.get("id"),
        "direction": env.get("direction"),
        "server": env.get("server"),
        "client_info": client_info or None,
        "protocol_version": meta.get("io.modelcontextprotocol/protocolVersion"),
    }
    resources: list[Resource] = []
    target = None
    args = params.get("arguments")
    tool = _str(params.get("name")) if method == "tools/call" else None
    if method == "tools/call":
        details["tool"], details["arguments"] = tool, args
        resources = resources_in_arguments(args, tool=tool) if args is not None else []
        target = resources[0][0] if resources else tool
    elif method and isinstance(params.get("uri"), str):
        res = classify(params["uri"])
        resources = [res] if res else []
        target = params["uri"]
    elif method == "prompts/get":
        target = _str(params.get("name"))
    elif method == "notifications/message":
        details["level"], details["logger"] = _str(params.get("level")), _str(params.get("logger"))
    creds = credentials_in_arguments(args) if args is not None else []
    credential = _str(env.get("credential")) or (creds[0] if creds else None)
    if len(creds) > 1:
        details["credential_refs"] = creds
    trace_id = span_id = None
    if isinstance(meta.get("traceparent"), str) and (tp := _TRACEPARENT.match(meta["traceparent"])):
        trace_id, span_id = tp.group(1), tp.group(2)

    final = resp.msg if resp else (msg if method is None else None)
    outcome, error_code, error_message = _outcome(final)
    if method is None:
        service_op = "response"
    else:
        service_op = method
        if resp:
            details["response_record_no"] = resp.record_no
            if resp.time and m.time:
                details["duration_ms"] = round((resp.time - m.time).total_seconds() * 1000, 3)
    if final and obj(final.get("result")).get("resultType"):
        details["result_type"] = obj(final.get("result"))["resultType"]
    raw = f"[{m.text},{resp.text}]" if resp else m.text
    agent = _str(env.get("client")) or _str(client_info.get("name"))
    details["agent_id_source"] = (
        "client" if _str(env.get("client")) else ("clientInfo.name" if agent else None)
    )
    batch.add(
        {
            "event_uid": uid("mcp", m.text),
            "source": "agent",
            "source_event_id": _str(msg.get("id")),
            "time": m.time,
            "time_raw": m.time_raw,
            "action": f"mcp:{service_op}",
            "service": "mcp",
            "operation": service_op,
            "outcome": outcome,
            "error_code": error_code,
            "error_message": error_message,
            "agent_id": agent,
            "actor_uid": agent,
            "actor_type": "agent" if agent else None,
            "actor_name": _str(client_info.get("name")),
            "human_id": _str(env.get("user")),
            "session_id": _str(env.get("session")),
            "credential_id": credential,
            "credential_kind": _str(env.get("credential_kind")) or credential_kind(credential),
            "target": target,
            "trace_id": hex_id(trace_id),
            "span_id": hex_id(span_id),
            "request_id": _str(msg.get("id")),
            "details": json_text({k: v for k, v in details.items() if v is not None}),
            "raw": raw,
            "record_no": m.record_no,
            "byte_offset": m.offset,
        },
        resources,
    )


def _outcome(final: dict[str, Any] | None) -> tuple[str, str | None, str | None]:
    """(outcome, error_code, error_message) from a response; ``unknown`` without one."""
    if final is None:
        return "unknown", None, None
    err = final.get("error")
    if err is not None:
        if isinstance(err, dict):
            return "failure", _str(err.get("code")), _str(err.get("message"))
        return "failure", None, _str(err)
    result = final.get("result")
    if isinstance(result, dict):
        if result.get("isError") is True:
            texts = [
                str(c["text"])
                for c in arr(result.get("content"))
                if isinstance(c, dict) and isinstance(c.get("text"), str)
            ]
            return "failure", "isError", (texts[0][:1000] if texts else None)
        if result.get("resultType") == "input_required":
            return "unknown", None, None  # the call is not finished: it asks the client for input
    return "success", None, None
