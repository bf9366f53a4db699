"""Messages posted from DuckDB thread workers back to the screens (toolong style dataclasses).

Every :class:`Loaded` carries the generation of the ``load`` call that produced it: a
screen drops an answer whose key was loaded again since (a credentials list reopened
quickly, a filter retyped), so rows of an older load never reach a table whose columns
already belong to a newer one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message


@dataclass
class Loaded(Message, bubble=False):
    """A worker finished: ``key`` names what was loaded, ``data`` is the result."""

    key: str
    data: Any
    #: The ``load`` call's number for ``key`` on its screen (newest wins, older ones are dropped).
    generation: int = field(default=0, kw_only=True)


@dataclass
class Unavailable(Message, bubble=False):
    """An analysis module this view needs is not in this build (``module`` names it)."""

    key: str
    module: str


@dataclass
class Stopped(Message, bubble=False):
    """A worker's call was interrupted (Escape, or the screen was left) and has returned."""

    key: str
