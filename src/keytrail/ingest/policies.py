"""Authorization snapshots: what identities were *allowed* to do, beside what they did.

Two families, detected by content and stored one row per statement in ``grants``:

- AWS ``aws iam get-account-authorization-details`` JSON (:mod:`keytrail.ingest.policy_aws`);
- Vault/OpenBao ACL policies: HCL policy files (the policy name is the file name without
  ``.hcl``/``.policy``/``.gz``), Vault's JSON policy form (``{"path": {...}}``), and the JSON of
  ``vault read -format=json sys/policy/NAME`` (``data.rules``) or ``sys/policies/acl/NAME``
  (``data.policy``), where ``data.name`` names the policy.

A Vault ``path`` block becomes one row: ``actions`` are its capabilities (``deny`` makes
the row's effect ``Deny``; the legacy ``policy = "read"|"write"|"deny"|"sudo"`` is expanded
to the capabilities Vault gives it), ``resources`` is the path glob, ``conditions`` keeps
the parameter constraints, which are never evaluated. A file that does not parse is one
reject naming the line; a bad block is one reject; nothing is dropped silently.
The sniffers are strict (a top-level IAM list key, or a first statement that is a ``path``
block), so no log file is ever claimed. Format reference: ``docs/formats/policies.md``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson

from keytrail.ingest import policy_aws
from keytrail.ingest.base import SNIFF_BYTES, LoadContext, Sample, SourceAdapter
from keytrail.ingest.policy_hcl import HclError, parse, path_blocks

CAPABILITIES = (
    "create",
    "read",
    "update",
    "patch",
    "delete",
    "list",
    "sudo",
    "deny",
    "subscribe",
    "recover",
)
#: Vault's legacy ``policy = "..."`` shorthand, as Vault expands it.
LEGACY = {
    "deny": ["deny"],
    "read": ["read", "list"],
    "write": ["create", "read", "update", "delete", "list"],
    "sudo": ["create", "read", "update", "delete", "list", "sudo"],
}
_AWS_KEY = re.compile(rb'"(?:UserDetailList|GroupDetailList|RoleDetailList)"\s*:\s*\[')
_AWS_POLICIES = re.compile(rb'"Policies"\s*:\s*\[\s*(?:\]|\{[^\]]*?"PolicyVersionList")', re.DOTALL)
_HCL_START = re.compile(r'\A(?:\s|#[^\n]*\n|//[^\n]*\n|/\*.*?\*/)*path\s+"[^"\n]*"\s*\{', re.DOTALL)
_VAULT_LOG = re.compile(rb'"type"\s*:\s*"(?:request|response)"')
_SUFFIXES = (".gz", ".hcl", ".policy", ".json")


def _vault_json(doc: Any) -> tuple[str | None, Any]:
    """``(name, policy text or JSON policy object)`` if ``doc`` is a Vault policy JSON shape."""
    if not isinstance(doc, dict):
        return None, None
    data = doc.get("data")
    if isinstance(data, dict) and isinstance(data.get("name"), str):
        body = data.get("rules", data.get("policy"))
        if isinstance(body, str | dict):
            return data["name"], body
    if set(doc) == {"path"} and isinstance(doc["path"], dict | list):
        return None, doc
    return None, None


def _policy_text(text: str) -> Any:
    """Policy text from ``data.rules``/``data.policy``: HCL, or Vault's JSON policy form.

    Raises:
        HclError: neither readable HCL nor JSON.
    """
    if text.lstrip().startswith("{"):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError as e:
            raise HclError(f"policy text is neither HCL nor JSON: {e}") from e
    return parse(text)


def detect(head: bytes, complete: bool) -> str | None:
    """The format label of a policy snapshot, or None."""
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"{"):
        if _AWS_KEY.search(text) or _AWS_POLICIES.search(text[:4096]):
            return "aws-iam-authorization-details"
        if complete and not _VAULT_LOG.search(text):
            try:
                doc = orjson.loads(text)
            except orjson.JSONDecodeError:
                return None
            _name, body = _vault_json(doc)
            if body is not None:
                return "vault-policy-json"
        return None
    if _HCL_START.match(text.decode("utf-8", errors="replace")):
        return "vault-policy-hcl"
    return None


def policy_name(path: Path) -> str:
    name = path.name
    while True:
        low = name.lower()
        cut = next((s for s in _SUFFIXES if low.endswith(s) and len(name) > len(s)), None)
        if cut is None:
            return name
        name = name[: -len(cut)]


def vault_rows(
    name: str, blocks: list[tuple[str, dict[str, Any]]], reject: Any
) -> list[dict[str, Any]]:
    """``grants`` rows of one Vault policy; bad blocks go to ``reject(reason, block no, block)``."""
    rows: list[dict[str, Any]] = []
    for no, (path, body) in enumerate(blocks, start=1):
        caps = body.get("capabilities")
        legacy = body.get("policy")
        if caps is None and isinstance(legacy, str) and legacy in LEGACY:
            caps = LEGACY[legacy]
        if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
            reject(
                f"Vault policy {name!r} path {path!r} (block {no}): 'capabilities' must be a list of strings"
                ' (or the legacy policy = "read"|"write"|"deny"|"sudo")',
                no,
                {path: body},
            )
            continue
        unknown = [c for c in caps if c not in CAPABILITIES]
        if unknown:
            reject(
                f"Vault policy {name!r} path {path!r} (block {no}): unknown capability {unknown[0]!r}; "
                f"known: {', '.join(CAPABILITIES)}",
                no,
                {path: body},
            )
            continue
        extra = {k: v for k, v in body.items() if k not in ("capabilities", "policy")}
        rows.append(
            {
                "source": "vault-policy",
                "principal_kind": "policy",
                "principal_name": name,
                "policy_name": name,
                "attachment": "vault",
                "effect": "Deny" if "deny" in caps else "Allow",
                "actions": list(dict.fromkeys(caps)),
                "resources": [path],
                "conditions": orjson.dumps(extra).decode() if extra else None,
                "statement_no": no,
                "record_no": 1,
                "raw": orjson.dumps({"path": path, **body}).decode(),
            }
        )
    return rows


class PolicyAdapter(SourceAdapter):
    NAME = "policies"
    SOURCE = "policy"
    PRIORITY = 20  # strict sniffers, ahead of the lenient JSON-lines ones

    @classmethod
    def sniff(cls, sample: Sample) -> str | None:
        return detect(sample.head, complete=len(sample.head) < SNIFF_BYTES)

    def load(self, ctx: LoadContext) -> None:
        data = ctx.read_all()

        def reject(reason: str, record_no: int | None, item: Any) -> None:
            excerpt = item if isinstance(item, str) else orjson.dumps(item, default=str).decode()
            ctx.reject(reason, record_no=record_no, excerpt=excerpt)

        if ctx.format == "vault-policy-hcl":
            ctx.records += 1
            name = policy_name(ctx.path)
            try:
                blocks = path_blocks(parse(data.decode("utf-8-sig", errors="replace")))
            except HclError as e:
                ctx.reject(
                    f"Vault policy {name!r} does not parse: {e}", record_no=1, excerpt=data[:512]
                )
                return
            self._vault(ctx, name, blocks, reject)
            return
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as e:
            ctx.records += 1
            ctx.reject(f"policy snapshot is not JSON: {e}", record_no=1, excerpt=data[:512])
            return
        if ctx.format == "aws-iam-authorization-details":
            if not isinstance(doc, dict):
                ctx.records += 1
                ctx.reject(
                    "authorization details must be a JSON object", record_no=1, excerpt=data[:512]
                )
                return
            rows, entries, notes = policy_aws.load_snapshot(doc, reject)
            ctx.records += max(entries, 1)
            ctx.notes.extend(notes)
            ctx.insert("grants", rows)
            return
        ctx.records += 1
        found, body = _vault_json(doc)
        name = found or policy_name(ctx.path)
        try:
            parsed = _policy_text(body) if isinstance(body, str) else body
            blocks = path_blocks(parsed if isinstance(parsed, dict) else {})
        except HclError as e:
            ctx.reject(
                f"Vault policy {name!r} does not parse: {e}", record_no=1, excerpt=data[:512]
            )
            return
        self._vault(ctx, name, blocks, reject)

    @staticmethod
    def _vault(
        ctx: LoadContext, name: str, blocks: list[tuple[str, dict[str, Any]]], reject: Any
    ) -> None:
        if not blocks:
            ctx.reject(f"Vault policy {name!r} has no path blocks", record_no=1, excerpt="")
            return
        # Block numbers are positions inside the one policy record: rejects keep record 1 and say the block.
        rows = vault_rows(name, blocks, lambda reason, _no, item: reject(reason, 1, item))
        ctx.insert("grants", rows)
