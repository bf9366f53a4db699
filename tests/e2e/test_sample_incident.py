"""The sample incident end to end, through the CLI: the answers written in docs/sample-incident.md.

One case is built per module with ``keytrail ingest`` (the README's first command) and
every test reads it through ``keytrail.cli.main.main([...])``, parsing the one JSON
document a ``--json`` command prints. Identifiers are the ones in the logs.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from keytrail.cli.main import main

REPO = Path(__file__).resolve().parents[2]
INCIDENT = REPO / "sample_data" / "incident"
A, B = "418295730164", "730261958447"
MARIA, JPARK, OKAFOR = "maria.chen@finco.example", "j.park@finco.example", "dev.okafor@finco.example"

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
def case(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("sample") / "demo.duckdb")
    rc, summary = run("ingest", path, str(INCIDENT), "--inventory", str(INCIDENT / "inventory.toml"), "-q", "--json")
    assert rc == 0, summary
    return path


def bare(node: str) -> str:
    """``credential:AKIA…`` and ``AKIA…`` name the same node."""
    kind, sep, rest = node.partition(":")
    return rest if sep and kind in {"credential", "agent", "human", "principal", "resource", "account", "event"} \
        else node


def test_ingest_counts_every_source_without_rejects(case: str) -> None:
    rc, info = run("info", case, "--json")
    assert rc == 0
    src = info["sources"]
    assert (src["cloudtrail"]["files"], src["cloudtrail"]["events"]) == (29, 141)
    assert (src["vault"]["files"], src["vault"]["events"]) == (1, 52)  # 104 lines, paired on request.id
    # 169 OTLP spans + 141 native lines + 18 MCP request/response pairs.
    assert (src["agent"]["files"], src["agent"]["events"]) == (4, 328)
    assert info["events"] == 521 and info["rejected"] == 0
    assert info["counts"]["inventory_agents"] == 4
    assert info["time_range"][0].startswith("2026-03-02T02:05") and info["time_range"][1].startswith("2026-03-10T15")
    assert all(e["status"] == "loaded" for e in info["evidence"])


def test_issuing_events_are_recorded_for_every_minted_credential(case: str) -> None:
    rc, rows = run("sql", case, "SELECT credential_id, parent_credential_id, kind FROM credential_issues", "--json")
    assert rc == 0
    issued = {(r["credential_id"], r["parent_credential_id"]) for r in rows}
    assert (XACCT_KEY, INCIDENT_KEY) in issued  # role chaining, cross-account
    assert (BACKDOOR_KEY, INCIDENT_KEY) in issued  # CreateAccessKey
    assert (EXPORTER_KEY, VAULT_ENGINE_KEY) in issued  # Vault's own CreateAccessKey
    assert (CHILD_ACCESSOR, LOGIN_ACCESSOR) in issued  # auth/token/create
    assert (STRONG_KEY, VAULT_ENGINE_KEY) in issued
    leases = {r["credential_id"] for r in rows if r["kind"] == "vault-lease"}
    assert "aws/creds/ledger-exporter/M7HqtHrAoA9vPcsGRAxV3Pre" in leases
    assert len({r["credential_id"] for r in rows if r["kind"] == "vault-token"}) == 19  # 9 logins, 9 children, 1 admin
