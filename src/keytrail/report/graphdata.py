"""The identity graph as flat nodes and edges, read from the case's ``links`` table.

Shared by the OpenGraph and GraphML exports. Node ids are ``<kind>:<id as logged>``, the
same ids :func:`keytrail.graph.build.load_graph` uses, so a node in BloodHound or Gephi can
be looked up in the TUI. Every property is a scalar or a list of strings (both formats
refuse nested objects); JSON objects from the case are flattened one level (``attr_<key>``)
and anything deeper is JSON text. Output is sorted, so exports are byte-stable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keytrail.timefmt import format_utc

if TYPE_CHECKING:
    from keytrail.store.case import CaseStore

Scalar = str | int | float | bool


@dataclass
class Node:
    id: str
    kind: str
    name: str
    properties: dict[str, Scalar | list[str]] = field(default_factory=dict)


@dataclass
class Edge:
    src: str
    dst: str
    kind: str
    properties: dict[str, Scalar | list[str]] = field(default_factory=dict)


def node_id(kind: str, ident: str) -> str:
    return f"{kind}:{ident}"


def _scalar(value: Any) -> Scalar | list[str] | None:
    if value is None:
        return None
    if hasattr(value, "isoformat") and hasattr(value, "hour"):
        return format_utc(value)
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, str) for v in value):
            return list(value)
        return json.dumps(list(value), sort_keys=True, default=str)
    return json.dumps(value, sort_keys=True, default=str)


def _flatten(props: dict[str, Any], attributes: Any, prefix: str = "attr_") -> None:
    if isinstance(attributes, str):
        try:
            attributes = json.loads(attributes)
        except ValueError:
            props[prefix.rstrip("_")] = attributes
            return
    if isinstance(attributes, dict):
        for key in sorted(attributes):
            value = _scalar(attributes[key])
            if value is not None:
                props[f"{prefix}{key}"] = value


def _put(props: dict[str, Any], key: str, value: Any) -> None:
    v = _scalar(value)
    if v is not None:
        props[key] = v


def collect(store: CaseStore) -> tuple[list[Node], list[Edge]]:
    """All nodes touched by a link (with credential/principal facts) and all links, sorted."""
    nodes: dict[str, Node] = {}
    edges: list[Edge] = []
    rows = store.query(
        """SELECT src_kind, src, dst_kind, dst, kind, reason, confidence, evidence, evidence_count,
                  first_seen, last_seen, CAST(attributes AS VARCHAR) AS attributes
           FROM links ORDER BY kind, src_kind, src, dst_kind, dst, reason, confidence"""
    )
    for r in rows:
        for kind, ident in ((r["src_kind"], r["src"]), (r["dst_kind"], r["dst"])):
            nid = node_id(kind, ident)
            if nid not in nodes:
                nodes[nid] = Node(nid, kind, ident)
        props: dict[str, Any] = {}
        for key in (
            "reason",
            "confidence",
            "evidence",
            "evidence_count",
            "first_seen",
            "last_seen",
        ):
            _put(props, key, r[key])
        _flatten(props, r["attributes"])
        edges.append(
            Edge(
                node_id(r["src_kind"], r["src"]), node_id(r["dst_kind"], r["dst"]), r["kind"], props
            )
        )
    for c in store.query(
        """SELECT credential_id, kind, origin, parent_credential_id, issued_at, issued_by_event, expires_at,
                  principal_uid, first_seen, last_seen, events, sources FROM credentials"""
    ):
        node = nodes.get(node_id("credential", c["credential_id"]))
        if node is None:
            continue
        for key in (
            "kind",
            "origin",
            "parent_credential_id",
            "issued_at",
            "issued_by_event",
            "expires_at",
            "principal_uid",
            "first_seen",
            "last_seen",
            "events",
            "sources",
        ):
            _put(node.properties, "credential_kind" if key == "kind" else key, c[key])
    for p in store.query(
        """SELECT principal_id, kind, name, account, first_seen, last_seen, events,
                  CAST(attributes AS VARCHAR) AS attributes FROM principals"""
    ):
        for kind in ("principal", "human", "agent"):
            node = nodes.get(node_id(kind, p["principal_id"]))
            if node is None:
                continue
            for key in ("kind", "name", "account", "first_seen", "last_seen", "events"):
                _put(node.properties, "principal_kind" if key == "kind" else key, p[key])
            _flatten(node.properties, p["attributes"])
    return [nodes[k] for k in sorted(nodes)], edges
