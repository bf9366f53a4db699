"""The report as one self-contained, offline HTML file.

Safety is structural: a Content-Security-Policy meta tag forbids every fetch and every
script (``default-src 'none'``), the document has no ``<script>``, no external reference and
no URL of any kind, and every value is escaped with :func:`html.escape` (``quote=True``, so it
is safe in attributes too). Log text arrives masked from :mod:`keytrail.report.content`.
The lineage graphs are inline SVG from :mod:`keytrail.report.svg`. Print styles give an A4
document with sections that do not split awkwardly.
"""

from __future__ import annotations

import re
from html import escape
from typing import Any

from keytrail.idfmt import middle, short_id
from keytrail.report._common import (
    DERIVED_SHOWN,
    LEVEL_ORDER,
    chain_steps,
    common_root,
    count,
    derived_note,
    get,
    more_ranked,
    relative,
    resources_note,
    scalar_text,
    terms_rows,
)
from keytrail.report.svg import EDGE_COLOR, render_lineage_svg
from keytrail.report.svg_path import render_attack_path

#: Rows the HTML shows where the JSON report has all (each cut is stated under its table).
#: The timeline shows the first 6 events (the sample report printed on 15 A4 pages with 8; the
#: resources, actions and traces above it carry the answer, the JSON report every event).
RANKED_HTML, RESOURCES_HTML, TIMELINE_HTML, TRACES_HTML, SENSITIVE_HTML, DERIVED_HTML = (
    10,
    8,
    6,
    2,
    8,
    10,
)

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

STYLE = """
:root{--ink:#0f172a;--muted:#475569;--line:#e2e8f0;--bg:#f8fafc;--accent:#0f3d5e}
*{box-sizing:border-box}
body{margin:0;font:14px/1.5 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--ink);background:#fff}
header.top{background:var(--accent);color:#fff;padding:16px 40px 12px}
header.top h1{margin:0;font-size:24px;font-weight:600;letter-spacing:.2px}
header.top .meta{margin-top:6px;color:#cbd5e1;font-size:12.5px}
header.top .class{float:right;border:1px solid #fbbf24;color:#fbbf24;padding:2px 8px;border-radius:3px;font-size:11px;font-weight:700;letter-spacing:.8px}
main{padding:8px 40px 40px;max-width:1280px}
nav.toc{background:var(--bg);border:1px solid var(--line);border-radius:6px;padding:10px 18px;margin:18px 0;font-size:13px}
nav.toc ol{margin:4px 0;padding-left:20px;columns:2}
h2{font-size:19px;border-bottom:2px solid var(--accent);padding-bottom:4px;margin:34px 0 12px;color:var(--accent)}
h3{font-size:16px;margin:24px 0 8px}
h4{font-size:13.5px;margin:16px 0 6px;color:var(--muted);text-transform:uppercase;letter-spacing:.5px}
table{border-collapse:collapse;width:100%;margin:6px 0 14px;font-size:12.5px}
th,td{border:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}
td.brk,td.mono{overflow-wrap:anywhere}td.mono{min-width:17em}
th{white-space:nowrap}
th{background:var(--bg);font-weight:600;color:#334155}
tr:nth-child(even) td{background:#fcfdfe}
td.nw{white-space:nowrap}
code,.mono{font-family:"SFMono-Regular",Menlo,Consolas,"Liberation Mono",monospace;font-size:12px;word-break:break-all}
.cards{display:flex;gap:10px;flex-wrap:wrap;margin:10px 0}
.card{flex:1 1 130px;border:1px solid var(--line);border-radius:6px;padding:4px 12px;background:var(--bg)}
.card .n{font-size:20px;font-weight:700;color:var(--accent)}
.card .l{font-size:11.5px;color:var(--muted);text-transform:uppercase;letter-spacing:.5px}
.summary p{margin:6px 0;font-size:14.5px}.summary h2{margin-top:18px}
.badge{display:inline-block;padding:1px 7px;border-radius:10px;font-size:11px;font-weight:700;text-transform:uppercase;letter-spacing:.3px}
.critical{background:#7f1d1d;color:#fff}.high{background:#dc2626;color:#fff}.medium{background:#f59e0b;color:#111}
.low{background:#3b82f6;color:#fff}.informational{background:#94a3b8;color:#fff}
.ok{color:#15803d;font-weight:600}.warn{color:#b45309;font-weight:600}.bad{color:#b91c1c;font-weight:600}
.denied td{background:#fef2f2 !important}
.note{color:var(--muted);font-style:italic}
.cred{border:1px solid var(--line);border-radius:8px;padding:4px 18px 14px;margin:18px 0}
.graph{overflow-x:auto;border:1px solid var(--line);border-radius:6px;padding:6px;background:#fff}
svg.lineage{display:block;max-width:100%;height:auto}svg.lineage.wide{max-width:none}
svg.lineage text.nlabel{font:600 11px Menlo,Consolas,monospace;fill:#0f172a}
svg.lineage text.nsub{font:10.5px sans-serif;fill:#475569}
svg.lineage text.colhead{font:700 10px sans-serif;fill:#64748b;letter-spacing:.6px}
.legend{font-size:11.5px;color:var(--muted);margin:4px 0 10px}
.legend span{margin-right:14px}.sw{display:inline-block;width:18px;height:3px;vertical-align:middle;margin-right:4px}
.chain{list-style:none;padding:0;margin:4px 0 10px}
.chain li{overflow-wrap:anywhere;border-left:3px solid var(--accent);padding:3px 10px;margin:0 0 4px 8px;background:var(--bg)}
ul.check{list-style:none;padding-left:0}ul.check li{margin:6px 0;padding-left:26px;position:relative}
ul.check li:before{content:"";position:absolute;left:0;top:3px;width:14px;height:14px;border:1.5px solid #334155;border-radius:2px}
ol.actions{padding-left:22px}ol.actions li{margin:8px 0}ol.actions pre{margin:4px 0}
.lead{font-size:16px;line-height:1.45;margin:10px 0}
.finding{border-top:1px solid var(--line);margin-top:10px}.finding h3{margin:10px 0 4px}
.finding p{margin:3px 0}.finding p.meta{font-size:12px;color:var(--muted)}
details>summary{cursor:pointer;color:var(--muted);font-size:12.5px;margin:6px 0}
svg.lineage.path{width:100%}
pre{background:#0f172a;color:#e2e8f0;padding:10px 12px;border-radius:6px;font-size:11.5px;overflow-x:auto;white-space:pre-wrap;overflow-wrap:anywhere}
table.kv th.k{width:130px;text-align:left;vertical-align:top}
footer{margin-top:40px;border-top:1px solid var(--line);padding-top:10px;color:var(--muted);font-size:12px}
@media print{
  @page{size:A4;margin:11mm 10mm}
  body{font-size:8.5px;line-height:1.3}h2{margin:14px 0 5px;font-size:14px}h3{margin:10px 0 3px;font-size:12px}
  h4{margin:6px 0 2px;font-size:9.5px}.cred{border:none;padding:0;margin:8px 0}p{margin:4px 0}
  table{margin:3px 0 6px}.legend{margin:2px 0 4px;font-size:7.5px}.finding{margin-top:4px}.finding h3{margin:6px 0 2px}
  ol.actions li{margin:4px 0}.chain li{padding:1px 8px;margin:0 0 2px 6px}
  pre{padding:3px 6px;margin:2px 0;font-size:7.5px}ul.check li{margin:3px 0}.graph{padding:0}header.top{background:#fff;color:var(--ink);border-bottom:3px solid var(--accent);padding:0 0 8px}
  header.top .meta{color:var(--muted)}main{padding:0;max-width:none}nav.toc{display:none}
  h2,h3,h4{break-after:avoid}tr,.graph,pre,ol.actions li,.finding p{break-inside:avoid}
  details:not([open])>*:not(summary){display:none}
  table.timeline td:nth-child(4){min-width:9em}table.timeline td:nth-child(8){max-width:11em}
  table{font-size:7.5px}th,td{padding:1px 3px}code,.mono{font-size:7.5px}td.mono{min-width:10em}
  .graph{overflow:visible;border:none}svg.lineage,svg.lineage.wide{max-width:100%;height:auto}
  *{-webkit-print-color-adjust:exact;print-color-adjust:exact}
}
"""


def e(value: Any) -> str:
    """Escape any value for HTML text and attributes."""
    return escape(scalar_text(value), quote=True)


def _long_token(value: Any) -> bool:
    """A value with a run of 24+ characters and no space (an id, ARN or hash) may break anywhere."""
    return any(len(part) >= 24 for part in scalar_text(value).split())


def _table(
    headers: list[str],
    rows: list[list[Any]],
    *,
    mono: set[int] | None = None,
    row_class: list[str] | None = None,
    nowrap: set[int] | None = None,
    table_class: str = "",
) -> str:
    if not rows:
        return '<p class="note">None.</p>'
    mono = mono or set()
    nowrap = nowrap or set()
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{e(row_class[i])}"' if row_class and row_class[i] else ""
        cells = "".join(
            f'<td class="mono">{e(v)}</td>'
            if j in mono
            else f'<td class="nw">{e(v)}</td>'
            if j in nowrap
            else f'<td class="brk">{e(v)}</td>'
            if _long_token(v)
            else f"<td>{e(v)}</td>"
            for j, v in enumerate(row)
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    attr = f' class="{e(table_class)}"' if table_class else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _kv(rows: list[tuple[str, Any]]) -> str:
    body = "".join(
        f'<tr><th class="k">{e(k)}</th><td class="brk">{e(v)}</td></tr>' for k, v in rows
    )
    return f'<table class="kv"><tbody>{body}</tbody></table>'


def _badge(level: Any) -> str:
    lvl = str(level or "informational").lower()
    cls = lvl if lvl in LEVEL_ORDER else "informational"
    return f'<span class="badge {cls}">{e(lvl)}</span>'


def _integrity(value: Any) -> str:
    cls = {"verified": "ok", "failed": "bad", "no-digest": "warn"}.get(str(value), "")
    return f'<span class="{cls}">{e(value)}</span>' if cls else e(value)


def _grouped(rows: list[tuple[tuple[Any, ...], Any]]) -> list[tuple[tuple[Any, ...], list[Any]]]:
    """Rows with the same key collapsed into one (key, members), in first-seen order."""
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for key, member in rows:
        groups.setdefault(key, []).append(member)
    return list(groups.items())


def _ids(members: list[Any], limit: int = 12) -> str:
    shown = ", ".join(scalar_text(m) for m in members[:limit])
    return shown + (f" … (+{len(members) - limit})" if len(members) > limit else "")


def _header(doc: dict[str, Any]) -> str:
    """Appendix A: evidence and integrity, identical rows collapsed ("29 files without a digest")."""
    h = doc["header"]
    t0, t1 = h["time_range"]
    root = common_root([f["path"] for f in h["evidence"]])
    groups = _grouped([((f["source"], f["status"], f["integrity"]), f) for f in h["evidence"]])
    summary_rows = "".join(
        f"<tr><td>{e(len(files))}</td><td>{e(src)}</td><td>{e(status)}</td><td>{_integrity(integ)}</td>"
        f"<td>{e(sum(int(f['events'] or 0) for f in files))}</td><td>{e(sum(int(f['rejected'] or 0) for f in files))}</td>"
        f"<td>{e(_ids([f['file_id'] for f in files]))}</td></tr>"
        for (src, status, integ), files in groups
    )
    evidence = (
        "<table><thead><tr><th>files</th><th>source</th><th>status</th><th>integrity</th><th>events</th>"
        f"<th>rejected</th><th>file numbers</th></tr></thead><tbody>{summary_rows}</tbody></table>"
    )
    ev_rows = "".join(
        f'<tr><td>{e(f["file_id"])}</td><td class="mono">{e(relative(f["path"], root))}</td><td class="mono">{e(f["sha256"])}</td>'
        f"<td>{e(f['source'])}</td><td>{e(f['status'])}</td><td>{e(f['events'])}</td><td>{e(f['rejected'])}</td>"
        f"<td>{_integrity(f['integrity'])}</td></tr>"
        for f in h["evidence"]
    )
    files = (
        "<details><summary>Every file with its SHA-256 ("
        + e(len(h["evidence"]))
        + " files; in print: "
        "see the JSON report or <code>keytrail info</code>)</summary>"
        "<table><thead><tr><th>#</th><th>file</th><th>SHA-256</th><th>source</th><th>status</th>"
        f"<th>events</th><th>rejected</th><th>integrity</th></tr></thead><tbody>{ev_rows}</tbody></table></details>"
    )
    sources = _table(
        ["source", "files", "events", "rejected", "first event", "last event"],
        [
            [s, v["files"], v["events"], v["rejected"], v["time_range"][0], v["time_range"][1]]
            for s, v in sorted(h["sources"].items())
        ],
        nowrap={4, 5},
    )
    gap_groups = _grouped([((g["kind"],), g) for g in h["coverage_gaps"]])
    gaps = _table(
        ["gap", "count", "detail"],
        [
            [
                kind,
                len(members),
                members[0]["detail"]
                if len(members) == 1
                else f"{members[0]['detail']} … and {len(members) - 1} more like it",
            ]
            for (kind,), members in gap_groups
        ],
    )
    rejects = _table(
        ["file", "path", "rejected", "first record", "example reason"],
        [
            [r["file_id"], r["path"], r["rejected"], r["first_record"], r["example_reason"]]
            for r in h["rejects_by_file"]
        ],
        mono={1},
    )
    window = h["window"]
    scope = (
        f"{e(window['since'] or 'start of evidence')} to {e(window['until'] or 'end of evidence')}"
    )
    return (
        f'<section id="case"><h2>Appendix A. Evidence and integrity</h2>'
        f"<p>Case <code>{e(h['case'])}</code>; events from <b>{e(t0)}</b> to <b>{e(t1)}</b> (UTC); "
        f"analysis window: {scope}. Ingest finalized: {e(h['finalized'])}.</p>"
        f"<h4>Evidence files</h4>"
        + (f"<p>Paths relative to <code>{e(root)}</code>.</p>" if root else "")
        + f"{evidence}{files}<h4>Sources</h4>{sources}"
        f"<h4>Coverage gaps and integrity</h4>{gaps}<h4>Rejected records</h4>{rejects}</section>"
    )


def _lead(doc: dict[str, Any]) -> str:
    """One sentence of what happened, from the attack path (short ids: the full ones are below)."""
    p = doc["summary"].get("attack_path")
    if not p or not p.get("chain"):
        return ""
    chain = p["chain"]
    who = " and ".join(p["humans"]) or "an unattributed identity"
    via = f"to agent {', '.join(p['agents'])}, which used " if p["agents"] else ""
    root = chain[0]
    deepest = chain[-1]
    minted = ""
    if len(chain) > 1:
        minted = (
            f", which minted a chain of {len(chain) - 1} more credential(s) down to "
            f"{short_id(deepest['credential'], 24)} ({deepest.get('kind') or 'credential'}"
            + (f" of {deepest['principal']}" if deepest.get("principal") else "")
            + ")"
        )
    res = p.get("resources") or []
    reached = (
        (
            f"; the chain reached {len(res)} sensitive resource(s), among them {res[0]['resource']} "
            f"({', '.join(res[0]['actions'])})"
        )
        if res
        else ""
    )
    return (
        f"{who} delegated {via}the "
        f"{root.get('kind') or 'credential'} {short_id(root['credential'], 24)}{minted}{reached}."
    )


def _actions(doc: dict[str, Any]) -> str:
    acts = doc["summary"].get("actions") or []
    if not acts:
        return '<p class="note">Nothing to contain.</p>'
    items = []
    for a in acts:
        also = f' <span class="note">Also: {e("; ".join(a["also"]))}.</span>' if a["also"] else ""
        todo = (
            f"<pre>{e(a['command'])}</pre>"
            if a.get("command")
            else f"<div>{e(a.get('recommendation') or '')}</div>"
        )
        items.append(
            f"<li>{_badge(a['level']) if a.get('level') else ''} <b>{e(a['category'])}</b>: "
            f"<code>{e(a['target'])}</code> — {e(a['why'])}.{also}{todo}</li>"
        )
    return f'<ol class="actions">{"".join(items)}</ol>'


def _summary(doc: dict[str, Any]) -> str:
    """The first screen: what happened (sentence, picture, the numbers that matter) and what to do now."""
    s = doc["summary"]
    lv = s["finding_levels"]
    path = s.get("attack_path") or {}
    # the numbers of the blast radius the picture draws (the section holding the top credential)
    top = doc["credentials"][int(path.get("section") or 1) - 1] if doc["credentials"] else None
    cards = []
    if top:
        cards += [
            (len(top["derived_credentials"]), "credentials in its blast radius"),
            (len(path.get("resources") or []), "sensitive resources reached"),
            (top["activity"]["events"], "events signed"),
        ]
    cards += [(lv.get("critical", 0), "critical findings"), (lv.get("high", 0), "high findings")]
    card_html = "".join(
        f'<div class="card"><div class="n">{e(n)}</div><div class="l">{e(l)}</div></div>'
        for n, l in cards
    )
    lead = _lead(doc)
    svg = render_attack_path(path)
    picture = f'<div class="graph">{svg}</div>{_legend()}' if svg else ""
    context = "".join(f"<p>{e(x)}</p>" for x in s["sentences"][:2])
    return (
        '<section id="summary" class="summary"><h2>What happened</h2>'
        + (f'<p class="lead">{e(lead)}</p>' if lead else "")
        + f'<div class="cards">{card_html}</div>'
        + picture
        + f'<h2 id="do-now">What to do now</h2>{_actions(doc)}'
        + f'<p class="note">The full containment checklist is in section 4.</p>{context}</section>'
    )


def _ranking(doc: dict[str, Any]) -> str:
    r = doc["ranking"]
    rows = [
        [
            i,
            get(c, "credential"),
            get(c, "kind"),
            get(c, "holder"),
            get(c, "score"),
            get(c, "events", "event_count"),
            count(get(c, "derived_credentials")),
            get(c, "agents"),
            get(c, "humans"),
            get(c, "last_seen"),
        ]
        for i, c in enumerate(r["credentials"][:RANKED_HTML], 1)
    ]
    note = f'<p class="note">{e(r["note"])}</p>' if r.get("note") else ""
    total = r.get("total", len(r["credentials"]))
    more = (
        f'<p class="note">{e(more_ranked(total, len(r["credentials"]), RANKED_HTML))} Score terms of '
        "the examined credentials are in their sections.</p>"
        if total > RANKED_HTML
        else ""
    )
    return (
        f'<section id="ranking"><h2>2. Credentials ranked by blast radius</h2>{note}'
        + _table(
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
            rows,
            mono={1},
            nowrap={9},
        )
        + more
        + "</section>"
    )


def _note(text: str) -> str:
    return f'<p class="note">{e(text)}</p>' if text else ""


def _legend() -> str:
    items = "".join(
        f'<span><i class="sw" style="background:{c}"></i>{e(k)}</span>'
        for k, c in EDGE_COLOR.items()
    )
    return (
        f'<div class="legend">{items}<span>solid = proven, long dash = strong, '
        f"short dash = inferred</span></div>"
    )


def _family(c: dict[str, Any]) -> set[str]:
    return {d["credential_id"] for d in c["derived_credentials"]}


def _credential(i: int, c: dict[str, Any], earlier: list[dict[str, Any]] = ()) -> str:  # type: ignore[assignment]
    a = c["activity"]
    parts = [
        (
            f'<div class="cred" id="cred-{i}"><h3>1.{i} <code>{e(c["credential"])}</code> '
            f"<small>({e(c['kind'])})</small></h3>"
        )
    ]
    parts.append(
        f"<p>Score <b>{e(c['score'])}</b>. The credential and {len(c['derived_credentials']) - 1} "
        f"credential(s) minted from it signed <b>{e(a['events'])}</b> events "
        f"({e(a['denied'])} denied, {e(a['actions'])} distinct actions, {e(a['accounts'])} account(s)) "
        f"from {e(a['first_seen'])} to {e(a['last_seen'])}.</p>"
    )
    # A blast radius wholly inside an earlier section's is that section's subtree: its tables would
    # repeat those rows, so it gets its score terms and the pointer (the JSON report has its own).
    inside = next((j for j, o in enumerate(earlier, 1) if _family(c) <= _family(o)), None)
    if inside is not None:
        terms = terms_rows(c.get("terms"))
        parts.append(
            f'<p>Its blast radius is part of <a href="#cred-{inside}">1.{inside}</a> '
            f"<code>{e(short_id(earlier[inside - 1]['credential'], 24))}</code> (minted from it): "
            "resources, actions, derived credentials and events are listed there; the JSON report "
            "has this credential's own tables.</p>"
        )
        parts.append(_terms(terms))
        parts.append("</div>")
        return "".join(parts)
    svg = render_lineage_svg(c["lineage"], uid=f"g{i}")
    if svg:
        omitted = [
            (c["lineage"].get(f"{k}_omitted") or 0, k)
            for k in ("credentials", "principals", "resources")
        ]
        text = " and ".join(f"{n} less-used {k}" for n, k in omitted if n)
        more = (
            f'<p class="note">{e(text)} are not drawn (the tables below list them all).</p>'
            if text
            else ""
        )
        parts.append(f'<h4>Lineage</h4><div class="graph">{svg}</div>{_legend()}{more}')
    shown = c["resources"][:RESOURCES_HTML]
    parts.append(
        f'<h4 id="cred-{i}-resources">Resources reached</h4>'
        + _note(resources_note(c))
        + _table(
            ["resource", "type", "action", "events", "denied", "first", "last"],
            [
                [
                    r["resource_id"],
                    r["resource_type"],
                    r["action"],
                    r["events"],
                    r["denied"],
                    r["first_seen"],
                    r["last_seen"],
                ]
                for r in shown
            ],
            mono={0},
            nowrap={5, 6},
            row_class=["denied" if r["denied"] else "" for r in shown],
        )
        + _cut(len(c["resources"]), len(shown), "resource rows")
    )
    parts.append(_terms(terms_rows(c.get("terms"))))
    blast = c.get("blast_radius") or {}
    for key, title in (
        ("sensitive_actions", "Write, delete and permission-changing actions"),
        ("secrets_read", "Secrets read"),
    ):
        rows_in = blast.get(key) or []
        shown_rows = [
            [
                r.get("category"),
                r.get("action"),
                r.get("resource"),
                short_id(r.get("credential") or "", 24),
                r.get("events"),
                r.get("first_seen"),
            ]
            for r in rows_in[:SENSITIVE_HTML]
        ]
        if shown_rows:
            parts.append(
                f"<h4>{e(title)}</h4>"
                + _table(
                    ["category", "action", "resource", "credential", "events", "first"],
                    shown_rows,
                    mono={2, 3},
                    nowrap={5},
                    row_class=["denied" if r[0] == "denied" else "" for r in shown_rows],
                )
                + _cut(len(rows_in), len(shown_rows), "rows (with their evidence ids)")
            )
    if c.get("potential"):
        parts.append(_potential(c["potential"]))
    parts.append(
        "<h4>Derived credentials</h4>"
        + _table(
            ["credential", "depth", "kind", "minted by", "issued", "expires", "acts as"],
            [
                [
                    d["credential_id"],
                    d["depth"],
                    d["kind"],
                    short_id(d["parent_credential_id"] or "", 24),
                    d["issued_at"],
                    d["expires_at"],
                    d["principal_uid"],
                ]
                for d in c["derived_credentials"][:DERIVED_HTML]
            ],
            mono={0, 3, 6},
            nowrap={2, 4, 5},
        )
        + _note(derived_note(c) if len(c["derived_credentials"]) > DERIVED_SHOWN else "")
        + _cut(
            min(len(c["derived_credentials"]), DERIVED_SHOWN),
            min(len(c["derived_credentials"]), DERIVED_HTML),
            "derived credentials",
        )
    )
    parts.append(
        f'<h4 id="cred-{i}-ids">Agents, humans and principals</h4>'
        + _table(
            ["role", "identities"],
            [
                ["humans", c["humans"]],
                ["agents", c["agents"]],
                ["principals", _few(c["principals"], PRINCIPALS_HTML)],
            ],
        )
    )
    events = c["timeline"][:TIMELINE_HTML]
    parts.append(
        "<h4>Timeline (UTC)</h4>"
        + _table(
            [
                "time",
                "event id",
                "credential",
                "actor",
                "action",
                "target",
                "outcome",
                "user agent",
            ],
            [
                [
                    t["time"],
                    t["source_event_id"],
                    short_id(t["credential_id"] or "", 24),
                    t["actor_name"],
                    t["action"],
                    t["target"],
                    t["outcome"] + (f" ({t['error_code']})" if t["error_code"] else ""),
                    middle(t["user_agent"] or "", 32),
                ]
                for t in events
            ],
            mono={1, 2, 5},
            nowrap={0},
            row_class=["denied" if t["outcome"] == "denied" else "" for t in events],
            table_class="timeline",
        )
    )
    if c["timeline_truncated"] or len(events) < len(c["timeline"]):
        parts.append(
            f'<p class="note">First {len(events)} of {e(a["events"])} events; '
            f"the JSON report and <code>keytrail blast</code> have all of them.</p>"
        )
    if c["traces"]:
        parts.append(
            "<h4>Delegation chains of key events</h4>"
            + _cut(len(c["traces"]), min(len(c["traces"]), TRACES_HTML), "traced key events")
        )
        for t in c["traces"][:TRACES_HTML]:
            steps, gaps = chain_steps(t["trace"])
            items = "".join(
                f"<li><b>{e(s['kind'])}</b> {_short_code(s['id'])}"
                + (
                    f" <small>{e(s['label'])}</small>"
                    if s["label"] and s["label"] != s["id"]
                    else ""
                )
                + (f" — {e(s['reason'])}" if s["reason"] else "")
                + (f" <i>({e(s['confidence'])})</i>" if s["confidence"] else "")
                + "</li>"
                for s in steps
            )
            gap_html = "".join(f'<p class="note">{e(g)}</p>' for g in gaps)
            parts.append(
                f'<p><code>{e(t["event_uid"])}</code></p><ol class="chain">{items}</ol>{gap_html}'
            )
    parts.append("</div>")
    return "".join(parts)


def _terms(terms: list[tuple[str, str, str, str]]) -> str:
    """The score terms that add points, then the names of those at 0 on one line.

    A term at 0 points says only that nothing of its kind happened; thirteen rows per
    credential of which half read "0 ... = 0" pushed the findings a page further down.
    """
    if not terms:
        return ""
    scoring = [list(t) for t in terms if t[2] not in ("0", "0.0", "")]
    idle = [t[0] for t in terms if t[2] in ("0", "0.0", "")]
    table = _table(["term", "value", "points", "explanation"], scoring) if scoring else ""
    rest = _note("At 0 points: " + ", ".join(idle) + ".") if idle else ""
    return "<h4>Score terms</h4>" + table + rest


def _short_code(ident: Any) -> str:
    """A Vault HMAC as ``hmac:4b900e35…`` (full id on hover); other ids in full.

    A unique HMAC prefix is accepted back by every command (``keytrail trace hmac:4b900e35``),
    and the 76-character form filled two printed lines per step of a delegation chain.
    """
    text = scalar_text(ident)
    if not text.startswith("hmac-sha256:"):
        return f"<code>{e(text)}</code>"
    return f'<code title="{e(text)}">{e(short_id(text, 20))}</code>'


def _cut(total: int, shown: int, what: str) -> str:
    return (
        _note(f"{shown} of {total} {what} shown; the JSON report has all of them.")
        if total > shown
        else ""
    )


def _potential(p: dict[str, Any]) -> str:
    from keytrail.report import potential_rows

    if not p["available"]:
        return "<h4>Granted by policy</h4>" + _note(p["reason"])
    parts = [
        "<h4>Granted by policy</h4>",
        _note(potential_rows.intro(p)),
        (
            "<details><summary>The policy tables "
            "(what each principal was allowed, unused grants, actions the snapshot does not explain)</summary>"
        ),
    ]
    for title, headers, rows in potential_rows.tables(p):
        parts.append(f"<h5>{e(title)}</h5>" + _table(headers, [list(r) for r in rows]))
    return "".join(parts) + "</details>"


def _findings(doc: dict[str, Any]) -> str:
    """Critical and high findings in full (what, impact, contain); the rest one table row each."""
    f = doc["findings"]
    note = f'<p class="note">{e(f["note"])}</p>' if f.get("note") else ""
    if not f["items"]:
        return f'<section id="findings"><h2>3. Findings</h2>{note}<p class="note">No findings.</p></section>'
    items = sorted(
        f["items"], key=lambda x: LEVEL_ORDER.index(x["level"]) if x["level"] in LEVEL_ORDER else 9
    )
    # A containment step (say, deactivating one shared key) that an earlier finding gave in full
    # is counted, not repeated: four findings named the same key's command in the sample.
    steps = dict(zip(map(id, items), _new_steps([x.get("recommendation") for x in items])))
    blocks, rest = [], []
    for item in items:
        evidence = (
            f"{_few(item.get('evidence'), 4)} ({scalar_text(item.get('evidence_count'))} events)"
        )
        if item["level"] not in ("critical", "high"):
            rest.append(item)
            continue
        blocks.append(
            f'<div class="finding"><h3>{_badge(item["level"])} {e(item["title"])} '
            f"<small><code>{e(item['rule'])}</code> · {e(item.get('frameworks'))}</small></h3>"
            f"<p><b>What</b> {e(item.get('description'))} <b>Impact</b> {e(item.get('impact'))}</p>"
            f"<p><b>Contain</b> {e(steps[id(item)])}</p>"
            f'<p class="meta">subjects {e(item.get("subjects"))} · seen {e(item.get("first_seen"))} to '
            f'{e(item.get("last_seen"))} · evidence <span class="mono">{e(evidence)}</span></p></div>'
        )
    if rest:
        blocks.append(
            f"<h4>Medium, low and informational ({len(rest)})</h4>"
            '<p class="note">One row each; what, impact and every evidence id are in the JSON report '
            "and <code>keytrail findings</code>. A containment step given in an earlier row is not "
            "repeated.</p>"
            + _table(
                ["level", "finding", "subjects", "contain", "events"],
                [
                    [
                        x["level"],
                        f"{x['title']} ({x['rule']})",
                        x.get("subjects"),
                        steps[id(x)],
                        x.get("evidence_count"),
                    ]
                    for x in rest
                ],
            )
        )
    return f'<section id="findings"><h2>3. Findings</h2>{note}{"".join(blocks)}</section>'


#: Evidence ids a checklist item lists (the JSON report and ``keytrail findings`` have all).
EVIDENCE_HTML = 3
#: Principals a credential's section lists (13 session ARNs filled 6 printed lines).
PRINCIPALS_HTML = 5


def _few(ids: Any, limit: int = EVIDENCE_HTML) -> str:
    """The first ``limit`` ids and how many more (a list of 9 event ids took 4 printed lines)."""
    if not isinstance(ids, list) or len(ids) <= limit:
        return scalar_text(ids)
    return ", ".join(scalar_text(i) for i in ids[:limit]) + f" (+{len(ids) - limit} more)"


def _sentences(text: Any) -> list[str]:
    return [s for s in re.split(r"(?<=[.)])\s+(?=[A-Z])", scalar_text(text)) if s]


def _new_steps(texts: list[Any], given: Any = (), where: str = "given above") -> list[str]:
    """Each text with the sentences an earlier text (or ``given``) already gave left out, counted.

    The engine's recommendations end with the same credential steps ("Temporary key X
    cannot be revoked alone: ...") for every finding that names X: in a table of 29 rows
    half the text was repeats. Nothing is lost: each step is in an earlier row.
    """
    seen = {s for text in given for s in _sentences(text)}
    out = []
    for text in texts:
        fresh, repeated = [], 0
        for sentence in _sentences(text):
            if sentence in seen:
                repeated += 1
            else:
                seen.add(sentence)
                fresh.append(sentence)
        more = f"(+{repeated} step{'s' if repeated > 1 else ''} {where})" if repeated else ""
        out.append(" ".join([*fresh, more]).strip())
    return out


def _containment(doc: dict[str, Any]) -> str:
    """Every checklist item, worst first (grouped by the level of the worst finding naming it)."""
    items = doc["containment"]
    title = "<h2>4. Containment checklist</h2>"
    if not items:
        return f'<section id="containment">{title}<p class="note">Nothing to contain.</p></section>'
    # Steps a critical or high finding gave in full in section 3 are pointed to, not repeated.
    in_findings = [
        x.get("recommendation")
        for x in doc["findings"]["items"]
        if x.get("level") in ("critical", "high")
    ]
    steps = _new_steps(
        [it.get("recommendation") or "" for it in items], in_findings, "as in section 3"
    )
    out, group = [], None
    for it, step in zip(items, steps):
        level = it.get("level") or "other"
        if level != group:
            if group is not None:
                out.append("</ul>")
            group = level
            head = {
                "critical": "Named by a critical finding",
                "high": "Named by a high finding",
            }.get(level, "Also in the blast radius")
            out.append(f'<h4>{e(head)}</h4><ul class="check">')
        ev = f" Evidence: <code>{e(_few(it['evidence']))}</code>." if it["evidence"] else ""
        todo = f"<pre>{e(it['command'])}</pre>" if it.get("command") else f"<div>{e(step)}</div>"
        out.append(
            f"<li><b>{e(it['category'])}</b>: <code>{e(it['target'])}</code> — {e(it['why'])}.{ev}{todo}</li>"
        )
    out.append("</ul>")
    return f'<section id="containment">{title}{"".join(out)}</section>'


def _appendix(doc: dict[str, Any]) -> str:
    a = doc["appendix"]
    queries = "".join(f"<h4>{e(q['name'])}</h4><pre>{escape(q['sql'])}</pre>" for q in a["queries"])
    queries = f"<details><summary>The SQL of every query ({len(a['queries'])})</summary>{queries}</details>"
    return (
        f'<section id="appendix"><h2>Appendix B. Queries and versions</h2>'
        f"<p>keytrail {e(a['keytrail_version'])}; report format {e(doc['report_version'])}; parameters: "
        f"{e(a['parameters'])}. Each number above comes from one of these queries, run on the case "
        f"(parameters <code>$cred</code>, <code>$since</code>, <code>$until</code>).</p>{queries}</section>"
    )


def render_html(doc: dict[str, Any]) -> str:
    """The report document as a single HTML page (no script, no network reference)."""
    h = doc["header"]
    creds = "".join(
        _credential(i, c, doc["credentials"][: i - 1]) for i, c in enumerate(doc["credentials"], 1)
    )
    toc = (
        '<nav class="toc"><b>Contents</b><ol><li><a href="#blast">Blast radius per credential</a></li>'
        '<li><a href="#ranking">Credentials ranked by blast radius</a></li><li><a href="#findings">Findings</a>'
        '</li><li><a href="#containment">Containment checklist</a></li><li><a href="#case">Appendix A: '
        'evidence and integrity</a></li><li><a href="#appendix">Appendix B: queries and versions</a></li>'
        "</ol></nav>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="referrer" content="no-referrer">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>keytrail blast-radius report: {e(h['case'])}</title><style>{STYLE}</style></head><body>"
        f'<header class="top"><span class="class">CONFIDENTIAL · INCIDENT RESPONSE</span>'
        f'<h1>Blast-radius report</h1><div class="meta">case {e(h["case"])} · evidence {e(h["time_range"][0])} '
        f"to {e(h['time_range'][1])} UTC · generated {e(doc['generated_at'])} by keytrail "
        f"{e(doc['keytrail_version'])}</div></header><main>"
        + _summary(doc)
        + toc
        + '<section id="blast"><h2>1. Blast radius per credential</h2>'
        + (creds or '<p class="note">No credential selected.</p>')
        + "</section>"
        + _ranking(doc)
        + _findings(doc)
        + _containment(doc)
        + _header(doc)
        + _appendix(doc)
        + f"<footer>Generated by keytrail {e(doc['keytrail_version'])} at {e(doc['generated_at'])}. "
        "Secrets found in the logs are masked. Times are UTC. Every identifier is as logged.</footer>"
        "</main></body></html>\n"
    )
