"""Log text to screen, literally: every value shown passes through :func:`lit`.

Rich would interpret ``[bold red]`` in a ``str`` given to a ``Static``, a ``DataTable``
cell or a ``Tree`` label; a :class:`rich.text.Text` is never parsed. :func:`lit` also
runs :func:`keytrail.safetext.shown` (ANSI escapes, control, bidi and zero-width characters
shown as their escapes, ``\\x1b``, ``\\u200b``, as on every CLI line: two ids that differ by
an invisible character look different; long values cut) and renders times as UTC with ``Z``.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from rich.table import Table
from rich.text import Text

from keytrail.safetext import shown
from keytrail.timefmt import format_utc

CELL_MAX = 120
#: Finding levels in colour, the same in the overview, the findings list and a finding.
LEVEL_STYLE = {
    "critical": "bold red",
    "high": "bold #ffc100",
    "medium": "yellow",
    "low": "green",
    "informational": "",
}
#: Longest line kept in multi-line views (raw records, error text) before it is cut.
LINE_MAX = 20_000


def fmt(value: Any) -> str:
    """A display string for any value from DuckDB or an analysis document (not yet made safe)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return format_utc(value) or ""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, (list, tuple, set)):
        return ", ".join(fmt(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


def lit(value: Any, max_len: int | None = CELL_MAX, style: str = "") -> Text:
    """``value`` as a literal, single-line :class:`Text` (never parsed as markup)."""
    return Text(shown(fmt(value), max_len), style=style, no_wrap=False)


def lit_block(text: str) -> str:
    """A multi-line text made safe line by line; lines over :data:`LINE_MAX` characters are cut."""
    return "\n".join(shown(line, LINE_MAX) for line in text.split("\n"))


def kv(pairs: list[tuple[str, Any]], key_width: int = 18) -> Table:
    """``key  value`` rows (long values wrap under their value column); keys are ours, values literal."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", min_width=max(1, key_width - 2), no_wrap=True)
    grid.add_column(overflow="fold")
    for key, value in pairs:
        grid.add_row(Text(key), lit(value, 2000))
    return grid


#: Vault audit logs HMAC every accessor and token: ``hmac-sha256:<64 hex>``. The prefix is the
#: same on every row, so a narrow column shows the hex instead (see :func:`short_credential`).
HMAC_PREFIX = "hmac-sha256:"


def short_credential(value: Any, width: int) -> Text:
    """A credential id for a ``width``-wide column: the part that tells ids apart.

    ``hmac-sha256:c9df9629…`` would show 10 hex digits in 22 columns; this shows
    ``hmac:c9df96293225ed8a…`` (16). Other ids over ``width`` are cut with ``…``. The full
    id is in the row's raw record view (Enter) and ``y`` on the timeline copies it.
    """
    text = shown(fmt(value), 2000)
    if text.startswith(HMAC_PREFIX):
        text = "hmac:" + text[len(HMAC_PREFIX) :]
    if len(text) > width:
        text = text[: width - 1] + "…"
    return Text(text)
