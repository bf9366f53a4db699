"""``keytrail sql`` runs one read-only statement in the SQL sandbox: the attacks of issue 12 are refused.

Each attack runs through the real command line on a real case file and must exit 2 with
a one-line reason, leave no file behind, and leave the case (and any other case) intact.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pytest

from keytrail.cli.main import main
from keytrail.store.sandbox import check_sql, open_sandbox, run_sql
from tests.unit.test_findings_support import Case, at


@pytest.fixture()
def case_file(tmp_path: Path) -> Path:
    case = Case(tmp_path / "case.duckdb")
    for i in range(3):
        case.event(
            time=at(i),
            action="tool:s3_get_object",
            source="agent",
            agent=f"agent-{i}",
            credential="ref-1",
            kind="agent-credential-ref",
        )
    return case.close()


@pytest.fixture()
def other_case(tmp_path: Path) -> Path:
    path = tmp_path / "other.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t AS SELECT 42 AS a")
    con.close()
    return path


def _attacks(tmp_path: Path, case: Path, other: Path) -> list[str]:
    out = tmp_path / "written.csv"
    return [
        f"COPY (SELECT 1) TO '{out}'",
        f"COPY events TO '{case}'",
        f"EXPORT DATABASE '{tmp_path / 'exported'}'",
        f"ATTACH '{other}' AS o (READ_WRITE)",
        f"SELECT 1; ATTACH '{other}' AS o (READ_WRITE); DELETE FROM o.t",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT content FROM read_blob('/etc/passwd')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM glob('/etc/*')",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "RESET lock_configuration",
        "SET lock_configuration = false",
        "SELECT 1; SELECT 2",
        "SELECT 1;DROP TABLE events",
        "CREATE TABLE x AS SELECT 1",
        "CREATE TEMP TABLE x AS SELECT 1",
        "CREATE MACRO m(a) AS a",
        "DELETE FROM events",
        "UPDATE events SET action = 'x'",
        "INSERT INTO case_meta VALUES ('k', 'v')",
        "DROP TABLE events",
        "PRAGMA enable_profiling",
        "PRAGMA memory_limit='100GB'",
        "PRAGMA threads=1",
        "CHECKPOINT",
        "VACUUM",
        "CALL pragma_version()",
        "DETACH kt_case",
        "USE memory",
        "SET VARIABLE v = 1",
        "EXPLAIN ANALYZE DELETE FROM events",
        f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{out}'",
        "PREPARE p AS SELECT 1",
        "BEGIN TRANSACTION",
    ]


def test_every_attack_is_refused_with_one_line(
    case_file: Path, other_case: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = case_file.read_bytes()
    for sql in _attacks(tmp_path, case_file, other_case):
        assert main(["sql", str(case_file), sql]) == 2, sql
        err = capsys.readouterr().err
        assert err.startswith("keytrail: ") and err.count("\n") == 1, (sql, err)
        assert "refused" in err or "read-only" in err, (sql, err)
    assert not (tmp_path / "written.csv").exists() and not (tmp_path / "exported").exists()
    assert case_file.read_bytes() == before
    assert duckdb.connect(str(other_case), read_only=True).execute(
        "SELECT a FROM t"
    ).fetchall() == [(42,)]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) AS n FROM events",
        "FROM events SELECT agent_id ORDER BY 1 LIMIT 2",
        "WITH a AS (SELECT agent_id FROM events) SELECT count(*) AS n FROM a",
        "  -- a comment\nSELECT 1 AS one;",
        "DESCRIBE events",
        "SHOW TABLES",
        "SUMMARIZE events",
        "PRAGMA table_info('events')",
        "EXPLAIN SELECT * FROM events",
        "SELECT current_setting('lock_configuration') AS locked",
        "PIVOT events ON source USING count(*)",
        "SELECT * FROM main.events LIMIT 1",
    ],
)
def test_reads_work(case_file: Path, sql: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", str(case_file), sql, "--json"]) == 0, capsys.readouterr().err
    rows = json.loads(capsys.readouterr().out)
    assert rows, sql


def test_select_counts_and_locks(case_file: Path) -> None:
    with open_sandbox(case_file) as store:
        names, rows, more = run_sql(store.cursor(), "SELECT count(*) AS n FROM events")
        assert (names, rows, more) == (["n"], [(3,)], False)
        settings = dict(
            store.cursor()
            .execute(
                "SELECT name, value FROM duckdb_settings() WHERE name IN ('enable_external_access', "
                "'autoinstall_known_extensions', 'autoload_known_extensions', 'allow_community_extensions', "
                "'lock_configuration')"
            )
            .fetchall()
        )
        assert settings == {
            "enable_external_access": "false",
            "autoinstall_known_extensions": "false",
            "autoload_known_extensions": "false",
            "allow_community_extensions": "false",
            "lock_configuration": "true",
        }
        assert run_sql(store.cursor(), "SELECT * FROM range(10)", limit=4)[1:] == (
            [(0,), (1,), (2,), (3,)],
            True,
        )


def test_run_sql_refuses_an_unlocked_connection(case_file: Path) -> None:
    con = duckdb.connect(str(case_file), read_only=True)
    with pytest.raises(Exception, match="not the SQL sandbox"):
        run_sql(con, "SELECT 1")


def test_splitter_is_duckdbs_not_a_regex() -> None:
    assert check_sql("SELECT ';' AS semi").strip() == "SELECT ';' AS semi"
    assert check_sql("SELECT 1 -- ; DROP TABLE events")
    with pytest.raises(Exception, match="2 statements"):
        check_sql("SELECT 1; /* x */ DROP TABLE events")


def test_case_file_stays_read_only_on_disk(case_file: Path) -> None:
    """Nothing in the sandbox writes the case: its mtime and bytes do not change after a query."""
    st = os.stat(case_file)
    assert main(["sql", str(case_file), "SELECT count(*) FROM events"]) == 0
    assert os.stat(case_file).st_mtime_ns == st.st_mtime_ns
