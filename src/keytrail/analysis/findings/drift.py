"""Scope drift (ASI02 / ASI03 / NIST SP 800-207 tenet 4, dynamic policy).

Every agent and credential with a baseline of at least ``baseline.min_events`` events
is compared with it (see :mod:`keytrail.analysis.baseline`); one finding per subject
lists what departed, and its level is the highest level among the dimensions that
departed (``[scope_drift]``).
"""

from __future__ import annotations

from itertools import groupby
from typing import TYPE_CHECKING

from keytrail.analysis import baseline as bl
from keytrail.analysis.findings.context import Draft
from keytrail.levels import Level

if TYPE_CHECKING:
    from keytrail.analysis.findings.context import Context

_LABEL = {"services": "services", "actions": "actions", "resource_types": "resource types",
          "source_networks": "source networks", "hours": "hours (UTC)"}


def run(ctx: Context) -> None:
    cfg = ctx.cfg
    bl.build(ctx.cur, cfg, ctx.until)
    rows = bl.departures(ctx.cur, cfg.baseline.min_events)
    override = "scope-drift" in cfg.levels
    for (kind, subject), group in groupby(rows, key=lambda r: (r["subject_kind"], r["subject"])):
        items = list(group)
        by_dim: dict[str, list[dict[str, object]]] = {}
        for r in items:
            by_dim.setdefault(r["dim"], []).append(r)
        level = max(Level.parse(getattr(cfg.scope_drift, d)) for d in by_dim)
        parts = []
        for dim in bl.DIMENSIONS:
            vals = by_dim.get(dim)
            if vals:
                shown = ", ".join(str(v["value"]) for v in vals[:8])
                parts.append(f"{_LABEL[dim]}: {shown}{' ...' if len(vals) > 8 else ''}")
        first = items[0]
        uids = [u for r in sorted(items, key=lambda r: r["t0"]) for u in r["uids"][:1]]
        ctx.add(Draft(
            "scope-drift", [subject], uids,
            f"{kind.capitalize()} {subject} went beyond its baseline ({first['n_base']} events from "
            f"{first['start_t']:%Y-%m-%d %H:%M}Z to {first['end_t']:%Y-%m-%d %H:%M}Z): new " + "; ".join(parts) + ".",
            "Behaviour outside an identity's usual scope is how misuse and goal hijack show in logs.",
            min(r["t0"] for r in items), max(r["t1"] for r in items),
            contain=[subject] if kind == "credential" else [],
            count=sum(int(r["n"]) for r in items),
            level=None if override else level,
            advice=f"Check the new activity with the owner of {subject}; if unexpected, contain it.",
            details={"subject_kind": kind, "departed": {d: [str(v["value"]) for v in vs] for d, vs in by_dim.items()}},
        ))
