"""Shared test fixtures.

Real-format logs live in ``../shared/fixtures`` (outside this repository, never
copied in). Tests that need them use the ``shared_fixtures`` fixture, which skips
cleanly when the folder is absent.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from keytrail.store.case import CaseStore

REPO = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = Path(os.environ.get("KEYTRAIL_SHARED_FIXTURES", REPO.parent / "shared" / "fixtures"))
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
