"""SVG snapshots of the main screens (``App.export_screenshot``), compared with committed files.

Rendering differs slightly between Python/Textual versions, so snapshots are pinned to
Python 3.11 and skipped elsewhere. After looking at a change, regenerate with
``KEYTRAIL_UPDATE_SNAPSHOTS=1 PYTHONPATH=src python -m pytest tests/tui/test_snapshots.py``.
The case lives at a fixed temporary path so the path shown on screen is stable.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, TextArea

from keytrail.tui import core
from keytrail.tui.app import KeytrailApp
from keytrail.tui.screens.sql import SqlScreen
from tests.tui.casefactory import make_case
from tests.tui.conftest import run, settle

SNAPSHOTS = Path(__file__).parent / "__snapshots__"
UPDATE = os.environ.get("KEYTRAIL_UPDATE_SNAPSHOTS") == "1"
SIZE = (120, 36)

pytestmark = pytest.mark.skipif(
    sys.version_info[:2] != (3, 11), reason="snapshots are pinned to Python 3.11"
)


@pytest.fixture(scope="module")
def snap_case() -> Path:
    root = Path(tempfile.gettempdir()) / "keytrail-tui-snapshots"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    return make_case(root / "case.duckdb", extra_events=40)


@pytest.fixture(autouse=True)
def no_blink(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)
    monkeypatch.setattr(TextArea, "_toggle_cursor_blink_visible", lambda self: None)


def snapshot(case: Path, name: str, steps: Callable[[KeytrailApp, Any], Awaitable[None]]) -> None:
    async def body() -> str:
        app = KeytrailApp(case)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await steps(app, pilot)
            await settle(pilot)
            return str(app.export_screenshot(title=name))

    svg = run(body)
    path = SNAPSHOTS / f"{name}.svg"
    if UPDATE or not path.exists():
        if not UPDATE:
            pytest.fail(f"no snapshot {path.name}; create it with KEYTRAIL_UPDATE_SNAPSHOTS=1")
        path.write_text(svg, encoding="utf-8")
        return
    expected = path.read_text(encoding="utf-8")
    if svg != expected:
        actual = Path(tempfile.gettempdir()) / f"keytrail-snapshot-{name}.actual.svg"
        actual.write_text(svg, encoding="utf-8")
        pytest.fail(
            f"{name} differs from {path}; see {actual} (regenerate with KEYTRAIL_UPDATE_SNAPSHOTS=1)"
        )


def test_overview_snapshot(snap_case: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Overview of the tiny incident, store part only (analysis sections change as rules evolve)."""
    monkeypatch.setattr(core, "engine", lambda spec: None)

    async def steps(app: KeytrailApp, pilot: Any) -> None:
        pass

    snapshot(snap_case, "overview-store-only", steps)


def test_timeline_snapshot(snap_case: Path) -> None:
    """Timeline first page, hostile row included."""

    async def steps(app: KeytrailApp, pilot: Any) -> None:
        await pilot.press("t")

    snapshot(snap_case, "timeline", steps)


def test_raw_snapshot(snap_case: Path) -> None:
    """Raw record with the session token masked."""

    async def steps(app: KeytrailApp, pilot: Any) -> None:
        app.open_target("event", "cloudtrail:ev-assume")

    snapshot(snap_case, "raw", steps)


def test_sql_snapshot(snap_case: Path) -> None:
    """SQL console with a grouped query."""

    async def steps(app: KeytrailApp, pilot: Any) -> None:
        app.push_screen(
            SqlScreen("SELECT source, outcome, count(*) AS n FROM events GROUP BY ALL ORDER BY ALL")
        )

    snapshot(snap_case, "sql", steps)
