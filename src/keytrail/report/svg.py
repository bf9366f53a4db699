"""The lineage graph drawn by keytrail itself as inline SVG: a simple layered layout.

Columns left to right: humans, agents, credentials by mint depth (the examined credential
first), principals, resources. Within a column nodes are ordered by the mean position of
their neighbours in earlier columns (one barycentre sweep), then by label, so the drawing is
deterministic and mostly free of crossings for lineage-sized graphs. Edges are curves coloured
by kind; dashes show confidence (solid proven, long dash strong, short dash inferred).
No script, no external reference: labels and tooltips are escaped with :func:`html.escape`.
"""

from __future__ import annotations

from html import escape
from typing import Any

NODE_W, NODE_H, COL_GAP, ROW_GAP, PAD = 176, 38, 46, 14, 16
#: Wider drawings keep their natural size on screen (the box scrolls) instead of shrinking unreadably.
WIDE = 1500
KIND_STYLE = {
    "human": ("#dbeafe", "#1d4ed8", "HUMAN"),
    "agent": ("#ede9fe", "#6d28d9", "AGENT"),
    "credential": ("#fef3c7", "#b45309", "CREDENTIAL"),
    "principal": ("#ccfbf1", "#0f766e", "PRINCIPAL"),
    "resource": ("#f1f5f9", "#475569", "RESOURCE"),
    "account": ("#f1f5f9", "#475569", "ACCOUNT"),
}
EDGE_COLOR = {
    "DELEGATED": "#1d4ed8",
    "USES": "#6d28d9",
    "MINTED": "#b45309",
    "AUTHENTICATES_AS": "#0f766e",
    "ACTED_ON": "#64748b",
}
DASH = {"proven": "", "strong": "7 3", "inferred": "3 3"}


def _short(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


def _columns(nodes: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    max_depth = max(
        (int(n.get("depth") or 0) for n in nodes if n["kind"] == "credential"), default=0
    )

    def col(n: dict[str, Any]) -> int:
        k = n["kind"]
        if k == "human":
            return 0
        if k == "agent":
            return 1
        if k == "credential":
            return 2 + int(n.get("depth") or 0)
        if k == "principal":
            return 3 + max_depth
        return 4 + max_depth

    cols: dict[int, list[dict[str, Any]]] = {}
    for n in nodes:
        cols.setdefault(col(n), []).append(n)
    return [cols[k] for k in sorted(cols)]


def render_lineage_svg(lineage: dict[str, Any], uid: str = "g") -> str:
    """An ``<svg>`` element for a report lineage (``{"nodes": [...], "edges": [...]}``)."""
    nodes, edges = lineage.get("nodes", []), lineage.get("edges", [])
    if not nodes:
        return ""
    columns = _columns(nodes)
    neighbours: dict[str, set[str]] = {}
    for e in edges:
        neighbours.setdefault(e["src"], set()).add(e["dst"])
        neighbours.setdefault(e["dst"], set()).add(e["src"])
    pos: dict[str, tuple[int, int]] = {}
    row_of: dict[str, float] = {}
    tallest = max(len(c) for c in columns)
    for ci, column in enumerate(columns):

        def key(n: dict[str, Any]) -> tuple[float, str]:
            prev = [row_of[m] for m in neighbours.get(n["id"], ()) if m in row_of]
            return (sum(prev) / len(prev) if prev else 1e9, n["label"])

        column.sort(key=key)
        for ri, n in enumerate(column):
            row_of[n["id"]] = ri + (tallest - len(column)) / 2
            # Columns are centred vertically on the tallest one.
            top = (tallest - len(column)) * (NODE_H + ROW_GAP) // 2
            pos[n["id"]] = (PAD + ci * (NODE_W + COL_GAP), PAD + 18 + top + ri * (NODE_H + ROW_GAP))
    width = PAD * 2 + len(columns) * NODE_W + (len(columns) - 1) * COL_GAP
    height = PAD * 2 + 18 + max(len(c) for c in columns) * (NODE_H + ROW_GAP)
    wide = " wide" if width > WIDE else ""
    out = [
        (
            f'<svg class="lineage{wide}" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}" role="img" aria-label="credential lineage graph">'
        )
    ]
    out.append("<defs>")
    for kind, color in EDGE_COLOR.items():
        out.append(
            f'<marker id="{uid}-{kind}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
            f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{color}"/></marker>'
        )
    out.append("</defs>")
    for e in edges:
        if e["src"] not in pos or e["dst"] not in pos:
            continue
        (x1, y1), (x2, y2) = pos[e["src"]], pos[e["dst"]]
        sx, sy, tx, ty = float(x1 + NODE_W), y1 + NODE_H / 2, float(x2), y2 + NODE_H / 2
        if tx <= sx:  # same or earlier column: loop around below
            sx, tx = x1 + NODE_W / 2, x2 + NODE_W / 2
            sy, ty = float(y1 + NODE_H), float(y2 + NODE_H)
            d = f"M{sx:.0f},{sy:.0f} C{sx:.0f},{sy + 30:.0f} {tx:.0f},{ty + 30:.0f} {tx:.0f},{ty:.0f}"
        else:
            mid = (sx + tx) / 2
            d = f"M{sx:.0f},{sy:.0f} C{mid:.0f},{sy:.0f} {mid:.0f},{ty:.0f} {tx:.0f},{ty:.0f}"
        color = EDGE_COLOR.get(e["kind"], "#64748b")
        dash = DASH.get(e.get("confidence") or "", "")
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        tip = escape(f"{e['kind']} ({e.get('confidence')}): {e.get('reason') or ''}", quote=True)
        marker = f"{uid}-{e['kind']}" if e["kind"] in EDGE_COLOR else f"{uid}-ACTED_ON"
        out.append(
            f'<path d="{d}" fill="none" stroke="{color}" stroke-width="1.6"{dash_attr} '
            f'marker-end="url(#{marker})"><title>{tip}</title></path>'
        )
    for ci, column in enumerate(columns):
        kinds = {n["kind"] for n in column}
        head = " / ".join(sorted(KIND_STYLE.get(k, KIND_STYLE["resource"])[2] for k in kinds))
        if "credential" in kinds:
            depths = {int(n.get("depth") or 0) for n in column}
            head = "CREDENTIAL" if depths == {0} else f"MINTED (DEPTH {max(depths)})"
        head_x = PAD + ci * (NODE_W + COL_GAP)
        out.append(f'<text x="{head_x}" y="{PAD + 8}" class="colhead">{escape(head)}</text>')
    for column in columns:
        for n in column:
            x, y = pos[n["id"]]
            fill, stroke, _ = KIND_STYLE.get(n["kind"], KIND_STYLE["resource"])
            width_attr = "2.6" if n.get("root") else "1.2"
            label = str(n["label"])
            sub = n["kind"] + (f" · {n['events']} events" if n.get("events") else "")
            out.append(
                f'<g class="node"><title>{escape(label, quote=True)}</title>'
                f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6" fill="{fill}" '
                f'stroke="{stroke}" stroke-width="{width_attr}"/>'
                f'<text x="{x + 8}" y="{y + 16}" class="nlabel">{escape(_short(label))}</text>'
                f'<text x="{x + 8}" y="{y + 30}" class="nsub">{escape(sub)}</text></g>'
            )
    out.append("</svg>")
    return "".join(out)
