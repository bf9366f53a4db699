"""The credential view's "Granted by policy" tab: the potential blast radius beside the observed one."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input

from keytrail.cli.main import main
from keytrail.tui.app import KeytrailApp
from keytrail.tui.screens.credentials import CredentialScreen
from keytrail.tui.widgets.doc_view import DocTable
from tests.tui.conftest import run, settle, texts

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"


@pytest.fixture(scope="module")
def sample_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (SAMPLE / "incident").is_dir() or not (SAMPLE / "policies").is_dir():
        pytest.skip("sample data not in this checkout")
    case = tmp_path_factory.mktemp("granted") / "case.duckdb"
    with contextlib.redirect_stderr(io.StringIO()):
        assert (
            main(["ingest", str(case), str(SAMPLE / "incident"), str(SAMPLE / "policies"), "-q"])
            == 0
        )
    return case


def _cells(app: KeytrailApp) -> str:
    out = []
    for table in app.screen.query_one("#granted").query(DataTable):
        for i in range(table.row_count):
            out += [str(c) for c in table.get_row_at(i)]
    return " ".join(out)


def test_granted_tab_lists_the_policies_of_the_incident_key(sample_case: Path) -> None:
    async def body() -> None:
        app = KeytrailApp(sample_case)
        async with app.run_test(size=(160, 50)) as pilot:
            app.push_screen(CredentialScreen("ASIADKKHC6DWJIFTZP4G"))
            await settle(pilot)
            await pilot.press("5")
            await settle(pilot)
            cells = _cells(app)
            assert "LedgerReconcilerAccess" in cells and "iam:CreateAccessKey" in cells
            assert "iam-write" in cells
            assert "principal(s)" in texts(app) + cells

    run(body)


def test_granted_tab_says_when_there_is_no_snapshot(small_case: Path) -> None:
    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=(160, 50)) as pilot:
            app.push_screen(CredentialScreen("ASIA1"))
            await settle(pilot)
            await pilot.press("5")
            await settle(pilot)
            assert "none in this case" in texts(app)

    run(body)


def test_credentials_list_reads_the_snapshot_ranking_a_page_at_a_time(
    sample_case: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The list holds only the pages its table reached; every row, in order, is the ranking's,
    and a filter (SQL on the stored ranking) keeps the rows the in-memory filter keeps."""
    from keytrail.analysis.answers import rank_credentials
    from keytrail.store.case import CaseStore
    from keytrail.tui import core
    from keytrail.tui.lazy_rows import LazyRows
    from keytrail.tui.screens import credentials
    from keytrail.tui.widgets import doc_view

    with CaseStore.open(sample_case) as store:
        whole = core.as_doc(rank_credentials(store, use_snapshot=False))
    assert len(whole) > 20
    monkeypatch.setattr(credentials, "PAGE_ROWS", 3)
    monkeypatch.setattr(doc_view, "CHUNK", 4)
    # ids, kinds, principals, agents and humans; any case; LIKE's wildcards and quotes literal
    needles = ["asia", "AKIA", "Maria", "ledger", "_", "%", "'", ":", "arn:aws", "no-such-thing"]

    async def body() -> None:
        app = KeytrailApp(sample_case)
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.press("c")
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, credentials.CredentialsScreen) and screen.complete
            rows = screen.rows
            assert isinstance(rows, LazyRows) and len(rows) == len(whole)
            table = screen.query_one("#creds", DocTable)
            assert table.row_count == 4 and rows.pages_read == 2  # what the table showed
            assert f"{len(whole):,} of {len(whole):,} credentials" in texts(app)
            await pilot.press("end")
            await settle(pilot)
            assert table.row_count == len(whole)
            assert [r["credential"] for r in rows] == [r["credential"] for r in whole]
            assert [r["score"] for r in rows] == [r["score"] for r in whole]
            for needle in needles:
                screen.query_one("#filter", Input).value = needle
                await settle(pilot)
                kept = [
                    r["credential"] for r in whole if needle.lower() in credentials._haystack(r)
                ]
                assert [r["credential"] for r in screen.rows] == kept, needle
                assert f"{len(kept):,} of {len(whole):,} credentials" in texts(app), needle
            assert any(  # the needles meant something: some keep a few, one keeps none
                0 < len([r for r in whole if n.lower() in credentials._haystack(r)]) < len(whole)
                for n in needles
            )

    run(body)


def test_credentials_list_without_a_snapshot_ranks_whole(small_case: Path) -> None:
    """No current ranking snapshot: the list is the live ranking, held and filtered in memory."""
    from keytrail.analysis import snapshot
    from keytrail.store.case import CaseStore
    from keytrail.tui.screens import credentials

    with CaseStore.open(small_case) as store:
        assert snapshot.rank_rows(store) is None

    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.press("c")
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, credentials.CredentialsScreen) and screen.complete
            assert isinstance(screen.rows, list) and screen.rows
            ids = [str(r.get("credential") or r.get("credential_id")) for r in screen.rows]
            screen.query_one("#filter", Input).value = "asia"
            await settle(pilot)
            table = screen.query_one("#creds", DocTable)
            shown = [str(r.get("credential") or r.get("credential_id")) for r in table.rows_doc]
            assert shown == [i for i in ids if "asia" in i.lower()] and shown

    run(body)
