"""A row table that asks for the neighbouring page when the cursor runs off an edge.

The timeline never holds more than one SQL page (:data:`~keytrail.tui.queries.PAGE_SIZE`
rows); moving past the last row posts :class:`PagedTable.Edge` so the screen can fetch
the next page in a worker, which keeps scrolling continuous on any case size.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rich.text import Text
from textual.geometry import Size
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey


class PagedTable(DataTable[Text]):
    @dataclass
    class Edge(Message):
        """The cursor tried to leave the page: ``direction`` is +1 (down) or -1 (up)."""

        direction: int

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        """Skip Textual's measuring of every new cell when nothing depends on it.

        With fixed-width columns, one-line rows and no row labels, the measured widths are
        never used, yet measuring a 200-row page of 10 columns took ~200 ms of every
        page turn (profiled); with an auto-width column or row label, measure as usual.
        """
        if any(c.auto_width for c in self.columns.values()) or any(
            r.auto_height or r.label is not None for r in self.rows.values()
        ):
            super()._update_dimensions(new_rows)
            return
        header = self.header_height if self.show_header else 0  # what the base method ends with
        self.virtual_size = Size(
            sum(c.get_render_width(self) for c in self.columns.values()),
            self._total_row_height + header,
        )

    def action_cursor_down(self) -> None:
        if self.row_count and self.cursor_row >= self.row_count - 1:
            self.post_message(self.Edge(+1))
            return
        super().action_cursor_down()

    def action_cursor_up(self) -> None:
        if self.row_count and self.cursor_row <= 0:
            self.post_message(self.Edge(-1))
            return
        super().action_cursor_up()

    def action_page_down(self) -> None:
        if self.row_count and self.cursor_row >= self.row_count - 1:
            self.post_message(self.Edge(+1))
            return
        super().action_page_down()

    def action_page_up(self) -> None:
        if self.row_count and self.cursor_row <= 0:
            self.post_message(self.Edge(-1))
            return
        super().action_page_up()
