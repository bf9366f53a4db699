"""Fixtures for the explorer tests: tiny real cases and a Pilot runner without pytest-asyncio."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.tui.casefactory import make_case

T = TypeVar("T")


@pytest.fixture(scope="session")
def small_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny incident plus 2,500 filler events (three timeline pages)."""
    return make_case(tmp_path_factory.mktemp("case") / "case.duckdb", extra_events=2500)


def run(body: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(body())  # type: ignore[arg-type]


async def settle(pilot: Any) -> None:
    """Let messages, thread workers and the messages they post all finish.

    A screen's ``load`` of a key cancels the worker of the same key still running (an exclusive
    group: the credential view's one-key activity superseded by its family's), and Textual's
    ``wait_for_complete`` raises ``WorkerCancelled`` for it: that is the app working as meant,
    so the wait goes on for the workers left (on a loaded machine the first often is still
    running when the second starts; a test failed on it under ``nice`` at load 5)."""
    from textual.worker import WorkerCancelled

    for _ in range(3):
        await pilot.pause()
        for _ in range(50):
            try:
                await pilot.app.workers.wait_for_complete()
                break
            except WorkerCancelled:
                await pilot.pause()
    await pilot.pause()


def texts(app: Any) -> str:
    """Every Static/Label text on the current screen, joined (what a user reads)."""
    from rich.console import Console
    from textual.widgets import Static

    out = []
    for w in app.screen.query(Static):
        content = w.content
        if hasattr(content, "plain"):
            out.append(content.plain)
        else:  # a rich renderable (the key/value grids): render it as the terminal would
            console = Console(width=200, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
            console.print(content)
            out.append(console.export_text())
    return "\n".join(out)
