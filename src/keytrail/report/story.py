"""The report's first screen: what happened (the attack path) and what to do now.

Built from the report document itself (the examined credential sections, the findings and
the containment checklist), so the picture and the actions agree with the sections they
summarise. :func:`attack_path` follows the top credential: the humans who delegated, the
agents that used it, the chain of credentials minted from it (deepest chain first), and
the sensitive resources the chain reached (secrets read, writes, deletes, permission
changes). :func:`top_actions` takes the containment checklist worst first and keeps one
action per target, folding the other reasons for the same target into it.
"""

from __future__ import annotations

from typing import Any

#: Most credentials of the chain, resources and agents/humans the picture draws.
CHAIN_MAX, RESOURCES_MAX, PEOPLE_MAX = 5, 5, 3
#: Actions on the first screen.
ACTIONS_MAX = 6


def _principal_name(principal: str | None) -> str:
    """The readable end of a principal: ``arn:…:user/svc-x`` -> ``svc-x``, a role session -> ``role/session``."""
    if not principal:
        return ""
    if ":assumed-role/" in principal:
        return "/".join(principal.split(":assumed-role/", 1)[1].split("/")[:2])
    if principal.startswith("arn:"):
        return principal.rsplit("/", 1)[-1] if "/" in principal else principal.rsplit(":", 1)[-1]
    return principal


def _chain(derived: list[dict[str, Any]], end: str | None = None) -> list[dict[str, Any]]:
    """The path from the examined credential down to ``end`` (default: its deepest minted one)."""
    if not derived:
        return []
    by_id = {d["credential_id"]: d for d in derived}
    deepest = by_id.get(end or "") or max(
        derived, key=lambda d: (int(d.get("depth") or 0), d.get("issued_at") or "")
    )
    path, seen = [deepest], {deepest["credential_id"]}
    while (
        path[-1].get("parent_credential_id") in by_id
        and path[-1]["parent_credential_id"] not in seen
    ):
        parent = by_id[path[-1]["parent_credential_id"]]
        seen.add(parent["credential_id"])
        path.append(parent)
    path.reverse()
    root = next((d for d in derived if not d.get("depth")), None)
    if (
        root is not None and path[0] is not root
    ):  # the parent link left D(c): start at its root all the same
        path.insert(0, root)
    if len(path) > CHAIN_MAX:  # keep the root and the deepest end: the middle is in the section
        path = path[:1] + path[-(CHAIN_MAX - 1) :]
    return [
        {
            "credential": d["credential_id"],
            "kind": d.get("kind"),
            "depth": d.get("depth"),
            "principal": _principal_name(d.get("principal_uid")),
            "events": d.get("events"),
        }
        for d in path
    ]


def _sensitive(section: dict[str, Any]) -> list[dict[str, Any]]:
    blast = section.get("blast_radius") or {}
    out: dict[str, dict[str, Any]] = {}
    for key in ("secrets_read", "sensitive_actions"):
        for r in blast.get(key) or []:
            if r.get("category") == "denied" or not r.get("resource"):
                continue
            hit = out.setdefault(
                r["resource"],
                {"resource": r["resource"], "actions": [], "events": 0, "credentials": []},
            )
            if r.get("action") and r["action"] not in hit["actions"]:
                hit["actions"].append(r["action"])
            if r.get("credential") and r["credential"] not in hit["credentials"]:
                hit["credentials"].append(r["credential"])
            hit["events"] += int(r.get("events") or 0)
    return sorted(out.values(), key=lambda r: (-r["events"], r["resource"]))[:RESOURCES_MAX]


def attack_path(sections: list[dict[str, Any]]) -> dict[str, Any] | None:
    """human -> agent -> credential chain -> sensitive resources of the top examined credential."""
    if not sections:
        return None
    # The top credential may have been minted from another examined one (a backdoor key at the
    # end of a chain ranks first): draw the chain from the widest examined blast radius holding
    # it, with its humans and agents, down to it.
    target = sections[0]["credential"]

    def holds(sec: dict[str, Any]) -> bool:
        return any(d["credential_id"] == target for d in sec["derived_credentials"])

    index, top = max(
        ((i, sec) for i, sec in enumerate(sections, 1) if holds(sec) or i == 1),
        key=lambda p: (
            bool(p[1]["humans"] or p[1]["agents"]),
            len(p[1]["derived_credentials"]),
            -p[0],
        ),
    )
    end = target if index != 1 else None
    return {
        "credential": top["credential"],
        "humans": top["humans"][:PEOPLE_MAX],
        "agents": top["agents"][:PEOPLE_MAX],
        "chain": _chain(top["derived_credentials"], end),
        "resources": _sensitive(top),
        "section": index,
    }


LEVEL_RANK = {"critical": 0, "high": 1}


def top_actions(checklist: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first :data:`ACTIONS_MAX` checklist items, worst first, one per target (its other reasons folded in)."""
    out: list[dict[str, Any]] = []
    by_target: dict[str, dict[str, Any]] = {}
    for item in sorted(checklist, key=lambda i: LEVEL_RANK.get(i.get("level") or "", 2)):
        primary = item["target"].split(", ")[0]
        seen = by_target.get(primary)
        if seen is not None:
            if item["why"] not in seen["also"] and item["why"] != seen["why"]:
                seen["also"].append(item["why"])
            continue
        action = {
            "target": primary,
            "level": item.get("level"),
            "category": item["category"],
            "why": item["why"],
            "also": [],
            "command": item.get("command"),
            "recommendation": item.get("recommendation"),
        }
        by_target[primary] = action
        out.append(action)
    return out[:ACTIONS_MAX]
