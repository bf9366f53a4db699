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

from typing import TYPE_CHECKING, Any

from keytrail.analysis.findings.catalog import RuleInfo
from keytrail.analysis.findings.context import Draft
from keytrail.analysis.findings.grouped import contain, group_hits, reach, subjects, who
from keytrail.levels import Level

if TYPE_CHECKING:
    from keytrail.analysis.findings.context import Context
    from keytrail.analysis.sigma.rules import RuleSet, SigmaRule


def _hits_sql(rules: list[tuple[int, SigmaRule]]) -> str:
    from keytrail.analysis.sigma.fields import TABLE

    # A rule that names its events looks only at the records whose name one rule allows
    # (SEL, a few percent of a case): the rest of its predicate is not evaluated elsewhere.
    return " UNION ALL ".join(
        f"SELECT {i} AS r, event_uid FROM {TABLE} WHERE {_predicate(rule)}" for i, rule in rules
    )


def _predicate(rule: SigmaRule) -> str:
    from keytrail.analysis.sigma.fields import SEL

    return (f"{SEL} AND " if rule.event_names is not None else "") + f"({rule.where})"


def one_pass_sql(rs: RuleSet, rules: list[SigmaRule], flag: tuple[str, int] | None = None) -> str:
    """Every rule's hits ``(r, event_uid)`` from one read of the records: the rows of
    :func:`_hits_sql` over the stored field table (in another order; the findings group them).

    The field table of a million-event case is 40 columns by 900k rows, written once and then
    scanned once per rule; here each row's fields are extracted and every rule's predicate is
    evaluated in the same projection (a list of the rule numbers that match), so nothing is
    stored but the hits. Same predicates on the same rows: the same hits.

    ``flag`` = (top-level key, number): also a row with that number for every record whose text
    holds the key and whose parsed value is ``true`` (:mod:`.rawpass`: the console-session flag,
    parsed with the rules' fields)."""
    from keytrail.analysis.sigma import fields
    from keytrail.analysis.sigma.backend import RAW_COLUMN

    def matched(part: list[tuple[int, SigmaRule]]) -> str:
        if not part:
            return "[]::INTEGER[]"
        cases = ", ".join(f"CASE WHEN ({rule.where}) THEN {i} END" for i, rule in part)
        return f"list_filter([{cases}]::INTEGER[], lambda x: x IS NOT NULL)"

    # The rules that name their events are evaluated on the selected records only (SEL).
    named = [(i, r) for i, r in enumerate(rules) if r.event_names is not None]
    anywhere = [(i, r) for i, r in enumerate(rules) if r.event_names is None]
    lists = [
        f"CASE WHEN {fields.SEL} THEN {matched(named)} ELSE []::INTEGER[] END",
        matched(anywhere),
    ]
    extra: tuple[str, ...] = ()
    if flag is not None:
        key, number = flag
        extra = (key, RAW_COLUMN)
        col, raw = f'"{key}"', f'"{RAW_COLUMN}"'
        lists.append(
            f"CASE WHEN {col} = 'true' AND contains({raw}, '{key}') THEN [{int(number)}] "
            "ELSE []::INTEGER[] END"
        )
    rows = fields.select_sql(
        (*rs.fields, *extra),
        rs.lower_fields,
        everywhere=(*rs.everywhere, *extra),
        names=rs.names,
    )
    return f"""SELECT r, event_uid FROM (
                 SELECT event_uid, unnest({" || ".join(lists)}) AS r FROM ({rows}))"""


def hits_rule_by_rule(ctx: Context, rs: RuleSet, rules: list[SigmaRule]) -> None:
    """``_kt_sigma_hit(r, event_uid)`` from the stored field table, one query per rule: the way
    when the one-read query failed; a rule whose SQL fails is skipped with a note."""
    from keytrail.analysis.sigma import fields

    fields.build(ctx.cur, rs.fields, rs.lower_fields, everywhere=rs.everywhere, names=rs.names)
    ctx.cur.execute("CREATE OR REPLACE TEMP TABLE _kt_sigma_hit (r INTEGER, event_uid VARCHAR)")
    for i, rule in enumerate(rules):
        try:
            ctx.cur.execute(f"INSERT INTO _kt_sigma_hit {_hits_sql([(i, rule)])}")
        except Exception as e:  # noqa: BLE001 - reported through sigma_failed
            ctx.sigma_errors[rule.id] = f"{type(e).__name__}: {e}"


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
