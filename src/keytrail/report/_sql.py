"""SQL fragments that apply :mod:`keytrail.redact` rules inside DuckDB, for bulk exports.

Exports can carry millions of rows, so the hostile-text rules run as SQL instead of a
Python loop per cell. The regular expressions are the ones in :mod:`keytrail.redact`
(RE2 accepts them unchanged), so a value masked here is masked the same way on screen;
``tests/unit/test_export_safety.py`` checks the two agree.
"""

from __future__ import annotations

from keytrail import redact


def quote_literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def mask_sql(expr: str) -> str:
    """``expr`` (VARCHAR) with secrets masked as :func:`keytrail.redact.mask_secrets` does."""
    secret = quote_literal(redact._SECRET_VALUE.pattern)
    vault = quote_literal(redact._VAULT_TOKEN.pattern)
    mask = quote_literal(redact.MASK)
    return (
        f"regexp_replace(regexp_replace({expr}, {secret}, '\\1' || {mask}, 'g'), {vault}, {mask}, 'g')"
    )


def csv_cell_sql(expr: str) -> str:
    """``expr`` (VARCHAR) neutralised for spreadsheets as :func:`keytrail.redact.csv_safe` does."""
    return (
        f"CASE WHEN left({expr}, 1) IN ('=', '+', '-', '@', chr(9), chr(13)) "
        f"THEN '''' || {expr} ELSE {expr} END"
    )


def utc_text_sql(expr: str) -> str:
    """A TIMESTAMP as ``YYYY-MM-DDTHH:MM:SSZ`` (microseconds only when set), like :func:`keytrail.timefmt.format_utc`."""
    return (
        f"CASE WHEN {expr} IS NULL THEN NULL WHEN microsecond({expr}) % 1000000 = 0 "
        f"THEN strftime({expr}, '%Y-%m-%dT%H:%M:%SZ') ELSE strftime({expr}, '%Y-%m-%dT%H:%M:%S.%fZ') END"
    )


def text_sql(name: str, col_type: str) -> str:
    """Column ``name`` of DuckDB type ``col_type`` rendered as text: times in UTC ``Z``, lists and JSON as JSON."""
    col = quote_ident(name)
    t = col_type.upper()
    if t.startswith("TIMESTAMP"):
        return utc_text_sql(col)
    if t.endswith("[]") or t.startswith(("STRUCT", "MAP")):
        return f"CAST(to_json({col}) AS VARCHAR)"
    if t == "VARCHAR":
        return col
    return f"CAST({col} AS VARCHAR)"
