"""Command palette: jump to any credential, agent, resource or event id (posting-style names).

Search runs :func:`keytrail.tui.queries.search_ids` on its own cursor in a thread, so
typing never blocks on DuckDB. Hits are shown as literal text (ids come from logs).
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import TYPE_CHECKING

from rich.text import Text
from textual.command import DiscoveryHit, Hit, Hits, Provider

from keytrail.safetext import shown
from keytrail.tui.queries import search_ids

if TYPE_CHECKING:
    from keytrail.tui.app import KeytrailApp

VIEWS = (
    ("view: Overview", "overview"),
    ("view: Credentials", "credentials"),
    ("view: Agents", "agents"),
    ("view: Timeline", "timeline"),
    ("view: Findings", "findings"),
    ("view: SQL console", "sql"),
    ("view: Help", "help"),
)


class CaseCommands(Provider):
    @property
    def kt(self) -> KeytrailApp:
        return self.app  # type: ignore[return-value]

    def _lookup(self, text: str) -> list[tuple[str, str]]:
        cur = self.kt.store.cursor()
        try:
            return search_ids(cur, text)
        finally:
            cur.close()

    async def discover(self) -> Hits:
        for title, view in VIEWS:
            yield DiscoveryHit(title, partial(self.kt.goto, view), help="switch view")

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, view in VIEWS:
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, Text(title), partial(self.kt.goto, view), text=title)
        if len(query.strip()) < 2:
            return
        for kind, ident in await asyncio.to_thread(self._lookup, query.strip()):
            label = f"{kind}: {shown(ident, 100)}"
            score = max(matcher.match(label), 0.5 if query.lower() in ident.lower() else 0.1)
            yield Hit(
                score,
                Text(label),
                partial(self.kt.open_target, kind, ident),
                text=label,
                help=f"open {kind}",
            )
