"""GraphML for Gephi, yEd, Cytoscape desktop and networkx.

Written by :func:`networkx.write_graphml` from a ``MultiDiGraph`` holding only scalar
attributes (GraphML has no lists or objects: lists of strings become ``;``-joined text,
objects JSON text). Node ids are ``<kind>:<id as logged>``; every node has ``kind`` and
``name``; every edge has ``kind`` (``MINTED`` ...), ``reason``, ``confidence`` and its evidence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keytrail.report.graphdata import collect
from keytrail.safetext import xml_text

if TYPE_CHECKING:
    from pathlib import Path

    from keytrail.store.case import CaseStore


def _graphml_value(value: Any) -> Any:
    """A scalar for GraphML; text with what XML 1.0 forbids (NUL, ESC, ...) escaped, so the file parses."""
    if isinstance(value, list):
        value = ";".join(value)
    return xml_text(value) if isinstance(value, str) else value


def _one_type_per_key(rows: list[dict[str, Any]]) -> None:
    """GraphML declares one type per attribute: a key seen with several types becomes text everywhere."""
    types: dict[str, set[type]] = {}
    for row in rows:
        for k, v in row.items():
            types.setdefault(k, set()).add(type(v))
    mixed = {k for k, t in types.items() if len(t) > 1}
    for row in rows:
        for k in mixed & row.keys():
            v = row[k]
            row[k] = ("true" if v else "false") if isinstance(v, bool) else str(v)


def export_graphml(store: CaseStore, path: Path) -> int:
    import networkx as nx

    nodes, edges = collect(store)
    node_attrs = [
        {
            **{k: _graphml_value(v) for k, v in n.properties.items()},
            "kind": n.kind,
            "name": xml_text(n.name),
        }
        for n in nodes
    ]
    edge_attrs = [
        {**{k: _graphml_value(v) for k, v in e.properties.items()}, "kind": e.kind} for e in edges
    ]
    _one_type_per_key(node_attrs)
    _one_type_per_key(edge_attrs)
    graph = nx.MultiDiGraph(name="keytrail identity graph")
    for n, attrs in zip(nodes, node_attrs):
        graph.add_node(xml_text(n.id), **attrs)
    for i, (e, attrs) in enumerate(zip(edges, edge_attrs)):
        graph.add_edge(xml_text(e.src), xml_text(e.dst), key=f"e{i}", **attrs)
    nx.write_graphml(graph, str(path), encoding="utf-8", prettyprint=True)
    return int(graph.number_of_nodes()) + int(graph.number_of_edges())
