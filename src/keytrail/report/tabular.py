"""CSV and Parquet exports of the case tables (events, credentials, links, findings).

Written by DuckDB ``COPY`` straight from the case, so a multi-million-event case exports
without a Python loop per row. CSV is for people with spreadsheets: every cell is text,
times are UTC with ``Z``, lists and JSON are JSON text, secrets are masked and every cell
that a spreadsheet would evaluate (``= + - @``, tab, CR) is prefixed with ``'``.
Parquet is for machines: native types (timestamps, lists), secrets masked in text columns.
Findings are computed (not stored), so they come from :func:`keytrail.analysis.answers.run_findings`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keytrail.errors import UsageError
from keytrail.report._sql import (
    csv_cell_sql,
    mask_sql,
    quiet_cursor,
    quote_ident,
    quote_literal,
    text_sql,
)
from keytrail.store import carried

if TYPE_CHECKING:
    import duckdb

    from keytrail.store.case import CaseStore

TABLES = ("events", "credentials", "links", "findings")

#: Stable row order per table, so two exports of one case are byte-identical.
ORDER = {
    "events": "time NULLS LAST, event_uid",
    "credentials": "credential_id, kind",
    "links": "kind, src_kind, src, dst_kind, dst, reason, confidence",
}


#: Structured columns (ids, enums, codes) that never carry free text; every other text column is
#: secret-masked. Masking is a regular expression per cell, the costliest part of a large export.
NOT_MASKED = frozenset(
    {
        "event_uid",
        "source",
        "format",
        "source_event_id",
        "time_raw",
        "action",
        "service",
        "operation",
        "outcome",
        "error_code",
        "actor_type",
        "credential_kind",
        "account",
        "region",
        "trace_id",
        "span_id",
        "parent_span_id",
        "shared_event_id",
        "request_id",
        "src_ip",
        "kind",
        "origin",
        "confidence",
        "src_kind",
        "dst_kind",
        "issued_by_event",
    }
)


def _source_sql(cur: duckdb.DuckDBPyConnection, table: str) -> str:
    """SELECT over ``table`` (or the registered ``_kt_findings`` view) in export order."""
    if table == "findings":
        return "SELECT * FROM _kt_findings ORDER BY 1, 2"
    return f"SELECT {_columns(cur, table)} FROM {table} ORDER BY {ORDER[table]}"


def _columns(cur: duckdb.DuckDBPyConnection, table: str) -> str:
    """``*`` without the fields the CloudTrail ingest keeps for the analysis
    (:mod:`keytrail.store.carried`: ``raw`` holds them), where the case has them."""
    kept = [
        str(r[0])
        for r in cur.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() "
            "AND schema_name = 'main' AND table_name = ? ORDER BY column_index",
            [table],
        ).fetchall()
        if r[0] in carried.COLUMNS
    ]
    return f"* EXCLUDE ({', '.join(kept)})" if kept else "*"


def findings_rows(store: CaseStore) -> list[dict[str, Any]]:
    """One flat row per finding: scalars as they are, lists and objects as JSON text."""
    from keytrail.report.content import _analysis

    run_findings = _analysis("keytrail.analysis.answers", "run_findings")
    if run_findings is None:
        raise UsageError(
            "findings are not available in this build of keytrail; export another --table"
        )
    rows: list[dict[str, Any]] = []
    for finding in run_findings(store):
        doc = finding.as_dict()
        flat: dict[str, Any] = {}
        for key, value in doc.items():
            if isinstance(value, (list, dict)):
                flat[key] = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
            elif value is None or isinstance(value, (str, int, float, bool)):
                flat[key] = value
            else:
                flat[key] = str(value)
        rows.append(flat)
    return rows


def _register_findings(store: CaseStore, cur: duckdb.DuckDBPyConnection) -> None:
    import pyarrow as pa

    rows = findings_rows(store)
    if rows:
        keys = list(dict.fromkeys(k for r in rows for k in r))
        table = pa.Table.from_pylist([{k: r.get(k) for k in keys} for r in rows])
    else:
        table = pa.table({"id": pa.array([], pa.string()), "level": pa.array([], pa.string())})
    cur.register("_kt_findings", table)


def export_table(
    store: CaseStore,
    path: Path,
    fmt: str,
    table: str,
    where: tuple[str, list[Any]] | None = None,
) -> int:
    """Write ``table`` to ``path`` as ``csv`` or ``parquet``; returns the rows written.

    ``where`` (an SQL condition over ``events`` and its parameters) keeps the events one
    view of the explorer shows (a timeline filter, a credential and what it minted).
    """
    if table not in TABLES:
        raise UsageError(f"unknown table {table!r}; choose one of: {', '.join(TABLES)}")
    if where is not None and table != "events":
        raise UsageError("an events filter applies to the events table only")
    cur = quiet_cursor(store)
    try:
        if table == "findings":
            _register_findings(store, cur)
        columns = cur.execute(f"DESCRIBE {_source_sql(cur, table)}").fetchall()
        cond, params = where or ("TRUE", [])
        src = (
            f"SELECT {_columns(cur, 'events')} FROM events WHERE ({cond}) "
            f"ORDER BY {ORDER['events']}"
            if where
            else _source_sql(cur, table)
        )
        exprs = []
        for name, col_type, *_ in columns:
            text_col = col_type.upper() in ("VARCHAR", "JSON")
            if fmt == "csv":
                text = text_sql(name, col_type)
                if text_col and name not in NOT_MASKED:
                    text = mask_sql(text)
                exprs.append(f"{csv_cell_sql(text)} AS {quote_ident(name)}")
            elif text_col and name not in NOT_MASKED:
                exprs.append(
                    f"{mask_sql(f'CAST({quote_ident(name)} AS VARCHAR)')} AS {quote_ident(name)}"
                )
            else:
                exprs.append(quote_ident(name))
        select = f"SELECT {', '.join(exprs)} FROM ({src}) AS t"
        target = quote_literal(str(path))
        if fmt == "csv":
            options = (
                "FORMAT csv, HEADER true, DELIMITER ',', QUOTE '\"', ESCAPE '\"', FORCE_QUOTE *"
            )
        else:
            options = "FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880"
        cur.execute(f"COPY ({select}) TO {target} ({options})", params)
        return int(cur.execute(f"SELECT count(*) FROM ({src})", params).fetchone()[0])  # type: ignore[index]
    finally:
        cur.close()
