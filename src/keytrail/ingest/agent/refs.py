"""Credential references and resources named inside agent tool-call arguments.

Agent telemetry has no standard field for the credential an agent used or the
resource a tool touched (research A1.5); what there is sits in tool arguments
(``{"Bucket": "b", "Key": "k"}``, ``{"secret_id": ...}``, ``{"url": ...}``) or in a
few explicit attributes. These helpers turn such values into the identifiers the
rest of the case uses (``docs/architecture.md``: S3 ``arn:aws:s3:::bucket/key``,
Vault ``vault:<path>``, ARNs as logged, other targets as logged), so the graph can
join an agent's tool call to the CloudTrail or Vault event it caused.

Everything here is a pure function of its input and shared by the OTLP, MCP and
native adapters, so the three formats map the same arguments the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

_AWS_KEY = re.compile(r"\b((?:AKIA|ASIA)[A-Z0-9]{16})\b")
_AWS_KEY_FULL = re.compile(r"^(?:AKIA|ASIA)[A-Z0-9]{16}$")
_S3_URL = re.compile(r"^s3://([^/\s]+)(?:/(.*))?$")
_ARN = re.compile(r"^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:\d{0,12}:\S+$")
#: A bare tool input that is a path of two or more segments (no spaces): a target, not prose.
_BARE_PATH = re.compile(r"^/?[\w.@:-]+(?:/[\w.@:*+-]+)+/?$")
_VAULT_LEASE = re.compile(r"^[\w.-]+(?:/[\w.-]+)*/creds/[\w.-]+/[A-Za-z0-9]{8,}$")

#: Argument keys (compared lower-case, ``-`` and ``_`` ignored) naming an S3 bucket / object key.
_BUCKET_KEYS = frozenset({"bucket", "bucketname", "s3bucket"})
_OBJECT_KEYS = frozenset({"key", "objectkey", "object", "s3key", "objectname"})
#: Keys naming a Secrets Manager secret / SSM parameter / Vault path / generic target.
_SECRET_KEYS = frozenset({"secretid", "secretname", "secretarn"})
_PARAMETER_KEYS = frozenset({"parametername"})
_VAULT_KEYS = frozenset({"vaultpath", "secretpath"})
_GENERIC_KEYS = frozenset({"target", "resource", "resourceid", "resourcearn", "arn", "url", "uri"})
#: Keys whose value is a credential reference (never a secret value: those are masked, not stored).
_CREDENTIAL_KEYS = frozenset(
    {"accesskeyid", "awsaccesskeyid", "credentialid", "credentialref", "accessor", "tokenaccessor"}
)

#: ARN service -> resource type, for the ARNs agents commonly name.
_ARN_TYPES = {
    ("s3", ""): "AWS::S3::Bucket",
    ("iam", "role"): "AWS::IAM::Role",
    ("iam", "user"): "AWS::IAM::User",
    ("secretsmanager", "secret"): "AWS::SecretsManager::Secret",
    ("ssm", "parameter"): "AWS::SSM::Parameter",
    ("kms", "key"): "AWS::KMS::Key",
    ("dynamodb", "table"): "AWS::DynamoDB::Table",
    ("lambda", "function"): "AWS::Lambda::Function",
    ("sts", "assumed-role"): "AWS::STS::AssumedRole",
}

Resource = tuple[str, str]  # (resource_id, resource_type)


@lru_cache(maxsize=4096)  # argument keys repeat (Bucket, Key, path...): normalise each once
def _norm(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "").replace(".", "")


def credential_kind(ref: str | None) -> str | None:
    """The ``credential_kind`` of a reference, by its shape (``docs/architecture.md``)."""
    if not ref:
        return None
    if _AWS_KEY_FULL.match(ref):
        return "aws-access-key" if ref.startswith("AKIA") else "aws-temporary-key"
    if _VAULT_LEASE.match(ref):
        return "vault-lease"
    return "agent-credential-ref"


def aws_key_ids(text: str) -> list[str]:
    """AKIA/ASIA access key ids appearing anywhere in ``text`` (ids, not secrets)."""
    return _AWS_KEY.findall(text)


def s3_arn(bucket: str, key: str | None = None) -> Resource:
    if key:
        return f"arn:aws:s3:::{bucket}/{key.lstrip('/')}", "AWS::S3::Object"
    return f"arn:aws:s3:::{bucket}", "AWS::S3::Bucket"


def arn_type(arn: str) -> str:
    """A CloudFormation-style type for an ARN (``AWS::IAM::Role``), ``aws-resource`` when unknown."""
    parts = arn.split(":", 5)
    if len(parts) < 6:
        return "aws-resource"
    service, rest = parts[2], parts[5]
    if service == "s3":
        return "AWS::S3::Object" if "/" in rest else "AWS::S3::Bucket"
    rtype = re.split(r"[/:]", rest, maxsplit=1)[0]
    return _ARN_TYPES.get((service, rtype), "aws-resource")


def classify(value: str, *, vault_hint: bool = False) -> Resource | None:
    """Map one target string to ``(resource_id, resource_type)`` or ``None`` if it names nothing.

    ``vault_hint`` says the context is a Vault tool, so a bare path is a Vault path.
    """
    text = value.strip()
    if not text or len(text) > 2048:
        return None
    if m := _S3_URL.match(text):
        return s3_arn(m.group(1), m.group(2))
    if _ARN.match(text):
        return text, arn_type(text)
    if text.startswith("vault:"):
        return text, "vault-secret"
    if vault_hint and re.match(r"^/?[\w.-]+(?:/[\w.*+-]+)+/?$", text):
        return f"vault:{text.strip('/')}", "vault-secret"
    return text, "tool-target"


def _scalar(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


#: Parsed JSON values that are neither text nor containers (``_walk``/``_strings`` skip them).
_SCALARS = frozenset({int, float, bool, type(None)})


def _walk(obj: Any, depth: int = 0) -> Iterator[Mapping[str, Any]]:
    """Every mapping inside ``obj`` (bounded depth: arguments are attacker-controlled)."""
    if depth > 8:
        return
    if type(obj) is dict or isinstance(obj, Mapping):
        yield obj
        for v in obj.values():
            if isinstance(v, (dict, list)) or (type(v) not in _SCALARS and isinstance(v, Mapping)):
                yield from _walk(v, depth + 1)  # a scalar holds no mapping: not walked
    elif isinstance(obj, list):
        for v in obj[:1000]:
            yield from _walk(v, depth + 1)


def _strings(obj: Any, depth: int = 0) -> Iterator[str]:
    if depth > 8:
        return
    if type(obj) is str or isinstance(obj, str):
        yield obj
    elif type(obj) is dict or isinstance(obj, Mapping):
        for v in obj.values():
            if type(v) is str:  # a string member directly (no generator for it); depth as below
                if depth < 8:
                    yield v
            elif type(v) not in _SCALARS:
                yield from _strings(v, depth + 1)
    elif isinstance(obj, list):
        for v in obj[:1000]:
            yield from _strings(v, depth + 1)


def resources_in_arguments(args: Any, *, tool: str | None = None) -> list[Resource]:
    """Resources named by tool-call arguments, in the order found, without duplicates.

    Rules (``docs/formats/otlp.md`` lists them for users):
    - a bucket key (``Bucket``, ``bucket_name``...) with an object key (``Key``, ``object``...)
      in the same object -> ``arn:aws:s3:::bucket/key``; a bucket alone -> the bucket ARN;
    - ``s3://`` URLs and ARNs anywhere in the values;
    - ``SecretId``/``secret_name`` -> the ARN if it is one, else the name (type
      ``AWS::SecretsManager::Secret``); ``Name`` next to SSM-style keys is not guessed;
    - ``vault_path``/``secret_path``, values starting ``vault:``, and ``path`` when the tool
      name mentions Vault -> ``vault:<path>``;
    - generic ``target``/``resource``/``url``/``uri``/``arn`` keys, and ``path`` -> as logged;
    - a bare string argument that is a path of two or more segments -> as logged.
    """
    found: dict[str, str] = {}
    vault_tool = bool(tool and "vault" in tool.lower())

    def add(res: Resource | None) -> None:
        if res and res[0] not in found:
            found[res[0]] = res[1]

    for obj in _walk(args):
        keys = {_norm(str(k)): k for k in obj}
        bucket = next((_scalar(obj[keys[k]]) for k in _BUCKET_KEYS if k in keys), None)
        if bucket:
            obj_key = next((_scalar(obj[keys[k]]) for k in _OBJECT_KEYS if k in keys), None)
            add(s3_arn(bucket, obj_key))
        for nk, k in keys.items():
            val = _scalar(obj[k])
            if not val:
                continue
            if nk in _SECRET_KEYS:
                add(
                    (val, "AWS::SecretsManager::Secret")
                    if not _ARN.match(val)
                    else (val, arn_type(val))
                )
            elif nk in _PARAMETER_KEYS:
                add((val, "AWS::SSM::Parameter") if not _ARN.match(val) else (val, arn_type(val)))
            elif nk in _VAULT_KEYS or (nk == "path" and vault_tool):
                add(classify(val if val.startswith("vault:") else f"vault:{val.strip('/')}"))
            elif nk in _GENERIC_KEYS or nk == "path":
                add(classify(val, vault_hint=vault_tool))
    for s in _strings(args):
        if s.startswith(("s3://", "arn:aws", "vault:")):
            add(classify(s))
    if isinstance(args, str) and _BARE_PATH.match(args.strip()):
        # a one-argument tool logged with its bare input (OpenInference ``input.value``)
        add(classify(args, vault_hint=vault_tool))
    return [(rid, rtype) for rid, rtype in found.items()]


def credentials_in_arguments(args: Any) -> list[str]:
    """Credential references in tool-call arguments: explicit keys, then AKIA/ASIA ids in any value."""
    found: dict[str, None] = {}
    for obj in _walk(args):
        for k, v in obj.items():
            if _norm(str(k)) in _CREDENTIAL_KEYS and isinstance(v, str) and v.strip():
                found.setdefault(v.strip())
    for s in _strings(args):
        for key_id in aws_key_ids(s):
            found.setdefault(key_id)
    return list(found)
