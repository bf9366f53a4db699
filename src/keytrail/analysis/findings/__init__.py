"""NHI governance findings: what an NHI program must act on, each with its evidence.

``run_findings`` builds a few shared temporary tables (credential chains, owners,
attribution; :mod:`.context`) on one cursor, then runs every rule family as set-based
DuckDB SQL, so a case of a million events takes seconds. A rule that cannot cite at
least one event emits nothing: every finding's ``evidence`` lists the source's own
event ids (CloudTrail ``eventID``, Vault ``request.id``, span id) a responder can grep
for, and ``evidence_uids`` the case's event uids. Rules, thresholds and framework ids:
``docs/findings.md``; thresholds: ``keytrail/data/findings.toml``.

This package's ``__init__`` holds only the result type; :mod:`.run` runs the rules and
:func:`keytrail.analysis.answers.run_findings` chooses between the snapshot and a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from keytrail.levels import Level
from keytrail.timefmt import format_utc

__all__ = ["Finding", "count_levels", "zero_counts"]


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
