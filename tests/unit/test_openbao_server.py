"""The OpenBao test server itself: it starts, records through all three audit devices, and keytrail reads them.

Scenario tests of the Vault adapter build on the ``openbao`` fixture; this file checks the fixture's promises
(one scenario's lines found by ``mark``/``audit_since``, the device options doing what they say) so a failure
there is told apart from an adapter bug.
"""

from __future__ import annotations

import json
from pathlib import Path

from keytrail.ingest.runner import ingest
from tests.conftest import case_rows
from tests.openbao import OpenBao


def _entries(raw: bytes) -> list[dict[str, object]]:
    return [json.loads(line) for line in raw.splitlines() if line.strip()]


def test_devices_record_one_scenario(openbao: OpenBao, tmp_path: Path) -> None:
    mark = openbao.mark()
    openbao.call("POST", "sys/auth/userpass-smoke", {"type": "userpass"})
    openbao.call(
        "POST",
        "auth/userpass-smoke/users/smoke",
        {"password": "pw-smoke", "token_policies": "default"},
    )
    login = openbao.call(
        "POST", "auth/userpass-smoke/login/smoke", {"password": "pw-smoke"}, token=None
    )
    accessor = login["auth"]["accessor"]

    default = _entries(openbao.audit_since(mark, "default"))
    raw = _entries(openbao.audit_since(mark, "raw"))
    paths = [(e["type"], e["request"]["path"]) for e in default]  # type: ignore[index]
    assert ("request", "auth/userpass-smoke/login/smoke") in paths
    assert ("response", "auth/userpass-smoke/login/smoke") in paths
    assert len(raw) == len(default)
    # the default device HMACs the new token's accessor; log_raw + hmac_accessor=false keep it clear
    resp_default = next(
        e for e in default if e["type"] == "response" and "login" in e["request"]["path"]
    )  # type: ignore[index,operator]
    resp_raw = next(e for e in raw if e["type"] == "response" and "login" in e["request"]["path"])  # type: ignore[index,operator]
    assert resp_raw["auth"]["accessor"] == accessor  # type: ignore[index]
    assert str(resp_default["auth"]["accessor"]).startswith("hmac-sha256:")  # type: ignore[index]
    assert "pw-smoke" not in openbao.audit_since(mark, "default").decode()

    log = tmp_path / "audit.log"
    log.write_bytes(openbao.audit_since(mark, "default"))
    case = tmp_path / "case.duckdb"
    summary = ingest(case, [log])
    assert [(f.status, f.source) for f in summary.files] == [("loaded", "vault")]
    actions = {
        r["path"]
        for r in case_rows(
            case,
            "SELECT DISTINCT regexp_replace(resource_id, '^vault:', '') AS path "
            "FROM event_resources",
        )
    }
    assert "auth/userpass-smoke/login/smoke" in actions
