"""The blast-radius report as one JSON-ready document; HTML and Markdown render this dict.

``build_report`` gathers everything a reader needs, each number traceable: the case header
(evidence with SHA-256, integrity, sources, span, rejects, coverage gaps), an executive
summary, credentials ranked by :func:`keytrail.analysis.answers.rank_credentials`, and for
each selected credential its lineage (the ``MINTED`` closure D(c) with the agents, humans and
principals linked to it), the resources D(c) acted on with actions, the timeline, and the
delegation chains (:func:`keytrail.analysis.delegation.trace_event`) of its key events; then the
findings (:func:`keytrail.analysis.answers.run_findings`), a containment checklist and an
appendix with the SQL (:mod:`keytrail.report.queries`) behind the numbers.

Every string that came from a log is masked (:func:`keytrail.redact.mask_secrets`) and stripped of
terminal escapes and invisible characters here, once, so every renderer and the JSON are safe by
construction. Renderers still escape for their own syntax. Output is deterministic: sorted, and the
generation time is a parameter (the CLI honours ``SOURCE_DATE_EPOCH``).
"""

from __future__ import annotations

import importlib
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from keytrail import __version__, redact
from keytrail.errors import NotFoundError, UsageError
from keytrail.idfmt import expand_short
from keytrail.report import containment as containment_mod
from keytrail.report import story
from keytrail.report.queries import QUERIES
from keytrail.safetext import shown_lines
from keytrail.timefmt import format_utc, to_utc

if TYPE_CHECKING:
    from collections.abc import Callable

    from keytrail.store.case import CaseStore

REPORT_VERSION = 1
DEFAULT_TOP = 5
TIMELINE_LIMIT = 200
#: Most principals and most resources drawn in one lineage graph (the tables list them all).
DRAWN = 8
#: Most credentials of D(c) drawn in one lineage graph (the examined one and the first minted).
DRAWN_CREDENTIALS = 24
#: Credentials listed in the report's ranking (``ranking.total`` counts them all;
#: ``keytrail credentials CASE --json`` lists every one).
RANKED_LIMIT = 500
#: Derived credentials named per ranking row (``derived_count`` is the total).
DERIVED_LISTED = 100
#: Resources listed per credential section, those with the most events (``resources_total``
#: counts them all).
RESOURCE_LIMIT = 500


def _analysis(module: str, name: str) -> Callable[..., Any] | None:
    """An analysis function, or None while its module is not part of this build."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and module.startswith(e.name):
            return None
        raise
    fn: Callable[..., Any] | None = getattr(mod, name, None)
    return fn


def _clean(value: Any, *, key: str = "", memo: dict[str, str] | None = None) -> Any:
    """JSON-ready copy: times as UTC ``Z`` text, log strings masked and stripped of invisible characters.

    ``memo`` holds each distinct string's cleaned text for one document: at 1M events a report
    holds ~880,000 strings but ~150,000 distinct ones (ids, actions and times repeat in every
    list), and masking and escaping each was most of the document's cleaning."""
    if memo is None:
        memo = {}
    if isinstance(value, dict):
        return {str(k): _clean(v, key=str(k), memo=memo) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_clean(v, memo=memo) for v in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, datetime):
        return format_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "as_dict"):
        return _clean(value.as_dict(), memo=memo)
    if isinstance(value, str):
        if key == "sql":
            return value
        out = memo.get(value)
        if out is None:
            out = memo[value] = shown_lines(redact.mask_secrets(value))
        return out
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return _clean(str(value), memo=memo)


def _get(d: dict[str, Any], *keys: str, default: Any = None) -> Any:
    for k in keys:
        if k in d and d[k] is not None:
            return d[k]
    return default


def _params(cred: str | None, since: datetime | None, until: datetime | None) -> dict[str, Any]:
    return {"cred": cred, "since": since, "until": until, "resource_limit": RESOURCE_LIMIT}


def _run(store: CaseStore, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    sql = QUERIES[name]
    used = {k: v for k, v in params.items() if f"${k}" in sql}
    cur = store.cursor()
    try:
        rel = cur.execute(sql, used)
        cols = [d[0] for d in rel.description or []]
        return [dict(zip(cols, row)) for row in rel.fetchall()]
    finally:
        cur.close()


def _parse_time(value: str | datetime | None, what: str) -> datetime | None:
    if value is None or value == "":
        return None
    dt = to_utc(value)
    if dt is None:
        raise UsageError(
            f"{what} {value!r} is not a time; use ISO 8601 such as 2026-03-02T10:00:00Z"
        )
    return dt


# -- sections -----------------------------------------------------------------------------------
def _header(store: CaseStore, since: datetime | None, until: datetime | None) -> dict[str, Any]:
    from keytrail.analysis.summary import case_info

    info = case_info(store)
    skipped = [e for e in info["evidence"] if e["status"] == "skipped"]
    gaps: list[dict[str, Any]] = []
    for e in info["evidence"]:
        if e["status"] == "partial":
            gaps.append(
                {
                    "kind": "partial-file",
                    "detail": f"file {e['file_id']} stopped early: {e['note'] or ''}",
                    "file_id": e["file_id"],
                }
            )
        if e["integrity"] in ("failed", "no-digest"):
            gaps.append(
                {
                    "kind": f"integrity-{e['integrity']}",
                    "detail": f"file {e['file_id']}: {e['integrity_detail'] or e['integrity']}",
                    "file_id": e["file_id"],
                }
            )
    for e in skipped:
        gaps.append(
            {
                "kind": "skipped-file",
                "detail": f"file {e['file_id']} not read: {e['note'] or 'unknown format'}",
                "file_id": e["file_id"],
            }
        )
    for source, s in sorted(info["sources"].items()):
        if s["events"] == 0:
            gaps.append(
                {
                    "kind": "missing-source",
                    "detail": f"no {source} events in the evidence",
                    "file_id": None,
                }
            )
    for g in _run(store, "coverage_gaps", {}):
        gaps.append(
            {
                "kind": "time-gap",
                "file_id": None,
                "detail": f"no {g['source']} events from {format_utc(g['gap_start'])} to {format_utc(g['gap_end'])}",
            }
        )
    return {
        "case": store.path.name,
        "finalized": info["finalized"],
        "window": {"since": format_utc(since), "until": format_utc(until)},
        "time_range": info["time_range"],
        "events": info["events"],
        "rejected": info["rejected"],
        "counts": info["counts"],
        "sources": info["sources"],
        "integrity": info["integrity"],
        "evidence": info["evidence"],
        "rejects_by_file": _run(store, "rejects_by_file", {}),
        "coverage_gaps": gaps,
    }


def _ranking(
    store: CaseStore, since: datetime | None, until: datetime | None
) -> tuple[list[dict[str, Any]], int, str | None]:
    """(the top RANKED_LIMIT credentials, how many were ranked, a note when scoring is unavailable)."""
    rank = _analysis("keytrail.analysis.answers", "rank_credentials")
    if rank is None:
        rows = store.query(
            "SELECT credential_id, kind, events FROM credentials ORDER BY events DESC, credential_id"
        )
        note = "blast-radius scoring is not available in this build; credentials are listed by events signed"
        return (
            [
                {
                    "credential": r["credential_id"],
                    "kind": r["kind"],
                    "score": None,
                    "terms": {},
                    "events": r["events"],
                }
                for r in rows
            ],
            len(rows),
            note,
        )
    # Without a window every credential is ranked and the snapshot serves the top rows directly.
    windowed = since is not None or until is not None
    out = []
    for r in rank(store, since=since, until=until, limit=None if windowed else RANKED_LIMIT):
        d = r.as_dict() if hasattr(r, "as_dict") else dict(r)
        d.setdefault("credential", _get(d, "credential_id", "id"))
        if isinstance(d.get("derived_credentials"), list):
            d["derived_credentials"] = d["derived_credentials"][:DERIVED_LISTED]
        out.append(d)
    total = len(out) if windowed else int(store.scalar("SELECT count(*) FROM credentials") or 0)
    return out, total, None


def _lineage(
    identities: list[dict[str, Any]],
    derived: list[dict[str, Any]],
    cred: str,
    acted_on: list[dict[str, Any]],
) -> dict[str, Any]:
    """Nodes and edges for the lineage drawing: humans -> agents -> D(c) -> principals, resources."""
    nodes: dict[str, dict[str, Any]] = {}

    def add(kind: str, ident: str, **extra: Any) -> str:
        nid = f"{kind}:{ident}"
        nodes.setdefault(nid, {"id": nid, "kind": kind, "label": ident, **extra})
        return nid

    # ``derived`` is ordered by depth, then issue time: the examined credential and the first
    # credentials minted from it are drawn; a graph of thousands of keys shows nothing.
    kept = {d["credential_id"] for d in derived[:DRAWN_CREDENTIALS]}
    for d in derived[:DRAWN_CREDENTIALS]:
        add("credential", d["credential_id"], depth=d["depth"], root=d["credential_id"] == cred)
    edges = []
    weight: dict[str, int] = {}
    for link in identities:
        if link["dst_kind"] == "principal" and link["src"] in kept:
            weight[link["dst"]] = weight.get(link["dst"], 0) + int(link["evidence_count"] or 0)
    principals = set(sorted(weight, key=lambda k: (-weight[k], k))[:DRAWN])
    for link in identities:
        if link["dst_kind"] == "principal" and link["dst"] not in principals:
            continue
        if (link["src_kind"] == "credential" and link["src"] not in kept) or (
            link["dst_kind"] == "credential" and link["dst"] not in kept
        ):
            continue
        s = add(link["src_kind"], link["src"])
        t = add(link["dst_kind"], link["dst"])
        edges.append(
            {
                "src": s,
                "dst": t,
                "kind": link["kind"],
                "confidence": link["confidence"],
                "reason": link["reason"],
                "evidence_count": link["evidence_count"],
            }
        )
    by_resource: dict[str, int] = {}
    for r in acted_on:
        if r["credential_id"] in kept:
            by_resource[r["resource_id"]] = by_resource.get(r["resource_id"], 0) + int(r["events"])
    drawn = sorted(by_resource, key=lambda k: (-by_resource[k], k))[:DRAWN]
    for rid in drawn:
        add("resource", rid, events=by_resource[rid])
    for r in acted_on:
        if r["resource_id"] in drawn and r["credential_id"] in kept:
            denied = f", {r['denied']} denied" if r["denied"] else ""
            edges.append(
                {
                    "src": f"credential:{r['credential_id']}",
                    "dst": f"resource:{r['resource_id']}",
                    "kind": "ACTED_ON",
                    "confidence": "proven",
                    "evidence_count": r["events"],
                    "reason": f"{r['events']} events signed with the credential{denied}",
                }
            )
    return {
        "nodes": [nodes[k] for k in sorted(nodes)],
        "edges": edges,
        "resources_omitted": max(0, len(by_resource) - DRAWN),
        "principals_omitted": max(0, len(weight) - DRAWN),
        "credentials_omitted": max(0, len(derived) - DRAWN_CREDENTIALS),
    }


def _traces(store: CaseStore, event_uids: list[str]) -> list[dict[str, Any]]:
    trace = _analysis("keytrail.analysis.delegation", "trace_event")
    if trace is None:
        return []
    out = []
    for uid in event_uids:
        try:
            t = trace(store, uid)
        except NotFoundError:
            continue
        out.append({"event_uid": uid, "trace": t.as_dict() if hasattr(t, "as_dict") else t})
    return out


def _credential_section(
    store: CaseStore,
    cred: str,
    rank: dict[str, Any] | None,
    since: datetime | None,
    until: datetime | None,
) -> dict[str, Any]:
    p = _params(cred, since, until)
    derived = _run(store, "derived_credentials", p)
    resources = _run(store, "resources", p)
    resources_total = int(resources[0]["resources_total"]) if resources else 0
    for r in resources:
        del r["resources_total"]
    activity = _run(store, "activity", p)[0]
    identities = _run(store, "identities", p)
    logged = _run(store, "logged_agents_humans", p)
    timeline = _run(store, "timeline", p)
    key_events = [r["event_uid"] for r in _run(store, "key_events", p)]
    agents = sorted(
        {i["src"] for i in identities if i["src_kind"] == "agent"}
        | {r["agent_id"] for r in logged if r["agent_id"]}
    )
    humans = sorted(
        {i["src"] for i in identities if i["src_kind"] == "human"}
        | {r["human_id"] for r in logged if r["human_id"]}
    )
    principals = sorted({i["dst"] for i in identities if i["kind"] == "AUTHENTICATES_AS"})
    blast = None
    blast_fn = _analysis("keytrail.analysis.answers", "blast_radius")
    if blast_fn is not None:
        result = blast_fn(store, cred, since=since, until=until)
        blast = result.as_dict() if hasattr(result, "as_dict") else result
    if rank is None and blast:  # a requested credential below the listed part of the ranking
        rank = {"score": blast.get("score"), "score_terms": blast.get("score_terms")}
    extra: dict[str, Any] = {}
    from keytrail.analysis import potential

    if potential.has_snapshot(
        store
    ):  # only then: reports of cases without a snapshot stay byte-identical
        extra["potential"] = potential.potential_blast_radius(store, cred).as_dict()
    return {
        "credential": cred,
        "kind": derived[0]["kind"] if derived else None,
        "score": _get(rank or {}, "score"),
        "terms": _get(rank or {}, "terms", "score_terms", default={}),
        "activity": activity,
        "derived_credentials": derived,
        "resources": resources,
        "resources_total": resources_total,
        "principals": principals,
        "agents": agents,
        "humans": humans,
        "links": identities,
        "lineage": _lineage(identities, derived, cred, _run(store, "acted_on", p)),
        "timeline": timeline,
        "timeline_truncated": int(activity["events"] or 0) > len(timeline),
        "traces": _traces(store, key_events),
        "blast_radius": blast,
        **extra,
    }


def _findings(store: CaseStore) -> tuple[list[dict[str, Any]], str | None]:
    run = _analysis("keytrail.analysis.answers", "run_findings")
    if run is None:
        return [], "governance findings are not available in this build"
    return [f.as_dict() for f in run(store)], None


def _summary(
    header: dict[str, Any],
    ranked_total: int,
    sections: list[dict[str, Any]],
    findings: list[dict[str, Any]],
) -> dict[str, Any]:
    t0, t1 = header["time_range"]
    sources = [s for s, v in sorted(header["sources"].items()) if v["events"]]
    levels: dict[str, int] = {}
    for f in findings:
        levels[f["level"]] = levels.get(f["level"], 0) + 1
    sentences = [
        f"The evidence holds {header['events']} events from {', '.join(sources) or 'no source'}"
        + (f" between {t0} and {t1}" if t0 else "")
        + f", in {len(header['evidence'])} files"
        + (f"; {_n(header['rejected'], 'record')} could not be read" if header["rejected"] else "")
        + ".",
        f"{header['counts']['credentials']} credentials were seen; {len(sections)} are examined below.",
    ]
    if sections:
        top = sections[0]
        a = top["activity"]
        n_res = top["resources_total"]
        derived = len(top["derived_credentials"]) - 1
        sentences.append(
            f"{top['credential']} ({top['kind'] or 'unknown kind'}) and the {derived} credential(s) minted from it "
            f"signed {a['events']} events on {n_res} resources in {a['accounts']} account(s), "
            f"with {a['denied']} denied attempts"
            + (f", acting through agent(s) {', '.join(top['agents'])}" if top["agents"] else "")
            + (f" on behalf of {', '.join(top['humans'])}" if top["humans"] else "")
            + "."
        )
    if findings:
        parts = ", ".join(f"{n} {lvl}" for lvl, n in levels.items())
        sentences.append(f"{len(findings)} governance findings: {parts}.")
    return {"sentences": sentences, "finding_levels": levels, "credentials_ranked": ranked_total}


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def build_report(
    store: CaseStore,
    *,
    credentials: list[str] | None = None,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    generated_at: datetime | None = None,
    top: int = DEFAULT_TOP,
) -> dict[str, Any]:
    """The report document (JSON-ready). ``credentials`` defaults to the ``top`` ranked ones.

    Raises:
        NotFoundError: a requested credential is not in the case (exit 1).
        UsageError: ``since``/``until`` is not a time.
    """
    since_dt, until_dt = _parse_time(since, "--since"), _parse_time(until, "--until")
    if credentials:
        known = {r["credential_id"] for r in store.query("SELECT credential_id FROM credentials")}
        known |= {
            r["credential_id"]
            for r in store.query(
                "SELECT DISTINCT credential_id FROM events WHERE credential_id IS NOT NULL"
            )
        }
        whole = []
        for c in credentials:
            if c not in known:
                # a unique prefix (or hmac:… as the tables show it) names the one id it starts
                prefix = expand_short(c)
                starts = [k for k in known if k.startswith(prefix)] if len(prefix) >= 4 else []
                if len(starts) == 1:
                    whole.append(starts[0])
                    continue
                close = sorted(
                    starts or [k for k in known if c.lower() in k.lower() or k.lower() in c.lower()]
                )[:5]
                raise NotFoundError(f"credential {c!r} is not in this case", close)
            whole.append(c)
        credentials = whole
    header = _header(store, since_dt, until_dt)
    ranked, ranked_total, rank_note = _ranking(store, since_dt, until_dt)
    by_id = {r["credential"]: r for r in ranked}
    selected = (
        list(dict.fromkeys(credentials)) if credentials else [r["credential"] for r in ranked[:top]]
    )
    sections = [_credential_section(store, c, by_id.get(c), since_dt, until_dt) for c in selected]
    findings, findings_note = _findings(store)
    when = generated_at or datetime.now(UTC)
    revoke_before = format_utc(when.replace(microsecond=0)) or ""
    checklist = containment_mod.checklist(store, sections, findings, revoke_before)
    summary = _summary(header, ranked_total, sections, findings)
    summary["attack_path"] = story.attack_path(sections)
    summary["actions"] = story.top_actions(checklist)
    doc = {
        "report_version": REPORT_VERSION,
        "keytrail_version": __version__,
        "generated_at": format_utc(when.replace(microsecond=0)),
        "header": header,
        "summary": summary,
        "ranking": {"credentials": ranked[:RANKED_LIMIT], "total": ranked_total, "note": rank_note},
        "credentials": sections,
        "findings": {"items": findings, "note": findings_note},
        "containment": checklist,
        "appendix": {
            "keytrail_version": __version__,
            "parameters": {
                "since": format_utc(since_dt),
                "until": format_utc(until_dt),
                "credentials": selected,
                "resource_limit": RESOURCE_LIMIT,
            },
            "queries": [{"name": k, "sql": v.strip()} for k, v in QUERIES.items()],
        },
    }
    cleaned: dict[str, Any] = _clean(doc)
    return cleaned
