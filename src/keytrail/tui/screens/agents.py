"""Agents: owner, humans who delegated, credentials used; one agent opened with its baseline.

The list comes from the ``principals``, ``inventory_agents``, ``links`` and ``events``
tables; baseline and drift are :func:`keytrail.analysis.baseline.baseline`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Label, Sparkline, Static

from keytrail.safetext import shown
from keytrail.tui import core
from keytrail.tui.messages import (
    ActivityLoaded,
    AgentsLoaded,
    BaselineLoaded,
    IdentitiesLoaded,
)
from keytrail.tui.queries import activity, agents, linked_identities
from keytrail.tui.screens.base import CaseScreen
from keytrail.tui.widgets.doc_view import DocTable, DocView
from keytrail.tui.widgets.text import fmt, lit


class AgentsScreen(CaseScreen):
    TITLE = "Agents"

    def compose(self) -> ComposeResult:
        yield from self.compose_frame()
        yield VerticalScroll(id="list")
        yield Static(id="status")

    def on_mount(self) -> None:
        self.load(AgentsLoaded, lambda s: AgentsLoaded(agents(s.con)))

    def on_agents_loaded(self, message: AgentsLoaded) -> None:
        rows = message.rows
        box = self.query_one("#list", VerticalScroll)
        box.remove_children()
        if not rows:
            box.mount(
                Static(Text("no agents in this case (no agent logs, no inventory)", style="dim"))
            )
        else:
            box.mount(DocTable("agents", rows, id="agents", columns=list(rows[0])))
            self.query_one(DocTable).focus()
        self.status(Text(f"{len(rows):,} agents · Enter opens (baseline, drift, identities)"))


class AgentScreen(CaseScreen):
    TITLE = "Agent"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("t", "timeline", "Its events", id="agent.timeline")
    ]

    def __init__(self, agent_id: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.agent_id = agent_id

    def compose(self) -> ComposeResult:
        yield from self.compose_frame()
        with VerticalScroll():
            yield Label(Text("agent ", style="bold") + lit(self.agent_id, 200))
            yield Label("humans and credentials (graph edges)", classes="head")
            yield DataTable(id="ids", cursor_type="row")
            yield Label("activity", classes="head")
            yield Sparkline([], id="spark")
            yield Static(id="activity")
            yield Label("baseline and drift", classes="head")
            yield VerticalScroll(Static(Text("computing…", style="dim")), id="baseline")
        yield Static(id="status")

    def on_mount(self) -> None:
        self.sub_title = shown(self.agent_id, 100)
        aid = self.agent_id
        self.load(IdentitiesLoaded, lambda s: IdentitiesLoaded(linked_identities(s.con, aid)))
        self.load(ActivityLoaded, lambda s: ActivityLoaded(activity(s.con, "agent_id", [aid])))
        base = core.engine(core.BASELINE)
        if base is None:
            self._baseline(
                Static(Text(f"unavailable: {core.BASELINE[0]} is not in this build", style="dim"))
            )
        else:
            self.load(BaselineLoaded, lambda s: BaselineLoaded(core.as_doc(base(s, aid))))
        self.status(
            Text("t its events · Enter on an edge opens the human or credential · Escape back")
        )

    def _baseline(self, widget: Any) -> None:
        box = self.query_one("#baseline", VerticalScroll)
        box.remove_children()
        box.mount(widget)

    def on_identities_loaded(self, message: IdentitiesLoaded) -> None:
        self.edges = message.edges
        table = self.query_one("#ids", DataTable)
        table.clear(columns=True)
        table.add_columns("dir", "edge", "kind", "id", "confidence", "reason", "events")
        for row in message.edges:
            table.add_row(*[lit(v, 80) for v in row])

    def on_activity_loaded(self, message: ActivityLoaded) -> None:
        data = message.buckets
        self.query_one("#spark", Sparkline).data = [n for _, n in data] or [0]
        self.query_one("#activity", Static).update(
            Text(f"{sum(n for _, n in data):,} events, {fmt(data[0][0])} .. {fmt(data[-1][0])}")
            if data
            else Text("no timed events name this agent", style="dim")
        )

    def on_baseline_loaded(self, message: BaselineLoaded) -> None:
        doc = message.doc
        first = ("departures",)  # the drift first, the baseline after
        self._baseline(
            DocView(
                {k: doc[k] for k in first if k in doc}
                | {k: v for k, v in doc.items() if k not in first}
            )
        )

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id != "ids":
            return
        event.stop()
        _, _, kind, other, *_ = self.edges[event.cursor_row]
        self.kt.open_target(str(kind), str(other))

    def action_timeline(self) -> None:
        self.kt.open_target("timeline", f"agent:{self.agent_id}")
