"""Helpers shared by the HTML and Markdown renderers: reading the report dict uniformly."""

from __future__ import annotations

from typing import Any

LEVEL_ORDER = ("critical", "high", "medium", "low", "informational")
#: Derived credentials shown per credential section (the JSON report lists all of them).
DERIVED_SHOWN = 200


def more_ranked(total: int, listed: int, shown: int) -> str:
    """The note under a ranking table that shows ``shown`` of the ``listed`` (of ``total``) credentials."""
    shown = min(shown, listed)
    where = (
        "in the JSON report"
        if listed >= total
        else f"(the JSON report lists the top {listed}; `keytrail credentials CASE --json` lists all)"
    )
    return f"{total - shown} more credentials {where}."


def resources_note(section: dict[str, Any]) -> str:
    """Why the resource table of a credential is shorter than its blast radius ('' when complete)."""
    total, listed = (
        section.get("resources_total") or 0,
        len({r["resource_id"] for r in section["resources"]}),
    )
    if total <= listed:
        return ""
    return (
        f"The {listed} resources with the most events of {total} are listed; "
        f"`keytrail blast CASE {section['credential']} --json` has the counts for all."
    )


def derived_note(section: dict[str, Any]) -> str:
    """The note under a derived-credential table cut at DERIVED_SHOWN rows ('' when complete)."""
    n = len(section["derived_credentials"])
    return (
        ""
        if n <= DERIVED_SHOWN
        else f"{n - DERIVED_SHOWN} more derived credentials in the JSON report."
    )


def get(d: Any, *keys: str, default: Any = None) -> Any:
    if not isinstance(d, dict):
        return default
    for k in keys:
        if d.get(k) is not None:
            return d[k]
    return default


def count(value: Any) -> Any:
    """A count given either as a number or as the list it counts."""
    return len(value) if isinstance(value, (list, tuple)) else value


def chain_steps(trace: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """(steps, gaps) of a delegation trace document, whatever its exact key names."""
    steps_raw = get(trace, "chain", "steps", "links", "path", default=[])
    steps = []
    for s in steps_raw if isinstance(steps_raw, list) else []:
        if not isinstance(s, dict):
            steps.append(
                {
                    "kind": "",
                    "id": str(s),
                    "label": "",
                    "reason": "",
                    "confidence": "",
                    "evidence": [],
                }
            )
            continue
        node = s.get("node") if isinstance(s.get("node"), dict) else {}
        steps.append(
            {
                "kind": get(s, "kind", "node_kind", "role", "type", default="")
                or get(node, "kind", default=""),
                "id": get(s, "id", "node_id", "value", "name", default="")
                or get(node, "id", default=""),
                "label": get(s, "label", default=""),
                "reason": get(s, "reason", default=""),
                "confidence": get(s, "confidence", default=""),
                "evidence": get(s, "evidence", default=[]) or [],
            }
        )
    gaps_raw = get(trace, "gaps", "notes", "gap", default=[])
    gaps = [
        str(g) if not isinstance(g, dict) else str(get(g, "message", "detail", "reason", default=g))
        for g in (gaps_raw if isinstance(gaps_raw, list) else [gaps_raw])
    ]
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


def terms_rows(terms: Any) -> list[tuple[str, str, str, str]]:
    """Score terms as (name, value, points, explanation) rows, from a list of term objects or a dict."""
    rows = []
    items = (
        terms.items()
        if isinstance(terms, dict)
        else ((get(t, "name", "term", "key", default=""), t) for t in terms)
        if isinstance(terms, list)
        else ()
    )
    for name, t in items:
        if isinstance(t, dict):
            rows.append(
                (
                    scalar_text(name),
                    scalar_text(get(t, "value")),
                    scalar_text(get(t, "points", "score")),
                    scalar_text(get(t, "explanation", "why", "reason", "detail", default="")),
                )
            )
        else:
            rows.append((scalar_text(name), scalar_text(t), "", ""))
    return rows


def dict_rows(items: Any, limit: int = 50) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows for a list of flat dicts whose keys are not fixed (analysis results)."""
    rows_in = [i for i in (items if isinstance(items, list) else []) if isinstance(i, dict)][:limit]
    headers: list[str] = []
    for r in rows_in:
        headers += [k for k in r if k not in headers]
    return headers, [[r.get(h) for h in headers] for r in rows_in]


def common_root(paths: list[str]) -> str:
    """The directory all evidence paths share ("" when none or only "/"), to print paths shorter."""
    import posixpath

    dirs = [posixpath.dirname(p) for p in paths if p]
    if len(dirs) < 2:
        return ""
    root = posixpath.commonpath(dirs) if all(d.startswith("/") for d in dirs) else ""
    return "" if root in ("", "/") else root


def relative(path: str, root: str) -> str:
    return path[len(root) + 1 :] if root and path.startswith(root + "/") else path
