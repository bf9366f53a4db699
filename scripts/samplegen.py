"""Record builders in the real log formats, shared by the sample-incident and scale generators.

Why a separate module: ``gen_incident.py`` tells one hand-written story and
``gen_scale.py`` repeats the same shapes millions of times; both must write exactly
the same formats, so the shapes live here once.

Every builder takes explicit values and a seeded ``random.Random`` (never the global
one, never the clock), so output is byte-for-byte reproducible:

- CloudTrail records follow eventVersion 1.08 (``tlsDetails``, ``eventCategory``,
  ``managementEvent``, ``recipientAccountId``, ``sessionCredentialFromConsole``), in
  the S3 delivery layout ``AWSLogs/<acct>/CloudTrail/<region>/YYYY/MM/DD/
  <acct>_CloudTrail_<region>_<YYYYMMDDTHHMMZ>_<16 chars>.json.gz`` as
  ``{"Records": [...]}``.
- Vault audit entries are shaped like Vault 1.17 file-device lines (see
  ``shared/research/vault.md`` §2): request/response pairs sharing ``request.id``,
  ``hmac-sha256:<64 hex>`` for tokens, accessors and ``data`` string leaves, computed
  with one fixed salt so equal plaintexts give equal HMACs, as one audit device does.
- OTLP traces are Collector file-exporter lines (one ``{"resourceSpans": [...]}`` per
  line, ids in hex, times as nanosecond strings).
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import io
import json
import random
import string
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # the alphabet of AWS unique-id suffixes
ALNUM = string.ascii_letters + string.digits
AUDIT_SALT = b"keytrail-sample-audit-device-salt"  # one audit device -> one salt

TLS = {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256"}


class Ids:
    """Identifier factory: every id drawn from one seeded RNG, in call order."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def key(self, prefix: str) -> str:
        """AWS access key id / unique id: 4-letter prefix + 16 base32 characters (20 total)."""
        return prefix + "".join(self.rng.choice(B32) for _ in range(16))

    def unique(self, prefix: str) -> str:
        """IAM unique ids (AIDA/AROA): 21 characters."""
        return prefix + "".join(self.rng.choice(B32) for _ in range(17))

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def hex(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789abcdef") for _ in range(n))

    def alnum(self, n: int) -> str:
        return "".join(self.rng.choice(ALNUM) for _ in range(n))

    def upper(self, n: int) -> str:
        return "".join(self.rng.choice(string.ascii_uppercase + string.digits) for _ in range(n))


def hmac_str(plain: str) -> str:
    """What one Vault audit device writes for a plaintext string."""
    return "hmac-sha256:" + hmac.new(AUDIT_SALT, plain.encode(), hashlib.sha256).hexdigest()


def hmac_data(obj: Any, keep: frozenset[str] = frozenset(), key: str | None = None) -> Any:
    """HMAC every string leaf except under keys in ``keep`` (audit_non_hmac_*_keys) and RFC 3339 times."""
    if isinstance(obj, dict):
        return {k: hmac_data(v, keep, k) for k, v in obj.items()}
    if isinstance(obj, list):
        return [hmac_data(v, keep, key) for v in obj]
    if isinstance(obj, str) and key not in keep and not _is_rfc3339(obj):
        return hmac_str(obj)
    return obj


def _is_rfc3339(s: str) -> bool:
    try:
        datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ")
        return True
    except ValueError:
        return False


# ---------------------------------------------------------------- time formats


def ct_time(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def vault_time(t: datetime) -> str:
    """RFC 3339 nano with trailing zeros trimmed, as Vault writes it."""
    frac = f"{t.microsecond:06d}".rstrip("0")
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


def aws_display_time(t: datetime) -> str:
    """The 'Mar 2, 2026, 9:00:01 AM' form IAM/STS put in responseElements."""
    h = t.hour % 12 or 12
    return f"{t:%b} {t.day}, {t.year}, {h}:{t:%M:%S} {'AM' if t.hour < 12 else 'PM'}"


def unix_nanos(t: datetime) -> str:
    return str(int(t.replace(tzinfo=UTC).timestamp()) * 1_000_000_000 + t.microsecond * 1000)


def unix(t: datetime) -> int:
    return int(t.replace(tzinfo=UTC).timestamp())


# ---------------------------------------------------------------- CloudTrail


def iam_user_identity(acct: str, user: str, aida: str, key: str | None) -> dict[str, Any]:
    ident: dict[str, Any] = {
        "type": "IAMUser",
        "principalId": aida,
        "arn": f"arn:aws:iam::{acct}:user/{user}",
        "accountId": acct,
    }
    if key:
        ident["accessKeyId"] = key
    ident["userName"] = user
    return ident


def role_identity(
    acct: str,
    role: str,
    session: str,
    aroa: str,
    key: str,
    created: datetime,
    source_identity: str | None = None,
) -> dict[str, Any]:
    attrs: dict[str, Any] = {"creationDate": ct_time(created), "mfaAuthenticated": "false"}
    ctx: dict[str, Any] = {
        "sessionIssuer": {
            "type": "Role",
            "principalId": aroa,
            "arn": f"arn:aws:iam::{acct}:role/{role}",
            "accountId": acct,
            "userName": role,
        },
        "attributes": attrs,
    }
    if source_identity:
        ctx["sourceIdentity"] = source_identity
    return {
        "type": "AssumedRole",
        "principalId": f"{aroa}:{session}",
        "arn": f"arn:aws:sts::{acct}:assumed-role/{role}/{session}",
        "accountId": acct,
        "accessKeyId": key,
        "sessionContext": ctx,
    }


def console_identity(
    acct: str, user: str, aida: str, key: str, created: datetime
) -> dict[str, Any]:
    ident = iam_user_identity(acct, user, aida, key)
    ident["sessionContext"] = {
        "sessionIssuer": {},
        "webIdFederationData": {},
        "attributes": {"creationDate": ct_time(created), "mfaAuthenticated": "false"},
    }
    return ident


def ct_event(
    ids: Ids,
    t: datetime,
    acct: str,
    region: str,
    identity: dict[str, Any],
    source: str,
    name: str,
    *,
    ip: str,
    ua: str,
    request: dict[str, Any] | None = None,
    response: Any = None,
    resources: list[dict[str, Any]] | None = None,
    read_only: bool | None = None,
    error: tuple[str, str] | None = None,
    data_event: bool = False,
    shared_event_id: str | None = None,
    request_id: str | None = None,
    additional: dict[str, Any] | None = None,
    console: bool = False,
    event_type: str = "AwsApiCall",
) -> dict[str, Any]:
    """One CloudTrail record (eventVersion 1.08 field set, keys in CloudTrail's usual order)."""
    rec: dict[str, Any] = {
        "eventVersion": "1.08",
        "userIdentity": identity,
        "eventTime": ct_time(t),
        "eventSource": f"{source}.amazonaws.com",
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": ip,
        "userAgent": ua,
    }
    if error:
        rec["errorCode"], rec["errorMessage"] = error
    rec["requestParameters"] = request
    rec["responseElements"] = None if error else response
    if additional is not None:
        rec["additionalEventData"] = additional
    rec["requestID"] = request_id or (ids.upper(16) if source == "s3" else ids.uuid())
    rec["eventID"] = ids.uuid()
    if read_only is not None:
        rec["readOnly"] = read_only
    if resources:
        rec["resources"] = resources
    rec["eventType"] = event_type
    rec["managementEvent"] = not data_event
    rec["recipientAccountId"] = acct
    if shared_event_id:
        rec["sharedEventID"] = shared_event_id
    rec["eventCategory"] = "Data" if data_event else "Management"
    if event_type == "AwsApiCall":
        host = (
            f"{source}.amazonaws.com"
            if source in ("iam", "sts") and region == "us-east-1"
            else f"{source}.{region}.amazonaws.com"
        )
        rec["tlsDetails"] = dict(TLS, clientProvidedHostHeader=host)
    if console:
        rec["sessionCredentialFromConsole"] = "true"
    return rec


def s3_object_event(
    ids: Ids,
    t: datetime,
    acct: str,
    region: str,
    identity: dict[str, Any],
    name: str,
    bucket: str,
    key: str,
    *,
    ip: str,
    ua: str,
    bucket_acct: str | None = None,
    error: tuple[str, str] | None = None,
    size: int = 0,
) -> dict[str, Any]:
    """An S3 object-level data event (GetObject, PutObject, DeleteObject)."""
    out = size if name == "GetObject" and not error else 0
    inn = size if name == "PutObject" else 0
    return ct_event(
        ids,
        t,
        acct,
        region,
        identity,
        "s3",
        name,
        ip=ip,
        ua=ua,
        data_event=True,
        error=error,
        read_only=name in ("GetObject", "HeadObject"),
        request={"bucketName": bucket, "Host": f"{bucket}.s3.{region}.amazonaws.com", "key": key},
        response=None,
        additional={
            "SignatureVersion": "SigV4",
            "CipherSuite": "TLS_AES_128_GCM_SHA256",
            "bytesTransferredIn": inn,
            "AuthenticationMethod": "AuthHeader",
            "x-amz-id-2": ids.alnum(56),
            "bytesTransferredOut": out,
        },
        resources=[
            {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"},
            {
                "accountId": bucket_acct or acct,
                "type": "AWS::S3::Bucket",
                "ARN": f"arn:aws:s3:::{bucket}",
            },
        ],
    )


def assume_role_response(
    ids: Ids,
    t: datetime,
    role_acct: str,
    role: str,
    session: str,
    aroa: str,
    new_key: str,
    hours: int = 1,
) -> dict[str, Any]:
    return {
        "credentials": {
            "accessKeyId": new_key,
            "sessionToken": "IQoJb3JpZ2luX2VjE" + ids.alnum(120),
            "expiration": aws_display_time(t + timedelta(hours=hours)),
        },
        "assumedRoleUser": {
            "assumedRoleId": f"{aroa}:{session}",
            "arn": f"arn:aws:sts::{role_acct}:assumed-role/{role}/{session}",
        },
    }


def ct_file_name(acct: str, region: str, t: datetime, ids: Ids) -> str:
    return (
        f"AWSLogs/{acct}/CloudTrail/{region}/{t:%Y/%m/%d}/"
        f"{acct}_CloudTrail_{region}_{t:%Y%m%dT%H%MZ}_{ids.alnum(16)}.json.gz"
    )


def write_gz_json(path: Path, doc: Any) -> int:
    """gzip with mtime 0 and no file name in the header, so bytes are reproducible."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = json.dumps(doc, separators=(",", ":")).encode()
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw)
    path.write_bytes(buf.getvalue())
    return len(buf.getvalue())


# ---------------------------------------------------------------- Vault


class VaultToken:
    """A Vault token as the audit device sees it: HMAC'd token and accessor, plain identity."""

    def __init__(
        self,
        ids: Ids,
        display_name: str,
        policies: list[str],
        entity_id: str,
        metadata: dict[str, str] | None,
        issued: datetime,
        ttl: int = 3600,
    ) -> None:
        self.token = "hvs.CAESI" + ids.alnum(86)
        self.accessor_plain = ids.alnum(24)
        self.display_name = display_name
        self.policies = policies
        self.entity_id = entity_id
        self.metadata = metadata
        self.issued = issued
        self.ttl = ttl

    @property
    def accessor(self) -> str:
        """The accessor as logged (hmac_accessor defaults to true)."""
        return hmac_str(self.accessor_plain)

    def auth(self, allowed: bool = True, policy: str | None = None) -> dict[str, Any]:
        a: dict[str, Any] = {
            "client_token": hmac_str(self.token),
            "accessor": self.accessor,
            "display_name": self.display_name,
            "policies": self.policies,
            "token_policies": self.policies,
            "metadata": self.metadata,
            "entity_id": self.entity_id,
            "token_type": "service",
            "token_ttl": self.ttl,
            "token_issue_time": ct_time(self.issued),
        }
        granting = (
            [{"name": policy or self.policies[-1], "namespace_id": "root", "type": "acl"}]
            if allowed
            else []
        )
        a["policy_results"] = {"allowed": allowed, "granting_policies": granting}
        return a

    def response_auth(self) -> dict[str, Any]:
        return {
            "client_token": hmac_str(self.token),
            "accessor": self.accessor,
            "display_name": self.display_name,
            "policies": self.policies,
            "token_policies": self.policies,
            "metadata": self.metadata,
            "num_uses": 0,
            "entity_id": self.entity_id,
            "token_type": "service",
            "token_ttl": self.ttl,
            "token_issue_time": ct_time(self.issued),
        }


MOUNTS = {
    "secret/": ("kv", "kv_5e0c3a1f", "secret", "v0.20.0+builtin"),
    "aws/": ("aws", "aws_9b2d7e44", "secret", "v1.17.3+builtin.vault"),
    "auth/approle/": ("approle", "auth_approle_1f3c9a20", "auth", "v1.17.3+builtin.vault"),
    "auth/token/": ("token", "auth_token_6d2e0b17", "auth", "v1.17.3+builtin.vault"),
    "auth/userpass/": ("userpass", "auth_userpass_0c4b8d91", "auth", "v1.17.3+builtin.vault"),
    "sys/": ("system", "system_2a7f3c55", "", "v1.17.3+builtin.vault"),
}


def vault_pair(
    ids: Ids,
    t: datetime,
    caller: dict[str, Any],
    operation: str,
    mount: str,
    path: str,
    *,
    remote: str,
    data: dict[str, Any] | None = None,
    response: dict[str, Any] | None = None,
    error: str | None = None,
    resp_auth_top: dict[str, Any] | None = None,
    keep_response_keys: frozenset[str] = frozenset(),
    latency_ms: int = 4,
) -> list[dict[str, Any]]:
    """The request and response entries Vault writes for one call.

    ``caller`` is the top-level ``auth`` of the request; ``resp_auth_top`` replaces it in the
    response entry (a login response's top-level auth is the new token).
    """
    mtype, macc, mclass, mver = MOUNTS[mount]
    req: dict[str, Any] = {"id": ids.uuid()}
    if caller.get("entity_id"):
        req["client_id"] = caller["entity_id"]
    req["operation"] = operation
    req.update(
        {
            "mount_point": mount,
            "mount_type": mtype,
            "mount_accessor": macc,
            "mount_running_version": mver,
        }
    )
    if mclass:
        req["mount_class"] = mclass
    if "client_token" in caller:
        req["client_token"] = caller["client_token"]
        req["client_token_accessor"] = caller["accessor"]
    req["namespace"] = {"id": "root"}
    req["path"] = path
    if data is not None:
        req["data"] = hmac_data(data)
    req["remote_address"] = remote
    req["remote_port"] = 40000 + ids.rng.randrange(20000)
    request_entry: dict[str, Any] = {
        "time": vault_time(t),
        "type": "request",
        "auth": caller,
        "request": req,
    }
    if error:
        request_entry["error"] = error
    resp: dict[str, Any] = {
        "mount_point": mount,
        "mount_type": mtype,
        "mount_accessor": macc,
        "mount_running_plugin_version": mver,
    }
    if mclass:
        resp["mount_class"] = mclass
    if response:
        for k, v in response.items():
            resp[k] = hmac_data(v, keep_response_keys) if k == "data" else v
    response_entry: dict[str, Any] = {
        "time": vault_time(t + timedelta(milliseconds=latency_ms)),
        "type": "response",
        "auth": resp_auth_top or caller,
        "request": req,
        "response": resp,
    }
    if error:
        response_entry["error"] = error
    return [request_entry, response_entry]


DENIED = "1 error occurred:\n\t* permission denied\n\n"


def vault_aws_name(display_name: str, role: str, t: datetime, ids: Ids) -> str:
    """Vault's default IAM user / assumed-role session name template (vault.md §6.1)."""
    norm = "".join(c if c.isalnum() or c in "+=,.@_-" else "_" for c in display_name)
    return f"vault-{(norm + '-' + role)[:42]}-{unix(t)}-{ids.alnum(20)}"[:64]


# ---------------------------------------------------------------- OTLP


def attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def span(
    trace_id: str,
    span_id: str,
    parent: str,
    name: str,
    start: datetime,
    end: datetime,
    kind: int,
    attrs: dict[str, Any],
    error: str | None = None,
) -> dict[str, Any]:
    s: dict[str, Any] = {
        "traceId": trace_id,
        "spanId": span_id,
        "parentSpanId": parent,
        "flags": 257,
        "name": name,
        "kind": kind,
        "startTimeUnixNano": unix_nanos(start),
        "endTimeUnixNano": unix_nanos(end),
        "attributes": [attr(k, v) for k, v in attrs.items() if v is not None],
    }
    s["status"] = {"code": 2, "message": error} if error else {"code": 1}
    return s


def otlp_line(
    service: str, service_version: str, host: str, spans: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [
                        attr("service.name", service),
                        attr("service.version", service_version),
                        attr("host.name", host),
                        attr("telemetry.sdk.language", "python"),
                        attr("telemetry.sdk.name", "opentelemetry"),
                        attr("telemetry.sdk.version", "1.33.1"),
                    ]
                },
                "scopeSpans": [
                    {
                        "scope": {
                            "name": "opentelemetry.instrumentation.openai_agents",
                            "version": "0.54b1",
                        },
                        "spans": spans,
                    }
                ],
                "schemaUrl": "https://opentelemetry.io/schemas/1.37.0",
            }
        ]
    }


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for r in rows:
            fh.write(json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n")
