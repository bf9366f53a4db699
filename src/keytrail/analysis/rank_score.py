"""A ranking row's score from the ranking query's columns: one row (``keytrail blast``, the
live ranking) or every row a column at a time (the snapshot, 50k credentials at 1M events).

Every way sums the same term points in the same order (:mod:`keytrail.analysis.scoring`), so
the snapshot's stored score is the one the live ranking shows, to the last bit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keytrail.analysis.scoring import (
    TERM_NAMES,
    TERMS,
    TermDef,
    score,
    scores,
    sum_points,
    term_points,
)

if TYPE_CHECKING:
    import pyarrow as pa

LONG_LIVED_KINDS = ("aws-access-key", "vault-token")


#: The score terms whose value is a column of the ranking query as it is.
_DIRECT = (
    "permission_changes",
    "secrets_read",
    "writes",
    "deletes",
    "resources",
    "credentials_minted",
    "accounts",
    "principals",
    "denied",
    "events",
)


def term_values(row: dict[str, Any]) -> dict[str, Any]:
    """The scoring values of one ranking row (:mod:`keytrail.analysis.scoring`)."""
    values = {k: row[k] for k in _DIRECT}
    values["findings"] = row.get("findings") or 0
    values["long_lived"] = int(row["kind"] in LONG_LIVED_KINDS and row["expires_at"] is None)
    values["origin_unknown"] = int(
        row["origin"] == "unknown" and row["kind"] == "aws-temporary-key"
    )
    return values


def row_score(row: dict[str, Any]) -> float:
    """``to_rank(row).score`` without building the rank (what the snapshot stores per row)."""
    return score(term_values(row))


#: The ranking query's columns (and the ``findings`` term) the score is worked out from.
SCORE_INPUTS = (*_DIRECT, "findings", "kind", "expires_at", "origin")


def row_scores(rows: list[dict[str, Any]]) -> list[float]:
    """``[row_score(r) for r in rows]``, a term at a time (:func:`column_scores`)."""
    return column_scores({k: [r.get(k) for r in rows] for k in SCORE_INPUTS})


def column_scores(cols: dict[str, list[Any]]) -> list[float]:
    """:func:`row_score` of every row, from the :data:`SCORE_INPUTS` columns
    (:func:`keytrail.analysis.scoring.scores`: the same floats)."""
    return scores([_term_values(cols)[t] for t in TERM_NAMES])


def reach_points(table: pa.Table) -> dict[str, list[float]]:
    """Every term's points but the ``findings`` term's, for every row of the ranking query's
    ``table``: the snapshot works them out beside the findings run, and then only the findings
    term's points (:func:`findings_scores`) once the findings are known.

    The points of a column's distinct values are worked out by :func:`term_points` and spread
    over the rows by Arrow: the same floats as from every row's Python value (50k credentials
    at 1M events, nine columns of ``DECIMAL`` sums: 0.40 -> 0.05 CPU-s), and ``expires_at`` is
    only tested for NULL (a Python datetime per row cost a tenth of that)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def spread(t: TermDef, col: pa.ChunkedArray | pa.Array) -> list[float]:
        distinct = pc.unique(col)
        points = pa.array(term_points(t, distinct.to_pylist()), pa.float64())
        spread_points: list[float] = points.take(pc.index_in(col, value_set=distinct)).to_pylist()
        return spread_points

    flags = {
        name: pa.array(values, pa.int64())
        for name, values in _flag_values(
            table.column("kind").to_pylist(),
            table.column("expires_at").is_null().to_pylist(),
            table.column("origin").to_pylist(),
        ).items()
    }
    return {
        t.name: spread(t, flags[t.name] if t.name in flags else table.column(t.name))
        for t in TERMS
        if t.name != "findings"
    }


def findings_scores(reach: dict[str, list[float]], findings: list[float]) -> list[float]:
    """:func:`column_scores` from :func:`reach_points` and the ``findings`` term's values (the
    same floats: each row sums the same points in the same order)."""
    term = next(t for t in TERMS if t.name == "findings")
    points = {**reach, "findings": term_points(term, [v or 0 for v in findings])}
    return sum_points([points[t] for t in TERM_NAMES])


def _term_values(cols: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Each term's value column (the ``findings`` term's only when ``cols`` holds it)."""
    out = {t: cols[t] for t in _DIRECT}
    if "findings" in cols:
        out["findings"] = [v or 0 for v in cols["findings"]]
    no_expiry = [x is None for x in cols["expires_at"]]
    out.update(_flag_values(cols["kind"], no_expiry, cols["origin"]))
    return out


def _flag_values(kind: list[Any], no_expiry: list[bool], origin: list[Any]) -> dict[str, list[int]]:
    """The ``long_lived`` and ``origin_unknown`` terms' values, a column each (the rule of
    :func:`term_values`, for every row)."""
    return {
        "long_lived": [
            int(k in LONG_LIVED_KINDS and n) for k, n in zip(kind, no_expiry, strict=True)
        ],
        "origin_unknown": [
            int(o == "unknown" and k == "aws-temporary-key")
            for o, k in zip(origin, kind, strict=True)
        ],
    }
