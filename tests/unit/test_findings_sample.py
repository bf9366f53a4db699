"""The sample incident's expected findings (docs/sample-incident.md, "Findings") from a real ingest."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from keytrail.cli.main import main
from tests.conftest import sample_case

INCIDENT = Path(__file__).resolve().parents[2] / "sample_data" / "incident"
SHARED_KEY = "AKIACGKP7XY67AEMFYZE"
SUPPORT_KEY = "AKIA6FHUI6DILMBYEZHZ"
INCIDENT_KEY = "ASIADKKHC6DWJIFTZP4G"
BACKDOOR_KEY = "AKIAKS436WXXSPGUJ74N"
ORPHAN_KEY = "ASIACO5X7CQQTO3RCLLE"
CHILD_ACCESSOR = "hmac-sha256:6532b96ba16013f9f2db3671a1fd891e48e6590689b3a547851e9f21fecf71ab"


@pytest.fixture(scope="module")
def findings(
    tmp_path_factory: pytest.TempPathFactory, sample_ingest: tuple[Path, Any]
) -> list[dict[str, Any]]:
    case = str(sample_case(sample_ingest, tmp_path_factory.mktemp("sample")))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["findings", case, "--json"]) == 0
    doc = json.loads(out.getvalue())
    assert sum(doc["counts"].values()) == len(doc["findings"])
    return list(doc["findings"])


def pick(findings: list[dict[str, Any]], rule: str, subject: str) -> dict[str, Any]:
    hits = [f for f in findings if f["rule"] == rule and subject in f["subjects"]]
    assert hits, f"no {rule} finding about {subject}"
    return hits[0]


def test_every_finding_cites_evidence(findings: list[dict[str, Any]]) -> None:
    for f in findings:
        assert f["evidence"] and f["evidence_count"] >= len(f["evidence"]) and f["recommendation"]


def test_reuse_and_long_lived_keys(findings: list[dict[str, Any]]) -> None:
    shared = pick(findings, "credential-shared-by-agents", SHARED_KEY)
    assert {"invoice-triage", "vendor-sync"} <= set(shared["subjects"])
    hosts = pick(findings, "credential-used-from-many-hosts", SHARED_KEY)
    assert set(hosts["details"]["source_ips"]) >= {"198.51.100.21", "198.51.100.37"}
    pick(findings, "long-term-key-used-by-agent", SHARED_KEY)
    assert "inferred" in pick(findings, "long-term-key-used-by-agent", SUPPORT_KEY)["description"]


def test_offboarding(findings: list[dict[str, Any]]) -> None:
    f = pick(findings, "agent-active-after-retirement", "vendor-sync")
    assert {"088baecd-f6ac-4f6e-a61d-6eb1252da81e", "88ae1802-4528-493b-abcd-210d2c62678d"} <= set(
        f["evidence"]
    )
    assert f["level"] == "critical"


def test_human_use_of_agent_identity(findings: list[dict[str, Any]]) -> None:
    f = pick(
        findings, "console-login-as-agent", "arn:aws:iam::418295730164:user/svc-invoice-triage"
    )
    assert f["evidence"] == ["9255b35f-6a91-4cbc-ae83-1bca0a2618f6"]
    assert pick(findings, "browser-on-agent-credential", "invoice-triage")["level"] == "high"


def test_privilege_growth(findings: list[dict[str, Any]]) -> None:
    minted = pick(findings, "long-term-credential-minted", BACKDOOR_KEY)
    assert minted["subjects"][0] == INCIDENT_KEY and minted["evidence"] == [
        "662cb91b-d715-4034-9fd3-f3beb7c79ef2"
    ]
    assert "--access-key-id AKIAKS436WXXSPGUJ74N --status Inactive" in minted["recommendation"]
    assert (
        "e703ad81-e033-460b-9ea6-1bbf6628000a"
        in pick(findings, "iam-or-policy-change", ORPHAN_KEY)["evidence"]
    )


def test_environment_crossing(findings: list[dict[str, Any]]) -> None:
    f = pick(findings, "environment-crossing", INCIDENT_KEY)
    assert f["subjects"][0] == INCIDENT_KEY and f["details"]["accounts"] == [
        "418295730164",
        "730261958447",
    ]


def test_unattributed(findings: list[dict[str, Any]]) -> None:
    assert (
        "01d262d7-a934-4171-afdf-98d5434f2761"
        in pick(findings, "unattributed-actions", ORPHAN_KEY)["evidence"]
    )
    assert (
        "5a63bdde-a774-4c01-85af-2c1a8b39de5b"
        in pick(findings, "unattributed-actions", BACKDOOR_KEY)["evidence"]
    )
    pick(findings, "orphan-credential", BACKDOOR_KEY)


def test_drift_recon_and_sprawl(findings: list[dict[str, Any]]) -> None:
    drift = pick(findings, "scope-drift", "ledger-reconciler")
    assert {"iam", "organizations", "glue", "athena"} <= set(
        drift["details"]["departed"]["services"]
    )
    burst = pick(findings, "denied-burst", INCIDENT_KEY)
    assert burst["evidence_count"] == 14
    sprawl = pick(findings, "secret-sprawl", CHILD_ACCESSOR)
    assert sprawl["details"]["denied_only"] == 5
    assert "vault:secret/data/hr/payroll-db" in sprawl["details"]["secrets"]


def test_quiet_where_nothing_is_wrong(findings: list[dict[str, Any]]) -> None:
    # j.park's SSO admin session is a person in their own session: not an NHI finding.
    assert not [
        f
        for f in findings
        if f["rule"] in ("admin-or-root-use", "iam-or-policy-change")
        and "ASIAPWBXYZZP45VEIFM4" in f["subjects"]
    ]
    assert not [
        f for f in findings if f["rule"] == "scope-drift" and f["subjects"] != ["ledger-reconciler"]
    ]


VAULT_ENGINE_KEY = "AKIATXJNATFQP43ZUU2J"
EXPORTER_KEY = "AKIASXXYGSQE4J3DBZD7"
CONSOLE_KEY = "ASIAKZXHRBTR3FDXXBKW"
SSO_KEY = "ASIAPWBXYZZP45VEIFM4"
SPRAWL_ROOT = "hmac-sha256:4b900e35553286dcc566cd4fdecb72892518917e0501ab2b9627be6ca30efa21"

#: docs/sample-incident.md, "Findings (keytrail findings), by rule": (rule, level, first subject),
#: one row per finding - a duplicate or a missing finding fails.
EXPECTED_TABLE = sorted(
    [
        ("agent-active-after-retirement", "critical", "vendor-sync"),
        ("credential-used-after-agent-retired", "critical", SHARED_KEY),
        ("credential-shared-by-agents", "high", SHARED_KEY),
        ("long-term-key-used-by-agent", "high", SHARED_KEY),
        ("long-term-key-used-by-agent", "high", SUPPORT_KEY),
        ("long-term-key-used-by-agent", "high", EXPORTER_KEY),
        ("console-login-as-agent", "high", "arn:aws:iam::418295730164:user/svc-invoice-triage"),
        ("browser-on-agent-credential", "high", CONSOLE_KEY),
        ("long-term-credential-minted", "high", VAULT_ENGINE_KEY),
        ("long-term-credential-minted", "high", INCIDENT_KEY),
        ("iam-or-policy-change", "high", INCIDENT_KEY),
        ("iam-or-policy-change", "medium", VAULT_ENGINE_KEY),
        ("iam-or-policy-change", "medium", ORPHAN_KEY),
        ("credential-active-too-long", "medium", SHARED_KEY),
        ("credential-used-from-many-hosts", "medium", SHARED_KEY),
        ("secret-sprawl", "medium", SPRAWL_ROOT),
        ("environment-crossing", "medium", INCIDENT_KEY),
        ("scope-drift", "medium", "ledger-reconciler"),
        ("denied-burst", "medium", INCIDENT_KEY),
        ("unattributed-actions", "medium", ORPHAN_KEY),
        ("unattributed-actions", "medium", BACKDOOR_KEY),
        ("unattributed-actions", "medium", VAULT_ENGINE_KEY),
        ("orphan-credential", "medium", ORPHAN_KEY),
        ("orphan-credential", "medium", BACKDOOR_KEY),
        ("credential-used-across-sessions", "low", SHARED_KEY),
        ("interactive-tool-on-agent-credential", "low", BACKDOOR_KEY),
    ]
)


def test_findings_are_exactly_the_documented_table(findings: list[dict[str, Any]]) -> None:
    """The governance rules' findings (the catalog); the attack rules are checked below."""
    from keytrail.analysis.findings.catalog import RULES

    assert (
        sorted((f["rule"], f["level"], f["subjects"][0]) for f in findings if f["rule"] in RULES)
        == EXPECTED_TABLE
    )


def test_attack_rules_on_the_incident(findings: list[dict[str, Any]]) -> None:
    """The backdoor key the incident session created is seen being used from the outside address, and the
    community Sigma rules name their author and licence with each match."""
    f = pick(findings, "nhi-created-credential-used-elsewhere", BACKDOOR_KEY)
    assert f["level"] == "high" and "203.0.113.77" in f["description"]
    sigma = [f for f in findings if f["rule"].startswith("sigma:")]
    assert sigma and all(
        "SigmaHQ (DRL 1.1)" in f["description"] and f["details"]["author"] for f in sigma
    )
    pick(
        findings, "sigma:0a5177f4-6ca9-44c2-aacf-d3f3d8b6e4d2", INCIDENT_KEY
    )  # AWS IAM Backdoor Users Keys


def test_shared_key_of_the_retired_agent(findings: list[dict[str, Any]]) -> None:
    f = pick(findings, "credential-used-after-agent-retired", SHARED_KEY)
    assert (
        f["subjects"] == [SHARED_KEY, "vendor-sync", "invoice-triage"] and f["level"] == "critical"
    )
    assert f["evidence"] == [
        "088baecd-f6ac-4f6e-a61d-6eb1252da81e",
        "88ae1802-4528-493b-abcd-210d2c62678d",
    ]


def test_backdoor_key_driven_from_outside(findings: list[dict[str, Any]]) -> None:
    f = pick(findings, "interactive-tool-on-agent-credential", BACKDOOR_KEY)
    assert f["subjects"] == [BACKDOOR_KEY, "ledger-reconciler", INCIDENT_KEY]
    assert "from 203.0.113.77" in f["description"] and f["evidence_count"] == 6
    assert "5a63bdde-a774-4c01-85af-2c1a8b39de5b" in f["evidence"]


def test_exporter_key_minted_once(findings: list[dict[str, Any]]) -> None:
    [f] = [
        f
        for f in findings
        if f["rule"] == "long-term-credential-minted" and EXPORTER_KEY in f["subjects"]
    ]
    assert f["subjects"][0] == VAULT_ENGINE_KEY
    assert "aws/creds/ledger-exporter/M7HqtHrAoA9vPcsGRAxV3Pre" in f["subjects"]
    assert set(f["evidence"]) == {
        "88ef1cf9-70ec-428b-b850-8ca1bcaadb50",
        "5d23719b-e75a-4df8-8fff-94102eb1dd50",
    }


def test_console_session_containment_names_the_iam_user(findings: list[dict[str, Any]]) -> None:
    reco = pick(findings, "browser-on-agent-credential", CONSOLE_KEY)["recommendation"]
    assert "aws iam delete-login-profile --user-name svc-invoice-triage" in reco
    assert "revoke active sessions of role" not in reco


def test_people_in_their_own_sessions_and_agent_held_keys_are_not_orphans(
    findings: list[dict[str, Any]],
) -> None:
    from keytrail.analysis.findings.catalog import RULES

    assert not [f for f in findings if SSO_KEY in f["subjects"] and f["rule"] in RULES]
    assert not [
        f
        for f in findings
        if f["rule"] in ("orphan-credential", "unattributed-actions")
        and SUPPORT_KEY in f["subjects"]
    ]
