"""Findings by level (:func:`keytrail.analysis.answers.run_findings`), each opening its evidence."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Label, Static

from keytrail.tui import core
from keytrail.tui.messages import FindingsLoaded
from keytrail.tui.screens.base import CaseScreen
from keytrail.tui.widgets.doc_view import DocTable, DocView, EventLinks
from keytrail.tui.widgets.text import LEVEL_STYLE, lit

COLUMNS = ("level", "title", "subjects", "evidence_count", "first_seen", "last_seen", "rule")
ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "informational": 4}


def level_of(doc: dict[str, Any]) -> str:
    return str(doc.get("level") or doc.get("severity") or "informational").lower()


def level_cell(value: Any) -> Text:
    """A level in its colour (critical red … low green), the same colours as the overview."""
    level = str(value or "informational").lower()
    return Text(level, style=LEVEL_STYLE.get(level, ""))


class FindingsScreen(CaseScreen):
    TITLE = "Findings"

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.docs: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield from self.compose_frame()
        yield VerticalScroll(
            Static(Text("running findings… (Escape cancels)", style="dim")), id="list"
        )
        yield Static(id="status")

    def on_mount(self) -> None:
        run = core.engine(core.FINDINGS)
        if run is None:
            self._show(
                Static(Text(f"unavailable: {core.FINDINGS[0]} is not in this build", style="dim"))
            )
            return
        self.load(FindingsLoaded, lambda s: FindingsLoaded(core.as_doc(run(s))))

    def _show(self, widget: Any) -> None:
        box = self.query_one("#list", VerticalScroll)
        box.remove_children()
        box.mount(widget)

    def on_findings_loaded(self, message: FindingsLoaded) -> None:
        self.docs = sorted(message.docs, key=lambda d: ORDER.get(level_of(d), 9))
        rows = [{k: d.get(k) for k in COLUMNS} for d in self.docs]
        if not rows:
            self._show(Static(Text("no findings", style="dim")))
        else:
            self._show(
                DocTable(
                    "findings",
                    rows,
                    id="findings",
                    columns=list(COLUMNS),
                    cells={"level": level_cell},
                    target=lambda _row: None,
                )
            )
            self.query_one(DocTable).focus()
        counts = {lvl: sum(1 for d in self.docs if level_of(d) == lvl) for lvl in ORDER}
        self.status(
            Text(" · ".join(f"{k} {v}" for k, v in counts.items()) + "  ·  Enter opens a finding")
        )

    def on_doc_view_picked(self, message: DocView.Picked) -> None:
        if message.section != "findings":
            return
        message.stop()
        table = self.query_one(DocTable)
        self.app.push_screen(FindingScreen(self.docs[table.cursor_row]))


class FindingScreen(CaseScreen):
    TITLE = "Finding"

    def __init__(self, doc: dict[str, Any], **kw: Any) -> None:
        super().__init__(**kw)
        self.doc = doc

    def compose(self) -> ComposeResult:
        yield from self.compose_frame()
        level = level_of(self.doc)
        yield Label(
            Text(level.upper() + "  ", style="bold " + LEVEL_STYLE.get(level, ""))
            + lit(self.doc.get("title"), 200)
        )
        skip = (
            ("evidence",) if self.doc.get("evidence_uids") else ()
        )  # source ids; the uids open events
        yield VerticalScroll(DocView(self.doc, skip=skip))
        yield Static(Text("Enter on evidence opens the event · Escape back"), id="status")

    def on_mount(self) -> None:
        """Focus the evidence list (Enter opens the first event at once, no Tab needed)."""
        links: list[Any] = [*self.query(EventLinks)] or [*self.query(DocTable)]
        if links:
            links[0].focus()
            if isinstance(links[0], EventLinks) and links[0].option_count:
                links[0].highlighted = 0
