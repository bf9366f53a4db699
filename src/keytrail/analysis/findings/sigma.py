"""Sigma rule hits as findings, one per rule and credential, joined to the identity graph.

Every loaded rule (:mod:`keytrail.analysis.sigma.rules`) runs as one ``WHERE`` over the
Sigma field table; the hits of all rules come back from one ``UNION ALL`` query. A noisy
rule (``AssumeRole`` misuse matches every role session) would drown a case in thousands of
findings, so hits are grouped per rule and identity (:mod:`.grouped`: the role or user, so
every session of a role is one finding): one finding says how many events, cites up to 25
of them, and names the credentials, the principal, and the agents and humans their chains
reach.

The rule's author and first reference go into every description and the details keep the
rest, as the Detection Rule License 1.1 asks.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from keytrail.analysis.findings.catalog import RuleInfo
from keytrail.analysis.findings.context import Draft
from keytrail.analysis.findings.grouped import contain, group_hits, reach, subjects, who
from keytrail.levels import Level

if TYPE_CHECKING:
    from keytrail.analysis.findings.context import Context
    from keytrail.analysis.sigma.rules import SigmaRule


def _hits_sql(rules: list[tuple[int, SigmaRule]]) -> str:
    from keytrail.analysis.sigma.fields import SEL, TABLE

    # A rule that names its events looks only at the records whose name one rule allows
    # (SEL, a few percent of a case): the rest of its predicate is not evaluated elsewhere.
    return " UNION ALL ".join(
        f"SELECT {i} AS r, event_uid FROM {TABLE} WHERE "
        + (f"{SEL} AND " if rule.event_names is not None else "")
        + f"({rule.where})"
        for i, rule in rules
    )


def _hits(ctx: Context, rules: list[SigmaRule]) -> None:
    """``_kt_sigma_hit(r, event_uid)``; a rule whose SQL fails is skipped with a note."""
    indexed = list(enumerate(rules))
    with contextlib.suppress(Exception):  # one rule's SQL failed: find it below, keep the others
        ctx.cur.execute(f"CREATE OR REPLACE TEMP TABLE _kt_sigma_hit AS {_hits_sql(indexed)}")
        return
    ctx.cur.execute("CREATE OR REPLACE TEMP TABLE _kt_sigma_hit (r INTEGER, event_uid VARCHAR)")
    for i, rule in indexed:
        try:
            ctx.cur.execute(f"INSERT INTO _kt_sigma_hit {_hits_sql([(i, rule)])}")
        except Exception as e:  # noqa: BLE001 - reported through sigma_failed
            ctx.sigma_errors[rule.id] = f"{type(e).__name__}: {e}"


def run(ctx: Context) -> None:
    from keytrail.analysis.sigma import fields
    from keytrail.analysis.sigma.rules import load_rules

    rs = load_rules(ctx.cfg.sigma.rules_dir or None)
    rules = list(rs.rules)
    if not rules or not fields.build(
        ctx.cur, rs.fields, rs.lower_fields, everywhere=rs.everywhere, names=rs.names
    ):
        return
    _hits(ctx, rules)
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
