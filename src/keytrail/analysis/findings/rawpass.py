"""One read of every CloudTrail record's JSON for every rule family that looks inside records.

Reading ``events.raw`` costs: at a million events it is 1.6 GB of text to decompress and scan,
and parsing it as JSON costs more. Two families need something from every CloudTrail record:
``human_use`` (the console-session flag, ``sessionCredentialFromConsole``) and Sigma (the fields
its rules name). The first of them to run calls :func:`ensure`, which answers both in one query
over the records (:func:`one_pass_sql`, the flag riding on the same JSON parse) and keeps (as
temporary views over ``raw_pass_cache`` when the cache answers for every record,
:mod:`.rawcache`; else as temporary tables):

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
from typing import TYPE_CHECKING, Any

from keytrail.store.carried import CONSOLE_KEY, PLAIN

if TYPE_CHECKING:
    from collections.abc import Callable

    import duckdb

    from keytrail.analysis.findings.context import Context
    from keytrail.analysis.findings.rawcache import Reader
    from keytrail.analysis.sigma.rules import RuleSet, SigmaRule
    from keytrail.config import FindingsConfig
    from keytrail.store.case import CaseStore

CONSOLE = CONSOLE_KEY


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
    from keytrail.analysis.findings import rawcache
    from keytrail.analysis.sigma.rules import load_rules

    filled = None
    if ctx.raw_ready is not None:
        # the snapshot's own cursor is filling the cache (prefill): wait for it
        filled = ctx.raw_ready()
    rs = load_rules(ctx.cfg.sigma.rules_dir or None) if ctx.cfg.sigma.enabled else None
    rules = list(rs.rules) if rs is not None else []
    has_records = _has_records(ctx)
    made = False
    if rs is not None and rules and has_records:
        with contextlib.suppress(Exception):  # a rule's SQL failed: each part on its own below
            # Kept in the case for the records an earlier snapshot read (findings.rawcache)
            sql_for = _pass_sql(ctx, rs, rules)
            hits = rawcache.make(ctx, sql_for, filled)
            # The cache outlives the run: read where it is (views), not copied (891,700 rows
            # at 1M events); a relation of this run's own temporary tables is copied, and
            # they are dropped.
            kind = "VIEW" if hits == rawcache.TABLE else "TABLE"
            ctx.cur.execute(
                f"""CREATE OR REPLACE TEMP {kind} _kt_console_ct AS
                    SELECT event_uid FROM {hits} WHERE r = -1"""
            )
            ctx.cur.execute(
                f"""CREATE OR REPLACE TEMP {kind} _kt_sigma_hit AS
                    SELECT r, event_uid FROM {hits} WHERE r >= 0"""
            )
            for t in ("_kt_raw_all", "_kt_raw_new"):
                ctx.cur.execute(f"DROP TABLE IF EXISTS {t}")
            made = True
        if not made:
            for t in ("_kt_console_ct", "_kt_sigma_hit"):  # made as views before a failure
                with contextlib.suppress(Exception):  # a table of that name: replaced below
                    ctx.cur.execute(f"DROP VIEW IF EXISTS {t}")
            hits_rule_by_rule(ctx, rs, rules)
    if not made:
        ctx.cur.execute(
            f"""CREATE OR REPLACE TEMP TABLE _kt_console_ct AS
                SELECT event_uid FROM events
                WHERE source = 'cloudtrail' AND raw IS NOT NULL AND {console_sql("raw")}"""
        )
    ctx.raw_pass = RawPass(rs, bool(rules) and has_records)
    return ctx.raw_pass


def _has_records(ctx: Reader) -> bool:
    return bool(
        ctx.scalar(
            "SELECT count(*) FROM (SELECT 1 FROM events "
            "WHERE source = 'cloudtrail' AND raw IS NOT NULL LIMIT 1)"
        )
    )


def _pass_sql(ctx: Reader, rs: RuleSet, rules: list[SigmaRule]) -> Callable[[str | None], str]:
    """The one-read query (the rules' hits and the console flag) over the records ``where``
    selects: what the cache is filled and checked with. It reads the fields the ingest kept
    (:mod:`keytrail.store.carried`) when the case has their columns (schema 3)."""
    carried = bool(
        ctx.scalar(
            "SELECT count(*) FROM duckdb_columns() WHERE database_name = current_database() "
            "AND schema_name = 'main' AND table_name = 'events' AND column_name = ?",
            [PLAIN],
        )
    )
    return lambda where: one_pass_sql(rs, rules, (CONSOLE, -1), where, carried)


@dataclass
class _Cursor:
    """A cursor of its own as the cache's :class:`~.rawcache.Reader` (:func:`prefill`)."""

    cur: duckdb.DuckDBPyConnection
    keep_raw_pass: bool = True

    def scalar(self, sql: str, params: list[Any] | None = None) -> Any:
        row = self.cur.execute(sql, params or []).fetchone()
        return None if row is None else row[0]


def prefill(store: CaseStore, cfg: FindingsConfig) -> str | None:
    """Bring ``raw_pass_cache`` up to date on a cursor of its own (``store`` writable).

    The snapshot runs this on a pool thread from its start, beside the context tables and the
    families that do not read the records (:func:`keytrail.analysis.findings.run.live_findings`
    runs the two that do last, and :func:`ensure` waits for this first): on a first snapshot the
    read of every record's JSON (3-4 CPU-s at 1M events) then overlaps the rest instead of
    following it. It needs none of the findings' temporary tables and writes only the cache
    (:func:`.rawcache.make`, its own transaction). Nothing here can change an answer: whatever
    fails is left as it was, :func:`ensure` then meets the same state (a stale or absent cache,
    a failing rule) and does what it does without a prefill.

    Returns the fingerprint of the query the cache now answers for every file of the case
    (:func:`.rawcache.fingerprint`; ``None``: nothing made): :func:`ensure` then takes the cache
    as it is when its own query has that fingerprint, without checking it again (the digest of
    every CloudTrail event, 0.03-0.05 CPU-s at 1M events); the writer that holds the case
    between the two adds no file."""
    if not cfg.sigma.enabled:
        return None
    from keytrail.analysis.findings import rawcache
    from keytrail.analysis.sigma.rules import load_rules

    cur = store.cursor()
    try:
        with contextlib.suppress(Exception):  # ensure() meets it again and handles it
            rs = load_rules(cfg.sigma.rules_dir or None)
            rules = list(rs.rules)
            reader = _Cursor(cur)
            if rules and _has_records(reader):
                sql_for = _pass_sql(reader, rs, rules)
                if rawcache.make(reader, sql_for) == rawcache.TABLE:
                    return rawcache.fingerprint(sql_for(None))
    finally:
        cur.close()
    return None


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


def one_pass_sql(
    rs: RuleSet,
    rules: list[SigmaRule],
    flag: tuple[str, int] | None = None,
    where: str | None = None,
    carried: bool = False,
) -> str:
    """Every rule's hits ``(r, event_uid)`` from one read of the records: the rows of
    :func:`_hits_sql` over the stored field table (in another order; the findings group them).

    The field table of a million-event case is 40 columns by 900k rows, written once and then
    scanned once per rule; here each row's fields are extracted and every rule's predicate is
    evaluated in the same projection (a list holding each rule's number where it matches, NULL
    where it does not, unnested and the NULLs dropped), so nothing is stored but the hits. Same
    predicates on the same rows: the same hits.

    ``flag`` = (top-level key, number): also a row with that number for every record whose text
    holds the key and whose parsed value is ``true`` (:mod:`.rawpass`: the console-session flag,
    parsed with the rules' fields). ``where``: only the records of events it holds (SQL over
    ``events``; :mod:`.rawcache` reads the files its stored rows do not cover). ``carried``:
    the case has the ingest's kept fields (:mod:`keytrail.store.carried`); the records whose
    fields are kept there and whose names no rule selects are not parsed
    (:func:`keytrail.analysis.sigma.fields.select_sql`)."""
    from keytrail.analysis.sigma import fields

    def numbers(cases: list[str]) -> str:
        return f"[{', '.join(cases)}]::INTEGER[]"

    # Each rule's number where it matches, NULL where not: the NULLs are dropped after the
    # unnest (a lambda over every row's list cost more than the rows' matching).
    named = [
        f"CASE WHEN ({r.where}) THEN {i} END"
        for i, r in enumerate(rules)
        if r.event_names is not None
    ]
    anywhere = [
        f"CASE WHEN ({r.where}) THEN {i} END" for i, r in enumerate(rules) if r.event_names is None
    ]
    key = None
    if flag is not None:
        key, number = flag
        anywhere.append(f"CASE WHEN {fields.FLAG} THEN {int(number)} END")
    # The rules that name their events are evaluated on the selected records only (SEL): the
    # others' list is the whole list elsewhere.
    every = numbers(anywhere)
    listed = f"CASE WHEN {fields.SEL} THEN {numbers(named)} || {every} ELSE {every} END"
    rows = fields.select_sql(
        rs.fields,
        rs.lower_fields,
        everywhere=rs.everywhere,
        names=rs.names,
        where=where,
        flag=key,
        carried=carried,
        parse_names=rs.parsed_names,
    )
    return f"""SELECT r, event_uid FROM (
                 SELECT event_uid, unnest({listed}) AS r FROM ({rows})) WHERE r IS NOT NULL"""


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
