"""One Vault audit request/response pair (or KMIP entry, or server log line) -> case rows.

The column rules are documented in ``docs/formats/vault.md``; the ones that need care:

- a login response's top-level ``auth`` is the *new* token, so the event's
  ``credential_id`` for a login is the token it produced; the token the client sent
  with the login (if any) is ``details.client_token_accessor`` and the issue's parent;
- ``human_id`` is set only when the token's own metadata or display name names a
  human login: ``metadata.email``; ``oidc-<claim>`` display names; ``userpass-``,
  ``ldap-``, ``okta-``, ``radius-`` display names (``metadata.username`` or the rest);
- ``agent_id`` only from explicit ``metadata.agent_id`` / ``agent-id`` / ``agent``;
- ``request.data`` / ``response.data`` values are HMACs: only their keys are kept in
  ``details`` (the raw record still has everything).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from keytrail.ingest.vault.engines import engine_issues
from keytrail.ingest.vault.mint import d, dumps, int64, is_hmac, mint, num, s, strs
from keytrail.store import carried
from keytrail.store.schema import TABLES_BY_NAME
from keytrail.timefmt import to_utc
from keytrail.timefmt import utc_z_time as vault_time
from keytrail.workload_claims import workload_family

READ_OPS = frozenset({"read", "list", "help"})
WRITE_OPS = frozenset({"create", "update", "delete", "patch", "revoke", "renew", "rollback"})
_HUMAN_PREFIXES = ("userpass-", "ldap-", "okta-", "radius-")
_HUMAN_STARTS = ("oidc-", *_HUMAN_PREFIXES)
_AGENT_KEYS = ("agent_id", "agent-id", "agent")
_LEASE_IN_LOG = re.compile(r"lease_id=(\S+)")
_CREDS_IN_PATH = re.compile(r"/(?:creds|sts|static-creds)/")
_SECRET_MOUNTS = ("kv", "secret", "generic", "cubbyhole")
#: Engines whose responses hand out credentials other than tokens and leases (engines.py).
_ENGINES = ("pki", "ssh", "totp")
_ADDR_PORT = re.compile(
    r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<v4>\d{1,3}(?:\.\d{1,3}){3})):(?P<port>\d+)$"
)
#: KMIP 1.x Operation enumeration (OASIS KMIP Specification v1.4, 9.1.3.2.27).
KMIP_OPERATIONS = {
    0x01: "Create",
    0x02: "CreateKeyPair",
    0x03: "Register",
    0x04: "ReKey",
    0x05: "DeriveKey",
    0x06: "Certify",
    0x07: "ReCertify",
    0x08: "Locate",
    0x09: "Check",
    0x0A: "Get",
    0x0B: "GetAttributes",
    0x0C: "GetAttributeList",
    0x0D: "AddAttribute",
    0x0E: "ModifyAttribute",
    0x0F: "DeleteAttribute",
    0x10: "ObtainLease",
    0x11: "GetUsageAllocation",
    0x12: "Activate",
    0x13: "Revoke",
    0x14: "Destroy",
    0x15: "Archive",
    0x16: "Recover",
    0x17: "Validate",
    0x18: "Query",
    0x19: "Cancel",
    0x1A: "Poll",
    0x1B: "Notify",
    0x1C: "Put",
    0x1D: "ReKeyKeyPair",
    0x1E: "DiscoverVersions",
    0x1F: "Encrypt",
    0x20: "Decrypt",
    0x21: "Sign",
    0x22: "SignatureVerify",
    0x23: "MAC",
    0x24: "MACVerify",
    0x25: "RNGRetrieve",
    0x26: "RNGSeed",
    0x27: "Hash",
    0x28: "CreateSplitKey",
    0x29: "JoinSplitKey",
    0x2A: "Import",
    0x2B: "Export",
}
_KMIP_PERMISSION_DENIED = 0x0C  # ResultReason "Permission Denied"


class Entry:
    """One parsed audit entry and where it was (``raw`` is decoded from the line only when asked)."""

    __slots__ = ("_raw", "line_no", "obj", "offset", "request_id", "time", "time_raw", "type")

    def __init__(self, obj: dict[str, Any], line_no: int, offset: int, raw: bytes | str) -> None:
        self.obj = obj
        self.line_no = line_no
        self.offset = offset
        self._raw = raw
        t = obj.get("time")
        self.time_raw: str | None = t if isinstance(t, str) and t else None
        self.time: datetime | None = vault_time(self.time_raw) if self.time_raw else None
        self.type: str = str(obj.get("type"))
        rid = d(obj.get("request")).get("id")
        self.request_id: str | None = rid if isinstance(rid, str) and rid else None

    @property
    def raw(self) -> str:
        if isinstance(self._raw, bytes):
            self._raw = self._raw.decode("utf-8", errors="replace")
        return self._raw

    @property
    def raw_undecoded(self) -> bytes | str:
        """The record as read (bytes) unless already decoded: what an event's ``raw`` column is built from."""
        return self._raw


@dataclass(slots=True)
class Rows:
    event: dict[str, Any]
    resources: list[dict[str, Any]]
    issues: list[dict[str, Any]]


#: Every ``events`` column an adapter writes, in schema order (all keys of every event dict);
#: not the CloudTrail ingest's ``ct_*`` columns (:mod:`keytrail.store.carried`).
EVENT_COLUMNS = tuple(
    c.name
    for c in TABLES_BY_NAME["events"].columns
    if c.name != "file_id" and c.name not in carried.COLUMNS
)
_NO_EVENT = dict.fromkeys(EVENT_COLUMNS)


def raw_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", errors="replace")).hexdigest()[:32]


def _json(obj: dict[str, Any]) -> bytes:
    """``obj`` without its empty values as JSON (UTF-8 bytes: the writer never decodes them).

    Drops exactly what ``v not in (None, "", [], {})`` drops: None and empty str/list/dict.
    """
    return dumps(
        {
            k: v
            for k, v in obj.items()
            if v is not None and (v or v.__class__ not in (str, list, dict))
        }
    )


@lru_cache(maxsize=8192)  # clients and paths repeat: a hit is cheaper than the regexes
def split_address(addr: str | None) -> tuple[str | None, int | None]:
    """``10.0.0.1:36776`` / ``[2001:db8::10]:36778`` -> (ip, port); a bare address passes through."""
    if not addr:
        return None, None
    m = _ADDR_PORT.match(addr)
    if m:
        return m["v6"] or m["v4"], int64(int(m["port"]))
    return addr, None


@lru_cache(maxsize=8192)
def resource_type(path: str, mount_type: str | None) -> str:
    """``vault-auth``, ``vault-sys``, ``vault-creds``, ``vault-secret``, ``vault-<engine>`` or ``vault-path``."""
    first = path.split("/", 1)[0]
    if first == "auth":
        return "vault-auth"
    if first == "sys":
        return "vault-sys"
    if first == "identity":
        return "vault-identity"
    if _CREDS_IN_PATH.search(path):
        return "vault-creds"
    mt = (mount_type or "").lower()
    if mt in _SECRET_MOUNTS or (not mt and first.startswith(("kv", "secret", "cubbyhole"))):
        return "vault-secret"
    if mt:
        return f"vault-{mt}"
    for engine in (
        "transit",
        "pki",
        "totp",
        "database",
        "ssh",
        "aws",
        "gcp",
        "azure",
        "consul",
        "nomad",
    ):
        if first.startswith(engine):
            return f"vault-{engine}"
    return "vault-path"


def human_of(auth: dict[str, Any]) -> str | None:
    """The human a token names by its own login (see the module docstring), else None."""
    return _human_in(d(auth.get("metadata")), s(auth.get("display_name")))


def _human_in(meta: dict[str, Any], display_name: str | None) -> str | None:
    email = s(meta.get("email"))
    if email and "@" in email:
        return email
    display = display_name or ""
    if not display.startswith(_HUMAN_STARTS):
        return None
    if display.startswith("oidc-") and len(display) > 5:
        # an OIDC role whose user claim is a CI or cluster subject logs in a workload
        return None if workload_family(display[5:]) else display[5:]
    for prefix in _HUMAN_PREFIXES:
        if display.startswith(prefix) and len(display) > len(prefix):
            return s(meta.get("username")) or display[len(prefix) :]
    return None


def agent_of(auth: dict[str, Any]) -> str | None:
    return _agent_in(d(auth.get("metadata")))


def _agent_in(meta: dict[str, Any]) -> str | None:
    if not meta:
        return None
    for key in _AGENT_KEYS:
        if s(meta.get(key)):
            return str(meta[key])
    return None


def build(uid: str, req: Entry | None, resp: Entry | None, fmt: str) -> Rows:
    """Rows for a request/response pair; either side may be missing."""
    main = resp or req
    assert main is not None
    obj = main.obj
    auth, request, response = d(obj.get("auth")), d(obj.get("request")), d(obj.get("response"))
    rq = strs(request)  # the non-empty string fields: ``rq.get(k)`` is ``s(request.get(k))``
    op = rq.get("operation") or "unknown"
    path = rq.get("path")
    ns = d(request.get("namespace"))
    ns_path = s(ns.get("path"))
    mount_type = rq.get("mount_type") or s(response.get("mount_type"))
    own_error = s(obj.get("error"))
    error = own_error or (s(req.obj.get("error")) if req else None)
    sent = rq.get("client_token_accessor")
    caller = s(auth.get("accessor")) or sent
    display = s(auth.get("display_name"))
    entity = s(auth.get("entity_id"))
    actor_uid = entity or display
    meta = d(auth.get("metadata"))
    allowed = d(auth.get("policy_results")).get("allowed") if "policy_results" in auth else None
    ip, port = split_address(rq.get("remote_address"))
    first = req if req is not None and req.time is not None else main
    ua = d(request.get("headers")).get("user-agent") if "headers" in request else None
    user_agent = (
        ", ".join(x for x in ua if isinstance(x, str) and not is_hmac(x))
        if isinstance(ua, list)
        else None
    )
    rauth = d(response.get("auth"))
    wrap = d(response.get("wrap_info"))
    answered = resp is not None and resp.type == "response"
    paired = req is not None and resp is not None
    mtype = main.type
    data = request.get("data")
    rdata = response.get("data")
    details = {
        "entry": "pair" if paired else ("response" if resp else "request"),
        "entry_type": mtype if mtype != "request" and mtype != "response" else None,
        "request_record_no": req.line_no if paired else None,  # type: ignore[union-attr]
        "request_byte_offset": req.offset if paired else None,  # type: ignore[union-attr]
        "request_time": req.time_raw if req else None,
        "response_time": resp.time_raw if resp else None,
        "namespace_id": s(ns.get("id")),
        "mount_type": mount_type,
        "mount_point": rq.get("mount_point") or s(response.get("mount_point")),
        "mount_accessor": rq.get("mount_accessor") or s(response.get("mount_accessor")),
        "mount_class": rq.get("mount_class") or s(response.get("mount_class")),
        "display_name": display,
        "entity_id": entity,
        "policies": auth.get("policies"),
        "token_policies": auth.get("token_policies"),
        "identity_policies": auth.get("identity_policies"),
        "token_type": s(auth.get("token_type")),
        "metadata": meta or None,
        "token_ttl": num(auth.get("token_ttl")),
        "token_issue_time": s(auth.get("token_issue_time")),
        "remaining_uses": num(auth.get("remaining_uses")),
        "entity_created": auth.get("entity_created") or None,
        "policy_allowed": allowed,
        "client_token_accessor": sent,
        "client_id": rq.get("client_id"),
        "request_uri": rq.get("request_uri"),
        "remote_port": num(request.get("remote_port")) or port,
        "forwarded_from": s(obj.get("forwarded_from"))
        or (s(req.obj.get("forwarded_from")) if req else None),
        "data_keys": sorted(data) if isinstance(data, dict) and data else None,
        "response_data_keys": sorted(rdata) if isinstance(rdata, dict) and rdata else None,
        "lease_id": s(d(response.get("secret")).get("lease_id")) if "secret" in response else None,
        "response_auth": _response_auth(rauth) if rauth else None,
        "wrap_info": _wrap_info(wrap) if wrap else None,
        "revoked_accessor": _revoked(path, data, caller),
        # list responses: how many keys (an ``elide_list_responses`` device logs only the count)
        "listed_keys": _listed(rdata) if op == "list" else None,
    }
    if error:
        outcome = "denied" if "permission denied" in error.lower() else "failure"
    elif allowed is False:
        outcome = "denied"
    else:
        outcome = "success" if answered else "unknown"
    event = {
        "event_uid": uid,
        "source": "vault",
        "format": fmt,
        "source_event_id": rq.get("id"),
        "time": first.time,
        "time_raw": first.time_raw,
        "action": f"vault:{op}",
        "service": "vault",
        "operation": op,
        "read_only": True if op in READ_OPS else (False if op in WRITE_OPS else None),
        "outcome": outcome,
        "error_code": None,
        "error_message": error,
        "actor_uid": actor_uid,
        "actor_type": "vault-token" if (actor_uid or caller) else None,
        "actor_name": display,
        "credential_id": caller,
        "credential_kind": "vault-token" if caller else None,
        "session_id": None,
        "agent_id": _agent_in(meta),
        "human_id": _human_in(meta, display),
        "src_ip": ip,
        "user_agent": user_agent,
        "account": ns_path,
        "region": None,
        "target": path,
        "trace_id": None,
        "span_id": None,
        "parent_span_id": None,
        "shared_event_id": None,
        "request_id": None,
        "details": _json(details),
        "raw": main.raw_undecoded,
        "record_no": main.line_no,
        "byte_offset": main.offset,
    }
    resources = []
    if path:
        resources.append(
            {
                "event_uid": uid,
                "resource_id": f"vault:{ns_path or ''}{path}",
                "resource_type": resource_type(path, mount_type),
                "account": ns_path,
            }
        )
    issues = []
    if resp is not None and answered and not own_error:
        issues = mint(uid, auth, request, response, rq, req.time if req else None, resp.time)
        if path and (mount_type in _ENGINES or (mount_type is None and path.startswith(_ENGINES))):
            issues += engine_issues(
                uid,
                path,
                op,
                mount_type,
                request,
                response,
                caller,
                resp.time or (req.time if req else None),
                s(d(response.get("secret")).get("lease_id")),
            )
    return Rows(event, resources, issues)


def _revoked(path: str | None, data: Any, caller: str | None) -> str | None:
    """The accessor a token revocation names (its children die with it; Vault logs no cascade)."""
    if path == "auth/token/revoke-self":
        return caller
    if path == "auth/token/revoke-accessor" and isinstance(data, dict):
        return s(data.get("accessor"))
    return None


def _listed(rdata: Any) -> int | None:
    keys = rdata.get("keys") if isinstance(rdata, dict) else None
    if isinstance(keys, list):
        return len(keys)
    return num(keys)


def _response_auth(rauth: dict[str, Any]) -> dict[str, Any] | None:
    return {
        k: v
        for k, v in {
            "accessor": s(rauth.get("accessor")),
            "display_name": s(rauth.get("display_name")),
            "entity_id": s(rauth.get("entity_id")),
            "policies": rauth.get("policies"),
            "token_type": s(rauth.get("token_type")),
            "token_ttl": num(rauth.get("token_ttl")),
            "metadata": d(rauth.get("metadata")) or None,
            "num_uses": num(rauth.get("num_uses")),
        }.items()
        if v not in (None, [], {})
    } or None


def _wrap_info(wrap: dict[str, Any]) -> dict[str, Any] | None:
    return {
        k: v
        for k, v in {
            "accessor": s(wrap.get("accessor")),
            "wrapped_accessor": s(wrap.get("wrapped_accessor")),
            "creation_path": s(wrap.get("creation_path")),
            "ttl": num(wrap.get("ttl")),
        }.items()
        if v is not None
    } or None


def _kmip_find(node: Any, tag: str) -> Any:
    """First ``value`` of a KMIP TTLV-as-JSON node with this tag (depth first)."""
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            if cur.get("tag") == tag:
                return cur.get("value")
            stack.extend(reversed([v for v in cur.values() if isinstance(v, (dict, list))]))
        elif isinstance(cur, list):
            stack.extend(reversed(cur))
    return None


def _hex(value: Any) -> int | None:
    try:
        return int64(int(value, 16)) if isinstance(value, str) else None
    except ValueError:
        return None


def build_kmip(uid: str, req: Entry | None, resp: Entry | None, fmt: str) -> Rows:
    """A KMIP operation (Vault Enterprise ``kmip-request`` / ``kmip-response`` entries)."""
    main = resp or req
    assert main is not None
    request = d(main.obj.get("request"))
    kreq = d(request.get("data")).get("kmip_request")
    kresp = d(d(main.obj.get("response")).get("data")).get("kmip_response") if resp else None
    code = _hex(_kmip_find(kreq, "Operation"))
    name = KMIP_OPERATIONS.get(code, f"op-0x{code:02x}") if code is not None else "unknown"
    status = _hex(_kmip_find(kresp, "ResultStatus")) if kresp is not None else None
    reason = _hex(_kmip_find(kresp, "ResultReason")) if kresp is not None else None
    if status is None:
        outcome = "unknown"
    elif status == 0:
        outcome = "success"
    elif reason == _KMIP_PERMISSION_DENIED:
        outcome = "denied"
    else:
        outcome = "failure" if status in (1, 3) else "unknown"
    serial = s(request.get("client_certificate_serial_number"))
    ip, port = split_address(s(request.get("remote_address")))
    target = _kmip_find(kreq, "UniqueIdentifier") or (
        _kmip_find(kresp, "UniqueIdentifier") if kresp else None
    )
    target = target if isinstance(target, str) else None
    ns_path = s(d(request.get("namespace")).get("path"))
    details = {
        "entry": "pair" if req and resp else ("response" if resp else "request"),
        "entry_type": main.type,
        "request_record_no": req.line_no if req and resp else None,
        "request_time": req.time_raw if req else None,
        "response_time": resp.time_raw if resp else None,
        "kmip_operation_code": code,
        "kmip_result_status": status,
        "kmip_result_reason": reason,
        "client_certificate_serial_number": serial,
        "remote_port": port,
    }
    first = req if req is not None and req.time is not None else main
    event = _NO_EVENT | {
        "event_uid": uid,
        "source": "vault",
        "format": fmt,
        "time": first.time,
        "time_raw": first.time_raw,
        "action": f"vault:kmip-{name}",
        "service": "vault",
        "operation": f"kmip-{name}",
        "outcome": outcome,
        "error_code": None
        if status in (None, 0)
        else f"kmip-status-{status}" + (f"-reason-{reason}" if reason is not None else ""),
        "actor_uid": serial,
        "actor_type": "kmip-client" if serial else None,
        "credential_id": serial,
        "credential_kind": "vault-kmip-cert" if serial else None,
        "src_ip": ip,
        "account": ns_path,
        "target": target,
        "details": _json(details),
        "raw": main.raw_undecoded,
        "record_no": main.line_no,
        "byte_offset": main.offset,
    }
    resources = (
        [
            {
                "event_uid": uid,
                "resource_id": f"vault:{ns_path or ''}kmip/{target}",
                "resource_type": "vault-kmip-object",
                "account": ns_path,
            }
        ]
        if target
        else []
    )
    return Rows(event, resources, [])


def build_server_log(
    uid: str,
    line_no: int,
    offset: int,
    raw: bytes | str,
    fmt: str,
    fields: tuple[str, str, str] | None,
    obj: dict[str, Any] | None,
) -> Rows:
    """A Vault server (operational) log line kept on the timeline as ``vault:server-log``."""
    if fields is not None:
        ts, level, message = fields
        module, _, rest = message.partition(": ")
        module = module if rest and " " not in module.strip() else ""
    else:
        o = obj or {}
        ts, level = str(o.get("@timestamp") or ""), str(o.get("@level") or "")
        message, module = str(o.get("@message") or ""), str(o.get("@module") or "")
    lease = _LEASE_IN_LOG.search(message)
    details = {
        "level": level.upper() or None,
        "module": module.strip() or None,
        "message": message,
        "lease_id": lease.group(1) if lease else None,
    }
    event = _NO_EVENT | {
        "event_uid": uid,
        "source": "vault",
        "format": fmt,
        "time": to_utc(ts) if ts else None,
        "time_raw": ts or None,
        "action": "vault:server-log",
        "service": "vault",
        "operation": "server-log",
        "outcome": "unknown",
        "target": lease.group(1) if lease else None,
        "details": _json(details),
        "raw": raw,
        "record_no": line_no,
        "byte_offset": offset,
    }
    return Rows(event, [], [])
