"""A second ingest's ``ACTED_ON`` and resource de-duplication read only the new rows.

``keytrail.graph.acted_on_incr`` adds the new events' rows onto a stored edge when they all
follow it, and rebuilds the other touched edges from all their events; the new
``event_resources`` rows are found by position (``derived.resource_rows``). Each test checks
which path ran (a spy on the module's steps) and the grown case against both oracles of
``test_derive_incremental`` (a full rebuild, and one ingest of every file).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from keytrail.graph import acted_on_incr, derive_incr
from keytrail.ingest import finalize as finalize_mod
from keytrail.ingest.runner import ingest

from . import test_derive_incremental as base

# the oracle's fixtures, shared by name
gen_root = base.gen_root
incremental = base.incremental


@pytest.fixture()
def paths(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[int]]]:
    """Per second ingest: stored edges added onto (``later``), touched pairs rebuilt from all
    their events (``rebuilt``), and the resource filters de-duplication used (``rowid``: 1 for
    the positional filter, 0 for the probe of every row's id)."""
    seen: dict[str, list[int]] = {"later": [], "rebuilt": [], "rowid": []}
    add, rebuild, new_res = (
        acted_on_incr._add_new_rows,
        acted_on_incr._rebuild_pairs,
        finalize_mod._new_resources,
    )

    def spy_add(con: duckdb.DuckDBPyConnection) -> None:
        row = con.execute("SELECT count(*) FROM _kt_inc_old_acted WHERE later").fetchone()
        seen["later"].append(int(row[0]) if row else 0)
        add(con)

    def spy_rebuild(con: duckdb.DuckDBPyConnection) -> None:
        row = con.execute("SELECT count(*) FROM _kt_inc_pairs").fetchone()
        seen["rebuilt"].append(int(row[0]) if row else 0)
        rebuild(con)

    def spy_new_res(con: object, rows: int | None) -> str:
        where = new_res(con, rows)
        seen["rowid"].append(int("rowid" in where))
        return where

    monkeypatch.setattr(acted_on_incr, "_add_new_rows", spy_add)
    monkeypatch.setattr(acted_on_incr, "_rebuild_pairs", spy_rebuild)
    monkeypatch.setattr(finalize_mod, "_new_resources", spy_new_res)
    yield seen


def _day(path: Path) -> str:
    return path.name.split("_")[3][:8]  # <account>_CloudTrail_<region>_<YYYYMMDD>T<HHMM>Z_...


@pytest.mark.parametrize(
    ("day", "path"),
    [
        (-1, "later"),  # the last day after the others: added onto the stored edges
        (0, "rebuilt"),  # the first day after the others: inside the stored edges' times
    ],
)
def test_one_day_after_the_others(
    tmp_path: Path,
    gen_root: Path,
    incremental: list[int],
    paths: dict[str, list[int]],
    day: int,
    path: str,
) -> None:
    # 6,000 events: three days of CloudTrail files; the spy below checks the path was taken
    a = base._gen(gen_root, 5, 6000)
    trail = base._trail(a)
    one = [p for p in trail if _day(p) == sorted({_day(p) for p in trail})[day]]
    base._check(
        tmp_path, [p for p in trail if p not in one] + base._others(a), one, incremental, None
    )
    assert paths[path] and paths[path][0] > 0, f"no pair took the {path} path"
    assert paths["rowid"] == [1]


def test_removed_copies_before_the_next_ingest(
    tmp_path: Path,
    gen_root: Path,
    incremental: list[int],
    paths: dict[str, list[int]],
) -> None:
    """Copies inside the new files leave deleted rows among the last ``event_resources`` rows;
    the next ingest still finds its own rows by position, and only those."""
    a, b = base._gen(gen_root, 3, 4000), base._gen(gen_root, 4, 2000)
    # an agent log exported twice: its copies' resource rows reach the table (CloudTrail copies
    # in one ingest do not: a batch writes a resource row once)
    native = b / "agents" / "native.jsonl"
    again = tmp_path / "again" / "native.jsonl"
    again.parent.mkdir()
    again.write_text(native.read_text() + "\n")
    files = [base._trail(a) + base._others(a), [native, again], base._trail(b)]
    case, once = tmp_path / "grown.duckdb", tmp_path / "once.duckdb"
    for part in files:
        ingest(case, part)
        base._assert_same(base._dump(case, base.DERIVED), base._full_rederive(case, tmp_path))
    assert incremental == [1]
    assert paths["rowid"] == [1, 1]
    con = duckdb.connect(str(case), read_only=True)
    try:
        copies = con.execute(
            "SELECT duplicates FROM evidence WHERE path = ?", [str(again)]
        ).fetchone()
    finally:
        con.close()
    assert copies and copies[0] > 0
    ingest(once, [p for part in files for p in part])
    base._assert_same(
        base._dump(case, (*base.DERIVED, *base.INGESTED, "evidence")),
        base._dump(once, (*base.DERIVED, *base.INGESTED, "evidence")),
    )


def test_a_case_without_the_row_count_probes_every_row(
    tmp_path: Path,
    gen_root: Path,
    incremental: list[int],
    paths: dict[str, list[int]],
) -> None:
    a, b = base._gen(gen_root, 3, 4000), base._gen(gen_root, 4, 2000)
    case = tmp_path / "case.duckdb"
    ingest(case, base._trail(a) + base._others(a))
    con = duckdb.connect(str(case))
    try:
        con.execute("DELETE FROM case_meta WHERE key = ?", [derive_incr.RESOURCE_ROWS_KEY])
    finally:
        con.close()
    ingest(case, base._trail(b))
    assert incremental == [1]
    assert paths["rowid"] == [0]
    assert paths["later"] == []  # every touched pair rebuilt from all its events
    base._assert_same(base._dump(case, base.DERIVED), base._full_rederive(case, tmp_path))
    con = duckdb.connect(str(case), read_only=True)
    try:
        rows = con.execute(
            "SELECT value FROM case_meta WHERE key = ?", [derive_incr.RESOURCE_ROWS_KEY]
        ).fetchone()
        count = con.execute(derive_incr.RESOURCE_ROWS).fetchone()
    finally:
        con.close()
    assert rows and count and int(rows[0]) == count[0]
