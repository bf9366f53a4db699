"""One read of every CloudTrail record's JSON for every rule family that looks inside records.

Reading ``events.raw`` costs: at a million events it is 1.6 GB of text to decompress and scan,
and parsing it as JSON costs more. Two families need something from every CloudTrail record:
``human_use`` (the console-session flag, ``sessionCredentialFromConsole``) and Sigma (the fields
its rules name). The first of them to run calls :func:`ensure`, which answers both in one query
over the records (:func:`keytrail.analysis.findings.sigma.one_pass_sql`, the flag riding on the
same JSON parse) and keeps:

- ``_kt_console_ct(event_uid)``: CloudTrail events whose record has the flag, by the same test
  as for any other record (:func:`console_sql`: the text holds the key and the parsed value is
  ``true``);
- ``_kt_sigma_hit(r, event_uid)``: every Sigma rule's hits (``r``: the rule's index in
  :attr:`RawPass.rules`), when Sigma is enabled, has rules and the case holds CloudTrail records.

When the combined query fails (a Sigma rule's SQL fails on this case), each part is made on its
own as before: the flag by its own scan, the Sigma hits from the field table one rule at a time,
with the failing rule noted in ``ctx.sigma_errors``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keytrail.analysis.findings.context import Context
    from keytrail.analysis.sigma.rules import RuleSet

CONSOLE = "sessionCredentialFromConsole"


def console_sql(raw: str) -> str:
    """SQL: the record text ``raw`` says its session credential came from the console."""
    return f"(contains({raw}, '{CONSOLE}') AND json_extract_string({raw}, '$.{CONSOLE}') = 'true')"


@dataclass(frozen=True)
class RawPass:
    rules: RuleSet | None
    """The Sigma rules loaded (None: Sigma disabled)."""
    sigma: bool
    """Whether ``_kt_sigma_hit`` was made (rules and CloudTrail records to match exist)."""


def ensure(ctx: Context) -> RawPass:
    """Make ``_kt_console_ct`` and ``_kt_sigma_hit`` once per findings run; the same answer
    to every caller."""
    if isinstance(ctx.raw_pass, RawPass):
        return ctx.raw_pass
    from keytrail.analysis.findings import sigma
    from keytrail.analysis.sigma.rules import load_rules

    rs = load_rules(ctx.cfg.sigma.rules_dir or None) if ctx.cfg.sigma.enabled else None
    rules = list(rs.rules) if rs is not None else []
    has_records = bool(
        ctx.scalar(
            "SELECT count(*) FROM (SELECT 1 FROM events "
            "WHERE source = 'cloudtrail' AND raw IS NOT NULL LIMIT 1)"
        )
    )
    made = False
    if rs is not None and rules and has_records:
        with contextlib.suppress(Exception):  # a rule's SQL failed: each part on its own below
            ctx.cur.execute(
                "CREATE OR REPLACE TEMP TABLE _kt_raw_hit AS "
                + sigma.one_pass_sql(rs, rules, flag=(CONSOLE, -1))
            )
            ctx.cur.execute(
                """CREATE OR REPLACE TEMP TABLE _kt_console_ct AS
                   SELECT event_uid FROM _kt_raw_hit WHERE r = -1"""
            )
            ctx.cur.execute(
                """CREATE OR REPLACE TEMP TABLE _kt_sigma_hit AS
                   SELECT r, event_uid FROM _kt_raw_hit WHERE r >= 0"""
            )
            ctx.cur.execute("DROP TABLE _kt_raw_hit")
            made = True
        if not made:
            sigma.hits_rule_by_rule(ctx, rs, rules)
    if not made:
        ctx.cur.execute(
            f"""CREATE OR REPLACE TEMP TABLE _kt_console_ct AS
                SELECT event_uid FROM events
                WHERE source = 'cloudtrail' AND raw IS NOT NULL AND {console_sql("raw")}"""
        )
    ctx.raw_pass = RawPass(rs, bool(rules) and has_records)
    return ctx.raw_pass
