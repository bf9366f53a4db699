"""From agent-telemetry attributes to keytrail's normalised fields.

Two vocabularies describe the same agent actions: the OpenTelemetry GenAI
conventions (``gen_ai.*``, with names renamed between releases, research A1.6) and
OpenInference (``openinference.span.kind``, ``tool.*``, ``llm.*``, A3.7); frameworks
mix them freely. :func:`normalise` reads a flat attribute map (span attributes over
resource attributes) and returns one :class:`AgentView` whatever the dialect, so a
span written with deprecated names and one written with current names produce the
same event. The rules are listed for users in ``docs/formats/otlp.md``; keep the two
in step.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from keytrail.ingest.agent.refs import credential_kind, credentials_in_arguments

_EPOCH = datetime(1970, 1, 1)

LLM_OPERATIONS = frozenset({"chat", "text_completion", "embeddings", "generate_content"})
AGENT_OPERATIONS = frozenset({"invoke_agent", "create_agent", "invoke_workflow"})
#: OpenInference span kinds that map onto a GenAI operation.
_OI_KINDS = {
    "TOOL": "execute_tool",
    "LLM": "chat",
    "EMBEDDING": "embeddings",
    "AGENT": "invoke_agent",
    "RETRIEVER": "retrieval",
    "GUARDRAIL": "run_guardrail",
}
#: Renamed ``gen_ai.system`` values (deprecated -> current ``gen_ai.provider.name``).
_PROVIDER_RENAMES = {
    "az.ai.inference": "azure.ai.inference",
    "vertex_ai": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
}

HUMAN_KEYS = ("enduser.id", "user.id", "user.email", "enduser.pseudo.id", "langfuse.user.id")
SESSION_KEYS = ("session.id", "gen_ai.conversation.id", "langfuse.session.id", "mcp.session.id")
#: Attributes that name the credential a span used (no OTel convention exists, research A1.5).
CREDENTIAL_KEYS = (
    "keytrail.credential.id",
    "credential.id",
    "aws.access_key.id",
    "aws.access_key_id",
    "cloud.credential.id",
    "vault.token.accessor",
    "vault.accessor",
)
#: Where tool arguments are found, in order of preference.
TOOL_ARGUMENT_KEYS = (
    "gen_ai.tool.call.arguments",
    "tool.parameters",
    "input.value",
    "tool_arguments",
    "gcp.vertex.agent.tool_call_args",
    "tool_parameters",
)


# -- OTLP/JSON values ---------------------------------------------------------------------------


def any_value(v: Any) -> Any:
    """Decode an OTLP ``AnyValue`` (``{"stringValue": ...}`` etc.) to a Python value."""
    # ``type(v) is dict`` first: parsed JSON is always a dict, and the ABC test costs ~10x more
    if not (type(v) is dict or isinstance(v, Mapping)) or not v:
        return None
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        try:
            return int(v["intValue"])
        except (TypeError, ValueError):
            return v["intValue"]
    if "boolValue" in v:
        b = v["boolValue"]
        return b if isinstance(b, bool) else str(b).lower() == "true"
    if "doubleValue" in v:
        try:
            return float(v["doubleValue"])
        except (TypeError, ValueError):
            return v["doubleValue"]
    if "arrayValue" in v:
        return [any_value(x) for x in (v["arrayValue"] or {}).get("values") or []]
    if "kvlistValue" in v:
        return key_values((v["kvlistValue"] or {}).get("values"))
    if "bytesValue" in v:
        return v["bytesValue"]  # base64 as written; opaque to keytrail
    return None


def key_values(kvs: Any, into: dict[str, Any] | None = None) -> dict[str, Any]:
    """An OTLP ``KeyValue`` list as a dict (later keys win, as in the SDKs), written over ``into``
    when given (a span's attributes over a copy of its resource's, without a second dict)."""
    out: dict[str, Any] = {} if into is None else into
    if isinstance(kvs, list):
        for kv in kvs:
            if type(kv) is dict or isinstance(kv, Mapping):
                key = kv.get("key")
                if type(key) is str or isinstance(key, str):
                    value = kv.get("value")
                    # the common case inline: a one-member {"stringValue": ...}
                    if type(value) is dict and len(value) == 1 and "stringValue" in value:
                        out[key] = value["stringValue"]
                    else:
                        out[key] = any_value(value)
    return out


def otlp_id(value: Any, nbytes: int) -> str | None:
    """A trace (16 bytes) or span (8 bytes) id as lower-case hex; ``None`` when empty or all zero.

    The OTLP/JSON spec writes ids as hex (any case); exporters that use the plain protobuf
    JSON mapping write base64. Anything else is kept as written so it is still greppable.
    """
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if len(text) == nbytes * 2:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = b""
        if raw:
            if not any(raw):
                return None
            # already lower-case hex (what exporters write): the text is its own hex()
            return text if text.islower() and text.isascii() and text.isalnum() else raw.hex()
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) == nbytes:
        return None if not any(raw) else raw.hex()
    return text


def unix_nano(value: Any) -> datetime | None:
    """``*UnixNano`` (int or decimal string) to naive UTC, exact to the microsecond; 0/absent -> None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        ns = int(value)
    except (TypeError, ValueError):
        return None
    if ns <= 0:
        return None
    try:
        return _EPOCH + timedelta(microseconds=ns // 1000)
    except OverflowError:
        return None


def parse_jsonish(value: Any) -> Any:
    """A JSON string parsed when it holds an object or array; anything else unchanged."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _first(attrs: Mapping[str, Any], keys: tuple[str, ...]) -> tuple[str | None, str | None]:
    """The first non-empty string value among ``keys`` and the key it came from (numbers as text)."""
    if attrs.keys().isdisjoint(keys):  # most keys are absent from most spans: one C-level test
        return None, None
    for k in keys:
        v = attrs.get(k)
        if v is None:
            continue
        if isinstance(v, str):
            v = v.strip()
            if v:
                return v, k
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            return str(v), k
    return None, None


# -- normalisation ------------------------------------------------------------------------------


@dataclass
class AgentView:
    """What keytrail reads from one span's or log record's attributes."""

    kind: str = "other"  # tool | llm | agent | other
    operation: str | None = None  # GenAI operation name (from gen_ai.operation.name or the OI kind)
    operation_raw: str | None = None
    openinference_kind: str | None = None
    tool_name: str | None = None
    tool_call_id: Any = None
    tool_type: str | None = None
    tool_arguments: Any = None
    agent_id: str | None = None
    agent_id_source: str | None = None
    agent_name: str | None = None
    human_id: str | None = None
    human_id_source: str | None = None
    session_id: str | None = None
    session_id_source: str | None = None
    model: str | None = None
    response_model: str | None = None
    provider: str | None = None
    response_id: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    error_type: str | None = None
    credential_id: str | None = None
    credential_kind: str | None = None
    credential_source: str | None = None
    #: GenAI attributes (``gen_ai.*``, ``openinference.span.kind``) or recognised as a tool/LLM/agent action.
    has_genai: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def action(self) -> tuple[str, str] | None:
        """``(service, operation)`` for the event, or None when the span is not an agent action."""
        if self.kind == "tool":
            return "tool", self.tool_name or "unknown"
        if self.kind == "llm":
            return "llm", self.operation or "chat"
        if self.kind == "agent":
            return "agent", self.operation or "invoke_agent"
        return None

    def details(self) -> dict[str, Any]:
        """The normalised fields worth keeping in ``events.details`` (messages stay in ``raw``)."""
        keys = (
            "operation_raw",
            "openinference_kind",
            "tool_name",
            "tool_call_id",
            "tool_type",
            "tool_arguments",
            "agent_name",
            "agent_id_source",
            "human_id_source",
            "session_id_source",
            "model",
            "response_model",
            "provider",
            "response_id",
            "input_tokens",
            "output_tokens",
            "credential_source",
        )
        own = self.__dict__
        out = {k: own[k] for k in keys if own[k] not in (None, "", [], {})}
        out.update(self.extra)
        return out


#: The string fields :func:`normalise` reads, each from the first of its keys with a usable value
#: (:func:`_first`'s rule); ``tool_log`` is ``tool`` for log records (Claude Code's ``tool_name``).
_SLOTS: dict[str, tuple[str, ...]] = {
    "op": ("gen_ai.operation.name",),
    "oi": ("openinference.span.kind",),
    "tool": ("gen_ai.tool.name", "tool.name"),
    "tool_log": ("gen_ai.tool.name", "tool.name", "tool_name"),
    "agent": ("gen_ai.agent.id", "gen_ai.agent.name"),
    "agent_oi": ("agent.name", "graph.node.id"),
    "agent_name": ("gen_ai.agent.name", "agent.name"),
    "human": HUMAN_KEYS,
    "session": SESSION_KEYS,
    "model": ("gen_ai.request.model", "llm.model_name", "gen_ai.response.model"),
    "response_model": ("gen_ai.response.model",),
    "provider": ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system"),
    "response_id": ("gen_ai.response.id",),
    "error_type": ("error.type",),
    "tool_type": ("gen_ai.tool.type",),
    "credential": CREDENTIAL_KEYS,
}
#: key -> [(slot, rank of the key in the slot)]
_KEY_SLOTS: dict[str, list[tuple[str, int]]] = {}
for _slot, _keys in _SLOTS.items():
    for _rank, _key in enumerate(_keys):
        _KEY_SLOTS.setdefault(_key, []).append((_slot, _rank))
_NONE: tuple[None, None] = (None, None)


def _firsts(attrs: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """``{slot: (value, key)}`` for every slot of :data:`_SLOTS`, as :func:`_first` of the slot's
    keys gives it, in one pass over the few attributes that are slot keys (a span has ~10
    attributes; sixteen ``_first`` calls over ~40 keys cost a third of the OTLP adapter)."""
    best: dict[str, tuple[str, str, int]] = {}
    for k in attrs.keys() & _KEY_SLOTS.keys():
        v = attrs[k]
        if type(v) is str or isinstance(v, str):
            v = v.strip()
            if not v:
                continue
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            v = str(v)
        else:
            continue
        for slot, rank in _KEY_SLOTS[k]:
            cur = best.get(slot)
            if cur is None or rank < cur[2]:
                best[slot] = (v, k, rank)
    return {slot: (v, k) for slot, (v, k, _) in best.items()}


def _has_genai(attrs: Mapping[str, Any]) -> bool:
    for k in attrs:
        if k.startswith("gen_ai."):
            return True
    return "openinference.span.kind" in attrs


def normalise(attrs: Mapping[str, Any], *, log_record: bool = False) -> AgentView:
    """Read the GenAI / OpenInference attributes of one span (or log record with ``log_record``)."""
    v = AgentView()
    v.has_genai = _has_genai(attrs)
    got = _firsts(attrs)
    op = got.get("op", _NONE)[0]
    v.operation_raw = op
    oi = got.get("oi", _NONE)[0]
    v.openinference_kind = oi.upper() if oi else None
    v.tool_name = got.get("tool_log" if log_record else "tool", _NONE)[0]
    op = op or _OI_KINDS.get(v.openinference_kind or "")
    agent_named = any(attrs.get(k) for k in ("gen_ai.agent.id", "gen_ai.agent.name"))
    if op is None and v.tool_name:
        op = "execute_tool"  # Koog, pydantic-ai: tool spans carry gen_ai.tool.name but no operation
    elif op is None and agent_named:
        op = "invoke_agent"  # pydantic-ai agent run spans
    v.operation = op
    if op == "execute_tool":
        v.kind = "tool"
    elif op in LLM_OPERATIONS:
        v.kind = "llm"
    elif op is not None:
        v.kind = (
            "agent"  # invoke_agent, create_agent, invoke_workflow, retrieval, custom operations
        )
    v.has_genai = (
        v.has_genai or v.kind != "other"
    )  # e.g. Claude Code tool_result log records (tool_name)

    # who
    v.agent_id, v.agent_id_source = got.get("agent", _NONE)
    if (
        not v.agent_id
        and op in ("invoke_agent", "create_agent")
        and v.openinference_kind == "AGENT"
    ):
        v.agent_id, v.agent_id_source = got.get("agent_oi", _NONE)
    v.agent_name = got.get("agent_name", _NONE)[0]
    v.human_id, v.human_id_source = got.get("human", _NONE)
    v.session_id, v.session_id_source = got.get("session", _NONE)

    # what with
    v.model = got.get("model", _NONE)[0]
    v.response_model = got.get("response_model", _NONE)[0]
    provider, src = got.get("provider", _NONE)
    v.provider = (
        _PROVIDER_RENAMES.get(provider, provider)
        if src == "gen_ai.system" and provider
        else provider
    )
    v.response_id = got.get("response_id", _NONE)[0]
    v.input_tokens = _tokens(attrs, _INPUT_TOKENS)
    v.output_tokens = _tokens(attrs, _OUTPUT_TOKENS)
    v.error_type = got.get("error_type", _NONE)[0]

    # the tool call
    if v.kind == "tool":
        call_id = (
            attrs.get("gen_ai.tool.call.id")
            or attrs.get("tool_call.id")
            or attrs.get("tool_use_id")
        )
        v.tool_call_id = call_id if call_id not in ("", []) else None
        v.tool_type = got.get("tool_type", _NONE)[0]
        for key in TOOL_ARGUMENT_KEYS:
            if attrs.get(key) not in (None, ""):
                v.tool_arguments = parse_jsonish(attrs[key])
                break

    # the credential
    v.credential_id, v.credential_source = got.get("credential", _NONE)
    if v.credential_id:
        v.credential_kind = (
            "vault-token"
            if v.credential_source and v.credential_source.startswith("vault.")
            else credential_kind(v.credential_id)
        )
    elif v.tool_arguments is not None:
        refs = credentials_in_arguments(v.tool_arguments)
        if refs:
            v.credential_id, v.credential_source = refs[0], "tool arguments"
            v.credential_kind = credential_kind(refs[0])
            if len(refs) > 1:
                v.extra["credential_refs"] = refs
    return v


_INPUT_TOKENS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt",
)
_OUTPUT_TOKENS = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
)


def _tokens(attrs: Mapping[str, Any], keys: tuple[str, ...]) -> int | None:
    """The first of ``keys`` holding a whole number (:func:`_int`)."""
    for k in keys:
        if k in attrs and (t := _int(attrs[k])) is not None:
            return t
    return None
