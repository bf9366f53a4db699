"""OCSF export of Vault and agent events, checked against the original records.

Cases are real ingests (the sample incident, the shared Vault and agent fixtures, small logs
written here in the adapters' formats); every exported line is parsed and compared with the
record it came from: class and activity (the Python mapping), time, actor, operation, ids.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from keytrail.cli.main import main
from keytrail.redact import MASK
from keytrail.report import ocsf_sources
from keytrail.report.exports import export
from keytrail.store.case import CaseStore
from keytrail.timefmt import to_utc
from tests.conftest import SAMPLE_DATA

INCIDENT = SAMPLE_DATA / "incident"


def _ingest(case: Path, *paths: Path) -> Path:
    assert main(["ingest", str(case), *map(str, paths), "-q"]) == 0
    return case


def _export(case: Path, out: Path) -> list[dict[str, Any]]:
    with CaseStore.open(case) as store:
        n = export(store, out, "ocsf", force=True)
    text = out.read_text(encoding="utf-8")
    docs = [json.loads(line) for line in text.splitlines()]
    assert n == len(docs)
    assert "null" not in text.replace('"null"', "")
    return docs


def _events(case: Path) -> dict[str, dict[str, Any]]:
    con = duckdb.connect(str(case), read_only=True)
    try:
        cur = con.execute("SELECT * FROM events")
        cols = [d[0] for d in cur.description]
        return {r[0]: dict(zip(cols, r, strict=True)) for r in cur.fetchall()}
    finally:
        con.close()


def _ms(when: datetime | None) -> int | None:
    if when is None:
        return None
    return (when.replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
        milliseconds=1
    )


@pytest.fixture(scope="module")
def incident(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("ocsf-incident")
    case = _ingest(tmp / "case.duckdb", INCIDENT)
    return _events(case), _export(case, tmp / "out.jsonl")


@pytest.fixture(scope="module")
def fixtures_case(
    tmp_path_factory: pytest.TempPathFactory, shared_fixtures: Path
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("ocsf-fixtures")
    case = _ingest(tmp / "case.duckdb", shared_fixtures / "vault", shared_fixtures / "agent")
    return _events(case), _export(case, tmp / "out.jsonl")


def _by_uid(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {d["unmapped"]["keytrail.event_uid"]: d for d in docs}
    assert len(out) == len(docs), "one line per event"
    return out


def _check_vault(ev: dict[str, Any], doc: dict[str, Any]) -> None:
    entry = json.loads(ev["raw"])
    request, auth = entry.get("request") or {}, entry.get("auth") or {}
    kmip = str(entry.get("type")).startswith("kmip")
    op = (
        ev["operation"] if kmip else request.get("operation")
    )  # KMIP: decoded from the KMIP request
    assert not kmip or str(op).startswith("kmip-")
    cls, act, _ = ocsf_sources.classify_vault(request.get("path"), op)
    assert (doc["class_uid"], doc["activity_id"]) == (cls[0], act)
    assert doc["type_uid"] == cls[0] * 100 + act
    assert doc["metadata"]["product"] == {"name": "Vault", "vendor_name": "HashiCorp"}
    assert doc["metadata"].get("uid") == request.get("id")
    assert doc["api"]["operation"] == op
    details = json.loads(ev["details"])
    assert to_utc(details.get("request_time") or entry["time"]) == to_utc(
        doc["metadata"]["original_time"]
    )
    assert doc["time"] == _ms(to_utc(doc["metadata"]["original_time"]))
    user = doc.get("actor", {}).get("user", {})
    if auth.get("display_name"):
        assert user["name"] == auth["display_name"]
        assert user["uid"] == (auth.get("entity_id") or auth["display_name"])
    if auth.get("accessor"):
        assert user["credential_uid"] == auth["accessor"]
    if request.get("remote_address"):
        address = (
            request["remote_address"].rsplit(":", 1)[0].strip("[]")
            if kmip
            else request["remote_address"]
        )
        assert doc["src_endpoint"]["ip"] == address
    if entry.get("error"):
        assert doc["status_id"] == 2 and doc["status_detail"]
    elif entry["type"] == "response":
        assert doc["status_id"] == 1
    if cls[0] == 3002:
        assert doc["user"] == user


def _attrs(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {a["key"]: next(iter(a["value"].values()), None) for a in items or []}


def _check_agent(ev: dict[str, Any], doc: dict[str, Any]) -> None:
    cls, act, _ = ocsf_sources.classify_agent(ev["action"])
    assert (doc["class_uid"], doc["activity_id"]) == (cls[0], act)
    assert doc["metadata"]["event_code"] == ev["action"]
    user = doc["actor"].get("user", {}) if "actor" in doc else {}
    assert user.get("uid") == ev["actor_uid"]
    raw = json.loads(ev["raw"])
    if ev["format"] == "agent-jsonl":
        assert doc["metadata"]["uid"] == raw.get("event_id", doc["metadata"].get("uid"))
        assert doc["time"] == _ms(to_utc(raw["time"]))
        assert user["uid"] == raw["agent_id"]
        assert doc["api"]["operation"] == raw.get("tool", raw["operation"])
        assert doc["metadata"]["product"]["name"] == raw.get("agent_name", raw["agent_id"])
    elif ev["format"] == "otlp-traces":
        span = raw["span"]
        attrs = _attrs(span.get("attributes"))
        assert doc["time"] == int(span["startTimeUnixNano"]) // 1_000_000
        assert doc["metadata"].get("uid") == ev["source_event_id"]
        if re.fullmatch(r"[0-9a-fA-F]{16}", span.get("spanId") or "") and span["spanId"].strip("0"):
            assert doc["metadata"]["uid"] == span["spanId"].lower()
        if re.fullmatch(r"[0-9a-fA-F]{32}", span.get("traceId") or "") and span["traceId"].strip(
            "0"
        ):
            assert doc["metadata"]["correlation_uid"] == span["traceId"].lower()
        assert doc["metadata"]["product"]["name"] == (
            raw["scope"].get("name") or doc["metadata"]["product"]["name"]
        )
        if "gen_ai.agent.id" in attrs:
            assert user["uid"] == attrs["gen_ai.agent.id"]
        tool = attrs.get("gen_ai.tool.name")
        if ev["action"].startswith("tool:") and tool:
            assert doc["api"]["operation"] == tool
        gen_ai = {
            k: v
            for k, v in attrs.items()
            if k.startswith("gen_ai.")
            and v is not None
            and not k.startswith(
                (
                    "gen_ai.input.",
                    "gen_ai.output.",
                    "gen_ai.prompt",
                    "gen_ai.completion",
                    "gen_ai.system_instructions",
                    "gen_ai.tool.call.result",
                    "gen_ai.tool.call.arguments",
                    "gen_ai.tool.definitions",
                )
            )
        }
        assert doc["unmapped"].get("gen_ai", {}) == gen_ai
    elif ev["format"].startswith("mcp"):
        first = raw[0] if isinstance(raw, list) else raw
        message = first.get("message", first)
        assert "uid" not in doc["metadata"]
        assert doc["metadata"]["product"]["name"] == "MCP"
        if message.get("method") == "tools/call":
            assert doc["api"]["operation"] == message["params"]["name"]
        if "client" in first:
            assert user["uid"] == first["client"]
            assert doc["time"] == _ms(to_utc(first["time"]))
        if "id" in message:
            assert doc["api"]["request"]["uid"] == str(message["id"])


def _check_all(events: dict[str, dict[str, Any]], docs: list[dict[str, Any]]) -> dict[str, int]:
    by_uid = _by_uid(docs)
    assert set(by_uid) == set(events), "every event exported, nothing else"
    seen: dict[str, int] = {}
    for uid, ev in events.items():
        doc = by_uid[uid]
        if ev["source"] == "vault":
            _check_vault(ev, doc)
        elif ev["source"] == "agent":
            _check_agent(ev, doc)
        seen[ev["format"]] = seen.get(ev["format"], 0) + 1
    times = [d.get("time", float("inf")) for d in docs]
    assert times == sorted(times)
    return seen


def test_incident_every_source_exported_and_matches_records(incident: Any) -> None:
    events, docs = incident
    seen = _check_all(events, docs)
    assert {"vault-audit-jsonl", "agent-jsonl", "otlp-traces", "mcp-jsonrpc-wrapped"} <= set(seen)
    by_uid = _by_uid(docs)
    logins = [
        d
        for d in by_uid.values()
        if d["metadata"]["product"].get("name") == "Vault" and d["class_uid"] == 3002
    ]
    assert logins and all(
        d["activity_id"] == 1 and d["api"]["service"]["name"].startswith("auth/") for d in logins
    )
    tools = [d for d in docs if d["metadata"].get("event_code", "").startswith("tool:")]
    assert tools and all(
        d["class_uid"] == 6003 and d["actor"]["user"]["type"] == "agent" for d in tools
    )


def test_shared_fixtures_every_source_exported_and_matches_records(fixtures_case: Any) -> None:
    events, docs = fixtures_case
    seen = _check_all(events, docs)
    assert {"vault-audit-jsonl", "otlp-traces", "otlp-logs", "mcp-jsonrpc"} <= set(seen)


def test_secrets_in_agent_and_vault_records_masked(tmp_path: Path) -> None:
    token = "hvs.CAESIJ" + "x" * 30
    lines = [
        {
            "time": "2026-03-01T09:00:05Z",
            "event_id": "a-1",
            "agent_id": "ledger-reconciler",
            "operation": "tool_call",
            "tool": "http_post",
            "arguments": {
                "url": "https://vault.example/v1/auth",
                "password": "hunter2-secret",
                "headers": {"X-Vault-Token": token},
            },
            "outcome": "failure",
            "error": f"login failed for token {token}",
        },
        {
            "time": "2026-03-01T09:00:06Z",
            "event_id": "a-2",
            "agent_id": "ledger-reconciler",
            "operation": "login",
            "credential": "vault:approle/ledger-reconciler",
            "outcome": "success",
        },
    ]
    log = tmp_path / "agent.jsonl"
    log.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    case = _ingest(tmp_path / "case.duckdb", log)
    docs = {d["metadata"]["uid"]: d for d in _export(case, tmp_path / "o.jsonl")}
    text = (tmp_path / "o.jsonl").read_text(encoding="utf-8")
    assert token not in text and "hunter2-secret" not in text
    assert docs["a-1"]["api"]["request"]["data"]["password"] == MASK
    assert docs["a-1"]["api"]["request"]["data"]["url"] == "https://vault.example/v1/auth"
    assert docs["a-1"]["status_id"] == 2 and MASK in docs["a-1"]["status_detail"]
    assert (docs["a-2"]["class_uid"], docs["a-2"]["activity_id"]) == (3002, 1)


def test_openbao_named_when_its_entries_say_so(tmp_path: Path) -> None:
    lines = (INCIDENT / "vault" / "vault_audit.log").read_text(encoding="utf-8").splitlines()[:12]
    assert any("+builtin.vault" in line for line in lines)
    bao = tmp_path / "openbao_audit.log"
    bao.write_text(
        "".join(line.replace("+builtin.vault", "+builtin.bao") + "\n" for line in lines),
        encoding="utf-8",
    )
    case = _ingest(tmp_path / "case.duckdb", bao)
    docs = _export(case, tmp_path / "o.jsonl")
    assert docs and {json.dumps(d["metadata"]["product"]) for d in docs} == {
        '{"name": "OpenBao", "vendor_name": "OpenBao"}'
    }


@pytest.mark.parametrize(
    ("path", "op", "expected"),
    [
        ("auth/userpass/login/alice", "update", (3002, 1)),
        ("auth/approle/login", "update", (3002, 1)),
        ("auth/oidc/oidc/callback", "read", (3002, 1)),
        ("auth/token/revoke-self", "update", (3002, 2)),
        ("auth/approle/login", "read", (6003, 2)),
        ("auth/token/create", "update", (6003, 1)),
        ("auth/token/create-orphan", "update", (6003, 1)),
        ("sys/leases/revoke", "update", (6003, 4)),
        ("sys/leases/renew", "update", (6003, 3)),
        ("auth/token/lookup-self", "read", (6003, 2)),
        ("secret/data/ledger/db", "read", (6003, 2)),
        ("secret/data/ledger/db", "create", (6003, 1)),
        ("secret/metadata", "list", (6003, 2)),
        ("kv/x", "delete", (6003, 4)),
        ("kv/x", "patch", (6003, 3)),
        ("aws/creds/x/abc", "server-log", (6003, 99)),
        ("", "kmip-Get", (6003, 99)),
        (None, None, (6003, 99)),
    ],
)
def test_vault_sql_classification_equals_python(
    path: str | None, op: str | None, expected: tuple[int, int]
) -> None:
    cls, act, name = ocsf_sources.classify_vault(path, op)
    assert (cls[0], act) == expected
    sql = ocsf_sources.vault_classification_sql("coalesce($p, '')", "$o")
    got = (
        duckdb.connect()
        .execute(f"SELECT {sql[0]}, {sql[1]}, {sql[2]}", {"p": path, "o": op})
        .fetchall()
    )
    assert got == [(cls[0], act, name)]


@pytest.mark.parametrize(
    "action",
    [
        "agent:login",
        "mcp:tools/list",
        "mcp:resources/read",
        "mcp:prompts/get",
        "mcp:tools/call",
        "tool:s3_get_object",
        "llm:chat",
        "agent:invoke_agent",
    ],
)
def test_agent_sql_classification_equals_python(action: str) -> None:
    cls, act, name = ocsf_sources.classify_agent(action)
    sql = ocsf_sources.agent_classification_sql("$a")
    got = duckdb.connect().execute(f"SELECT {sql[0]}, {sql[1]}, {sql[2]}", {"a": action}).fetchall()
    assert got == [(cls[0], act, name)]
