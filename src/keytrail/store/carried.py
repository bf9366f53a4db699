"""CloudTrail fields kept in ``events`` so the analysis need not parse ``raw`` for them.

The analysis snapshot's raw pass (``keytrail.analysis.findings.rawpass``) reads every CloudTrail
record's stored JSON for the console-session flag and for the fields the Sigma rules that allow
any event name read; at a million events that read and parse is most of a first snapshot. The
ingest parses each record once anyway (``json_transform``, ``keytrail.ingest.cloudtrail.sql``),
so it keeps those fields as columns, where they cost a comparison and a column each.

They must be what the raw pass would read from the stored text, which is the record *masked*:
the masking can change any of them. So they are kept only where the masking left the text as
read (``ct_plain``: the masked text equals the original, one comparison of two strings): there
the stored ``raw`` is the original, and a field from the ingest's parse of the original is the
field of the stored text (``json_transform`` gives the same text as ``json_extract_string`` for
every JSON value, tests hold them equal). A field is therefore a function of the stored ``raw``
and says nothing the case did not say already. Elsewhere (masked records, rows from before
schema 3, other sources, a scope's narrow rows) the columns are NULL and ``ct_plain`` is not
TRUE: readers parse ``raw`` there as before.
"""

from __future__ import annotations

#: Whether the ``ct_*`` columns hold the record's fields (NULL: read ``raw``).
PLAIN = "ct_plain"

#: The console-session flag: TRUE where the text holds the key and its value reads ``true``
#: (``keytrail.analysis.findings.rawpass.console_sql``), FALSE elsewhere, where ``ct_plain``.
CONSOLE_KEY = "sessionCredentialFromConsole"
CONSOLE = "ct_console"

#: Sigma field name (a dotted CloudTrail path) -> the ``events`` column holding it where
#: ``ct_plain``, and its SQL over the parsed record ``r`` of the CloudTrail staging.
#: ``operation`` already holds ``eventName`` exactly (it is ``r.eventName``, never masked).
FIELDS: dict[str, tuple[str, str]] = {
    "eventName": ("operation", "r.eventName"),
    "eventSource": ("ct_event_source", "r.eventSource"),
    "eventType": ("ct_event_type", "r.eventType"),
    "sourceIPAddress": ("ct_source_ip", "r.sourceIPAddress"),
    "userAgent": ("ct_user_agent", "r.userAgent"),
    "userIdentity.arn": ("ct_arn", "r.userIdentity.arn"),
    "userIdentity.type": ("ct_identity_type", "r.userIdentity.type"),
    "userIdentity.sessionContext.sessionIssuer.type": (
        "ct_issuer_type",
        "r.userIdentity.sessionContext.sessionIssuer.type",
    ),
}


#: Every column the CloudTrail ingest keeps for the raw pass (none other writes them).
COLUMNS = frozenset({PLAIN, CONSOLE, *(c for c, _ in FIELDS.values() if c != "operation")})


def columns(plain: str, raw: str) -> list[tuple[str, str]]:
    """The ``ct_*`` columns ``(name, SQL)`` over the staging's parsed record ``r``, the stored
    text ``raw`` and ``plain`` (SQL: the masking left the text as read)."""
    out = [(PLAIN, plain)]
    out += [(col, f"CASE WHEN {plain} THEN {expr} END") for col, expr in FIELDS.values()]
    out = [(n, e) for n, e in out if n != "operation"]
    # CASE, not AND: the text is searched only where the value reads true.
    flag = (
        f"CASE WHEN r.{CONSOLE_KEY} = 'true' THEN contains({raw}, '{CONSOLE_KEY}') ELSE false END"
    )
    return [*out, (CONSOLE, f"CASE WHEN {plain} THEN {flag} END")]
