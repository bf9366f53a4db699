"""Run every enabled rule family now, on one cursor (no snapshot); the snapshot runs scope drift
on a second one beside the others (``beside``).

:func:`keytrail.analysis.answers.run_findings` calls this when the case's snapshot does not
answer the question; the snapshot refresh calls it to store the default answer.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING

from keytrail.analysis.findings import Finding
from keytrail.analysis.findings.context import Context
from keytrail.analysis.findings.rules import RULE_FAMILIES

if TYPE_CHECKING:
    from collections.abc import Callable

    from keytrail.config import FindingsConfig
    from keytrail.store.case import CaseStore


#: The families that read the raw pass (:func:`.rawpass.ensure`): run last when its cache is
#: being filled beside them (``raw_ready``).
RAW_PASS_FAMILIES = ("human_use", "sigma")


#: The families that read no context table but ``_kt_agent_event``: with ``beside`` they run on
#: a cursor of their own, beside the others (scope drift, the costliest family at 1M events).
BESIDE_FAMILIES = ("scope_drift",)
#: The attached in-memory database ``beside`` makes ``_kt_agent_event`` in (Context.shared).
SHARED = "_kt_shared"


def live_findings(
    store: CaseStore,
    cfg: FindingsConfig,
    baseline_until: datetime | None = None,
    keep_raw_pass: bool = False,
    raw_ready: Callable[[], object] | None = None,
    beside: bool = False,
) -> list[Finding]:
    """Run every enabled rule family now (no snapshot), highest level first, then by first_seen.
    ``keep_raw_pass``: store the raw pass's rows in the case (:mod:`.rawcache`; writable store).
    ``raw_ready``: waits for another cursor's fill of that cache (:func:`.rawpass.prefill`);
    the families that read it then run after the others, so the fill overlaps them. The order
    of the families does not change the answer: each adds its own rules' drafts, which keep
    their order, and the findings are sorted at the end (``test_prefill_gives_the_same_rows``).
    ``beside`` (a writable store: DuckDB attaches no in-memory database to a read-only one):
    the :data:`BESIDE_FAMILIES` run on a second cursor in a thread while the others run on the
    first, their drafts added after the others' (``test_beside_gives_the_same_findings``)."""
    families = RULE_FAMILIES
    if raw_ready is not None:
        late = [f for f in families if f[0] in RAW_PASS_FAMILIES]
        families = [f for f in families if f[0] not in RAW_PASS_FAMILIES] + late
    enabled = [(f, run) for f, run in families if getattr(cfg, f).enabled]
    apart = [(f, run) for f, run in enabled if beside and f in BESIDE_FAMILIES]
    cur = store.cursor()
    side_cur = store.cursor() if apart else None
    try:
        if apart:
            cur.execute(f"ATTACH IF NOT EXISTS ':memory:' AS {SHARED}")
        ctx = Context(cur, cfg, baseline_until, shared=SHARED if apart else None)
        ctx.keep_raw_pass = keep_raw_pass
        ctx.raw_ready = raw_ready
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kt-findings") as pool:
            other = ctx.beside(side_cur) if side_cur is not None else None
            done = pool.submit(_run_all, other, apart) if other is not None else None
            _run_all(ctx, [f for f in enabled if f not in apart])
            if done is not None and other is not None:
                done.result()
                ctx.drafts.extend(other.drafts)
        findings = ctx.finish()
    finally:
        if side_cur is not None:
            side_cur.close()
            cur.execute(f"DETACH DATABASE IF EXISTS {SHARED}")
        cur.close()
    findings.sort(key=lambda f: (-int(f.level), f.first_seen or datetime.max, f.rule, f.subjects))
    return findings


def _run_all(ctx: Context, families: list[tuple[str, Callable[[Context], None]]]) -> None:
    for _, run in families:
        run(ctx)
