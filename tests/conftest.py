"""Shared test fixtures.

Real-format logs live in ``../shared/fixtures`` (outside this repository, never
copied in). Tests that need them use the ``shared_fixtures`` fixture, which skips
cleanly when the folder is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
