"""Digest of every row of every table of a case: the check that a speed-up changed no output.

Why: each change to the ingest, derive, snapshot or scope must leave the case it writes the
same, row for row. Helpers used to write one-off hash scripts; this is the one tool. It prints,
per table, the row count and an order-free digest of the rows (the sum of a hash of each row's
text, so row order, which DuckDB does not promise, does not matter and repeated rows count), and
exits 1 when ``--against`` names another case whose digests differ:

    python benchmarks/case_digest.py old.duckdb
    python benchmarks/case_digest.py new.duckdb --against old.duckdb

Columns that record when or where the case was made, not what the evidence says, are left out
(:data:`VOLATILE`); ``--keep-paths`` keeps ``evidence.path`` (left out by default, so cases made
from copies of the same files in other folders compare equal). Tables named in ``--skip`` are
not compared (e.g. ``case_meta`` between code versions); columns named in ``--skip-column``
(``table.column``) are left out where a case has them (e.g. columns a newer schema added, against
a case of the older one).
"""

from __future__ import annotations

import argparse
import sys

import duckdb

#: Columns that say when/how a case was written rather than what the logs hold.
VOLATILE: dict[str, tuple[str, ...]] = {
    "evidence": ("ingested_at",),
    "case_meta": ("value",),
}


def digests(
    path: str,
    *,
    keep_paths: bool = False,
    skip: frozenset[str] = frozenset(),
    skip_columns: frozenset[str] = frozenset(),
) -> dict:
    """``{table: (rows, digest)}`` for every base table of the case at ``path``."""
    out: dict[str, tuple[int, str]] = {}
    with duckdb.connect(path, read_only=True) as con:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
                "AND schema_name = 'main' ORDER BY table_name"
            ).fetchall()
        ]
        for table in tables:
            if table in skip:
                continue
            drop = set(VOLATILE.get(table, ()))
            if table == "evidence" and not keep_paths:
                drop.add("path")
            cols = [
                r[0]
                for r in con.execute(
                    "SELECT column_name FROM duckdb_columns() WHERE table_name = ? "
                    "AND schema_name = 'main' ORDER BY column_index",
                    [table],
                ).fetchall()
                if r[0] not in drop and f"{table}.{r[0]}" not in skip_columns
            ]
            select = ", ".join(f'"{c}"' for c in cols)
            row = con.execute(
                f"SELECT count(*), coalesce(sum(hash(r::VARCHAR)::HUGEINT), 0)::VARCHAR "
                f'FROM (SELECT {select} FROM "{table}") r'
            ).fetchone()
            assert row is not None
            out[table] = (int(row[0]), str(row[1]))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("case")
    ap.add_argument("--against", help="another case; exit 1 if any table differs")
    ap.add_argument("--keep-paths", action="store_true")
    ap.add_argument("--skip", action="append", default=[], help="table to leave out")
    ap.add_argument("--skip-column", action="append", default=[], help="TABLE.COLUMN to leave out")
    args = ap.parse_args(argv)
    opts = {
        "keep_paths": args.keep_paths,
        "skip": frozenset(args.skip),
        "skip_columns": frozenset(args.skip_column),
    }
    mine = digests(args.case, **opts)
    other = digests(args.against, **opts) if args.against else None
    differ = 0
    for table in sorted(set(mine) | set(other or {})):
        a = mine.get(table)
        line = f"{table:24} {a[0] if a else '-':>10} {a[1] if a else '-'}"
        if other is not None:
            b = other.get(table)
            if a != b:
                differ += 1
                line += f"  DIFFERS (other: {b[0] if b else '-'} rows, {b[1] if b else '-'})"
        print(line)
    if other is not None:
        print("same" if not differ else f"{differ} table(s) differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
