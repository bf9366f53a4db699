"""The SQL sandbox: user SQL (``keytrail sql``, the explorer's SQL console) can read the case, nothing else.

A case opened read-only still lets DuckDB write files (``COPY ... TO``), attach and
change other databases (``ATTACH ... (READ_WRITE)``), read any file (``read_text``),
reach the network (``INSTALL httpfs``) and run several statements at once. Under
``keytrail serve`` the SQL console is driven from a browser, so the console must not be
a way out of the case. Two independent walls:

1. :func:`check_sql` splits the text with DuckDB's own parser (``extract_statements``,
   not a regex) and accepts exactly one statement of a read kind: ``SELECT`` (which
   includes ``FROM``, ``WITH``, ``VALUES``, ``DESCRIBE``, ``SHOW``, ``SUMMARIZE``),
   ``EXPLAIN`` of such a statement, ``PIVOT``, and the catalogue ``PRAGMA`` reads in
   :data:`READ_PRAGMAS`. Everything else is refused with a one-line reason.
2. :func:`open_sandbox` runs the statement on its own DuckDB instance: an in-memory
   database that attaches the case ``READ_ONLY``, then turns off file and network access,
   extension install/autoload and community extensions, and locks the configuration, all
   before any user SQL runs. A second instance is needed because DuckDB keeps one
   configuration per database file per process and the explorer's own analysis
   connection must keep its settings. :func:`run_sql` refuses a connection that is not
   locked, so a caller cannot forget the second wall.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import duckdb

from keytrail.errors import UsageError
from keytrail.store.case import CaseStore
from keytrail.store.sqltext import quote_literal

#: The name the case is attached under in the sandbox instance (unqualified names resolve to it).
CATALOG = "kt_case"

#: Set, in this order, before user SQL runs; ``lock_configuration`` last so nothing can undo the rest.
SETTINGS = (
    ("enable_external_access", "false"),
    ("autoinstall_known_extensions", "false"),
    ("autoload_known_extensions", "false"),
    ("allow_community_extensions", "false"),
    ("lock_configuration", "true"),
)

#: ``PRAGMA`` names that only read the catalogue or the version (every other pragma is refused).
READ_PRAGMAS = frozenset(
    {
        "table_info",
        "show",
        "show_tables",
        "show_tables_expanded",
        "database_list",
        "database_size",
        "version",
        "platform",
        "functions",
        "storage_info",
        "metadata_info",
    }
)

ALLOWED = "SELECT, FROM, WITH, VALUES, DESCRIBE, SHOW, SUMMARIZE, PIVOT, EXPLAIN, PRAGMA table_info"
_PRAGMA = re.compile(r"\s*PRAGMA\s+([A-Za-z_]+)", re.IGNORECASE)
_EXPLAIN = re.compile(r"\s*EXPLAIN\s+(?:ANALY[SZ]E\s+)?", re.IGNORECASE)
_PIVOT = re.compile(r"\s*(?:UN)?PIVOT\b", re.IGNORECASE)


class SqlRefused(UsageError):
    """The SQL is not one read-only statement (exit 2); the message is one line."""

    def __init__(self, msg: str) -> None:
        super().__init__(msg, "SQL refused")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def check_sql(sql: str) -> str:
    """The one read-only statement in ``sql``, or :class:`SqlRefused` saying why not.

    Raises:
        SqlRefused: a syntax error, no statement, several statements, or a kind that is not a read.
    """
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as e:
        raise SqlRefused(f"query failed: {_one_line(str(e))}") from e
    if not statements:
        raise SqlRefused(
            "no statement, so no result set: give one SELECT (e.g. SELECT count(*) FROM events)"
        )
    if len(statements) > 1:
        raise SqlRefused(
            f"refused: {len(statements)} statements; keytrail SQL runs exactly one "
            "(remove the extra ';')"
        )
    stmt = statements[0]
    _check_kind(stmt.type, stmt.query)
    return str(stmt.query)


def _check_kind(kind: duckdb.StatementType, text: str) -> None:
    st = duckdb.StatementType
    if kind == st.SELECT:
        return
    if kind == st.EXPLAIN:
        m = _EXPLAIN.match(text)
        inner = duckdb.extract_statements(text[m.end() :]) if m else []
        if len(inner) == 1 and inner[0].type in (st.SELECT, st.MULTI):
            return _check_kind(inner[0].type, inner[0].query)
        raise SqlRefused("refused: EXPLAIN is allowed of a SELECT only (keytrail SQL is read-only)")
    if kind == st.PRAGMA:
        m = _PRAGMA.match(text)
        name = m.group(1).lower() if m else "?"
        if name in READ_PRAGMAS:
            return
        raise SqlRefused(
            f"refused: PRAGMA {name} (keytrail SQL is read-only; allowed pragmas: "
            f"{', '.join(sorted(READ_PRAGMAS))})"
        )
    if kind == st.MULTI and _PIVOT.match(text):
        return
    name = str(kind).rsplit(".", 1)[-1]
    raise SqlRefused(f"refused: {name} statement (keytrail SQL is read-only; allowed: {ALLOWED})")


def open_sandbox(path: str | Path) -> CaseStore:
    """The case, attached read-only in a fresh in-memory DuckDB with access off and settings locked.

    Raises:
        CaseError: the file is missing or not a keytrail case (as :meth:`CaseStore.open`).
    """
    CaseStore.open(path).close()  # the usual clear messages for a missing, locked or foreign file
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"ATTACH {quote_literal(str(Path(path)))} AS {CATALOG} (READ_ONLY)")
        con.execute(f"USE {CATALOG}")
        for name, value in SETTINGS:
            con.execute(f"SET {name} = {value}")
    except duckdb.Error:
        con.close()
        raise
    store = CaseStore(con, Path(path), read_only=True)
    store._check_schema()
    return store


def is_locked(cur: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``cur``'s instance has file access off and its configuration locked."""
    row = cur.execute(
        "SELECT current_setting('enable_external_access'), current_setting('lock_configuration')"
    ).fetchone()
    return row is not None and row[0] is False and row[1] is True


def run_sql(
    cur: duckdb.DuckDBPyConnection, sql: str, limit: int | None = None
) -> tuple[list[str], list[tuple[Any, ...]], bool]:
    """Column names, the rows (at most ``limit``) and whether more exist, of one checked statement.

    ``cur`` must come from :func:`open_sandbox` (a cursor or a session cursor of it).

    Raises:
        SqlRefused: the statement is not a read, or the engine refused it (file or network access).
        UsageError: the query failed (unknown column, type error, ...).
    """
    statement = check_sql(sql)
    if not is_locked(cur):
        raise SqlRefused("refused: this connection is not the SQL sandbox (keytrail bug)")
    cur.execute(f"USE {CATALOG}")  # cursors start on the in-memory catalogue
    try:
        rel = cur.execute(statement)
    except duckdb.PermissionException as e:
        raise SqlRefused(f"refused: {_one_line(str(e).splitlines()[0])}") from e
    except duckdb.InvalidInputException as e:
        if "configuration has been locked" in str(e):
            raise SqlRefused(f"refused: {_one_line(str(e).splitlines()[0])}") from e
        raise UsageError(f"query failed: {e}") from e
    except duckdb.InterruptException:
        raise
    except duckdb.Error as e:
        raise UsageError(f"query failed: {e}") from e
    if rel is None or rel.description is None:
        raise SqlRefused(
            "the query returned no result set: give one SELECT (e.g. SELECT count(*) FROM events)"
        )
    names = [d[0] for d in rel.description]
    if limit is None:
        return names, rel.fetchall(), False
    rows = rel.fetchmany(limit + 1)
    return names, rows[:limit], len(rows) > limit
