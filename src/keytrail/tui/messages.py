"""Messages posted from DuckDB thread workers back to the screens (toolong style dataclasses).

One message class per kind of answer (harlequin's ``QueriesExecuted``, toolong's
``Goto``): a screen handles ``on_blast_loaded(message)`` and reads typed fields, instead
of one ``on_loaded`` that switches on a string key and unpacks an ``Any``.

Every :class:`Loaded` names its worker group in the class variable ``key`` and carries
the generation of the ``load`` call that produced it: a screen drops an answer whose key
was loaded again since (a credentials list reopened quickly, a filter retyped), so rows
of an older load never reach a table whose columns already belong to a newer one
(:meth:`keytrail.tui.screens.base.CaseScreen._on_message`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from textual.message import Message

if TYPE_CHECKING:
    from keytrail.analysis.lineage import MintStep
    from keytrail.tui.queries import Page, TimelineFilter
    from keytrail.tui.screens.sql import Rows, SqlError

#: A row of an analysis ``--json`` document (a ranked credential, a finding, an agent).
Doc = dict[str, Any]
#: A graph edge touching a node: (direction, kind, other kind, other, confidence, reason, events).
Edge = tuple[Any, ...]


@dataclass
class Loaded(Message, bubble=False):
    """A worker finished. Subclasses name their worker group in ``key`` and hold typed fields."""

    #: The worker group: a newer ``load`` of the same key interrupts and supersedes the older.
    key: ClassVar[str] = ""
    #: The ``load`` call's number for ``key`` on its screen (newest wins, older ones are dropped).
    generation: int = field(default=0, kw_only=True)

    def __init_subclass__(cls, bubble: bool | None = False, **kw: Any) -> None:
        """Answers go to the screen that asked (Textual's default would bubble them to the app)."""
        super().__init_subclass__(bubble=bubble, **kw)


# -- overview ---------------------------------------------------------------------------
@dataclass
class CaseInfoLoaded(Loaded):
    """``case_info`` (the numbers of ``keytrail info``) and the principals per kind."""

    key: ClassVar[str] = "info"
    info: Doc
    kinds: dict[str, int]


@dataclass
class TopCredentialsLoaded(Loaded):
    """The first rows of the blast-radius ranking (the overview's top credentials)."""

    key: ClassVar[str] = "top"
    rows: list[Doc]


@dataclass
class LevelCountsLoaded(Loaded):
    """Findings per level, worst first."""

    key: ClassVar[str] = "findings"
    counts: dict[str, int]


# -- credentials ------------------------------------------------------------------------
@dataclass
class RankingPaged(Loaded):
    """The first page of the ranking stored in the case's analysis snapshot, of the rows whose
    fields hold ``contains``, and how many rows hold it (``page`` ``None``: no current ranking
    snapshot; the list ranks whole instead)."""

    key: ClassVar[str] = "page"
    contains: str
    page: tuple[list[Doc], int] | None
    #: How many credentials the snapshot ranks in all (the count without ``contains``).
    total: int = 0


@dataclass
class RankingLoaded(Loaded):
    """The whole ranking; ``how`` is ``ranked`` or ``fallback`` (events table, no analysis)."""

    key: ClassVar[str] = "rows"
    how: str
    rows: list[Doc]


@dataclass
class CredentialHeadLoaded(Loaded):
    """The ``credentials`` row of one credential (``None``: not in this case)."""

    key: ClassVar[str] = "head"
    row: Doc | None


@dataclass
class BlastLoaded(Loaded):
    """One credential's blast radius (``keytrail blast --json``)."""

    key: ClassVar[str] = "blast"
    doc: Doc


@dataclass
class LineageLoaded(Loaded):
    """The credential's ancestry (root first, ``stopped`` at a cycle) and what it minted."""

    key: ClassVar[str] = "lineage"
    steps: list[MintStep]
    stopped: bool
    tree: Doc


@dataclass
class GrantedLoaded(Loaded):
    """The potential blast radius (what policy grants), as the report's tables."""

    key: ClassVar[str] = "granted"
    doc: Doc


# -- credentials and agents -------------------------------------------------------------
@dataclass
class IdentitiesLoaded(Loaded):
    """Graph edges touching a credential or an agent, other than ``ACTED_ON``."""

    key: ClassVar[str] = "ids"
    edges: list[Edge]


@dataclass
class ActivityLoaded(Loaded):
    """Events per time bucket of ``family`` credentials (or of one agent)."""

    key: ClassVar[str] = "activity"
    buckets: list[tuple[datetime, int]]
    family: int = 1


@dataclass
class AgentsLoaded(Loaded):
    """Every agent with owner, humans and credentials."""

    key: ClassVar[str] = "agents"
    rows: list[Doc]


@dataclass
class BaselineLoaded(Loaded):
    """An agent's baseline and drift (``keytrail baseline --json``)."""

    key: ClassVar[str] = "baseline"
    doc: Doc


# -- findings, events, traces, SQL ------------------------------------------------------
@dataclass
class FindingsLoaded(Loaded):
    """Every finding's document."""

    key: ClassVar[str] = "findings"
    docs: list[Doc]


@dataclass
class EventLoaded(Loaded):
    """One event with its raw record (``None``: no such event)."""

    key: ClassVar[str] = "event"
    record: Doc | None


@dataclass
class OriginalLoaded(Loaded):
    """The original record read back from the evidence file, or why it cannot be."""

    key: ClassVar[str] = "reveal"
    original: str | None
    problem: str | None


@dataclass
class TraceLoaded(Loaded):
    """An event's delegation trace (``keytrail trace --json``)."""

    key: ClassVar[str] = "trace"
    doc: Doc


@dataclass
class SqlLoaded(Loaded):
    """A console query's rows, or the sandbox's or DuckDB's refusal."""

    key: ClassVar[str] = "sql"
    result: Rows | SqlError


# -- timeline ---------------------------------------------------------------------------
@dataclass
class FilterExpanded(Loaded):
    """The timeline filter with unique id prefixes made whole."""

    key: ClassVar[str] = "filter"
    flt: TimelineFilter


@dataclass
class PageLoaded(Loaded):
    """One timeline page."""

    key: ClassVar[str] = "page"
    page: Page


@dataclass
class CountLoaded(Loaded):
    """How many events the timeline filter selects."""

    key: ClassVar[str] = "count"
    total: int


# -- worker state -----------------------------------------------------------------------
@dataclass
class Unavailable(Message, bubble=False):
    """An analysis module this view needs is not in this build (``module`` names it)."""

    key: str
    module: str


@dataclass
class Stopped(Message, bubble=False):
    """A worker's call was interrupted (Escape, or the screen was left) and has returned."""

    key: str
