"""Pilot tests for the explorer's former traps (issue 15): each key works wherever focus is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.widgets import DataTable, Input, OptionList, Static, TabbedContent

from keytrail.analysis.lookup import resolve_credential, resolve_event
from keytrail.store.case import CaseStore
from keytrail.tui import core
from keytrail.tui.app import KeytrailApp
from keytrail.tui.messages import SqlLoaded
from keytrail.tui.queries import TimelineFilter, search_ids, timeline_count
from keytrail.tui.screens.credentials import CredentialScreen, CredentialsScreen
from keytrail.tui.screens.findings import FindingScreen, FindingsScreen
from keytrail.tui.screens.help import HelpScreen
from keytrail.tui.screens.raw import RawScreen
from keytrail.tui.screens.sql import SqlScreen
from keytrail.tui.screens.timeline import HEADERS, TimelineScreen
from keytrail.tui.target import Target, target_of
from keytrail.tui.widgets.doc_view import DocTable
from keytrail.tui.widgets.paged_table import PagedTable
from tests.tui.conftest import run, settle, texts

SIZE = (120, 40)


def _blast_tables(app: Any) -> list[Any]:
    """The lists of tab 1 in focus order (tables and event lists)."""
    blast = app.screen.query_one("#blast")
    return [w for w in app.screen.focus_chain if blast in w.ancestors]


def test_digits_and_question_mark_work_with_focus_inside_a_table(small_case: Path) -> None:
    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=SIZE) as pilot:
            app.push_screen(CredentialScreen("AKIA1"))
            await settle(pilot)
            tabs = app.screen.query_one(TabbedContent)
            tables = _blast_tables(app)
            assert tables, "the blast radius shows tables"
            tables[0].focus()
            await pilot.pause()
            await pilot.press("3")
            await settle(pilot)
            assert tabs.active == "tab-ids"
            assert app.focused is not None and tabs.get_pane("tab-ids") in app.focused.ancestors
            await pilot.press("2")
            await settle(pilot)
            assert tabs.active == "tab-lineage"
            await pilot.press("1")
            await settle(pilot)
            assert tabs.active == "tab-blast"
            await pilot.press("question_mark")
            await settle(pilot)
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            await settle(pilot)
            assert isinstance(app.screen, CredentialScreen)

    if core.engine(core.BLAST) is not None:
        run(body)


def test_down_page_down_and_end_reach_every_list_of_the_blast_radius(small_case: Path) -> None:
    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=(80, 24)) as pilot:
            app.push_screen(CredentialScreen("AKIA1"))
            await settle(pilot)
            tables = _blast_tables(app)
            assert len(tables) >= 3
            if app.focused is not tables[0]:  # the tab bar holds focus: ↓ goes into tab 1 (no Tab)
                await pilot.press("down")
            assert app.focused is tables[0]
            seen = []
            for _ in range(
                sum(getattr(t, "row_count", 0) or getattr(t, "option_count", 0) for t in tables)
                + len(tables)
            ):
                await pilot.press("down")
                if app.focused not in seen:
                    seen.append(app.focused)
            assert seen[-1] is tables[-1] and set(tables) <= set(seen) | {tables[0]}
            scroll = app.screen.query_one("#blast")
            assert scroll.scroll_y == scroll.max_scroll_y
            await pilot.press("up")  # ↑ goes back the same way
            tables[0].focus()
            await pilot.pause()
            for _ in range(len(tables) + 1):
                await pilot.press("pagedown")
            assert app.focused is tables[-1]
            tables[0].focus()
            await pilot.pause()
            await pilot.press("end", "end")
            assert app.focused is tables[-1]

    if core.engine(core.BLAST) is not None:
        run(body)


def test_j_and_k_move_the_cursor(small_case: Path) -> None:
    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("c")
            await settle(pilot)
            table = app.screen.query_one("#creds", DataTable)
            assert app.focused is table and table.cursor_row == 0
            await pilot.press("j")
            assert table.cursor_row == 1
            await pilot.press("k")
            assert table.cursor_row == 0

    run(body)


def test_enter_on_a_findings_evidence_opens_the_event_without_tab(small_case: Path) -> None:
    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("f")
            await settle(pilot)
            assert isinstance(app.screen, FindingsScreen)
            if not app.screen.docs:
                return
            table = app.screen.query_one(DocTable)
            level = table.get_row_at(0)[0]
            assert level.plain == app.screen.docs[0]["level"] and level.style  # coloured by level
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, FindingScreen)
            if not app.screen.doc.get("evidence_uids"):
                return
            assert isinstance(app.focused, OptionList)
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, RawScreen)

    if core.engine(core.FINDINGS) is not None:
        run(body)


def test_an_invalid_timeline_filter_shows_inline_and_keeps_focus(small_case: Path) -> None:
    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("t")
            await settle(pilot)
            await pilot.press("slash", *"since:yesterday", "enter")
            await settle(pilot)
            line = app.screen.query_one("#filter", Input)
            error = app.screen.query_one("#filter-error", Static)
            assert app.focused is line
            assert error.display and "is not a time" in str(error.content)
            await pilot.press("r")  # still typing: no raw record opens
            await settle(pilot)
            assert isinstance(app.screen, TimelineScreen) and line.value.endswith("r")
            line.value = "source:vault"
            await pilot.press("enter")
            await settle(pilot)
            assert not error.display and app.focused is app.screen.query_one(PagedTable)

    run(body)


def test_timeline_shows_attribution_and_source_ip_and_toggles_minted(small_case: Path) -> None:
    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=SIZE) as pilot:
            app.push_screen(CredentialScreen("AKIA1"))
            await settle(pilot)
            await pilot.press("t")
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, TimelineScreen) and screen.flt.terms == {"family": "AKIA1"}
            assert {"agent", "human", "source IP"} <= set(HEADERS)
            family = screen.total
            await pilot.press("m")
            await settle(pilot)
            assert screen.flt.terms == {"cred": "AKIA1"} and screen.total == 2
            assert family is not None and family > screen.total  # ASIA1 was minted from AKIA1
            await pilot.press("m")
            await settle(pilot)
            assert screen.total == family

    run(body)


def test_sql_console_slash_history_and_inline_errors(small_case: Path) -> None:
    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("s")
            await settle(pilot)
            line = app.screen.query_one("#query", Input)
            await pilot.press("slash")
            assert line.value == ""  # the focus key is not typed into the focused line
            await pilot.press(*"SELECT 1/2 AS half", "enter")
            await settle(pilot)
            assert line.value == "SELECT 1/2 AS half"  # a / inside a query is text
            line.value = "SELEC nonsense"
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, SqlScreen)
            error = app.screen.query_one("#query-error", Static)
            assert error.display and "syntax error" in str(error.content).lower()
            assert app.focused is line
            line.value = ""
            await pilot.press("up")
            assert line.value == "SELEC nonsense"
            await pilot.press("up")
            assert line.value == "SELECT 1/2 AS half"
            await pilot.press("down", "down")
            assert line.value == ""

    run(body)


def test_reopening_the_credentials_list_quickly_never_crashes(small_case: Path) -> None:
    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=SIZE) as pilot:
            for _ in range(6):
                await pilot.press("c")
                await pilot.pause()
                await pilot.press("escape", "escape")
            await pilot.press("c")
            await settle(pilot)
            assert (
                isinstance(app.screen, CredentialsScreen)
                and app.screen.query_one("#creds", DataTable).row_count
            )

    run(body)


def test_a_superseded_load_is_dropped(small_case: Path) -> None:
    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("s")
            await settle(pilot)
            screen = app.screen
            screen.load(SqlLoaded, lambda s: SqlLoaded((["x"], [(1,)], False)))
            await settle(pilot)
            stale = SqlLoaded(
                (["stale"], [("old",)], False), generation=screen.generations["sql"] - 1
            )
            screen.post_message(stale)
            await settle(pilot)
            table = screen.query_one("#result", DataTable)
            assert [str(c.label) for c in table.columns.values()] == ["x"]

    run(body)


def test_doc_table_keeps_rows_set_before_it_is_mounted() -> None:
    table = DocTable("credentials", [{"credential": "A"}])
    table.set_rows([{"credential": "A"}, {"credential": "B"}])  # no columns yet: no ValueError
    assert [r["credential"] for r in table.rows_doc] == ["A", "B"]


def test_picked_rows_carry_typed_targets() -> None:
    rank = {"credential": "AKIA1", "score": 3.0, "score_terms": []}
    assert target_of("credentials", rank) == Target("credential", "AKIA1", rank=rank)
    assert target_of("chain", {"kind": "agent", "id": "bot"}) == Target("agent", "bot")
    assert target_of("agents", {"agent": "bot"}) == Target("agent", "bot")
    assert target_of("x", {"evidence_uids": ["cloudtrail:1"]}) == Target("event", "cloudtrail:1")
    assert target_of("x", {"note": "nothing"}) is None


def test_short_ids_and_unique_prefixes(small_case: Path) -> None:
    store = CaseStore.open(small_case)
    try:
        assert resolve_credential(store, "hmac:abc")["credential_id"] == "hmac-sha256:abc"
        assert resolve_credential(store, "hmac-sha256:ab")["credential_id"] == "hmac-sha256:abc"
        assert resolve_event(store, "cloudtrail:ev-assu")[0]["source_event_id"] == "ev-assume"
        cur = store.cursor()
        assert ("credential", "hmac-sha256:abc") in search_ids(cur, "hmac:ab")
        flt = TimelineFilter.parse("cred:hmac:abc").expanded(cur)
        assert flt.terms == {"cred": "hmac-sha256:abc"} and timeline_count(cur, flt) == 1
        cur.close()
    finally:
        store.close()


def test_credentials_list_shows_id_and_score_first_and_y_copies_the_full_id(
    small_case: Path,
) -> None:
    async def body() -> None:
        app = KeytrailApp(small_case)
        copied: list[str] = []
        app.copy_to_clipboard = copied.append  # type: ignore[method-assign]
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("c")
            await settle(pilot)
            table = app.screen.query_one("#creds", DocTable)
            assert table.cols[0] == "credential" and (
                core.engine(core.RANK) is None or table.cols[1] == "score"
            )
            rows = [
                i for i, r in enumerate(table.rows_doc) if r.get("credential") == "hmac-sha256:abc"
            ]
            if rows:
                table.move_cursor(row=rows[0])
                assert table.get_row_at(rows[0])[0].plain.startswith("hmac:abc")
                await pilot.press("y")
                assert copied == ["hmac-sha256:abc"]
            assert "credential" in texts(app) or table.row_count

    run(body)


def test_credential_header_folds_at_80x24(small_case: Path) -> None:
    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=(80, 24)) as pilot:
            app.push_screen(CredentialScreen("AKIA1"))
            await settle(pilot)
            summary = app.screen.query_one("#summary", Static)
            assert app.screen.folded and summary.size.height <= 2
            await pilot.press("h")
            await settle(pilot)
            assert not app.screen.folded and summary.size.height > 2

    run(body)
