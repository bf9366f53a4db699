"""Show an analysis result exactly as its ``--json`` document, as facts and tables.

The explorer does not re-derive blast radii, traces, findings or baselines: it shows
the ``as_dict()`` of the engine's result, so screen, CLI and report agree. Scalars
become ``key value`` lines, lists of objects become tables (at most
:data:`~keytrail.tui.queries.TABLE_CAP` rows, the cap shown), nested objects become
sub-sections, and lists of event ids become a pick list that opens the event.
Choosing a table row posts :class:`DocView.Picked` with the row; the app opens what
the row names (event, credential, agent, resource).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import ScrollableContainer, Vertical
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.widgets import DataTable, Label, OptionList, Static
from textual.widgets.option_list import Option

from keytrail.tui.queries import TABLE_CAP
from keytrail.tui.target import Target, target_of
from keytrail.tui.widgets.text import fmt, kv, lit

#: Keys whose list-of-strings values are event uids.
EVENT_LIST_KEYS = (
    "evidence_uids",
    "evidence",
    "event_uids",
    "events",
    "evidence_event_uids",
    "event_ids",
)
#: Column order preferred when present; other columns follow in document order.
PREFERRED = (
    "level",
    "severity",
    "score",
    "credential",
    "credential_id",
    "agent",
    "human",
    "resource",
    "kind",
    "holder",
    "id",
    "title",
    "agents",
    "humans",
    "category",
    "action",
    "resource_id",
    "count",
    "events",
    "denied",
    "first_seen",
    "last_seen",
    "confidence",
    "reason",
)
#: Rows a table shows at first and adds each time the cursor reaches the last one.
CHUNK = 100
#: Columns whose text is an explanation worth reading in full (wider cells).
LONG_TEXT = ("explanation", "reason", "description", "recommendation", "impact", "label", "title")


def cell(key: str, value: Any) -> Text:
    """A table cell: nested lists and objects summarised, evidence lists counted."""
    if isinstance(value, (list, tuple)):
        if key.endswith("evidence") or key in EVENT_LIST_KEYS:
            return Text(f"{len(value)} events" if value else "", style="dim")
        if value and all(isinstance(v, dict) for v in value):
            return lit(
                ", ".join(" ".join(fmt(x) for x in v.values() if _is_scalar(x)) for v in value), 80
            )
    if isinstance(value, dict):
        return lit(", ".join(f"{k}={fmt(v)}" for k, v in value.items() if _is_scalar(v)), 80)
    return lit(value, 200 if key in LONG_TEXT else 80)


def _is_scalar(v: Any) -> bool:
    return not isinstance(v, (dict, list, tuple))


def _capped(rows: Sequence[dict[str, Any]]) -> Sequence[dict[str, Any]]:
    """The first :data:`TABLE_CAP` rows; a sequence within the cap as it is (a
    :class:`~keytrail.tui.lazy_rows.LazyRows` is made within it: a slice would read every page)."""
    return rows if len(rows) <= TABLE_CAP else rows[:TABLE_CAP]


def _columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for r in rows[:200]:
        for k in r:
            seen.setdefault(k, None)
    cols = list(seen)
    return sorted(
        cols,
        key=lambda c: (PREFERRED.index(c) if c in PREFERRED else len(PREFERRED), cols.index(c)),
    )


def _title(key: str) -> str:
    return key.replace("_", " ")


#: Vim keys on every list and table (the arrows stay).
VIM_KEYS: list[BindingType] = [
    Binding("j", "cursor_down", "Down", show=False),
    Binding("k", "cursor_up", "Up", show=False),
]


class EventLinks(OptionList):
    """Event ids; Enter opens the event."""

    BINDINGS: ClassVar[list[BindingType]] = VIM_KEYS

    def __init__(self, uids: list[str], **kw: Any) -> None:
        super().__init__(*[Option(lit(u), id=None) for u in uids[:TABLE_CAP]], **kw)
        self.uids = uids[:TABLE_CAP]

    def action_cursor_down(self) -> None:
        last = self.highlighted is not None and self.highlighted >= self.option_count - 1
        if last and DocTable.hand_over(self, +1):  # type: ignore[arg-type]
            return
        super().action_cursor_down()

    def action_page_down(self) -> None:
        last = self.highlighted is not None and self.highlighted >= self.option_count - 1
        if last and DocTable.hand_over(self, +1):  # type: ignore[arg-type]
            return
        super().action_page_down()  # type: ignore[no-untyped-call]

    def action_last(self) -> None:
        last = self.highlighted is not None and self.highlighted >= self.option_count - 1
        if last and DocTable.hand_over(self, +1, last=True):  # type: ignore[arg-type]
            return
        super().action_last()

    def action_cursor_up(self) -> None:
        if (self.highlighted or 0) <= 0 and DocTable.hand_over(self, -1):  # type: ignore[arg-type]
            return
        super().action_cursor_up()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        uid = self.uids[event.option_index]
        self.post_message(DocView.Picked("event", {"event_uid": uid}, Target("event", uid)))


class DocTable(DataTable[Text]):
    """Rows of a list-of-objects section; Enter posts :class:`DocView.Picked` with the row's target.

    ``target`` maps a row to what it opens (the screen that builds the table knows its
    rows); by default :func:`~keytrail.tui.target.target_of` reads the section's document.
    ``cells`` overrides how a column's value is shown (e.g. short ids, level colours).
    """

    #: Home/End go to the first/last row (a row table's End scrolled sideways).
    BINDINGS: ClassVar[list[BindingType]] = [
        *VIM_KEYS,
        Binding("end", "scroll_bottom", "Last", show=False),
        Binding("home", "scroll_top", "First", show=False),
    ]

    def __init__(
        self,
        section: str,
        rows: Sequence[dict[str, Any]],
        *,
        columns: list[str] | None = None,
        target: Callable[[dict[str, Any]], Target | None] | None = None,
        cells: Mapping[str, Callable[[Any], Text]] | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kw)
        self.section = section
        self.rows_doc = _capped(rows)
        self.cols = columns or _columns(self.rows_doc)
        self.target = target or (lambda row: target_of(section, row))
        self.cell_fns = cells or {}

    def on_mount(self) -> None:
        self.add_columns(*[lit(_title(c)) for c in self.cols])
        self.set_rows(self.rows_doc)

    def cell(self, key: str, row: dict[str, Any]) -> Text:
        fn = self.cell_fns.get(key)
        return fn(row.get(key)) if fn else cell(key, row.get(key))

    def set_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        """Show ``rows`` (a subset of the section, e.g. after filtering) with the same columns.

        Before the table is mounted its columns do not exist yet: the rows are kept and
        ``on_mount`` shows them (rows arriving then used to raise "More values provided
        than there are columns").
        """
        self.rows_doc = _capped(rows)
        if not self.columns:
            return
        self.clear()
        self._more()

    def _more(self) -> bool:
        """Add the next :data:`CHUNK` rows; ``False`` when every row is already in the table.

        A blast radius at a million events lists 18,000 agents and 11,000 derived
        credentials; building every row up front froze the screen for 6 s, so rows are
        added as the cursor reaches the end of what is shown.
        """
        start = self.row_count
        if start >= len(self.rows_doc):
            return False
        self.add_rows(
            [[self.cell(c, r) for c in self.cols] for r in self.rows_doc[start : start + CHUNK]]
        )
        return True

    def action_cursor_down(self) -> None:
        if self.cursor_row >= self.row_count - 1 and not self._more() and self.hand_over(+1):
            return
        super().action_cursor_down()

    def action_cursor_up(self) -> None:
        if self.cursor_row <= 0 and self.hand_over(-1):
            return
        super().action_cursor_up()

    def action_page_down(self) -> None:
        if self.cursor_row >= self.row_count - CHUNK // 4:
            self._more()
        if self.cursor_row >= self.row_count - 1 and self.hand_over(+1):
            return
        super().action_page_down()

    def action_page_up(self) -> None:
        if self.cursor_row <= 0 and self.hand_over(-1):
            return
        super().action_page_up()

    def action_scroll_bottom(self) -> None:
        while self._more():
            pass
        if self.cursor_row >= self.row_count - 1 and self.hand_over(+1, last=True):
            return
        super().action_scroll_bottom()

    def action_scroll_top(self) -> None:
        if self.cursor_row <= 0 and self.hand_over(-1, last=True):
            return
        super().action_scroll_top()

    def hand_over(self, direction: int, *, last: bool = False) -> bool:
        """Move focus to the neighbouring list of the same scrolled view (``True`` when it moved).

        A credential's blast radius is a column of tables in one scroll view; a table kept
        ↓, PageDown and End to itself, so what lay below the fold was reachable only by
        Tab. At its last row (first for ↑) the key now goes on to the next (previous) list;
        End on the last row goes to the view's last list and its end (Home on the first row:
        the first list and the start). Nothing there: the
        view scrolls to its end (start) and focus stays.
        """
        scroller = next(
            (
                a
                for a in self.ancestors
                if isinstance(a, ScrollableContainer) and not isinstance(a, ScrollView)
            ),
            None,
        )
        if scroller is None:
            return False
        chain = [w for w in self.screen.focus_chain if scroller in w.ancestors]
        if self not in chain:
            return False
        i = chain.index(self)
        j = (len(chain) - 1 if direction > 0 else 0) if last else i + direction
        if j == i or not 0 <= j < len(chain):
            if direction > 0:
                scroller.scroll_end(animate=False)
            else:
                scroller.scroll_home(animate=False)
            return False
        chain[j].focus()
        if last and direction > 0:
            scroller.scroll_end(animate=False)
        elif last:
            scroller.scroll_home(animate=False)
        return True

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        row = self.rows_doc[event.cursor_row]
        self.post_message(DocView.Picked(self.section, row, self.target(row)))

    def fit(
        self, width: int, wrap: str, *, optional: tuple[str, ...] = (), least: int = 30
    ) -> None:
        """Lay the table out in ``width`` cells with column ``wrap`` last, wrapped, taking what is left.

        The other columns get their content width, the widest cut (with ``…``) first, down to
        10 cells, until the wrapped column has ``least`` cells (or a third of the width); if
        that is not enough, ``optional`` columns are left out. The wrapped text is then shown
        whole over as many lines as it needs.
        """
        if wrap not in self.cols:
            return
        pad = 2 * self.cell_padding
        cols = [c for c in self.cols if c != wrap]
        natural = {
            c: max([len(_title(c)), *(cell(c, r.get(c)).cell_len for r in self.rows_doc)])
            for c in cols
        }

        def squeeze(names: list[str]) -> list[int] | None:
            budget = width - pad * (len(names) + 1) - max(least, width // 3)
            level = max([natural[c] for c in names], default=0)
            while level > 10 and sum(min(natural[c], level) for c in names) > budget:
                level -= 1
            widths = [min(natural[c], level) for c in names]
            return widths if sum(widths) <= budget else None

        widths = squeeze(cols)
        if widths is None and optional:
            cols = [c for c in cols if c not in optional]
            widths = squeeze(cols)
        if widths is None:
            widths = [min(natural[c], 10) for c in cols]
        widths.append(max(least // 2, width - pad * (len(cols) + 1) - sum(widths)))
        cols.append(wrap)
        self.clear(columns=True)
        self.cols = cols
        for c, w in zip(cols, widths):
            self.add_column(lit(_title(c)), width=w)
        for r in self.rows_doc:
            row = [cell(c, r.get(c)) for c in cols[:-1]]
            for t in row:
                t.no_wrap, t.overflow = True, "ellipsis"
            long = r.get(wrap)
            last = lit(long, 2000) if _is_scalar(long) else cell(wrap, long)
            last.no_wrap, last.overflow = False, "fold"
            self.add_row(*row, last, height=None)


class DocView(Vertical):
    """A result document as facts, tables and event lists."""

    DEFAULT_CSS = """
    DocView { height: auto; }
    DocView .doc-head { text-style: bold; color: $accent; margin-top: 1; }
    DocView DocTable { height: auto; max-height: 16; }
    DocView EventLinks { height: auto; max-height: 10; }
    DocView .doc-facts { margin-left: 1; }
    """

    @dataclass
    class Picked(Message):
        """A row of a section was chosen; ``target`` is what it opens (``None``: nothing)."""

        section: str
        row: dict[str, Any]
        target: Target | None = None

    def __init__(self, doc: Any, *, depth: int = 0, skip: tuple[str, ...] = (), **kw: Any) -> None:
        super().__init__(**kw)
        self.doc = {k: v for k, v in doc.items() if k not in skip} if isinstance(doc, dict) else doc
        self.depth = depth

    def compose(self) -> ComposeResult:
        doc = self.doc
        if not isinstance(doc, dict):
            doc = {"result": doc}
        facts = [(_title(k), v) for k, v in doc.items() if self._is_fact(k, v)]
        if facts:
            yield Static(
                kv(facts, key_width=max(len(k) for k, _ in facts) + 2), classes="doc-facts"
            )
        for key, value in doc.items():
            if not self._is_fact(key, value):
                yield from self._section(key, value)

    @staticmethod
    def _is_fact(key: str, v: Any) -> bool:
        """Scalars and short lists of scalars are ``key value`` lines; event lists never are (they open)."""
        if _is_scalar(v):
            return True
        if key in EVENT_LIST_KEYS or key.endswith("evidence"):
            return False
        return (
            isinstance(v, (list, tuple))
            and all(_is_scalar(x) for x in v)
            and len(v) <= 8
            and len(fmt(v)) < 200
        )

    def _section(self, key: str, value: Any) -> ComposeResult:
        if isinstance(value, dict):
            if not value:
                return
            if self.depth >= 2:
                yield Label(lit(_title(key)), classes="doc-head")
                yield Static(lit(value, 2000))
                return
            if all(isinstance(v, dict) for v in value.values()):
                # e.g. {"s3:GetObject": {...}, ...}: one row per key
                rows = [{"key": k, **v} for k, v in value.items()]
                yield from self._section(key, rows)
                return
            yield Label(lit(_title(key)), classes="doc-head")
            yield DocView(value, depth=self.depth + 1)
            return
        items = list(value)
        count = f" ({len(items):,})" if len(items) > 1 else ""
        cap = f", first {TABLE_CAP:,} shown" if len(items) > TABLE_CAP else ""
        events = key in EVENT_LIST_KEYS or key.endswith("evidence")
        if len(items) > CHUNK and (not events or all(isinstance(x, dict) for x in items)):
            cap += f"; {CHUNK} rows at a time, ↓ on the last adds more"
        yield Label(Text(_title(key) + count + cap), classes="doc-head")
        if not items:
            yield Static(Text("none", style="dim"), classes="doc-facts")
        elif all(isinstance(x, dict) for x in items):
            yield DocTable(key, items)
        elif key in EVENT_LIST_KEYS or key.endswith("evidence"):
            yield EventLinks([fmt(x) for x in items])
        else:
            yield DocTable(key, [{"value": x} for x in items])
