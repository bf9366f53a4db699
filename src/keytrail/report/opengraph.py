"""BloodHound CE OpenGraph JSON, so the identity graph opens in BloodHound.

Shape (SpecterOps ``GenericGraphFile``; see research/ecosystem.md §3.7)::

    {"metadata": {"source_kind": "keytrail"},
     "graph": {"nodes": [{"id", "kinds", "properties"}],
               "edges": [{"kind", "start": {"value", "match_by": "id"},
                          "end": {"value", "match_by": "id"}, "properties"}]}}

Node kinds carry a ``KT`` prefix (``KTCredential``) so they never clash with AD/Azure kinds;
``kinds`` has the keytrail kind and the source kind (BloodHound allows 1 to 3). Properties are
flat: strings, numbers, booleans, or lists of strings. Edges reference nodes by id.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from keytrail.report.graphdata import collect
from keytrail.safetext import json_text

if TYPE_CHECKING:
    from pathlib import Path

    from keytrail.store.case import CaseStore

SOURCE_KIND = "keytrail"

NODE_KINDS = {
    "human": "KTHuman",
    "agent": "KTAgent",
    "credential": "KTCredential",
    "principal": "KTPrincipal",
    "resource": "KTResource",
    "account": "KTAccount",
}
EDGE_KINDS = {
    "DELEGATED": "KTDelegated",
    "USES": "KTUses",
    "MINTED": "KTMinted",
    "AUTHENTICATES_AS": "KTAuthenticatesAs",
    "ACTED_ON": "KTActedOn",
}


def _camel(kind: str) -> str:
    return "KT" + "".join(part.capitalize() for part in kind.replace("-", "_").split("_"))


def opengraph_document(store: CaseStore) -> dict[str, Any]:
    nodes, edges = collect(store)
    out_nodes = []
    for n in nodes:
        props: dict[str, Any] = {
            "name": n.name,
            "objectid": n.id,
            "displayname": n.name,
            "kt_kind": n.kind,
        }
        props.update({k: v for k, v in n.properties.items() if k not in props})
        out_nodes.append(
            {
                "id": n.id,
                "kinds": [NODE_KINDS.get(n.kind, _camel(n.kind)), SOURCE_KIND],
                "properties": props,
            }
        )
    out_edges = [
        {
            "kind": EDGE_KINDS.get(e.kind, _camel(e.kind)),
            "start": {"value": e.src, "match_by": "id"},
            "end": {"value": e.dst, "match_by": "id"},
            "properties": dict(e.properties),
        }
        for e in edges
    ]
    return {
        "metadata": {"source_kind": SOURCE_KIND},
        "graph": {"nodes": out_nodes, "edges": out_edges},
    }


def export_opengraph(store: CaseStore, path: Path) -> int:
    doc = opengraph_document(store)
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        out.write(json_text(json.dumps(doc, ensure_ascii=False, indent=1, sort_keys=False)) + "\n")
    return len(doc["graph"]["nodes"]) + len(doc["graph"]["edges"])
