"""Timesketch timeline export: JSON lines with ``message``, ``datetime``, ``timestamp_desc``.

Timesketch needs three fields per line (Timesketch docs, "Create timeline from JSON/JSONL/CSV"):
``message`` (short, human-readable), ``datetime`` (ISO 8601 with offset) and ``timestamp_desc``
(what the time means). ``timestamp`` (microseconds since the epoch) is added, and every other
field is a flat, searchable attribute named as in the case schema. Events with no time cannot
be placed on a timeline; they are left out and counted by :func:`untimed_events`.
Written by DuckDB ``COPY ... (FORMAT json)`` (one object per line) in time order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keytrail.report._sql import mask_sql, quiet_cursor, quote_literal

if TYPE_CHECKING:
    from pathlib import Path

    from keytrail.store.case import CaseStore

TIMESTAMP_DESC = {
    "cloudtrail": "CloudTrail eventTime",
    "vault": "Vault audit time",
    "agent": "Agent event time",
}

#: Flat attributes copied from ``events`` (text ones have secrets masked).
FIELDS = (
    "event_uid",
    "source",
    "source_event_id",
    "action",
    "outcome",
    "error_code",
    "error_message",
    "actor_uid",
    "actor_type",
    "actor_name",
    "credential_id",
    "credential_kind",
    "session_id",
    "agent_id",
    "human_id",
    "src_ip",
    "user_agent",
    "account",
    "region",
    "target",
    "trace_id",
    "span_id",
    "request_id",
)


#: Fields that may carry free text from a log (masked); the others are ids, enums and codes.
FREE_TEXT = frozenset(
    {
        "error_message",
        "actor_name",
        "credential_id",
        "session_id",
        "agent_id",
        "human_id",
        "user_agent",
        "target",
    }
)


def _message_sql() -> str:
    # "<actor> <action> <target> [<outcome>]", short, like a Plaso message.
    actor = "coalesce(e.actor_name, e.actor_uid, e.agent_id, e.credential_id, '(unknown actor)')"
    parts = [
        actor,
        "coalesce(e.action, '(no action)')",
        "e.target",
        "CASE WHEN e.outcome IN ('denied', 'failure') THEN '[' || e.outcome || ']' END",
    ]
    return f"concat_ws(' ', {', '.join(parts)})"


def untimed_events(store: CaseStore) -> int:
    return int(store.scalar("SELECT count(*) FROM events WHERE time IS NULL") or 0)


def export_timesketch(
    store: CaseStore, path: Path, where: tuple[str, list[Any]] | None = None
) -> int:
    """Events with a time as Timesketch JSONL; ``where`` keeps one view's events (SQL, params)."""
    cond, params = where or ("TRUE", [])
    desc = (
        "CASE e.source "
        + " ".join(
            f"WHEN {quote_literal(k)} THEN {quote_literal(v)}" for k, v in TIMESTAMP_DESC.items()
        )
        + " ELSE 'Event time' END"
    )
    fields = ", ".join(
        f"{mask_sql(f'e.{f}')} AS {f}" if f in FREE_TEXT else f"e.{f}" for f in FIELDS
    )
    select = f"""
      SELECT {mask_sql("e.message")} AS message,
             strftime(e.time, '%Y-%m-%dT%H:%M:%S.%f') || '+00:00' AS datetime,
             epoch_us(e.time) AS timestamp,
             {desc} AS timestamp_desc,
             {fields},
             {mask_sql("r.resources")} AS resources,
             ev.path AS evidence_file, e.record_no
      FROM (SELECT *, {_message_sql()} AS message FROM events e WHERE ({cond})) e
      LEFT JOIN evidence ev ON ev.file_id = e.file_id
      LEFT JOIN (SELECT event_uid, string_agg(DISTINCT resource_id, ' ' ORDER BY resource_id) AS resources
                 FROM event_resources GROUP BY event_uid) r ON r.event_uid = e.event_uid
      WHERE e.time IS NOT NULL
      ORDER BY e.time, e.event_uid"""
    cur = quiet_cursor(store)
    try:
        cur.execute(f"COPY ({select}) TO {quote_literal(str(path))} (FORMAT json)", params)
        counted = f"SELECT count(*) FROM events WHERE time IS NOT NULL AND ({cond})"
        return int(cur.execute(counted, params).fetchone()[0])  # type: ignore[index]
    finally:
        cur.close()
