"""Delegation trace: ordered chains, explicit gaps, no guessing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from keytrail.analysis.delegation import trace_event
from keytrail.errors import NotFoundError
from keytrail.store.case import CaseStore
from tests.unit.graph_case import ACCT, ROLE, SESSION, CaseBuilder, incident


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CaseStore]:
    s = incident(tmp_path_factory.mktemp("trace") / "case.duckdb")
    yield s
    s.close()


def test_full_chain_human_agent_credentials_event(store: CaseStore) -> None:
    t = trace_event(store, "ct-get")  # the source's own id
    assert [(c.kind, c.id) for c in t.chain] == [
        ("human", "bob@example.com"),
        ("agent", "ledger-bot"),
        ("credential", "acc-app"),
        ("credential", "lease-aws-1"),
        ("credential", "AKIANEWKEY0000000001"),
        ("credential", "ASIACHAIN00000000001"),
        ("event", "cloudtrail:ct-get"),
    ]
    assert t.gaps == []
    assert t.chain[1].confidence == "strong"  # inventory role beats the inferred tool-call match
    assert t.chain[4].confidence == "strong" and "vault:v-aws" in t.chain[4].evidence
    assert all(c.reason and c.evidence for c in t.chain)
    assert trace_event(store, "cloudtrail:ct-get").chain == t.chain


def test_origin_unknown_is_a_named_gap(store: CaseStore) -> None:
    t = trace_event(store, "ct-stolen")
    assert [c.kind for c in t.chain] == ["credential", "event"]
    assert t.gaps[0].startswith("origin unknown: no issuing event for ASIASTOLEN0000000001")
    assert any("no agent linked to credential ASIASTOLEN0000000001" in g for g in t.gaps)
    assert any(g.startswith("no human") for g in t.gaps)


def test_human_from_vault_login(store: CaseStore) -> None:
    t = trace_event(store, "v-create")
    assert [(c.kind, c.id) for c in t.chain][:2] == [
        ("human", "alice@example.com"),
        ("credential", "acc-alice"),
    ]
    assert t.chain[0].evidence == ("vault:v-login-alice",)


def test_tool_call_matched_to_credential_is_flagged_inferred(store: CaseStore) -> None:
    t = trace_event(store, "tool-1")
    kinds = [c.kind for c in t.chain]
    assert kinds[:2] == ["human", "agent"] and kinds[-1] == "event" and "credential" in kinds
    assert any("inferred" in g for g in t.gaps)


def test_two_agents_on_one_credential_are_not_guessed(tmp_path: Path) -> None:
    b = CaseBuilder(tmp_path / "c.duckdb")
    b.agent("bot-a", [ROLE])
    b.agent("bot-b", [ROLE])
    b.event(
        "cloudtrail",
        "use",
        0,
        "s3:ListBuckets",
        cred="ASIASHARED0000000001",
        cred_kind="aws-temporary-key",
        actor=SESSION,
        actor_type="AssumedRole",
    )
    s = b.finalize()
    try:
        t = trace_event(s, "use")
        assert "agent" not in [c.kind for c in t.chain]
        assert any("2 agents (bot-a, bot-b)" in g for g in t.gaps)
        assert {a["agent"] for a in t.candidates["agents"]} == {"bot-a", "bot-b"}
    finally:
        s.close()


def test_cloudtrail_source_identity_names_the_human(tmp_path: Path) -> None:
    b = CaseBuilder(tmp_path / "c.duckdb")
    b.event(
        "cloudtrail",
        "use",
        0,
        "s3:ListBuckets",
        cred="ASIASRC0000000000001",
        cred_kind="aws-temporary-key",
        actor=SESSION,
        actor_type="AssumedRole",
        human="carol@example.com",
    )
    s = b.finalize()
    try:
        t = trace_event(s, "use")
        assert t.chain[0].kind == "human" and t.chain[0].id == "carol@example.com"
        assert t.chain[0].confidence == "strong"
    finally:
        s.close()


def test_unknown_event_suggests(store: CaseStore) -> None:
    with pytest.raises(NotFoundError) as e:
        trace_event(store, "ct-stolem")
    assert "ct-stolen" in e.value.suggestions


def test_origin_unknown_root_above_the_event_carries_evidence(tmp_path: Path) -> None:
    """A root key with no issuing event that minted the event's key: its link names an event it signed."""
    b = CaseBuilder(tmp_path / "c.duckdb")
    b.event(
        "cloudtrail",
        "ct-first",
        0,
        "sts:GetCallerIdentity",
        cred="AKIAROOT000000000001",
        cred_kind="aws-access-key",
        actor=f"arn:aws:iam::{ACCT}:user/u",
    )
    ev = b.event(
        "cloudtrail",
        "ct-assume",
        10,
        "sts:AssumeRole",
        cred="AKIAROOT000000000001",
        cred_kind="aws-access-key",
        actor=f"arn:aws:iam::{ACCT}:user/u",
    )
    b.issue(
        "ASIACHILD00000000001",
        "aws-temporary-key",
        "AKIAROOT000000000001",
        ev,
        10,
        principal=SESSION,
        reason="AssumeRole responseElements.credentials.accessKeyId",
    )
    b.event(
        "cloudtrail",
        "ct-use",
        20,
        "s3:GetObject",
        cred="ASIACHILD00000000001",
        cred_kind="aws-temporary-key",
        actor=SESSION,
        actor_type="AssumedRole",
    )
    s = b.finalize()
    try:
        t = trace_event(s, "ct-use")
        assert [c.id for c in t.chain if c.kind == "credential"] == [
            "AKIAROOT000000000001",
            "ASIACHILD00000000001",
        ]
        assert t.chain[0].reason.startswith("origin unknown") and t.chain[0].evidence == (
            "cloudtrail:ct-first",
        )
        assert all(c.evidence for c in t.chain)
    finally:
        s.close()


def test_cross_account_copy_follows_the_callers_copy(tmp_path: Path) -> None:
    """The resource account's copy of an AssumeRole has no access key; its sharedEventID twin does."""
    b = CaseBuilder(tmp_path / "c.duckdb")
    b.event(
        "cloudtrail",
        "ct-caller",
        0,
        "sts:AssumeRole",
        cred="ASIACALLER0000000001",
        cred_kind="aws-temporary-key",
        actor=SESSION,
        actor_type="AssumedRole",
        shared="shared-1",
    )
    b.event(
        "cloudtrail",
        "ct-copy",
        0,
        "sts:AssumeRole",
        actor="AROAEXAMPLE:sess",
        actor_type="AWSAccount",
        account="444455556666",
        shared="shared-1",
    )
    s = b.finalize()
    try:
        t = trace_event(s, "ct-copy")
        assert [c.id for c in t.chain if c.kind == "credential"] == ["ASIACALLER0000000001"]
        assert (
            "cloudtrail:ct-caller" in t.chain[-1].evidence and "sharedEventID" in t.chain[-1].reason
        )
        assert not any("carries no credential" in g for g in t.gaps)
    finally:
        s.close()


def test_human_named_by_a_vault_event_cites_vault_fields(tmp_path: Path) -> None:
    b = CaseBuilder(tmp_path / "c.duckdb")
    b.event(
        "vault",
        "v-tune",
        0,
        "vault:update",
        cred="acc-admin",
        cred_kind="vault-token",
        human="m.ito",
    )
    s = b.finalize()
    try:
        link = trace_event(s, "v-tune").chain[0]
        assert (link.kind, link.id) == ("human", "m.ito")
        assert "Vault token" in link.reason and "enduser.id" not in link.reason
    finally:
        s.close()


def test_browser_call_on_agent_credential_names_a_person(tmp_path: Path) -> None:
    """The agent hop names whose key it was; a console/browser call must say a person made it."""
    b = CaseBuilder(tmp_path / "c.duckdb")
    b.agent("ledger-bot", [ROLE])
    b.event(
        "cloudtrail",
        "ct-api",
        0,
        "s3:GetObject",
        cred="ASIABOT0000000000001",
        cred_kind="aws-temporary-key",
        actor=SESSION,
        actor_type="AssumedRole",
    )
    b.event(
        "cloudtrail",
        "ct-console",
        10,
        "s3:ListBuckets",
        cred="ASIABOT0000000000001",
        cred_kind="aws-temporary-key",
        actor=SESSION,
        actor_type="AssumedRole",
    )
    b.store.con.execute("""UPDATE events SET user_agent = 'Mozilla/5.0 Chrome/133.0',
                             raw = '{"sessionCredentialFromConsole": "true"}' WHERE source_event_id = 'ct-console'""")
    s = b.finalize()
    try:
        t = trace_event(s, "ct-console")
        assert [c.kind for c in t.chain][:2] == ["agent", "credential"]
        assert any(
            g.startswith("a person, not agent ledger-bot") and "console session" in g
            for g in t.gaps
        )
        assert not any(g.startswith("a person") for g in trace_event(s, "ct-api").gaps)
    finally:
        s.close()


def test_engine_create_access_key_continues_through_the_lease(store: CaseStore) -> None:
    # Vault's AWS engine signs CreateAccessKey with its own key for a lease: the trace goes on
    # through the lease to the token that read it, its agent and human (issue 13 item 8).
    t = trace_event(store, "ct-createkey")
    ids = [(c.kind, c.id) for c in t.chain]
    assert ids[:2] == [("human", "bob@example.com"), ("agent", "ledger-bot")]
    lease, key_id = ("credential", "lease-aws-1"), ("credential", "AKIANEWKEY0000000001")
    assert ids.index(lease) < ids.index(key_id)
    key = next(c for c in t.chain if c.id == "AKIANEWKEY0000000001")
    assert key.reason.startswith("created by this event for lease-aws-1")
    assert ids[-1] == ("event", "cloudtrail:ct-createkey")
    assert "creating AKIANEWKEY0000000001 for lease-aws-1" in t.chain[-1].reason
    assert not any(g.startswith(("no agent linked", "no human linked")) for g in t.gaps)
