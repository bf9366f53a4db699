"""derive(): the links, credentials and principals built from ingested rows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keytrail.store.case import CaseStore
from tests.unit.graph_case import ACCT, ROLE, SESSION, CaseBuilder, incident


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CaseStore]:
    s = incident(tmp_path_factory.mktemp("graph") / "case.duckdb")
    yield s
    s.close()


def _links(store: CaseStore, kind: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {
        (r["src"], r["dst"], r["confidence"]): r
        for r in store.query("SELECT * FROM links WHERE kind = ?", [kind])
    }


def test_every_link_has_reason_confidence_and_evidence(store: CaseStore) -> None:
    bad = store.query("""SELECT * FROM links WHERE reason IS NULL OR reason = '' OR evidence IS NULL
                         OR len(evidence) = 0 OR evidence_count IS NULL
                         OR confidence NOT IN ('proven', 'strong', 'inferred') OR evidence_count < len(evidence)""")
    assert bad == []
    assert store.scalar("SELECT count(DISTINCT kind) FROM links") == 5


def test_origin_and_parents(store: CaseStore) -> None:
    creds = {r["credential_id"]: r for r in store.query("SELECT * FROM credentials")}
    assert creds["ASIASTOLEN0000000001"]["origin"] == "unknown"
    assert creds["ASIASTOLEN0000000001"]["kind"] == "aws-temporary-key"
    assert creds["ASIACHAIN00000000001"]["parent_credential_id"] == "AKIANEWKEY0000000001"
    # The Vault token that asked for the key is preferred over Vault's own AWS key.
    assert creds["AKIANEWKEY0000000001"]["parent_credential_id"] == "lease-aws-1"
    assert (
        creds["acc-app"]["origin"] == "issued" and creds["acc-app"]["parent_credential_id"] is None
    )
    assert creds["ASIACHAIN00000000001"]["events"] == 4


def test_cross_account_copies_count_once(store: CaseStore) -> None:
    m = _links(store, "MINTED")[("AKIANEWKEY0000000001", "ASIACHAIN00000000001", "proven")]
    assert json.loads(m["attributes"])["calls"] == 1
    assert sorted(m["evidence"]) == ["cloudtrail:ct-assume-0", "cloudtrail:ct-assume-1"]


def test_vault_aws_engine_matched_by_username_template(store: CaseStore) -> None:
    minted = _links(store, "MINTED")
    edge = minted[("lease-aws-1", "AKIANEWKEY0000000001", "strong")]
    assert "vault:v-aws" in edge["evidence"] and "cloudtrail:ct-createkey" in edge["evidence"]
    assert ("AKIAVAULTROOT0000001", "AKIANEWKEY0000000001", "proven") in minted
    assert ("acc-app", "lease-aws-1", "proven") in minted


def test_vault_aws_engine_exact_key_is_proven(tmp_path: Path) -> None:
    b = CaseBuilder(tmp_path / "c.duckdb")
    ev = b.event("vault", "login", 0, "vault:update", target="vault:auth/approle/login")
    b.issue(
        "acc-1",
        "vault-token",
        None,
        ev,
        0,
        name="approle",
        attributes={"metadata": {"role_name": "r"}},
    )
    ev = b.event(
        "vault",
        "creds",
        5,
        "vault:read",
        cred="acc-1",
        cred_kind="vault-token",
        target="aws/creds/r",
    )
    b.issue(
        "AKIAPLAIN00000000001",
        "aws-access-key",
        "acc-1",
        ev,
        5,
        confidence="proven",
        attributes={"username_prefix": "vault-approle-r-1709294405"},
    )
    b.event(
        "cloudtrail",
        "use",
        60,
        "s3:ListBuckets",
        cred="AKIAPLAIN00000000001",
        cred_kind="aws-access-key",
        actor=f"arn:aws:iam::{ACCT}:user/vault-approle-r-1709294405-xyz",
        actor_type="IAMUser",
    )
    s = b.finalize()
    try:
        minted = _links(s, "MINTED")
        assert ("acc-1", "AKIAPLAIN00000000001", "proven") in minted
        assert (
            s.scalar("SELECT origin FROM credentials WHERE credential_id = 'AKIAPLAIN00000000001'")
            == "issued"
        )
    finally:
        s.close()


def test_vault_name_match_ignores_names_before_issue(tmp_path: Path) -> None:
    b = CaseBuilder(tmp_path / "c.duckdb")
    ev = b.event(
        "vault",
        "creds",
        100,
        "vault:read",
        cred="acc-1",
        cred_kind="vault-token",
        target="aws/creds/r",
    )
    b.issue(
        "lease-1", "vault-lease", "acc-1", ev, 100, attributes={"username_prefix": "vault-x-r-17"}
    )
    # A key with that name used 50 s *before* Vault issued anything cannot be Vault's.
    b.event(
        "cloudtrail",
        "early",
        50,
        "s3:ListBuckets",
        cred="AKIAEARLY00000000001",
        cred_kind="aws-access-key",
        actor=f"arn:aws:iam::{ACCT}:user/vault-x-r-17-abc",
        actor_name="vault-x-r-17-abc",
        actor_type="IAMUser",
    )
    s = b.finalize()
    try:
        assert ("lease-1", "AKIAEARLY00000000001", "strong") not in _links(s, "MINTED")
    finally:
        s.close()


def test_uses_edges(store: CaseStore) -> None:
    uses = _links(store, "USES")
    role = uses[("ledger-bot", "ASIACHAIN00000000001", "strong")]
    assert ROLE in role["reason"] and "inventory:1:1" in role["evidence"]
    assert ("ledger-bot", "acc-app", "strong") in uses
    tool = uses[("ledger-bot", "ASIACHAIN00000000001", "inferred")]
    assert set(tool["evidence"]) == {"agent:tool-1", "cloudtrail:ct-get"}
    # The stolen key is a session of another role: nobody declared it.
    assert not [k for k in uses if k[1] == "ASIASTOLEN0000000001"]


def test_tool_call_outside_window_is_not_matched(tmp_path: Path) -> None:
    b = CaseBuilder(tmp_path / "c.duckdb")
    b.event("agent", "tool", 0, "tool:s3_get_object", agent="bot", resources=("s3://b/k",))
    b.event(
        "cloudtrail",
        "late",
        500,
        "s3:GetObject",
        cred="ASIALATE000000000001",
        cred_kind="aws-temporary-key",
        actor=SESSION,
        actor_type="AssumedRole",
        resources=("arn:aws:s3:::b/k",),
    )
    b.event(
        "cloudtrail",
        "other",
        10,
        "s3:GetObject",
        cred="ASIAOTHER00000000001",
        cred_kind="aws-temporary-key",
        actor=SESSION,
        actor_type="AssumedRole",
        resources=("arn:aws:s3:::b/other",),
    )
    s = b.finalize()
    try:
        assert _links(s, "USES") == {}
    finally:
        s.close()


def test_delegation_edges(store: CaseStore) -> None:
    d = _links(store, "DELEGATED")
    assert ("bob@example.com", "ledger-bot", "proven") in d
    alice = d[("alice@example.com", "acc-alice", "proven")]
    assert alice["dst_kind"] == "credential" and alice["evidence"] == ["vault:v-login-alice"]


def test_acted_on_aggregates(store: CaseStore) -> None:
    a = _links(store, "ACTED_ON")[("ASIACHAIN00000000001", ROLE, "proven")]
    attrs = json.loads(a["attributes"])
    assert attrs["denied"] == 1 and attrs["actions"] == {"iam:AttachRolePolicy": 1}
    assert a["evidence"] == ["cloudtrail:ct-attach"]


def test_principals(store: CaseStore) -> None:
    p = {r["principal_id"]: r for r in store.query("SELECT * FROM principals")}
    assert p[ROLE]["kind"] == "iam-role" and p[ROLE]["name"] == "LedgerRole"
    assert p[SESSION]["kind"] == "assumed-role"
    assert p["ledger-bot"]["kind"] == "agent"
    assert p["bob@example.com"]["kind"] == "human" and p["alice@example.com"]["kind"] == "human"
    assert p["ent-app"]["kind"] == "vault-entity"
    assert store.scalar("SELECT count(*) - count(DISTINCT principal_id) FROM principals") == 0


def test_derive_is_idempotent(tmp_path: Path) -> None:
    from keytrail.graph.derive import derive

    s = incident(tmp_path / "c.duckdb")
    before = s.query("SELECT kind, src, dst, confidence FROM links ORDER BY ALL")
    s.close()
    w = CaseStore.open(tmp_path / "c.duckdb", read_only=False)
    derive(w.con)
    after = w.query("SELECT kind, src, dst, confidence FROM links ORDER BY ALL")
    w.close()
    assert before == after


def test_identity_center_session_names_the_human(tmp_path: Path) -> None:
    b = CaseBuilder(tmp_path / "c.duckdb")
    arn = f"arn:aws:sts::{ACCT}:assumed-role/AWSReservedSSO_Admin_5b1c/j.park@example.com"
    b.event(
        "cloudtrail",
        "sso",
        0,
        "iam:CreateLoginProfile",
        cred="ASIASSO0000000000001",
        cred_kind="aws-temporary-key",
        actor=arn,
        actor_type="AssumedRole",
    )
    s = b.finalize()
    try:
        d = _links(s, "DELEGATED")[("j.park@example.com", "ASIASSO0000000000001", "strong")]
        assert d["evidence"] == ["cloudtrail:sso"]
    finally:
        s.close()


def test_vault_token_metadata_names_the_agent(tmp_path: Path) -> None:
    b = CaseBuilder(tmp_path / "c.duckdb")
    b.event(
        "vault",
        "r1",
        0,
        "vault:read",
        cred="acc-meta",
        cred_kind="vault-token",
        actor="ent-1",
        agent="billing-agent",
        target="secret/data/billing",
    )
    s = b.finalize()
    try:
        u = _links(s, "USES")[("billing-agent", "acc-meta", "strong")]
        assert u["evidence"] == ["vault:r1"]
        assert (
            s.scalar("SELECT kind FROM principals WHERE principal_id = 'billing-agent'") == "agent"
        )
    finally:
        s.close()


def test_vault_federation_token_matched_by_sts_template(tmp_path: Path) -> None:
    b = CaseBuilder(tmp_path / "c.duckdb")
    ev = b.event(
        "vault", "fed", 100, "vault:read", cred="acc-1", cred_kind="vault-token", target="aws/sts/r"
    )
    b.issue(
        "lease-f",
        "vault-lease",
        "acc-1",
        ev,
        100,
        attributes={
            "username_prefix": "vault-tok-r-1709294500",
            "federation_name_prefix": "vault-1709294500",
        },
    )
    b.event(
        "cloudtrail",
        "fed-use",
        130,
        "s3:ListBuckets",
        cred="ASIAFED0000000000001",
        cred_kind="aws-temporary-key",
        actor=f"arn:aws:sts::{ACCT}:federated-user/vault-1709294500-abcdefghijklmno",
        actor_name="vault-1709294500-abcdefghijklmno",
        actor_type="FederatedUser",
    )
    s = b.finalize()
    try:
        assert ("lease-f", "ASIAFED0000000000001", "strong") in _links(s, "MINTED")
    finally:
        s.close()


def test_agent_principal_dates_are_rfc3339(tmp_path: Path) -> None:
    """Inventory dates in an agent principal's attributes read like every other time (exports copy them)."""
    from datetime import datetime

    b = CaseBuilder(tmp_path / "c.duckdb")
    b.store.con.execute(
        "INSERT INTO inventory_agents (agent_id, name, owner, created, retired, identities, file_id, record_no) "
        "VALUES ('vendor-sync', 'Vendor Sync', 'ops@example.com', ?, ?, [], 1, 1)",
        [datetime(2025, 6, 15), datetime(2026, 3, 5)],
    )
    s = b.finalize()
    try:
        attrs = json.loads(
            s.scalar("SELECT attributes FROM principals WHERE principal_id = 'vendor-sync'")
        )
        assert (
            attrs["created"] == "2025-06-15T00:00:00Z"
            and attrs["retired"] == "2026-03-05T00:00:00Z"
        )
    finally:
        s.close()


def test_tied_principal_goes_to_the_smallest_value(tmp_path: Path) -> None:
    """A key seen under two identities equally often: the credential's principal is the smallest
    value, not whichever row a parallel scan met first (DuckDB's plain ``mode()`` keeps the first
    row's value on a tie; this test fails with it)."""
    b = CaseBuilder(tmp_path / "c.duckdb")
    key = "AKIATIE0000000000001"
    for i, who in enumerate(["zeta", "alpha", "zeta", "alpha"]):
        b.event(
            "cloudtrail",
            f"tie-{i}",
            10 * (i + 1),
            "s3:ListBuckets",
            cred=key,
            cred_kind="aws-access-key",
            actor=f"arn:aws:iam::{ACCT}:user/{who}",
            actor_name=who,
            actor_type="IAMUser",
        )
    s = b.finalize()
    try:
        row = s.query("SELECT principal_uid FROM credentials WHERE credential_id = ?", [key])
        assert row == [{"principal_uid": f"arn:aws:iam::{ACCT}:user/alpha"}]
    finally:
        s.close()
