"""Trace: the delegation chain behind one event (:func:`keytrail.analysis.delegation.trace_event`).

Shown as its ``--json`` document: each link with reason, confidence and evidence;
gaps as the engine states them. Any event id in it opens that event. A link's reason
is a sentence (often naming a 76-character Vault HMAC), longer than a terminal row: the
chain table puts it last, in the width the compact columns leave, wrapped over as many
lines as it needs (refitted when the terminal is resized); the highlighted link is also
shown whole, with its evidence, in a pane under the trace.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Label, Static

from keytrail.tui import core
from keytrail.tui.messages import TraceLoaded
from keytrail.tui.screens.base import CaseScreen
from keytrail.tui.widgets.doc_view import DocTable, DocView
from keytrail.tui.widgets.text import fmt, kv, lit

#: Evidence ids listed in the link pane before "… and N more".
EVIDENCE_SHOWN = 3


def link_detail(link: dict[str, Any]) -> list[tuple[str, Any]]:
    """The ``key value`` lines of one chain link for the detail pane (reason whole)."""
    evidence = [fmt(e) for e in link.get("evidence") or []]
    more = (
        f", … and {len(evidence) - EVIDENCE_SHOWN:,} more" if len(evidence) > EVIDENCE_SHOWN else ""
    )
    lines: list[tuple[str, Any]] = [
        ("link", f"{fmt(link.get('kind'))} {fmt(link.get('id'))}"),
        ("label", link.get("label")),
        ("confidence", link.get("confidence")),
        ("reason", link.get("reason")),
    ]
    if evidence:
        lines.append(
            (
                "evidence",
                f"{len(evidence):,} events: " + ", ".join(evidence[:EVIDENCE_SHOWN]) + more,
            )
        )
    return lines


class TraceScreen(CaseScreen):
    TITLE = "Delegation trace"
    DEFAULT_CSS = """
    TraceScreen #link { height: auto; max-height: 12; border-top: solid $accent;
                        padding: 0 1; display: none; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("r", "raw", "Raw record", id="trace.raw")]

    def __init__(self, event_id: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.event_id = event_id

    def compose(self) -> ComposeResult:
        yield from self.compose_frame()
        yield Label(Text("trace of event ", style="bold") + lit(self.event_id, 200))
        yield VerticalScroll(Static(Text("tracing… (Escape cancels)", style="dim")), id="body")
        yield Static(id="link")
        yield Static(
            Text(
                "↑↓ a link (shown whole below) · Enter on a linked event opens it · r raw record · Escape back"
            ),
            id="status",
        )

    def on_mount(self) -> None:
        trace = core.engine(core.TRACE)
        if trace is None:
            self._show(
                Static(Text(f"unavailable: {core.TRACE[0]} is not in this build", style="dim"))
            )
            return
        eid = self.event_id
        self.load(TraceLoaded, lambda s: TraceLoaded(core.as_doc(trace(s, eid))))

    def _show(self, widget: Any) -> Any:
        body = self.query_one("#body", VerticalScroll)
        body.remove_children()
        return body.mount(widget)

    async def on_trace_loaded(self, message: TraceLoaded) -> None:
        doc = message.doc
        first = ("chain", "gaps")  # the answer first, the event's own fields after
        # Await the mount: focusing before the chain table exists left ↑/↓ with nothing to move.
        await self._show(
            DocView(
                {k: doc[k] for k in first if k in doc}
                | {k: v for k, v in doc.items() if k not in first}
            )
        )
        self._fit_chain()
        self.call_after_refresh(self._focus_chain)

    def _chain(self) -> DocTable | None:
        return next((t for t in self.query(DocTable) if t.section == "chain"), None)

    def _fit_chain(self) -> None:
        """The reason column gets the width the other columns leave, wrapped (never cut off)."""
        table = self._chain()
        if table is not None:
            # the body's width less its own and the table's vertical scrollbars
            table.fit(
                self.query_one("#body", VerticalScroll).size.width - 4,
                "reason",
                optional=("label",),
            )

    def on_resize(self) -> None:
        self.call_after_refresh(self._fit_chain)

    def _focus_chain(self) -> None:
        """Focus the chain so ↑/↓ walk its links (and the pane shows the highlighted one)."""
        table = self._chain()
        if table is not None:
            table.focus()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        table = event.data_table
        if (
            not isinstance(table, DocTable)
            or table.section != "chain"
            or not 0 <= event.cursor_row < len(table.rows_doc)
        ):
            return
        pane = self.query_one("#link", Static)
        pane.update(kv(link_detail(table.rows_doc[event.cursor_row]), key_width=12))
        pane.display = True

    def action_raw(self) -> None:
        self.kt.open_target("event", self.event_id)
