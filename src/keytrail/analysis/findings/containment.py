"""The concrete containment step for a credential, by kind, naming the id to act on.

A finding's recommendation must say what to do *now*: which access key to deactivate,
which Vault accessor or lease to revoke, which role's sessions to invalidate. The ids
are the ones in the logs. Where the log only has an HMAC of the accessor (Vault audit
devices HMAC accessors unless told not to), the step says how to find the clear one: an
HMAC never goes where a command needs a real id.
"""

from __future__ import annotations

import re
from typing import Any

_USER = re.compile(r"^arn:aws[a-z-]*:iam::\d+:user/(?:.*/)?(?P<name>[^/]+)$")
_ROLE = re.compile(
    r"^arn:aws[a-z-]*:(?:sts::\d+:assumed-role/(?P<a>[^/]+)|iam::\d+:role/(?:.*/)?(?P<r>[^/]+))"
)
_FED = re.compile(r"^arn:aws[a-z-]*:sts::\d+:federated-user/")
HMAC = "hmac-sha256:"


def vault_aws_key_step(cred: str, parents: list[str] | None) -> str:
    """An AWS key that Vault's AWS engine handed out and the audit device HMAC'd: act on its lease.

    The lease id is logged in clear (``response.secret.lease_id``); revoking it makes Vault delete
    the IAM user / key it created. The real key id is found from the lease or from CloudTrail and
    checked against the HMAC with ``sys/audit-hash``.
    """
    leases = [p for p in parents or [] if not p.startswith(HMAC) and "/" in p]
    find = (
        f"The access key id is only an HMAC in this audit log ({cred}): take the candidate "
        "key id from CloudTrail (the IAM user or session named "
        "vault-<display name>-<role>-<unix time>-...) and confirm it with "
        "vault write sys/audit-hash/<audit device path> input=<AKIA.../ASIA...>"
    )
    if leases:
        lease = leases[0]
        return (
            f"Revoke Vault lease {lease}: vault lease revoke {lease} (Vault deletes the IAM "
            "user or key it made; STS credentials stay valid until they expire, so also "
            "revoke the role's older sessions); "
            f"vault write sys/leases/lookup lease_id={lease} shows its expiry. {find}."
        )
    return (
        f"{find}; then list the engine's leases "
        "(vault list sys/leases/lookup/<aws mount>/creds/<role>) and revoke the one that "
        "issued it (vault lease revoke <lease id>)."
    )


def _kind(cred: str, kind: str | None) -> str:
    if kind:
        return kind
    if cred.startswith("AKIA"):
        return "aws-access-key"
    if cred.startswith("ASIA"):
        return "aws-temporary-key"
    return "unknown"


def step(
    cred: str, kind: str | None, principal: str | None, parents: list[str] | None = None
) -> str:
    """One sentence: how to contain ``cred``."""
    k = _kind(cred, kind)
    principal = principal or ""
    if cred.startswith(HMAC) and k in ("aws-access-key", "aws-temporary-key"):
        return vault_aws_key_step(cred, parents)
    if k == "aws-access-key":
        m = _USER.match(principal)
        user = (
            m.group("name")
            if m
            else "<user: aws iam get-access-key-last-used --access-key-id " + cred + ">"
        )
        return (
            f"Deactivate access key {cred}: aws iam update-access-key --user-name {user} "
            f"--access-key-id {cred} --status Inactive (delete it once the owner confirms)."
        )
    if k == "aws-temporary-key":
        parent = f" and contain {', '.join(parents)}, which minted it" if parents else ""
        if _FED.match(principal):
            return (
                f"Temporary key {cred} (federated user) cannot be revoked alone: deactivate the "
                f"long-term key that called GetFederationToken{parent}."
            )
        u = _USER.match(principal)
        if u:  # an IAM user's console or GetSessionToken session: there is no role to revoke
            user = u.group("name")
            return (
                f"Temporary key {cred} is a session of IAM user {user} and cannot be revoked alone: "
                f"disable the user's console password (aws iam delete-login-profile --user-name {user}), "
                f"deactivate its access keys (aws iam list-access-keys --user-name {user}, then "
                f"aws iam update-access-key --user-name {user} --access-key-id <id> --status Inactive), "
                f"and end sessions already issued with a deny on aws:TokenIssueTime attached to user "
                f"{user}{parent}."
            )
        m = _ROLE.match(principal)
        role = (m.group("a") or m.group("r")) if m else "<the role it assumed>"
        return (
            f"Temporary key {cred} cannot be revoked alone: revoke active sessions of role {role} "
            f"(IAM console 'Revoke active sessions', an AWSRevokeOlderSessions deny on "
            f"aws:TokenIssueTime){parent}."
        )
    if k == "vault-token":
        if cred.startswith("hmac-sha256:"):
            return (
                f"Revoke the Vault token whose accessor HMAC is {cred}: hash candidates with "
                f"vault write sys/audit-hash/<audit path> input=<accessor> over "
                f"vault list auth/token/accessors, then vault token revoke -accessor <accessor>."
            )
        return f"Revoke Vault token accessor {cred}: vault token revoke -accessor {cred}."
    if k == "vault-lease":
        return f"Revoke Vault lease {cred}: vault lease revoke {cred}."
    if k == "vault-secret-id":
        if cred.startswith(HMAC):
            return (
                f"Destroy the AppRole secret id whose HMAC is {cred}: list its accessors with "
                f"vault list auth/<approle mount>/role/<role>/secret-id, then "
                f"vault write auth/<approle mount>/role/<role>/secret-id-accessor/destroy "
                f"secret_id_accessor=<accessor> (or destroy them all and issue a new one)."
            )
        return f"Destroy the AppRole secret id {cred}: vault write auth/approle/role/<role>/secret-id-accessor/destroy secret_id_accessor={cred}."
    if k == "x509-certificate":
        serial = cred
        if cred.startswith(HMAC):
            serial = "<serial: vault list <pki mount>/certs, matched with sys/audit-hash>"
        return (
            f"Revoke certificate {cred}: vault write <pki mount>/revoke "
            f"serial_number={serial}, and make services that trust the CA check the CRL."
        )
    if k == "ssh-certificate":
        return (
            f"SSH certificate {cred} cannot be revoked by Vault: add its key to the hosts' "
            "RevokedKeys list or rotate the SSH CA "
            "(vault write <ssh mount>/config/ca generate_signing_key=true)."
        )
    if k in ("totp-key", "totp-code"):
        key = cred.split("@", 1)[0].replace("/code/", "/keys/")
        return f"Delete the TOTP key {key} (vault delete {key}) and enrol a new one."
    if k == "agent-credential-ref":
        return f"Rotate the secret the agent logs as {cred} at its issuer and invalidate the agent sessions that hold it."
    return f"Disable credential {cred} at its issuer."


def containment_steps(
    creds: list[str], info: dict[str, dict[str, Any]], limit: int = 5
) -> list[str]:
    """Steps for up to ``limit`` credentials (the rest are counted, not dropped silently)."""
    out = []
    for cred in creds[:limit]:
        row = info.get(cred, {})
        out.append(step(cred, row.get("kind"), row.get("principal"), row.get("parents")))
    if len(creds) > limit:
        out.append(f"Likewise for {len(creds) - limit} more credential(s) listed in subjects.")
    return out
