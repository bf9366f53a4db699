"""F1 help: the shipped ``help.md`` (our own text, so rendered as Markdown)."""

from __future__ import annotations

from importlib.resources import files

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Markdown

from keytrail.tui.screens.base import CaseScreen


def help_text() -> str:
    return (files("keytrail.tui") / "help.md").read_text(encoding="utf-8")


class HelpScreen(CaseScreen):
    TITLE = "Help"

    def compose(self) -> ComposeResult:
        yield from self.compose_frame()
        with VerticalScroll():
            yield Markdown(help_text())
