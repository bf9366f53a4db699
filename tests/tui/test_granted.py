"""The credential view's "Granted by policy" tab: the potential blast radius beside the observed one."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from textual.widgets import DataTable

from keytrail.cli.main import main
from keytrail.tui.app import KeytrailApp
from keytrail.tui.screens.credentials import CredentialScreen
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


def test_credentials_list_shows_the_snapshot_top_rows_then_the_whole_ranking(
    sample_case: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from textual.message import Message

    from keytrail.tui.messages import RankingHeadLoaded, RankingLoaded
    from keytrail.tui.screens import credentials

    monkeypatch.setattr(credentials, "HEAD_ROWS", 3)
    messages: list[Message] = []

    async def body() -> None:
        app = KeytrailApp(sample_case)
        async with app.run_test(size=(160, 50), message_hook=messages.append) as pilot:
            await pilot.press("c")
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, credentials.CredentialsScreen) and screen.complete
            [head] = [m.rows for m in messages if isinstance(m, RankingHeadLoaded)]
            [full] = [m.rows for m in messages if isinstance(m, RankingLoaded)]
            assert head is not None and len(head) == 3 and len(full) > 3
            assert [r["credential"] for r in head] == [r["credential"] for r in full[:3]]
            assert len(screen.rows) == len(full)

    run(body)
