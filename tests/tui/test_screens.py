"""Pilot tests: every screen loads from a real case file and shows the right content."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import pytest
from rich.text import Text
from textual.command import CommandList
from textual.message import Message
from textual.widgets import DataTable, Input, Label, Markdown, Static, TextArea, Tree

from keytrail.tui import core
from keytrail.tui.app import KeytrailApp
from keytrail.tui.messages import CaseInfoLoaded, Loaded, PageLoaded
from keytrail.tui.queries import PAGE_SIZE
from keytrail.tui.screens.agents import AgentScreen, AgentsScreen
from keytrail.tui.screens.credentials import CredentialScreen, CredentialsScreen
from keytrail.tui.screens.findings import FindingsScreen
from keytrail.tui.screens.help import HelpScreen
from keytrail.tui.screens.overview import OverviewScreen
from keytrail.tui.screens.raw import RawScreen
from keytrail.tui.screens.sql import SqlScreen
from keytrail.tui.screens.timeline import HEADERS, TimelineScreen
from keytrail.tui.screens.trace import TraceScreen
from keytrail.tui.widgets.paged_table import PagedTable
from tests.tui.casefactory import SESSION_TOKEN
from tests.tui.conftest import run, settle, texts

SIZE = (140, 45)


L = TypeVar("L", bound=Loaded)


def loaded(messages: list[Message], kind: type[L]) -> list[L]:
    return [m for m in messages if isinstance(m, kind)]


def cells(table: DataTable[Any], column: int) -> list[str]:
    return [str(table.get_row_at(i)[column]) for i in range(table.row_count)]


def test_overview_shows_case_info(small_case: Path) -> None:
    messages: list[Message] = []

    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
            await settle(pilot)
            assert isinstance(app.screen, OverviewScreen)
            text = texts(app)
            assert "2,507" in text and "rejected records  1" in text
            assert "2024-05-01T12:00:00Z" in text
            sources = app.screen.query_one("#sources", DataTable)
            assert cells(sources, 0) == ["cloudtrail", "vault", "agent"]
            assert "/evidence/vault.log" in cells(app.screen.query_one("#evidence", DataTable), 7)
            if core.engine(core.FINDINGS) is None:
                assert "unavailable: keytrail.analysis.findings" in text
            else:
                assert "informational" in text

    run(body)
    [info] = loaded(messages, CaseInfoLoaded)
    assert info.info["events"] == 2507 and info.generation == 1


def test_navigation_and_back_stack(small_case: Path) -> None:
    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            for key, screen in (("t", TimelineScreen), ("s", SqlScreen)):
                await pilot.press(key)
                await settle(pilot)
                assert isinstance(app.screen, screen)
            await pilot.press("escape")  # SQL focuses its input; escape still goes back
            await settle(pilot)
            assert isinstance(app.screen, TimelineScreen)
            await pilot.press("f1")
            await settle(pilot)
            assert isinstance(app.screen, HelpScreen)
            assert "Timeline filter" in app.screen.query_one(Markdown).source
            await pilot.press("o")
            await settle(pilot)
            assert isinstance(app.screen, OverviewScreen) and len(app.screen_stack) == 1
            await pilot.press("q")
        assert app.return_code in (0, None)

    run(body)


def test_timeline_pages_by_keyset_and_filters(small_case: Path) -> None:
    messages: list[Message] = []

    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
            await settle(pilot)
            await pilot.press("t")
            await settle(pilot)
            table = app.screen.query_one(PagedTable)
            assert table.row_count == PAGE_SIZE
            assert "events 1–200 of 2,507" in texts(app)
            assert cells(table, HEADERS.index("event id"))[:3] == [
                "span-1",
                "ev-assume",
                "ev-get-1",
            ]
            table.move_cursor(row=table.row_count - 1)
            await pilot.press("down")  # past the last row: the next page, by keyset
            await settle(pilot)
            assert any(isinstance(m, PagedTable.Edge) and m.direction == 1 for m in messages)
            assert "events 201–400 of 2,507" in texts(app)
            assert table.cursor_row == 0 and table.row_count == PAGE_SIZE
            await pilot.press(
                "up"
            )  # before the first row: back to page one, cursor on its last row
            await settle(pilot)
            assert "events 1–200 of 2,507" in texts(app)
            assert table.cursor_row == PAGE_SIZE - 1
            await pilot.press("G")
            await settle(pilot)
            assert "events 2,308–2,507 of 2,507" in texts(app)
            await pilot.press("slash")
            await pilot.press(*"source:vault", "enter")
            await settle(pilot)
            assert table.row_count == 1 and cells(table, 2) == ["vault:read"]
            app.screen.query_one(Input).value = "outcome:denied since:2024-05-01T12:04:00Z"
            await pilot.press("slash", "enter")
            await settle(pilot)
            assert cells(table, HEADERS.index("event id")) == ["ev-denied"]
            await pilot.press("enter")
            await settle(pilot)
            assert (
                isinstance(app.screen, RawScreen) and app.screen.event_uid == "cloudtrail:ev-denied"
            )

    run(body)
    pages = loaded(messages, PageLoaded)
    assert all(len(m.page.rows) <= PAGE_SIZE for m in pages)


def test_timeline_bad_time_filter_is_reported(small_case: Path) -> None:
    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=SIZE) as pilot:
            app.push_screen(TimelineScreen("since:yesterday"))
            await settle(pilot)
            assert "is not a time" in texts(app)

    run(body)


def test_raw_record_masks_secrets_and_says_plainly_when_evidence_is_missing(
    small_case: Path,
) -> None:
    """The factory case's evidence paths do not exist: ``v`` says so and reveals nothing."""

    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=SIZE) as pilot:
            app.open_target("event", "ev-assume")  # the source's own id works too
            await settle(pilot)
            area = app.screen.query_one("#raw", TextArea)
            assert '"sessionToken": "****"' in area.text and SESSION_TOKEN not in area.text
            assert "/evidence/cloudtrail.json" in texts(app)
            await pilot.press("v")
            await settle(pilot)
            assert SESSION_TOKEN not in area.text and "is missing" in area.text
            assert "NOT REVEALED" in texts(app)
            await pilot.press("v")
            await pilot.pause()
            assert SESSION_TOKEN not in area.text and '"sessionToken": "****"' in area.text

    run(body)


def test_v_reads_the_original_record_from_the_evidence_file(tmp_path: Path) -> None:
    """An ingested case holds no secret; ``v`` shows the original after checking the file's hash, and
    refuses once the file has changed."""
    import json

    from keytrail.ingest.runner import ingest

    rec = {
        "eventVersion": "1.08",
        "eventID": "ev-sts",
        "eventTime": "2026-03-02T11:00:00Z",
        "eventSource": "sts.amazonaws.com",
        "eventName": "AssumeRole",
        "awsRegion": "us-east-1",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/u"},
        "responseElements": {
            "credentials": {"accessKeyId": "ASIAEXAMPLE", "sessionToken": SESSION_TOKEN}
        },
    }
    log = tmp_path / "trail.json"
    log.write_text(json.dumps({"Records": [rec]}))
    case = tmp_path / "c.duckdb"
    ingest(case, [log])

    async def body() -> None:
        app = KeytrailApp(case)
        async with app.run_test(size=SIZE) as pilot:
            app.open_target("event", "ev-sts")
            await settle(pilot)
            area = app.screen.query_one("#raw", TextArea)
            assert SESSION_TOKEN not in area.text and "****" in area.text
            await pilot.press("v")
            await settle(pilot)
            assert SESSION_TOKEN in area.text and "SECRETS REVEALED" in texts(app)
            await pilot.press("v")
            await pilot.pause()
            assert SESSION_TOKEN not in area.text
            log.write_text(log.read_text().replace("ASIAEXAMPLE", "ASIATAMPERED"))
            app.open_target("event", "ev-sts")
            await settle(pilot)
            await pilot.press("v")
            await settle(pilot)
            area = app.screen.query_one("#raw", TextArea)
            assert (
                SESSION_TOKEN not in area.text and "has changed since it was ingested" in area.text
            )

    run(body)


def test_sql_console_caps_rows_and_is_read_only(small_case: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(
        "keytrail.tui.screens.sql.TABLE_CAP", 300
    )  # the real cap is 10,000; same code path

    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=SIZE) as pilot:
            app.push_screen(SqlScreen())
            await settle(pilot)
            await pilot.press(*"SELECT i FROM range(20000) t(i)", "enter")
            await settle(pilot)
            table = app.screen.query_one("#result", DataTable)
            assert table.row_count == 300
            assert "first 300; more exist" in texts(app)
            app.screen.query_one(Input).value = "DELETE FROM events"
            await pilot.press("enter")
            await settle(pilot)
            # the refusal is shown under the query line: no dialog, no traceback, focus stays
            assert isinstance(app.screen, SqlScreen)
            error = app.screen.query_one("#query-error", Static)
            assert error.display and "read-only" in str(error.content).lower()
            assert "Traceback" not in texts(app) and app.focused is app.screen.query_one(Input)
            assert app.store.scalar("SELECT count(*) FROM events") == 2507

    run(body)


def test_escape_cancels_a_long_query(small_case: Path) -> None:
    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=SIZE) as pilot:
            screen = SqlScreen()
            app.push_screen(screen)
            await settle(pilot)
            await pilot.press(*"SELECT sum(hash(i)) FROM range(20000000000) t(i)", "enter")
            for _ in range(50):
                await pilot.pause(0.02)
                if screen.sessions.get("sql") and screen.sessions["sql"].active:
                    break
            session = screen.sessions["sql"]
            assert screen.busy()
            await pilot.press("escape")
            for _ in range(500):  # the interrupted query's thread returns and posts Stopped
                if screen.stopped:
                    break
                await pilot.pause(0.02)
            await settle(pilot)
            assert screen.stopped == ["sql"] and session.cancelled and session.active == 0
            assert not screen.busy()
            assert app.screen is screen  # cancelled, not gone back, no error modal
            assert "cancelled" in texts(app)

    run(body)


def test_credentials_list_and_credential_view(small_case: Path) -> None:
    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("c")
            await settle(pilot)
            assert isinstance(app.screen, CredentialsScreen)
            ids = [str(r.get("credential") or r.get("credential_id")) for r in app.screen.rows]
            assert {"AKIA1", "ASIA1"} <= set(ids)
            if core.engine(core.RANK) is None:
                assert "not ranked" in texts(app)
            else:  # the principal classifier's class of each credential is a column
                creds = app.screen.query_one("#creds", DataTable)
                assert "holder" in [str(c.label) for c in creds.columns.values()]
            await pilot.press("slash", *"ASIA", "enter")
            await settle(pilot)
            table = app.screen.query_one("#creds", DataTable)
            assert table.row_count == 1
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, CredentialScreen) and app.screen.credential_id == "ASIA1"
            tree = app.screen.query_one("#lineage", Tree)
            labels = []

            def walk(node: Any) -> None:
                labels.append(node.label.plain)
                for child in node.children:
                    walk(child)

            walk(tree.root)
            assert any(label.startswith("AKIA1") for label in labels)
            assert any(label.startswith("ASIA1") for label in labels)
            ids_table = app.screen.query_one("#ids", DataTable)
            assert "MINTED" in cells(ids_table, 1)
            assert "events signed by this credential" in texts(app)
            if core.engine(core.BLAST) is not None:
                shown = " ".join(str(w.content) for w in app.screen.query(Label))
                assert "score terms" in shown and "holder" in shown
            await pilot.press("t")
            await settle(pilot)
            assert isinstance(app.screen, TimelineScreen)
            assert app.screen.flt.terms == {"family": "ASIA1"}  # with the keys minted from it

    run(body)


def test_agents_and_agent_view(small_case: Path) -> None:
    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("a")
            await settle(pilot)
            assert isinstance(app.screen, AgentsScreen)
            table = app.screen.query_one("#agents", DataTable)
            row = [str(c) for c in table.get_row_at(0)]
            assert "ledger-bot" in row and "finance-team" in row
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, AgentScreen) and app.screen.agent_id == "ledger-bot"
            edges = cells(app.screen.query_one("#ids", DataTable), 3)
            assert "alice@example.com" in edges and "AKIA1" in edges
            if core.engine(core.BASELINE) is None:
                assert "unavailable: keytrail.analysis.baseline" in texts(app)
            else:
                heads = " ".join(str(w.content) for w in app.screen.query(Label))
                assert "departures" in heads and "actions" in heads

    run(body)


def test_trace_and_findings_use_the_analysis_api(small_case: Path) -> None:
    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=SIZE) as pilot:
            app.open_target("trace", "cloudtrail:ev-get-1")
            await settle(pilot)
            assert isinstance(app.screen, TraceScreen)
            if core.engine(core.TRACE) is None:
                assert "unavailable: keytrail.analysis.delegation" in texts(app)
            else:
                assert "ev-get-1" in texts(app)
            await pilot.press("f")
            await settle(pilot)
            assert isinstance(app.screen, FindingsScreen)
            if core.engine(core.FINDINGS) is None:
                assert "unavailable: keytrail.analysis.findings" in texts(app)
            else:
                assert "critical" in texts(app)

    run(body)


def test_palette_search_finds_ids(small_case: Path) -> None:
    from keytrail.store.case import CaseStore
    from keytrail.tui.queries import search_ids

    with CaseStore.open(small_case) as store:
        cur = store.cursor()
        assert ("credential", "ASIA1") in search_ids(cur, "asia")
        assert ("agent", "ledger-bot") in search_ids(cur, "ledger-b")
        assert ("resource", "arn:aws:s3:::ledger/payroll.csv") in search_ids(cur, "payroll")
        assert ("event", "cloudtrail:ev-denied") in search_ids(cur, "ev-den")
        assert search_ids(cur, "100%_") == []  # LIKE wildcards are literal


def test_palette_opens_a_credential(small_case: Path) -> None:
    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("ctrl+p")
            await pilot.press(*"ASIA1")
            for _ in range(100):
                await pilot.pause(0.05)
                if (
                    "credential: ASIA1"
                    in app.screen.query_one(CommandList).get_option_at_index(0).prompt.plain
                ):
                    break
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, CredentialScreen) and app.screen.credential_id == "ASIA1"

    run(body)


def test_hostile_text_renders_literally(small_case: Path) -> None:
    async def body() -> str:
        app = KeytrailApp(small_case)
        async with app.run_test(size=SIZE) as pilot:
            app.push_screen(TimelineScreen("ev-hostile"))
            await settle(pilot)
            table = app.screen.query_one(PagedTable)
            row = table.get_row_at(0)
            assert all(isinstance(c, Text) for c in row)
            assert row[2].plain == "s3:[bold red]Boom[/]\\x1b[2J"  # markup and escape shown
            assert row[4].plain == "[link=x]evil[/link]"
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, RawScreen)
            fields, raw = texts(app), app.screen.query_one("#raw", TextArea).text
            for shown in (fields, raw):
                assert "[bold red]x[/]" in shown
                assert "\x1b" not in shown and "\u200b" not in shown and "\u202e" not in shown
            # Shown as escapes, not removed: "zero\u200bwidth" must not look like "zerowidth".
            assert "\\x1b[31mred\\x1b[0m zero\\u200bwidth\\u202eevil" in fields
            svg = app.export_screenshot()
            await pilot.press("escape")
            await settle(pilot)
            assert isinstance(app.screen, TimelineScreen)  # still alive and navigable
            return str(svg)

    svg = run(body)
    assert "[bold&#160;red]x[/]" in svg or "[bold red]x[/]" in svg


def test_timeline_time_column_fits_sub_second_times(small_case: Path) -> None:
    """Vault/OTLP times carry microseconds; the column must show them whole (it cut them at 20)."""
    from datetime import datetime

    from keytrail.timefmt import format_utc

    widest = format_utc(datetime(2026, 3, 2, 9, 1, 16, 212000)) or ""

    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("t")
            await settle(pilot)
            table = app.screen.query_one(PagedTable)
            time_col = next(iter(table.columns.values()))
            assert str(time_col.label).startswith("time")
            assert time_col.width >= len(widest) == 27

    run(body)


def test_sql_console_masks_secrets_in_raw_records(small_case: Path) -> None:
    """``SELECT raw`` must not put an STS session token on screen (the raw view masks it; so does SQL)."""

    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=SIZE) as pilot:
            app.push_screen(SqlScreen())
            await settle(pilot)
            app.screen.query_one(
                Input
            ).value = "SELECT substr(raw, strpos(raw, 'sessionToken')) FROM events WHERE event_uid = 'cloudtrail:ev-assume'"
            await pilot.press("enter")
            await settle(pilot)
            table = app.screen.query_one("#result", DataTable)
            assert table.row_count == 1
            shown = str(table.get_row_at(0)[0])
            assert "sessionToken" in shown and SESSION_TOKEN not in shown and "****" in shown

    run(body)


def test_small_lineage_tree_opens_whole(small_case: Path) -> None:
    """Depth-4 keys (the sample's backdoor and cross-account keys) must not hide behind a folded node."""

    def chain(depth: int) -> list[dict[str, Any]]:
        if depth > 5:
            return []
        return [
            {
                "credential": f"KEY-DEPTH-{depth}",
                "kind": "aws-access-key",
                "confidence": "proven",
                "reason": "test",
                "evidence": ["e"],
                "children": chain(depth + 1),
            }
        ]

    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=SIZE) as pilot:
            app.open_target("credential", "ASIA1")
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, CredentialScreen)
            screen._show_lineage(([], False, {"children": chain(1)}))
            await settle(pilot)
            tree = screen.query_one("#lineage", Tree)
            shown: list[str] = []

            def walk(node: Any) -> None:
                shown.append(node.label.plain)
                if node.is_expanded:
                    for child in node.children:
                        walk(child)

            walk(tree.root)
            assert any(label.startswith("KEY-DEPTH-5") for label in shown)

    run(body)


FULL_HMAC = "hmac-sha256:c9df96293225ed8a970d414262f1081c811609c289ef55cdc5f8dba9b4fc736c"


def test_timeline_shows_the_distinguishing_part_of_hmac_ids(tmp_path: Path) -> None:
    """The 22-wide column showed ``hmac-sha256:c9df962932`` (10 hex); it shows 16 hex now, and
    the full id is one key away: ``y`` copies it, Enter's raw view prints it whole."""
    import duckdb

    from tests.tui.casefactory import make_case

    case = make_case(tmp_path / "hmac.duckdb")
    con = duckdb.connect(str(case))
    con.execute(
        "UPDATE events SET credential_id = ? WHERE credential_id = 'hmac-sha256:abc'", [FULL_HMAC]
    )
    con.close()

    async def body() -> None:
        app = KeytrailApp(case)
        async with app.run_test(size=SIZE) as pilot:
            app.open_target("timeline", "source:vault")
            await settle(pilot)
            table = app.screen.query_one(PagedTable)
            assert cells(table, 5) == ["hmac:c9df96293225ed8a…"]
            await pilot.press("y")
            await settle(pilot)
            assert app.clipboard == FULL_HMAC
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, RawScreen)
            assert FULL_HMAC in texts(app)

    run(body)


def test_short_credential_cuts_other_ids_with_an_ellipsis() -> None:
    from keytrail.tui.widgets.text import short_credential

    assert short_credential("ASIAEXAMPLESESSION01", 22).plain == "ASIAEXAMPLESESSION01"
    assert (
        short_credential("arn:aws:iam::111122223333:user/x", 22).plain == "arn:aws:iam::11112222…"
    )
    assert short_credential(None, 22).plain == ""
    assert short_credential("hmac-sha256:abc", 22).plain == "hmac:abc"


def test_trace_link_pane_shows_the_whole_reason(small_case: Path) -> None:
    """The reason column ran off a 160-column screen; the highlighted link is shown whole, wrapped."""
    if core.engine(core.TRACE) is None:
        pytest.skip("keytrail.analysis.delegation is not in this build")
    from keytrail.store.case import CaseStore

    with CaseStore.open(small_case) as store:
        chain = core.as_doc(core.engine(core.TRACE)(store, "cloudtrail:ev-get-1"))["chain"]
    assert len(chain) >= 2

    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=(80, 45)) as pilot:
            app.open_target("trace", "cloudtrail:ev-get-1")
            await settle(pilot)
            pane = app.screen.query_one("#link")
            assert pane.display and pane.region.width <= 80
            for _ in range(40):  # the chain table takes focus after a refresh; wait for it
                if getattr(app.focused, "section", None) == "chain":
                    break
                await pilot.pause(0.05)
            assert getattr(app.focused, "section", None) == "chain", app.focused
            for i, link in enumerate(chain[:2]):
                if i:
                    await pilot.press("down")
                    await settle(pilot)
                shown = " ".join(str(pane.render_line(y).text) for y in range(pane.region.height))
                words = " ".join(shown.split())
                assert " ".join(str(link["reason"]).split()) in words, (link["reason"], words)
                assert str(link["id"]) in words

    run(body)


def test_escape_stops_a_slow_analysis_call(
    small_case: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ranking is an analysis function given the screen's session; Escape interrupts its queries.

    The engine is swapped for one whose second query runs for minutes (``tests.tui.slow_engine``):
    without the session's interrupt the worker thread would keep a core busy long after the test.
    """

    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)  # the overview ranks too: let it finish with the real engine
            monkeypatch.setattr(core, "RANK", ("tests.tui.slow_engine", "slow_rank"))
            await pilot.press("c")
            screen = app.screen
            assert isinstance(screen, CredentialsScreen)
            for _ in range(500):
                await pilot.pause(0.01)
                session = screen.sessions.get("rows")
                if session is not None and session.active:
                    break
            assert session is not None and session.active, "the ranking never started"
            assert "ranking… (Escape cancels)" in texts(app)
            await pilot.press("escape")
            for _ in range(
                1000
            ):  # the thread returns once its query is interrupted, and posts Stopped
                if screen.stopped:
                    break
                await pilot.pause(0.02)
            await settle(pilot)
            assert screen.stopped == ["rows"], "the slow query was not stopped"
            assert session.cancelled and session.active == 0 and not screen.busy()
            assert app.screen is screen and screen.rows == []  # no answer, no error modal
            assert "cancelled (rows stopped)" in texts(app)
            await pilot.press("escape")  # nothing runs now: Escape goes back
            await settle(pilot)
            assert isinstance(app.screen, OverviewScreen)

    run(body)


def test_leaving_a_screen_stops_its_analysis(
    small_case: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core, "BLAST", ("tests.tui.slow_engine", "slow_rank"))

    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=SIZE) as pilot:
            app.open_target("credential", "ASIA1")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, CredentialScreen)
            for _ in range(500):
                await pilot.pause(0.01)
                session = screen.sessions.get("blast")
                if session is not None and session.active:
                    break
            assert session is not None and session.active
            app.pop_screen()
            for _ in range(1000):
                if session.active == 0:
                    break
                await pilot.pause(0.02)
            assert session.cancelled and session.active == 0

    run(body)


@pytest.mark.parametrize("width", [80, 160])
def test_trace_chain_table_shows_every_reason_whole(small_case: Path, width: int) -> None:
    """The reason column takes the width the compact columns leave and wraps: no reason is cut."""
    if core.engine(core.TRACE) is None:
        pytest.skip("keytrail.analysis.delegation is not in this build")
    from keytrail.store.case import CaseStore

    with CaseStore.open(small_case) as store:
        chain = core.as_doc(core.engine(core.TRACE)(store, "cloudtrail:ev-get-1"))["chain"]
    longest = max((str(link["reason"]) for link in chain), key=len)
    assert len(longest) > width // 2  # a reason longer than the room a table column would get

    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=(width, 45)) as pilot:
            app.open_target("trace", "cloudtrail:ev-get-1")
            await settle(pilot)
            table = next(
                t for t in app.screen.query(DataTable) if getattr(t, "section", None) == "chain"
            )
            await pilot.pause()
            assert table.cols[-1] == "reason" and table.region.right <= width
            x0 = sum(c.get_render_width(table) for c in table.ordered_columns[:-1])
            lines = [
                table.render_line(y).text for y in range(1, table.region.height)
            ]  # row 0: the header
            assert all(len(line.rstrip()) <= table.region.width for line in lines)
            shown = "".join("".join(line[x0:].split()) for line in lines)
            for link in chain:
                assert "".join(str(link["reason"]).split()) in shown, (link["reason"], lines)
            assert "…" not in "".join(line[x0:] for line in lines)

    run(body)


def test_big_result_tables_add_rows_as_the_cursor_reaches_the_end(small_case: Path) -> None:
    """A blast radius at 1M events lists ~18,000 agents: rows are added a chunk at a time, all reachable."""
    from textual.containers import VerticalScroll

    from keytrail.tui.widgets.doc_view import CHUNK, DocTable, DocView

    n = CHUNK * 4 + 50

    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=SIZE) as pilot:
            app.push_screen(TraceScreen("cloudtrail:ev-get-1"))
            await settle(pilot)
            box = app.screen.query_one("#body", VerticalScroll)
            await box.remove_children()
            await box.mount(DocView({"agents": [f"agent-{i}" for i in range(n)]}))
            await pilot.pause()
            table = app.screen.query_one(DocTable)
            assert table.row_count == CHUNK and len(table.rows_doc) == n
            assert f"agents ({n:,}); {CHUNK} rows at a time" in texts(app)
            table.focus()
            table.move_cursor(row=CHUNK - 1)
            await pilot.press("down")
            assert table.row_count == 2 * CHUNK and table.cursor_row == CHUNK
            await pilot.press("ctrl+end")
            assert table.row_count == n and table.cursor_row == n - 1
            assert str(table.get_row_at(n - 1)[0]) == f"agent-{n - 1}"

    run(body)


def test_timeline_page_scrolls_to_its_last_row(small_case: Path) -> None:
    """PagedTable skips DataTable's cell measuring; the scrollable size must still cover every row."""

    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("t")
            await settle(pilot)
            table = app.screen.query_one(PagedTable)
            assert table.row_count == PAGE_SIZE
            assert table.virtual_size.height == PAGE_SIZE + 1  # the rows and the header
            await pilot.press("ctrl+end")
            await pilot.pause()
            assert table.cursor_row == PAGE_SIZE - 1
            assert table.scroll_y == table.max_scroll_y > 0

    run(body)
