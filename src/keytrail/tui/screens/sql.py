"""SQL console: one read-only statement in the SQL sandbox (:mod:`keytrail.store.sandbox`), results capped.

At most :data:`~keytrail.tui.queries.TABLE_CAP` rows are fetched into the table; the
status line says when more exist. Escape interrupts a long query.
"""

from __future__ import annotations

from typing import Any, ClassVar

import duckdb
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Input, Static

from keytrail.redact import mask_secrets
from keytrail.store.sandbox import run_sql as run_sandboxed
from keytrail.tui.messages import Loaded
from keytrail.tui.queries import TABLE_CAP
from keytrail.tui.screens.base import CaseScreen
from keytrail.tui.widgets.text import lit


def run_sql(cur: duckdb.DuckDBPyConnection, sql: str) -> tuple[list[str], list[tuple[Any, ...]], bool]:
    """Column names, at most ``TABLE_CAP`` rows, and whether more rows exist (in the SQL sandbox)."""
    return run_sandboxed(cur, sql, TABLE_CAP)


class SqlScreen(CaseScreen):
    TITLE = "SQL (read-only)"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("slash", "focus_query", "Query", id="sql.focus")]

    def __init__(self, query: str = "", **kw: Any) -> None:
        super().__init__(**kw)
        self.initial = query

    def compose(self) -> ComposeResult:
        yield from self.compose_frame()
        yield Input(value=self.initial, id="query",
                    placeholder="SELECT action, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC   (Enter runs)")
        yield DataTable(id="result", zebra_stripes=True)
        yield Static(Text("tables: events, event_resources, credentials, credential_issues, principals, links, "
                          "evidence, rejects, inventory_agents, case_meta", style="dim"), id="status")

    def on_mount(self) -> None:
        self.query_one("#query", Input).focus()
        if self.initial:
            self.submit(self.initial)

    def submit(self, sql: str) -> None:
        if not sql.strip():
            return
        self.status(Text("running… (Escape cancels)", style="dim"))
        self.load("sql", lambda s: run_sql(s.con, sql), store=self.kt.sql_store())

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.submit(event.value)

    def on_loaded(self, message: Loaded) -> None:
        names, rows, more = message.data
        table = self.query_one("#result", DataTable)
        table.clear(columns=True)
        table.add_columns(*[lit(n) for n in names])
        # Raw records carry session tokens and passwords: masked here as in the raw-record view.
        table.add_rows([[lit(mask_secrets(v) if isinstance(v, str) else v, 120) for v in r] for r in rows])
        more_text = f" (first {TABLE_CAP:,}; more exist - add LIMIT/WHERE or use keytrail sql)" if more else ""
        self.status(Text(f"{len(rows):,} rows{more_text}"))

    def action_focus_query(self) -> None:
        self.query_one("#query", Input).focus()
