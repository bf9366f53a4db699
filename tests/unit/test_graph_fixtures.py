"""The graph on real evidence: Stratus Red Team CloudTrail detonations and a Vault audit log."""

from __future__ import annotations

from pathlib import Path

import pytest

from keytrail.analysis.answers import blast_radius, rank_credentials
from keytrail.analysis.delegation import trace_event
from keytrail.ingest.runner import ingest
from keytrail.store.case import CaseStore


def _case(tmp_path: Path, *files: Path) -> CaseStore:
    for f in files:
        if not f.is_file():
            pytest.skip(f"fixture {f} missing")
    ingest(tmp_path / "c.duckdb", list(files))
    return CaseStore.open(tmp_path / "c.duckdb")


def _stratus(shared: Path, name: str) -> Path:
    return shared / "cloudtrail" / "stratus-red-team" / "detonation-logs" / f"aws.{name}.json"


def test_user_key_assume_role_denied_burst(shared_fixtures: Path, tmp_path: Path) -> None:
    s = _case(tmp_path, _stratus(shared_fixtures, "credential-access.ec2-get-password-data"))
    try:
        b = blast_radius(s, "AKIAWOGXN38MFN92ING5")
        assert "ASIANQQHHS551LWULIWD" in b.derived_credentials
        assert (
            b.counts["denied"] == 32
        )  # 30 UnauthorizedOperation + 2 AccessDenied, through the derived key
        t = trace_event(
            s,
            "cloudtrail:"
            + s.scalar(
                "SELECT source_event_id FROM events WHERE credential_id = 'ASIANQQHHS551LWULIWD' LIMIT 1"
            ),
        )
        creds = [c.id for c in t.chain if c.kind == "credential"]
        assert creds == ["AKIAWOGXN38MFN92ING5", "ASIANQQHHS551LWULIWD"]
        assert t.chain[1].confidence == "proven" and "AssumeRole" in t.chain[1].reason
        assert t.gaps[0].startswith("origin unknown: no issuing event for AKIAWOGXN38MFN92ING5")
        assert t.chain[0].evidence  # the root's link names an event the key signed
    finally:
        s.close()


def test_federation_token(shared_fixtures: Path, tmp_path: Path) -> None:
    s = _case(tmp_path, _stratus(shared_fixtures, "persistence.sts-federation-token"))
    try:
        row = s.query("SELECT * FROM links WHERE kind = 'MINTED'")
        assert [(r["src"], r["dst"], r["confidence"]) for r in row] == [
            ("AKIA6V1GNZTT65XQH36M", "ASIASTJKC5GCM7ZE6LUP", "proven")
        ]
        assert "GetFederationToken" in row[0]["reason"]
        principal = s.scalar(
            "SELECT principal_uid FROM credentials WHERE credential_id = 'ASIASTJKC5GCM7ZE6LUP'"
        )
        assert ":federated-user/" in principal
    finally:
        s.close()


def test_create_access_key_backdoor(shared_fixtures: Path, tmp_path: Path) -> None:
    s = _case(tmp_path, _stratus(shared_fixtures, "persistence.iam-backdoor-user"))
    try:
        b = blast_radius(s, "AKIA30BEZSJBVKOFKZW0")
        assert b.derived_credentials == ["AKIAL80DWDVKKM0UXEER"]
        assert b.counts["permission_changes"] == 1
        top = rank_credentials(s)[0]
        assert top.credential == "AKIA30BEZSJBVKOFKZW0"
    finally:
        s.close()


def test_stolen_instance_credentials_have_unknown_origin(
    shared_fixtures: Path, tmp_path: Path
) -> None:
    s = _case(
        tmp_path, _stratus(shared_fixtures, "credential-access.ec2-steal-instance-credentials")
    )
    try:
        assert (
            s.scalar("SELECT origin FROM credentials WHERE credential_id = 'ASIAP5CT9NN8EYVU1FXV'")
            == "unknown"
        )
        assert s.scalar("SELECT count(*) FROM links WHERE kind = 'MINTED'") == 0
        uid = s.scalar(
            "SELECT event_uid FROM events WHERE credential_id = 'ASIAP5CT9NN8EYVU1FXV' LIMIT 1"
        )
        t = trace_event(s, uid)
        assert [c.kind for c in t.chain] == ["credential", "event"]
        assert "stolen instance credentials" in t.gaps[0]
    finally:
        s.close()


def test_vault_logins_and_token_creation(shared_fixtures: Path, tmp_path: Path) -> None:
    s = _case(
        tmp_path,
        shared_fixtures
        / "vault"
        / "hashicorp-education_learn-vault-monitoring"
        / "vault-audit.log",
    )
    try:
        minted = s.query("SELECT src, dst, confidence, reason FROM links WHERE kind = 'MINTED'")
        assert minted and all(r["confidence"] == "proven" for r in minted)
        assert any("auth/token/create" in r["reason"] for r in minted)
        # userpass logins are people: each login token is delegated by its user, with the login as evidence.
        logins = s.query("""SELECT src, dst, evidence FROM links WHERE kind = 'DELEGATED' AND dst_kind = 'credential'
                            AND reason LIKE 'a person logged in to Vault%'""")
        assert logins and all(r["src"].startswith("lab-user-") for r in logins)
        assert (
            s.scalar("""SELECT count(*) FROM (SELECT src, dst FROM links WHERE kind = 'DELEGATED'
                           GROUP BY ALL HAVING count(*) > 1)""")
            == 0
        )
        # A token created by another appears in its creator's blast radius.
        parent, child = minted[0]["src"], minted[0]["dst"]
        assert child in blast_radius(s, parent).derived_credentials
    finally:
        s.close()
