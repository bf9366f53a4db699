"""Real tools for the agent scenarios: AppRole logins and KV v2 reads on the OpenBao test server.

Each agent gets its own AppRole role on the ``agents-approle`` mount (not ``approle``: the Vault
adapter's tests share the server and may enable their own) and a policy that lets it read
``secret/data/payroll/*``. The tools call the real HTTP API, so the audit devices log what a
production server would: the login (no token on the request), then reads signed with the token
the login returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.openbao import OpenBao, OpenBaoError

MOUNT = "agents-approle"
PAYROLL_POLICY = 'path "secret/data/payroll/*" { capabilities = ["read"] }\n'


@dataclass(frozen=True)
class AppRole:
    """One agent's AppRole credentials (role id + secret id: what the agent is deployed with)."""

    role: str
    role_id: str
    secret_id: str

    @property
    def identity(self) -> str:
        """The inventory identity for this role (``docs/formats/inventory.md``)."""
        return f"vault:{MOUNT}/{self.role}"


def prepare(
    bao: OpenBao, roles: list[str], secrets: dict[str, dict[str, str]]
) -> dict[str, AppRole]:
    """Enable the mount and policy once, create ``roles``, write ``secrets`` (under ``secret/``)."""
    mounts = bao.call("GET", "sys/auth")
    if f"{MOUNT}/" not in mounts.get("data", mounts):
        bao.call("POST", f"sys/auth/{MOUNT}", {"type": "approle"})
    bao.call("PUT", "sys/policies/acl/agents-payroll-read", {"policy": PAYROLL_POLICY})
    out: dict[str, AppRole] = {}
    for role in roles:
        bao.call(
            "POST",
            f"auth/{MOUNT}/role/{role}",
            {"token_policies": "agents-payroll-read", "token_ttl": "1h"},
        )
        role_id = bao.call("GET", f"auth/{MOUNT}/role/{role}/role-id")["data"]["role_id"]
        secret_id = bao.call("POST", f"auth/{MOUNT}/role/{role}/secret-id", {})["data"]["secret_id"]
        out[role] = AppRole(role, role_id, secret_id)
    for path, data in secrets.items():
        bao.call("POST", f"secret/data/{path}", {"data": data})
    return out


def login(bao: OpenBao, cred: AppRole) -> str:
    """AppRole login; returns the client token."""
    got = bao.call(
        "POST",
        f"auth/{MOUNT}/login",
        {"role_id": cred.role_id, "secret_id": cred.secret_id},
        token=None,
    )
    return str(got["auth"]["client_token"])


def read_secret(bao: OpenBao, token: str, path: str) -> dict[str, Any] | None:
    """KV v2 read of ``secret/data/<path>``; None when the secret does not exist (HTTP 404)."""
    try:
        got = bao.call("GET", f"secret/data/{path.strip('/')}", token=token)
    except OpenBaoError as e:
        if e.status == 404:
            return None
        raise
    return dict(got["data"]["data"])
