"""The report as GitHub-flavoured Markdown.

Log text is attacker-controlled, so every value is rendered inert: characters Markdown
would interpret inline (``\\ ` * _ { } [ ] | ~ !``) are backslash-escaped, ``& < >``
become entities so no raw HTML from a log reaches the page, and newlines become
spaces so a value can not break out of its table row. Identifiers go in code spans whose
fence is longer than any backtick run inside them; ``|`` inside a code span in a table is
written ``\\|`` (GitHub's table rule). No lineage drawing: Markdown on GitHub shows no inline
SVG, so the lineage is a list of edges.
"""

from __future__ import annotations

import re
from typing import Any

from keytrail.report._common import (
    DERIVED_SHOWN,
    LEVEL_ORDER,
    chain_steps,
    common_root,
    count,
    derived_note,
    dict_rows,
    get,
    more_ranked,
    relative,
    resources_note,
    scalar_text,
    terms_rows,
)

_SPECIAL = re.compile(r"([\\`*_{}\[\]|~!])")


def t(value: Any) -> str:
    """Inline text, inert in Markdown and in a table cell."""
    text = scalar_text(value).replace("\r", " ").replace("\n", " ")
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _SPECIAL.sub(r"\\\1", text)
    # Break GitHub's extended autolinks so a logged URL is shown, not linked.
    return text.replace("://", ":\\/\\/").replace("www.", "www\\.")


def c(value: Any, table: bool = True) -> str:
    """A code span for identifiers; ``table`` (default) escapes ``|`` as GitHub tables need.

    Outside a table ``\\|`` would show literally (code spans take no escapes), so
    ``table=False`` leaves ``|`` alone.
    """
    text = scalar_text(value).replace("\r", " ").replace("\n", " ")
    if text == "—":
        return text
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    if table:
        text = text.replace("|", "\\|")
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


_CODE = re.compile(r"`([^`\n]+)`")


def prose(value: Any) -> str:
    """Our sentences that mark commands with backticks (``run `vault token revoke …` ``).

    Each backticked command becomes a code span (shown as typed: ``<accessor>`` stays
    ``<accessor>``, never ``&lt;accessor&gt;``); the text between goes through :func:`t`.
    Escaping the whole sentence with :func:`t` showed ``\\``` and ``&lt;`` literally in the
    commands. Not for table cells (``|`` in a command is left as is).
    """
    text = scalar_text(value).replace("\r", " ").replace("\n", " ")
    out, pos = [], 0
    for m in _CODE.finditer(text):
        out += [t(text[pos : m.start()]) if m.start() > pos else "", c(m.group(1), table=False)]
        pos = m.end()
    out.append(t(text[pos:]) if pos < len(text) else "")
    return "".join(out)


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return ["*None.*", ""]
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out + [""]


def _header(doc: dict[str, Any]) -> list[str]:
    h = doc["header"]
    w = h["window"]
    out = [
        "## 1. Case and evidence",
        "",
        (
            f"Case {c(h['case'])}; events from {t(h['time_range'][0])} to {t(h['time_range'][1])} (UTC); "
            f"analysis window: {t(w['since'] or 'start of evidence')} to {t(w['until'] or 'end of evidence')}; "
            f"ingest finalized: {t(h['finalized'])}."
        ),
        "",
        "### Evidence files",
        "",
    ]
    root = common_root([f["path"] for f in h["evidence"]])
    if root:
        out += [f"Paths relative to {c(root)}.", ""]
    out += _table(
        ["#", "file", "SHA-256", "source", "status", "events", "rejected", "integrity"],
        [
            [
                t(f["file_id"]),
                c(relative(f["path"], root)),
                c(f["sha256"]),
                t(f["source"]),
                t(f["status"]),
                t(f["events"]),
                t(f["rejected"]),
                t(f["integrity"]),
            ]
            for f in h["evidence"]
        ],
    )
    out += ["### Sources", ""]
    out += _table(
        ["source", "files", "events", "rejected", "first event", "last event"],
        [
            [
                t(s),
                t(v["files"]),
                t(v["events"]),
                t(v["rejected"]),
                t(v["time_range"][0]),
                t(v["time_range"][1]),
            ]
            for s, v in sorted(h["sources"].items())
        ],
    )
    out += ["### Coverage gaps and integrity", ""]
    out += _table(["gap", "detail"], [[t(g["kind"]), t(g["detail"])] for g in h["coverage_gaps"]])
    out += ["### Rejected records", ""]
    out += _table(
        ["file", "path", "rejected", "first record", "example reason"],
        [
            [
                t(r["file_id"]),
                c(r["path"]),
                t(r["rejected"]),
                t(r["first_record"]),
                t(r["example_reason"]),
            ]
            for r in h["rejects_by_file"]
        ],
    )
    return out


def _ranking(doc: dict[str, Any]) -> list[str]:
    r = doc["ranking"]
    out = ["## 2. Credentials ranked by blast radius", ""]
    if r.get("note"):
        out += [f"*{t(r['note'])}*", ""]
    out += _table(
        [
            "#",
            "credential",
            "kind",
            "holder",
            "score",
            "events",
            "derived",
            "agents",
            "humans",
            "last seen",
        ],
        [
            [
                t(i),
                c(get(x, "credential")),
                t(get(x, "kind")),
                t(get(x, "holder")),
                t(get(x, "score")),
                t(get(x, "events", "event_count")),
                t(count(get(x, "derived_credentials"))),
                t(get(x, "agents")),
                t(get(x, "humans")),
                t(get(x, "last_seen")),
            ]
            for i, x in enumerate(r["credentials"][:50], 1)
        ],
    )
    total = r.get("total", len(r["credentials"]))
    if total > 50:
        out += [f"*{t(more_ranked(total, len(r['credentials']), 50))}*", ""]
    for x in r["credentials"][:10]:
        terms = terms_rows(get(x, "terms", "score_terms", default={}))
        if terms:
            out += [f"Score terms of {c(get(x, 'credential'))}:", ""]
            out += _table(
                ["term", "value", "points", "explanation"],
                [[t(a), t(b), t(p), t(w)] for a, b, p, w in terms],
            )
    return out


def _credential(i: int, cr: dict[str, Any]) -> list[str]:
    a = cr["activity"]
    out = [
        f"### 3.{i} {c(cr['credential'])} ({t(cr['kind'])})",
        "",
        (
            f"Score **{t(cr['score'])}**. The credential and {len(cr['derived_credentials']) - 1} credential(s) "
            f"minted from it signed **{t(a['events'])}** events ({t(a['denied'])} denied, {t(a['actions'])} distinct "
            f"actions, {t(a['accounts'])} account(s)) from {t(a['first_seen'])} to {t(a['last_seen'])}."
        ),
        "",
        "#### Lineage",
        "",
    ]
    out += _table(
        ["from", "edge", "to", "confidence", "reason"],
        [
            [c(e["src"]), t(e["kind"]), c(e["dst"]), t(e["confidence"]), t(e["reason"])]
            for e in cr["lineage"]["edges"]
        ],
    )
    out += ["#### Resources reached", ""]
    if resources_note(cr):
        out += [f"*{t(resources_note(cr))}*", ""]
    out += _table(
        ["resource", "type", "action", "events", "denied", "first", "last"],
        [
            [
                c(r["resource_id"]),
                t(r["resource_type"]),
                t(r["action"]),
                t(r["events"]),
                ("**" + t(r["denied"]) + "**") if r["denied"] else t(r["denied"]),
                t(r["first_seen"]),
                t(r["last_seen"]),
            ]
            for r in cr["resources"]
        ],
    )
    terms = terms_rows(cr.get("terms"))
    if terms:
        out += ["#### Score terms", ""]
        out += _table(
            ["term", "value", "points", "explanation"],
            [[t(a), t(b), t(p), t(w)] for a, b, p, w in terms],
        )
    blast = cr.get("blast_radius") or {}
    for key, title in (
        ("sensitive_actions", "Write, delete and permission-changing actions"),
        ("secrets_read", "Secrets read"),
    ):
        headers, rows = dict_rows(blast.get(key))
        if rows:
            out += [f"#### {title}", ""]
            out += _table([t(h) for h in headers], [[t(v) for v in r] for r in rows])
    if cr.get("potential"):
        out += _potential(cr["potential"])
    out += ["#### Derived credentials", ""]
    out += _table(
        ["credential", "depth", "kind", "minted by", "issued", "expires", "acts as"],
        [
            [
                c(d["credential_id"]),
                t(d["depth"]),
                t(d["kind"]),
                c(d["parent_credential_id"]),
                t(d["issued_at"]),
                t(d["expires_at"]),
                c(d["principal_uid"]),
            ]
            for d in cr["derived_credentials"][:DERIVED_SHOWN]
        ],
    )
    if derived_note(cr):
        out += [f"*{t(derived_note(cr))}*", ""]
    out += ["#### Agents, humans and principals", ""]
    out += _table(
        ["role", "identities"],
        [
            ["humans", ", ".join(c(x) for x in cr["humans"]) or "—"],
            ["agents", ", ".join(c(x) for x in cr["agents"]) or "—"],
            ["principals", ", ".join(c(x) for x in cr["principals"]) or "—"],
        ],
    )
    out += ["#### Timeline (UTC)", ""]
    out += _table(
        ["time", "event id", "credential", "actor", "action", "target", "outcome", "user agent"],
        [
            [
                t(x["time"]),
                c(x["source_event_id"]),
                c(x["credential_id"]),
                t(x["actor_name"]),
                t(x["action"]),
                c(x["target"]),
                t(x["outcome"] + (f" ({x['error_code']})" if x["error_code"] else "")),
                t(x["user_agent"]),
            ]
            for x in cr["timeline"]
        ],
    )
    if cr["timeline_truncated"]:
        out += [
            f"*First {len(cr['timeline'])} of {t(a['events'])} events; the JSON report has all of them.*",
            "",
        ]
    if cr["traces"]:
        out += ["#### Delegation chains of key events", ""]
        for tr in cr["traces"]:
            steps, gaps = chain_steps(tr["trace"])
            out += [
                f"- {c(tr['event_uid'])}: "
                + " → ".join(
                    f"{t(s['kind'])} {c(s['id'])}"
                    + (f" ({t(s['confidence'])})" if s["confidence"] else "")
                    for s in steps
                )
            ]
            out += [f"  - *{t(g)}*" for g in gaps]
        out += [""]
    return out


def _potential(p: dict[str, Any]) -> list[str]:
    from keytrail.report import potential_rows

    out = ["#### Granted by policy", ""]
    if not p["available"]:
        return out + [f"*{t(p['reason'])}*", ""]
    out += [f"*{t(potential_rows.intro(p))}*", ""]
    for title, headers, rows in potential_rows.tables(p):
        out += [f"**{t(title)}**", ""]
        out += _table(headers, [[t(v) for v in r] for r in rows])
    return out


def _findings(doc: dict[str, Any]) -> list[str]:
    f = doc["findings"]
    out = ["## 4. Findings", ""]
    if f.get("note"):
        out += [f"*{t(f['note'])}*", ""]
    if not f["items"]:
        return out + ["*No findings.*", ""]
    items = sorted(
        f["items"], key=lambda x: LEVEL_ORDER.index(x["level"]) if x["level"] in LEVEL_ORDER else 9
    )
    for x in items:
        out += [f"### {t(str(x['level']).upper())}: {t(x['title'])} ({c(x['rule'])})", ""]
        out += _table(
            ["field", "value"],
            [
                ["frameworks", t(x.get("frameworks"))],
                ["subjects", t(x.get("subjects"))],
                ["impact", t(x.get("impact"))],
                ["description", t(x.get("description"))],
                ["recommendation", t(x.get("recommendation"))],
                ["seen", f"{t(x.get('first_seen'))} to {t(x.get('last_seen'))}"],
                ["evidence", ", ".join(c(v) for v in x.get("evidence") or []) or "—"],
            ],
        )
    return out


def _containment(doc: dict[str, Any]) -> list[str]:
    out = ["## 5. Containment checklist", ""]
    if not doc["containment"]:
        return out + ["*Nothing to contain.*", ""]
    group = None
    for it in doc["containment"]:  # worst first: grouped by the worst finding naming the target
        level = it.get("level") or "other"
        if level != group:
            group = level
            head = {
                "critical": "Named by a critical finding",
                "high": "Named by a high finding",
            }.get(level, "Also in the blast radius")
            out += ([""] if out[-1] else []) + [f"### {head}", ""]
        ev = (
            (" Evidence: " + ", ".join(c(v) for v in it["evidence"]) + ".")
            if it["evidence"]
            else ""
        )
        todo = (
            c(it["command"], table=False)
            if it.get("command")
            else prose(it.get("recommendation") or "")
        )
        out += [f"- [ ] {t(it['category'])}: {c(it['target'])}: {t(it['why'])}.{ev}", f"  - {todo}"]
    return out + [""]


def _do_now(doc: dict[str, Any]) -> list[str]:
    """The first actions, worst first, one per target (the checklist in section 5 has them all)."""
    acts = doc["summary"].get("actions") or []
    if not acts:
        return []
    out = ["## What to do now", ""]
    for i, a in enumerate(acts, 1):
        also = f" Also: {t('; '.join(a['also']))}." if a["also"] else ""
        level = f"**{t(a['level'])}** " if a.get("level") else ""
        todo = (
            c(a["command"], table=False)
            if a.get("command")
            else prose(a.get("recommendation") or "")
        )
        out += [
            f"{i}. {level}{t(a['category'])}: {c(a['target'])}: {t(a['why'])}.{also}",
            f"   - {todo}",
        ]
    return out + [""]


def _appendix(doc: dict[str, Any]) -> list[str]:
    a = doc["appendix"]
    out = [
        "## 6. Appendix: queries and versions",
        "",
        (
            f"keytrail {t(a['keytrail_version'])}; report format {t(doc['report_version'])}; parameters: "
            f"{t(a['parameters'])}."
        ),
        "",
    ]
    for q in a["queries"]:
        fence = "`" * max(3, max((len(m) for m in re.findall(r"`+", q["sql"])), default=0) + 1)
        out += [f"### {t(q['name'])}", "", f"{fence}sql", q["sql"], fence, ""]
    return out


def render_markdown(doc: dict[str, Any]) -> str:
    """The report document as Markdown that renders cleanly on GitHub."""
    h, s = doc["header"], doc["summary"]
    out = [
        "# Blast-radius report",
        "",
        (
            f"Case {c(h['case'])} · evidence {t(h['time_range'][0])} to {t(h['time_range'][1])} UTC · generated "
            f"{t(doc['generated_at'])} by keytrail {t(doc['keytrail_version'])}"
        ),
        "",
        "## Executive summary",
        "",
    ]
    for sentence in s["sentences"]:
        out += [t(sentence), ""]
    out += _do_now(doc) + _header(doc) + _ranking(doc) + ["## 3. Blast radius per credential", ""]
    for i, cr in enumerate(doc["credentials"], 1):
        out += _credential(i, cr)
    out += _findings(doc) + _containment(doc) + _appendix(doc)
    return "\n".join(out).rstrip("\n") + "\n"
