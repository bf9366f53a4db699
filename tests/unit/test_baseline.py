"""``baseline()``: an agent's events through its credentials, networks, thin baselines, unknown ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from keytrail.analysis.baseline import baseline
from keytrail.errors import NotFoundError
from keytrail.store.case import CaseStore
from tests.unit.test_findings_support import Case, at


def test_agent_baseline_includes_its_credentials_and_minted_ones(tmp_path: Path) -> None:
    case = Case(tmp_path / "c.duckdb")
    u = case.event(
        time=at(0),
        action="vault:update",
        source="vault",
        credential="acc-1",
        kind="vault-token",
        src_ip="2001:db8:7:1::5",
    )
    case.uses("bot", "acc-1", [u])
    case.issue(
        "ASIAMINTEDBYVAULT001", "aws-temporary-key", parent="acc-1", event_uid=u, issued_at=at(0)
    )
    s3 = case.event(
        time=at(1), action="s3:GetObject", credential="ASIAMINTEDBYVAULT001", src_ip="198.51.100.9"
    )
    late = case.event(
        time=at(0, days=8),
        action="kms:Decrypt",
        credential="ASIAMINTEDBYVAULT001",
        src_ip="198.51.100.10",
    )
    case.event(
        time=at(2), action="s3:GetObject", credential="ASIAOTHERKEY00000001"
    )  # not the agent's
    with CaseStore.open(case.close()) as store:
        b = baseline(store, "bot")
    assert b.kind == "agent" and b.baseline_events == 2 and b.thin
    assert [v["value"] for v in b.values["services"]] == ["s3", "vault"]
    assert {v["value"] for v in b.values["source_networks"]} == {
        "198.51.100.0/24",
        "2001:db8:7::/48",
    }
    [dep] = b.departed["services"]
    assert dep["value"] == "kms" and dep["evidence_uids"] == [late]
    assert b.departed["source_networks"] == []  # same /24
    assert s3 not in [d["evidence_uids"][0] for d in b.departed["actions"]]


def test_unknown_subject(tmp_path: Path) -> None:
    case = Case(tmp_path / "c.duckdb")
    case.event(time=at(0), action="s3:GetObject", credential="AKIAEXAMPLEKEY000001")
    with CaseStore.open(case.close()) as store, pytest.raises(NotFoundError) as err:
        baseline(store, "AKIAEXAMPLEKEY000002")
    assert err.value.suggestions[0] == "AKIAEXAMPLEKEY000001"
