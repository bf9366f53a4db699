"""The screen every view derives from: thread workers on cancellable sessions, cancel, errors.

``load(Kind, fn)`` runs ``fn(session)`` in a thread worker on a fresh
:meth:`CaseStore.session() <keytrail.store.case.CaseStore.session>` and posts the typed
message it returns (a :class:`~keytrail.tui.messages.Loaded` subclass such as
``BlastLoaded``) back, stamped with the call's generation; the screen handles it in
``on_blast_loaded``. Analysis functions take the session as
their store, so every query they run (``cursor()``, ``query()``, ``scalar()``,
``con``) is on a cursor the session tracks. A newer ``load`` of the same key
interrupts the older call; Escape interrupts every running call of the screen (DuckDB
``interrupt()`` on their cursors; the call stops and raises ``Cancelled``, posted back
as :class:`~keytrail.tui.messages.Stopped`) and with nothing running goes back. Leaving
the screen interrupts its calls too. A worker that fails opens the copyable error modal.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import duckdb
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Static
from textual.worker import Worker, WorkerState, get_current_worker

from keytrail.errors import Cancelled, KeytrailError
from keytrail.tui.messages import Loaded, Stopped

if TYPE_CHECKING:
    from keytrail.store.case import CaseSession, CaseStore
    from keytrail.tui.app import KeytrailApp

L = TypeVar("L", bound=Loaded)


@dataclass(frozen=True)
class ExportScope:
    """The events a view shows, for the export dialog's "events of this view" exports."""

    #: What the dialog says the view is ("filter source:vault", "ASIA1 and what it minted").
    label: str
    #: An SQL condition over the ``events`` columns and its parameters.
    where: tuple[str, list[Any]]


class CaseScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back_or_cancel", "Back/Cancel", id="back"),
        Binding("backspace", "back", "Back", show=False, id="back2"),
    ]

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        #: The session of each key's latest call while it runs (Escape interrupts them all).
        self.sessions: dict[str, CaseSession] = {}
        #: Keys whose call was stopped by Escape or by leaving the screen, in order (not superseded ones).
        self.stopped: list[str] = []
        #: The generation of each key's newest ``load`` call: older answers are dropped.
        self.generations: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def kt(self) -> KeytrailApp:
        return self.app  # type: ignore[return-value]

    @property
    def store(self) -> CaseStore:
        """The case (main-thread work only; workers get their own session)."""
        return self.kt.store

    def export_scope(self) -> ExportScope | None:
        """The events this view shows (``None``: the view is not a list of events)."""
        return None

    def compose_frame(self) -> tuple[Header, Footer]:
        return Header(), Footer()

    def status(self, text: Any) -> None:
        """Show ``text`` in the screen's ``#status`` line when it has one."""
        for w in self.query("#status").results(Static):
            w.update(text)

    # -- workers -------------------------------------------------------------------
    def load(
        self, kind: type[L], fn: Callable[[CaseSession], L], store: CaseStore | None = None
    ) -> Worker[None]:
        """Run ``fn(session)`` in a thread worker and post the ``kind`` message it returns here.

        A call of the same ``kind.key`` still running is interrupted: only the newest answer is
        wanted. The session is of ``store`` when given (the SQL console's sandbox), else of the case.
        """
        key = kind.key
        session = (store or self.store).session()
        with self._lock:
            older = self.sessions.get(key)
            self.sessions[key] = session
            generation = self.generations[key] = self.generations.get(key, 0) + 1
        if older is not None:
            older.interrupt()
        return self.run_worker(
            partial(self._run, kind, session, fn, generation),
            thread=True,
            exclusive=True,
            group=key,
            exit_on_error=False,
            description=key,
        )

    def is_fresh(self, message: Loaded) -> bool:
        """Whether ``message`` answers the newest ``load`` of its key (not one superseded since)."""
        with self._lock:
            return self.generations.get(message.key, 0) == message.generation

    async def _on_message(self, message: Message) -> None:
        """Drop a stale :class:`Loaded` before any ``on_*_loaded`` handler sees it.

        A worker can finish and post just before a newer ``load`` of its key starts; the
        handlers of every screen would otherwise have to compare generations themselves.
        """
        if isinstance(message, Loaded) and not self.is_fresh(message):
            return
        await super()._on_message(message)

    def _run(
        self,
        kind: type[Loaded],
        session: CaseSession,
        fn: Callable[[CaseSession], Loaded],
        generation: int,
    ) -> None:
        key = kind.key
        worker = get_current_worker()
        try:
            if worker.is_cancelled:
                raise Cancelled
            result = session.run(fn, session)
        except Cancelled:
            with self._lock:
                superseded = key in self.sessions and self.sessions[key] is not session
            if not superseded:
                self.post_message(Stopped(key))
            return
        finally:
            with self._lock:
                if self.sessions.get(key) is session:
                    del self.sessions[key]
        if not isinstance(result, kind):  # a programming error: the modal shows it
            raise TypeError(f"{key} worker returned {type(result).__name__}, not {kind.__name__}")
        if not worker.is_cancelled:
            result.generation = generation
            self.post_message(result)

    def busy(self) -> bool:
        """Whether a worker of this screen is pending or running a call."""
        with self._lock:
            calls = bool(self.sessions)
        # A RUNNING worker whose session is gone has returned from its call (its state lags a
        # moment behind): counting it made an Escape pressed just after a page arrived cancel
        # nothing instead of going back.
        return calls or any(w.state == WorkerState.PENDING for w in self.workers)

    def cancel_all(self) -> bool:
        """Interrupt every running call and cancel the workers; ``True`` when something was running."""
        running = self.busy()
        with self._lock:
            sessions = list(self.sessions.values())
            self.sessions.clear()
        for session in sessions:
            session.interrupt()
        self.workers.cancel_node(self)
        return running

    def on_unmount(self) -> None:
        self.cancel_all()  # a screen left mid-analysis must not keep the cores busy

    def on_stopped(self, message: Stopped) -> None:
        """A call stopped on Escape: its thread has returned (the cores are free again)."""
        self.stopped.append(message.key)
        self.status(Text(f"cancelled ({message.key} stopped)", style="dim"))

    def action_back_or_cancel(self) -> None:
        if self.cancel_all():
            self.status(Text("cancelled", style="dim"))
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
        if isinstance(err, (Cancelled, duckdb.InterruptException)):
            self.status(Text("cancelled", style="dim"))
            return
        if isinstance(err, KeytrailError):
            self.status(f"{err.title}: {err.msg}")
        self.kt.show_error(event.worker.description or "query", err)
