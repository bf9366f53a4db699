"""A deliberately slow analysis engine for the Escape tests, swapped in through ``keytrail.tui.core``.

It has the shape of a real analysis on a huge case (``run_findings``, ``baseline``): a
cheap query, then a long one on the same cursor, then the real engine's answer. The long
query is a cross join of ``range()`` tables that runs for minutes unless interrupted.
"""

from __future__ import annotations

from typing import Any

from keytrail.analysis.answers import rank_credentials
from keytrail.store.case import CaseStore

SLOW = "SELECT count(*) FROM range(100000000) a, range(100000) b WHERE (a.range * b.range) % 7 = 3"


def slow_rank(store: CaseStore, limit: int | None = None) -> Any:
    cur = store.cursor()
    try:
        cur.execute("SELECT count(*) FROM events").fetchone()
        cur.execute(SLOW).fetchone()
    finally:
        cur.close()
    return rank_credentials(store, limit=limit)
