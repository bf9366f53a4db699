"""SQL building blocks shared by the OCSF mappings of every source (CloudTrail, Vault, agents).

Each mapping builds one JSON line per event inside DuckDB. These helpers write the SQL for
JSON members (``to_json`` escapes every value; ``concat_ws`` drops absent members, so absent
attributes are omitted rather than written as ``null``), the OCSF header every class shares
(class, category, activity, type, severity, status, time), and key-based secret masking of
JSON values. The row alias is always ``x`` with columns ``class_uid``, ``activity_id``,
``activity_name``, ``outcome``, ``error_code``, ``error_message``, ``time``.
"""

from __future__ import annotations

from keytrail.report._sql import mask_sql
from keytrail.store.sqltext import mask_json_sql
from keytrail.store.sqltext import quote_literal as lit

OCSF_VERSION = "1.1.0"

AUTHENTICATION = (3002, "Authentication", 3, "Identity & Access Management")
ACCOUNT_CHANGE = (3001, "Account Change", 3, "Identity & Access Management")
API_ACTIVITY = (6003, "API Activity", 6, "Application Activity")

CLASS_INFO = {c[0]: c for c in (AUTHENTICATION, ACCOUNT_CHANGE, API_ACTIVITY)}

#: API Activity (6003) activity ids (OCSF 1.1.0 ``events/application/api_activity.json``).
API_VERBS = {1: "Create", 2: "Read", 3: "Update", 4: "Delete", 99: "Other"}


def obj(*pairs: tuple[str, str]) -> str:
    """SQL for a JSON object's text from (key, JSON-text expression) pairs. Absent members are left
    out (``concat_ws`` skips NULLs) and an object with no member is NULL, so it disappears too."""
    members = ", ".join(f"{lit(chr(34) + k + chr(34) + ':')} || ({v})" for k, v in pairs)
    return f"('{{' || nullif(concat_ws(',', {members}), '') || '}}')"


def j(expr: str) -> str:
    """JSON text of a scalar SQL expression (NULL stays NULL)."""
    return f"to_json({expr})"


def keys_masked_sql(expr: str) -> str:
    """JSON text ``expr`` (object or array) with string values under secret keys masked, else NULL."""
    return f"CASE WHEN json_type({expr}) IN ('OBJECT', 'ARRAY') THEN {mask_json_sql(f'CAST({expr} AS VARCHAR)')} END"


def by_class(i: int) -> str:
    """``CLASS_INFO`` field ``i`` (1 class name, 2 category uid, 3 category name) of ``x.class_uid``."""
    return (
        "CASE x.class_uid "
        + " ".join(f"WHEN {k} THEN {lit(str(v[i]))}" for k, v in CLASS_INFO.items())
        + " END"
    )


def verb_name_sql(activity: str) -> str:
    """The API Activity name of an activity id expression."""
    return (
        "CASE "
        + activity
        + " "
        + " ".join(f"WHEN {k} THEN {lit(v)}" for k, v in API_VERBS.items())
        + " END"
    )


def header(status_detail: str | None = None) -> list[tuple[str, str]]:
    """The members every OCSF event starts with, in the order the CloudTrail export writes them.

    ``status_detail``: the masked error message, when the row has it already (default: mask it here)."""
    failed = "x.outcome IN ('failure', 'denied')"
    status = f"CASE WHEN x.outcome = 'success' THEN 1 WHEN {failed} THEN 2 ELSE 0 END"
    status_name = f"CASE WHEN x.outcome = 'success' THEN 'Success' WHEN {failed} THEN 'Failure' ELSE 'Unknown' END"
    return [
        ("class_uid", j("x.class_uid")),
        ("class_name", j(by_class(1))),
        ("category_uid", j(f"CAST({by_class(2)} AS INTEGER)")),
        ("category_name", j(by_class(3))),
        ("activity_id", j("x.activity_id")),
        ("activity_name", j("x.activity_name")),
        ("type_uid", j("x.class_uid * 100 + x.activity_id")),
        ("type_name", j(f"{by_class(1)} || ': ' || x.activity_name")),
        ("severity_id", "'1'"),
        ("severity", "'\"Informational\"'"),
        ("status_id", j(status)),
        ("status", j(status_name)),
        ("status_code", j("x.error_code")),
        ("status_detail", j(status_detail or mask_sql("x.error_message"))),
        ("time", j("epoch_us(x.time) // 1000")),
        ("time_dt", j("strftime(x.time, '%Y-%m-%dT%H:%M:%S.%g') || 'Z'")),
    ]
