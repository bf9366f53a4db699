"""Run keytrail's declarative rule files (:mod:`keytrail.analysis.rulefiles`) as findings.

``match`` rules are one ``UNION ALL`` over ``events`` and are grouped per credential like
Sigma hits (:mod:`.grouped`); ``sql`` rules return their findings row by row. The rule's
``description`` is a template filled from the row: a list is written comma-separated.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keytrail.analysis.findings.catalog import RuleInfo
from keytrail.analysis.findings.context import Draft
from keytrail.analysis.findings.grouped import contain, group_hits, reach, subjects, who
from keytrail.errors import ConfigError
from keytrail.levels import Level

if TYPE_CHECKING:
    from keytrail.analysis.findings.context import Context
    from keytrail.analysis.rulefiles import RuleFile

#: The event's caller is a person (principal classifier, :mod:`.context`).
_PERSON = "_kt_person_held(e.credential_id, e.actor_uid)"
_STANDARD = {"subjects", "uids", "t0", "t1", "n", "cred", "level"}


class _Values(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _text(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return "" if value is None else value


@functools.lru_cache(maxsize=256)
def _names(template: str) -> frozenset[str] | None:
    """The row keys ``template`` reads (the first part of each field), or None when that is not
    plain to see (a field inside a format spec, or a template that does not parse): then every
    key is converted, as always."""
    try:
        names: set[str] = set()
        for _, field_name, spec, _ in string.Formatter().parse(template):
            if spec and "{" in spec:
                return None
            if field_name is not None:
                # the key str.format looks up: up to the first attribute or index
                names.add(re.split(r"[.\[]", field_name, maxsplit=1)[0])
    except ValueError:
        return None
    return frozenset(names)


@functools.lru_cache(maxsize=256)
def _plain(template: str) -> tuple[tuple[str, str | None], ...] | None:
    """The template as (literal text, field name) pairs when every field is a bare name (no
    conversion, format spec, attribute, index or position), else None: what ``str.format`` does
    with such a field is ``format(value, "")``, which :func:`fill` then does itself."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError:
        return None
    if any(f is not None and (spec or conv or not f.isidentifier()) for _, f, spec, conv in parts):
        return None
    return tuple((literal, f) for literal, f, _, _ in parts)


def fill(template: str, row: dict[str, Any], where: str) -> str:
    # A template of bare names (every shipped one) is filled piece by piece from its parse, kept
    # per template: the description and advice of 13k rows at 1M events were parsed 27k times.
    plain = _plain(template)
    if plain is not None:
        return "".join(
            lit + ("" if f is None else format(_text(row[f]), "") if f in row else "{" + f + "}")
            for lit, f in plain
        )
    # Only the keys the template names are converted (a rule's rows carry 25 evidence ids and
    # lists the text never shows; 13k rows at 1M events): a key it does not name is never read.
    names = _names(template)
    keys = row.keys() if names is None else names.intersection(row)
    try:
        return string.Formatter().vformat(template, (), _Values({k: _text(row[k]) for k in keys}))
    except (ValueError, IndexError, AttributeError) as e:
        raise ConfigError(f"{where}: description template: {e}", "bad rule file") from e


def action_sql(column: str, patterns: tuple[str, ...], present: list[str]) -> str | None:
    """``column = ANY([...])`` over the case's actions that match a pattern (glob ``*``), or
    None when none does. Globs are resolved against the case's distinct actions first because
    DuckDB pushes ``= ANY`` into the scan (the large ``raw`` column is then read only for
    matching rows), while ``IN`` and ``LIKE`` lists make it read every row's record."""
    from fnmatch import fnmatchcase

    from keytrail.store.sqltext import quote_literal

    hits = [a for a in present if any(fnmatchcase(a, p) for p in patterns)]
    if not hits:
        return None
    return f"{column} = ANY([{', '.join(quote_literal(a) for a in hits)}])"


def section(name: str) -> Callable[[Context], None]:
    """The runner of the rule files tied to config section ``name`` (``RULE_FAMILIES`` calls it
    only when that section is enabled)."""

    def run(ctx: Context) -> None:
        _run(ctx, name)

    run.__name__ = f"run_{name}"
    return run


def _params(ctx: Context, name: str) -> dict[str, Any]:
    from dataclasses import asdict

    return (
        {k: v for k, v in asdict(getattr(ctx.cfg, name)).items() if k != "enabled"}
        if name != "nhi_attack"
        else {}
    )


def _run(ctx: Context, name: str) -> None:
    from keytrail.analysis.rulefiles import load_rule_files

    rules = [r for r in load_rule_files(ctx.cfg.nhi_attack.rules_dir or None) if r.config == name]
    params = _params(ctx, name)
    for rule in rules:
        ctx.extra_rules[rule.id] = RuleInfo(rule.id, name, rule.level, rule.title, rule.frameworks)
    matches = [(i, r) for i, r in enumerate(rules) if r.shape == "match"]
    if matches:
        present = ctx.actions()
        parts = []
        for i, r in matches:
            acts = action_sql("e.action", r.actions, present)
            if acts is None:
                continue
            outcomes = ", ".join(f"'{o}'" for o in r.outcomes if o.isalpha())
            extra = f" AND ({r.query(params)})" if r.where else ""
            if r.identities == "non-human":
                extra += f" AND NOT {_PERSON}"
            parts.append(
                f"SELECT {i} AS r, e.event_uid FROM events e "
                f"WHERE {acts} AND e.outcome IN ({outcomes}){extra}"
            )
        hits = (
            " UNION ALL ".join(parts)
            or "SELECT NULL::INTEGER AS r, NULL::VARCHAR AS event_uid LIMIT 0"
        )
        ctx.cur.execute("CREATE OR REPLACE TEMP TABLE _kt_rule_hit AS " + hits)
        for row in group_hits(ctx, "_kt_rule_hit"):
            _add_match(ctx, rules[row["r"]], row)
    for rule in rules:
        if rule.shape == "sql":
            rows = ctx.rows(rule.query(params))
            if rule.identities == "non-human":
                rows = _not_people(ctx, rows)
            for row in rows:
                _add_sql(ctx, rule, {**params, **row})


def _not_people(ctx: Context, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows citing at least one event whose caller is not a person (a row of a windowed or
    joined rule is one identity's, so its events are all a person's or none is)."""
    uids = sorted({u for r in rows for u in r.get("uids") or []})
    if not uids:
        return rows
    ctx.register_ids("_kt_rule_uids", uids)
    keep = {
        u
        for (u,) in ctx.cur.execute(
            f"SELECT e.event_uid FROM events e SEMI JOIN _kt_rule_uids w ON w.id = e.event_uid "
            f"WHERE NOT {_PERSON}"
        ).fetchall()
    }
    ctx.cur.unregister("_kt_rule_uids")
    return [r for r in rows if keep.intersection(r.get("uids") or [])]


def _add_match(ctx: Context, rule: RuleFile, r: dict[str, Any]) -> None:
    values = {
        **r,
        "who": who(r),
        "reach": reach(r),
        "principal": r["principal"] or r["subj"],
        "actions": r["actions"] or [],
        "ips": r["ips"] or [],
    }
    ctx.add(
        Draft(
            rule.id,
            subjects(r),
            list(r["uids"]),
            fill(rule.description, values, rule.path),
            rule.impact,
            r["t0"],
            r["t1"],
            contain=contain(r),
            count=int(r["n"]),
            advice=rule.advice,
            details={
                "actions": list(r["actions"] or []),
                "source_ips": list(r["ips"] or []),
                "credentials": list(r["creds"] or []),
                "agents": list(r["agents"] or []),
                "humans": list(r["humans"] or []),
                "rule_file": Path(rule.path).name,
            },
        )
    )


def _add_sql(ctx: Context, rule: RuleFile, r: dict[str, Any]) -> None:
    if not r.get("uids"):
        return
    level = Level.parse(r["level"]) if r.get("level") else None
    keep = rule.details if rule.details is not None else [k for k in r if k not in _STANDARD]
    details = {k: r[k] for k in keep if k in r}
    ctx.add(
        Draft(
            rule.id,
            [s for s in r.get("subjects") or [] if s],
            list(r["uids"]),
            fill(rule.description, r, rule.path),
            rule.impact,
            r.get("t0"),
            r.get("t1"),
            contain=_creds(r.get("cred")),
            count=int(r.get("n") or 0),  # 0: the evidence found in the case is the count
            advice=fill(rule.advice, r, rule.path),
            level=level,
            details=_jsonable(details)
            if rule.details is not None
            else {**_jsonable(details), "rule_file": Path(rule.path).name},
        )
    )


def _creds(value: Any) -> list[str]:
    """The ``cred`` column: one credential or a list of them (containment steps for each)."""
    values = value if isinstance(value, (list, tuple)) else [value]
    return [str(v) for v in values if v]


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    from datetime import datetime

    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in d.items()}
