"""Sigma rule hits as findings, one per rule and credential, joined to the identity graph.

Every loaded rule (:mod:`keytrail.analysis.sigma.rules`) is one predicate over the Sigma fields
of a record; all rules are evaluated in one read of the records (:mod:`.rawpass`, which also
takes the human-use rule's console flag from the same JSON parse). A noisy
rule (``AssumeRole`` misuse matches every role session) would drown a case in thousands of
findings, so hits are grouped per rule and identity (:mod:`.grouped`: the role or user, so
every session of a role is one finding): one finding says how many events, cites up to 25
of them, and names the credentials, the principal, and the agents and humans their chains
reach.

The rule's author and first reference go into every description and the details keep the
rest, as the Detection Rule License 1.1 asks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keytrail.analysis.findings.catalog import RuleInfo
from keytrail.analysis.findings.context import Draft
from keytrail.analysis.findings.grouped import contain, group_hits, reach, subjects, who
from keytrail.levels import Level

if TYPE_CHECKING:
    from keytrail.analysis.findings.context import Context
    from keytrail.analysis.sigma.rules import SigmaRule


def run(ctx: Context) -> None:
    from keytrail.analysis.findings.rawpass import ensure

    made = ensure(ctx)  # the hits, made with the other reads of the records' JSON
    if made.rules is None or not made.sigma:
        return
    rules = made.rules.rules
    for r in group_hits(ctx, "_kt_sigma_hit"):
        rule = rules[r["r"]]
        ctx.extra_rules.setdefault(
            rule.id, RuleInfo(rule.id, "sigma", rule.level, rule.title, rule.techniques)
        )
        ctx.add(_draft(rule, r))


def _draft(rule: SigmaRule, r: dict[str, Any]) -> Draft:
    actions = ", ".join(r["actions"] or [])
    desc = (
        f'Sigma rule "{rule.title}" matched {r["n"]} event(s) by {who(r)}: {actions}.'
        f"{reach(r)} {rule.credit()}. {rule.description.rstrip('.')}."
    )
    return Draft(
        rule.id,
        subjects(r),
        list(r["uids"]),
        desc.strip(),
        "; ".join(rule.falsepositives)
        and f"Known false positives: {'; '.join(rule.falsepositives)}",
        r["t0"],
        r["t1"],
        contain=contain(r),
        count=int(r["n"]),
        level=Level.parse(rule.level),
        advice="Confirm with the credential's owner that the matched calls were intended.",
        details={
            **rule.as_dict(),
            "actions": list(r["actions"] or []),
            "source_ips": list(r["ips"] or []),
            "credentials": list(r["creds"] or []),
            "agents": list(r["agents"] or []),
            "humans": list(r["humans"] or []),
        },
    )
