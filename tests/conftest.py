"""Shared test fixtures.

Real-format logs live in ``../shared/fixtures`` (outside this repository, never
copied in). Tests that need them use the ``shared_fixtures`` fixture, which skips
cleanly when the folder is absent.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keytrail.store.case import CaseStore
from tests.openbao import OpenBao, OpenBaoUnavailable

REPO = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = Path(
    os.environ.get("KEYTRAIL_SHARED_FIXTURES", REPO.parent / "shared" / "fixtures")
)
SAMPLE_DATA = REPO / "sample_data"


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
