"""Helpers shared by the HTML and Markdown renderers: reading the report dict uniformly."""

from __future__ import annotations

from typing import Any

LEVEL_ORDER = ("critical", "high", "medium", "low", "informational")


def get(d: Any, *keys: str, default: Any = None) -> Any:
    if not isinstance(d, dict):
        return default
    for k in keys:
        if d.get(k) is not None:
            return d[k]
    return default


def chain_steps(trace: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """(steps, gaps) of a delegation trace document, whatever its exact key names."""
    steps_raw = get(trace, "chain", "steps", "links", "path", default=[])
    steps = []
    for s in steps_raw if isinstance(steps_raw, list) else []:
        if not isinstance(s, dict):
            steps.append({"kind": "", "id": str(s), "reason": "", "confidence": "", "evidence": []})
            continue
        node = s.get("node") if isinstance(s.get("node"), dict) else {}
        steps.append({
            "kind": get(s, "kind", "node_kind", "role", "type", default="") or get(node, "kind", default=""),
            "id": get(s, "id", "node_id", "value", "label", "name", default="") or get(node, "id", default=""),
            "reason": get(s, "reason", default=""),
            "confidence": get(s, "confidence", default=""),
            "evidence": get(s, "evidence", default=[]) or [],
        })
    gaps_raw = get(trace, "gaps", "notes", "gap", default=[])
    gaps = [str(g) if not isinstance(g, dict) else str(get(g, "message", "detail", "reason", default=g))
            for g in (gaps_raw if isinstance(gaps_raw, list) else [gaps_raw])]
    return steps, gaps


def scalar_text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    if isinstance(value, list):
        return ", ".join(scalar_text(v) for v in value) or "—"
    if isinstance(value, dict):
        return ", ".join(f"{k}={scalar_text(v)}" for k, v in value.items()) or "—"
    return str(value)


def terms_rows(terms: Any) -> list[tuple[str, str, str]]:
    """Score terms as (name, value, explanation) rows, from a dict or a list of term objects."""
    rows = []
    if isinstance(terms, dict):
        for k, v in terms.items():
            if isinstance(v, dict):
                rows.append((k, scalar_text(get(v, "value", "points", "score")),
                             scalar_text(get(v, "why", "explanation", "reason", "detail", default=""))))
            else:
                rows.append((k, scalar_text(v), ""))
    elif isinstance(terms, list):
        for t in terms:
            if isinstance(t, dict):
                rows.append((scalar_text(get(t, "name", "term", "key")),
                             scalar_text(get(t, "value", "points", "score")),
                             scalar_text(get(t, "why", "explanation", "reason", "detail", default=""))))
    return rows
