"""SQL console: one read-only statement in the SQL sandbox (:mod:`keytrail.store.sandbox`), results capped.

At most :data:`~keytrail.tui.queries.TABLE_CAP` rows are fetched into the table; the
status line says when more exist. Escape interrupts a long query. A query DuckDB
rejects shows its message under the query line (no dialog, no traceback) and focus
stays there to fix it; ↑/↓ in the line walk the queries run before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import duckdb
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Input, Static

from keytrail.errors import Cancelled, UsageError
from keytrail.redact import mask_secrets
from keytrail.store.sandbox import run_sql as run_sandboxed
from keytrail.tui.messages import SqlLoaded
from keytrail.tui.queries import TABLE_CAP
from keytrail.tui.screens.base import CaseScreen
from keytrail.tui.widgets.text import lit


@dataclass(frozen=True)
class SqlError:
    """The sandbox or DuckDB refused the query (syntax, unknown table, a write): its message."""

    message: str


Rows = tuple[list[str], list[tuple[Any, ...]], bool]


def run_sql(cur: duckdb.DuckDBPyConnection, sql: str) -> Rows | SqlError:
    """Column names, at most ``TABLE_CAP`` rows and whether more exist (SQL sandbox); or the error.

    An interrupt (Escape) is not an error of the query: it propagates as the cancel it is.
    """
    try:
        return run_sandboxed(cur, sql, TABLE_CAP)
    except (Cancelled, duckdb.InterruptException):
        raise
    except UsageError as e:  # the sandbox's refusals and DuckDB's errors, one line each
        return SqlError(e.msg)
    except duckdb.Error as e:
        return SqlError(str(e))


class QueryLine(Input):
    """The query line: ↑/↓ recall earlier queries; ``/`` on an empty line is not text."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "history(-1)", "Earlier query", show=False),
        Binding("down", "history(1)", "Later query", show=False),
    ]

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.history: list[str] = []
        self._at = 0

    def remember(self, sql: str) -> None:
        if sql.strip() and (not self.history or self.history[-1] != sql):
            self.history.append(sql)
        self._at = len(self.history)

    def action_history(self, step: int) -> None:
        if not self.history:
            return
        self._at = max(0, min(len(self.history), self._at + step))
        self.value = self.history[self._at] if self._at < len(self.history) else ""
        self.cursor_position = len(self.value)

    async def _on_key(self, event: events.Key) -> None:
        if event.character == "/" and not self.value:
            event.stop()  # pressed to focus the line, which already has focus
            event.prevent_default()
            return
        await super()._on_key(event)


class SqlScreen(CaseScreen):
    TITLE = "SQL (read-only)"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "focus_query", "Query", id="sql.focus")
    ]

    def __init__(self, query: str = "", **kw: Any) -> None:
        super().__init__(**kw)
        self.initial = query

    def compose(self) -> ComposeResult:
        yield from self.compose_frame()
        yield QueryLine(
            value=self.initial,
            id="query",
            placeholder="SELECT action, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC   (Enter runs)",
        )
        yield Static(id="query-error")
        yield DataTable(id="result", zebra_stripes=True)
        yield Static(
            Text(
                "tables: events, event_resources, credentials, credential_issues, principals, links, "
                "evidence, rejects, inventory_agents, case_meta",
                style="dim",
            ),
            id="status",
        )

    def on_mount(self) -> None:
        self.query_one("#query", QueryLine).focus()
        if self.initial:
            self.submit(self.initial)

    def submit(self, sql: str) -> None:
        if not sql.strip():
            return
        self.query_one("#query", QueryLine).remember(sql)
        self.status(Text("running… (Escape cancels)", style="dim"))
        self.load(SqlLoaded, lambda s: SqlLoaded(run_sql(s.con, sql)), store=self.kt.sql_store())

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.submit(event.value)

    def on_sql_loaded(self, message: SqlLoaded) -> None:
        error = self.query_one("#query-error", Static)
        if isinstance(message.result, SqlError):
            error.update(Text(message.result.message, style="red"))
            error.display = True
            self.status(
                Text(
                    "the query failed: its message is under the query line · ↑ recalls it",
                    style="red",
                )
            )
            self.query_one("#query", QueryLine).focus()
            return
        error.display = False
        names, rows, more = message.result
        table = self.query_one("#result", DataTable)
        table.clear(columns=True)
        table.add_columns(*[lit(n) for n in names])
        # Raw records carry session tokens and passwords: masked here as in the raw-record view.
        table.add_rows(
            [[lit(mask_secrets(v) if isinstance(v, str) else v, 120) for v in r] for r in rows]
        )
        more_text = (
            f" (first {TABLE_CAP:,}; more exist - add LIMIT/WHERE or use keytrail sql)"
            if more
            else ""
        )
        self.status(Text(f"{len(rows):,} rows{more_text}"))

    def action_focus_query(self) -> None:
        self.query_one("#query", Input).focus()
