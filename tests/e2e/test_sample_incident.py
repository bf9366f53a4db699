"""The sample incident end to end, through the CLI: the answers written in docs/sample-incident.md.

One case is built per session with ``keytrail ingest`` (the README's first command;
``sample_ingest`` in tests/conftest.py), this module takes its own copy, and every test reads
it through ``keytrail.cli.main.main([...])``, parsing the one JSON document a ``--json``
command prints. Identifiers are the ones in the logs.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from keytrail.cli.main import main
from tests.conftest import sample_case

REPO = Path(__file__).resolve().parents[2]
INCIDENT = REPO / "sample_data" / "incident"
A, B = "418295730164", "730261958447"
MARIA, JPARK, OKAFOR = (
    "maria.chen@finco.example",
    "j.park@finco.example",
    "dev.okafor@finco.example",
)

VAULT_ENGINE_KEY = "AKIATXJNATFQP43ZUU2J"
SHARED_KEY = "AKIACGKP7XY67AEMFYZE"
SUPPORT_KEY = "AKIA6FHUI6DILMBYEZHZ"
STRONG_KEY = "ASIASRBIQ3HPD2MG57YG"  # 2026-03-09, access_key HMAC'd: name template only
INCIDENT_KEY = "ASIADKKHC6DWJIFTZP4G"  # 2026-03-10, access_key in plain text
EXPORTER_KEY = "AKIASXXYGSQE4J3DBZD7"
XACCT_KEY = "ASIA6RTBRNDMVQTY5OFJ"
BACKDOOR_KEY = "AKIAKS436WXXSPGUJ74N"
ORPHAN_KEY = "ASIACO5X7CQQTO3RCLLE"
LOGIN_ACCESSOR = "hmac-sha256:4b900e35553286dcc566cd4fdecb72892518917e0501ab2b9627be6ca30efa21"
CHILD_ACCESSOR = "hmac-sha256:6532b96ba16013f9f2db3671a1fd891e48e6590689b3a547851e9f21fecf71ab"


def run(*args: str) -> tuple[int, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(list(args))
    text = out.getvalue()
    return rc, (json.loads(text) if text.strip() else None)


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory, sample_ingest: tuple[Path, Any]) -> str:
    return str(sample_case(sample_ingest, tmp_path_factory.mktemp("sample")))


def bare(node: str) -> str:
    """``credential:AKIA…`` and ``AKIA…`` name the same node."""
    kind, sep, rest = node.partition(":")
    return (
        rest
        if sep
        and kind in {"credential", "agent", "human", "principal", "resource", "account", "event"}
        else node
    )


def test_ingest_counts_every_source_without_rejects(case: str) -> None:
    rc, info = run("info", case, "--json")
    assert rc == 0
    src = info["sources"]
    assert (src["cloudtrail"]["files"], src["cloudtrail"]["events"]) == (29, 141)
    assert (src["vault"]["files"], src["vault"]["events"]) == (
        1,
        52,
    )  # 104 lines, paired on request.id
    # 169 OTLP spans + 141 native lines + 18 MCP request/response pairs.
    assert (src["agent"]["files"], src["agent"]["events"]) == (4, 328)
    assert info["events"] == 521 and info["rejected"] == 0
    assert info["counts"]["inventory_agents"] == 4
    assert info["time_range"][0].startswith("2026-03-02T02:05") and info["time_range"][
        1
    ].startswith("2026-03-10T15")
    assert all(e["status"] == "loaded" for e in info["evidence"])


def test_issuing_events_are_recorded_for_every_minted_credential(case: str) -> None:
    rc, rows = run(
        "sql",
        case,
        "SELECT credential_id, parent_credential_id, kind FROM credential_issues",
        "--json",
    )
    assert rc == 0
    issued = {(r["credential_id"], r["parent_credential_id"]) for r in rows}
    assert (XACCT_KEY, INCIDENT_KEY) in issued  # role chaining, cross-account
    assert (BACKDOOR_KEY, INCIDENT_KEY) in issued  # CreateAccessKey
    assert (EXPORTER_KEY, VAULT_ENGINE_KEY) in issued  # Vault's own CreateAccessKey
    assert (CHILD_ACCESSOR, LOGIN_ACCESSOR) in issued  # auth/token/create
    assert (STRONG_KEY, VAULT_ENGINE_KEY) in issued
    leases = {r["credential_id"] for r in rows if r["kind"] == "vault-lease"}
    assert "aws/creds/ledger-exporter/M7HqtHrAoA9vPcsGRAxV3Pre" in leases
    assert (
        len({r["credential_id"] for r in rows if r["kind"] == "vault-token"}) == 19
    )  # 9 logins, 9 children, 1 admin


# ---------------------------------------------------------------- graph: credentials, blast radius


def _items(doc: Any, key: str) -> list[Any]:
    return doc[key] if isinstance(doc, dict) else doc


def _ids(values: list[Any], *keys: str) -> set[str]:
    out = set()
    for v in values:
        if isinstance(v, dict):
            v = next((v[k] for k in keys if v.get(k)), None)
        if isinstance(v, str):
            out.add(bare(v))
    return out


def test_credentials_are_ranked_with_the_chain_above_its_parts(case: str) -> None:
    rc, doc = run("credentials", case, "--json")
    assert rc == 0
    ranked = _items(doc, "credentials")
    own_terms = ("findings", "long_lived", "origin_unknown")
    score = {
        r["credential"]: sum(t["points"] for t in r["score_terms"] if t["name"] not in own_terms)
        for r in ranked
    }
    for key in (
        VAULT_ENGINE_KEY,
        SHARED_KEY,
        SUPPORT_KEY,
        INCIDENT_KEY,
        XACCT_KEY,
        BACKDOOR_KEY,
        EXPORTER_KEY,
        ORPHAN_KEY,
        LOGIN_ACCESSOR,
    ):
        assert key in score, key
    # D(c) of the incident key holds the cross-account key and the backdoor: its reach is not lower.
    assert score[INCIDENT_KEY] >= max(score[XACCT_KEY], score[BACKDOOR_KEY])
    assert score[LOGIN_ACCESSOR] >= score[INCIDENT_KEY]
    # The findings term lifts the credentials the attacker used: the backdoor key is in the top 3
    # (issue 13, item 9; docs/blast-radius.md), and nobody in the evidence holds it.
    top = [r["credential"] for r in ranked[:3]]
    assert BACKDOOR_KEY in top, top
    assert next(r for r in ranked if r["credential"] == BACKDOOR_KEY)["holder"] == "unknown"
    assert [r["score"] for r in ranked] == sorted((r["score"] for r in ranked), reverse=True)
    by_id = {r["credential"]: r for r in ranked}
    assert set(by_id[SHARED_KEY]["agents"]) >= {"invoice-triage", "vendor-sync"}


def test_blast_radius_of_the_incident_sts_key(case: str) -> None:
    rc, doc = run("blast", case, INCIDENT_KEY, "--json")
    assert rc == 0 and doc["credential"] == INCIDENT_KEY
    assert _ids(doc["derived_credentials"], "credential", "id") >= {XACCT_KEY, BACKDOOR_KEY}
    assert _ids(doc["accounts"], "account", "id") >= {A, B}
    resources = {r["resource"]: r for r in doc["resources"]}
    assert (
        "arn:aws:s3:::finco-analytics-exports/customers/2026-03/part-00004.snappy.parquet"
        in resources
    )
    assert (
        "arn:aws:s3:::finco-ledger-prod/exports/vendor-bank-details.csv" in resources
    )  # read from outside
    assert "arn:aws:s3:::finco-ledger-prod/inbound-invoices/2026/03/10/INV-88412.pdf" in resources
    assert doc["score"] > 0 and doc["score_terms"]
    # 14 denied recon calls + the outside GetSecretValue; the chain minted two keys.
    assert doc["counts"]["denied"] == 15 and doc["counts"]["credentials_minted"] == 2
    assert set(doc["services"]) >= {
        "s3",
        "sts",
        "iam",
        "glue",
        "athena",
        "organizations",
        "kms",
        "secretsmanager",
    }


def test_blast_radius_of_the_vault_login_reaches_both_accounts_and_the_secrets(case: str) -> None:
    rc, doc = run("blast", case, LOGIN_ACCESSOR, "--json")
    assert rc == 0
    derived = _ids(doc["derived_credentials"], "credential", "id")
    assert derived >= {CHILD_ACCESSOR, INCIDENT_KEY, EXPORTER_KEY, XACCT_KEY, BACKDOOR_KEY}
    assert STRONG_KEY not in derived  # yesterday's key belongs to yesterday's login
    # child token, two leases, four AWS keys; 15 AWS denials + 5 Vault "permission denied".
    assert doc["counts"]["credentials_minted"] == 7 and doc["counts"]["denied"] == 20
    assert _ids(doc["accounts"], "account", "id") >= {A, B}
    resources = {r["resource"] for r in doc["resources"]}
    assert {
        "vault:secret/data/hr/payroll-db",
        "vault:secret/data/payments/stripe",
        "arn:aws:s3:::finco-ledger-exports/tmp/recon-dump-20260310.tar.gz",
    } <= resources


def test_blast_radius_through_the_name_template_is_strong_only(case: str) -> None:
    login_0309 = "hmac-sha256:668bbf32963303e631ac724ec96636d4165a48af14935625f0342e9f6d4090b0"
    rc, doc = run("blast", case, login_0309, "--json")
    assert rc == 0 and STRONG_KEY in _ids(doc["derived_credentials"], "credential", "id")
    rc, doc = run("blast", case, login_0309, "--min-confidence", "proven", "--json")
    assert rc == 0 and STRONG_KEY not in _ids(doc["derived_credentials"], "credential", "id")


def test_blast_radius_of_the_shared_key_names_both_agents(case: str) -> None:
    rc, doc = run("blast", case, SHARED_KEY, "--json")
    assert rc == 0
    assert _ids(doc["agents"], "agent", "id") >= {"invoice-triage", "vendor-sync"}
    assert not {
        k
        for k in _ids(doc["derived_credentials"], "credential", "id")
        if k.startswith(("AKIA", "ASIA"))
    }
    buckets = {
        r["resource"].split("/")[0]
        for r in doc["resources"]
        if r["resource"].startswith("arn:aws:s3")
    }
    assert {"arn:aws:s3:::finco-invoices-inbox", "arn:aws:s3:::finco-vendor-master"} <= buckets


def test_blast_of_an_unknown_credential_exits_1(case: str) -> None:
    rc, _ = run("blast", case, "AKIAZZZZZZZZZZZZZZZZ", "--json")
    assert rc == 1


# ---------------------------------------------------------------- delegation traces


def _trace(case: str, event_id: str) -> tuple[dict[str, Any], set[str]]:
    rc, doc = run("trace", case, event_id, "--json")
    assert rc == 0, event_id
    return doc, {bare(link["id"]) for link in doc["chain"]}


def test_trace_cross_account_event_back_to_maria(case: str) -> None:
    doc, ids = _trace(case, "157d6db7-a815-40e2-a55d-547d0c9e1e7c")
    assert {XACCT_KEY, INCIDENT_KEY, "ledger-reconciler", MARIA} <= ids
    kinds = [link["kind"] for link in doc["chain"]]
    assert kinds.index("human") < kinds.index("agent")
    assert all(link["evidence"] for link in doc["chain"] if link["kind"] == "credential")


def test_trace_outside_use_of_the_backdoor_key(case: str) -> None:
    _, ids = _trace(case, "5a63bdde-a774-4c01-85af-2c1a8b39de5b")
    assert {BACKDOOR_KEY, INCIDENT_KEY, "ledger-reconciler"} <= ids


def test_trace_of_a_template_matched_key_is_strong(case: str) -> None:
    doc, ids = _trace(case, "da964f93-6e30-4563-bec8-b24c6788f3d2")
    assert {STRONG_KEY, "ledger-reconciler"} <= ids
    link = next(link for link in doc["chain"] if bare(link["id"]) == STRONG_KEY)
    # The key's Vault parent is known only by the session-name template: strong, never proven.
    assert link["confidence"] == "strong"
    assert (
        "hmac-sha256:3ae37ecf668173f6922112c249c167fa67bbbb550b2f1a30aa698c2f99a79fd0" in ids
    )  # 03-09 child


def test_trace_of_the_time_correlated_tool_call_is_inferred(case: str) -> None:
    doc, ids = _trace(case, "c5c317cb-b662-4884-b6b7-88e9b06782e5")
    assert {SUPPORT_KEY, "support-copilot", OKAFOR} <= ids
    agent = next(link for link in doc["chain"] if bare(link["id"]) == "support-copilot")
    assert agent["confidence"] == "inferred"


def test_trace_of_the_orphan_session_names_its_gaps(case: str) -> None:
    doc, ids = _trace(case, "01d262d7-a934-4171-afdf-98d5434f2761")
    assert ORPHAN_KEY in ids
    assert not {link["kind"] for link in doc["chain"]} & {"agent", "human"}
    assert doc["gaps"]


def test_trace_of_the_proven_exporter_key_runs_through_the_vault_chain(case: str) -> None:
    doc, _ = _trace(case, "69f934dd-35ab-4ad3-a7de-9a71ef86bd49")
    chain = [bare(link["id"]) for link in doc["chain"]]
    expected = [
        MARIA,
        "ledger-reconciler",
        LOGIN_ACCESSOR,
        CHILD_ACCESSOR,
        "aws/creds/ledger-exporter/M7HqtHrAoA9vPcsGRAxV3Pre",
        EXPORTER_KEY,
    ]
    assert chain[: len(expected)] == expected
    assert all(link["confidence"] == "proven" for link in doc["chain"][2:]) and not doc["gaps"]


def test_trace_of_the_shared_key_picks_the_agent_by_time_only(case: str) -> None:
    doc, ids = _trace(case, "088baecd-f6ac-4f6e-a61d-6eb1252da81e")  # vendor-sync, after retirement
    assert SHARED_KEY in ids and "invoice-triage" not in ids
    agent = next(link for link in doc["chain"] if link["kind"] == "agent")
    # Only vendor-sync's log names the key at that time: chosen by time, so inferred, and said so.
    assert bare(agent["id"]) == "vendor-sync" and agent["confidence"] == "inferred"
    assert "human" not in {link["kind"] for link in doc["chain"]}
    assert any("vendor-sync" in gap for gap in doc["gaps"])


# ---------------------------------------------------------------- findings


def _findings(case: str) -> list[dict[str, Any]]:
    rc, doc = run("findings", case, "--json")
    assert rc in (0, 1)
    return list(_items(doc, "findings"))


def _about(
    findings: list[dict[str, Any]], subject: str, framework: str | None = None
) -> list[dict[str, Any]]:
    return [
        f
        for f in findings
        if subject in {bare(s) for s in f["subjects"]}
        and (framework is None or any(framework in x for x in f["frameworks"]))
    ]


def test_every_finding_has_evidence_and_a_level(case: str) -> None:
    findings = _findings(case)
    assert findings
    levels = {"informational", "low", "medium", "high", "critical"}
    for f in findings:
        assert f["evidence"] and f["level"] in levels and f["recommendation"], f["rule"]


def test_expected_findings_by_rule(case: str) -> None:
    findings = _findings(case)
    assert _about(findings, SHARED_KEY, "NHI9"), (
        "credential shared by invoice-triage and vendor-sync"
    )
    assert _about(findings, "vendor-sync", "NHI1"), "vendor-sync acted after its retirement"
    assert _about(findings, "invoice-triage", "NHI10") or _about(
        findings, f"arn:aws:iam::{A}:user/svc-invoice-triage", "NHI10"
    ), "console login as the agent"
    assert _about(findings, ORPHAN_KEY), "actions no agent or human can be tied to"
    assert _about(findings, "ledger-reconciler", "ASI02"), (
        "scope drift of the reconciler on 2026-03-10"
    )
    assert any(len(f["evidence"]) >= 14 for f in _about(findings, INCIDENT_KEY)), (
        "denied recon burst"
    )
    assert _about(findings, CHILD_ACCESSOR), "secret sprawl by the 2026-03-10 child token"
    assert _about(findings, XACCT_KEY, "NHI8"), "one chain in two accounts"
    assert _about(findings, BACKDOOR_KEY), "CreateAccessKey backdoor used with the AWS CLI"


def test_report_of_the_backdoor_chain(case: str, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    rc, _ = run("report", case, "-o", str(out), "--format", "json", "--credential", INCIDENT_KEY)
    assert rc == 0
    doc = json.loads(out.read_text())
    assert [c["credential"] for c in doc["credentials"]] == [INCIDENT_KEY]
    assert doc["findings"]["items"] and all(f["evidence"] for f in doc["findings"]["items"])
    assert BACKDOOR_KEY in out.read_text() and XACCT_KEY in out.read_text()
