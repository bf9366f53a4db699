"""ACTED_ON built in credential partitions (big cases) equals the single-pass result."""

from __future__ import annotations

from pathlib import Path

import pytest

from keytrail.graph import derive_links
from keytrail.ingest.runner import ingest
from keytrail.store.case import CaseStore

from ..conftest import SAMPLE_DATA

INCIDENT = SAMPLE_DATA / "incident"

QUERY = """SELECT src, dst, reason, confidence, evidence, evidence_count, first_seen, last_seen, attributes
           FROM links WHERE kind = 'ACTED_ON' ORDER BY src, dst"""


@pytest.mark.skipif(not INCIDENT.is_dir(), reason="sample incident not in this checkout")
def test_partitioned_acted_on_matches_single_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = tmp_path / "case.duckdb"
    ingest(case, [INCIDENT], inventory=[INCIDENT / "inventory.toml"])
    with CaseStore.open(case) as store:
        single = store.con.execute(QUERY).fetchall()
    assert len(single) > 50
    store = CaseStore.open(case, read_only=False)
    try:
        rows = store.con.execute("SELECT count(*) FROM event_resources").fetchone()
        assert rows is not None
        monkeypatch.setattr(derive_links, "ACTED_ON_PARTITION_ROWS", max(1, rows[0] // 5))
        store.con.execute("DELETE FROM links WHERE kind = 'ACTED_ON'")
        derive_links.acted_on(store.con)
        assert store.con.execute(QUERY).fetchall() == single
    finally:
        store.close()
