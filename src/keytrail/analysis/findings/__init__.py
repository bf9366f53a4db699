"""NHI governance findings: what an NHI program must act on, each with its evidence.

``run_findings`` builds a few shared temporary tables (credential chains, owners,
attribution; :mod:`.context`) on one cursor, then runs every rule family as set-based
DuckDB SQL, so a case of a million events takes seconds. A rule that cannot cite at
least one event emits nothing: every finding's ``evidence`` lists the source's own
event ids (CloudTrail ``eventID``, Vault ``request.id``, span id) a responder can grep
for, and ``evidence_uids`` the case's event uids. Rules, thresholds and framework ids:
``docs/findings.md``; thresholds: ``keytrail/data/findings.toml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keytrail.levels import Level
from keytrail.timefmt import format_utc

if TYPE_CHECKING:
    from keytrail.config import FindingsConfig
    from keytrail.store.case import CaseStore

__all__ = ["Finding", "count_levels", "level_counts", "live_findings", "run_findings", "zero_counts"]


@dataclass(frozen=True)
class Finding:
    """One governance gap with the events that prove it (``as_dict`` is the JSON contract)."""

    rule: str
    title: str
    level: Level
    frameworks: tuple[str, ...]
    subjects: tuple[str, ...]
    evidence: tuple[str, ...]
    description: str
    recommendation: str
    impact: str
    first_seen: datetime | None
    last_seen: datetime | None
    evidence_uids: tuple[str, ...] = ()
    evidence_count: int = 0
    """Events behind the finding; ``evidence`` lists at most a sample of them."""
    details: dict[str, Any] = field(default_factory=dict)
    """Rule-specific facts (counts, values) for reports and filters."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "title": self.title,
            "level": self.level.label,
            "frameworks": list(self.frameworks),
            "subjects": list(self.subjects),
            "evidence": list(self.evidence),
            "evidence_uids": list(self.evidence_uids),
            "evidence_count": self.evidence_count,
            "description": self.description,
            "recommendation": self.recommendation,
            "impact": self.impact,
            "first_seen": format_utc(self.first_seen),
            "last_seen": format_utc(self.last_seen),
            "details": self.details,
        }


def zero_counts() -> dict[str, int]:
    """``{level: 0}`` for every level, highest first: the shape of every findings count."""
    return {lvl.label: 0 for lvl in sorted(Level, reverse=True)}


def count_levels(findings: list[Finding]) -> dict[str, int]:
    """``{level: n}`` for every level, highest first (the ``counts`` of ``findings --json``)."""
    counts = zero_counts()
    for f in findings:
        counts[f.level.label] += 1
    return counts


def run_findings(
    store: CaseStore,
    *,
    config: FindingsConfig | str | Path | None = None,
    min_level: str | Level = "informational",
    baseline_until: datetime | str | None = None,
) -> list[Finding]:
    """Every finding at or above ``min_level``, highest level first, then by first_seen.

    ``config`` is a loaded :class:`~keytrail.config.FindingsConfig`, a path to a TOML file,
    or None (``KEYTRAIL_CONFIG`` or the defaults). ``baseline_until`` ends every baseline
    window at that time instead of each subject's first ``baseline.days`` days.

    Raises:
        ConfigError: the configuration is invalid.
        UsageError: ``min_level`` or ``baseline_until`` is not valid.
    """
    from keytrail.analysis import snapshot
    from keytrail.analysis.findings.context import parse_time
    from keytrail.config import FindingsConfig, load_config

    cfg = config if isinstance(config, FindingsConfig) else load_config(config)
    floor = Level.parse(min_level, what="--min-level")
    until = parse_time(baseline_until)
    findings = snapshot.findings(store, cfg) if until is None else None
    if findings is None:
        findings = live_findings(store, cfg, until)
    return [f for f in findings if f.level >= floor]


def live_findings(store: CaseStore, cfg: FindingsConfig, baseline_until: datetime | None = None) -> list[Finding]:
    """Run every enabled rule family now (no snapshot), highest level first, then by first_seen."""
    from keytrail.analysis.findings.context import Context
    from keytrail.analysis.findings.rules import RULE_FAMILIES

    cur = store.cursor()
    try:
        ctx = Context(cur, cfg, baseline_until)
        for family, run in RULE_FAMILIES:
            if getattr(cfg, family).enabled:
                run(ctx)
        findings = ctx.finish()
    finally:
        cur.close()
    findings.sort(key=lambda f: (-int(f.level), f.first_seen or datetime.max, f.rule, f.subjects))
    return findings


def level_counts(store: CaseStore, *, config: FindingsConfig | str | Path | None = None) -> dict[str, int]:
    """``{level: n}`` of every finding, highest level first: from the case's snapshot when it
    matches the configuration (milliseconds), else by running the rules."""
    from keytrail.analysis import snapshot
    from keytrail.config import FindingsConfig, load_config

    cfg = config if isinstance(config, FindingsConfig) else load_config(config)
    counts = snapshot.level_counts(store, cfg)
    return counts if counts is not None else count_levels(live_findings(store, cfg))
