"""Delegation trace: for one event, who did it, through what, on whose behalf.

The answer is an ordered chain human -> agent -> root credential -> ... -> the
credential that signed the event -> the event. Each link carries the reason,
confidence and evidence of the edge that put it there. Where the evidence stops,
the trace says so in ``gaps`` ("origin unknown: ...", "no agent linked to ...");
where it is ambiguous (two agents share a credential) the candidates are listed and
none is picked. Nothing is guessed.

Cost: a handful of indexed-size queries (one filter on ``events``, the rest on
``credentials`` and ``links``); no graph is built per call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keytrail.analysis.causes import CauseTrace, trace_cause
from keytrail.analysis.lineage import ancestry
from keytrail.analysis.lookup import resolve_event
from keytrail.graph.model import CONFIDENCE_RANK
from keytrail.graph.principal_class import holders
from keytrail.timefmt import format_utc

if TYPE_CHECKING:
    from keytrail.store.case import CaseStore

_EVENT_KEYS = (
    "event_uid",
    "source",
    "source_event_id",
    "time",
    "action",
    "outcome",
    "error_code",
    "actor_uid",
    "actor_name",
    "credential_id",
    "credential_kind",
    "agent_id",
    "human_id",
    "src_ip",
    "account",
    "region",
    "target",
    "file_id",
    "record_no",
)


@dataclass(frozen=True)
class ChainLink:
    kind: str  # human | agent | credential | event
    id: str
    label: str
    reason: str
    confidence: str
    evidence: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.id,
            "label": self.label,
            "reason": self.reason,
            "confidence": self.confidence,
            "evidence": list(self.evidence),
        }


@dataclass
class Trace:
    event: dict[str, Any]
    chain: list[ChainLink]
    gaps: list[str]
    candidates: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    matches: int = 1
    holders: dict[str, str] = field(default_factory=dict)
    """Principal classifier class of each credential in the chain (person, workload, agent, ...)."""

    def as_dict(self) -> dict[str, Any]:
        ev = {k: (format_utc(v) if k == "time" else v) for k, v in self.event.items()}
        return {
            "event": ev,
            "chain": [c.as_dict() for c in self.chain],
            "gaps": self.gaps,
            "candidates": self.candidates,
            "matches": self.matches,
            "holders": self.holders,
        }


def _rank(conf: str | None) -> int:
    return CONFIDENCE_RANK.get(conf or "inferred", 2)


def _best(rows: list[dict[str, Any]], who: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of the best tier (specific evidence first, then confidence, then closeness) and the distinct ids."""
    if not rows:
        return [], []
    key = [(not r["specific"], r.get("distance", 0), _rank(r["confidence"])) for r in rows]
    top = min(key)
    tier = [r for r, k in zip(rows, key) if k == top]
    ids = sorted({r[who] for r in tier})
    return tier, ids


def _credential_label(row: dict[str, Any] | None, cid: str) -> str:
    if not row:
        return cid
    parts = [row.get("kind") or "credential"]
    if row.get("principal_uid"):
        parts.append(f"as {row['principal_uid']}")
    return " ".join(parts)


def _origin_gap(cid: str, row: dict[str, Any] | None) -> str:
    kind = (row or {}).get("kind")
    if kind == "aws-temporary-key":
        why = (
            "a temporary key is always minted by an STS call or an instance/container role; that call is not "
            "in these logs (another account's trail, outside the time range, or stolen instance credentials)"
        )
    elif kind == "aws-access-key":
        why = "the key's CreateAccessKey call is not in these logs (created before the evidence starts?)"
    elif kind == "vault-token":
        why = "the login or token creation that produced it is not in these audit logs"
    else:
        why = "no issuing event for it was ingested"
    return f"origin unknown: no issuing event for {cid} in the evidence; {why}"


#: Seconds around an event in which a sharing agent's own credential reference singles it out.
NEAR_S = 120


def _agents_near(store: CaseStore, agents: list[str], cred: str, t: Any) -> dict[str, list[str]]:
    """Agents among ``agents`` whose own log names ``cred`` within ``NEAR_S`` seconds of ``t``."""
    if t is None:
        return {}
    rows = store.query(
        f"""SELECT agent_id, list(event_uid ORDER BY abs(epoch(time) - epoch($t::TIMESTAMP)))[1:5] AS refs
            FROM events WHERE source = 'agent' AND credential_id = $c AND list_contains($a, agent_id)
              AND time BETWEEN $t::TIMESTAMP - INTERVAL {NEAR_S} SECOND AND $t::TIMESTAMP + INTERVAL {NEAR_S} SECOND
            GROUP BY agent_id""",
        {"t": t, "c": cred, "a": agents},  # type: ignore[arg-type]
    )
    return {r["agent_id"]: list(r["refs"]) for r in rows}


def _made_for(store: CaseStore, uid: str, signer: str | None) -> tuple[str, str] | None:
    """(key, its preferred parent) of a credential this event created whose preferred parent is not
    the event's own credential: the call was made on that parent's behalf (docs/graph.md)."""
    rows = store.query(
        """SELECT c.credential_id, c.parent_credential_id FROM credentials c
           WHERE c.credential_id IN (SELECT credential_id FROM credential_issues
                                     WHERE event_uid = $u)
             AND c.parent_credential_id IS NOT NULL AND c.parent_credential_id <> coalesce($s, '')
           ORDER BY c.credential_id LIMIT 1""",
        {"u": uid, "s": signer},  # type: ignore[arg-type]
    )
    return (rows[0]["credential_id"], rows[0]["parent_credential_id"]) if rows else None


def _lineage_links(
    store: CaseStore, cred: str | None, steps: list[Any], stopped: bool, uid: str, gaps: list[str]
) -> tuple[list[str], list[ChainLink]]:
    """The ids of ``cred``'s lineage (root first) and their chain links; gaps are appended."""
    chain_ids = ([steps[0].parent] if steps else ([cred] if cred else [])) + [
        s.child for s in steps
    ]
    cred_rows = {
        r["credential_id"]: r
        for r in store.query(
            "SELECT * FROM credentials WHERE list_contains($ids, credential_id)",
            {"ids": chain_ids},  # type: ignore[arg-type]
        )
    }
    cred_links: list[ChainLink] = []
    if not chain_ids:
        return chain_ids, cred_links
    root = chain_ids[0]
    rrow = cred_rows.get(root)
    if rrow and rrow["origin"] == "issued":
        issue = store.query(
            "SELECT reason, confidence FROM credential_issues WHERE credential_id = ? AND event_uid = ?",
            [root, rrow["issued_by_event"]],
        )
        reason = (
            "issued by "
            + (issue[0]["reason"] if issue else "its issuing event")
            + " (root of the chain: the request carried no credential)"
        )
        cred_links.append(
            ChainLink(
                "credential",
                root,
                _credential_label(rrow, root),
                reason,
                issue[0]["confidence"] if issue else "strong",
                (str(rrow["issued_by_event"]),),
            )
        )
    else:
        gaps.append(_origin_gap(root, rrow))
        # Evidence of a root with no issuing event: its first signed event (this one if it signed it).
        first = (
            [uid]
            if cred == root
            else [
                r["event_uid"]
                for r in store.query(
                    "SELECT event_uid FROM events WHERE credential_id = ? ORDER BY time, event_uid LIMIT 1",
                    [root],
                )
            ]
        )
        cred_links.append(
            ChainLink(
                "credential",
                root,
                _credential_label(rrow, root),
                "origin unknown: no issuing event in the evidence",
                "proven",
                tuple(first),
            )
        )
    for s in steps:
        cred_links.append(
            ChainLink(
                "credential",
                s.child,
                _credential_label(cred_rows.get(s.child), s.child),
                f"minted by {s.parent}: {s.reason}",
                s.confidence,
                s.evidence,
            )
        )
    if stopped:
        gaps.append(f"lineage of {cred} stopped early (a parent cycle or more than 50 steps)")
    return chain_ids, cred_links


def _agents_with_cause(cause: CauseTrace, holder: ChainLink | None) -> list[ChainLink]:
    """The agent hops of a per-call trace: delegating agents, the acting agent, then the holder.

    The holder (the agent the credential's USES edge names) is one hop with the acting agent when
    they are the same (both reasons kept), and follows it otherwise (an agent calling an MCP
    server that holds its own Vault role).
    """
    hops = [ChainLink(p.kind, p.id, p.id, p.reason, p.confidence, p.evidence) for p in cause.agents]
    if not hops:
        return [holder] if holder is not None else []
    if holder is not None and holder.id == hops[-1].id:
        last = hops[-1]
        hops[-1] = ChainLink(
            "agent",
            last.id,
            last.label,
            f"{last.reason}; {holder.reason}",
            last.confidence,
            tuple(dict.fromkeys(last.evidence + holder.evidence)),
        )
        return hops
    return hops + ([holder] if holder is not None else [])


def trace_event(store: CaseStore, event_id: str) -> Trace:
    """The delegation trace of one event (``event_id``: the source's own id or an ``event_uid``).

    Raises:
        NotFoundError: no event with that id (with the closest ids).
    """
    rows = resolve_event(store, event_id)
    ev = {k: rows[0].get(k) for k in _EVENT_KEYS}
    uid: str = str(rows[0]["event_uid"])
    gaps: list[str] = []
    candidates: dict[str, list[dict[str, Any]]] = {}
    if len(rows) > 1:
        gaps.append(
            f"{len(rows)} events have the id {event_id!r}; showing {uid} (pass an event_uid to pick "
            f"another: {', '.join(r['event_uid'] for r in rows[1:5])})"
        )

    cred = ev["credential_id"]
    inferred_via = None
    if cred is None and ev["source"] == "agent":
        # A tool call matched to an API call: the USES edge's evidence names this event.
        m = store.query(
            """SELECT dst, reason, confidence, evidence FROM links
               WHERE kind = 'USES' AND src = $a AND list_contains(evidence, $u) ORDER BY dst LIMIT 2""",
            {"a": ev["agent_id"] or "", "u": uid},  # type: ignore[arg-type]
        )
        if len(m) == 1:
            cred, inferred_via = m[0]["dst"], m[0]
    shared_copy = None
    if cred is None and ev["source"] == "cloudtrail":
        # The resource account's copy of a cross-account call (same sharedEventID) names no access key;
        # the caller's copy does: the chain is that key's.
        m = store.query(
            """SELECT DISTINCT credential_id, min(event_uid) AS event_uid FROM events
               WHERE shared_event_id = (SELECT shared_event_id FROM events WHERE event_uid = $u)
                 AND event_uid <> $u AND credential_id IS NOT NULL GROUP BY credential_id LIMIT 2""",
            {"u": uid},  # type: ignore[arg-type]
        )
        if len(m) == 1:
            cred, shared_copy = m[0]["credential_id"], m[0]["event_uid"]

    # Credential lineage, root first.
    steps, stopped = ancestry(store, cred) if cred else ([], False)
    chain_ids, cred_links = _lineage_links(store, cred, steps, stopped, uid, gaps)
    if not cred:
        gaps.append("the event carries no credential and none was matched to it")
    # A key this event created for someone else (Vault's AWS engine calling CreateAccessKey with
    # its own key for a lease): the chain continues through the lease to the token that read it.
    made_for = _made_for(store, uid, cred)
    behalf_ids: list[str] = []
    behalf_links: list[ChainLink] = []
    if made_for is not None:
        key, parent = made_for
        bsteps, bstopped = ancestry(store, key)
        behalf_ids, behalf_links = _lineage_links(store, key, bsteps, bstopped, uid, gaps)
        if behalf_links and behalf_links[-1].id == key:
            last = behalf_links[-1]
            behalf_links[-1] = ChainLink(
                "credential",
                key,
                last.label,
                f"created by this event for {parent}; {last.reason}",
                last.confidence,
                last.evidence,
            )
    search_ids = behalf_ids + [c for c in chain_ids if c not in behalf_ids]
    # closeness to the event: the credentials it was made for first, then the signer's chain
    closeness = {c: len(behalf_ids) - 1 - i for i, c in enumerate(behalf_ids)}
    for i, c in enumerate(chain_ids):
        closeness.setdefault(c, len(behalf_ids) + len(chain_ids) - 1 - i)

    # Agent: the event's own agent id, else USES edges on the chain (closest to the event first).
    agent_link = None
    gaps_before_agent = len(gaps)
    if ev["agent_id"]:
        agent_link = ChainLink(
            "agent",
            ev["agent_id"],
            ev["agent_id"],
            "the event's own log names the agent",
            "proven",
            (uid,),
        )
    elif search_ids:
        uses = store.query(
            """SELECT src AS agent, dst AS credential, reason, confidence, evidence,
                      list_contains(evidence, $u) AS specific
               FROM links WHERE rowid IN (
                 SELECT rowid FROM links WHERE kind = 'USES' AND list_contains($ids, dst))""",
            {"ids": search_ids, "u": uid},  # type: ignore[arg-type]
        )
        for r in uses:
            r["distance"] = closeness[r["credential"]]
        tier, agents = _best(uses, "agent")
        if len(agents) == 1:
            # Show the strongest edge of that agent on the chain (it may be stronger than the specific one).
            r = min(
                (u for u in uses if u["agent"] == agents[0]),
                key=lambda u: (_rank(u["confidence"]), u["distance"]),
            )
            agent_link = ChainLink(
                "agent",
                r["agent"],
                r["agent"],
                f"uses {r['credential']}: {r['reason']}",
                r["confidence"],
                tuple(r["evidence"]),
            )
        elif agents:
            candidates["agents"] = [
                {k: v for k, v in r.items() if k not in ("specific", "distance")} for r in tier
            ]
            near = _agents_near(store, agents, tier[0]["credential"], ev["time"])
            if len(near) == 1:
                who, refs = next(iter(near.items()))
                agent_link = ChainLink(
                    "agent",
                    who,
                    who,
                    f"{len(agents)} agents ({', '.join(agents)}) use {tier[0]['credential']}; only {who}'s log "
                    f"references it within {NEAR_S} s of this event",
                    "inferred",
                    tuple(refs),
                )
                gaps.append(
                    f"agent {who} was chosen among {len(agents)} agents ({', '.join(agents)}) sharing "
                    f"{tier[0]['credential']} by time only (inferred); see candidates"
                )
            else:
                gaps.append(
                    f"{len(agents)} agents ({', '.join(agents)}) use credential {tier[0]['credential']} "
                    f"with the same confidence; the event cannot be attributed to one of them"
                )
        else:
            gaps.append(
                f"no agent linked to credential {cred} or the credentials it was minted from"
            )
    if agent_link is not None and not ev["agent_id"] and ev["source"] == "cloudtrail":
        # The agent hop says whose credential signed the call, not who made it: a console session or a
        # browser user agent means a person did (NHI10), and the trace must not read as the agent acting.
        ua = store.query(
            """SELECT user_agent, json_extract_string(raw, '$.sessionCredentialFromConsole') AS console
               FROM events WHERE event_uid = ?""",
            [uid],
        )
        if ua and (
            ua[0]["console"] == "true" or str(ua[0]["user_agent"] or "").startswith("Mozilla/")
        ):
            gaps.append(
                f"a person, not agent {agent_link.id}, made this call: it came from "
                + ("an AWS console session" if ua[0]["console"] == "true" else "a web browser")
                + f" ({ua[0]['user_agent'] or 'no user agent'}) on the agent's credential"
            )
    if inferred_via is not None and agent_link is not None:
        gaps.append(
            f"credential {cred} was matched to this tool call by time and target (inferred), "
            f"not named in the agent's log"
        )

    # Per call: the tool call that caused this event names the person and the agents between.
    cause = trace_cause(store, uid) if not ev["human_id"] else None
    agent_links = [agent_link] if agent_link is not None else []
    if cause is not None:
        gaps += cause.gaps
        if cause.candidates:
            candidates["causes"] = cause.candidates
        agent_links = _agents_with_cause(cause, agent_link)
        shared = candidates.get("agents")
        if cause.agents and shared and agent_link is not None:
            # the tool call settles which of the agents sharing the credential made this call
            del gaps[gaps_before_agent : gaps_before_agent + 1]
            names = sorted({a["agent"] for a in shared})
            gaps.append(
                f"{len(names)} agents ({', '.join(names)}) use {shared[0]['credential']}; "
                f"this event is attributed to agent {cause.agents[-1].id} by its tool "
                "call, not by the credential"
            )

    # Human: named on the event, else on the tool call that caused it, else delegated to the agent,
    # else to a credential of the chain.
    human_link = None
    if cause is not None and not cause.candidates:
        if cause.human is not None:
            h = cause.human
            human_link = ChainLink("human", h.id, h.id, h.reason, h.confidence, h.evidence)
        elif agent_links and not store.query(
            "SELECT 1 FROM links WHERE kind = 'DELEGATED' AND dst_kind = 'agent' "
            "AND dst = ? LIMIT 1",
            [agent_links[0].id],
        ):
            gaps.append(f"no human delegated to agent {agent_links[0].id}")
    elif ev["human_id"]:
        fields = {
            "vault": "the Vault token's display name or metadata (userpass, LDAP, OIDC login)",
            "cloudtrail": "onBehalfOf / sourceIdentity / Identity Center session",
        }.get(str(ev["source"]), "enduser.id / user.id / on-behalf-of")
        human_link = ChainLink(
            "human",
            ev["human_id"],
            ev["human_id"],
            f"the event names the user it was done for ({fields})",
            "proven" if ev["source"] == "agent" else "strong",
            (uid,),
        )
    else:
        dels = store.query(
            """SELECT src AS human, dst_kind, dst, reason, confidence, evidence, false AS specific
               FROM links WHERE rowid IN (SELECT rowid FROM links WHERE kind = 'DELEGATED' AND (
                 (dst_kind = 'agent' AND dst = $a) OR (dst_kind = 'credential' AND list_contains($ids, dst))))""",
            {"a": agent_link.id if agent_link else "", "ids": search_ids},  # type: ignore[arg-type]
        )
        for r in dels:
            r["distance"] = 0 if r["dst_kind"] == "agent" else 1
        tier, humans = _best(dels, "human")
        if len(humans) == 1:
            r = tier[0]
            human_link = ChainLink(
                "human",
                r["human"],
                r["human"],
                f"delegated to {r['dst_kind']} {r['dst']}: {r['reason']}",
                r["confidence"],
                tuple(r["evidence"]),
            )
            if (
                r["dst_kind"] == "agent"
                and cred
                and store.query(
                    """SELECT 1 FROM event_links l JOIN events e ON e.event_uid = l.effect_uid
                       WHERE e.credential_id = ? LIMIT 1""",
                    [cred],
                )
            ):
                # other calls on this credential are tied to tool calls, this one is not
                # (a start-up login?)
                gaps.append(
                    f"no tool call is linked to this event: {r['human']} is named "
                    f"because they delegated to agent {r['dst']}, not because this call "
                    "is known to serve their request"
                )
        elif humans:
            candidates["humans"] = [
                {k: v for k, v in r.items() if k not in ("specific", "distance")} for r in tier
            ]
            gaps.append(
                f"{len(humans)} humans ({', '.join(humans)}) delegated to "
                f"{tier[0]['dst_kind']} {tier[0]['dst']}; the event cannot be attributed to one of them"
            )
        elif agent_link is not None:
            gaps.append(f"no human delegated to agent {agent_link.id}")
        else:
            gaps.append("no human linked to this event, its agent or its credentials")

    label = " ".join(str(x) for x in (ev["action"], ev["target"] or "", f"({ev['outcome']})") if x)
    if shared_copy is not None:
        event_link = ChainLink(
            "event",
            uid,
            label,
            f"signed with {cred}: copy of {shared_copy} (same CloudTrail "
            "sharedEventID, delivered to the other account)",
            "proven",
            (uid, shared_copy),
        )
    else:
        why = f"signed with {cred}" if ev["credential_id"] else "the event itself"
        if made_for is not None:
            why += f", creating {made_for[0]} for {made_for[1]}"
        event_link = ChainLink("event", uid, label, why, "proven", (uid,))
    people = [human_link] if human_link else []
    chain = people + agent_links + behalf_links + cred_links + [event_link]
    held = holders(store.con, [c.id for c in chain if c.kind == "credential"])
    classes = {c.id: held[c.id] for c in chain if c.kind == "credential" and c.id in held}
    return Trace(
        event=ev, chain=chain, gaps=gaps, candidates=candidates, matches=len(rows), holders=classes
    )
