"""Shared test fixtures.

Real-format logs live in ``../shared/fixtures`` (outside this repository, never
copied in). Tests that need them use the ``shared_fixtures`` fixture, which skips
cleanly when the folder is absent.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keytrail.store.case import CaseStore
from tests.openbao import OpenBao, OpenBaoUnavailable


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` takes one worker per core, at most four.

    Each worker is a whole process that may start a JVM (Spark), chromium or an OpenBao server:
    on a large CI machine one per core would spend memory, not time (``--dist loadfile`` keeps a
    file's tests, and so its session fixtures, on one worker; the longest file bounds the run).
    """
    return max(1, min(4, os.cpu_count() or 1))


#: The files that take longest (a one-worker ``--durations`` run, session 16: Spark 161 s, the TUI
#: screens 91 s, the incremental derive 86 s), collected first: ``--dist loadfile`` hands files
#: out in collection order, and the Spark file, collected near the end, kept one worker busy for
#: minutes after the other had run out of files.
LONGEST_FIRST = (
    "tests/unit/test_scope_spark.py",
    "tests/tui/test_screens.py",
    "tests/unit/test_derive_incremental.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The :data:`LONGEST_FIRST` files' tests before the others (a stable sort: every file's
    tests, and every other file, keep their order)."""
    rank = {f: i for i, f in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


REPO = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = Path(
    os.environ.get("KEYTRAIL_SHARED_FIXTURES", REPO.parent / "shared" / "fixtures")
)
SAMPLE_DATA = REPO / "sample_data"
INCIDENT = SAMPLE_DATA / "incident"


@pytest.fixture(autouse=True)
def _no_terminal_size_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts without ``COLUMNS``/``LINES``: the CLI fits its tables to ``COLUMNS``
    (keytrail.cli.fit), and pytest-xdist's workers run with ``COLUMNS=80`` set (so does a shell
    that exports it). A test that wants a width sets it itself."""
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    if not SHARED_FIXTURES.is_dir():
        pytest.skip(f"shared fixtures not found at {SHARED_FIXTURES}")
    return SHARED_FIXTURES


@pytest.fixture()
def case_path(tmp_path: Path) -> Path:
    return tmp_path / "case.duckdb"


def case_rows(case: Path, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    """Rows of a read-only query on a case file, as dicts (the store's own query path)."""
    with CaseStore.open(case) as store:
        return store.query(sql, params)


@pytest.fixture(scope="session")
def openbao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBao]:
    """A real OpenBao dev server for the session (tests/openbao.py), skipped with the reason when it cannot run."""
    try:
        server = OpenBao.start(tmp_path_factory.mktemp("openbao"))
    except OpenBaoUnavailable as e:
        pytest.skip(f"no OpenBao server: {e}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def sample_ingest(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The sample incident ingested once a session as the README does (``keytrail ingest CASE
    sample_data/incident --inventory …/inventory.toml``, with its analysis snapshot), and the
    ``--json`` summary it printed. Read-only: a module takes its own copy (:func:`sample_case`)."""
    if not INCIDENT.is_dir():
        pytest.skip("sample incident not present")
    from keytrail.cli.main import main

    path = tmp_path_factory.mktemp("sample-once") / "demo.duckdb"
    argv = ["ingest", str(path), str(INCIDENT), "--inventory", str(INCIDENT / "inventory.toml")]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main([*argv, "-q", "--json"])
    summary = json.loads(out.getvalue())
    assert rc == 0, summary
    return path, summary


def sample_case(sample_ingest: tuple[Path, dict[str, Any]], folder: Path) -> Path:
    """A copy of the once-built sample case in ``folder`` (a module's own file: what one module
    does to its case never reaches another's)."""
    src, _ = sample_ingest
    dst = folder / src.name
    shutil.copyfile(src, dst)
    wal = src.with_name(src.name + ".wal")
    if wal.exists():
        shutil.copyfile(wal, dst.with_name(dst.name + ".wal"))
    return dst
