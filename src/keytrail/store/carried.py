"""CloudTrail fields kept in ``events`` so the analysis need not parse ``raw`` for them.

The analysis snapshot's raw pass (``keytrail.analysis.findings.rawpass``) reads every CloudTrail
record's stored JSON for the console-session flag and for the fields the Sigma rules that allow
any event name read; at a million events that read and parse is most of a first snapshot. The
ingest parses each record once anyway (``json_transform``, ``keytrail.ingest.cloudtrail.sql``),
so the fields are in ``events`` already (``operation``, ``actor_uid``, ...) or kept there for
this (two low-cardinality columns and the flag).

They must be what the raw pass would read from the stored text, which is the record *masked*:
the masking can change any of them. So ``ct_plain`` is TRUE only where the masking left the text
as read (the masked text equals the original, one comparison of two strings) and each column
read holds the field exactly (:func:`plain_sql`: e.g. an ARN, so ``actor_uid`` is it; no ``''``
that a column stores as NULL; ``user_agent`` unchanged by its own masking). There the stored
``raw`` is the original, and a field from the ingest's parse of the original is the field of
the stored text (``json_transform`` gives the same text as ``json_extract_string`` for every
JSON value, tests hold them equal): the kept columns say nothing ``raw`` does not. Elsewhere
(other records, rows from before schema 3, other sources, a scope's narrow rows) ``ct_plain`` is
not TRUE and the kept columns are NULL: readers parse ``raw`` there as before.
"""

from __future__ import annotations

#: Whether the fields below are the record's own (NULL: read ``raw``).
PLAIN = "ct_plain"

#: The console-session flag: TRUE where the text holds the key and its value reads ``true``
#: (``keytrail.analysis.findings.rawpass.console_sql``), FALSE elsewhere, where ``ct_plain``.
CONSOLE_KEY = "sessionCredentialFromConsole"
CONSOLE = "ct_console"

#: Sigma field name (a dotted CloudTrail path) -> SQL over ``events`` giving it where
#: ``ct_plain``. Most are ``events`` columns already, exact where :func:`plain_sql` holds
#: (``operation`` is ``r.eventName``; ``service`` is ``eventSource`` without
#: ``.amazonaws.com``; ``src_ip``, ``actor_type``, ``user_agent`` are the values with ``''`` as
#: NULL, ``user_agent`` masked; ``actor_uid`` is the ARN when there is one); two are kept for
#: this alone (:data:`KEPT`).
FIELDS: dict[str, str] = {
    "eventName": "operation",
    "eventSource": "(service || '.amazonaws.com')",
    "eventType": "ct_event_type",
    "sourceIPAddress": "src_ip",
    "userAgent": "user_agent",
    "userIdentity.arn": "actor_uid",
    "userIdentity.type": "actor_type",
    "userIdentity.sessionContext.sessionIssuer.type": "ct_issuer_type",
}

#: The columns kept for the raw pass alone: their SQL over the staging's parsed record ``r``.
KEPT = {
    "ct_event_type": "r.eventType",
    "ct_issuer_type": "r.userIdentity.sessionContext.sessionIssuer.type",
}

#: Every column the CloudTrail ingest keeps for the raw pass (none other writes them).
COLUMNS = frozenset({PLAIN, CONSOLE, *KEPT})


def plain_sql(same_text: str, user_agent: str) -> str:
    """SQL over the staging's parsed record ``r``: ``ct_plain``, where ``same_text`` (the
    masking left the text as read) and every column :data:`FIELDS` reads is exact for it
    (``user_agent``: the masked value ``events.user_agent`` gets)."""
    ui = "r.userIdentity"
    return (
        f"({same_text} AND (r.eventSource IS NULL "
        "OR r.eventSource = replace(r.eventSource, '.amazonaws.com', '') || '.amazonaws.com') "
        f"AND coalesce(r.sourceIPAddress, '-') <> '' AND coalesce({ui}.type, '-') <> '' "
        f"AND coalesce({ui}.arn, '') <> '' AND coalesce(r.userAgent, '-') <> '' "
        f"AND {user_agent} IS NOT DISTINCT FROM r.userAgent)"
    )


def columns(plain: str, raw: str) -> list[tuple[str, str]]:
    """The ``ct_*`` columns ``(name, SQL)`` over the staging's parsed record ``r``, the stored
    text ``raw`` and ``plain`` (:func:`plain_sql`, computed once)."""
    out = [(PLAIN, plain)]
    out += [(col, f"CASE WHEN {plain} THEN {expr} END") for col, expr in KEPT.items()]
    # CASE, not AND: the text is searched only where the value reads true.
    flag = (
        f"CASE WHEN r.{CONSOLE_KEY} = 'true' THEN contains({raw}, '{CONSOLE_KEY}') ELSE false END"
    )
    return [*out, (CONSOLE, f"CASE WHEN {plain} THEN {flag} END")]
