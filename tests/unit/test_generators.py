"""The generators write real formats, deterministically, and the committed sample is their output.

These tests need no adapter: they check the files against the format rules the adapters
rely on (identifier shapes, S3 delivery layout, Vault request/response pairing and HMAC
form, OTLP file-exporter lines, the MCP and native JSONL wrappers, the inventory).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import re
import sys
import tomllib
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_data" / "incident"

KEY_RE = re.compile(r"^A(KIA|SIA)[A-Z2-7]{16}$")
HMAC_RE = re.compile(r"^hmac-sha256:[0-9a-f]{64}$")
CT_NAME_RE = re.compile(
    r"^AWSLogs/(\d{12})/CloudTrail/([a-z]{2}-[a-z]+-\d)/(\d{4})/(\d{2})/(\d{2})/"
    r"\1_CloudTrail_\2_\3\4\5T\d{4}Z_[A-Za-z0-9]{16}\.json\.gz$"
)


def _load(name: str) -> ModuleType:
    path = REPO / "scripts" / f"{name}.py"
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("incident") / "incident"
    story = _load("gen_incident").Story()
    story.tell()
    return out, story.write(out)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _ct_records(root: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in sorted((root / "AWSLogs").rglob("*.json.gz")):
        out += json.loads(gzip.decompress(p.read_bytes()))["Records"]
    return out


def test_committed_sample_is_the_generators_output(generated: tuple[Path, dict[str, Any]]) -> None:
    out, _ = generated
    committed, fresh = _files(SAMPLE), _files(out)
    assert sorted(committed) == sorted(fresh), "run: python scripts/gen_incident.py"
    changed = [name for name in fresh if fresh[name] != committed[name]]
    assert changed == [], "run: python scripts/gen_incident.py"
    assert sum(len(b) for b in committed.values()) < 5 * 1024 * 1024


def test_cloudtrail_layout_and_identifiers(generated: tuple[Path, dict[str, Any]]) -> None:
    out, answers = generated
    names = [str(p.relative_to(out)) for p in (out / "AWSLogs").rglob("*.json.gz")]
    assert names and all(CT_NAME_RE.match(n) for n in names), [
        n for n in names if not CT_NAME_RE.match(n)
    ]
    assert {CT_NAME_RE.match(n).group(1) for n in names} == {"418295730164", "730261958447"}  # type: ignore[union-attr]
    records = _ct_records(out)
    assert len(records) == answers["counts"]["cloudtrail_records"]
    assert len({r["eventID"] for r in records}) == len(records)
    for r in records:
        assert float(r["eventVersion"]) >= 1.08 and r["eventCategory"] in ("Management", "Data")
        assert re.fullmatch(r"\d{12}", r["recipientAccountId"])
        ui = r["userIdentity"]
        if "accessKeyId" in ui:
            assert KEY_RE.match(ui["accessKeyId"]), ui
        if ui["type"] == "AssumedRole":
            role = ui["sessionContext"]["sessionIssuer"]["arn"]
            assert re.fullmatch(r"arn:aws:iam::\d{12}:role/[\w+=,.@-]+", role)
            assert ui["arn"].startswith(f"arn:aws:sts::{ui['accountId']}:assumed-role/")
            assert ui["accessKeyId"].startswith("ASIA")
        creds = (r.get("responseElements") or {}).get("credentials")
        if creds:
            assert creds["accessKeyId"].startswith("ASIA") and KEY_RE.match(creds["accessKeyId"])
    # Cross-account role chaining: two copies, one sharedEventID, one per account.
    shared = [r for r in records if r.get("sharedEventID") == answers["xacct_shared_event_id"]]
    assert sorted(r["recipientAccountId"] for r in shared) == ["418295730164", "730261958447"]
    # Vault's session names follow its template; the unix time is the issuance second.
    names_ = [
        r["requestParameters"]["roleSessionName"]
        for r in records
        if r["eventName"] == "AssumeRole"
        and r["userIdentity"].get("userName") == "vault-aws-engine"
    ]
    assert len(names_) == 9
    assert all(
        re.fullmatch(r"vault-token-ledger-batch-reconciler-\d{10}-[A-Za-z0-9]{17}", n)
        for n in names_
    )


def test_vault_audit_pairs_and_hmacs(generated: tuple[Path, dict[str, Any]]) -> None:
    out, answers = generated
    entries = [
        json.loads(line) for line in (out / "vault" / "vault_audit.log").read_text().splitlines()
    ]
    kinds = Counter(e["type"] for e in entries)
    assert kinds["request"] == kinds["response"] == answers["counts"]["vault_requests"]
    by_id: dict[str, list[str]] = {}
    for e in entries:
        by_id.setdefault(e["request"]["id"], []).append(e["type"])
        assert e["time"].endswith("Z")
        if "accessor" in e["auth"]:
            assert HMAC_RE.match(e["auth"]["accessor"])
        if "client_token_accessor" in e["request"]:
            assert HMAC_RE.match(e["request"]["client_token_accessor"])
    assert all(v == ["request", "response"] for v in by_id.values())
    responses = {e["request"]["id"]: e for e in entries if e["type"] == "response"}
    # Same token -> same accessor HMAC everywhere; login response: top-level auth is the new token.
    login = responses[answers["incident_login_request_id"]]
    assert login["request"]["path"] == "auth/approle/login"
    assert (
        login["auth"]["accessor"]
        == login["response"]["auth"]["accessor"]
        == answers["incident_login_accessor"]
    )
    create = responses[answers["incident_create_request_id"]]
    assert create["auth"]["accessor"] == answers["incident_login_accessor"]
    assert create["response"]["auth"]["accessor"] == answers["incident_child_accessor"]
    # Tuned mount: the access key is plain text; before the tune it is an HMAC.
    sts = responses[answers["incident_sts_request_id"]]
    assert sts["response"]["data"]["access_key"] == answers["incident_key"]
    assert HMAC_RE.match(sts["response"]["data"]["secret_key"])
    strong = responses[answers["strong_sts_request_id"]]
    assert HMAC_RE.match(strong["response"]["data"]["access_key"])
    assert strong["response"]["secret"]["lease_id"].startswith("aws/sts/reconciler/")
    denied = [e for e in entries if e.get("error")]
    assert len(denied) == 2 * sum(1 for _, ok in _load("gen_incident").SPRAWL[1:] if not ok)


def test_agent_logs_and_inventory(generated: tuple[Path, dict[str, Any]]) -> None:
    out, answers = generated
    spans = []
    for line in (out / "agents" / "otel" / "traces.jsonl").read_text().splitlines():
        doc = json.loads(line)
        for rs in doc["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                spans += ss["spans"]
    assert len(spans) == answers["counts"]["otlp_spans"]
    attrs = [{a["key"]: next(iter(a["value"].values())) for a in s["attributes"]} for s in spans]
    assert all(
        re.fullmatch(r"[0-9a-f]{32}", s["traceId"]) and re.fullmatch(r"[0-9a-f]{16}", s["spanId"])
        for s in spans
    )
    assert {a["gen_ai.operation.name"] for a in attrs} == {"invoke_agent", "chat", "execute_tool"}
    tool_calls = [
        a
        for a in attrs
        if a.get("gen_ai.tool.name") == "s3_get_object"
        and a["gen_ai.agent.id"] == "support-copilot"
    ]
    assert len(tool_calls) == 3 and all(
        "Bucket" in json.loads(a["gen_ai.tool.call.arguments"]) for a in tool_calls
    )
    mcp = [
        json.loads(line)
        for line in (out / "agents" / "mcp" / "support-copilot-mcp.jsonl").read_text().splitlines()
    ]
    assert all(
        set(m) == {"time", "direction", "session", "server", "client", "user", "message"}
        for m in mcp
    )
    assert all(m["message"]["jsonrpc"] == "2.0" for m in mcp)
    assert any(m["message"].get("method") == "tools/call" for m in mcp)
    ops = {"tool_call", "llm_call", "credential_use", "login", "delegation"}
    for f in (out / "agents" / "native").glob("*.jsonl"):
        for line in f.read_text().splitlines():
            row = json.loads(line)
            assert row["operation"] in ops and row["agent_id"] and row["time"].endswith("Z")
    inv = tomllib.loads((out / "inventory.toml").read_text())
    agents = {a["id"]: a for a in inv["agents"]}
    assert set(agents) == {"ledger-reconciler", "invoice-triage", "vendor-sync", "support-copilot"}
    assert (
        "retired" in agents["vendor-sync"]
        and "vault:approle/ledger-reconciler" in agents["ledger-reconciler"]["identities"]
    )


def test_scale_generator_is_deterministic_and_sized(tmp_path: Path) -> None:
    gen = _load("gen_scale")
    a = gen.generate(12_000, tmp_path / "a", seed=3)
    b = gen.generate(12_000, tmp_path / "b", seed=3)
    assert a == b and _files(tmp_path / "a") == _files(tmp_path / "b")
    records_written = (
        a["cloudtrail_records"]
        + a["vault_lines"]
        + a["agent_lines"]
        + a["otlp_spans"]
        + a["mcp_lines"]
    )
    assert records_written == pytest.approx(12_000, rel=0.02)
    assert min(a["agent_lines"], a["otlp_spans"], a["mcp_lines"]) > 0
    records = _ct_records(tmp_path / "a")
    assert len(records) == a["cloudtrail_records"] and len({r["eventID"] for r in records}) == len(
        records
    )
    minted = {
        r["responseElements"]["credentials"]["accessKeyId"]
        for r in records
        if r["eventName"] == "AssumeRole"
    }
    used = {
        r["userIdentity"]["accessKeyId"]
        for r in records
        if r["userIdentity"]["type"] == "AssumedRole"
    }
    assert used <= minted and len(minted) == a["credentials_minted"]
    for p in (tmp_path / "a" / "AWSLogs").rglob("*.json.gz"):
        assert CT_NAME_RE.match(str(p.relative_to(tmp_path / "a")))
    vault = (tmp_path / "a" / "vault" / "vault_audit.log").read_text().splitlines()
    assert len(vault) == a["vault_lines"] and all(
        json.loads(v)["type"] in ("request", "response") for v in vault
    )
    assert gen.generate(12_000, tmp_path / "c", seed=4) != a or _files(tmp_path / "c") != _files(
        tmp_path / "a"
    )


def test_scale_generator_agent_logs_load_without_rejects(tmp_path: Path) -> None:
    """The OTLP, MCP and native agent files are real formats: the adapters take every record."""
    from keytrail.cli.main import main
    from keytrail.store.case import CaseStore

    stats = _load("gen_scale").generate(12_000, tmp_path / "g", seed=5)
    agents = tmp_path / "g" / "agents"
    traces = [
        json.loads(line) for line in (agents / "otel" / "traces.jsonl").read_text().splitlines()
    ]
    assert len(traces) == stats["otlp_lines"]
    spans = [
        sp
        for t in traces
        for rs in t["resourceSpans"]
        for ss in rs["scopeSpans"]
        for sp in ss["spans"]
    ]
    assert len(spans) == stats["otlp_spans"] and len(
        {(sp["traceId"], sp["spanId"]) for sp in spans}
    ) == len(spans)
    ops = Counter(
        a["value"]["stringValue"]
        for sp in spans
        for a in sp["attributes"]
        if a["key"] == "gen_ai.operation.name"
    )
    assert ops["invoke_agent"] == ops["chat"] == ops["execute_tool"] == len(traces)
    mcp = [
        json.loads(line) for line in (agents / "mcp" / "aws-tools.jsonl").read_text().splitlines()
    ]
    assert len(mcp) == stats["mcp_lines"] and all(m["message"]["jsonrpc"] == "2.0" for m in mcp)
    assert [m["direction"] for m in mcp] == ["client_to_server", "server_to_client"] * (
        len(mcp) // 2
    )
    assert main(["ingest", str(tmp_path / "case.duckdb"), str(agents), "-q"]) == 0
    with CaseStore.open(tmp_path / "case.duckdb") as store:
        assert store.query("SELECT count(*) AS n FROM rejects") == [{"n": 0}]
        got = {
            r["format"]: r["n"]
            for r in store.query(
                "SELECT format, count(*) AS n FROM events WHERE agent_id IS NOT NULL GROUP BY format"
            )
        }
    assert got == {
        "agent-jsonl": stats["agent_lines"],
        "otlp-traces": stats["otlp_spans"],
        "mcp-jsonrpc-wrapped": stats["mcp_lines"] // 2,
    }


@pytest.mark.slow
def test_benchmark_prints_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # as `python benchmarks/run.py` runs it: its sibling modules (vault_bench, scope_rows) import
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location("kt_bench_run", REPO / "benchmarks" / "run.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["kt_bench_run"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    # Each TUI step once: the benchmark repeats opening the credential and paging the timeline
    # five times for a median, which here only cost ~10 s of CI and asserted nothing more.
    mod.OPENS = mod.PAGES = 1
    assert mod.main(["--events", "3000", "--workdir", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert "| step | measured | target | result |" in table
    for step in (
        "bare DuckDB read_json + unnest (2700 records)",
        "single-threaded orjson loop",
        "keytrail ingest",
        "TUI open the top credential (",
        "TUI timeline PageDown to the next page, median; worst of 1",
        "Vault adapter load (CPU), entries per CPU s",
    ):
        assert step in table, table
    # every step ran: a failed one says "error" in its result column
    assert "| failed |" not in table and "error" not in table, table
