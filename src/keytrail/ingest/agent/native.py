"""keytrail's own agent log format: one JSON object per line (``docs/formats/agent-jsonl.md``).

For agents that log nothing standard. Each line says when, which agent, what
operation, and optionally on whose behalf, with which credential, against what.
The format is deliberately small and strict: a line that breaks a rule is rejected
with its line number and a message naming the field and the allowed values, the
rest of the file still loads. Fields keytrail does not know are kept in ``details``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from keytrail.ingest.agent.common import (
    EventBatch,
    UidMaker,
    hex_id,
    iter_json_records,
    json_text,
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

REQUIRED = ("time", "agent_id", "operation")
OUTCOMES = ("success", "failure", "denied")
#: Optional string fields and where they go.
_STRINGS = (
    "event_id",
    "agent_name",
    "session_id",
    "on_behalf_of",
    "tool",
    "target",
    "credential",
    "credential_kind",
    "outcome",
    "error",
    "error_code",
    "trace_id",
    "span_id",
    "parent_span_id",
    "host",
    "source_ip",
    "user_agent",
    "parent_agent_id",
)
KNOWN = frozenset(REQUIRED + _STRINGS + ("arguments",))
_STRING_SET = frozenset(_STRINGS)
_OPERATION = re.compile(r"^[A-Za-z0-9_.:/-]{1,128}$")


class NativeAgentAdapter(SourceAdapter):
    NAME = "agent_jsonl"
    SOURCE = "agent"
    PRIORITY = 35

    @classmethod
    def sniff(cls, sample: Sample) -> str | None:
        obj = sniff_object(sample)
        if obj is not None and all(isinstance(obj.get(k), str) for k in REQUIRED):
            return "agent-jsonl"
        return None

    def load(self, ctx: LoadContext) -> None:
        batch = EventBatch(ctx)
        uid = UidMaker()
        for line_no, offset, text, doc in iter_json_records(ctx):
            ctx.records += 1
            problem = _check(doc)
            if isinstance(problem, str):
                ctx.reject(
                    f"line {line_no}: {problem}",
                    record_no=line_no,
                    byte_offset=offset,
                    excerpt=text,
                )
                continue
            row, resources = _row(doc, text.decode("utf-8", errors="replace"), uid, problem)
            row.update(record_no=line_no, byte_offset=offset)
            batch.add(row, resources)
        batch.flush()


def _check(doc: Any) -> str | datetime:
    """Why a parsed line is not a valid native record, or its ``time`` in UTC when it is one."""
    if isinstance(doc, Exception):
        return f"not valid JSON: {doc}"
    if not isinstance(doc, dict):
        return "not a JSON object"
    for key in REQUIRED:
        if not isinstance(doc.get(key), str) or not doc[key].strip():
            return f"'{key}' is required and must be a non-empty string (required: {', '.join(REQUIRED)})"
    time = utc_z_time(doc["time"])
    if time is None:
        return f"'time' {doc['time']!r} is not an RFC 3339 timestamp (e.g. 2026-03-01T12:00:00Z)"
    if not _OPERATION.match(doc["operation"]):
        return (
            "'operation' must be a word such as tool_call, llm_call, credential_use, login, delegation, "
            "message (letters, digits, _ . : / -)"
        )
    # the keys a line has (~10) rather than all 18 optional ones; the first by _STRINGS order
    bad = [k for k in doc if k in _STRING_SET and not isinstance(doc[k], (str, type(None)))]
    if bad:
        key = min(bad, key=_STRINGS.index)
        return f"'{key}' must be a string, not {type(doc[key]).__name__}"
    if doc.get("outcome") not in (None, *OUTCOMES):
        return f"'outcome' is {doc['outcome']!r}; allowed: {', '.join(OUTCOMES)}"
    if doc.get("arguments") is not None and not isinstance(doc["arguments"], dict):
        return "'arguments' must be a JSON object"
    if doc["operation"] == "tool_call" and not (doc.get("tool") or "").strip():
        return "'tool' is required when operation is tool_call"
    return time


def _row(
    doc: dict[str, Any], raw: str, uid: UidMaker, time: datetime
) -> tuple[dict[str, Any], list[Resource]]:
    # every string member stripped once; s(key) is None for absent, non-string or blank members
    s = {k: t for k, v in doc.items() if isinstance(v, str) and (t := v.strip())}.get

    op = doc["operation"].strip()
    tool = s("tool")
    service, operation = ("tool", tool) if op == "tool_call" and tool else ("agent", op)
    args = doc.get("arguments")
    resources: list[Resource] = []
    target = s("target")
    if target and (res := classify(target, vault_hint=bool(tool and "vault" in tool.lower()))):
        resources.append(res)
        target = res[0]
    if args:
        resources += [r for r in resources_in_arguments(args, tool=tool) if r not in resources]
    credential = s("credential")
    creds = credentials_in_arguments(args) if args else []
    details: dict[str, Any] = {
        "operation": op,
        "tool": tool,
        "arguments": args,
        "host": s("host"),
        "parent_agent_id": s("parent_agent_id"),
        "agent_name": s("agent_name"),
    }
    if not credential and creds:
        credential = creds[0]
        details["credential_source"] = "arguments"
    if len(creds) > 1 or (creds and credential not in creds):
        details["credential_refs"] = creds
    extra = {k: v for k, v in doc.items() if k not in KNOWN}
    if extra:
        details["extra"] = extra
    event_id = s("event_id")
    row = {
        "event_uid": f"agent:{event_id}" if event_id else uid("agent", raw),
        "source": "agent",
        "source_event_id": event_id,
        "time": time,
        "time_raw": doc["time"],
        "action": f"{service}:{operation}",
        "service": service,
        "operation": operation,
        "outcome": s("outcome") or ("failure" if s("error") or s("error_code") else "unknown"),
        "error_code": s("error_code"),
        "error_message": s("error"),
        "actor_uid": s("agent_id"),
        "actor_type": "agent",
        "actor_name": s("agent_name"),
        "agent_id": s("agent_id"),
        "human_id": s("on_behalf_of"),
        "session_id": s("session_id"),
        "credential_id": credential,
        "credential_kind": s("credential_kind") or credential_kind(credential),
        "src_ip": s("source_ip"),
        "user_agent": s("user_agent"),
        "target": target or (resources[0][0] if resources else None),
        "trace_id": hex_id(s("trace_id")),
        "span_id": hex_id(s("span_id")),
        "parent_span_id": hex_id(s("parent_span_id")),
        "details": json_text({k: v for k, v in details.items() if v is not None}),
        "raw": raw,
    }
    return row, resources
