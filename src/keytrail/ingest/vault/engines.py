"""Credentials that OpenBao's built-in engines hand out beside tokens and leases: PKI certificates,
SSH certificates and TOTP keys and codes (rows of ``credential_issues``).

An agent's mTLS identity is a certificate from ``pki/issue/<role>``; an SSH certificate from
``ssh/sign/<role>`` opens hosts until it expires; a TOTP key is a second factor that never expires,
a code one that does within a period. Each is read off the one response that proves it, with the
expiry the response logs (``data.expiration`` of a certificate, ``data.expire_time`` of a code) or,
for SSH, the TTL the request asked for when it is logged in clear (the default audit device HMACs
request strings, so an SSH certificate's TTL is then unknown: never guessed from the role).

Identifiers are what the log holds: a certificate's ``serial_number`` (an HMAC unless the device
logs raw values; a serial is not a secret either way), a TOTP key's path. A TOTP code is a secret
while it is valid, so it is never an identifier: the code credential is
``<mount>/code/<key>@<generated>`` and the code's HMAC, when logged, is an attribute.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from keytrail.ingest.vault.mint import d, int64, is_hmac, issue, num, s

_PKI_PATH = re.compile(
    r"^(?P<mount>.+?)/(?:issuer/[^/]+/)?(?P<op>issue|sign|sign-verbatim)(?:/(?P<role>[^/]+))?$"
)
_SSH_PATH = re.compile(r"^(?P<mount>.+?)/(?P<op>sign|issue)/(?P<role>[^/]+)$")
_TOTP_KEY = re.compile(r"^(?P<mount>.+?)/keys/(?P<name>[^/]+)$")
_TOTP_CODE = re.compile(r"^(?P<mount>.+?)/code/(?P<name>[^/]+)$")
_DURATION = re.compile(r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")
_EPOCH = datetime(1970, 1, 1)


def _unix(value: Any) -> datetime | None:
    n = num(value)
    try:
        return _EPOCH + timedelta(seconds=n) if n and n > 0 else None
    except OverflowError:  # past year 9999
        return None


def duration_s(value: Any) -> int | None:
    """Seconds of a TTL as a client sends it: a number, ``"3600"``, a Go duration (``"1h30m"``)."""
    if isinstance(value, str) and value and not is_hmac(value):
        if value.isdecimal():  # not isdigit: "²" is a digit int() cannot read
            return int64(int(value))
        m = _DURATION.fullmatch(value)
        if m and any(m.groups()):
            return int64(int(m["h"] or 0) * 3600 + int(m["m"] or 0) * 60 + int(m["s"] or 0))
        return None
    return num(value)


def _engine(mount_type: str | None, path: str, name: str) -> bool:
    """Whether the mount is engine ``name``: ``mount_type``, else (old logs) the first segment."""
    if mount_type:
        return mount_type == name
    return path.startswith(name)


def _certificate(
    engine: str,
    m: re.Match[str],
    serial: str,
    uid: str,
    qdata: dict[str, Any],
    rdata: dict[str, Any],
    caller: str | None,
    issued: datetime | None,
    lease: str | None,
) -> dict[str, Any]:
    """A PKI (x509) or SSH certificate: its serial as logged; its parent the lease if any (a role
    with ``generate_lease``: the certificate dies with the lease), else the caller's token."""
    cn = s(qdata.get("common_name"))
    cn = None if is_hmac(cn) else cn
    principals = s(qdata.get("valid_principals"))
    attrs = {
        "engine": engine,
        "mount": m["mount"],
        "role": m["role"],
        "endpoint": m["op"],
        "common_name": cn,
        "valid_principals": None if is_hmac(principals) else principals,
        "hmac": is_hmac(serial) or None,
        "lease_id": lease,
        "not_before": num(rdata.get("not_before")),
    }
    if engine == "pki":  # the response logs the expiry
        return issue(
            serial,
            "x509-certificate",
            lease or caller,
            uid,
            issued,
            None,
            cn,
            cn,
            attrs,
            f"Vault PKI {m['op']} response.data.serial_number",
            expires=_unix(rdata.get("expiration")),
        )
    # an SSH signature logs no expiry: the TTL asked for, when the request logs it in clear
    return issue(
        serial,
        "ssh-certificate",
        lease or caller,
        uid,
        issued,
        duration_s(qdata.get("ttl")),
        None,
        None,
        attrs,
        f"Vault SSH {m['op']} response.data.serial_number",
    )


def engine_issues(
    uid: str,
    path: str,
    op: str,
    mount_type: str | None,
    request: dict[str, Any],
    response: dict[str, Any],
    caller: str | None,
    issued: datetime | None,
    lease: str | None,
) -> list[dict[str, Any]]:
    """``credential_issues`` rows for a PKI / SSH / TOTP response (empty for anything else)."""
    rdata, qdata = d(response.get("data")), d(request.get("data"))
    serial = s(rdata.get("serial_number"))
    for engine, rx in (("pki", _PKI_PATH), ("ssh", _SSH_PATH)):
        m = rx.match(path) if serial and _engine(mount_type, path, engine) else None
        if m and serial:
            return [_certificate(engine, m, serial, uid, qdata, rdata, caller, issued, lease)]
    if not _engine(mount_type, path, "totp"):
        return []
    m = _TOTP_KEY.match(path) if op in ("create", "update") else None
    if m and (rdata.get("barcode") or rdata.get("url") or qdata.get("key") or qdata.get("url")):
        attrs = {
            "engine": "totp",
            "mount": m["mount"],
            "key": m["name"],
            "generated": bool(rdata) or None,
            "period": num(qdata.get("period")),
        }
        return [
            issue(
                path,
                "totp-key",
                caller,
                uid,
                issued,
                None,
                None,
                None,
                attrs,
                "Vault TOTP key created (response.data.barcode/url when generated)",
            )
        ]
    m = _TOTP_CODE.match(path) if op == "read" else None
    code = s(rdata.get("code"))
    if m and code:
        generated = num(rdata.get("generated"))
        cred = f"{m['mount']}/code/{m['name']}@{generated if generated is not None else uid}"
        attrs = {
            "engine": "totp",
            "mount": m["mount"],
            "key": f"{m['mount']}/keys/{m['name']}",
            "code": code if is_hmac(code) else None,
        }
        return [
            issue(
                cred,
                "totp-code",
                caller,
                uid,
                issued,
                None,
                None,
                None,
                attrs,
                "Vault TOTP code read (response.data.code)",
                expires=_unix(rdata.get("expire_time")),
            )
        ]
    return []
