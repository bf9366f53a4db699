"""The explorer's SQL console runs in the same SQL sandbox as ``keytrail sql`` (Pilot, real case).

Under ``keytrail serve`` this console is what a browser drives, so the attacks that would
write files, attach databases, read files or change settings must be refused here too.
"""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable, Input, Static

from keytrail.tui.app import KeytrailApp
from keytrail.tui.screens.sql import SqlScreen
from tests.tui.conftest import run, settle

SIZE = (140, 45)


def test_sql_console_refuses_writes_files_and_settings(small_case: Path, tmp_path: Path) -> None:
    out = tmp_path / "pwned.csv"
    other = tmp_path / "other.duckdb"
    attacks = [
        f"COPY (SELECT 1) TO '{out}'",
        f"ATTACH '{other}' AS o (READ_WRITE)",
        "SELECT * FROM read_text('/etc/passwd')",
        "INSTALL httpfs",
        "SET enable_external_access = true",
        f"SELECT 1; COPY (SELECT 1) TO '{out}'",
        "CREATE TABLE x AS SELECT 1",
        "PRAGMA enable_profiling",
    ]
    before = small_case.read_bytes()

    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=SIZE) as pilot:
            app.push_screen(SqlScreen())
            await settle(pilot)
            for sql in attacks:
                app.screen.query_one(Input).value = sql
                await pilot.press("enter")
                await settle(pilot)
                # refused inline under the query line (no dialog), focus kept to fix the query
                assert isinstance(app.screen, SqlScreen), sql
                error = app.screen.query_one("#query-error", Static)
                assert error.display and "refused" in str(error.content), (sql, error.content)
                assert app.focused is app.screen.query_one(Input)
            app.screen.query_one(Input).value = "SELECT count(*) AS n FROM events"
            await pilot.press("enter")
            await settle(pilot)
            table = app.screen.query_one("#result", DataTable)
            assert table.row_count == 1 and str(table.get_row_at(0)[0]) == "2507"
            # the explorer's own connection keeps its settings (reports and analysis still work)
            assert app.store.scalar("SELECT current_setting('lock_configuration')") is False

    run(body)
    assert not out.exists() and not other.exists()
    assert small_case.read_bytes() == before
