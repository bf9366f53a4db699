"""The bulk Vault reader (DuckDB) writes exactly the rows the record-by-record reader writes.

Each case is a line-oriented audit file holding lines the two JSON readers (DuckDB's, orjson)
read differently, or that exercise a rule the SQL re-implements; it is loaded once by
``VaultAdapter.load`` (bulk) and once by ``load_sequential`` (the reference), and every row of
``events``, ``event_resources``, ``credential_issues`` and ``rejects`` and the file's counters
and notes must be equal. The whole-case check over every fixture is
``benchmarks/vault_oracle.py``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keytrail.ingest.base import LoadContext
from keytrail.ingest.vault.adapter import VaultAdapter, load_sequential
from keytrail.store.case import CaseStore

_HMAC = "hmac-sha256:" + "ab" * 32
_T = "2026-03-02T00:00:00.004Z"


def _pair(
    rid: str, path: str = "secret/data/app", **kw: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    auth = {
        "client_token": _HMAC,
        "accessor": "hmac-sha256:acc-" + rid,
        "display_name": "approle",
        "policies": ["default", "app"],
        "token_policies": ["default", "app"],
        "metadata": {"role_name": "app"},
        "entity_id": "e-1",
        "token_type": "service",
        "token_ttl": 3600,
        "token_issue_time": "2026-03-02T00:00:00Z",
        "policy_results": {"allowed": True},
    }
    request = {
        "id": rid,
        "operation": "read",
        "mount_point": "secret/",
        "mount_type": "kv",
        "client_token_accessor": "hmac-sha256:acc-" + rid,
        "namespace": {"id": "root"},
        "path": path,
        "remote_address": "10.0.0.1",
        "remote_port": 40001,
    }
    req = {"time": "2026-03-02T00:00:00Z", "type": "request", "auth": auth, "request": request}
    resp = copy.deepcopy(req) | {"time": _T, "type": "response", "response": {"mount_type": "kv"}}
    for k, v in kw.items():
        target, _, key = k.partition("__")
        (resp if target == "resp" else req)[key] = v
    return req, resp


def _line(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _cases() -> dict[str, list[str]]:
    """Files (as lines) that each stress one disagreement or rule."""
    cases: dict[str, list[str]] = {}
    req, resp = _pair("r-1")
    base = [_line(req), _line(resp)]

    def edit(name: str, fn: Any) -> None:
        q, r = copy.deepcopy(req), copy.deepcopy(resp)
        fn(q, r)
        cases[name] = [_line(q), _line(r)] + base

    edit("float-ttl", lambda q, r: r["auth"].update(token_ttl=120.7))
    edit("exponent", lambda q, r: r["auth"].update(token_ttl=1e3))
    edit("big-int", lambda q, r: r["request"].update(remote_port=1234567890123456789))
    edit("negative-zero", lambda q, r: r["auth"].update(remaining_uses=0))
    edit("bool-port", lambda q, r: r["request"].update(remote_port=True))
    edit("string-ttl", lambda q, r: r["auth"].update(token_ttl="3600"))
    edit("ipv6", lambda q, r: r["request"].update(remote_address="[2001:db8::10]:36778"))
    edit("v4-port", lambda q, r: r["request"].update(remote_address="10.1.2.3:8200", remote_port=0))
    edit("host-addr", lambda q, r: r["request"].update(remote_address="vault.local"))
    edit("newline-addr", lambda q, r: r["request"].update(remote_address="10.1.2.3:80\n"))
    edit("ua", lambda q, r: r["request"].update(headers={"user-agent": ["curl/8", _HMAC, 3, ""]}))
    edit("ua-hmac-only", lambda q, r: r["request"].update(headers={"user-agent": [_HMAC]}))
    edit("ua-string", lambda q, r: r["request"].update(headers={"user-agent": "curl"}))
    edit("oidc-human", lambda q, r: r["auth"].update(display_name="oidc-alice@example.com"))
    edit(
        "oidc-workload",
        lambda q, r: r["auth"].update(display_name="oidc-repo:org/app:ref:refs/heads/main"),
    )
    edit("oidc-empty", lambda q, r: r["auth"].update(display_name="oidc-"))
    edit("userpass", lambda q, r: r["auth"].update(display_name="userpass-bob", metadata={}))
    edit(
        "ldap-username",
        lambda q, r: r["auth"].update(display_name="ldap-x", metadata={"username": "u"}),
    )
    edit("email", lambda q, r: r["auth"].update(metadata={"email": "a@b.c", "agent-id": "bot"}))
    edit("agent", lambda q, r: r["auth"].update(metadata={"agent": "", "agent_id": "bot-1"}))
    edit("nested-metadata", lambda q, r: r["auth"].update(metadata={"a": {"b": 1}}))
    edit("policies-objects", lambda q, r: r["auth"].update(policies=[{"x": 1}]))
    edit("policies-empty-string", lambda q, r: r["auth"].update(policies=""))
    edit("entity-created", lambda q, r: r["auth"].update(entity_created=1))
    edit("entity-created-false", lambda q, r: r["auth"].update(entity_created=False))
    edit("allowed-false", lambda q, r: r["auth"]["policy_results"].update(allowed=False))
    edit("allowed-string", lambda q, r: r["auth"]["policy_results"].update(allowed="no"))
    edit("policy-results-list", lambda q, r: r["auth"].update(policy_results=[1]))
    edit(
        "error-denied", lambda q, r: r.update(error="1 error occurred:\n\t* Permission Denied\n\n")
    )
    edit("error-request-only", lambda q, r: q.update(error="boom"))
    edit("error-object", lambda q, r: r.update(error={"x": 1}))
    edit("forwarded", lambda q, r: q.update(forwarded_from="10.9.9.9:8201"))
    edit("time-offset", lambda q, r: r.update(time="2026-03-02T02:00:00.1234567+02:00"))
    edit("time-nanos", lambda q, r: r.update(time="2026-03-02T00:00:00.123456789Z"))
    edit("time-bad-date", lambda q, r: r.update(time="2026-02-30T00:00:00Z"))
    edit("time-hour-24", lambda q, r: r.update(time="2026-03-02T24:00:00Z"))
    edit("time-number", lambda q, r: r.update(time=5))
    edit("time-empty", lambda q, r: q.update(time=""))
    edit("namespace", lambda q, r: r["request"].update(namespace={"id": "ns1", "path": "team-a/"}))
    edit(
        "list",
        lambda q, r: (
            r.update(response={"data": {"keys": ["a", "b"]}})
            or r["request"].update(operation="list")
        ),
    )
    edit(
        "list-count",
        lambda q, r: (
            r.update(response={"data": {"keys": 7}}) or r["request"].update(operation="list")
        ),
    )
    edit(
        "list-empty",
        lambda q, r: (
            r.update(response={"data": {"keys": []}}) or r["request"].update(operation="list")
        ),
    )
    edit("data-keys", lambda q, r: r["request"].update(data={"z": 1, "B": 2, "_": 3, 'a"b': 4}))
    edit("data-list", lambda q, r: r["request"].update(data=[1, 2]))
    edit("revoke-self", lambda q, r: r["request"].update(path="auth/token/revoke-self"))
    edit(
        "revoke-accessor",
        lambda q, r: r["request"].update(path="auth/token/revoke-accessor", data={"accessor": "x"}),
    )
    edit(
        "response-auth",
        lambda q, r: r.update(
            response={"auth": {"accessor": "t", "policies": "", "metadata": None, "num_uses": 0}}
        ),
    )
    edit(
        "wrap",
        lambda q, r: r.update(
            response={"wrap_info": {"accessor": "w", "ttl": 300, "creation_path": "sys/wrap"}}
        ),
    )
    edit(
        "login",
        lambda q, r: (
            r["request"].update(path="auth/approle/login", mount_type="approle")
            or r.update(response={"auth": {"accessor": "new", "token_ttl": 60, "metadata": {}}})
        ),
    )
    edit("lease", lambda q, r: r.update(response={"secret": {"lease_id": "db/creds/x/1"}}))
    edit("no-op", lambda q, r: r["request"].pop("operation") and q["request"].pop("operation"))
    edit("odd-op", lambda q, r: r["request"].update(operation="weird"))
    edit(
        "mount-types",
        lambda q, r: (
            r["request"].update(mount_type="", path="transit/encrypt/k")
            or r.update(response={"mount_type": "Transit"})
        ),
    )
    edit(
        "creds-path",
        lambda q, r: r["request"].update(path="database/creds/ro", mount_type="database"),
    )
    edit("escapes", lambda q, r: r["request"].update(path='secret/a"b\\c/d\te'))
    edit("slash-escape", lambda q, r: None)
    cases["slash-escape"][1] = cases["slash-escape"][1].replace("secret/data", "secret\\/data")
    edit("unicode-escape", lambda q, r: None)
    cases["unicode-escape"][1] = cases["unicode-escape"][1].replace("approle", "appr\\u00f6le")
    edit("surrogate", lambda q, r: None)
    cases["surrogate"][1] = cases["surrogate"][1].replace("approle", "appr\\ud800le")
    cases["non-ascii"] = [base[0], base[1].replace("approle", "appröle"), *base]
    cases["bad-utf8"] = [base[0], base[1].replace("approle", "appr\udcffle"), *base]
    cases["nan"] = [base[0], base[1].replace('"token_ttl":3600', '"token_ttl":NaN'), *base]
    cases["inf"] = [base[0], base[1].replace('"token_ttl":3600', '"token_ttl":-inf'), *base]
    cases["huge-exp"] = [base[0], base[1].replace('"token_ttl":3600', '"token_ttl":1e999'), *base]
    cases["trailing-comma"] = [base[0], base[1][:-1] + ",}", *base]
    cases["dup-top"] = [base[0], base[1][:-1] + ',"type":"request"}', *base]
    cases["dup-auth"] = [
        base[0],
        base[1].replace('"accessor":', '"accessor":"x","accessor":', 1),
        *base,
    ]
    cases["dup-metadata"] = [
        base[0],
        base[1].replace('{"role_name":"app"}', '{"a":"1","a":"2"}'),
        *base,
    ]
    cases["deep"] = [base[0], base[1][:-1] + ',"x":' + "[" * 1100 + "]" * 1100 + "}", *base]
    cases["crlf"] = [x + "\r" for x in base]
    cases["leading-space"] = [" " + base[0], base[1]]
    cases["bom"] = ["\ufeff" + base[0], base[1]]
    cases["bom-inside"] = [base[0], "\ufeff" + base[1]]
    cases["server-log"] = ["2024-01-01T00:00:00.000Z [INFO]  core: up", *base]
    cases["json-log"] = ['{"@level":"info","@message":"x","type":"response","request":{"id":"q"}}']
    cases["broken"] = [base[0], base[1][:100], "{", "[1]", '{"type":"x","request":{}}', "", "  "]
    cases["pretty-in-lines"] = ["{", '  "type": "request",', '  "request": {"id": "p"}', "}", *base]
    cases["no-id"] = [_line({"time": _T, "type": "request", "request": {"path": "sys/help"}})]
    cases["plugin-type"] = [_line({"time": _T, "type": "audit-x", "request": {"id": "p1"}})]
    cases["kmip"] = [
        _line({"type": "kmip-request", "request": {"id": "k", "data": {}}}),
        _line({"type": "kmip-response", "request": {"id": "k", "data": {}}}),
    ]
    # pairing: repeated, late, unanswered, double responses, a pair split across the two readers
    r2, p2 = _pair("r-2")
    r3, _ = _pair("r-3", path="auth/approle/login")
    cases["pairing"] = [
        _line(req),
        _line(req),
        _line(resp),
        _line(req),
        _line(resp),  # repeat, late, 2nd response
        _line(p2),
        _line(r2),  # response first: the request is late
        _line(r3),  # never answered
        _line(r2 | {"time": "x"}),  # late, on the Python path (bad time)
    ]
    cases["mixed-pair"] = [
        _line(req).replace('"token_ttl":3600', '"token_ttl":3600.5'),  # request read by Python
        _line(resp),  # its response read by DuckDB
        _line(r2),  # request read by DuckDB
        _line(p2).replace('"token_ttl":3600', '"token_ttl":36e2'),  # response read by Python
    ]
    return cases


_TABLES = ("events", "event_resources", "credential_issues", "rejects")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CaseStore]:
    """One case for every load (emptied before each): creating a case costs more than a load."""
    st = CaseStore.open(tmp_path_factory.mktemp("bulk") / "c.duckdb", read_only=False, create=True)
    yield st
    st.con.close()


def _load(store: CaseStore, path: Path, bulk: bool) -> dict[str, Any]:
    for table in _TABLES:
        store.con.execute(f"DELETE FROM {table}")
    ctx = LoadContext(store.con, path, 1, "vault-audit-jsonl", False)
    store.con.execute("BEGIN")  # as the runner loads a file (temp tables behave differently)
    if bulk:
        VaultAdapter().load(ctx)
    else:
        load_sequential(ctx, path.read_bytes())
    store.con.execute("COMMIT")
    out: dict[str, Any] = {
        "counts": (ctx.records, ctx.rejected, ctx.skipped_records, ctx.notes),
    }
    for table in _TABLES:
        out[table] = store.con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
    return out


@pytest.mark.parametrize("name", sorted(_cases()))
def test_bulk_reader_writes_what_the_sequential_reader_writes(
    tmp_path: Path, store: CaseStore, name: str
) -> None:
    lines = _cases()[name]
    path = tmp_path / f"{name}.log"
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8", errors="surrogateescape"))
    bulk = _load(store, path, bulk=True)
    ref = _load(store, path, bulk=False)
    assert ref["counts"][0] > 0
    if name in ("lease", "wrap", "login"):  # the Python mint path is reached
        assert ref["credential_issues"]
    for key in ref:
        assert bulk[key] == ref[key], key


def test_bulk_reader_reads_plain_lines_in_sql(tmp_path: Path) -> None:
    """The common line is read by DuckDB, not handed to Python (else the bulk path is moot)."""
    from keytrail.ingest.vault import bulk

    req, resp = _pair("r-1")
    path = tmp_path / "a.log"
    path.write_text(_line(req) + "\n" + _line(resp) + "\n")
    store = CaseStore.open(tmp_path / "c.duckdb", read_only=False, create=True)
    ctx = LoadContext(store.con, path, 1, "vault-audit-jsonl", False)
    seen: list[int] = []
    reader = bulk.BulkFile(ctx, lambda rec: seen.append(rec.line_no))  # type: ignore[func-returns-value]
    reader.read()
    assert seen == []
    assert store.con.execute("SELECT count(*) FROM _kt_vl WHERE ok").fetchone() == (2,)
