"""Timeline: every event, filtered, one SQL page at a time.

The table holds one page (:data:`~keytrail.tui.queries.PAGE_SIZE` rows) and the status
line says which rows of how many are shown. Running off the bottom or top of the page
fetches the neighbouring page by keyset (``(time, event_uid)``), so scrolling stays
smooth on a million events; ``]``/``[`` page, ``g``/``G`` jump to the first/last page.
The filter line takes ``source: action: cred: agent: human: actor: resource: file:
outcome: since: until:`` terms plus free text (searched in the raw record).
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Input, Static

from keytrail.safetext import shown
from keytrail.tui.messages import CountLoaded, FilterExpanded, PageLoaded
from keytrail.tui.queries import (
    PAGE_SIZE,
    TIMELINE_COLUMNS,
    Page,
    TimelineFilter,
    timeline_count,
    timeline_last_page,
    timeline_page,
)
from keytrail.tui.screens.base import CaseScreen, ExportScope
from keytrail.tui.widgets.paged_table import PagedTable
from keytrail.tui.widgets.text import lit, short_credential

if TYPE_CHECKING:
    from keytrail.store.case import CaseSession

HEADERS = (
    "time (UTC)",
    "source",
    "action",
    "outcome",
    "actor",
    "credential",
    "agent",
    "human",
    "source IP",
    "target",
    "event id",
)
OUTCOME_STYLE = {"denied": "bold red", "failure": "red"}
#: The time column fits a sub-second time (Vault and OTLP log microseconds: 27 characters);
#: the agent column fits a typical agent id such as ``ledger-reconciler``, the human column
#: an e-mail such as ``maria.chen@finco.example``, the source IP an IPv4 address.
WIDTHS = (27, 10, 26, 8, 24, 22, 20, 26, 15, 40, 38)
#: The credential column: Vault HMAC ids show as ``hmac:<hex>…`` (the constant prefix shortened).
CRED_COL = HEADERS.index("credential")


class TimelineScreen(CaseScreen):
    TITLE = "Timeline"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "focus_filter", "Filter", id="timeline.filter"),
        Binding("right_square_bracket", "page(1)", "Next page", id="timeline.next"),
        Binding("left_square_bracket", "page(-1)", "Prev page", id="timeline.prev"),
        Binding("g", "first", "First", show=False, id="timeline.first"),
        Binding("G", "last", "Last", show=False, id="timeline.last"),
        Binding("d", "trace", "Trace", id="timeline.trace"),
        Binding("r", "raw", "Raw", id="timeline.raw"),
        Binding("y", "copy_credential", "Copy credential", id="timeline.copy"),
        Binding("m", "minted", "± minted", id="timeline.minted"),
    ]

    def __init__(self, filter_line: str = "", **kw: Any) -> None:
        super().__init__(**kw)
        self.filter_line = filter_line
        self.flt = TimelineFilter()
        self.page_data: Page | None = None
        self.total: int | None = None
        self._pending_cursor = 0

    def compose(self) -> ComposeResult:
        yield from self.compose_frame()
        yield Input(
            value=self.filter_line,
            id="filter",
            placeholder="filter: source:vault action:s3:* cred:ASIA… family:… agent:… since:2024-05-01T00:00Z",
        )
        yield Static(id="filter-error")
        yield PagedTable(id="events", cursor_type="row", zebra_stripes=True)
        yield Static(id="status")

    def on_mount(self) -> None:
        table = self.query_one(PagedTable)
        for h, w in zip(HEADERS, WIDTHS):
            table.add_column(h, width=w)
        if self.apply_filter(self.filter_line):
            table.focus()
        else:
            self.query_one("#filter", Input).focus()

    # -- loading -------------------------------------------------------------------
    def apply_filter(self, line: str) -> bool:
        """Load the events ``line`` selects; ``False`` (error shown under the line) if it does not parse."""
        error = self.query_one("#filter-error", Static)
        try:
            self.flt = TimelineFilter.parse(line)
        except ValueError as e:
            error.update(
                Text(
                    f"{e}  ·  the rows below are still those of the last valid filter", style="red"
                )
            )
            error.display = True
            self.status(Text(str(e), style="red"))
            return False
        error.display = False
        self.filter_line = line
        self.total = None
        flt = self.flt
        self.status(Text("loading… (Escape cancels)", style="dim"))
        # unique id prefixes made whole first
        self.load(FilterExpanded, lambda s: FilterExpanded(flt.expanded(s.con)))
        return True

    def _load_filtered(self, flt: TimelineFilter) -> None:
        self.flt = flt
        self.load(PageLoaded, lambda s: PageLoaded(timeline_page(s.con, flt)))
        self.load(CountLoaded, lambda s: CountLoaded(timeline_count(s.con, flt)))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Apply the line and go to the rows; an invalid line keeps focus in the input."""
        event.stop()
        if self.apply_filter(event.value):
            self.query_one(PagedTable).focus()

    def action_minted(self) -> None:
        """Switch between ``family:ID`` (with every credential minted from it) and ``cred:ID`` (its own)."""
        terms = TimelineFilter.parse(self.filter_line).terms  # as typed (a prefix stays a prefix)
        if "family" in terms:
            old, new = f"family:{terms['family']}", f"cred:{terms['family']}"
        elif "cred" in terms:
            old, new = f"cred:{terms['cred']}", f"family:{terms['cred']}"
        else:
            self.notify("m needs a cred: or family: term in the filter", markup=False)
            return
        line = " ".join(new if w == old else shlex.quote(w) for w in shlex.split(self.filter_line))
        self.query_one("#filter", Input).value = line
        self.apply_filter(line)

    def on_filter_expanded(self, message: FilterExpanded) -> None:
        self._load_filtered(message.flt)

    def on_count_loaded(self, message: CountLoaded) -> None:
        self.total = message.total
        self._update_status()

    def on_page_loaded(self, message: PageLoaded) -> None:
        page = message.page
        if page.rows or self.page_data is None or page.offset == 0:
            self._show(page)
        self._update_status()

    def _show(self, page: Page) -> None:
        self.page_data = page
        table = self.query_one(PagedTable)
        table.clear()
        for row in page.rows:
            cells = [lit(v, 200) for v in row[:-1]]
            cells[CRED_COL] = short_credential(row[CRED_COL], WIDTHS[CRED_COL])
            cells[3].stylize(OUTCOME_STYLE.get(str(row[3]), ""))
            for c in (
                cells
            ):  # one line each, cut at the column: Rich skips word-wrapping 2,000 cells a page
                c.no_wrap, c.overflow = True, "ellipsis"
            table.add_row(*cells, key=row[-1])
        if page.rows:
            table.move_cursor(
                row=min(self._pending_cursor, len(page.rows) - 1)
                if self._pending_cursor >= 0
                else len(page.rows) - 1
            )

    def _update_status(self) -> None:
        page = self.page_data
        total = "counting…" if self.total is None else f"{self.total:,}"
        if page is None or not page.rows:
            self.status(Text(f"no events match ({total})" if self.total == 0 else f"… of {total}"))
            return
        first = page.offset + 1
        self.status(
            Text(
                f"events {first:,}–{first + len(page.rows) - 1:,} of {total}  ·  at most {PAGE_SIZE:,} rows held "
                f"(one page); ↓ past the end loads the next  ·  Enter raw record · d trace · y copy credential · / filter"
            )
        )

    # -- paging --------------------------------------------------------------------
    def on_paged_table_edge(self, message: PagedTable.Edge) -> None:
        self.action_page(message.direction)

    def action_page(self, direction: int) -> None:
        page = self.page_data
        if page is None or not page.rows:
            return
        flt = self.flt
        if direction > 0:
            if self.total is not None and page.offset + len(page.rows) >= self.total:
                return
            key, offset = page.last_key, page.offset + len(page.rows)
            self._pending_cursor = 0

            def fetch(s: CaseSession) -> PageLoaded:
                p = timeline_page(s.con, flt, after=key)
                p.offset = offset
                return PageLoaded(p)
        else:
            if page.offset == 0:
                return
            key, current = page.first_key, page.offset
            self._pending_cursor = -1

            def fetch(s: CaseSession) -> PageLoaded:
                p = timeline_page(s.con, flt, before=key)
                p.offset = max(
                    0, current - len(p.rows)
                )  # exactly the rows before this page's first
                return PageLoaded(p)

        self.load(PageLoaded, fetch)

    def action_first(self) -> None:
        self._pending_cursor = 0
        flt = self.flt
        self.load(PageLoaded, lambda s: PageLoaded(timeline_page(s.con, flt)))

    def action_last(self) -> None:
        flt = self.flt
        self._pending_cursor = -1

        self.load(PageLoaded, lambda s: PageLoaded(timeline_last_page(s.con, flt)))

    def export_scope(self) -> ExportScope:
        """The events the current (valid, id-prefix expanded) filter selects."""
        return ExportScope(
            f"filter {self.filter_line}" if self.filter_line.strip() else "no filter",
            self.flt.where(),
        )

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    # -- opening -------------------------------------------------------------------
    def _selected(self) -> str | None:
        table = self.query_one(PagedTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return str(key) if key is not None else None

    def on_data_table_row_selected(self, event: PagedTable.RowSelected) -> None:
        event.stop()
        self.action_raw()

    def action_raw(self) -> None:
        uid = self._selected()
        if uid:
            self.kt.open_target("event", uid)

    def action_copy_credential(self) -> None:
        """Copy the selected row's full credential id (the column may show it shortened)."""
        page, table = self.page_data, self.query_one(PagedTable)
        if page is None or not table.row_count:
            return
        cred = page.rows[table.cursor_row][CRED_COL]
        if not cred:
            self.notify("this event has no credential", markup=False)
            return
        self.app.copy_to_clipboard(str(cred))
        self.notify(f"copied {shown(str(cred), 200)}", markup=False)

    def action_trace(self) -> None:
        uid = self._selected()
        if uid:
            self.kt.open_target("trace", uid)


assert len(HEADERS) == len(TIMELINE_COLUMNS) - 1
