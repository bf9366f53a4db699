"""A copyable error dialog for worker failures (harlequin's ``ErrorModal`` idea)."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, TextArea

from keytrail.tui.widgets.text import lit_block


class ErrorModal(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close"),
        Binding("y", "copy", "Copy"),
    ]
    DEFAULT_CSS = """
    ErrorModal { align: center middle; }
    ErrorModal > Vertical { width: 80%; height: auto; max-height: 80%; border: thick $error;
                            background: $surface; padding: 1 2; }
    ErrorModal TextArea { height: auto; max-height: 20; }
    ErrorModal Horizontal { height: auto; margin-top: 1; }
    """

    def __init__(self, title: str, detail: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.title_text = title
        self.detail = lit_block(detail)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(self.title_text, style="bold"))
            yield TextArea(self.detail, read_only=True, soft_wrap=True, id="error-text")
            with Horizontal():
                yield Button("Copy (y)", id="copy")
                yield Button("Close (Esc)", id="close", variant="primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "copy":
            self.action_copy()
        else:
            self.dismiss()

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.detail)
        self.notify("error text copied", markup=False)
