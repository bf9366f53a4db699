"""Load the identity graph from a case's ``links`` table into networkx.

Nodes are ``kind:id`` (``credential:AKIA...``, ``agent:ledger-bot``); each carries
``kind``, ``id`` and ``label`` plus its table row facts. Edges are keyed by edge
kind and carry an :class:`keytrail.graph.model.Edge` under ``edge`` plus its fields
flattened (``reason``, ``confidence``, ``evidence`` ...), so a caller can filter
without unpacking. ``ACTED_ON`` edges aggregate events per (credential, resource),
so the graph stays the size of the identity model, not of the events.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import networkx as nx

from keytrail.graph.model import Edge, allowed_confidences, node_id

if TYPE_CHECKING:
    from keytrail.store.case import CaseStore


def load_graph(
    store: CaseStore, *, min_confidence: str = "inferred", resources: bool = True
) -> nx.MultiDiGraph:
    """The identity graph with edges at or above ``min_confidence``.

    ``resources=False`` leaves out ``ACTED_ON`` edges and resource nodes: the identity model
    alone (humans, agents, credentials, principals), which stays small on big cases.
    """
    allowed = allowed_confidences(min_confidence)
    g = nx.MultiDiGraph()
    cur = store.cursor()
    try:
        for cid, kind, origin, principal, first, last, n in cur.execute(
            "SELECT credential_id, kind, origin, principal_uid, first_seen, last_seen, events FROM credentials"
        ).fetchall():
            g.add_node(
                node_id("credential", cid),
                kind="credential",
                id=cid,
                label=cid,
                credential_kind=kind,
                origin=origin,
                principal=principal,
                first_seen=first,
                last_seen=last,
                events=n,
            )
        for pid, kind, name, account, n in cur.execute(
            "SELECT principal_id, kind, name, account, events FROM principals"
        ).fetchall():
            nk = kind if kind in ("human", "agent") else "principal"
            g.add_node(
                node_id(nk, pid),
                kind=nk,
                id=pid,
                label=name or pid,
                principal_kind=kind,
                account=account,
                events=n,
            )
        rows = cur.execute(
            """SELECT src_kind, src, dst_kind, dst, kind, reason, confidence, evidence, evidence_count,
                      first_seen, last_seen, attributes
               FROM links WHERE list_contains($allowed, confidence) AND ($resources OR kind <> 'ACTED_ON')""",
            {"allowed": allowed, "resources": resources},
        ).fetchall()
    finally:
        cur.close()
    for sk, s, dk, d, kind, reason, conf, ev, n, first, last, attrs in rows:
        edge = Edge(
            kind,
            sk,
            s,
            dk,
            d,
            reason,
            conf,
            tuple(ev or ()),
            int(n or 0),
            first,
            last,
            json.loads(attrs) if attrs else {},
        )
        u, v = node_id(sk, s), node_id(dk, d)
        for nid, k, i in ((u, sk, s), (v, dk, d)):
            if nid not in g:
                g.add_node(nid, kind=k, id=i, label=i)
        g.add_edge(
            u,
            v,
            key=f"{kind}:{conf}:{reason}",
            kind=kind,
            reason=reason,
            confidence=conf,
            evidence=edge.evidence,
            evidence_count=edge.evidence_count,
            first_seen=first,
            last_seen=last,
            attributes=edge.attributes,
            edge=edge,
        )
    return g
