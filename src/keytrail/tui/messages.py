"""Messages posted from DuckDB thread workers back to the screens (toolong style dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message


@dataclass
class Loaded(Message, bubble=False):
    """A worker finished: ``key`` names what was loaded, ``data`` is the result."""

    key: str
    data: Any


@dataclass
class Unavailable(Message, bubble=False):
    """An analysis module this view needs is not in this build (``module`` names it)."""

    key: str
    module: str


@dataclass
class Stopped(Message, bubble=False):
    """A worker's call was interrupted (Escape, or the screen was left) and has returned."""

    key: str
