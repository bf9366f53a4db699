"""``keytrail credentials``, ``blast`` and ``trace``: the identity graph on the command line.

Thin wrappers over :mod:`keytrail.analysis`: the JSON output is the result's
``as_dict()`` (keys are a contract), the text output is plain text with
box-drawing trees and aligned tables. Every log-derived string goes through
:func:`keytrail.safetext.shown` before it reaches the terminal.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from keytrail.errors import UsageError

if TYPE_CHECKING:
    from datetime import datetime

    from keytrail.analysis.lineage import LineageNode

CONFIDENCES = ("proven", "strong", "inferred")
#: Identifiers (credential ids, resources) are what a responder greps for: never cut them
#: short (a Vault accessor HMAC is 76 characters); the cap only bounds hostile input.
ID_WIDTH = 200


def _p(value: Any, width: int | None = 80) -> str:
    from keytrail.safetext import shown

    return shown("-" if value is None or value == "" else str(value), width)


def _time(value: str | None, flag: str) -> datetime | None:
    from keytrail.timefmt import to_utc

    if value is None:
        return None
    t = to_utc(value)
    if t is None:
        raise UsageError(
            f"{flag} {value!r} is not a time: use e.g. 2024-03-01T12:00:00Z or 2024-03-01"
        )
    return t


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", metavar="TIME", help="only events at or after TIME (UTC, ISO 8601)")
    p.add_argument("--until", metavar="TIME", help="only events at or before TIME (UTC, ISO 8601)")
    p.add_argument(
        "--min-confidence",
        choices=CONFIDENCES,
        default="inferred",
        help="ignore edges weaker than this (default: inferred, i.e. all)",
    )
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")


def _table(
    headers: list[str], rows: list[list[str]], out: Any, width: int | None = None, **fit: Any
) -> None:
    from keytrail.cli.fit import write_table

    write_table(headers, rows, out, width, **fit)


def _wide(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--wide",
        action="store_true",
        help="print every column whole (default: fit the terminal; a pipe gets whole rows)",
    )


# -- credentials ---------------------------------------------------------------------
def _add_credentials(p: argparse.ArgumentParser) -> None:
    p.add_argument("case")
    p.add_argument("--limit", type=int, metavar="N", help="show the top N")
    _filters(p)
    _wide(p)


def run_credentials(args: argparse.Namespace) -> int:
    from keytrail.analysis.answers import rank_credentials
    from keytrail.store.case import CaseStore

    with CaseStore.open(args.case) as store:
        ranks = rank_credentials(
            store,
            since=_time(args.since, "--since"),
            until=_time(args.until, "--until"),
            min_confidence=args.min_confidence,
            limit=args.limit,
        )
    if args.json:
        from keytrail.cli.main import print_json

        print_json([r.as_dict() for r in ranks])
        return 0
    from keytrail.timefmt import format_utc

    rows = [
        [
            f"{r.score:.1f}",
            _p(r.credential, ID_WIDTH),
            _p(r.kind, 18),
            _p(r.holder or "-", 11),
            _p(r.origin, 8),
            f"{r.events:,}",
            str(len(r.derived_credentials)),
            _p(", ".join(r.agents), 30),
            _p(", ".join(r.humans), 30),
            _p(format_utc(r.first_seen)),
            _p(format_utc(r.last_seen)),
        ]
        for r in ranks
    ]
    from keytrail.cli.fit import width_of

    # Under 100 columns the origin, the minted count, the times and the humans go;
    # ids are cut in the middle.
    _table(
        [
            "score",
            "credential",
            "kind",
            "holder",
            "origin",
            "events",
            "minted",
            "agents",
            "humans",
            "first",
            "last",
        ],
        rows,
        sys.stdout,
        width_of(sys.stdout, wide=args.wide),
        optional=("origin", "minted", "first", "last", "humans"),
        ids=("credential", "agents", "humans"),
    )
    print(
        f"({len(ranks)} credentials; explain one with: keytrail blast {_p(args.case, None)} CREDENTIAL)",
        file=sys.stderr,
    )
    return 0


# -- blast ---------------------------------------------------------------------------
def _add_blast(p: argparse.ArgumentParser) -> None:
    p.add_argument("case")
    p.add_argument(
        "credential", help="credential id as logged (AKIA/ASIA key, Vault accessor, lease id)"
    )
    _filters(p)


def tree_lines(
    node: LineageNode, prefix: str = "", last: bool = True, top: bool = True
) -> list[str]:
    """A lineage tree drawn with box-drawing characters (log text made plain)."""
    kind = f" [{_p(node.kind, 20)}]" if node.kind else ""
    why = (
        f"  ({node.confidence}: {_p(node.reason, 2 * ID_WIDTH)})" if node.reason else ""
    )  # may name a session
    lines = [
        (prefix + ("" if top else ("└── " if last else "├── ")))
        + _p(node.credential, ID_WIDTH)
        + kind
        + why
    ]
    child_prefix = prefix + ("" if top else ("    " if last else "│   "))
    for i, c in enumerate(node.children):
        lines += tree_lines(c, child_prefix, i == len(node.children) - 1, False)
    return lines


def run_blast(args: argparse.Namespace) -> int:
    from keytrail.analysis.answers import blast_radius
    from keytrail.analysis.potential import potential_blast_radius
    from keytrail.store.case import CaseStore

    with CaseStore.open(args.case) as store:
        b = blast_radius(
            store,
            args.credential,
            since=_time(args.since, "--since"),
            until=_time(args.until, "--until"),
            min_confidence=args.min_confidence,
        )
        # The snapshot is a moment, not a window: the potential half ignores --since/--until.
        pot = potential_blast_radius(store, b.credential, min_confidence=args.min_confidence)
    if args.json:
        from keytrail.cli.main import print_json

        print_json({**b.as_dict(), "potential": pot.as_dict()})
        return 0
    from keytrail.timefmt import format_utc

    out = sys.stdout
    out.write(
        f"credential {_p(b.credential)}  [{_p(b.kind)}]  origin {_p(b.origin)}  as {_p(b.principal)}\n"
    )
    if b.holder:
        h = b.holder
        who = f" {_p(str(h['person']))}" if h.get("person") else ""
        why = _p(str(h["reason"]), 110)
        out.write(f"holder {_p(str(h['class']))}{who} ({h['confidence']}: {why})\n")
    out.write(
        f"score {b.score:.1f}   events {b.counts.get('events', 0):,}   "
        f"{format_utc(b.first_seen) or '-'} .. {format_utc(b.last_seen) or '-'}\n\n"
    )
    out.write("score terms\n")
    _table(
        ["points", "term", "why"],
        [[f"{t.points:.1f}", t.name, _p(t.explanation, 110)] for t in b.score_terms if t.points],
        out,
    )
    out.write("\nlineage (credentials minted from it)\n")
    for line in tree_lines(b.lineage) if b.lineage else []:
        out.write("  " + line + "\n")
    sections: list[tuple[str, list[str], list[list[str]]]] = [
        (
            "resources",
            ["events", "denied", "resource", "actions", "first", "last"],
            [
                [
                    f"{r['events']:,}",
                    str(r["denied"]),
                    _p(r["resource"], ID_WIDTH),
                    _p(", ".join(f"{a['action']}×{a['count']}" for a in r["actions"]), 60),
                    _p(format_utc(r["first_seen"])),
                    _p(format_utc(r["last_seen"])),
                ]
                for r in b.resources
            ],
        ),
        (
            "secrets read",
            ["events", "action", "resource", "credential"],
            [
                [
                    str(r["events"]),
                    _p(r["action"], 40),
                    _p(r["resource"], ID_WIDTH),
                    _p(r["credential"], ID_WIDTH),
                ]
                for r in b.secrets_read
            ],
        ),
        (
            "writes, deletes, permission changes and denied attempts",
            ["category", "events", "action", "resource"],
            [
                [r["category"], str(r["events"]), _p(r["action"], 40), _p(r["resource"], ID_WIDTH)]
                for r in b.sensitive_actions
            ],
        ),
        (
            "agents",
            ["agent", "credential", "confidence", "reason"],
            [
                [
                    _p(a["agent"], 40),
                    _p(a["credential"], ID_WIDTH),
                    a["confidence"],
                    _p(a["reason"], 90),
                ]
                for a in b.agents
            ],
        ),
        (
            "humans",
            ["human", "via", "confidence", "reason"],
            [
                [
                    _p(h["human"], 40),
                    _p(f"{h['via_kind']} {h['via']}", 50),
                    h["confidence"],
                    _p(h["reason"], 90),
                ]
                for h in b.humans
            ],
        ),
    ]
    for title, headers, rows in sections:
        out.write(f"\n{title} ({len(rows)})\n")
        if rows:
            _table(headers, rows, out)
    out.write(f"\nprincipals: {_p(', '.join(b.principals), 400)}\n")
    out.write(f"accounts:   {_p(', '.join(b.accounts), 400)}\n")
    out.write(f"services:   {_p(', '.join(b.services), 400)}\n")
    potential_lines(pot.as_dict(), out)
    return 0


def _grant_text(g: dict[str, Any]) -> str:
    acts = (
        g["actions"] if g["actions"] is not None else [f"NOT {a}" for a in g["not_actions"] or []]
    )
    res = (
        g["resources"]
        if g["resources"] is not None
        else [f"NOT {r}" for r in g["not_resources"] or []]
    )
    return f"{', '.join(acts)} on {', '.join(res)}"


def potential_lines(p: dict[str, Any], out: Any) -> None:
    """The "Potential (from policy snapshots)" section of ``keytrail blast`` (plain text)."""
    out.write("\nPotential (from policy snapshots)\n")
    if not p["available"]:
        out.write(f"  not available: {_p(p['reason'], 300)}\n")
        return
    for pr in p["principals"]:
        who = pr["arn"] or pr["name"] if pr["source"] == "aws-iam" else f"Vault policy {pr['name']}"
        out.write(
            f"\n  {_p(who, ID_WIDTH)}  [{_p(pr['kind'])}]  via {_p(', '.join(pr['credentials']), 2 * ID_WIDTH)}\n"
        )
        for note in pr["notes"]:
            out.write(f"    ! {_p(note, 300)}\n")
        rows = [
            [
                _p(g["effect"]),
                _p(g["policy_name"], 40),
                _p(g["attachment"] + (f" ({g['via_group']})" if g["via_group"] else ""), 60),
                _p(_grant_text(g), 160),
                "condition" if g["conditions"] else "",
            ]
            for g in pr["allowed"] + pr["denied"]
        ]
        if rows:
            _table(["effect", "policy", "attached", "grants", ""], rows, out)
    sections: list[tuple[str, list[str], list[list[str]]]] = [
        (
            "flags",
            ["flag", "principal", "policy", "actions"],
            [
                [
                    f["flag"],
                    _p(f["principal"], ID_WIDTH),
                    _p(f["policy"], 40),
                    _p(", ".join(f["actions"] or []), 80),
                ]
                for f in p["flags"]
            ],
        ),
        (
            "granted but never used by D(c) (least-privilege gap)",
            ["principal", "policy", "unused"],
            [
                [
                    _p(u["principal"], ID_WIDTH),
                    _p(u["policy"], 40),
                    _p(", ".join(u["patterns"]) + " on " + ", ".join(u["resources"] or []), 120),
                ]
                for u in p["unused"]
            ],
        ),
        (
            "observed but not explained by the snapshot",
            ["events", "principal", "action", "resource", "why"],
            [
                [
                    str(x["events"]),
                    _p(x["principal"], ID_WIDTH),
                    _p(x["action"], 40),
                    _p(", ".join(x["resources"]), ID_WIDTH),
                    x["verdict"],
                ]
                for x in p["unexplained"]
            ],
        ),
        (
            "denied although the snapshot allows it",
            ["events", "principal", "action", "resource"],
            [
                [
                    str(x["events"]),
                    _p(x["principal"], ID_WIDTH),
                    _p(x["action"], 40),
                    _p(", ".join(x["resources"]), ID_WIDTH),
                ]
                for x in p["denied_but_granted"]
            ],
        ),
    ]
    totals = {
        "observed but not explained by the snapshot": p["totals"]["unexplained_groups"],
        "denied although the snapshot allows it": p["totals"]["denied_but_granted_groups"],
    }
    for title, headers, rows in sections:
        total = totals.get(title, len(rows))
        out.write(
            f"\n{title} ({len(rows)}"
            + (f" of {total}, busiest first" if total > len(rows) else "")
            + ")\n"
        )
        if rows:
            _table(headers, rows, out)
    if p["unexplained"]:
        out.write("  (the snapshot is incomplete or was taken at another time than these events)\n")
    out.write("\ncaveats: " + " ".join(p["caveats"]) + "\n")


# -- trace ---------------------------------------------------------------------------
def _add_trace(p: argparse.ArgumentParser) -> None:
    p.add_argument("case")
    p.add_argument(
        "event_id",
        metavar="EVENT_ID",
        help="the source's own id (CloudTrail eventID, Vault request id, span id) or an event_uid",
    )
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")


def run_trace(args: argparse.Namespace) -> int:
    from keytrail.analysis.delegation import trace_event
    from keytrail.store.case import CaseStore
    from keytrail.timefmt import format_utc

    with CaseStore.open(args.case) as store:
        t = trace_event(store, args.event_id)
    if args.json:
        from keytrail.cli.main import print_json

        print_json(t.as_dict())
        return 0
    out = sys.stdout
    ev = t.event
    out.write(
        f"event {_p(ev['event_uid'])}  {_p(ev['action'])}  {_p(ev['outcome'])}  "
        f"{format_utc(ev['time']) or '-'}  (file {ev['file_id']}, record {ev['record_no']})\n"
    )
    who = [
        f"{word} {_p(ev.get(key), ID_WIDTH)}"
        for word, key in (("by", "actor_uid"), ("from", "src_ip"))
        if ev.get(key)
    ]
    if who:  # who and from where, as logged: the first thing a responder asks
        out.write("  ".join(who) + "\n")
    out.write("\n")
    for i, link in enumerate(t.chain):
        if i:
            out.write("   │\n   ▼\n")
        label = (
            f"  {_p(link.label, 2 * ID_WIDTH)}" if link.label != link.id else ""
        )  # labels carry ARNs
        cls = t.holders.get(link.id) if link.kind == "credential" else None
        held = f"  (holder: {cls})" if cls else ""
        out.write(f"[{link.kind}] {_p(link.id, ID_WIDTH)}{label}{held}\n")
        out.write(f"     {link.confidence}: {_p(link.reason, 160)}\n")
        ev_list = ", ".join(link.evidence[:5]) + (
            f" (+{len(link.evidence) - 5})" if len(link.evidence) > 5 else ""
        )
        out.write(f"     evidence: {_p(ev_list, 200)}\n")
    if t.gaps:
        out.write("\ngaps\n")
        for g in t.gaps:
            out.write(f"  ! {_p(g, 300)}\n")
    return 0


COMMANDS = {
    "credentials": (
        "credentials ranked by blast radius (score terms explain the order)",
        _add_credentials,
        run_credentials,
    ),
    "blast": ("blast radius of a credential and everything minted from it", _add_blast, run_blast),
    "trace": (
        "delegation trace of an event: human -> agent -> credentials -> event",
        _add_trace,
        run_trace,
    ),
}
