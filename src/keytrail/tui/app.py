"""The keytrail explorer app: the frame, navigation, the back stack, errors and export.

Screens are pushed onto one stack (Escape or Backspace goes back; Overview is the
root). Every view loads its data in thread workers on its own cursor over a case
opened read-only, so any number of explorers (terminal or served tabs) can run beside
each other and beside ``keytrail`` queries.
"""

from __future__ import annotations

import re
import shlex
import traceback
from pathlib import Path
from typing import Any, ClassVar

from textual import events
from textual.app import App
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from keytrail.safetext import shown
from keytrail.store.case import CaseStore
from keytrail.tui.commands import CaseCommands
from keytrail.tui.idle_gc import IdleCollector
from keytrail.tui.screens.agents import AgentScreen, AgentsScreen
from keytrail.tui.screens.base import CaseScreen, ExportScope
from keytrail.tui.screens.credentials import CredentialScreen, CredentialsScreen
from keytrail.tui.screens.error import ErrorModal
from keytrail.tui.screens.findings import FindingsScreen
from keytrail.tui.screens.help import HelpScreen
from keytrail.tui.screens.overview import OverviewScreen
from keytrail.tui.screens.raw import RawScreen
from keytrail.tui.screens.sql import SqlScreen
from keytrail.tui.screens.timeline import TimelineScreen
from keytrail.tui.screens.trace import TraceScreen
from keytrail.tui.target import Target
from keytrail.tui.widgets.doc_view import DocView


class KeytrailApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "keytrail"
    COMMANDS = App.COMMANDS | {CaseCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1", "goto('help')", "Help", id="help"),
        Binding("question_mark", "goto('help')", "Help", show=False, id="help2"),
        Binding("o", "goto('overview')", "Overview", id="overview"),
        Binding("c", "goto('credentials')", "Credentials", id="credentials"),
        Binding("a", "goto('agents')", "Agents", id="agents"),
        Binding("t", "goto('timeline')", "Timeline", id="timeline"),
        Binding("f", "goto('findings')", "Findings", id="findings"),
        Binding("s", "goto('sql')", "SQL", id="sql"),
        Binding("e", "export", "Export", show=False, id="export"),  # footer: only on a credential
        Binding("q", "quit", "Quit", id="quit"),
    ]

    def __init__(self, case: str | Path, **kw: Any) -> None:
        super().__init__(**kw)
        self.case_path = Path(case)
        self.store = CaseStore.open(self.case_path)  # read-only: never a writer
        self._sql_store: CaseStore | None = None
        self.sub_title = shown(str(self.case_path), 120) + "  ·  times in UTC"
        #: full garbage collections only while the user is idle (:mod:`keytrail.tui.idle_gc`)
        self.idle_gc = IdleCollector(busy=self._loading)

    def get_default_screen(self) -> Screen[Any]:
        return OverviewScreen()

    def sql_store(self) -> CaseStore:
        """The SQL console's case: the same file in the SQL sandbox (opened on first use)."""
        if self._sql_store is None:
            from keytrail.store.sandbox import open_sandbox

            self._sql_store = open_sandbox(self.case_path)
        return self._sql_store

    def on_mount(self) -> None:
        self.idle_gc.start()
        self.set_interval(1.0, self.idle_gc.tick)

    def _loading(self) -> bool:
        return any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in self.workers)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.InputEvent):
            self.idle_gc.touch()
        await super().on_event(event)

    def on_unmount(self) -> None:
        self.idle_gc.stop()
        if self._sql_store is not None:
            self._sql_store.close()
        self.store.close()

    # -- navigation ----------------------------------------------------------------
    def goto(self, view: str) -> None:
        factories = {
            "overview": OverviewScreen,
            "credentials": CredentialsScreen,
            "agents": AgentsScreen,
            "timeline": TimelineScreen,
            "findings": FindingsScreen,
            "sql": SqlScreen,
            "help": HelpScreen,
        }
        if view == "overview":
            while len(self.screen_stack) > 1:
                self.pop_screen()
            return
        if type(self.screen) is factories[view]:
            return
        self.push_screen(factories[view]())

    def action_goto(self, view: str) -> None:
        self.goto(view)

    def open_target(self, kind: str, ident: str) -> None:
        """Open what ``kind``/``ident`` names: an event, a trace, a credential, an agent, a filtered timeline."""
        kind = kind.lower()
        if kind == "event":
            self.push_screen(RawScreen(ident))
        elif kind == "trace":
            self.push_screen(TraceScreen(ident))
        elif kind == "credential":
            self.push_screen(CredentialScreen(ident))
        elif kind == "agent":
            self.push_screen(AgentScreen(ident))
        elif kind == "human":
            self.push_screen(TimelineScreen(shlex.quote(f"human:{ident}")))
        elif kind == "actor":
            self.push_screen(TimelineScreen(shlex.quote(f"actor:{ident}")))
        elif kind == "resource":
            self.push_screen(TimelineScreen(shlex.quote(f"resource:{ident}")))
        elif kind == "timeline":
            self.push_screen(TimelineScreen(shlex.quote(ident)))
        else:
            self.notify(f"nothing to open for {kind}", markup=False)

    def open(self, target: Target) -> None:
        """Open a typed target; a ranked credential row shows its score at once."""
        if target.kind == "credential" and target.rank is not None:
            self.push_screen(CredentialScreen(target.ident, rank=target.rank))
            return
        self.open_target(target.kind, target.ident)

    def on_doc_view_picked(self, message: DocView.Picked) -> None:
        """A row was chosen: open the target the table gave it."""
        if message.target is not None:
            self.open(message.target)

    # -- errors and export ---------------------------------------------------------
    def on_delivery_complete(self, event: events.DeliveryComplete) -> None:
        """Served: the export dialog's file reached the browser."""
        where = f" to {event.path}" if event.path else " (browser download)"
        self.notify(f"report written{where}", markup=False)

    def on_delivery_failed(self, event: events.DeliveryFailed) -> None:
        self.show_error("export", event.exception)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.show_error(event.worker.description or "task", event.worker.error)

    def show_error(self, what: str, err: BaseException) -> None:
        detail = "".join(traceback.format_exception(type(err), err, err.__traceback__))
        title = getattr(err, "title", None) or type(err).__name__
        self.push_screen(ErrorModal(f"{what} failed: {title}", f"{err}\n\n{detail}"))

    def export_report(
        self, credentials: list[str] | None, scope: ExportScope | None = None
    ) -> None:
        """Open the export dialog for ``credentials`` (or the case): report or data, any format."""
        try:
            from keytrail.tui.screens.export import ExportModal  # needs keytrail.report
        except ImportError as e:
            self.notify(f"export unavailable: {e}", severity="warning", markup=False)
            return
        stem = (
            "keytrail-report"
            if not credentials
            else "keytrail-" + re.sub(r"[^A-Za-z0-9_.-]", "_", credentials[0])[:60]
        )
        self.push_screen(ExportModal(self.store, credentials, stem, web=self.is_web, scope=scope))

    def action_export(self) -> None:
        """``e`` outside a credential: the case's report, or the events of this view."""
        screen = self.screen
        self.export_report(None, screen.export_scope() if isinstance(screen, CaseScreen) else None)


def run(case: str | Path) -> int:
    """Run the explorer in the terminal; returns the exit code."""
    app = KeytrailApp(case)
    app.run()
    return app.return_code or 0
