"""The scope's pass 1 writes its narrow rows into an in-memory case (:mod:`keytrail.scope.scratch`).

What must hold: nothing of the trail is written to disk beside the spill folder, the case is
an ordinary case (the runner's and the adapters' connections all reach the same database), it
is gone once its last connection closes, and past the memory limit it spills to the folder given
instead of failing or writing to the working directory. That the rows equal the unchanged
adapters' rows is ``test_scope_narrow.py``'s (``narrow=False`` still loads a case file).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from keytrail.scope.project import project
from keytrail.scope.scratch import SCRATCH_VACUUM_TASKS, memory_case
from keytrail.store.case import MAX_VACUUM_TASKS, CaseStore

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_data" / "incident"


def test_the_narrow_projection_writes_no_case_file(tmp_path: Path) -> None:
    scratch = tmp_path / "work"
    scratch.mkdir()
    proj = project(scratch / "scratch.duckdb", [SAMPLE])
    try:
        con = proj.store.con
        events = con.execute("SELECT count(*) FROM events").fetchone()
        issues = con.execute("SELECT count(*) FROM credential_issues").fetchone()
        files = con.execute("SELECT count(*) FROM evidence WHERE status = 'loaded'").fetchone()
        (path,) = con.execute(
            "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
        ).fetchone() or (None,)
    finally:
        proj.store.close()
    assert events and events[0] > 100 and issues and issues[0] > 0 and files and files[0] > 3
    assert path is None  # an in-memory database has no file
    assert list(scratch.iterdir()) == []  # no case file, no WAL
    exact = project(scratch / "exact.duckdb", [SAMPLE], narrow=False)
    exact.store.close()
    assert (scratch / "exact.duckdb").exists()  # the unchanged adapters' oracle still uses a file


def test_the_memory_case_is_shared_then_gone(tmp_path: Path) -> None:
    with memory_case(tmp_path) as name:
        writer = CaseStore.open(name, read_only=False, create=True)
        writer.con.execute("INSERT INTO case_meta VALUES ('probe', 'x')")
        other = CaseStore.open(name, read_only=False)
        assert other.meta("probe") == "x"  # the same database, not a new empty one
        # row groups merged as DuckDB does by default (the case writer turns that off)
        setting = other.con.execute("SELECT current_setting('max_vacuum_tasks')").fetchone()
        assert setting == (SCRATCH_VACUUM_TASKS,) and SCRATCH_VACUUM_TASKS != MAX_VACUUM_TASKS
    other.close()
    assert writer.meta("probe") == "x"  # alive while a connection opened in the block is
    writer.close()
    again = duckdb.connect(name, config={"memory_limit": "1GB"})
    try:
        tables = again.execute("SELECT count(*) FROM duckdb_tables()").fetchone()
    finally:
        again.close()
    assert tables == (0,)  # the last close freed it: nothing of one scope leaks into the next


def test_the_memory_case_spills_to_the_folder_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spill = tmp_path / "spill"
    spill.mkdir()
    monkeypatch.setenv("KEYTRAIL_MEMORY_LIMIT", "32MB")
    with memory_case(spill) as name:
        store = CaseStore.open(name, read_only=False)
    try:
        store.con.execute("SET threads = 1")
        store.con.execute(
            "CREATE TABLE big AS SELECT i, md5(i::VARCHAR) || md5((i + 1)::VARCHAR) AS s "
            "FROM range(1000000) t(i)"
        )
        used = store.con.execute(
            "SELECT current_setting('temp_directory'), "
            "(SELECT count(*) FROM duckdb_temporary_files())"
        ).fetchone()
        total = store.con.execute("SELECT count(*), count(DISTINCT s) FROM big").fetchone()
    finally:
        store.close()
    assert total == (1000000, 1000000)
    assert used is not None and used[0] == str(spill) and used[1] > 0
    assert not (tmp_path / ".tmp").exists()  # DuckDB's default spill folder (the working dir)
