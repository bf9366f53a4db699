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
    from keytrail.config import FindingsConfig
    from keytrail.store.case import CaseStore


def live_findings(
    store: CaseStore,
    cfg: FindingsConfig,
    baseline_until: datetime | None = None,
    keep_raw_pass: bool = False,
) -> list[Finding]:
    """Run every enabled rule family now (no snapshot), highest level first, then by first_seen.
    ``keep_raw_pass``: store the raw pass's rows in the case (:mod:`.rawcache`; writable store)."""
    cur = store.cursor()
    try:
        ctx = Context(cur, cfg, baseline_until)
        ctx.keep_raw_pass = keep_raw_pass
        for family, run in RULE_FAMILIES:
            if getattr(cfg, family).enabled:
                run(ctx)
        findings = ctx.finish()
    finally:
        cur.close()
    findings.sort(key=lambda f: (-int(f.level), f.first_seen or datetime.max, f.rule, f.subjects))
    return findings
