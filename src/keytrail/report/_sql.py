"""SQL fragments that apply :mod:`keytrail.redact` rules inside DuckDB, for bulk exports.

Exports can carry millions of rows, so the hostile-text rules run as SQL instead of a
Python loop per cell. Secret masking and literal quoting come from :mod:`keytrail.store.sqltext`
(shared with ingest; its patterns are :mod:`keytrail.redact`'s, so a value masked here is masked
the same way on screen); ``tests/unit/test_export_safety.py`` checks the two agree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keytrail.safetext import csv_text_sql
from keytrail.store.sqltext import mask_text_sql as mask_sql
from keytrail.store.sqltext import quote_ident, quote_literal

__all__ = [
    "csv_cell_sql",
    "mask_sql",
    "quiet_cursor",
    "quote_ident",
    "quote_literal",
    "text_sql",
    "utc_text_sql",
]

if TYPE_CHECKING:
    import duckdb

    from keytrail.store.case import CaseStore


def quiet_cursor(store: CaseStore) -> duckdb.DuckDBPyConnection:
    """A cursor without DuckDB's progress bar, which would otherwise draw on the terminal."""
    cur = store.cursor()
    cur.execute("SET enable_progress_bar = false")
    return cur


def csv_cell_sql(expr: str) -> str:
    """``expr`` (VARCHAR) made safe as :func:`keytrail.redact.csv_safe` does: controls escaped, formulas
    neutralised."""
    expr = csv_text_sql(expr)
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
