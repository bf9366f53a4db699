"""OCSF 1.1.0 for Vault / OpenBao audit events and agent events (OTLP GenAI spans, MCP, native lines).

OCSF has no agreed mapping for either source, so this one follows the CloudTrail mapping's
choices (``docs/reports.md`` has the table per source):

- **Vault**: logins (``auth/<mount>/login``, OIDC callbacks) are Authentication (3002) Logon,
  ``auth/token/revoke-self`` Logoff; everything else is API Activity (6003), the activity from
  the path for token and lease calls (``auth/token/create*`` Create, ``*/revoke*`` Delete,
  ``*/renew*`` Update, ``*/lookup*`` Read) and otherwise from the Vault operation. The product is
  ``OpenBao`` when the file's entries name an OpenBao builtin plugin (``+builtin.bao``), else
  HashiCorp ``Vault`` (the two write the same format).
- **Agents**: tool calls, model calls, MCP messages and other agent actions are API Activity with
  the agent as ``actor.user`` and the tool (or operation) as ``api.operation``; MCP list/read
  methods are Read, the rest Other (tool names say nothing reliable about what a tool does).
  A native ``login`` line is Authentication Logon. ``gen_ai.*`` span attributes go under
  ``unmapped.gen_ai``, except prompt and completion contents (they stay in the case's raw record).

Rows are the ``events`` table aliased ``x`` plus ``resources`` (JSON array text); the classification
columns come from :func:`vault_classification_sql` / :func:`agent_classification_sql`, which
:func:`classify_vault` / :func:`classify_agent` mirror in Python for tests.
"""

from __future__ import annotations

import re

from keytrail.report._ocsf import (
    API_ACTIVITY,
    API_VERBS,
    AUTHENTICATION,
    OCSF_VERSION,
    header,
    j,
    keys_masked_sql,
    obj,
)
from keytrail.report._sql import mask_sql
from keytrail.store.sqltext import quote_literal as lit

OcsfClass = tuple[int, str, int, str]

#: (path regex, operations it applies to or None for any, class, activity id, activity name), first match wins.
VAULT_PATH_RULES: tuple[tuple[str, frozenset[str] | None, OcsfClass, int, str], ...] = (
    (r"^auth/.+/login(/[^/]+)?$", frozenset({"update", "create"}), AUTHENTICATION, 1, "Logon"),
    (r"^auth/.+/oidc/callback$", None, AUTHENTICATION, 1, "Logon"),
    (r"^auth/token/revoke-self$", None, AUTHENTICATION, 2, "Logoff"),
    (r"^auth/token/create", None, API_ACTIVITY, 1, "Create"),
    (r"^(auth/token/revoke|sys/leases/revoke|sys/revoke)", None, API_ACTIVITY, 4, "Delete"),
    (r"^(auth/token/renew|sys/leases/renew|sys/renew)", None, API_ACTIVITY, 3, "Update"),
    (r"^(auth/token/lookup|sys/leases/lookup)", None, API_ACTIVITY, 2, "Read"),
)
#: Vault request operations -> API Activity activity id (the rest, e.g. KMIP and server log lines: Other).
VAULT_OPERATIONS = {
    "create": 1,
    "read": 2,
    "list": 2,
    "help": 2,
    "update": 3,
    "patch": 3,
    "renew": 3,
    "rollback": 3,
    "delete": 4,
    "revoke": 4,
}
#: MCP methods that only read (``*/list``, ``resources/read``, ``prompts/get``).
MCP_READ = r"^mcp:(.+/list|resources/read|prompts/get)$"
#: ``gen_ai.*`` attributes left out of ``unmapped.gen_ai``: message contents, and tool arguments
#: (those are ``api.request.data``).
GEN_AI_LEFT_OUT = (
    r"^gen_ai\.(input\.messages|output\.messages|system_instructions|prompt|completion|"
    r"tool\.call\.result|tool\.call\.arguments|tool\.definitions)(\.|$)"
)


def classify_vault(path: str | None, operation: str | None) -> tuple[OcsfClass, int, str]:
    """(class, activity_id, activity_name) of a Vault request on ``path`` with ``operation``."""
    op = operation or ""
    if op in VAULT_OPERATIONS:
        for pattern, ops, cls, act, name in VAULT_PATH_RULES:
            if re.search(pattern, path or "") and (ops is None or op in ops):
                return cls, act, name
    act = VAULT_OPERATIONS.get(op, 99)
    return API_ACTIVITY, act, API_VERBS[act]


def vault_classification_sql(path: str, operation: str) -> tuple[str, str, str]:
    """SQL for (class_uid, activity_id, activity_name), as :func:`classify_vault`."""
    known = f"{operation} IN ({', '.join(lit(o) for o in sorted(VAULT_OPERATIONS))})"
    parts = []
    for pattern, ops, cls, act, name in VAULT_PATH_RULES:
        cond = f"{known} AND regexp_matches({path}, {lit(pattern)})"
        if ops is not None:
            cond += f" AND {operation} IN ({', '.join(lit(o) for o in sorted(ops))})"
        parts.append((cond, cls[0], act, name))
    by_op = "CASE " + " ".join(
        f"WHEN {operation} = {lit(o)} THEN {a}" for o, a in sorted(VAULT_OPERATIONS.items())
    )
    op_act = f"{by_op} ELSE 99 END"
    op_name = (
        "CASE "
        + " ".join(
            f"WHEN {operation} = {lit(o)} THEN {lit(API_VERBS[a])}"
            for o, a in sorted(VAULT_OPERATIONS.items())
        )
        + " ELSE 'Other' END"
    )
    cls_sql = (
        "CASE "
        + " ".join(f"WHEN {c} THEN {k}" for c, k, _, _ in parts)
        + f" ELSE {API_ACTIVITY[0]} END"
    )
    act_sql = (
        "CASE " + " ".join(f"WHEN {c} THEN {a}" for c, _, a, _ in parts) + f" ELSE {op_act} END"
    )
    name_sql = (
        "CASE "
        + " ".join(f"WHEN {c} THEN {lit(n)}" for c, _, _, n in parts)
        + f" ELSE {op_name} END"
    )
    return cls_sql, act_sql, name_sql


def classify_agent(action: str | None) -> tuple[OcsfClass, int, str]:
    """(class, activity_id, activity_name) of an agent event's ``action``."""
    if action == "agent:login":
        return AUTHENTICATION, 1, "Logon"
    if re.search(MCP_READ, action or ""):
        return API_ACTIVITY, 2, "Read"
    return API_ACTIVITY, 99, "Other"


def agent_classification_sql(action: str) -> tuple[str, str, str]:
    """SQL for (class_uid, activity_id, activity_name), as :func:`classify_agent`."""
    login = f"{action} = 'agent:login'"
    read = f"regexp_matches({action}, {lit(MCP_READ)})"
    return (
        f"CASE WHEN {login} THEN {AUTHENTICATION[0]} ELSE {API_ACTIVITY[0]} END",
        f"CASE WHEN {login} THEN 1 WHEN {read} THEN 2 ELSE 99 END",
        f"CASE WHEN {login} THEN 'Logon' WHEN {read} THEN 'Read' ELSE 'Other' END",
    )


def _detail(key: str) -> str:
    return f"json_extract_string(x.details, '$.{key}')"


def _user() -> str:
    return obj(
        ("uid", j("x.actor_uid")),
        ("type", j("x.actor_type")),
        ("name", j("x.actor_name")),
        ("credential_uid", j("x.credential_m")),
    )


def _metadata(uid: str, product: str, extra: tuple[tuple[str, str], ...] = ()) -> tuple[str, str]:
    return (
        "metadata",
        obj(
            ("version", j(lit(OCSF_VERSION))),
            ("uid", j(uid)),
            *extra,
            ("event_code", j("x.action")),
            ("original_time", j("x.time_raw")),
            ("log_name", j("x.format")),
            ("profiles", "'[\"datetime\"]'"),
            ("product", product),
        ),
    )


def _tail(request: str, unmapped: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    return [
        (
            "api",
            obj(
                ("operation", j("x.api_operation")),
                ("service", obj(("name", j("x.api_service")))),
                ("request", request),
                (
                    "response",
                    obj(("error", j("x.error_code")), ("message", j("x.error_message_m"))),
                ),
            ),
        ),
        ("src_endpoint", obj(("ip", j("x.src_ip")), ("port", "x.src_port"))),
        ("http_request", obj(("user_agent", j("x.user_agent_m")))),
        ("resources", "x.resources"),
        ("unmapped", obj(("keytrail.event_uid", j("x.event_uid")), *unmapped)),
    ]


def vault_doc_sql() -> str:
    """The OCSF object of a Vault row ``x`` (with ``is_bao``: the file is OpenBao's) as JSON text."""
    product = obj(
        ("name", j("CASE WHEN x.is_bao THEN 'OpenBao' ELSE 'Vault' END")),
        ("vendor_name", j("CASE WHEN x.is_bao THEN 'OpenBao' ELSE 'HashiCorp' END")),
    )
    user = _user()
    return obj(
        *header("x.error_message_m"),
        _metadata("x.source_event_id", product),
        ("actor", obj(("user", user))),
        ("user", f"CASE WHEN x.class_uid = {AUTHENTICATION[0]} THEN {user} END"),
        *_tail(
            obj(("uid", j("x.source_event_id"))),
            (
                ("vault.path", j("x.target")),
                ("vault.namespace", j("x.account")),
                ("vault.details", "x.details_m"),
            ),
        ),
    )


def agent_doc_sql() -> str:
    """The OCSF object of an agent (or any other non-CloudTrail, non-Vault) row ``x`` as JSON text."""
    otlp = "x.format IN ('otlp-traces', 'otlp-logs')"
    product = obj(
        (
            "name",
            j(
                f"CASE WHEN {otlp} THEN coalesce(nullif({_detail('scope')}, ''), "
                f"nullif({_detail('service_name')}, ''), 'OpenTelemetry') WHEN x.format LIKE 'mcp%' THEN 'MCP' "
                "WHEN x.format LIKE '%agent-jsonl' THEN coalesce(x.actor_name, x.agent_id, 'agent') "
                "ELSE coalesce(x.format, x.source) END"
            ),
        ),
        ("version", j(f"CASE WHEN {otlp} THEN json_extract_string(x.raw, '$.scope.version') END")),
        (
            "feature",
            obj(
                (
                    "name",
                    j(
                        f"CASE WHEN {otlp} THEN {_detail('service_name')} "
                        f"WHEN x.format LIKE 'mcp%' THEN {_detail('server')} END"
                    ),
                )
            ),
        ),
    )
    user = _user()
    uid = "CASE WHEN x.format LIKE 'mcp%' THEN NULL ELSE x.source_event_id END"
    tool_call = f"CASE WHEN json_type(x.details, '$.tool_call_id') = 'VARCHAR' THEN {_detail('tool_call_id')} END"
    return obj(
        *header("x.error_message_m"),
        _metadata(uid, product, (("correlation_uid", j("x.trace_id")),)),
        ("actor", obj(("user", user), ("session", obj(("uid", j("x.session_id")))))),
        ("user", f"CASE WHEN x.class_uid = {AUTHENTICATION[0]} THEN {user} END"),
        *_tail(
            obj(("uid", j(f"coalesce(x.request_id, {tool_call})")), ("data", "x.arguments_m")),
            (
                ("keytrail.agent_id", j("x.agent_id")),
                ("keytrail.human_id", j("x.human_id")),
                ("keytrail.target", j("x.target")),
                ("gen_ai", "x.gen_ai_m"),
                ("keytrail.details", "x.details_rest_m"),
            ),
        ),
    )


def _gen_ai(raw: str) -> str:
    """The record's ``gen_ai.*`` attributes (values unwrapped from OTLP ``AnyValue``) as a JSON object, or NULL."""
    attrs = (
        f"CAST(coalesce(json_extract({raw}, '$.span.attributes'), json_extract({raw}, '$.logRecord.attributes'))"
        " AS JSON[])"
    )
    key = "json_extract_string(a, '$.key')"
    keep = (
        f"lambda a: starts_with({key}, 'gen_ai.') AND NOT regexp_matches({key}, {lit(GEN_AI_LEFT_OUT)}) "
        "AND len(json_keys(json_extract(a, '$.value'))) > 0"
    )
    member = f"lambda a: to_json({key}) || ':' || CAST(json_extract(a, '$.value.*')[1] AS VARCHAR)"
    return (
        f"CAST(nullif('{{' || array_to_string(list_transform(list_filter({attrs}, {keep}), {member}), ',') "
        "|| '}', '{}') AS JSON)"
    )


def _masked(inner: str, json_cols: tuple[str, ...]) -> str:
    """``inner`` plus ``<col>_m``: each JSON column as masked text (secret keys, then free-text secrets), and
    ``error_message_m``, ``credential_m``, ``user_agent_m`` masked.

    Masking runs on named columns of nested queries: applied to the building expressions themselves,
    the SQL would repeat them dozens of times and take seconds just to plan."""
    keyed = ", ".join(
        f"coalesce({keys_masked_sql(c)}, CAST({c} AS VARCHAR)) AS {c}_k" for c in json_cols
    )
    masked = ", ".join(
        [
            *(f"{mask_sql(c + '_k')} AS {c}_m" for c in json_cols),
            f"{mask_sql('error_message')} AS error_message_m",
            f"{mask_sql('credential_id')} AS credential_m",
            f"{mask_sql('user_agent')} AS user_agent_m",
        ]
    )
    return f"SELECT *, {masked} FROM (SELECT *, {keyed} FROM ({inner}))"


def vault_rows_sql() -> str:
    """Vault rows with their classification, product, API and masked columns (``res``: resources CTE)."""
    cls, act, name = vault_classification_sql(
        "regexp_replace(coalesce(e.target, ''), '^vault:', '')", "e.operation"
    )
    return _masked(
        f"""
SELECT e.*, r.resources, {cls} AS class_uid, {act} AS activity_id, {name} AS activity_name,
       e.file_id IN (SELECT file_id FROM events WHERE source = 'vault' AND contains(raw, '+builtin.bao"')) AS is_bao,
       e.operation AS api_operation, json_extract_string(e.details, '$.mount_point') AS api_service,
       CAST(json_extract(e.details, '$.remote_port') AS VARCHAR) AS src_port
FROM events e LEFT JOIN res r ON r.event_uid = e.event_uid WHERE e.source = 'vault'""",
        ("details",),
    )


def agent_rows_sql() -> str:
    """Agent rows (and any source without its own mapping) with classification, API and masked columns."""
    cls, act, name = agent_classification_sql("e.action")
    otlp = "e.format IN ('otlp-traces', 'otlp-logs')"
    rest = (
        "CASE WHEN json_type(e.details) = 'OBJECT' THEN nullif(json_merge_patch(e.details, "
        "'{\"arguments\":null,\"tool_arguments\":null}'), '{}') ELSE e.details END"
    )
    return _masked(
        f"""
SELECT e.*, r.resources, {cls} AS class_uid, {act} AS activity_id, {name} AS activity_name,
       coalesce(json_extract_string(e.details, '$.tool'), e.operation) AS api_operation,
       coalesce(json_extract_string(e.details, '$.server'), json_extract_string(e.details, '$.provider'))
         AS api_service,
       coalesce(json_extract(e.details, '$.arguments'), json_extract(e.details, '$.tool_arguments')) AS arguments,
       CASE WHEN {otlp} THEN {_gen_ai("e.raw")} END AS gen_ai, {rest} AS details_rest, NULL AS src_port
FROM events e LEFT JOIN res r ON r.event_uid = e.event_uid WHERE e.source NOT IN ('cloudtrail', 'vault')""",
        ("arguments", "gen_ai", "details_rest"),
    )
