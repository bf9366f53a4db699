"""The Vault audit adapter on the real fixtures: counts, pairing, columns, the minted chain.

Expected numbers are computed here from the fixture lines with plain ``json`` (an
independent reading of the file), and the headline ones were checked by hand:
learn-vault-monitoring has 1,397 entries, 698 request/response pairs and one response
whose request is not in the file, so 699 events.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from keytrail.ingest.runner import ingest

LEARN = "hashicorp-education_learn-vault-monitoring/vault-audit.log"
ELASTIC = "elastic_integrations/test-audit.log"
PROBE = "elastic_integrations/audit.ndjson"
FAKED = "elastic_integrations/test-faked-all-fields.log"
DATADOG = "datadog_integrations-core/vault_tests.yaml"


def _load(case: Path, *paths: Path) -> duckdb.DuckDBPyConnection:
    ingest(case, list(paths))
    return duckdb.connect(str(case), read_only=True)


def _entries(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def _one(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> Any:
    row = con.execute(sql, params or []).fetchone()
    assert row is not None
    return row[0] if len(row) == 1 else row


@pytest.fixture(scope="module")
def learn(
    shared_fixtures: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[duckdb.DuckDBPyConnection]:
    con = _load(tmp_path_factory.mktemp("learn") / "case.duckdb", shared_fixtures / "vault" / LEARN)
    yield con
    con.close()


def test_learn_counts_match_an_independent_reading(
    learn: duckdb.DuckDBPyConnection, shared_fixtures: Path
) -> None:
    entries = _entries(shared_fixtures / "vault" / LEARN)
    req_ids = {e["request"]["id"] for e in entries if e["type"] == "request"}
    resp_ids = {e["request"]["id"] for e in entries if e["type"] == "response"}
    assert (len(entries), len(req_ids & resp_ids), len(resp_ids - req_ids)) == (1397, 698, 1)
    row = _one(
        learn, "SELECT format, status, records, events, rejected, skipped, duplicates FROM evidence"
    )
    assert row == ("vault-audit-jsonl", "loaded", 1397, 699, 0, 698, 0)
    ids = {r[0] for r in learn.execute("SELECT source_event_id FROM events").fetchall()}
    assert ids == req_ids | resp_ids
    assert (
        _one(learn, "SELECT count(*) FROM events WHERE event_uid <> 'vault:' || source_event_id")
        == 0
    )
    denied = sum(
        1 for e in entries if e["type"] == "response" and "permission denied" in e.get("error", "")
    )
    failed = sum(
        1
        for e in entries
        if e["type"] == "response" and e.get("error") and "permission denied" not in e["error"]
    )
    assert _one(
        learn,
        "SELECT count(*) FILTER (outcome = 'denied'), count(*) FILTER (outcome = 'failure'),"
        " count(*) FILTER (outcome = 'success') FROM events",
    ) == (denied, failed, 699 - denied - failed)
    ops: dict[str, int] = {}
    for e in entries:
        if e["type"] == "response":
            ops[e["request"]["operation"]] = ops.get(e["request"]["operation"], 0) + 1
    got = dict(learn.execute("SELECT operation, count(*) FROM events GROUP BY ALL").fetchall())
    assert got == ops


def test_pair_keeps_response_line_as_raw_and_request_position(
    learn: duckdb.DuckDBPyConnection, shared_fixtures: Path
) -> None:
    lines = (shared_fixtures / "vault" / LEARN).read_text().splitlines()
    # Lines 18/19 (1-based): the first AppRole login, request then response.
    req, resp = json.loads(lines[17]), json.loads(lines[18])
    assert (req["type"], resp["type"], req["request"]["id"]) == (
        "request",
        "response",
        resp["request"]["id"],
    )
    raw, record_no, details, time_raw = _one(
        learn,
        "SELECT raw, record_no, details, time_raw FROM events WHERE event_uid = ?",
        [f"vault:{resp['request']['id']}"],
    )
    assert raw == lines[18]
    assert record_no == 19
    d = json.loads(details)
    assert (
        d["entry"] == "pair" and d["request_record_no"] == 18 and d["response_time"] == resp["time"]
    )
    assert time_raw == req["time"]


def test_hmac_accessors_kept_exactly_as_logged(
    learn: duckdb.DuckDBPyConnection, shared_fixtures: Path
) -> None:
    logged = set()
    for e in _entries(shared_fixtures / "vault" / LEARN):
        for value in (e.get("auth", {}).get("accessor"), e["request"].get("client_token_accessor")):
            if value:
                logged.add(value)
    creds = {
        r[0]
        for r in learn.execute(
            "SELECT DISTINCT credential_id FROM events WHERE credential_id IS NOT NULL"
        ).fetchall()
    }
    assert creds and creds <= logged
    assert all(c.startswith("hmac-sha256:") and len(c) == 12 + 64 for c in creds)
    assert (
        _one(
            learn,
            "SELECT count(DISTINCT credential_kind) FROM events WHERE credential_id IS NOT NULL",
        )
        == 1
    )


ROOT = "hmac-sha256:a01c4d69aa0bc6ea78d41ab81f0780cccbb2594e820c5823214327fa1b8d1802"
LAB_ADMINS = "hmac-sha256:18e2ca53bac3d2821fe22b5ad63969fb79ff13bc07525f320ceafefefc93f907"
CREATED = "hmac-sha256:9c8eb2e781fee4079e9e83d85d1dad2d3227694ab68f52306115452c5ef102e4"
APPROLE = "hmac-sha256:b58a87ce1d2efad4b5af9e57af6c54e8f2e93db47865953a8e932e1616d017d6"
SECRET_ID = "hmac-sha256:a5e10e483adc562d8e4cb3911959ed01f1ea31a1bc91d57ed525ceca41645384"


def test_minted_chain_token_create_secret_id_login(learn: duckdb.DuckDBPyConnection) -> None:
    rows = {
        r[0]: r[1:]
        for r in learn.execute(
            "SELECT credential_id, kind, parent_credential_id, principal_name, confidence, attributes"
            " FROM credential_issues"
        ).fetchall()
    }
    # root -> auth/token/create/admins -> token-lab-admins; root -> auth/token/create -> token
    assert rows[LAB_ADMINS][:4] == ("vault-token", ROOT, "token-lab-admins", "proven")
    assert json.loads(rows[LAB_ADMINS][4])["role"] == "admins"
    assert rows[CREATED][:3] == ("vault-token", ROOT, "token")
    # token -> auth/approle/role/my-role/secret-id -> SecretID (its HMAC) -> auth/approle/login -> new token
    assert rows[SECRET_ID][:2] == ("vault-secret-id", CREATED)
    kind, parent, name, conf, attrs = rows[APPROLE]
    a = json.loads(attrs)
    # a login has no parent token: the token the client sent (CREATED) is kept as an attribute only;
    # the graph links the SecretID it exchanged (tests/unit/test_graph_derive.py)
    assert (kind, parent, name, conf) == ("vault-token", None, "approle", "proven")
    assert (
        a["mount"] == "approle"
        and a["role"] == "my-role"
        and a["identity_ref"] == "vault:approle/my-role"
    )
    assert a["secret_id"] == SECRET_ID and a["caller_token_accessor"] == CREATED
    counts = dict(
        learn.execute("SELECT kind, count(*) FROM credential_issues GROUP BY ALL").fetchall()
    )
    # 229 logins + 2 token creates; the lab's pki_int/issue certificates (6 h), TOTP keys and codes
    assert counts == {
        "vault-token": 231,
        "vault-secret-id": 2,
        "x509-certificate": 20,
        "totp-key": 2,
        "totp-code": 25,
    }


def test_userpass_login_then_secret_read(learn: duckdb.DuckDBPyConnection) -> None:
    user7 = learn.execute(
        "SELECT credential_id, parent_credential_id, principal_name, issued_at, attributes"
        " FROM credential_issues WHERE principal_name = 'userpass-lab-user-7'"
        " ORDER BY issued_at DESC LIMIT 1"
    ).fetchone()
    assert user7 is not None
    token, parent, _, issued, attrs = user7
    assert parent is None, "a userpass login sent no token: the new token has no parent"
    assert json.loads(attrs)["mount"] == "userpass"
    reads = learn.execute(
        "SELECT e.event_uid, e.human_id, e.read_only, r.resource_id, r.resource_type FROM events e"
        " JOIN event_resources r USING (event_uid)"
        " WHERE e.credential_id = ? AND e.action = 'vault:read' AND e.target LIKE 'kv-v2/data/%' AND e.time > ?",
        [token, issued],
    ).fetchall()
    assert len(reads) == 3
    assert all(r[1] == "lab-user-7" and r[2] is True and r[4] == "vault-secret" for r in reads)
    assert all(r[3].startswith("vault:kv-v2/data/") for r in reads)


def test_elastic_oidc_kmip_help_and_denied(shared_fixtures: Path, case_path: Path) -> None:
    con = _load(case_path, shared_fixtures / "vault" / ELASTIC)
    try:
        assert _one(con, "SELECT records, events, rejected, skipped FROM evidence") == (13, 8, 0, 5)
        kmip = con.execute(
            "SELECT action, outcome, src_ip, credential_id FROM events WHERE action LIKE 'vault:kmip-%'"
            " ORDER BY time"
        ).fetchall()
        serial = "79311139933792246475030417908586135267121780670"
        assert kmip == [
            ("vault:kmip-DiscoverVersions", "success", "192.168.0.10", serial),
            (
                "vault:kmip-Get",
                "denied",
                "192.168.0.10",
                serial,
            ),  # ResultReason 0x0C Permission Denied
            (
                "vault:kmip-Get",
                "unknown",
                "2001:db8::10",
                None,
            ),  # ResultStatus 0x02 Operation Pending
        ]
        help_ev = _one(
            con,
            "SELECT event_uid, source_event_id, outcome, human_id FROM events WHERE action = 'vault:help'",
        )
        assert (
            help_ev[0].startswith("vault:noid:") and help_ev[1] is None and help_ev[2] == "unknown"
        )
        assert help_ev[3] == "example@gmail.com"  # OIDC token metadata.email
        denied = _one(
            con,
            "SELECT outcome, actor_uid, credential_id, target FROM events"
            " WHERE source_event_id = '24ac580b-805a-d9ee-4d0d-7046932f4e05'",
        )
        assert denied == ("denied", None, None, "internal-ca/issue/internal-server")
        assert _one(con, "SELECT count(*) FROM events WHERE human_id IS NOT NULL") == 2
    finally:
        con.close()


def test_probe_and_socket_device_file(shared_fixtures: Path, case_path: Path) -> None:
    con = _load(case_path, shared_fixtures / "vault" / PROBE)
    try:
        rows = con.execute(
            "SELECT target, outcome, credential_id IS NULL, json_extract_string(details, '$.entry')"
            " FROM events ORDER BY time"
        ).fetchall()
        assert rows == [
            ("sys/audit/test", "unknown", True, "request"),
            ("sys/audit/socket", "success", False, "response"),
        ]
    finally:
        con.close()


def test_faked_fields_plain_accessor_error_and_offset_times(
    shared_fixtures: Path, case_path: Path
) -> None:
    con = _load(case_path, shared_fixtures / "vault" / FAKED)
    try:
        assert _one(con, "SELECT events, skipped FROM evidence") == (2, 2)
        ev = _one(
            con,
            "SELECT credential_id, outcome, error_message, details FROM events"
            " WHERE source_event_id = '002c8225-e859-44a0-9ccb-471c3655dbd8'",
        )
        assert ev[:3] == (
            "bar",
            "failure",
            "this is an error",
        )  # hmac_accessor=false: plain accessor kept
        d = json.loads(ev[3])
        assert d["token_issue_time"] == "2020-05-28T13:40:18-05:00"
        assert d["wrap_info"]["accessor"] == "xzW2I9CMqcALsllhYvqtlsvq"
        assert d["data_keys"] == ["data"]
        assert _one(con, "SELECT count(*) FROM credential_issues") == 0, (
            "an error response mints nothing"
        )
    finally:
        con.close()


def test_yaml_that_quotes_an_entry_is_not_taken_for_an_audit_log(
    shared_fixtures: Path, case_path: Path
) -> None:
    summary = ingest(case_path, [shared_fixtures / "vault" / DATADOG])
    assert [f.status for f in summary.files] == ["skipped"]


def test_whole_fixture_folder_loads_without_rejects(shared_fixtures: Path, case_path: Path) -> None:
    summary = ingest(case_path, [shared_fixtures / "vault"])
    by_name = {Path(f.path).name: f for f in summary.files}
    assert {n for n, f in by_name.items() if f.status == "loaded"} == {
        "vault-audit.log",
        "test-audit.log",
        "test-faked-all-fields.log",
        "audit.ndjson",
    }
    assert summary.rejected == 0
    assert summary.events_in_case == 699 + 8 + 2 + 2


def test_numbers_no_column_holds_do_not_fail_the_file(tmp_path: Path, case_path: Path) -> None:
    """Hostile numbers (beyond 64 bits, past year 9999, a digit int() cannot read) used to fail
    the whole file ("Integer exceeds 64-bit range", OverflowError): each entry now loads, the
    number is dropped from what is derived from it, and the lines around it load too."""
    t = "2026-03-02T00:00:00Z"
    auth = {"accessor": "acc", "display_name": "approle"}

    def pair(rid: str, path: str, mount: str, caller: dict[str, Any], **resp: Any) -> list[str]:
        request = {"id": rid, "path": path, "operation": "update", "mount_type": mount}
        request |= resp.pop("request", {})
        req = {"time": t, "type": "request", "auth": caller, "request": request}
        return [json.dumps(req), json.dumps(req | {"type": "response", "response": resp})]

    lines = [
        *pair("big-ttl", "secret/a", "kv", auth | {"token_ttl": 1e30, "remaining_uses": 2**70}),
        *pair(
            "big-port", "secret/b", "kv", auth, request={"remote_address": "10.0.0.1:" + "9" * 30}
        ),
        *pair(
            "year-10000", "auth/token/create", "token", auth, auth={"accessor": "n", "ttl": 10**15}
        ),
        *pair(
            "pki", "pki/issue/web", "pki", auth, data={"serial_number": "1a", "expiration": 1e15}
        ),
        *pair(
            "ssh",
            "ssh/sign/ops",
            "ssh",
            auth,
            data={"serial_number": "2b"},
            request={"data": {"ttl": "9" * 25}},
        ),
        *pair(
            "ssh2",
            "ssh/sign/ops",
            "ssh",
            auth,
            data={"serial_number": "3c"},
            request={"data": {"ttl": "\u00b2"}},
        ),
        json.dumps(
            {
                "type": "kmip-request",
                "request": {"data": {"kmip_request": {"tag": "Operation", "value": "f" * 40}}},
            }
        ),
        *pair("plain", "secret/c", "kv", auth),
    ]
    path = tmp_path / "hostile.log"
    path.write_text("\n".join(lines) + "\n")
    con = _load(case_path, path)
    assert _one(con, "SELECT status, records, rejected FROM evidence") == ("loaded", 15, 0)
    uids = [r[0] for r in con.execute("SELECT event_uid FROM events ORDER BY ALL").fetchall()]
    assert [u for u in uids if not u.startswith("vault:kmip")] == [
        f"vault:{r}"
        for r in sorted(["big-ttl", "big-port", "year-10000", "pki", "ssh", "ssh2", "plain"])
    ]
    details = _one(con, "SELECT details FROM events WHERE event_uid = 'vault:big-ttl'")
    assert "token_ttl" not in json.loads(details) and "remaining_uses" not in json.loads(details)
    issued = con.execute(
        "SELECT credential_id, expires_at FROM credential_issues ORDER BY ALL"
    ).fetchall()
    assert issued == [("1a", None), ("2b", None), ("3c", None), ("n", None)]
    con.close()
