"""The explorer's export dialog (``e``): every format written through the CLI's core, errors inline.

Each test drives the real dialog with Pilot on a real case file, lets the thread worker
write the file and reads the file back: a report names the credential, JSON lines parse,
the CSV has the events' header, a PDF is a PDF whose text names the credential.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, Label, OptionList, Static

from keytrail.cli.main import main
from keytrail.report.pdf import find_browser
from keytrail.tui.app import KeytrailApp
from keytrail.tui.screens.export import CHOICES, ExportModal, free_name
from tests.tui.conftest import run, settle

SIZE = (140, 45)
pytest.importorskip("keytrail.report.write")


async def _open_dialog(app: KeytrailApp, pilot: Any, credential: str | None) -> ExportModal:
    if credential:
        app.open_target("credential", credential)
        await settle(pilot)
    await pilot.press("e")
    await settle(pilot)
    assert isinstance(app.screen, ExportModal), type(app.screen)
    return app.screen


async def _pick(pilot: Any, dialog: ExportModal, key: str) -> None:
    """Move the highlight to ``key`` (``csv``, ``csv-view``...) with ↓ as a user would; Enter."""
    options = dialog.query_one("#formats", OptionList)
    options.focus()
    await pilot.press("home")
    for _ in range(len(dialog.choices)):
        if dialog.choice.key == key:
            break
        await pilot.press("down")
    assert dialog.choice.key == key
    await pilot.press("enter")


async def _wait_done(app: KeytrailApp, pilot: Any, dialog: ExportModal) -> None:
    for _ in range(300):
        await settle(pilot)
        if app.screen is not dialog:
            return
        error = dialog.query_one("#export-error", Static)
        if error.display:
            pytest.fail(f"export failed: {error.content}")
    pytest.fail("the export did not finish")


def _written(app: KeytrailApp) -> Path:
    [msg] = [n.message for n in app._notifications if "report written to" in n.message][-1:]
    return Path(msg.split("report written to ", 1)[1].split(" (", 1)[0])


def test_each_format_is_written_and_reads_back(
    small_case: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1772528400")
    formats = ["html", "md", "json", "timesketch", "ocsf", "csv"]
    written: dict[str, Path] = {}

    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            for fmt in formats:
                dialog = await _open_dialog(app, pilot, "ASIA1" if not written else None)
                await _pick(pilot, dialog, fmt)
                await _wait_done(app, pilot, dialog)
                written[fmt] = _written(app)
                app._notifications.clear()

    run(body)
    assert {p.parent for p in written.values()} == {tmp_path.resolve()}
    assert written["html"].name == "keytrail-ASIA1.html"
    html = written["html"].read_text()
    assert html.startswith("<!DOCTYPE html") and "ASIA1" in html and "<script" not in html
    md = written["md"].read_text()
    assert md.startswith("# ") and "ASIA1" in md
    doc = json.loads(written["json"].read_text())
    assert [c["credential"] for c in doc["credentials"]] == ["ASIA1"]
    # The same bytes as the command line writes for the same credential and time.
    cli = tmp_path / "cli.html"
    assert main(["report", str(small_case), "--credential", "ASIA1", "-o", str(cli)]) == 0
    assert cli.read_text() == html
    lines = written["timesketch"].read_text().splitlines()
    assert len(lines) == 2507 and all(
        {"datetime", "message"} <= json.loads(line).keys() for line in lines[:50]
    )
    ocsf = [json.loads(line) for line in written["ocsf"].read_text().splitlines()]
    assert len(ocsf) == 2507 and all("class_uid" in o for o in ocsf)
    with open(written["csv"], newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2507 and "event_uid" in rows[0]
    assert written["csv"].name == "keytrail-ASIA1.csv"


@pytest.mark.skipif(find_browser() is None, reason="headless Chromium (Debian: chromium) is absent")
def test_pdf_is_printed_by_chromium(
    small_case: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    async def body() -> Path:
        app = KeytrailApp(small_case)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            dialog = await _open_dialog(app, pilot, "ASIA1")
            await _pick(pilot, dialog, "pdf")
            await _wait_done(app, pilot, dialog)
            return _written(app)

    pdf = run(body)
    assert pdf.name == "keytrail-ASIA1.pdf" and pdf.read_bytes()[:5] == b"%PDF-"
    if shutil.which("pdftotext"):
        text = subprocess.run(
            ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
        ).stdout
        assert "ASIA1" in text and "What happened" in text


def test_pdf_without_chromium_is_offered_disabled(
    small_case: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYTRAIL_CHROMIUM", str(tmp_path / "no-such-browser"))

    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=SIZE) as pilot:
            dialog = await _open_dialog(app, pilot, None)
            options = dialog.query_one("#formats", OptionList)
            pdf = options.get_option("pdf")
            assert pdf.disabled and "needs Chromium" in str(pdf.prompt)

    run(body)


def test_errors_show_inline_and_existing_files_are_never_overwritten(
    small_case: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keytrail-ASIA1.html").write_text("earlier evidence")
    (tmp_path / "keytrail-ASIA1-1.html").write_text("earlier evidence 1")

    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            dialog = await _open_dialog(app, pilot, "ASIA1")
            path = dialog.query_one("#path", Input)
            # the proposal skips the taken names
            assert path.value == str((tmp_path / "keytrail-ASIA1-2.html").resolve())
            error = dialog.query_one("#export-error", Static)
            for name, why in (
                (str(tmp_path / "keytrail-ASIA1.html"), "already exists"),
                (str(tmp_path / "no-such-dir" / "r.html"), "does not exist"),
            ):
                path.value = name
                path.focus()
                await pilot.press("enter")
                for _ in range(50):
                    await settle(pilot)
                    if error.display:
                        break
                assert app.screen is dialog and error.display, "no inline error"
                assert why in str(error.content), str(error.content)
            # a free name then works; Escape would have closed the dialog without writing
            path.value = str(tmp_path / "keytrail-ASIA1-2.html")
            await pilot.press("enter")
            await _wait_done(app, pilot, dialog)
            assert _written(app) == (tmp_path / "keytrail-ASIA1-2.html").resolve()

    run(body)
    assert (tmp_path / "keytrail-ASIA1.html").read_text() == "earlier evidence"
    assert (tmp_path / "keytrail-ASIA1-1.html").read_text() == "earlier evidence 1"
    assert "ASIA1" in (tmp_path / "keytrail-ASIA1-2.html").read_text()


def test_escape_closes_the_dialog_without_writing(
    small_case: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=SIZE) as pilot:
            await _open_dialog(app, pilot, None)
            await pilot.press("escape")
            await settle(pilot)
            assert not isinstance(app.screen, ExportModal)

    run(body)
    assert list(tmp_path.iterdir()) == []


def test_free_name_proposes_the_first_unused_name(tmp_path: Path) -> None:
    assert free_name(tmp_path, "r", ".ocsf.jsonl") == (tmp_path / "r.ocsf.jsonl").resolve()
    (tmp_path / "r.ocsf.jsonl").write_text("")
    (tmp_path / "r-1.ocsf.jsonl").write_text("")
    assert free_name(tmp_path, "r", ".ocsf.jsonl").name == "r-2.ocsf.jsonl"
    assert not (tmp_path / "r-2.ocsf.jsonl").exists()  # a proposal only: nothing created


def test_served_export_is_handed_to_textual_delivery(
    small_case: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Served, the file is built aside and delivered (a download); the test driver saves it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(KeytrailApp, "is_web", property(lambda self: True))

    async def body() -> list[str]:
        app = KeytrailApp(small_case)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            dialog = await _open_dialog(app, pilot, "ASIA1")
            assert dialog.query_one("#path", Input).value == "keytrail-ASIA1.html"  # a name only
            await _pick(pilot, dialog, "md")
            for _ in range(300):
                await settle(pilot)
                if any("report written" in n.message for n in app._notifications):
                    break
            return [n.message for n in app._notifications]

    messages = run(body)
    delivered = tmp_path / "keytrail-ASIA1.md"
    assert any(f"report written to {delivered}" in m for m in messages), messages
    assert delivered.read_text().startswith("# ") and "ASIA1" in delivered.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["keytrail-ASIA1.md"]  # no temporary left


def test_dialog_fits_80x24(small_case: Path) -> None:
    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=(80, 24)) as pilot:
            dialog = await _open_dialog(app, pilot, "ASIA1")  # the longest list: 9 lines
            screen = dialog.region
            for selector in ("#formats", "#path", "#export-hint"):
                region = dialog.query_one(selector).region
                assert screen.contains_region(region), (selector, region, screen)
            assert dialog.query_one("#formats", OptionList).option_count == len(CHOICES) + 2
            assert dialog.query_one("#formats", OptionList).max_scroll_y == 0  # all 9 in view

    run(body)


def test_view_exports_keep_the_events_the_view_shows(
    small_case: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A credential exports its family's events; the timeline the events of its filter."""
    from keytrail.store.case import CaseStore
    from keytrail.tui.queries import TimelineFilter, timeline_count
    from keytrail.tui.screens.timeline import TimelineScreen

    monkeypatch.chdir(tmp_path)
    store = CaseStore.open(small_case)
    try:
        cur = store.cursor()
        family = timeline_count(cur, TimelineFilter(terms={"family": "AKIA1"}))
        cloudtrail = timeline_count(cur, TimelineFilter.parse("source:cloudtrail outcome:denied"))
        cur.close()
    finally:
        store.close()
    assert 0 < family < 2507 and 0 < cloudtrail < 2507
    written: dict[str, Path] = {}

    async def body() -> None:
        app = KeytrailApp(small_case)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            dialog = await _open_dialog(app, pilot, "AKIA1")
            title = dialog.query_one("#export-title", Label).content
            assert "this view: AKIA1 and what it minted" in str(title)
            await _pick(pilot, dialog, "csv-view")
            await _wait_done(app, pilot, dialog)
            written["credential"] = _written(app)
            app.push_screen(TimelineScreen("source:cloudtrail outcome:denied"))
            await settle(pilot)
            assert isinstance(app.screen, TimelineScreen)
            app.screen.query_one("#filter", Input).blur()  # e goes to the app, not the line
            dialog = await _open_dialog(app, pilot, None)
            await _pick(pilot, dialog, "timesketch-view")
            await _wait_done(app, pilot, dialog)
            written["timeline"] = _written(app)

    run(body)
    assert written["credential"].name == "keytrail-AKIA1-view.csv"
    with open(written["credential"], newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == family
    lines = [json.loads(x) for x in written["timeline"].read_text().splitlines()]
    assert len(lines) == cloudtrail and written["timeline"].name == "keytrail-report-view.jsonl"
