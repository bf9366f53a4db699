"""SQL fragments that apply :mod:`keytrail.redact` rules inside DuckDB, for bulk exports.

Exports can carry millions of rows, so the hostile-text rules run as SQL instead of a
Python loop per cell. The regular expressions are the ones in :mod:`keytrail.redact`
(RE2 accepts them unchanged), so a value masked here is masked the same way on screen;
``tests/unit/test_export_safety.py`` checks the two agree.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from keytrail import redact

if TYPE_CHECKING:
    import duckdb

    from keytrail.store.case import CaseStore


def quiet_cursor(store: CaseStore) -> duckdb.DuckDBPyConnection:
    """A cursor without DuckDB's progress bar, which would otherwise draw on the terminal."""
    cur = store.cursor()
    cur.execute("SET enable_progress_bar = false")
    return cur


def quote_literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _must_contain() -> tuple[str, ...]:
    """Literal fragments at least one of which every secret match contains (a cheap pre-filter).

    The key names come from the alternatives in ``redact._SECRET_VALUE``; ``s.``/``b.``/``hvr.``
    cover every Vault token form in ``redact._VAULT_TOKEN``."""
    keys = re.search(r"\(\?:([A-Za-z_|]+)\)", redact._SECRET_VALUE.pattern)
    names = tuple(keys.group(1).split("|")) if keys else ()
    return (*names, "s.", "b.", "hvr.")


def mask_sql(expr: str) -> str:
    """``expr`` (VARCHAR) with secrets masked as :func:`keytrail.redact.mask_secrets` does.

    The regular expressions only run on values that contain one of :func:`_must_contain`, which
    makes masking a large export several times cheaper."""
    secret = quote_literal(redact._SECRET_VALUE.pattern)
    vault = quote_literal(redact._VAULT_TOKEN.pattern)
    mask = quote_literal(redact.MASK)
    maybe = " OR ".join(f"contains({expr}, {quote_literal(f)})" for f in _must_contain())
    return (
        f"CASE WHEN {maybe} THEN regexp_replace(regexp_replace({expr}, {secret}, '\\1' || {mask}, 'g'), "
        f"{vault}, {mask}, 'g') ELSE {expr} END"
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
