"""What each OpenBao scenario (tests/openbao_scenarios.py) must produce in a keytrail case.

One function per scenario, called by the live tests (tests/unit/test_openbao_scenarios.py, a real
server) and by the fixture tests (tests/unit/test_openbao_fixtures.py, the logs kept in
tests/fixtures/openbao/), so both hold the same expectations. ``ids`` are the scenario's identifiers
as the audit device logged them (:func:`tests.openbao_scenarios.logged_ids`).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from keytrail.ingest.runner import ingest
from tests.conftest import case_rows


def ingest_log(folder: Path, name: str, log: bytes) -> Path:
    """``log`` written to ``folder/name`` and ingested into a fresh case; every line must load."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(log)
    case = folder / f"{name}.duckdb"
    summary = ingest(case, [path])
    assert [(f.status, f.source) for f in summary.files] == [("loaded", "vault")], summary.files
    assert not case_rows(case, "SELECT * FROM rejects")
    return case


def issues(case: Path, cred: str) -> list[dict[str, Any]]:
    rows = case_rows(
        case,
        "SELECT ci.*, e.target FROM credential_issues ci JOIN events e USING (event_uid) "
        "WHERE ci.credential_id = ?",
        [cred],
    )
    for r in rows:
        r["attributes"] = json.loads(r["attributes"]) if r["attributes"] else {}
    return rows


def one_issue(case: Path, cred: str) -> dict[str, Any]:
    rows = issues(case, cred)
    assert len(rows) == 1, f"{cred}: {len(rows)} issue rows ({[r['target'] for r in rows]})"
    return rows[0]


def minted_into(case: Path, cred: str) -> list[tuple[str, str]]:
    return [
        (r["src"], r["confidence"])
        for r in case_rows(
            case, "SELECT src, confidence FROM links WHERE kind = 'MINTED' AND dst = ?", [cred]
        )
    ]


def parent(case: Path, cred: str) -> str | None:
    rows = case_rows(
        case, "SELECT parent_credential_id FROM credentials WHERE credential_id = ?", [cred]
    )
    assert rows, f"{cred} is not a credential"
    return rows[0]["parent_credential_id"]  # type: ignore[no-any-return]


def ttl(issue: dict[str, Any]) -> float:
    return (issue["expires_at"] - issue["issued_at"]).total_seconds()  # type: ignore[no-any-return]


def humans_of(case: Path, cred: str) -> list[str]:
    return [
        r["src"]
        for r in case_rows(
            case,
            "SELECT src FROM links WHERE kind = 'DELEGATED' AND dst_kind = 'credential' "
            "AND dst = ?",
            [cred],
        )
    ]


def holder(case: Path, cred: str) -> tuple[str, str | None, str | None]:
    """(class, detail, person) the principal classifier (graph.principal_class) gives ``cred``."""
    rows = case_rows(
        case,
        "SELECT class, detail, person FROM principal_classes "
        "WHERE subject_kind = 'credential' AND subject = ?",
        [cred],
    )
    assert len(rows) == 1, f"{cred}: {rows}"
    return rows[0]["class"], rows[0]["detail"], rows[0]["person"]


def check_login_is_a_root(case: Path, token: str, seconds: int) -> dict[str, Any]:
    """A login token: one issue, no parent token, no MINTED edge into it (whatever was sent)."""
    row = one_issue(case, token)
    assert row["kind"] == "vault-token" and row["parent_credential_id"] is None
    assert (
        row["attributes"]["login_path"].endswith("login")
        or "/login/" in row["attributes"]["login_path"]
    )
    assert ttl(row) == seconds
    return row


def check_userpass(case: Path, ids: dict[str, Any]) -> None:
    row = check_login_is_a_root(case, ids["accessor"], ids["ttl"])
    # the CLI's token helper sent the root token with the login: recorded, never a parent
    assert row["attributes"]["caller_token_accessor"] == ids["root_accessor"]
    assert minted_into(case, ids["accessor"]) == [] and parent(case, ids["accessor"]) is None
    assert humans_of(case, ids["accessor"]) == ["alice"]
    assert holder(case, ids["accessor"]) == ("person", "vault-userpass", "alice")
    # the token's own lookup-self is signed with it and mints nothing
    used = case_rows(
        case, "SELECT target FROM events WHERE credential_id = ? ORDER BY time", [ids["accessor"]]
    )
    assert [r["target"] for r in used] == [
        f"auth/{ids['mount']}/login/alice",
        "auth/token/lookup-self",
    ]


def check_approle(case: Path, ids: dict[str, Any], root: str) -> None:
    sid = case_rows(
        case, "SELECT credential_id FROM credential_issues WHERE kind = 'vault-secret-id'"
    )
    assert len(sid) == 1
    secret_id = sid[0]["credential_id"]
    srow = one_issue(case, secret_id)
    assert srow["parent_credential_id"] == root
    assert (
        srow["attributes"]["secret_id_accessor"] == ids["secret_id_accessor"]
        and ttl(srow) == ids["secret_id_ttl"]
    )
    row = check_login_is_a_root(case, ids["accessor"], ids["ttl"])
    assert row["attributes"]["identity_ref"] == f"vault:{ids['mount']}/{ids['role']}"
    assert row["attributes"]["secret_id"] == secret_id
    # the operator's secret id was exchanged for the agent's token: proven, the token's parent
    assert minted_into(case, ids["accessor"]) == [(secret_id, "proven")]
    assert parent(case, ids["accessor"]) == secret_id
    assert humans_of(case, ids["accessor"]) == []
    assert holder(case, ids["accessor"]) == ("workload", "vault-approle", None)


def check_jwt(case: Path, ids: dict[str, Any]) -> None:
    for which in ("gha", "people"):
        row = check_login_is_a_root(case, ids[which]["accessor"], ids[which]["ttl"])
        assert (
            row["attributes"]["role"] == ids[which]["role"]
            and row["attributes"]["mount_type"] == "jwt"
        )
        assert minted_into(case, ids[which]["accessor"]) == []
    gha = one_issue(case, ids["gha"]["accessor"])["attributes"]["metadata"]
    assert gha == {"actor": "dependabot[bot]", "repository": "acme/app", "role": "deploy"}
    people = one_issue(case, ids["people"]["accessor"])["attributes"]["metadata"]
    assert people["email"] == "carol@example.com"
    assert humans_of(case, ids["people"]["accessor"]) == ["carol@example.com"]
    assert holder(case, ids["people"]["accessor"]) == ("person", "vault-jwt", "carol@example.com")
    # sub repo:acme/app:ref:refs/heads/main, actor dependabot[bot]: a CI workload, no person
    assert humans_of(case, ids["gha"]["accessor"]) == []
    assert holder(case, ids["gha"]["accessor"]) == ("workload", "github-actions", None)


def check_tokens(case: Path, ids: dict[str, Any], root: str) -> None:
    expect = {
        "parent": (root, 7200),
        "child": (ids["parent"], 3600),
        "grandchild": (ids["child"], 1800),
        "orphan": (root, 600),
        "via_role": (ids["parent"], 1200),
    }
    for name, (want, seconds) in expect.items():
        row = one_issue(case, ids[name])  # renew, renew-self and the lookups added no second row
        assert (row["parent_credential_id"], ttl(row)) == (want, seconds), name
        assert minted_into(case, ids[name]) == [(want, "proven")], name
    assert one_issue(case, ids["orphan"])["attributes"]["orphan"] is True
    role = one_issue(case, ids["via_role"])["attributes"]
    assert role["role"] == ids["role"] and ids["extra_policy"] in role["policies"]
    made = case_rows(
        case,
        "SELECT e.target FROM credential_issues ci JOIN events e USING (event_uid) "
        "WHERE e.target SIMILAR TO 'auth/token/(renew|lookup).*'",
    )
    assert made == []
    assert case_rows(case, "SELECT * FROM links WHERE kind = 'MINTED' AND src = dst") == []
    revoked = {
        r["target"]: r["revoked"]
        for r in case_rows(
            case,
            "SELECT target, details->>'revoked_accessor' AS revoked FROM events "
            "WHERE target LIKE '%revoke%'",
        )
    }
    assert revoked == {
        "auth/token/revoke-self": ids["via_role"],
        "auth/token/revoke-accessor": ids["child"],
    }
    # what died with the child: its descendants over MINTED (Vault logs no cascade)
    assert case_rows(
        case, "SELECT dst FROM links WHERE kind = 'MINTED' AND src = ?", [ids["child"]]
    ) == [{"dst": ids["grandchild"]}]


def check_wrapping(case: Path, ids: dict[str, Any], root: str) -> None:
    wrap = one_issue(case, ids["wrap_token"])
    assert (
        wrap["parent_credential_id"] == root
        and wrap["attributes"]["wrapping"] is True
        and ttl(wrap) == 120
    )
    inner = one_issue(case, ids["wrapped_token"])  # the unwrap answered with it and minted nothing
    assert (
        inner["parent_credential_id"] == root
        and inner["attributes"]["wrapped_by"] == ids["wrap_token"]
    )
    # the re-wrap made a new wrapping token for the same creation, and no second wrapped token
    rewrap = one_issue(case, ids["rewrap_token"])
    assert rewrap["attributes"]["creation_path"] == "auth/token/create" and ttl(rewrap) == 120
    assert rewrap["target"] == "sys/wrapping/rewrap"
    kv = one_issue(case, ids["wrap_kv"])
    assert kv["attributes"]["creation_path"] == f"{ids['kv']}/handoff" and ttl(kv) == 60
    unwraps = case_rows(
        case, "SELECT credential_id FROM events WHERE target = 'sys/wrapping/unwrap' ORDER BY time"
    )
    assert [r["credential_id"] for r in unwraps] == [ids["rewrap_token"], ids["wrap_kv"]]


def check_secrets(case: Path, ids: dict[str, Any]) -> None:
    rows = case_rows(
        case,
        "SELECT e.target, e.operation, e.outcome, r.resource_type, "
        "CAST(e.details->>'listed_keys' AS INT) AS listed FROM events e "
        "JOIN event_resources r USING (event_uid) WHERE NOT starts_with(e.target, 'sys/')",
    )
    got = {
        (r["target"], r["operation"]): (r["resource_type"], r["outcome"], r["listed"]) for r in rows
    }
    kv1, kv2, transit = ids["kv1"], ids["kv2"], ids["transit"]
    for key in [(f"{kv1}/app/db", op) for op in ("create", "read", "delete")] + [
        (f"{kv2}/data/app/db", op) for op in ("create", "read", "delete")
    ]:
        assert got[key] == ("vault-secret", "success", None), key
    assert got[(f"{kv1}/app/", "list")] == ("vault-secret", "success", 1)
    assert got[(f"{kv2}/metadata/app/", "list")] == ("vault-secret", "success", 1)
    for op in ("encrypt", "decrypt"):
        assert got[(f"{transit}/{op}/ledger", "update")] == ("vault-transit", "success", None)
    assert case_rows(case, "SELECT * FROM credential_issues") == []


def check_engines(case: Path, ids: dict[str, Any], root: str, *, raw: bool) -> None:
    cert = one_issue(case, ids["serial"])
    assert (cert["kind"], cert["parent_credential_id"]) == ("x509-certificate", root)
    assert (
        cert["expires_at"] == _unix(ids["expiration"])
        and cert["attributes"]["role"] == "agent-mtls"
    )
    # the common name is a request value: HMAC'd by default, the mTLS identity on a raw device
    assert cert["principal_uid"] == ("ledger-agent.agents.internal" if raw else None)
    leased = one_issue(case, ids["leased_serial"])
    lease = one_issue(case, ids["lease"])
    assert (lease["kind"], lease["parent_credential_id"]) == ("vault-lease", root)
    assert leased["parent_credential_id"] == ids["lease"] and 3590 <= ttl(leased) <= 3600
    ssh = one_issue(case, ids["ssh_serial"])
    assert (ssh["kind"], ssh["parent_credential_id"]) == ("ssh-certificate", root)
    # the TTL the client asked for ("30m") is a request string: known only when logged in clear
    assert (ttl(ssh) if ssh["expires_at"] else None) == (1800 if raw else None)
    key = one_issue(case, f"{ids['totp']}/keys/agent-otp")
    assert (key["kind"], key["expires_at"], key["attributes"]["period"]) == ("totp-key", None, 30)
    code = case_rows(case, "SELECT * FROM credential_issues WHERE kind = 'totp-code'")
    assert (
        len(code) == 1 and 0 < (code[0]["expires_at"] - code[0]["issued_at"]).total_seconds() <= 30
    )
    assert code[0]["credential_id"].startswith(f"{ids['totp']}/code/agent-otp@")


def _unix(n: int) -> Any:
    from datetime import datetime

    return datetime(1970, 1, 1) + timedelta(seconds=n)


def check_bootstrap(case: Path) -> str:
    """The dev server's root token: issued by the server's own request, so no parent, no edge."""
    rows = case_rows(
        case,
        "SELECT ci.credential_id, ci.parent_credential_id, ci.attributes FROM credential_issues ci "
        "JOIN events e USING (event_uid) WHERE e.source_event_id = 'dev-gen-root'",
    )
    assert len(rows) == 1 and rows[0]["parent_credential_id"] is None
    assert json.loads(rows[0]["attributes"])["internal"] is True
    root = str(rows[0]["credential_id"])
    assert minted_into(case, root) == []
    return root
