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


def test_acted_on_lists_actions_in_byte_order_with_their_counts(tmp_path: Path) -> None:
    """The ``actions`` object of an edge: every action of the pair once, with its event count, in
    the byte order of the action names (``"Get"`` before ``"Get!"``, capitals first, a quote or a
    non-ASCII letter where its bytes put it), whatever order the events came in."""
    import json

    names = ["GetObject", "Get!", "Get", "get", 'Ge"t', "Gét", "Get", "GetObject", "Get"]
    records = [
        {
            "eventVersion": "1.08",
            "eventID": f"id-{i}",
            "eventTime": f"2026-03-02T00:00:{i:02d}Z",
            "eventSource": "s3.amazonaws.com",
            "eventName": name,
            "awsRegion": "us-east-1",
            "userIdentity": {"type": "IAMUser", "accessKeyId": "AKIAEXAMPLEKEY000009"},
            "resources": [{"ARN": "arn:aws:s3:::b/k", "type": "AWS::S3::Object"}],
            "recipientAccountId": "111122223333",
        }
        for i, name in enumerate(names)
    ]
    trail = tmp_path / "trail.json"
    trail.write_text(json.dumps({"Records": records}))
    case = tmp_path / "case.duckdb"
    ingest(case, [trail])
    with CaseStore.open(case) as store:
        rows = store.con.execute(
            "SELECT attributes FROM links WHERE kind = 'ACTED_ON' AND dst = 'arn:aws:s3:::b/k'"
        ).fetchall()
    assert len(rows) == 1
    text = json.loads(rows[0][0])["actions"]
    actions = text if isinstance(text, dict) else json.loads(text)
    want = {f"s3:{n}": names.count(n) for n in sorted(set(names), key=lambda n: n.encode())}
    assert list(actions.items()) == list(want.items())
