"""The ``findings`` score term: what the findings say about a credential and what it minted.

The blast-radius terms measure reach; they rank the reconciler's Vault login above the
key an intruder created, because the login's tree contains that key. A responder wants
the credentials an attacker used at the top, and the findings are where keytrail says
"this is wrong". So every finding that names a credential adds points to it, and, at a
quarter per MINTED hop, to every credential it was minted from (docs/blast-radius.md):

- points per finding by level: low 1, medium 2, high 4, critical 8 (informational 0);
- tripled when the principal classifier (:mod:`keytrail.graph.principal_class`) cannot say
  who holds the credential (class ``unknown``): findings on a credential nobody in the
  evidence holds are the signature of a stolen or planted one;
- the term is linear (``weight x value``), unlike the reach terms: findings are few and each
  one is a judgement, not volume.

No cycle: the findings never read the ranking. The term always uses the default findings
(the stored snapshot when it is current), also for a ranking restricted to a time window.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keytrail.levels import Level

if TYPE_CHECKING:
    from keytrail.analysis.findings import Finding
    from keytrail.store.case import CaseStore

LEVEL_POINTS = {
    Level.INFORMATIONAL: 0.0,
    Level.LOW: 1.0,
    Level.MEDIUM: 2.0,
    Level.HIGH: 4.0,
    Level.CRITICAL: 8.0,
}
#: Share of a minted credential's findings that its parent receives, per hop.
HOP_FACTOR = 0.25
#: Multiplier for findings on a credential whose holder the classifier calls ``unknown``.
UNKNOWN_HOLDER_FACTOR = 3.0


@dataclass(frozen=True)
class Graph:
    """What the term reads from the case besides the findings (no finding needed to read it, so
    the snapshot reads it beside the findings run)."""

    creds: frozenset[str]
    """Every credential of the case."""
    unknown: frozenset[str]
    """Credentials whose holder the principal classifier calls ``unknown``."""
    parents: dict[str, set[str]]
    """``MINTED`` parents of each credential."""


def graph(store: CaseStore) -> Graph:
    from keytrail.graph.principal_class import table_sql

    creds = frozenset(
        r["credential_id"] for r in store.query("SELECT credential_id FROM credentials")
    )
    unknown = frozenset(
        r["subject"]
        for r in store.query(
            f"SELECT subject FROM {table_sql(store.con)} "
            "WHERE subject_kind = 'credential' AND class = 'unknown'"
        )
    )
    parents: dict[str, set[str]] = defaultdict(set)
    for r in store.query(
        "SELECT DISTINCT src, dst FROM links WHERE kind = 'MINTED' AND src <> dst"
    ):
        parents[r["dst"]].add(r["src"])
    return Graph(creds, unknown, parents)


def finding_values(
    store: CaseStore, found: list[Finding] | None = None, read: Graph | None = None
) -> dict[str, float]:
    """``{credential_id: value}`` of the ``findings`` term for every credential with a finding in
    its tree (``found``: the default findings when omitted; ``read``: :func:`graph` of the case,
    read now when omitted)."""
    if found is None:  # computed now; analysis.answers passes the stored findings instead
        from keytrail.analysis.findings.catalog import RULES
        from keytrail.analysis.findings.run import live_findings
        from keytrail.config import load_config

        found = live_findings(store, load_config(None, rule_ids=RULES))
    if not found:
        return {}
    g = read if read is not None else graph(store)
    creds, unknown, parents = g.creds, g.unknown, g.parents
    own: dict[str, float] = defaultdict(float)
    for f in found:
        for s in set(f.subjects):
            if s in creds:
                own[s] += LEVEL_POINTS[f.level]
    value: dict[str, float] = defaultdict(float)
    for cred, pts in own.items():
        if not pts:
            continue
        value[cred] += pts * (UNKNOWN_HOLDER_FACTOR if cred in unknown else 1.0)
        seen, frontier, share = {cred}, [cred], pts
        while frontier:  # each ancestor once, at its nearest hop (cycle-safe)
            share *= HOP_FACTOR
            nxt = [p for c in frontier for p in parents.get(c, ()) if p not in seen]
            seen.update(nxt)
            for p in set(nxt):
                value[p] += share
            frontier = list(set(nxt))
    return {k: round(v, 4) for k, v in value.items()}
