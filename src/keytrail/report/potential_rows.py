"""The "Granted by policy" subsection of a credential, as plain tables every report writer renders.

One place turns :meth:`keytrail.analysis.potential.PotentialBlastRadius.as_dict` into
``(title, headers, rows)`` tables of plain strings; the HTML and Markdown writers escape
them their own way. The subsection exists only when the case holds a policy snapshot
(``content.py`` leaves the key out otherwise, so reports of cases without one are unchanged).
"""

from __future__ import annotations

from typing import Any

#: Rows per table in HTML/Markdown (the JSON report has all of them).
SHOWN = 100


def _grant(g: dict[str, Any]) -> tuple[str, str]:
    acts = (
        g["actions"] if g["actions"] is not None else [f"NOT {a}" for a in g["not_actions"] or []]
    )
    res = (
        g["resources"]
        if g["resources"] is not None
        else [f"NOT {r}" for r in g["not_resources"] or []]
    )
    return ", ".join(acts), ", ".join(res)


def intro(p: dict[str, Any]) -> str:
    n = len(p["principals"])
    missing = sum(1 for x in p["principals"] if not x["in_snapshot"])
    gap = f" ({missing} not in any snapshot)" if missing else ""
    return (
        f"D(c) authenticates as {n} principal(s){gap}; {len(p['flags'])} flag(s), "
        f"{len(p['unused'])} granted-but-unused statement(s), {p['totals']['unexplained_groups']} observed action "
        f"group(s) the snapshot does not explain, {p['totals']['denied_but_granted_groups']} denied group(s) it "
        f"allows. " + " ".join(p["caveats"])
    )


def tables(p: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """``(title, headers, rows)`` of the subsection; empty tables are kept so a reader sees "none"."""
    grants = []
    for pr in p["principals"]:
        who = pr["arn"] or pr["name"] if pr["source"] == "aws-iam" else f"Vault policy {pr['name']}"
        if not pr["in_snapshot"]:
            grants.append([who, "—", "—", "not in any policy snapshot", "—"])
        for g in pr["allowed"] + pr["denied"]:
            acts, res = _grant(g)
            via = f"{g['attachment']} ({g['via_group']})" if g["via_group"] else g["attachment"]
            grants.append([who, g["effect"], f"{g['policy_name']} [{via}]", acts, res])
    return [
        ("Grants", ["principal", "effect", "policy", "actions", "resources"], grants[:SHOWN]),
        (
            "Flags",
            ["flag", "principal", "policy", "actions"],
            [
                [f["flag"], f["principal"], str(f["policy"]), ", ".join(f["actions"] or [])]
                for f in p["flags"][:SHOWN]
            ],
        ),
        (
            "Granted but never used (least-privilege gap)",
            ["principal", "policy", "unused", "resources"],
            [
                [
                    u["principal"],
                    u["policy"],
                    ", ".join(u["patterns"]),
                    ", ".join(u["resources"] or []),
                ]
                for u in p["unused"][:SHOWN]
            ],
        ),
        (
            "Observed but not explained by the snapshot",
            ["principal", "action", "resources", "events", "why"],
            [
                [x["principal"], x["action"], ", ".join(x["resources"]), str(x["events"]), x["why"]]
                for x in p["unexplained"][:SHOWN]
            ],
        ),
        (
            "Denied although the snapshot allows it",
            ["principal", "action", "resources", "events"],
            [
                [x["principal"], x["action"], ", ".join(x["resources"]), str(x["events"])]
                for x in p["denied_but_granted"][:SHOWN]
            ],
        ),
    ]
