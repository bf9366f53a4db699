"""The attack path on the report's first screen: human -> agent -> credential chain -> resources.

Four columns that always fit the page (a fixed 900-unit wide ``viewBox`` scaled to the
width): the humans who delegated, the agents that used the credential, the chain of
credentials minted from it stacked top to bottom, and the sensitive resources it reached.
Nodes carry a short id, the kind and the principal name, and link to their section of the
report (fragment links only: no URL, no script). Every label is escaped.
"""

from __future__ import annotations

import itertools
from html import escape
from typing import Any

from keytrail.idfmt import middle, short_id
from keytrail.report.svg import EDGE_COLOR, KIND_STYLE

WIDTH, PAD, HEAD, NODE_H, ROW_GAP = 900, 10, 18, 36, 8
#: Characters of a label that fit a node of the width below (11 px monospace).
LABEL_CHARS = 30


def _node(
    x: float,
    y: float,
    w: float,
    kind: str,
    label: str,
    sub: str,
    href: str,
    title: str,
    root: bool = False,
) -> str:
    fill, stroke, _ = KIND_STYLE.get(kind, KIND_STYLE["resource"])
    return (
        f'<a href="{escape(href, quote=True)}"><g class="node"><title>{escape(title, quote=True)}</title>'
        f'<rect x="{x:.0f}" y="{y:.0f}" width="{w:.0f}" height="{NODE_H}" rx="6" fill="{fill}" '
        f'stroke="{stroke}" stroke-width="{2.6 if root else 1.2}"/>'
        f'<text x="{x + 8:.0f}" y="{y + 15:.0f}" class="nlabel">{escape(label)}</text>'
        f'<text x="{x + 8:.0f}" y="{y + 29:.0f}" class="nsub">{escape(sub)}</text></g></a>'
    )


def _edge(x1: float, y1: float, x2: float, y2: float, kind: str, uid: str) -> str:
    color = EDGE_COLOR.get(kind, "#64748b")
    if abs(x1 - x2) < 1:  # straight down the chain
        d = f"M{x1:.0f},{y1:.0f} L{x2:.0f},{y2:.0f}"
    else:
        mid = (x1 + x2) / 2
        d = f"M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} {x2:.0f},{y2:.0f}"
    return (
        f'<path d="{d}" fill="none" stroke="{color}" stroke-width="1.6" '
        f'marker-end="url(#{uid}-{kind})"/>'
    )


def render_attack_path(path: dict[str, Any] | None, uid: str = "ap") -> str:
    """An ``<svg>`` of the report's ``summary.attack_path`` ('' when there is none)."""
    if not path or not path.get("chain"):
        return ""
    sec = f"#cred-{path.get('section', 1)}"
    cols = [
        ("HUMAN", path.get("humans") or []),
        ("AGENT", path.get("agents") or []),
        ("CREDENTIAL CHAIN", path["chain"]),
        ("SENSITIVE RESOURCES", path.get("resources") or []),
    ]
    cols = [c for c in cols if c[1]]
    gap = 40
    node_w = (WIDTH - 2 * PAD - gap * (len(cols) - 1)) / len(cols)
    chars = max(12, int(node_w / 7.4) - 1)
    rows = max(len(items) for _, items in cols)
    height = PAD * 2 + HEAD + rows * (NODE_H + ROW_GAP)
    out = [
        (
            f'<svg class="lineage path" viewBox="0 0 {WIDTH} {height}" '
            f'width="{WIDTH}" height="{height}" role="img" '
            'aria-label="attack path: human, agent, credential chain, sensitive resources">'
        ),
        "<defs>",
    ]
    for kind, color in EDGE_COLOR.items():
        out.append(
            f'<marker id="{uid}-{kind}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
            f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{color}"/></marker>'
        )
    out.append("</defs>")
    pos: dict[str, tuple[float, float]] = {}
    nodes: list[str] = []
    for ci, (head, items) in enumerate(cols):
        x = PAD + ci * (node_w + gap)
        out.append(f'<text x="{x:.0f}" y="{PAD + 10}" class="colhead">{escape(head)}</text>')
        for ri, item in enumerate(items):
            y = PAD + HEAD + ri * (NODE_H + ROW_GAP)
            if head == "CREDENTIAL CHAIN":
                ident = item["credential"]
                sub = " · ".join(
                    x for x in (item.get("kind") or "", item.get("principal") or "") if x
                )
                nodes.append(
                    _node(
                        x,
                        y,
                        node_w,
                        "credential",
                        short_id(ident, chars),
                        middle(sub, chars),
                        sec,
                        f"{ident} ({sub})",
                        root=ri == 0,
                    )
                )
                pos[f"c:{ident}"] = (x, y)
            elif head == "SENSITIVE RESOURCES":
                rid = item["resource"]
                sub = ", ".join(item.get("actions") or [])
                nodes.append(
                    _node(
                        x,
                        y,
                        node_w,
                        "resource",
                        middle(rid, chars),
                        middle(sub, chars),
                        f"{sec}-resources",
                        f"{rid}: {sub}",
                    )
                )
                pos[f"r:{rid}"] = (x, y)
            else:
                kind = "human" if head == "HUMAN" else "agent"
                nodes.append(
                    _node(
                        x, y, node_w, kind, middle(str(item), chars), kind, f"{sec}-ids", str(item)
                    )
                )
                pos[f"{kind[0]}:{item}"] = (x, y)
    edges: list[str] = []
    chain = path["chain"]
    first = pos.get(f"c:{chain[0]['credential']}")
    for h in path.get("humans") or []:
        for a in path.get("agents") or []:
            (x1, y1), (x2, y2) = pos[f"h:{h}"], pos[f"a:{a}"]
            edges.append(_edge(x1 + node_w, y1 + NODE_H / 2, x2, y2 + NODE_H / 2, "DELEGATED", uid))
    for a in path.get("agents") or []:
        if first:
            x1, y1 = pos[f"a:{a}"]
            edges.append(
                _edge(x1 + node_w, y1 + NODE_H / 2, first[0], first[1] + NODE_H / 2, "USES", uid)
            )
    if first and not path.get("agents"):
        for h in path.get("humans") or []:
            x1, y1 = pos[f"h:{h}"]
            edges.append(
                _edge(
                    x1 + node_w, y1 + NODE_H / 2, first[0], first[1] + NODE_H / 2, "DELEGATED", uid
                )
            )
    for parent, child in itertools.pairwise(chain):
        (x1, y1), (x2, y2) = pos[f"c:{parent['credential']}"], pos[f"c:{child['credential']}"]
        edges.append(_edge(x1 + node_w / 2, y1 + NODE_H, x2 + node_w / 2, y2, "MINTED", uid))
    last = chain[-1]["credential"]
    for r in path.get("resources") or []:
        src = next((c for c in r.get("credentials") or [] if f"c:{c}" in pos), last)
        (x1, y1), (x2, y2) = pos[f"c:{src}"], pos[f"r:{r['resource']}"]
        edges.append(_edge(x1 + node_w, y1 + NODE_H / 2, x2, y2 + NODE_H / 2, "ACTED_ON", uid))
    out += edges + nodes
    out.append("</svg>")
    return "".join(out)
