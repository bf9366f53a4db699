"""The edge model refuses unexplained edges; load_graph builds the networkx view."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keytrail.graph.build import load_graph
from keytrail.graph.model import EDGE_KINDS, NODE_KINDS, Edge, allowed_confidences
from tests.unit.graph_case import CaseBuilder, incident


def test_edge_needs_reason_and_evidence() -> None:
    ok = Edge(
        "MINTED", "credential", "a", "credential", "b", "AssumeRole", "proven", ("cloudtrail:1",)
    )
    assert ok.evidence_count == 1 and ok.as_dict()["evidence"] == ["cloudtrail:1"]
    with pytest.raises(ValueError, match="no reason"):
        Edge("MINTED", "credential", "a", "credential", "b", " ", "proven", ("cloudtrail:1",))
    with pytest.raises(ValueError, match="no evidence"):
        Edge("MINTED", "credential", "a", "credential", "b", "AssumeRole", "proven", ())
    with pytest.raises(ValueError, match="cannot join"):
        Edge("USES", "human", "a", "credential", "b", "why", "proven", ("e",))
    with pytest.raises(ValueError, match="confidence"):
        Edge("USES", "agent", "a", "credential", "b", "why", "certain", ("e",))


def test_kinds_are_described() -> None:
    assert all(k.description for k in NODE_KINDS.values())
    assert all(k.description for k in EDGE_KINDS.values())
    assert allowed_confidences("strong") == ["proven", "strong"]


def test_load_graph(tmp_path: Path) -> None:
    s = incident(tmp_path / "c.duckdb")
    try:
        g = load_graph(s)
        assert g.nodes["credential:ASIASTOLEN0000000001"]["origin"] == "unknown"
        assert g.nodes["agent:ledger-bot"]["kind"] == "agent"
        kinds = {d["kind"] for _, _, d in g.edges(data=True)}
        assert kinds == set(EDGE_KINDS) - {"SAME_AGENT"}  # the sample names each agent one way
        assert all(d["reason"] and d["evidence"] for _, _, d in g.edges(data=True))
        proven = load_graph(s, min_confidence="proven")
        assert {d["confidence"] for _, _, d in proven.edges(data=True)} == {"proven"}
        assert not proven.has_edge("credential:lease-aws-1", "credential:AKIANEWKEY0000000001")
        ids = load_graph(s, resources=False)
        assert "ACTED_ON" not in {d["kind"] for _, _, d in ids.edges(data=True)}
        assert not [n for n, d in ids.nodes(data=True) if d["kind"] == "resource"]
    finally:
        s.close()


_edges = st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7)), max_size=14)
_PROP: dict[str, CaseBuilder] = {}


@settings(max_examples=8, deadline=None)
@given(_edges)
def test_descendants_match_networkx(
    tmp_path_factory: pytest.TempPathFactory, edges: list[tuple[int, int]]
) -> None:
    """D(c) from recursive SQL equals networkx descendants, cycles included."""
    import networkx as nx

    from keytrail.analysis.lineage import descendants
    from keytrail.graph.derive import derive

    if (
        "b" not in _PROP
    ):  # one writable case, emptied per example (building a case per example is slow)
        _PROP["b"] = CaseBuilder(tmp_path_factory.mktemp("prop") / "c.duckdb")
    b = _PROP["b"]
    b.store.con.execute("DELETE FROM events; DELETE FROM credential_issues")
    for i, (p, c) in enumerate(edges):
        ev = b.event(
            "cloudtrail", f"mint{i}", i, "sts:AssumeRole", cred=f"K{p}", cred_kind="aws-access-key"
        )
        b.issue(f"K{c}", "aws-temporary-key", f"K{p}", ev, i)
    derive(b.store.con)
    g = nx.DiGraph([(f"K{p}", f"K{c}") for p, c in edges if p != c])
    for node in g.nodes:
        assert descendants(b.store, node) == sorted(nx.descendants(g, node))
