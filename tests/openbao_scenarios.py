"""Scenarios driven through a real OpenBao server's HTTP API (tests/openbao.py), one function each.

Each scenario does what a client of that feature does, in the order a real deployment would (mount,
configure, obtain credentials, use them), and returns the clear identifiers it saw in the HTTP
answers (accessors, serial numbers, lease ids) so tests can say which credentials and edges the
audit log must produce. The same functions write the small fixtures in tests/fixtures/openbao/ (see
make.py there), so a fixture is always what a server really wrote for a scenario a test also runs
live.

Mount paths carry a per-call suffix: the session's one server runs every scenario, and a second run
of a scenario (another test) must not collide with the first.
"""

from __future__ import annotations

import base64
import itertools
import json
import time
from typing import Any

from tests.openbao import OpenBao

_RUN = itertools.count(1)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class JwtSigner:
    """An RSA key made in the test signing RS256 JWTs (``cryptography``, test extra): no IdP."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_pem = (
            self._key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def sign(self, claims: dict[str, Any]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        head = _b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "test"}).encode())
        body = _b64url(json.dumps(claims).encode())
        sig = self._key.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{head}.{body}.{_b64url(sig)}"


def _policy(bao: OpenBao, name: str, hcl: str) -> None:
    bao.call("PUT", f"sys/policies/acl/{name}", {"policy": hcl})


def _auth_mount(bao: OpenBao, kind: str, item: str, config: dict[str, Any]) -> str:
    """A fresh mount of auth method ``kind`` with one user / role ``item`` configured; its path."""
    mount = f"{kind}{next(_RUN)}"
    bao.call("POST", f"sys/auth/{mount}", {"type": kind})
    bao.call("POST", f"auth/{mount}/{item}", config)
    return mount


def userpass(bao: OpenBao) -> dict[str, Any]:
    """A person logs in with userpass while the CLI's token helper still holds the root token."""
    mount = _auth_mount(
        bao,
        "userpass",
        "users/alice",
        {"password": "alice-pw", "token_policies": "default", "token_ttl": "1h"},
    )
    # the root token goes with the login, as `bao login -method=userpass` sends ~/.vault-token
    login = bao.call("POST", f"auth/{mount}/login/alice", {"password": "alice-pw"}, token="root")
    tok = login["auth"]["client_token"]
    bao.call("GET", "auth/token/lookup-self", token=tok)
    return {
        "mount": mount,
        "accessor": login["auth"]["accessor"],
        "token": tok,
        "ttl": 3600,
        "root_accessor": bao.call("GET", "auth/token/lookup-self")["data"]["accessor"],
    }


def approle(bao: OpenBao) -> dict[str, Any]:
    """An operator makes an AppRole for an agent, which logs in with the role id and secret id."""
    mount = _auth_mount(
        bao,
        "approle",
        "role/ledger-agent",
        {"token_policies": "default", "token_ttl": 1200, "secret_id_ttl": 600},
    )
    role_id = bao.call("GET", f"auth/{mount}/role/ledger-agent/role-id")["data"]["role_id"]
    sid = bao.call("POST", f"auth/{mount}/role/ledger-agent/secret-id", {})["data"]
    login = bao.call(
        "POST",
        f"auth/{mount}/login",
        {"role_id": role_id, "secret_id": sid["secret_id"]},
        token=None,
    )
    tok = login["auth"]["client_token"]
    bao.call("GET", "auth/token/lookup-self", token=tok)
    return {
        "mount": mount,
        "role": "ledger-agent",
        "accessor": login["auth"]["accessor"],
        "token": tok,
        "secret_id_accessor": sid["secret_id_accessor"],
        "ttl": 1200,
        "secret_id_ttl": 600,
    }


GHA_CLAIMS = {
    "iss": "https://token.actions.githubusercontent.com",
    "aud": "https://github.com/acme",
    "sub": "repo:acme/app:ref:refs/heads/main",
    "repository": "acme/app",
    "repository_owner": "acme",
    "ref": "refs/heads/main",
    "actor": "dependabot[bot]",
    "workflow": "deploy",
    "event_name": "push",
    "job_workflow_ref": "acme/app/.github/workflows/deploy.yml@refs/heads/main",
}
PERSON_CLAIMS = {
    "iss": "https://login.example.com",
    "aud": "keytrail-vault",
    "sub": "00u1a2b3c4d5e6f7",
    "email": "carol@example.com",
    "name": "Carol Example",
    "groups": ["ops"],
}


def jwt(bao: OpenBao) -> dict[str, Any]:
    """Two JWT mounts, a key made here: GitHub Actions (a workload), a person's OIDC ID token."""
    n = next(_RUN)
    signer = JwtSigner()
    now = int(time.time())
    out: dict[str, Any] = {}
    for which, claims, role, extra in (
        (
            "gha",
            GHA_CLAIMS,
            "deploy",
            {
                "user_claim": "sub",
                "bound_claims": {"repository": "acme/app"},
                "claim_mappings": {"repository": "repository", "actor": "actor"},
            },
        ),
        (
            "people",
            PERSON_CLAIMS,
            "people",
            {"user_claim": "email", "claim_mappings": {"email": "email", "name": "name"}},
        ),
    ):
        mount = f"jwt-{which}{n}"
        bao.call("POST", f"sys/auth/{mount}", {"type": "jwt"})
        bao.call(
            "POST",
            f"auth/{mount}/config",
            {"jwt_validation_pubkeys": [signer.public_pem], "bound_issuer": claims["iss"]},
        )
        bao.call(
            "POST",
            f"auth/{mount}/role/{role}",
            {
                "role_type": "jwt",
                "bound_audiences": [claims["aud"]],
                "token_policies": ["default"],
                "token_ttl": 900,
            }
            | extra,
        )
        token = signer.sign(claims | {"iat": now, "nbf": now - 5, "exp": now + 300})
        login = bao.call("POST", f"auth/{mount}/login", {"role": role, "jwt": token}, token="root")
        out[which] = {
            "mount": mount,
            "role": role,
            "accessor": login["auth"]["accessor"],
            "token": login["auth"]["client_token"],
            "ttl": 900,
        }
        bao.call("GET", "auth/token/lookup-self", token=out[which]["token"])
    return out


def tokens(bao: OpenBao) -> dict[str, Any]:
    """Token lineage: children, an orphan, a token role granting a policy the parent lacks, renew,
    lookup, revoke-self and revoke of a child whose own child dies with it."""
    n = next(_RUN)
    _policy(
        bao,
        f"ops{n}",
        'path "auth/token/create*" { capabilities = ["create", "update"] }\n'
        'path "auth/token/*" { capabilities = ["create", "update", "read"] }\n'
        'path "sys/wrapping/*" { capabilities = ["update"] }',
    )
    _policy(bao, f"extra{n}", 'path "secret/*" { capabilities = ["read"] }')
    bao.call(
        "POST",
        f"auth/token/roles/agent-role{n}",
        {"allowed_policies": [f"extra{n}"], "orphan": False, "token_period": 0},
    )
    parent = bao.call(
        "POST", "auth/token/create", {"policies": [f"ops{n}"], "ttl": "2h", "display_name": "ops"}
    )["auth"]
    p = parent["client_token"]
    child = bao.call("POST", "auth/token/create", {"policies": [f"ops{n}"], "ttl": "1h"}, token=p)[
        "auth"
    ]
    grandchild = bao.call(
        "POST",
        "auth/token/create",
        {"policies": [f"ops{n}"], "ttl": "30m"},
        token=child["client_token"],
    )["auth"]
    orphan = bao.call("POST", "auth/token/create-orphan", {"policies": ["default"], "ttl": "10m"})[
        "auth"
    ]
    via_role = bao.call("POST", f"auth/token/create/agent-role{n}", {"ttl": "20m"}, token=p)["auth"]
    # renew and lookup mint nothing
    bao.call("POST", "auth/token/renew-self", {"increment": "2h"}, token=p)
    bao.call("GET", "auth/token/lookup-self", token=p)
    bao.call("POST", "auth/token/lookup", {"token": child["client_token"]})
    bao.call("POST", "auth/token/renew", {"token": child["client_token"]})
    bao.call("POST", "auth/token/lookup-accessor", {"accessor": child["accessor"]})
    # revoke-self of the role token; revoke of the child (its grandchild goes with it)
    bao.call("POST", "auth/token/revoke-self", {}, token=via_role["client_token"])
    bao.call("POST", "auth/token/revoke-accessor", {"accessor": child["accessor"]}, token=p)
    return {
        "parent": parent["accessor"],
        "child": child["accessor"],
        "grandchild": grandchild["accessor"],
        "orphan": orphan["accessor"],
        "via_role": via_role["accessor"],
        "role": f"agent-role{n}",
        "extra_policy": f"extra{n}",
        "parent_token": p,
        "root_accessor": bao.call("GET", "auth/token/lookup-self")["data"]["accessor"],
    }


def secrets(bao: OpenBao) -> dict[str, Any]:
    """kv v1 and v2 write, read, list, delete; transit encrypt/decrypt; mint nothing."""
    n = next(_RUN)
    kv1, kv2, transit = f"kv1-{n}", f"kv2-{n}", f"transit{n}"
    bao.call("POST", f"sys/mounts/{kv1}", {"type": "kv", "options": {"version": "1"}})
    bao.call("POST", f"sys/mounts/{kv2}", {"type": "kv", "options": {"version": "2"}})
    bao.call("POST", f"sys/mounts/{transit}", {"type": "transit"})
    _wait_kv2(bao, kv2)
    bao.call("POST", f"{kv1}/app/db", {"password": "kv1-secret"})
    bao.call("GET", f"{kv1}/app/db")
    bao.call("LIST", f"{kv1}/app")
    bao.call("DELETE", f"{kv1}/app/db")
    bao.call("POST", f"{kv2}/data/app/db", {"data": {"password": "kv2-secret"}})
    bao.call("GET", f"{kv2}/data/app/db")
    bao.call("LIST", f"{kv2}/metadata/app")
    bao.call("DELETE", f"{kv2}/data/app/db")
    bao.call("POST", f"{transit}/keys/ledger", {})
    ct = bao.call(
        "POST", f"{transit}/encrypt/ledger", {"plaintext": base64.b64encode(b"hello").decode()}
    )
    bao.call("POST", f"{transit}/decrypt/ledger", {"ciphertext": ct["data"]["ciphertext"]})
    return {"kv1": kv1, "kv2": kv2, "transit": transit}


def _wait_kv2(bao: OpenBao, mount: str) -> None:
    """A new kv v2 mount upgrades itself in the background; writes fail until it is ready."""
    for _ in range(50):
        try:
            bao.call("GET", f"{mount}/config")
            return
        except Exception:  # noqa: BLE001 - any error: not ready yet
            time.sleep(0.1)


def wrapping(bao: OpenBao) -> dict[str, Any]:
    """Response wrapping of a token creation (re-wrapped once) and of a kv read; both unwrapped."""
    n = next(_RUN)
    kv = f"kvw{n}"
    bao.call("POST", f"sys/mounts/{kv}", {"type": "kv", "options": {"version": "1"}})
    bao.call("POST", f"{kv}/handoff", {"api_key": "wrapped-secret"})
    wrapped_tok = bao.call(
        "POST",
        "auth/token/create",
        {"policies": ["default"], "ttl": "15m"},
        headers={"X-Vault-Wrap-TTL": "120"},
    )["wrap_info"]
    # the sender re-wraps before handing it off: a new wrapping token, the same token inside
    rewrapped = bao.call("POST", "sys/wrapping/rewrap", {"token": wrapped_tok["token"]})[
        "wrap_info"
    ]
    wrapped_kv = bao.call("GET", f"{kv}/handoff", headers={"X-Vault-Wrap-TTL": "60"})["wrap_info"]
    unwrapped = bao.call("POST", "sys/wrapping/unwrap", {}, token=rewrapped["token"])["auth"]
    bao.call("POST", "sys/wrapping/unwrap", {}, token=wrapped_kv["token"])
    return {
        "wrap_token": wrapped_tok["accessor"],
        "rewrap_token": rewrapped["accessor"],
        "wrapped_token": wrapped_tok["wrapped_accessor"],
        "unwrapped": unwrapped["accessor"],
        "wrap_kv": wrapped_kv["accessor"],
        "kv": kv,
    }


def engines(bao: OpenBao) -> dict[str, Any]:
    """Credential engines: PKI certificates for an agent's mTLS identity, SSH certificate, TOTP."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    n = next(_RUN)
    pki, ssh, totp = f"pki{n}", f"ssh{n}", f"totp{n}"
    bao.call("POST", f"sys/mounts/{pki}", {"type": "pki", "config": {"max_lease_ttl": "87600h"}})
    bao.call(
        "POST", f"{pki}/root/generate/internal", {"common_name": "agents.internal", "ttl": "8760h"}
    )
    bao.call(
        "POST",
        f"{pki}/roles/agent-mtls",
        {
            "allowed_domains": "agents.internal",
            "allow_subdomains": True,
            "max_ttl": "72h",
            "client_flag": True,
        },
    )
    cert = bao.call(
        "POST",
        f"{pki}/issue/agent-mtls",
        {"common_name": "ledger-agent.agents.internal", "ttl": "24h"},
    )["data"]
    # a role with generate_lease: the certificate comes with a lease (as AWS keys do), dies with it
    bao.call(
        "POST",
        f"{pki}/roles/agent-leased",
        {
            "allowed_domains": "agents.internal",
            "allow_subdomains": True,
            "max_ttl": "2h",
            "generate_lease": True,
        },
    )
    leased = bao.call(
        "POST", f"{pki}/issue/agent-leased", {"common_name": "batch.agents.internal", "ttl": "1h"}
    )
    bao.call("POST", f"sys/mounts/{ssh}", {"type": "ssh"})
    bao.call("POST", f"{ssh}/config/ca", {"generate_signing_key": True})
    bao.call(
        "POST",
        f"{ssh}/roles/agent",
        {
            "key_type": "ca",
            "allow_user_certificates": True,
            "allowed_users": "deploy",
            "default_user": "deploy",
            "ttl": "30m",
            "max_ttl": "1h",
        },
    )
    pub = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    signed = bao.call(
        "POST", f"{ssh}/sign/agent", {"public_key": pub, "valid_principals": "deploy", "ttl": "30m"}
    )["data"]
    bao.call("POST", f"sys/mounts/{totp}", {"type": "totp"})
    bao.call(
        "POST",
        f"{totp}/keys/agent-otp",
        {"generate": True, "issuer": "keytrail", "account_name": "agent", "period": 30},
    )
    code = bao.call("GET", f"{totp}/code/agent-otp")["data"]["code"]
    bao.call("POST", f"{totp}/code/agent-otp", {"code": code})
    return {
        "pki": pki,
        "serial": cert["serial_number"],
        "expiration": cert["expiration"],
        "leased_serial": leased["data"]["serial_number"],
        "lease": leased["lease_id"],
        "ssh": ssh,
        "ssh_serial": signed["serial_number"],
        "totp": totp,
    }


#: Fact keys that are not identifiers a log would HMAC (mount names, roles, numbers, lease ids).
_CLEAR_FACTS = (
    "mount",
    "role",
    "kv",
    "kv1",
    "kv2",
    "transit",
    "pki",
    "ssh",
    "totp",
    "lease",
    "extra_policy",
)


def logged_ids(bao: OpenBao, facts: dict[str, Any], device: str) -> dict[str, Any]:
    """``facts`` with every identifier as ``device`` logs it (``sys/audit-hash``; raw: as is).

    Tokens themselves are dropped: nothing here needs a secret, and fixtures must not hold one.
    """
    out: dict[str, Any] = {}
    for key, value in facts.items():
        if key in ("token", "parent_token"):
            continue
        if isinstance(value, dict):
            out[key] = logged_ids(bao, value, device)
        elif isinstance(value, str) and key not in _CLEAR_FACTS and device != "raw":
            out[key] = audit_hash(bao, device, value)
        else:
            out[key] = value
    return out


def audit_hash(bao: OpenBao, device: str, value: str) -> str:
    """The HMAC ``device`` writes for ``value`` (``sys/audit-hash``): a clear id as logged."""
    return str(bao.call("POST", f"sys/audit-hash/{device}", {"input": value})["data"]["hash"])
