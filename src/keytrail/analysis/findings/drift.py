"""Scope drift (ASI02 / ASI03 / NIST SP 800-207 tenet 4, dynamic policy).

Every agent and credential with a baseline of at least ``baseline.min_events`` events
is compared with it (see :mod:`keytrail.analysis.baseline`); one finding per subject
lists what departed, and its level is the highest level among the dimensions that
departed (``[scope_drift]``). Aggregated per subject in SQL so a case with many
drifting credentials costs one row each in Python.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keytrail.analysis import baseline as bl
from keytrail.analysis.findings.context import Draft
from keytrail.levels import Level

if TYPE_CHECKING:
    from keytrail.analysis.findings.context import Context

_LABEL = {
    "services": "services",
    "actions": "actions",
    "resource_types": "resource types",
    "source_networks": "source networks",
    "hours": "hours (UTC)",
}
SHOWN = 8


def run(ctx: Context) -> None:
    cfg = ctx.cfg
    bl.build(ctx.cur, cfg, ctx.until, min_events=cfg.baseline.min_events, values=False)
    per_dim = ", ".join(
        f"list(value ORDER BY t0, value) FILTER (WHERE dim = '{d}') AS {d}" for d in bl.DIMENSIONS
    )
    override = "scope-drift" in cfg.levels
    for r in ctx.rows(
        f"""SELECT d.subject_kind, d.subject, min(w.start_t) AS start_t, min(w.end_t) AS end_t,
                   min(w.n_base) AS n_base, sum(d.n) AS n, min(d.t0) AS t0, max(d.t1) AS t1,
                   arg_min(d.uid, (d.t0, d.uid), 25) AS uids, {per_dim}
            FROM _kt_dep d JOIN _kt_win w USING (subject_kind, subject)
            GROUP BY d.subject_kind, d.subject ORDER BY d.subject_kind, d.subject"""
    ):
        departed = {d: r[d] for d in bl.DIMENSIONS if r[d]}
        level = max(Level.parse(getattr(cfg.scope_drift, d)) for d in departed)
        parts = [
            f"{_LABEL[d]}: {', '.join(str(v) for v in vals[:SHOWN])}{' ...' if len(vals) > SHOWN else ''}"
            for d, vals in departed.items()
        ]
        kind, subject = r["subject_kind"], r["subject"]
        ctx.add(
            Draft(
                "scope-drift",
                [subject],
                r["uids"],
                f"{kind.capitalize()} {subject} went beyond its baseline ({r['n_base']} events from "
                f"{r['start_t']:%Y-%m-%d %H:%M}Z to {r['end_t']:%Y-%m-%d %H:%M}Z): new "
                + "; ".join(parts)
                + ".",
                "Behaviour outside an identity's usual scope is how misuse and goal hijack show in logs.",
                r["t0"],
                r["t1"],
                contain=[subject] if kind == "credential" else [],
                count=int(r["n"]),
                level=None if override else level,
                advice=f"Check the new activity with the owner of {subject}; if unexpected, contain it.",
                details={
                    "subject_kind": kind,
                    "departed": {d: [str(v) for v in vs[:100]] for d, vs in departed.items()},
                },
            )
        )
