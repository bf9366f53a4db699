"""The export dialog behind ``e``: pick a format, see (and edit) the file it goes to, write it.

Every choice calls the same core as the command line: reports go through
:func:`keytrail.report.write.write_report` (``keytrail report -o``), data exports through
:func:`keytrail.report.exports.export` (``keytrail export``); nothing is rendered here.
The file is written in a thread worker; a failure (the file exists, no Chromium for a
PDF, a directory that does not exist) is shown under the path and the dialog stays open
to try another name or format. Served in a browser, the file is built in a temporary
directory and handed to the browser as a download under the name shown.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar, TextIO

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from keytrail.errors import KeytrailError
from keytrail.report import exports, write

if TYPE_CHECKING:
    from keytrail.store.case import CaseStore
    from keytrail.tui.screens.base import ExportScope


@dataclass(frozen=True)
class Choice:
    """One line of the dialog: a report format or a data export of the whole case."""

    fmt: str
    label: str
    #: ``report`` (the blast-radius report of the view's credentials) or ``export`` (case data).
    kind: str = "report"
    mime: str = "application/octet-stream"
    #: Only the events the view shows (a timeline filter, a credential and what it minted).
    scoped: bool = False

    @property
    def extension(self) -> str:
        return write.EXTENSION[self.fmt] if self.kind == "report" else exports.extension(self.fmt)

    @property
    def key(self) -> str:
        """The option's id (a format can be offered for the view and for the whole case)."""
        return self.fmt + ("-view" if self.scoped else "")


CHOICES = (
    Choice("html", "HTML report (opens in any browser)", mime="text/html"),
    Choice("pdf", "PDF report (printed by headless Chromium)", mime="application/pdf"),
    Choice("md", "Markdown report", mime="text/markdown"),
    Choice("json", "JSON report document", mime="application/json"),
    Choice("timesketch", "Timesketch JSONL: every event of the case", "export"),
    Choice("ocsf", "OCSF 1.1 JSONL: every event of the case", "export"),
    Choice("csv", "CSV: every event of the case", "export", "text/csv"),
)
#: The exports that can keep only the events of the view (``keytrail.report.exports.SCOPED_FORMATS``).
VIEW_CHOICES = (
    Choice("csv", "CSV: the events of this view", "export", "text/csv", scoped=True),
    Choice("timesketch", "Timesketch JSONL: the events of this view", "export", scoped=True),
)


def choices(scope: ExportScope | None) -> tuple[Choice, ...]:
    """The dialog's lines: the reports, the view's events when the view lists events, the case's."""
    return CHOICES[:4] + (VIEW_CHOICES if scope else ()) + CHOICES[4:]


def free_name(directory: Path, stem: str, ext: str) -> Path:
    """``directory/stem+ext``, or ``stem-1+ext``, ``stem-2+ext``... whichever does not exist yet.

    Only a proposal: the write itself never replaces a file that appears meanwhile
    (:func:`keytrail.report.exports.write_atomically` with ``overwrite=False``).
    """
    for n in range(10_000):
        candidate = directory / (f"{stem}{ext}" if n == 0 else f"{stem}-{n}{ext}")
        if not candidate.exists():
            return candidate.resolve()
    return (directory / f"{stem}{ext}").resolve()


def write_choice(
    store: CaseStore,
    choice: Choice,
    path: Path,
    credentials: list[str] | None,
    scope: ExportScope | None = None,
) -> str:
    """Write ``choice`` to ``path`` with the command line's core; returns what was written."""
    if choice.kind == "report":
        doc = write.write_report(store, path, choice.fmt, credentials=credentials)
        return f"{choice.fmt} report ({len(doc['credentials'])} credentials)"
    where = scope.where if choice.scoped and scope else None
    n = exports.export(store, path, choice.fmt, events_where=where)
    return f"{n:,} rows ({choice.fmt}{', this view' if where else ''})"


class ExportModal(ModalScreen[None]):
    """Choose a format (↑/↓), edit the path if needed, Enter writes; errors stay in view."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Cancel", id="export.cancel"),
    ]
    DEFAULT_CSS = """
    ExportModal { align: center middle; }
    ExportModal > Vertical { width: 90%; max-width: 100; height: auto; max-height: 90%;
                             border: thick $accent; background: $surface; padding: 0 1; }
    ExportModal OptionList { height: auto; max-height: 12; }
    ExportModal #export-error { color: $error; }
    ExportModal #export-hint { color: $text-muted; }
    """

    def __init__(
        self,
        store: CaseStore,
        credentials: list[str] | None,
        stem: str,
        web: bool,
        scope: ExportScope | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.store = store
        self.credentials = credentials
        self.scope = scope
        self.choices = choices(scope)
        self.stem = stem
        self.web = web
        self.printer = self._has_printer()
        self.choice = CHOICES[0]
        #: The last file written (tests and the notification read it).
        self.written: Path | None = None

    @staticmethod
    def _has_printer() -> bool:
        from keytrail.report.pdf import find_browser

        return find_browser() is not None

    def compose(self) -> ComposeResult:
        what = "credential " + self.credentials[0] if self.credentials else "the case"
        with Vertical():
            view = Text(f" · this view: {self.scope.label}", style="dim") if self.scope else ""
            yield Label(Text("Export ", style="bold") + Text(what) + view, id="export-title")
            options = []
            for c in self.choices:
                missing = c.fmt == "pdf" and not self.printer
                label = c.label + (" - needs Chromium, not found" if missing else "")
                options.append(Option(label, id=c.key, disabled=missing))
            yield OptionList(*options, id="formats")
            yield Label("file", classes="head")
            yield Input(str(self._proposed(self.choice)), id="path")
            yield Static(id="export-error")
            yield Static(
                Text("↑/↓ format · Enter writes · Tab edits the file name · Escape cancels"),
                id="export-hint",
            )

    def on_mount(self) -> None:
        formats = self.query_one("#formats", OptionList)
        formats.highlighted = 0
        formats.focus()
        self.query_one("#export-error", Static).display = False

    def _proposed(self, choice: Choice) -> Path:
        stem = self.stem + ("-view" if choice.scoped else "")
        if self.web:
            return Path(stem + choice.extension)
        return free_name(Path.cwd(), stem, choice.extension)

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        """A new format: the proposed file name follows (a name the user typed keeps its stem)."""
        choice = next(c for c in self.choices if c.key == event.option.id)
        path = self.query_one("#path", Input)
        if path.value in ("", str(self._proposed(self.choice))):
            path.value = str(self._proposed(choice))
        elif path.value.endswith(self.choice.extension):
            path.value = path.value[: -len(self.choice.extension)] + choice.extension
        self.choice = choice

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.start()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.start()

    def error(self, text: str) -> None:
        err = self.query_one("#export-error", Static)
        err.update(Text(text))
        err.display = bool(text)

    def start(self) -> None:
        value = self.query_one("#path", Input).value.strip()
        if not value:
            self.error("give a file name")
            return
        self.error("")
        self.query_one("#export-hint", Static).update(Text(f"writing {value}…", style="bold"))
        self.write_file(self.choice, value)

    @work(thread=True, exclusive=True, group="export", exit_on_error=False)
    def write_file(self, choice: Choice, value: str) -> None:
        try:
            if self.web:
                self._deliver(choice, Path(value).name)
                return
            path = Path(value).expanduser()
            path = path if path.is_absolute() else (Path.cwd() / path)
            what = write_choice(self.store, choice, path, self.credentials, self.scope)
        except KeytrailError as e:
            self.app.call_from_thread(self._failed, f"{e.title}: {e.msg}")
        except Exception as e:  # noqa: BLE001 - never a crash: the responder reads why, retries
            self.app.call_from_thread(self._failed, f"{type(e).__name__}: {e}")
        else:
            self.app.call_from_thread(self._done, path.resolve(), what)

    def _deliver(self, choice: Choice, name: str) -> None:
        """Served: build the file in a temporary directory and hand it to the browser."""
        tmp = Path(tempfile.mkdtemp(prefix="keytrail-export-"))
        try:
            write_choice(self.store, choice, tmp / name, self.credentials, self.scope)
            # An open file outlives the directory's removal; Textual closes it once delivered.
            # Text goes as text: Textual's local (non-browser) delivery of a binary file opens
            # its target in text mode and fails; only a PDF needs the binary route.
            if choice.fmt == "pdf":
                handle: BinaryIO | TextIO = open(tmp / name, "rb")  # noqa: SIM115
            else:
                handle = open(tmp / name, encoding="utf-8", newline="")  # noqa: SIM115
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.app.call_from_thread(self._hand_over, handle, name, choice.mime)

    def _hand_over(self, handle: BinaryIO | TextIO, name: str, mime: str) -> None:
        """On the app's thread: start the delivery (the app notifies when it completes), close."""
        deliver: Any = self.app.deliver_binary if "b" in handle.mode else self.app.deliver_text
        deliver(
            handle,
            save_directory=Path.cwd(),  # used only where no browser takes the download
            save_filename=name,
            mime_type=mime,
            name="report",
        )
        if self.is_current:
            self.dismiss()

    def _failed(self, text: str) -> None:
        if not self.is_current:  # closed with Escape while writing
            self.app.notify(f"export failed: {text}", severity="error", markup=False)
            return
        self.query_one("#export-hint", Static).update(Text("fix the name or pick another format"))
        self.error(text)
        self.query_one("#path", Input).focus()

    def _done(self, path: Path, what: str) -> None:
        self.written = path
        self.app.notify(f"report written to {path} ({what})", markup=False)
        if self.is_current:  # not if closed with Escape while writing (the file is written)
            self.dismiss()

    def action_close(self) -> None:
        self.workers.cancel_group(self, "export")
        self.dismiss()
