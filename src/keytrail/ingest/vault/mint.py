"""Which credentials a Vault request minted: the rows of ``credential_issues``.

Only a response shows what was created, and only at creation time (research/vault.md
§5): Vault never logs a token's parent later, and revocation cascades are silent. So
every issuance is read off the one response entry that proves it:

- a login (``auth/<mount>/...``, not ``auth/token/``, with ``response.auth``): the new
  token's accessor, **without a parent**: a login starts a new token tree, and the token a
  client happens to send with it (the CLI sends whatever its token helper holds) says
  nothing about lineage; it is kept as ``attributes.caller_token_accessor``;
- ``auth/token/create*``: the new token, parent = the creating token (top-level ``auth``),
  orphans included (``attributes.orphan``: Vault will not revoke them with their creator,
  but the creator made them);
- ``auth/token/renew*`` and ``lookup*`` answer with an existing token: they mint nothing;
- ``response.secret.lease_id``: a lease, parent = the caller's token;
- the AWS secrets engine (``<aws mount>/creds|sts/<role>``): the access key when it is
  logged in clear, parent = the lease; always with the IAM user / session name stem
  that Vault's default ``username_template`` produces, so CloudTrail names can be
  matched (``attributes.username_prefix``). A key the audit device HMAC'd that came with a
  lease is a temporary credential (the lease's expiry), never a long-term key;
- AppRole ``role/<r>/secret-id`` responses: the SecretID (its HMAC as logged);
- response wrapping (``response.wrap_info.accessor``): the wrapping token; when it wraps a
  token creation, the wrapped token too (``wrap_info.wrapped_accessor``);
- requests the server makes itself (no ``remote_address``: the dev server's root token
  bootstrap) record what they made, never a parent.

PKI, SSH and TOTP credentials are in :mod:`keytrail.ingest.vault.engines`.
Identifiers are kept exactly as logged, ``hmac-sha256:...`` included.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import orjson

HMAC = "hmac-sha256:"
_AWS_KEY = re.compile(r"^(AKIA|ASIA)[A-Z0-9]{12,124}$")
_AWS_NAME_CHARS = re.compile(r"[^a-zA-Z0-9+=,.@_-]")
_CREDS_PATH = re.compile(r"^(?P<mount>.+?)/(?P<kind>creds|sts)/(?P<role>[^/]+)$")
_LOGIN_MOUNT = re.compile(r"^auth/(?P<mount>.+?)/(?:login|oidc/callback|callback)(?:/|$)")
_SECRET_ID_PATH = re.compile(r"^auth/(?P<mount>.+?)/role/(?P<role>[^/]+)/(?:custom-)?secret-id$")


def dumps(obj: Any) -> bytes:
    """``orjson.dumps(obj)`` in a bytes object of its own size.

    orjson returns its output in a buffer of at least 4 KiB whatever the length; the writer holds
    one per event and credential until its batch is flushed, which made the JSON of a batch cost
    ~8 KiB a row (measured with tracemalloc, orjson 3.13) instead of its ~1 KiB."""
    return bytes(memoryview(orjson.dumps(obj)))


def s(value: Any) -> str | None:
    """A non-empty string, else None (Vault writes ``""``, ``null`` or nothing for absent)."""
    return value if isinstance(value, str) and value else None


def strs(obj: dict[str, Any]) -> dict[str, str]:
    """The non-empty string values of a dict: ``strs(x).get(k)`` is ``s(x.get(k))`` (one pass, then lookups)."""
    return {k: v for k, v in obj.items() if isinstance(v, str) and v}


def d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def num(value: Any) -> int | None:
    """A number as logged (never a bool; HMAC'd strings are not numbers; one beyond 64 bits, which
    no column holds, is none either: a hostile ``1e30`` must not fail the whole file)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int64(int(value))


def int64(n: int) -> int | None:
    """``n`` when a signed 64-bit integer holds it, else None (orjson and DuckDB hold no more)."""
    return n if -(1 << 63) <= n < 1 << 63 else None


def is_hmac(value: str | None) -> bool:
    return bool(value) and value.startswith(HMAC)  # type: ignore[union-attr]


def _compact(obj: dict[str, Any]) -> dict[str, Any]:
    # Drops exactly what ``v not in (None, "", [], {})`` drops: None and empty str/list/dict.
    return {
        k: v
        for k, v in obj.items()
        if v is not None and (v or v.__class__ not in (str, list, dict))
    }


def aws_username_prefix(display_name: str, role: str, unix: int) -> str:
    """The part of Vault's default AWS IAM user / role session name that is not random.

    Default ``username_template`` (Vault >= 1.7, ``builtin/logical/aws/path_config_root.go``):
    ``vault-`` + (normalised display name + ``-`` + normalised role)[:42] + ``-<unix>-<random 20>``,
    the whole cut to 64 characters. Normalising replaces every character outside
    ``[a-zA-Z0-9+=,.@_-]`` with ``_``. The stem (at most 59 characters) always survives the cut.
    """
    return f"{_aws_stem(display_name, role)}-{unix}"


@lru_cache(maxsize=4096)
def _aws_stem(display_name: str, role: str) -> str:
    """``vault-`` + the normalised ``display-role`` cut to 42 (see :func:`aws_username_prefix`)."""
    return f"vault-{_AWS_NAME_CHARS.sub('_', display_name)}-{_AWS_NAME_CHARS.sub('_', role)}"[:48]


def _unix_candidates(req_time: datetime | None, resp_time: datetime | None) -> list[int]:
    """Unix seconds Vault may have stamped into the name: from the request to the response entry."""
    times = [t for t in (req_time, resp_time) if t is not None]
    if not times:
        return []
    lo = int(_epoch(min(times)))
    hi = int(_epoch(max(times)))
    return list(range(lo, min(hi, lo + 5) + 1))


_EPOCH = datetime(1970, 1, 1)


def _epoch(t: datetime) -> float:
    return (t - _EPOCH).total_seconds()


def _expiry(issued: datetime | None, ttl: int | None) -> datetime | None:
    if issued is None or not ttl or ttl <= 0:
        return None
    try:
        return issued + timedelta(seconds=ttl)
    except OverflowError:  # past year 9999: no expiry a case can hold
        return None


def issue(
    cred: str,
    kind: str,
    parent: str | None,
    uid: str,
    issued: datetime | None,
    ttl: int | None,
    principal_uid: str | None,
    principal_name: str | None,
    attributes: dict[str, Any],
    reason: str,
    confidence: str = "proven",
    expires: datetime | None = None,
) -> dict[str, Any]:
    """One ``credential_issues`` row; ``expires`` (a logged expiry) wins over ``issued + ttl``."""
    attrs = _compact(attributes)
    if expires is not None and issued is not None and not ttl:
        ttl = int((expires - issued).total_seconds()) or None
    if ttl:
        attrs["ttl"] = ttl
    return {
        "credential_id": cred,
        "kind": kind,
        "parent_credential_id": parent,
        "event_uid": uid,
        "issued_at": issued,
        "expires_at": expires or _expiry(issued, ttl),
        "principal_uid": principal_uid,
        "principal_name": principal_name,
        "attributes": dumps(attrs),
        "confidence": confidence,
        "reason": reason,
    }


def login_mount(path: str, mount_point: str | None) -> str:
    """Auth mount of a login path (``auth/k8s/prod/login`` -> ``k8s/prod``)."""
    if mount_point and mount_point.startswith("auth/"):
        return mount_point[5:].rstrip("/")
    m = _LOGIN_MOUNT.match(path)
    if m:
        return m["mount"]
    parts = path.split("/")
    return parts[1] if len(parts) > 1 else path


def mint(
    uid: str,
    auth: dict[str, Any],
    request: dict[str, Any],
    response: dict[str, Any],
    rq: dict[str, str],
    req_time: datetime | None,
    resp_time: datetime | None,
) -> list[dict[str, Any]]:
    """``credential_issues`` rows proven by one response entry without ``error``, taken apart.

    ``rq`` is ``strs(request)``.
    """
    path = rq.get("path") or ""
    rauth = d(response.get("auth"))
    new_acc = s(rauth.get("accessor"))
    lease = s(d(response.get("secret")).get("lease_id"))
    wrap = d(response.get("wrap_info"))
    wacc = s(wrap.get("accessor"))
    if not (
        new_acc or lease or wacc or "/creds/" in path or "/sts/" in path or "secret-id" in path
    ):
        return []  # nothing below can match: most responses mint nothing
    issued = resp_time or req_time
    sent = rq.get("client_token_accessor")
    # The server's own requests (dev root token bootstrap) have no client address: no lineage.
    internal = "remote_address" not in rq
    out: list[dict[str, Any]] = []
    mount_type = rq.get("mount_type") or s(response.get("mount_type"))
    mount_point = rq.get("mount_point") or s(response.get("mount_point"))

    if new_acc and path.startswith("auth/token/create"):
        creator = s(auth.get("accessor")) or sent
        role = path.split("/", 3)[3] if path.count("/") >= 3 else None
        data = d(request.get("data"))
        orphan = path.startswith("auth/token/create-orphan") or data.get("no_parent") is True
        attrs = _token_attrs(rauth) | {
            "role": role,
            "orphan": orphan or None,
            "path": path,
            "internal": internal or None,
        }
        out.append(
            issue(
                new_acc,
                "vault-token",
                None if internal else creator,
                uid,
                issued,
                _ttl(rauth),
                s(rauth.get("entity_id")),
                s(rauth.get("display_name")),
                attrs,
                f"Vault {path} response.auth.accessor" + (_INTERNAL if internal else ""),
            )
        )
    elif new_acc and path.startswith("auth/") and not path.startswith("auth/token/"):
        mount = login_mount(path, mount_point)
        meta = d(rauth.get("metadata")) or d(auth.get("metadata"))
        role = s(meta.get("role_name")) or s(meta.get("role"))
        data = d(request.get("data"))
        attrs = _token_attrs(rauth) | {
            "mount": mount,
            "mount_type": mount_type,
            "role": role,
            "identity_ref": f"vault:{mount}/{role}" if role else None,
            "service_account_name": s(meta.get("service_account_name")),
            "service_account_namespace": s(meta.get("service_account_namespace")),
            "caller_token_accessor": sent,
            "login_path": path,
            # HMACs of the role_id / secret_id used (never plain values: those would be secrets).
            "role_id": data.get("role_id") if is_hmac(s(data.get("role_id"))) else None,
            "secret_id": data.get("secret_id") if is_hmac(s(data.get("secret_id"))) else None,
        }
        out.append(
            issue(
                new_acc,
                "vault-token",
                None,
                uid,
                issued,
                _ttl(rauth),
                s(rauth.get("entity_id")),
                s(rauth.get("display_name")),
                attrs,
                f"Vault login ({mount}) response.auth.accessor",
            )
        )

    caller = s(auth.get("accessor")) or sent
    rdata = d(response.get("data"))
    aws = _CREDS_PATH.match(path) if (mount_type in (None, "aws") and path) else None
    if aws and mount_type is None and not path.startswith("aws/"):
        aws = None  # without mount_type only the default mount path is trusted
    aws_attrs: dict[str, Any] = {}
    if aws:
        display = s(auth.get("display_name")) or ""
        unixes = _unix_candidates(req_time, resp_time)
        stem = _aws_stem(display, aws["role"])
        prefixes = [f"{stem}-{u}" for u in unixes]
        aws_attrs = {
            "aws_role": aws["role"],
            "mount": aws["mount"],
            "endpoint": aws["kind"],
            "username_prefix": prefixes[0] if prefixes else None,
            "username_prefix_candidates": prefixes if len(prefixes) > 1 else None,
            "federation_name_prefix": f"vault-{unixes[0]}" if unixes else None,
            "display_name": display or None,
            "access_key": s(rdata.get("access_key")),
            "arn": s(rdata.get("arn")) if not is_hmac(s(rdata.get("arn"))) else None,
        }
    if lease:
        attrs = {
            "path": path,
            "mount_type": mount_type,
            "renewable": d(response.get("secret")).get("renewable"),
        }
        out.append(
            issue(
                lease,
                "vault-lease",
                caller,
                uid,
                issued,
                _lease_ttl(response),
                None,
                None,
                attrs | aws_attrs,
                "Vault response.secret.lease_id",
            )
        )
    if aws:
        key = s(rdata.get("access_key"))
        if key and _AWS_KEY.match(key):
            kind = "aws-temporary-key" if key.startswith("ASIA") else "aws-access-key"
            reason = "Vault AWS secrets engine response.data.access_key"
        elif is_hmac(key):
            # The key id is HMAC'd: keep the issue under the HMAC as logged (matchable with
            # sys/audit-hash) so the graph can join the name stem to the CloudTrail key.
            # STS credentials come with a session token; an IAM user key handed out under a lease is
            # deleted by Vault when the lease ends: both are temporary, expiring with the lease.
            temporary = s(rdata.get("security_token")) or lease
            kind = "aws-temporary-key" if temporary else "aws-access-key"
            reason = "Vault AWS secrets engine response.data.access_key (HMAC'd as logged" + (
                f"; temporary: it lives as long as lease {lease})" if lease else ")"
            )
        else:
            key = None
        if key:
            out.append(
                issue(
                    key,
                    kind,
                    lease or caller,
                    uid,
                    issued,
                    _lease_ttl(response) or num(rdata.get("ttl")),
                    aws_attrs.get("arn"),
                    None,
                    aws_attrs | {"lease_id": lease, "hmac": is_hmac(key) or None},
                    reason,
                )
            )

    sid = _SECRET_ID_PATH.match(path)
    if sid and (s(rdata.get("secret_id")) or s(rdata.get("secret_id_accessor"))):
        value = s(rdata.get("secret_id"))
        cred = value if is_hmac(value) else s(rdata.get("secret_id_accessor"))
        if cred:
            attrs = {
                "mount": sid["mount"],
                "role": sid["role"],
                "identity_ref": f"vault:{sid['mount']}/{sid['role']}",
                "secret_id_accessor": s(rdata.get("secret_id_accessor")),
            }
            out.append(
                issue(
                    cred,
                    "vault-secret-id",
                    caller,
                    uid,
                    issued,
                    num(rdata.get("secret_id_ttl")),
                    None,
                    None,
                    attrs,
                    "Vault AppRole secret-id response.data.secret_id",
                )
            )

    if wacc:
        created = s(wrap.get("creation_path")) or ""
        wrapped = s(wrap.get("wrapped_accessor"))
        attrs = {"wrapping": True, "creation_path": created or None, "wrapped_accessor": wrapped}
        out.append(
            issue(
                wacc,
                "vault-token",
                caller,
                uid,
                issued,
                num(wrap.get("ttl")),
                None,
                None,
                attrs,
                "Vault response.wrap_info.accessor (response-wrapping token)",
            )
        )
        if wrapped and created.startswith("auth/") and created == path:  # not a rewrap
            # The wrapped response is not logged, only its accessor: a token creation's child
            # (parent the creator), a login's new token (no parent, like every login).
            create = created.startswith("auth/token/create")
            attrs = {
                "path": created,
                "wrapped_by": wacc,
                "login_path": None if create else created,
                "orphan": created.startswith("auth/token/create-orphan") or None,
            }
            out.append(
                issue(
                    wrapped,
                    "vault-token",
                    caller if create and not internal else None,
                    uid,
                    issued,
                    None,
                    None,
                    None,
                    attrs,
                    "Vault response.wrap_info.wrapped_accessor (the token inside the "
                    "response-wrapping token)",
                )
            )
    return out


_INTERNAL = " (a request the server made itself: no client address, no parent)"


def _ttl(rauth: dict[str, Any]) -> int | None:
    for key in ("token_ttl", "lease_duration", "ttl"):
        v = num(rauth.get(key))
        if v:
            return v
    return None


def _lease_ttl(response: dict[str, Any]) -> int | None:
    secret = d(response.get("secret"))
    for v in (secret.get("lease_duration"), secret.get("ttl"), response.get("lease_duration")):
        n = num(v)
        if n:
            return n
    return None


def _token_attrs(rauth: dict[str, Any]) -> dict[str, Any]:
    return {
        "policies": rauth.get("policies"),
        "token_policies": rauth.get("token_policies"),
        "identity_policies": rauth.get("identity_policies"),
        "token_type": s(rauth.get("token_type")),
        "metadata": d(rauth.get("metadata")) or None,
        "renewable": rauth.get("renewable"),
        "orphan": rauth.get("orphan"),
        "num_uses": num(rauth.get("num_uses")),
        "entity_created": rauth.get("entity_created"),
        "display_name": s(rauth.get("display_name")),
    }
