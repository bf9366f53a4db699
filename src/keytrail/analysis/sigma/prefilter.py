"""Which events a Sigma rule can match at all, by ``eventName`` alone.

Almost every CloudTrail rule names the calls it is about (``eventName: StopLogging``). Reading
a record's request and response objects costs far more than reading its name, so the field
table (:mod:`.fields`) extracts the fields only rules without such a constraint use for every
record, and the others only for records whose name one of those rules allows.

:func:`event_names` walks the rule's parsed condition (pySigma's tree, the one the backend
converts) and returns the ``eventName`` values (as lower-case LIKE patterns) that every match
must have, or None when a match may have any name. The constraint is necessary, never
sufficient: an ``AND`` keeps what all its constrained operands allow, an ``OR`` only holds
when every operand is constrained, and nothing under a ``NOT`` counts. So a record outside the
set cannot satisfy the rule whatever its other fields hold, and leaving those fields empty
there changes no result.
"""

from __future__ import annotations

from typing import Any

from sigma.conditions import ConditionAND, ConditionFieldEqualsValueExpression, ConditionOR
from sigma.types import SigmaString

from keytrail.analysis.sigma.backend import like_pattern

FIELD = "eventName"


def _names(cond: Any) -> frozenset[str] | None:
    if isinstance(cond, ConditionFieldEqualsValueExpression):
        if cond.field != FIELD or not isinstance(cond.value, SigmaString):
            return None
        try:
            return frozenset({like_pattern(cond.value).lower()})
        except ValueError:
            return None
    if isinstance(cond, ConditionAND):
        sets = [s for s in (_names(a) for a in cond.args) if s is not None]
        if not sets:
            return None
        if len(sets) == 1:
            return sets[0]
        # Patterns cannot be intersected in general; plain names can. Keep the smallest set
        # of one operand otherwise (still necessary: every operand must hold).
        plain = [s for s in sets if all(_plain(p) for p in s)]
        if len(plain) == len(sets):
            out = plain[0]
            for s in plain[1:]:
                out &= s
            return out
        return min(sets, key=len)
    if isinstance(cond, ConditionOR):
        parts = [_names(a) for a in cond.args]
        if any(s is None for s in parts):
            return None
        return frozenset[str]().union(*(s for s in parts if s is not None))
    return None


def _plain(pattern: str) -> bool:
    """No LIKE wildcard left unescaped (then the pattern is the name itself)."""
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 2
            continue
        if pattern[i] in "%_":
            return False
        i += 1
    return True


def event_names(rule: Any) -> tuple[str, ...] | None:
    """The lower-case LIKE patterns (escape ``\\``) one of which a matching record's
    ``eventName`` must fit, sorted; None when the rule does not constrain the name."""
    parts = [_names(c.parsed) for c in rule.detection.parsed_condition]
    if not parts or any(p is None for p in parts):
        return None
    return tuple(sorted(frozenset[str]().union(*(p for p in parts if p is not None))))


def name_sql(column: str, patterns: tuple[str, ...] | list[str]) -> str:
    """SQL: ``lower(column)`` fits one of ``patterns`` (plain names go to one ``IN`` list)."""
    plain = sorted({_unescape(p) for p in patterns if _plain(p)})
    like = sorted(p for p in patterns if not _plain(p))
    parts = []
    if plain:
        parts.append(f"lower({column}) IN ({', '.join(_quote(p) for p in plain)})")
    parts += [f"lower({column}) LIKE {_quote(p)} ESCAPE '\\'" for p in like]
    return "(" + " OR ".join(parts) + ")" if parts else "FALSE"


def _unescape(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            out.append(pattern[i + 1])
            i += 2
            continue
        out.append(pattern[i])
        i += 1
    return "".join(out)


def _quote(text: str) -> str:
    # like_pattern already doubled single quotes
    return "'" + text + "'"
