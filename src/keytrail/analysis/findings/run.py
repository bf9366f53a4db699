"""Run every enabled rule family now, on one cursor (no snapshot) or, for the snapshot, on two
cursors at once (``beside``).

:func:`keytrail.analysis.answers.run_findings` calls this when the case's snapshot does not
answer the question; the snapshot refresh calls it to store the default answer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING

from keytrail.analysis.findings import Finding
from keytrail.analysis.findings.context import Context, Draft
from keytrail.analysis.findings.rules import RULE_FAMILIES

if TYPE_CHECKING:
    from keytrail.config import FindingsConfig
    from keytrail.store.case import CaseStore


#: The families that read the raw pass (:func:`.rawpass.ensure` makes its tables once, on the
#: cursor of the first that runs): they run together, on one cursor, in this order, and last
#: when its cache is being filled beside them (``raw_ready``).
RAW_PASS_FAMILIES = ("human_use", "sigma")
#: With ``beside``, the cursors take the families costliest first (thread CPU-s at 1M events:
#: 0.70, 0.59, 0.47, 0.47 (``privilege``'s two), 0.23, 0.23, 0.24, 0.17, 0.07, 0.03), so the last
#: either takes is a cheap one and the two end close together (with only the first five so
#: ordered and the rest in catalog order, the last was ``secret_sprawl``, 0.23, often run while
#: the other cursor had nothing left); the raw-pass families are one unit, taken after these or
#: as soon as their cache is filled (:class:`_Waiting`).
COSTLY_FIRST = (
    "scope_drift",
    "nhi_attack",
    "environment_crossing",
    "privilege",
    "unattributed",
    "secret_sprawl",
    "credential_reuse",
    "offboarding",
    "long_lived",
    "reconnaissance",
)
#: The attached in-memory database ``beside`` makes the context tables in (Context.shared).
SHARED = "_kt_shared"

#: One family's place in :data:`RULE_FAMILIES`, its config section and its runner.
_Family = tuple[int, str, Callable[[Context], None]]


def live_findings(
    store: CaseStore,
    cfg: FindingsConfig,
    baseline_until: datetime | None = None,
    keep_raw_pass: bool = False,
    raw_ready: Callable[[], str | None] | None = None,
    beside: bool = False,
    raw_done: Callable[[], bool] | None = None,
) -> list[Finding]:
    """Run every enabled rule family now (no snapshot), highest level first, then by first_seen.
    ``keep_raw_pass``: store the raw pass's rows in the case (:mod:`.rawcache`; writable store).
    ``raw_ready``: waits for another cursor's fill of that cache (:func:`.rawpass.prefill`)
    and returns what the fill returned;
    the families that read it then run after the others, so the fill overlaps them; with
    ``raw_done`` (true once the fill is over) and ``beside``, a cursor takes them as soon as the
    fill is over (a later snapshot: the cache was current), not last.
    ``beside`` (a writable store: DuckDB attaches no in-memory database to a read-only one):
    the context tables are made in an attached in-memory database both cursors see, and two
    cursors (this thread and one more) take the families one after another from a common list
    until it is empty: a family's queries mostly keep one core busy, so two at once fill both.

    However they ran, the findings are put together in :data:`RULE_FAMILIES` order before they
    are sorted, so the answer is the one cursor's running every family in order
    (``test_beside_gives_the_same_findings``, ``test_prefill_gives_the_same_rows``)."""
    enabled = [(i, f, run) for i, (f, run) in enumerate(RULE_FAMILIES) if getattr(cfg, f).enabled]
    units = _units(enabled, beside, raw_last=raw_ready is not None)
    cur = store.cursor()
    side_cur = store.cursor() if beside and len(units) > 1 else None
    found: dict[int, list[Finding]] = {}
    try:
        if side_cur is not None:
            cur.execute(f"ATTACH IF NOT EXISTS ':memory:' AS {SHARED}")
        shared = SHARED if side_cur is not None else None
        ctx = Context(cur, cfg, baseline_until, shared=shared, helper=side_cur)
        ctx.keep_raw_pass = keep_raw_pass
        ctx.raw_ready = raw_ready
        if side_cur is None:
            _lane(ctx, units, threading.Lock(), found)
        else:
            if raw_done is not None and units[-1][0][1] in RAW_PASS_FAMILIES:
                units.insert(0, _Waiting(units.pop(), raw_done))
            other = ctx.beside(side_cur)
            lock = threading.Lock()
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kt-findings") as pool:
                done = pool.submit(_lane, other, units, lock, found)
                try:
                    _lane(ctx, units, lock, found)
                finally:
                    with lock:
                        units.clear()  # on an error here, the other cursor takes no more
                    done.result()
    finally:
        if side_cur is not None:
            side_cur.close()
            cur.execute(f"DETACH DATABASE IF EXISTS {SHARED}")
        cur.close()
    findings = [f for i in sorted(found) for f in found[i]]
    findings.sort(key=lambda f: (-int(f.level), f.first_seen or datetime.max, f.rule, f.subjects))
    return findings


def _units(enabled: list[_Family], beside: bool, raw_last: bool) -> list[list[_Family]]:
    """The families in the order the cursors take them. One cursor: catalog order, the raw-pass
    families last with ``raw_last``. Two: :data:`COSTLY_FIRST` first, the raw-pass families
    last, as one unit (their tables are the cursor's own)."""
    raw = [f for f in enabled if f[1] in RAW_PASS_FAMILIES]
    rest = [f for f in enabled if f[1] not in RAW_PASS_FAMILIES]
    if not beside:
        return [[f] for f in (rest + raw if raw_last else enabled)]
    rank = {name: n for n, name in enumerate(COSTLY_FIRST)}
    rest.sort(key=lambda f: rank.get(f[1], len(rank)))  # stable: catalog order after them
    return [[f] for f in rest] + ([raw] if raw else [])


class _Waiting(list[_Family]):
    """The raw-pass unit while the cache may still be filling: taken before the others once
    ``done()`` is true, else after them (:func:`_lane`)."""

    def __init__(self, unit: list[_Family], done: Callable[[], bool]) -> None:
        super().__init__(unit)
        self.done = done


def _take(units: list[list[_Family]]) -> list[_Family] | None:
    """The unit a free cursor runs next: the first, unless it is a :class:`_Waiting` one whose
    wait is not over and others remain (then the next one)."""
    if not units:
        return None
    first = units[0]
    if isinstance(first, _Waiting) and len(units) > 1 and not first.done():
        return units.pop(1)
    return units.pop(0)


def _lane(
    ctx: Context, units: list[list[_Family]], lock: threading.Lock, out: dict[int, list[Finding]]
) -> None:
    """Run units from ``units`` (:func:`_take`) on ``ctx``'s cursor until none is left, then
    resolve the drafts it made (:meth:`Context.resolve`, on this cursor: with two, one resolves
    while the other still runs families); each family's findings go to ``out`` under its place
    in the catalog."""
    made: list[tuple[int, Draft]] = []
    while True:
        with lock:
            unit = _take(units)
        if unit is None:
            break
        for i, _, run in unit:
            start = len(ctx.drafts)
            run(ctx)
            made += [(i, d) for d in ctx.drafts[start:]]
    for (i, _), f in zip(made, ctx.resolve([d for _, d in made]), strict=True):
        out.setdefault(i, [])
        if f is not None:
            out[i].append(f)
