"""Run every enabled rule family now, on one cursor (no snapshot).

:func:`keytrail.analysis.answers.run_findings` calls this when the case's snapshot does not
answer the question; the snapshot refresh calls it to store the default answer.
"""

from __future__ import annotations

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


def live_findings(
    store: CaseStore,
    cfg: FindingsConfig,
    baseline_until: datetime | None = None,
    keep_raw_pass: bool = False,
    raw_ready: Callable[[], object] | None = None,
) -> list[Finding]:
    """Run every enabled rule family now (no snapshot), highest level first, then by first_seen.
    ``keep_raw_pass``: store the raw pass's rows in the case (:mod:`.rawcache`; writable store).
    ``raw_ready``: waits for another cursor's fill of that cache (:func:`.rawpass.prefill`);
    the families that read it then run after the others, so the fill overlaps them. The order
    of the families does not change the answer: each adds its own rules' drafts, which keep
    their order, and the findings are sorted at the end (``test_prefill_gives_the_same_rows``)."""
    families = RULE_FAMILIES
    if raw_ready is not None:
        late = [f for f in families if f[0] in RAW_PASS_FAMILIES]
        families = [f for f in families if f[0] not in RAW_PASS_FAMILIES] + late
    cur = store.cursor()
    try:
        ctx = Context(cur, cfg, baseline_until)
        ctx.keep_raw_pass = keep_raw_pass
        ctx.raw_ready = raw_ready
        for family, run in families:
            if getattr(cfg, family).enabled:
                run(ctx)
        findings = ctx.finish()
    finally:
        cur.close()
    findings.sort(key=lambda f: (-int(f.level), f.first_seen or datetime.max, f.rule, f.subjects))
    return findings
