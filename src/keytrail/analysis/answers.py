"""The questions the front ends ask, answered from the case's snapshot when it holds the answer.

``keytrail ingest`` stores the default answers (:mod:`keytrail.analysis.snapshot`): the ranking
without a time window at ``inferred`` confidence, and the findings under the stored
configuration. This module is the one place that decides whether a question is that default
question; the analysis functions below it (:mod:`.ranking`, :mod:`.blast_detail`,
:mod:`.findings.run`) only compute, and the snapshot only stores and reads. The CLI, the TUI
and the reports call these functions, so they get the same answer either way.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from keytrail.analysis import snapshot
from keytrail.analysis.blast_detail import BlastRadius
from keytrail.analysis.blast_detail import blast_radius as _blast_detail
from keytrail.analysis.findings import Finding, count_levels
from keytrail.analysis.findings.catalog import RULES
from keytrail.analysis.findings.context import parse_time
from keytrail.analysis.findings.run import live_findings
from keytrail.analysis.ranking import CredentialRank, live_ranking, to_rank
from keytrail.config import FindingsConfig, load_config
from keytrail.levels import Level

if TYPE_CHECKING:
    from keytrail.store.case import CaseStore

__all__ = ["blast_radius", "level_counts", "rank_credentials", "rank_page", "run_findings"]


def _default_rank_question(
    since: datetime | None, until: datetime | None, min_confidence: str
) -> bool:
    """The ranking question the snapshot stores: no time window, default confidence."""
    return since is None and until is None and min_confidence == "inferred"


def rank_credentials(
    store: CaseStore,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    min_confidence: str = "inferred",
    limit: int | None = None,
    use_snapshot: bool = True,
) -> list[CredentialRank]:
    """Every credential with its blast-radius score, highest first (ties: more events, then id).

    The default question (no window, ``inferred``) is answered from the case's analysis
    snapshot when it is current, else computed (``use_snapshot=False`` always computes)."""
    if use_snapshot and _default_rank_question(since, until, min_confidence):
        cached = snapshot.rank_rows(store, limit)
        if cached is not None:
            return [to_rank(r) for r in cached]
    return live_ranking(
        store,
        since=since,
        until=until,
        min_confidence=min_confidence,
        limit=limit,
        found=run_findings(store),
    )


def rank_page(
    store: CaseStore, *, offset: int = 0, limit: int, contains: str | None = None
) -> tuple[list[CredentialRank], int] | None:
    """Rows ``offset`` to ``offset + limit`` of :func:`rank_credentials`'s default answer, only
    those whose id, kind, holder, origin, principal, agents or humans hold ``contains`` (any
    case), and how many such rows there are; ``None`` when the case has no current ranking
    snapshot (the caller then ranks whole, :func:`rank_credentials`).

    The explorer's credentials list pages it: at a million events the whole ranking is
    ~50,000 rows, 7 s of Python to build and ~250,000 objects every garbage collection walks."""
    got = snapshot.rank_page(store, offset=offset, limit=limit, contains=contains)
    if got is None:
        return None
    rows, total = got
    return [to_rank(r) for r in rows], total


def blast_radius(
    store: CaseStore,
    credential_id: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    min_confidence: str = "inferred",
) -> BlastRadius:
    """The observed blast radius of one credential (see docs/blast-radius.md); its score row
    comes from the snapshot for the default question.

    Raises:
        NotFoundError: the credential is not in the case (with the closest ids).
    """
    stored = snapshot.rank_row if _default_rank_question(since, until, min_confidence) else None
    return _blast_detail(
        store,
        credential_id,
        since=since,
        until=until,
        min_confidence=min_confidence,
        stored_row=stored,
        findings=lambda: run_findings(store),
    )


def _config(config: FindingsConfig | str | Path | None) -> FindingsConfig:
    return config if isinstance(config, FindingsConfig) else load_config(config, rule_ids=RULES)


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
    window at that time instead of each subject's first ``baseline.days`` days; the snapshot
    answers only without it.

    Raises:
        ConfigError: the configuration is invalid.
        UsageError: ``min_level`` or ``baseline_until`` is not valid.
    """
    cfg = _config(config)
    floor = Level.parse(min_level, what="--min-level")
    until = parse_time(baseline_until)
    findings = snapshot.findings(store, cfg) if until is None else None
    if findings is None:
        findings = live_findings(store, cfg, until)
    return [f for f in findings if f.level >= floor]


def level_counts(
    store: CaseStore, *, config: FindingsConfig | str | Path | None = None
) -> dict[str, int]:
    """``{level: n}`` of every finding, highest level first: from the case's snapshot when it
    matches the configuration (milliseconds), else by running the rules."""
    cfg = _config(config)
    counts = snapshot.level_counts(store, cfg)
    return counts if counts is not None else count_levels(live_findings(store, cfg))
