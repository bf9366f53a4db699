"""The blast-radius score: a sum of visible, explained terms (``docs/blast-radius.md``).

Each term is ``weight x log2(1 + value)``: the first few resources, secrets or
permission changes count most, and thousands of reads cannot drown out one policy
change. The same function scores one credential (``blast``) and all of them
(``credentials``), so the two always agree. Change a weight here and in the doc.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any


@dataclass(frozen=True)
class TermDef:
    name: str
    weight: float
    explanation: str  # formatted with value=
    linear: bool = False  # weight x value instead of weight x log2(1 + value)


#: The terms, in display order. Values come from :mod:`keytrail.analysis.ranking`.
TERMS: tuple[TermDef, ...] = (
    TermDef(
        "permission_changes",
        25,
        "{value} successful permission-changing actions (IAM, KMS, Organizations, "
        "resource policies, Vault policies/auth)",
    ),
    TermDef(
        "secrets_read",
        20,
        "{value} successful secret reads (Vault secret paths, GetSecretValue, "
        "GetParameter with decryption)",
    ),
    TermDef("writes", 15, "{value} successful write actions (create, put, update, attach, ...)"),
    TermDef("deletes", 10, "{value} successful delete actions (on top of counting as writes)"),
    TermDef("resources", 10, "{value} distinct resources acted on"),
    TermDef("credentials_minted", 10, "{value} credentials minted from it, transitively"),
    TermDef("accounts", 10, "{value} distinct AWS accounts / Vault namespaces reached"),
    TermDef("principals", 5, "{value} distinct identities acted as"),
    TermDef("denied", 5, "{value} denied attempts (probing beyond its permissions)"),
    TermDef("events", 2, "{value} events signed by it and its minted credentials"),
    TermDef(
        "findings",
        20,
        "{value} finding points on it and, a quarter per hop, on what it "
        "minted (low 1, medium 2, high 4, critical 8; tripled when nobody in the evidence "
        "holds it)",
        linear=True,
    ),
    TermDef(
        "long_lived",
        10,
        "long-lived credential (AWS access key / Vault token without expiry in the evidence)",
    ),
    TermDef(
        "origin_unknown",
        10,
        "temporary key with no issuing event in the evidence (e.g. stolen instance credentials)",
    ),
)

TERM_NAMES = tuple(t.name for t in TERMS)


@dataclass(frozen=True)
class ScoreTerm:
    name: str
    value: float
    weight: float
    points: float

    @property
    def explanation(self) -> str:
        """Why the term has its points, in words; built on demand (ranking every credential of a
        big case makes hundreds of thousands of terms, few of which are ever shown)."""
        return _explain(self.name, self.value, self.weight, self.points)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "weight": self.weight,
            "points": self.points,
            "explanation": self.explanation,
        }


_TEMPLATES = {t.name: t.explanation for t in TERMS}


_LINEAR = {t.name for t in TERMS if t.linear}


def _explain(name: str, value: float, weight: float, points: float) -> str:
    how = f"{weight:g} x {value}" if name in _LINEAR else f"{weight:g} x log2(1 + {value})"
    return _TEMPLATES[name].format(value=value) + f"; {how} = {points:g}"


@lru_cache(maxsize=65536)
def _points(weight: float, value: float) -> float:
    return round(weight * math.log2(1 + max(0.0, float(value))), 2)


def _term(t: TermDef, values: dict[str, float]) -> tuple[float, float]:
    """(value, points) of one term: the value as an int when it is whole."""
    v = values.get(t.name) or 0
    if type(v) is not int:
        v = int(v) if float(v).is_integer() else float(v)
    return v, round(t.weight * max(0.0, float(v)), 2) if t.linear else _points(t.weight, v)


def score_terms(values: dict[str, float]) -> list[ScoreTerm]:
    """The terms for one credential's blast-radius values (missing values count as 0)."""
    out = []
    for t in TERMS:
        v, pts = _term(t, values)
        out.append(ScoreTerm(t.name, v, t.weight, pts))
    return out


def total(terms: list[ScoreTerm]) -> float:
    return round(sum(t.points for t in terms), 1)


def score(values: dict[str, float]) -> float:
    """``total(score_terms(values))`` without the term objects: the analysis snapshot scores
    every credential of a case (50k at 1M events) and stores only the number."""
    return round(sum(_term(t, values)[1] for t in TERMS), 1)


def scores(columns: list[list[Any]]) -> list[float]:
    """:func:`score` of many rows at once: ``columns[i]`` holds every row's value of ``TERMS[i]``.

    The snapshot scores every credential of a case (50k at 1M events); per row it cost a dict and
    thirteen calls. Here each term's points are worked out once per distinct value, and each row
    sums its points in the same order (``sum`` from 0, term by term): the same floats."""
    return sum_points([term_points(t, col) for t, col in zip(TERMS, columns, strict=True)])


def term_points(t: TermDef, col: list[Any]) -> list[float]:
    """The points of term ``t`` for every value of ``col`` (once per distinct value)."""
    memo: dict[Any, float] = {}
    pts: list[float] = []
    for v in col:
        p = memo.get(v)
        if p is None:
            p = memo[v] = _term(t, {t.name: v})[1]
        pts.append(p)
    return pts


def sum_points(per_term: list[list[float]]) -> list[float]:
    """Every row's score from each term's points (``per_term`` in :data:`TERMS` order): what
    :func:`score` sums, in its order."""
    return [round(sum(p), 1) for p in zip(*per_term, strict=True)]
