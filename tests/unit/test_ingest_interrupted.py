"""An ingest killed half-way leaves a consistent case, and running it again completes the job.

Each file is loaded in one transaction with its evidence row, so a SIGKILL can lose
only the file being loaded; the next run loads what is missing and finalises.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from ..conftest import REPO

GEN = REPO / "scripts" / "gen_scale.py"


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scale")
    subprocess.run(
        [sys.executable, str(GEN), "--events", "30000", "--out", str(out), "--seed", "3"],
        check=True,
        capture_output=True,
    )
    return out


def _counts(case: Path) -> tuple[int, int, str]:
    con = duckdb.connect(str(case), read_only=True)
    try:
        events = con.execute("SELECT count(*) FROM events").fetchone()[0]  # type: ignore[index]
        files = con.execute(
            "SELECT count(*) FROM evidence WHERE status IN ('loaded','partial')"
        ).fetchone()[0]  # type: ignore[index]
        fin = con.execute("SELECT value FROM case_meta WHERE key = 'finalized'").fetchone()
        return int(events), int(files), (fin[0] if fin else "missing")
    finally:
        con.close()


def _ingest(case: Path, logs: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "keytrail", "ingest", str(case), str(logs), "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_killed_ingest_is_consistent_and_rerun_completes(logs: Path, tmp_path: Path) -> None:
    clean = tmp_path / "clean.duckdb"
    t0 = time.monotonic()
    assert _ingest(clean, logs).wait() == 0
    full_time = time.monotonic() - t0
    want_events, want_files, fin = _counts(clean)
    assert fin == "true" and want_events > 25_000

    case = tmp_path / "killed.duckdb"
    proc = _ingest(case, logs)
    # Kill somewhere in the middle of the load (start-up is roughly a second of it).
    time.sleep(max(0.5, full_time * 0.4))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

    if case.exists():
        events, files, fin = _counts(case)  # opens cleanly: DuckDB replays or discards the WAL
        assert events <= want_events and files <= want_files
        con = duckdb.connect(str(case), read_only=True)
        try:
            assert con.execute(
                "SELECT count(*) FROM evidence WHERE status = 'loading'"
            ).fetchone() == (0,)
            # Every file recorded as loaded has all of its records (no half-written file).
            partial = con.execute(
                """SELECT count(*) FROM evidence v
                   WHERE v.status = 'loaded' AND v.records <>
                     (SELECT count(*) FROM events e WHERE e.file_id = v.file_id) + v.rejected
                       + coalesce(v.skipped, 0) + coalesce(v.duplicates, 0)"""
            ).fetchone()
        finally:
            con.close()
        if fin == "true":
            assert partial == (0,)

    rerun = _ingest(case, logs)
    assert rerun.wait() == 0, rerun.stderr.read() if rerun.stderr else ""
    assert _counts(case) == (want_events, want_files, "true")
