"""The screen every view derives from: thread workers with their own cursors, cancel, errors.

``load(key, fn)`` runs ``fn(cursor)`` in a thread worker (``exclusive`` per ``key``, so a
newer request supersedes an older one) on a fresh ``store.cursor()``, and posts
:class:`~keytrail.tui.messages.Loaded` back. Escape interrupts every running cursor of
the screen (DuckDB ``interrupt()``) and cancels its workers; with nothing running it
goes back. A worker that fails opens the copyable error modal.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import duckdb
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Header, Static
from textual.worker import Worker, WorkerState, get_current_worker

from keytrail.errors import KeytrailError
from keytrail.tui.messages import Loaded

if TYPE_CHECKING:
    from keytrail.store.case import CaseStore
    from keytrail.tui.app import KeytrailApp


class CaseScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back_or_cancel", "Back/Cancel", id="back"),
        Binding("backspace", "back", "Back", show=False, id="back2"),
    ]

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._cursors: set[duckdb.DuckDBPyConnection] = set()
        self._cursor_lock = threading.Lock()

    @property
    def kt(self) -> KeytrailApp:
        return self.app  # type: ignore[return-value]

    @property
    def store(self) -> CaseStore:
        return self.kt.store

    def compose_frame(self) -> tuple[Header, Footer]:
        return Header(), Footer()

    def status(self, text: Any) -> None:
        """Show ``text`` in the screen's ``#status`` line when it has one."""
        for w in self.query("#status").results(Static):
            w.update(text)

    # -- workers -------------------------------------------------------------------
    def load(self, key: str, fn: Callable[[duckdb.DuckDBPyConnection], Any]) -> Worker[None]:
        """Run ``fn(cursor)`` in a thread worker and post ``Loaded(key, result)`` to this screen."""
        return self.run_worker(lambda: self._run(key, fn), thread=True, exclusive=True, group=key,
                               exit_on_error=False, description=key)

    def _run(self, key: str, fn: Callable[[duckdb.DuckDBPyConnection], Any]) -> None:
        worker = get_current_worker()
        cur = self.store.cursor()
        with self._cursor_lock:
            self._cursors.add(cur)
        try:
            result = fn(cur)
        finally:
            with self._cursor_lock:
                self._cursors.discard(cur)
            cur.close()
        if not worker.is_cancelled:
            self.post_message(Loaded(key, result))

    def busy(self) -> bool:
        return any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in self.workers)

    def cancel_all(self) -> bool:
        """Interrupt running queries and cancel workers; ``True`` when something was running."""
        running = self.busy()
        with self._cursor_lock:
            for cur in list(self._cursors):
                try:
                    cur.interrupt()
                except duckdb.Error:
                    pass
        self.workers.cancel_node(self)
        return running

    def action_back_or_cancel(self) -> None:
        if self.cancel_all():
            self.status("cancelled")
            self.notify("query cancelled", markup=False)
            return
        self.action_back()

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR or event.worker.error is None:
            return
        err = event.worker.error
        if isinstance(err, duckdb.InterruptException) or "INTERRUPT" in str(err).upper():
            self.status("cancelled")
            return
        if isinstance(err, KeytrailError):
            self.status(f"{err.title}: {err.msg}")
        self.kt.show_error(event.worker.description or "query", err)
