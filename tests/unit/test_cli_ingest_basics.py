"""Ingest's contract for bad input that needs no adapter: exit codes and messages."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from keytrail.cli.main import main
from keytrail.store.case import CaseStore


def empty_case(path: Path) -> None:
    """A case with the schema and no evidence (a failed first ingest no longer leaves one)."""
    CaseStore.open(path, read_only=False, create=True).close()


def test_missing_path_exits_2_and_says_which(
    case_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["ingest", str(case_path), str(tmp_path / "nope.json"), "-q"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "nope.json: no such file or directory" in err
    assert not case_path.exists(), "the case must not be created when an input path is missing"


def test_unknown_format_is_reported_and_exit_2_when_nothing_loaded(
    case_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("this is not a log\n")
    rc = main(["ingest", str(case_path), str(junk), "-q"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "notes.txt" in err and "matches no known format" in err
    assert not case_path.exists()  # a first ingest that loaded nothing leaves no empty case
    empty_case(case_path)  # into an existing case, the skipped file is recorded as evidence
    assert main(["ingest", str(case_path), str(junk), "-q"]) == 2
    capsys.readouterr()
    rc = main(["sql", str(case_path), "SELECT status, note FROM evidence", "--json"])
    assert rc == 0
    assert '"skipped"' in capsys.readouterr().out


def test_info_on_missing_case_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["info", str(tmp_path / "absent.duckdb")])
    assert rc == 2
    assert "does not exist" in capsys.readouterr().err


def test_second_writer_gets_lock_message_naming_holder(case_path: Path, tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("x\n")
    main(["ingest", str(case_path), str(junk), "-q"])
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import duckdb, sys, time
            con = duckdb.connect({str(case_path)!r})
            print('ready', flush=True)
            sys.stdin.read()
        """),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        out = subprocess.run(
            [sys.executable, "-m", "keytrail", "ingest", str(case_path), str(junk), "-q"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 2
        assert f"PID {holder.pid}" in out.stderr
        assert "locked" in out.stderr and "Traceback" not in out.stderr
    finally:
        holder.communicate("")


def test_sql_is_read_only(
    case_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty_case(case_path)
    capsys.readouterr()
    rc = main(["sql", str(case_path), "DELETE FROM evidence"])
    assert rc == 2
    assert "read-only" in capsys.readouterr().err.lower()


def test_sql_csv_neutralises_formulas(
    case_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty_case(case_path)
    capsys.readouterr()
    assert main(["sql", str(case_path), "SELECT '=cmd|'' /C calc''!A0' AS v", "--csv"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "v"
    assert out[1].startswith("'=cmd")


def test_info_text_columns_line_up(case_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Sub-second Vault times and two-digit file ids must not shift the columns after them."""
    root = Path(__file__).resolve().parents[2] / "sample_data" / "incident"
    trails = sorted((root / "AWSLogs" / "418295730164").rglob("*.json.gz"))[:10]
    assert (
        main(
            [
                "ingest",
                str(case_path),
                str(root / "vault" / "vault_audit.log"),
                *map(str, trails),
                "-q",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["info", str(case_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    head = next(i for i, s in enumerate(lines) if s.startswith("source "))
    table = [s for s in lines[head : head + 4] if s.split()[0] in ("source", "cloudtrail", "vault")]
    assert len(table) == 3
    assert len({s.index("2026-") if "2026-" in s else s.index("first") for s in table}) == 1
    assert len({s.rindex("2026-") if "2026-" in s else s.index("last") for s in table}) == 1
    evidence = [s for s in lines if s.startswith("  [")]
    assert len(evidence) == 11 and len({s.index(" loaded ") for s in evidence}) == 1


def test_sql_masks_secrets_in_results(
    case_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty_case(case_path)
    capsys.readouterr()
    query = """SELECT '{"sessionToken":"IQoJb3JpZ2luX2VjSECRETVALUE"}' AS raw"""
    for mode in ([], ["--json"], ["--csv"]):
        assert main(["sql", str(case_path), query, *mode]) == 0
        out = capsys.readouterr().out
        assert "sessionToken" in out and "IQoJb3JpZ2luX2VjSECRETVALUE" not in out and "****" in out
    # --reveal reads originals from the evidence files (tests/unit/test_reveal.py), never unmasks a result
    assert main(["sql", str(case_path), query, "--json", "--reveal"]) == 2
    out = capsys.readouterr()
    assert "IQoJb3JpZ2luX2VjSECRETVALUE" not in out.out and "event_uid column" in out.err


def test_loaded_file_with_rejects_has_no_dangling_colon(
    case_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = Path(__file__).resolve().parents[2] / "sample_data" / "incident" / "agents" / "native"
    log = tmp_path / "agent.jsonl"
    log.write_text(
        "".join((root / "vendor-sync.jsonl").read_text().splitlines(keepends=True)[:2])
        + '{"broken\n'
    )
    assert main(["ingest", str(case_path), str(log), "-q"]) == 0
    line = next(s for s in capsys.readouterr().err.splitlines() if str(log) in s)
    assert line.split() == ["loaded", str(log), "(1", "rejected)"]


def test_sql_empty_query_is_a_usage_error(
    case_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty_case(case_path)
    capsys.readouterr()
    for query in ("", "-- only a comment"):
        assert main(["sql", str(case_path), query]) == 2  # was an AttributeError traceback
        assert "no result set" in capsys.readouterr().err
