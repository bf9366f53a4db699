"""Raw record: the stored JSON of one event (secrets masked at ingest), or with ``v`` the original.

The normalised fields are shown above the record so a responder can check every
column against the line it came from (file path, record number, byte offset). The case holds
no secret values; ``v`` reads the original record back from the evidence file
(:mod:`keytrail.ingest.reveal`: path and SHA-256 checked first) and says plainly when it cannot.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static, TextArea

from keytrail.redact import mask_record, mask_secrets
from keytrail.tui.messages import EventLoaded, OriginalLoaded
from keytrail.tui.queries import event_record
from keytrail.tui.screens.base import CaseScreen
from keytrail.tui.widgets.text import kv, lit_block

FIELDS = (
    "event_uid",
    "source_event_id",
    "source",
    "format",
    "file_path",
    "record_no",
    "byte_offset",
    "time",
    "time_raw",
    "action",
    "outcome",
    "error_code",
    "error_message",
    "actor_uid",
    "actor_type",
    "actor_name",
    "credential_id",
    "credential_kind",
    "session_id",
    "agent_id",
    "human_id",
    "src_ip",
    "user_agent",
    "account",
    "region",
    "target",
)


def render_record(raw: str | None, reveal: bool) -> str:
    """The record pretty-printed; escapes and invisibles removed. ``reveal`` says ``raw`` is the
    original from the evidence file; otherwise display masking runs again (cases built by tests or
    older tools may hold unmasked text)."""
    if raw is None:
        return "(no raw record stored)"
    try:
        obj = json.loads(raw)
    except ValueError:
        return lit_block(raw if reveal else mask_secrets(raw))
    if not reveal:
        obj = mask_record(obj)
    return lit_block(json.dumps(obj, indent=2, ensure_ascii=False))


def original_or_problem(con: Any, event_uid: str) -> tuple[str | None, str | None]:
    """``(original record, None)`` or ``(None, why it cannot be revealed)``."""
    from keytrail.ingest.reveal import Revealer, RevealError

    try:
        return Revealer(con).original(event_uid), None
    except RevealError as e:
        return None, e.msg


class RawScreen(CaseScreen):
    TITLE = "Raw record"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("v", "reveal", "Reveal/mask secrets", id="raw.reveal"),
        Binding("d", "trace", "Trace", id="raw.trace"),
        Binding("y", "copy", "Copy record", id="raw.copy"),
    ]

    def __init__(self, event_uid: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.event_uid = event_uid
        self.reveal = False
        self.record: dict[str, Any] | None = None
        self.original: str | None = None
        self.problem: str | None = None

    def compose(self) -> ComposeResult:
        yield from self.compose_frame()
        with Vertical():
            yield VerticalScroll(
                Static(Text("loading…", style="dim"), id="fields"), id="fields-box"
            )
            yield TextArea("", read_only=True, soft_wrap=True, show_line_numbers=True, id="raw")
        yield Static(id="status")

    def on_mount(self) -> None:
        uid = self.event_uid
        self.load(EventLoaded, lambda s: EventLoaded(event_record(s.con, uid)))

    def on_original_loaded(self, message: OriginalLoaded) -> None:
        self.original, self.problem = message.original, message.problem
        self._show_record()

    def on_event_loaded(self, message: EventLoaded) -> None:
        self.record = message.record
        if self.record is None:
            self.query_one("#fields", Static).update(Text("no such event: ") + Text(self.event_uid))
            return
        self.event_uid = self.record["event_uid"]
        self.query_one("#fields", Static).update(
            kv([(f, self.record.get(f)) for f in FIELDS if self.record.get(f) not in (None, "")])
        )
        self._show_record()

    def _show_record(self) -> None:
        if self.record is None:
            return
        area = self.query_one("#raw", TextArea)
        if not self.reveal:
            area.load_text(render_record(self.record.get("raw"), False))
            state = "secrets masked in the case (v reads the original from the evidence file)"
        elif self.problem is not None:
            area.load_text(lit_block("cannot reveal: " + self.problem))
            state = "NOT REVEALED: " + self.problem
        elif self.original is None:
            area.load_text("reading the original record from the evidence file…")
            state = "reading the evidence file"
        else:
            area.load_text(render_record(self.original, True))
            state = "ORIGINAL RECORD FROM THE EVIDENCE FILE, SECRETS REVEALED (v to mask)"
        self.status(Text(f"{state} · y copies · d delegation trace · Escape back"))

    def action_reveal(self) -> None:
        self.reveal = not self.reveal
        if self.reveal and self.original is None and self.problem is None:
            uid = self.event_uid
            self.load(OriginalLoaded, lambda s: OriginalLoaded(*original_or_problem(s.con, uid)))
        self._show_record()

    def action_trace(self) -> None:
        self.kt.open_target("trace", self.event_uid)

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.query_one("#raw", TextArea).text)
        self.notify("record copied", markup=False)
