"""The Vault adapter against a real OpenBao server: scenarios through its HTTP API, logs ingested.

The ``openbao`` session fixture (tests/conftest.py) runs ``bao server -dev`` with three audit
devices; each test drives one scenario (tests/openbao_scenarios.py), ingests what a device wrote for
it, and checks the credentials, parents and edges it must produce (tests/openbao_checks.py; the same
checks run on the kept fixtures in tests/unit/test_openbao_fixtures.py). Identifiers are compared as
the device logs them: ``sys/audit-hash`` turns the clear accessors and serials the HTTP answers gave
into the HMACs the default device writes, as a responder would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests import openbao_checks as check
from tests import openbao_scenarios as scenarios
from tests.conftest import case_rows
from tests.openbao import OpenBao


def _run(
    bao: OpenBao, tmp: Path, name: str, device: str = "default"
) -> tuple[Path, dict[str, Any], str]:
    """(case, logged ids, logged root accessor) of scenario ``name`` as ``device`` recorded it."""
    mark = bao.mark()
    facts = getattr(scenarios, name)(bao)
    log = bao.audit_since(mark, device)
    root = bao.call("GET", "auth/token/lookup-self")["data"]["accessor"]
    root = root if device == "raw" else scenarios.audit_hash(bao, device, root)
    return (
        check.ingest_log(tmp, f"{name}-{device}.log", log),
        scenarios.logged_ids(bao, facts, device),
        root,
    )


def test_userpass_login_has_no_parent(openbao: OpenBao, tmp_path: Path) -> None:
    case, ids, _ = _run(openbao, tmp_path, "userpass")
    check.check_userpass(case, ids)


def test_approle_secret_id_is_the_login_tokens_parent(openbao: OpenBao, tmp_path: Path) -> None:
    case, ids, root = _run(openbao, tmp_path, "approle")
    check.check_approle(case, ids, root)


def test_jwt_logins_workload_and_person(openbao: OpenBao, tmp_path: Path) -> None:
    case, ids, _ = _run(openbao, tmp_path, "jwt")
    check.check_jwt(case, ids)


def test_token_lineage_renew_lookup_revoke(openbao: OpenBao, tmp_path: Path) -> None:
    case, ids, root = _run(openbao, tmp_path, "tokens")
    check.check_tokens(case, ids, root)


def test_token_role_policies_the_parent_lacks_is_a_finding(
    openbao: OpenBao, tmp_path: Path
) -> None:
    from keytrail.analysis.answers import run_findings
    from keytrail.store.case import CaseStore

    case, ids, _ = _run(openbao, tmp_path, "tokens")
    with CaseStore.open(case) as store:
        found = [f for f in run_findings(store) if f.rule == "vault-token-with-other-policies"]
    assert [(f.subjects[0], f.subjects[1], f.details["new_policies"]) for f in found] == [
        (ids["parent"], ids["via_role"], [ids["extra_policy"]])
    ]


def test_response_wrapping_and_unwrap(openbao: OpenBao, tmp_path: Path) -> None:
    case, ids, root = _run(openbao, tmp_path, "wrapping")
    check.check_wrapping(case, ids, root)


@pytest.mark.parametrize("device", ["default", "elide"])
def test_kv_and_transit_mint_nothing(openbao: OpenBao, tmp_path: Path, device: str) -> None:
    case, ids, _ = _run(openbao, tmp_path, "secrets", device)
    check.check_secrets(case, ids)  # elide_list_responses: the count is still read


@pytest.mark.parametrize("device", ["default", "raw"])
def test_engine_credentials_with_their_ttls(openbao: OpenBao, tmp_path: Path, device: str) -> None:
    case, ids, root = _run(openbao, tmp_path, "engines", device)
    check.check_engines(case, ids, root, raw=device == "raw")


def test_raw_device_logs_clear_accessors(openbao: OpenBao, tmp_path: Path) -> None:
    # log_raw + hmac_accessor=false: the ids are the clear ones the HTTP API returned
    case, ids, root = _run(openbao, tmp_path, "tokens", "raw")
    assert not ids["child"].startswith("hmac-sha256:")
    check.check_tokens(case, ids, root)


def test_audit_hash_maps_clear_ids_to_the_log(openbao: OpenBao, tmp_path: Path) -> None:
    mark = openbao.mark()
    facts = scenarios.userpass(openbao)
    hashed = scenarios.audit_hash(openbao, "default", facts["accessor"])
    log = openbao.audit_since(mark, "default") + openbao.audit_since(openbao.mark(), "default")
    case = check.ingest_log(tmp_path, "hash.log", log)
    assert check.one_issue(case, hashed)["kind"] == "vault-token"
    # the sys/audit-hash call itself is an event that mints nothing
    after = openbao.mark()
    scenarios.audit_hash(openbao, "default", "anything")
    case = check.ingest_log(tmp_path / "h2", "hash2.log", openbao.audit_since(after, "default"))
    assert [r["target"] for r in case_rows(case, "SELECT target FROM events")] == [
        "sys/audit-hash/default"
    ]
    assert case_rows(case, "SELECT * FROM credential_issues") == []


def test_dev_server_bootstrap_is_no_lineage(openbao: OpenBao, tmp_path: Path) -> None:
    log = openbao.audit_since({name: 0 for name in openbao.audit_logs}, "default")
    case = check.ingest_log(tmp_path, "all.log", log)
    root = check.check_bootstrap(case)
    assert root == scenarios.audit_hash(
        openbao, "default", openbao.call("GET", "auth/token/lookup-self")["data"]["accessor"]
    )
