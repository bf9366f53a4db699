"""A case writer's checkpoints do not rewrite row groups the batches before wrote.

Why: DuckDB's checkpoint merges runs of row groups that would fit in fewer ("vacuum") by
decompressing and compressing them again, and looks at every table at every checkpoint. A
CloudTrail ingest commits batches smaller than a row group, so each commit re-compressed groups
the commit before had written (half the writer's commit CPU at 1M events), and a checkpoint after
the ingest did it again. :data:`keytrail.store.case.MAX_VACUUM_TASKS` turns the merging off for
every writer; the rows are the same.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from keytrail.store.case import CaseStore


def _row_groups_after_commits(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    con.execute("CREATE TABLE t (n INTEGER, s VARCHAR)")
    for part in range(3):
        con.execute("BEGIN")
        lo = part * 1000
        con.execute(f"INSERT INTO t SELECT i, 'row ' || i FROM range({lo}, {lo + 1000}) r(i)")
        con.execute("COMMIT")
        con.execute("CHECKPOINT")
    groups = con.execute(
        "SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('t')"
    ).fetchone()
    total = con.execute("SELECT sum(n) FROM t").fetchone()
    assert groups is not None and total is not None
    return int(groups[0]), int(total[0])


def test_a_case_writer_keeps_each_commits_row_groups(tmp_path: Path) -> None:
    plain = duckdb.connect(str(tmp_path / "plain.duckdb"))
    try:
        merged, want = _row_groups_after_commits(plain)
    finally:
        plain.close()
    store = CaseStore.open(tmp_path / "case.duckdb", read_only=False, create=True)
    try:
        kept, total = _row_groups_after_commits(store.con)
    finally:
        store.close()
    # DuckDB's default rewrites small groups into fewer; the case writer writes each commit's once
    assert merged < kept == 3
    assert total == want == sum(range(3000))
