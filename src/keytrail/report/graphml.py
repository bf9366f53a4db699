"""GraphML for Gephi, yEd, Cytoscape desktop and networkx.

Written by :func:`networkx.write_graphml` from a ``MultiDiGraph`` holding only scalar
attributes (GraphML has no lists or objects: lists of strings become ``;``-joined text,
objects JSON text). Node ids are ``<kind>:<id as logged>``; every node has ``kind`` and
``name``; every edge has ``kind`` (``MINTED`` ...), ``reason``, ``confidence`` and its evidence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keytrail.report.graphdata import collect

if TYPE_CHECKING:
    from pathlib import Path

    from keytrail.store.case import CaseStore


def _graphml_value(value: Any) -> Any:
    if isinstance(value, list):
        return ";".join(value)
    return value


def export_graphml(store: CaseStore, path: Path) -> int:
    import networkx as nx

    nodes, edges = collect(store)
    graph = nx.MultiDiGraph(name="keytrail identity graph")
    for n in nodes:
        attrs = {k: _graphml_value(v) for k, v in n.properties.items()}
        attrs.update(kind=n.kind, name=n.name)
        graph.add_node(n.id, **attrs)
    for i, e in enumerate(edges):
        attrs = {k: _graphml_value(v) for k, v in e.properties.items()}
        attrs["kind"] = e.kind
        graph.add_edge(e.src, e.dst, key=f"e{i}", **attrs)
    nx.write_graphml(graph, str(path), encoding="utf-8", prettyprint=True)
    return int(graph.number_of_nodes()) + int(graph.number_of_edges())
