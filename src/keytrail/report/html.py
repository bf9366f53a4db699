"""The report as one self-contained, offline HTML file.

Safety is structural: a Content-Security-Policy meta tag forbids every fetch and every
script (``default-src 'none'``), the document has no ``<script>``, no external reference and
no URL of any kind, and every value is escaped with :func:`html.escape` (``quote=True``, so it
is safe in attributes too). Log text arrives masked from :mod:`keytrail.report.content`.
The lineage graphs are inline SVG from :mod:`keytrail.report.svg`. Print styles give an A4
document with sections that do not split awkwardly.
"""

from __future__ import annotations

from html import escape
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
from keytrail.report.svg import EDGE_COLOR, render_lineage_svg

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

STYLE = """
:root{--ink:#0f172a;--muted:#475569;--line:#e2e8f0;--bg:#f8fafc;--accent:#0f3d5e}
*{box-sizing:border-box}
body{margin:0;font:14px/1.5 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--ink);background:#fff}
header.top{background:var(--accent);color:#fff;padding:22px 40px 18px}
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
td.brk,td.mono{overflow-wrap:anywhere}
th{white-space:nowrap}
th{background:var(--bg);font-weight:600;color:#334155}
tr:nth-child(even) td{background:#fcfdfe}
td.nw{white-space:nowrap}
code,.mono{font-family:"SFMono-Regular",Menlo,Consolas,"Liberation Mono",monospace;font-size:12px;word-break:break-all}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:14px 0}
.card{flex:1 1 150px;border:1px solid var(--line);border-radius:6px;padding:10px 14px;background:var(--bg)}
.card .n{font-size:24px;font-weight:700;color:var(--accent)}
.card .l{font-size:11.5px;color:var(--muted);text-transform:uppercase;letter-spacing:.5px}
.summary p{margin:6px 0;font-size:14.5px}
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
pre{background:#0f172a;color:#e2e8f0;padding:10px 12px;border-radius:6px;font-size:11.5px;overflow-x:auto;white-space:pre-wrap;overflow-wrap:anywhere}
table.kv th.k{width:130px;text-align:left;vertical-align:top}
footer{margin-top:40px;border-top:1px solid var(--line);padding-top:10px;color:var(--muted);font-size:12px}
@media print{
  @page{size:A4;margin:14mm 12mm}
  body{font-size:11px}header.top{background:#fff;color:var(--ink);border-bottom:3px solid var(--accent);padding:0 0 8px}
  header.top .meta{color:var(--muted)}main{padding:0;max-width:none}nav.toc{display:none}
  h2{break-after:avoid}.cred,table,.graph,pre{break-inside:avoid}
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


def _table(headers: list[str], rows: list[list[Any]], *, mono: set[int] | None = None,
           row_class: list[str] | None = None, nowrap: set[int] | None = None) -> str:
    if not rows:
        return '<p class="note">None.</p>'
    mono = mono or set()
    nowrap = nowrap or set()
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{e(row_class[i])}"' if row_class and row_class[i] else ""
        cells = "".join(f'<td class="mono">{e(v)}</td>' if j in mono
                        else f'<td class="nw">{e(v)}</td>' if j in nowrap
                        else f'<td class="brk">{e(v)}</td>' if _long_token(v) else f"<td>{e(v)}</td>"
                        for j, v in enumerate(row))
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _kv(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f'<tr><th class="k">{e(k)}</th><td class="brk">{e(v)}</td></tr>' for k, v in rows)
    return f'<table class="kv"><tbody>{body}</tbody></table>'


def _badge(level: Any) -> str:
    lvl = str(level or "informational").lower()
    cls = lvl if lvl in LEVEL_ORDER else "informational"
    return f'<span class="badge {cls}">{e(lvl)}</span>'


def _integrity(value: Any) -> str:
    cls = {"verified": "ok", "failed": "bad", "no-digest": "warn"}.get(str(value), "")
    return f'<span class="{cls}">{e(value)}</span>' if cls else e(value)


def _header(doc: dict[str, Any]) -> str:
    h = doc["header"]
    t0, t1 = h["time_range"]
    root = common_root([f["path"] for f in h["evidence"]])
    ev_rows = "".join(
        f"<tr><td>{e(f['file_id'])}</td><td class=\"mono\">{e(relative(f['path'], root))}</td><td class=\"mono\">{e(f['sha256'])}</td>"
        f"<td>{e(f['source'])}</td><td>{e(f['status'])}</td><td>{e(f['events'])}</td><td>{e(f['rejected'])}</td>"
        f"<td>{_integrity(f['integrity'])}</td></tr>" for f in h["evidence"])
    evidence = ("<table><thead><tr><th>#</th><th>file</th><th>SHA-256</th><th>source</th><th>status</th>"
                f"<th>events</th><th>rejected</th><th>integrity</th></tr></thead><tbody>{ev_rows}</tbody></table>")
    sources = _table(["source", "files", "events", "rejected", "first event", "last event"],
                     [[s, v["files"], v["events"], v["rejected"], v["time_range"][0], v["time_range"][1]]
                      for s, v in sorted(h["sources"].items())], nowrap={4, 5})
    gaps = _table(["gap", "detail"], [[g["kind"], g["detail"]] for g in h["coverage_gaps"]])
    rejects = _table(["file", "path", "rejected", "first record", "example reason"],
                     [[r["file_id"], r["path"], r["rejected"], r["first_record"], r["example_reason"]]
                      for r in h["rejects_by_file"]], mono={1})
    window = h["window"]
    scope = (f"{e(window['since'] or 'start of evidence')} to {e(window['until'] or 'end of evidence')}")
    return (f'<section id="case"><h2>1. Case and evidence</h2>'
            f"<p>Case <code>{e(h['case'])}</code>; events from <b>{e(t0)}</b> to <b>{e(t1)}</b> (UTC); "
            f"analysis window: {scope}. Ingest finalized: {e(h['finalized'])}.</p>"
            f"<h4>Evidence files</h4>"
            + (f"<p>Paths relative to <code>{e(root)}</code>.</p>" if root else "")
            + f"{evidence}<h4>Sources</h4>{sources}"
            f"<h4>Coverage gaps and integrity</h4>{gaps}<h4>Rejected records</h4>{rejects}</section>")


def _summary(doc: dict[str, Any]) -> str:
    h, s = doc["header"], doc["summary"]
    lv = s["finding_levels"]
    cards = [(h["events"], "events"), (h["counts"]["credentials"], "credentials"),
             (len(doc["credentials"]), "examined"), (len(doc["findings"]["items"]), "findings"),
             (lv.get("critical", 0) + lv.get("high", 0), "critical + high"), (h["rejected"], "rejected records")]
    card_html = "".join(f'<div class="card"><div class="n">{e(n)}</div><div class="l">{e(l)}</div></div>'
                        for n, l in cards)
    text = "".join(f"<p>{e(x)}</p>" for x in s["sentences"])
    return (f'<section id="summary" class="summary"><h2>Executive summary</h2>'
            f'<div class="cards">{card_html}</div>{text}</section>')


def _ranking(doc: dict[str, Any]) -> str:
    r = doc["ranking"]
    rows, detail = [], []
    for i, c in enumerate(r["credentials"][:50], 1):
        rows.append([i, get(c, "credential"), get(c, "kind"), get(c, "holder"), get(c, "score"),
                     get(c, "events", "event_count"),
                     count(get(c, "derived_credentials")), get(c, "agents"), get(c, "humans"),
                     get(c, "last_seen")])
        terms = terms_rows(get(c, "terms", "score_terms", default={}))
        if terms and i <= 10:
            detail.append(f"<h4>Score terms: <code>{e(get(c, 'credential'))}</code></h4>"
                          + _table(["term", "value", "points", "explanation"], [list(t) for t in terms]))
    note = f'<p class="note">{e(r["note"])}</p>' if r.get("note") else ""
    total = r.get("total", len(r["credentials"]))
    more = (f'<p class="note">{e(more_ranked(total, len(r["credentials"]), 50))}</p>' if total > 50 else "")
    return (f'<section id="ranking"><h2>2. Credentials ranked by blast radius</h2>{note}'
            + _table(["#", "credential", "kind", "holder", "score", "events", "derived", "agents",
                      "humans", "last seen"], rows, mono={1}, nowrap={9}) + more
            + "".join(detail) + "</section>")


def _note(text: str) -> str:
    return f'<p class="note">{e(text)}</p>' if text else ""


def _legend() -> str:
    items = "".join(f'<span><i class="sw" style="background:{c}"></i>{e(k)}</span>' for k, c in EDGE_COLOR.items())
    return (f'<div class="legend">{items}<span>solid = proven, long dash = strong, '
            f"short dash = inferred</span></div>")


def _credential(i: int, c: dict[str, Any]) -> str:
    a = c["activity"]
    parts = [(f'<div class="cred" id="cred-{i}"><h3>3.{i} <code>{e(c["credential"])}</code> '
             f'<small>({e(c["kind"])})</small></h3>')]
    parts.append(f"<p>Score <b>{e(c['score'])}</b>. The credential and {len(c['derived_credentials']) - 1} "
                 f"credential(s) minted from it signed <b>{e(a['events'])}</b> events "
                 f"({e(a['denied'])} denied, {e(a['actions'])} distinct actions, {e(a['accounts'])} account(s)) "
                 f"from {e(a['first_seen'])} to {e(a['last_seen'])}.</p>")
    svg = render_lineage_svg(c["lineage"], uid=f"g{i}")
    if svg:
        omitted = [(c["lineage"].get(f"{k}_omitted") or 0, k) for k in ("credentials", "principals", "resources")]
        text = " and ".join(f"{n} less-used {k}" for n, k in omitted if n)
        more = f'<p class="note">{e(text)} are not drawn (the tables below list them all).</p>' if text else ""
        parts.append(f"<h4>Lineage</h4><div class=\"graph\">{svg}</div>{_legend()}{more}")
    parts.append("<h4>Resources reached</h4>" + _note(resources_note(c)) + _table(
        ["resource", "type", "action", "events", "denied", "first", "last"],
        [[r["resource_id"], r["resource_type"], r["action"], r["events"], r["denied"], r["first_seen"],
          r["last_seen"]] for r in c["resources"]], mono={0}, nowrap={5, 6},
        row_class=["denied" if r["denied"] else "" for r in c["resources"]]))
    terms = terms_rows(c.get("terms"))
    if terms:
        parts.append("<h4>Score terms</h4>" + _table(["term", "value", "points", "explanation"], [list(x) for x in terms]))
    blast = c.get("blast_radius") or {}
    for key, title in (("sensitive_actions", "Write, delete and permission-changing actions"),
                       ("secrets_read", "Secrets read")):
        headers, rows = dict_rows(blast.get(key))
        if rows:
            parts.append(f"<h4>{e(title)}</h4>" + _table(headers, rows))
    if c.get("potential"):
        parts.append(_potential(c["potential"]))
    parts.append("<h4>Derived credentials</h4>" + _table(
        ["credential", "depth", "kind", "minted by", "issued", "expires", "acts as"],
        [[d["credential_id"], d["depth"], d["kind"], d["parent_credential_id"], d["issued_at"], d["expires_at"],
          d["principal_uid"]] for d in c["derived_credentials"][:DERIVED_SHOWN]], mono={0, 3, 6}, nowrap={4, 5})
        + _note(derived_note(c)))
    parts.append("<h4>Agents, humans and principals</h4>" + _table(
        ["role", "identities"], [["humans", c["humans"]], ["agents", c["agents"]], ["principals", c["principals"]]]))
    parts.append("<h4>Timeline (UTC)</h4>" + _table(
        ["time", "event id", "credential", "actor", "action", "target", "outcome", "user agent"],
        [[t["time"], t["source_event_id"], t["credential_id"], t["actor_name"], t["action"], t["target"],
          t["outcome"] + (f" ({t['error_code']})" if t["error_code"] else ""), t["user_agent"]]
         for t in c["timeline"]], mono={1, 2, 5}, nowrap={0},
        row_class=["denied" if t["outcome"] == "denied" else "" for t in c["timeline"]]))
    if c["timeline_truncated"]:
        parts.append(f'<p class="note">First {len(c["timeline"])} of {e(a["events"])} events; '
                     f"the JSON report and <code>keytrail blast</code> have all of them.</p>")
    if c["traces"]:
        parts.append("<h4>Delegation chains of key events</h4>")
        for t in c["traces"]:
            steps, gaps = chain_steps(t["trace"])
            items = "".join(f"<li><b>{e(s['kind'])}</b> <code>{e(s['id'])}</code>"
                            + (f" <small>{e(s['label'])}</small>" if s["label"] and s["label"] != s["id"] else "")
                            + (f" — {e(s['reason'])}" if s["reason"] else "")
                            + (f" <i>({e(s['confidence'])})</i>" if s["confidence"] else "") + "</li>"
                            for s in steps)
            gap_html = "".join(f'<p class="note">{e(g)}</p>' for g in gaps)
            parts.append(f"<p><code>{e(t['event_uid'])}</code></p><ol class=\"chain\">{items}</ol>{gap_html}")
    parts.append("</div>")
    return "".join(parts)


def _potential(p: dict[str, Any]) -> str:
    from keytrail.report import potential_rows

    if not p["available"]:
        return "<h4>Granted by policy</h4>" + _note(p["reason"])
    parts = ["<h4>Granted by policy</h4>", _note(potential_rows.intro(p))]
    for title, headers, rows in potential_rows.tables(p):
        parts.append(f"<h5>{e(title)}</h5>" + _table(headers, [list(r) for r in rows]))
    return "".join(parts)


def _findings(doc: dict[str, Any]) -> str:
    f = doc["findings"]
    note = f'<p class="note">{e(f["note"])}</p>' if f.get("note") else ""
    if not f["items"]:
        return f'<section id="findings"><h2>4. Findings</h2>{note}<p class="note">No findings.</p></section>'
    blocks = []
    for item in sorted(f["items"], key=lambda x: LEVEL_ORDER.index(x["level"]) if x["level"] in LEVEL_ORDER else 9):
        blocks.append(
            f"<h3>{_badge(item['level'])} {e(item['title'])} <small><code>{e(item['rule'])}</code></small></h3>"
            + _kv([("frameworks", item.get("frameworks")), ("subjects", item.get("subjects")),
                   ("impact", item.get("impact")), ("description", item.get("description")),
                   ("recommendation", item.get("recommendation")),
                   ("seen", f"{scalar_text(item.get('first_seen'))} to {scalar_text(item.get('last_seen'))}"),
                   ("evidence", f"{scalar_text(item.get('evidence'))} ({scalar_text(item.get('evidence_count'))} events)")]))
    return f'<section id="findings"><h2>4. Findings</h2>{note}{"".join(blocks)}</section>'


def _containment(doc: dict[str, Any]) -> str:
    items = doc["containment"]
    if not items:
        return '<section id="containment"><h2>5. Containment checklist</h2><p class="note">Nothing to contain.</p></section>'
    out, category = [], None
    for it in items:
        if it["category"] != category:
            if category is not None:
                out.append("</ul>")
            category = it["category"]
            out.append(f"<h4>{e(category)}</h4><ul class=\"check\">")
        ev = f" Evidence: <code>{e(it['evidence'])}</code>." if it["evidence"] else ""
        todo = (f"<pre>{e(it['command'])}</pre>" if it.get("command")
                else f"<div>{e(it.get('recommendation') or '')}</div>")
        out.append(f"<li><code>{e(it['target'])}</code> — {e(it['why'])}.{ev}{todo}</li>")
    out.append("</ul>")
    return f'<section id="containment"><h2>5. Containment checklist</h2>{"".join(out)}</section>'


def _appendix(doc: dict[str, Any]) -> str:
    a = doc["appendix"]
    queries = "".join(f"<h4>{e(q['name'])}</h4><pre>{escape(q['sql'])}</pre>" for q in a["queries"])
    return (f'<section id="appendix"><h2>6. Appendix: queries and versions</h2>'
            f"<p>keytrail {e(a['keytrail_version'])}; report format {e(doc['report_version'])}; parameters: "
            f"{e(a['parameters'])}. Each number above comes from one of these queries, run on the case "
            f"(parameters <code>$cred</code>, <code>$since</code>, <code>$until</code>).</p>{queries}</section>")


def render_html(doc: dict[str, Any]) -> str:
    """The report document as a single HTML page (no script, no network reference)."""
    h = doc["header"]
    creds = "".join(_credential(i, c) for i, c in enumerate(doc["credentials"], 1))
    toc = ('<nav class="toc"><b>Contents</b><ol><li>Case and evidence</li><li>Credentials ranked by blast radius</li>'
           "<li>Blast radius per credential</li><li>Findings</li><li>Containment checklist</li>"
           "<li>Appendix: queries and versions</li></ol></nav>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="referrer" content="no-referrer">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>keytrail blast-radius report: {e(h['case'])}</title><style>{STYLE}</style></head><body>"
        f'<header class="top"><span class="class">CONFIDENTIAL · INCIDENT RESPONSE</span>'
        f"<h1>Blast-radius report</h1><div class=\"meta\">case {e(h['case'])} · evidence {e(h['time_range'][0])} "
        f"to {e(h['time_range'][1])} UTC · generated {e(doc['generated_at'])} by keytrail "
        f"{e(doc['keytrail_version'])}</div></header><main>"
        + _summary(doc) + toc + _header(doc) + _ranking(doc)
        + '<section id="blast"><h2>3. Blast radius per credential</h2>'
        + (creds or '<p class="note">No credential selected.</p>') + "</section>"
        + _findings(doc) + _containment(doc) + _appendix(doc)
        + f"<footer>Generated by keytrail {e(doc['keytrail_version'])} at {e(doc['generated_at'])}. "
        "Secrets found in the logs are masked. Times are UTC. Every identifier is as logged.</footer>"
        "</main></body></html>\n"
    )
