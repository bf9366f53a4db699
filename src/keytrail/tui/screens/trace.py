"""Trace: the delegation chain behind one event (:func:`keytrail.analysis.delegation.trace_event`).

Shown as its ``--json`` document: each link with reason, confidence and evidence;
gaps as the engine states them. Any event id in it opens that event.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Label, Static

from keytrail.tui import core
from keytrail.tui.messages import Loaded
from keytrail.tui.screens.base import CaseScreen
from keytrail.tui.widgets.doc_view import DocView
from keytrail.tui.widgets.text import lit


class TraceScreen(CaseScreen):
    TITLE = "Delegation trace"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("r", "raw", "Raw record", id="trace.raw")]

    def __init__(self, event_id: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.event_id = event_id

    def compose(self) -> ComposeResult:
        yield from self.compose_frame()
        yield Label(Text("trace of event ", style="bold") + lit(self.event_id, 200))
        yield VerticalScroll(Static(Text("tracing… (Escape cancels)", style="dim")), id="body")
        yield Static(Text("Enter on a linked event opens it · r raw record · Escape back"), id="status")

    def on_mount(self) -> None:
        trace = core.engine(core.TRACE)
        if trace is None:
            self._show(Static(Text(f"unavailable: {core.TRACE[0]} is not in this build", style="dim")))
            return
        eid = self.event_id
        self.load("trace", lambda cur: core.as_doc(trace(self.store, eid)))

    def _show(self, widget: Any) -> None:
        body = self.query_one("#body", VerticalScroll)
        body.remove_children()
        body.mount(widget)

    def on_loaded(self, message: Loaded) -> None:
        doc = message.data
        first = ("chain", "gaps")  # the answer first, the event's own fields after
        self._show(DocView({k: doc[k] for k in first if k in doc} | {k: v for k, v in doc.items() if k not in first}))

    def action_raw(self) -> None:
        self.kt.open_target("event", self.event_id)
