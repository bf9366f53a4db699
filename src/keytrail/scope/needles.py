"""The needles of the scope's gate: strings every CloudTrail record the closure reads contains.

Over the rows loaded so far, for seeds the gate can stand for (:mod:`keytrail.scope.gate`):

- the seeds as given; a principal ``arn:aws:iam::ACCT:user/NAME`` also ``NAME`` (the issuance
  of a user's key, ``CreateAccessKey``, names the user by name only; events signed as a
  principal carry its ARN as written, ``userIdentity.arn``, as do the STS issuances' responses);
- every closure credential: a credential's own records carry it (``userIdentity.accessKeyId``),
  and both sides of an issuance name it as written (the signer's key, the response's key);
- the Vault AWS-engine name prefixes of the closure's Vault issues (the name-match rule of
  :func:`keytrail.graph.derive.mint_facts` joins CloudTrail names whose stem equals one);
- the ``sharedEventID`` of every loaded issuing record (its copies in other accounts).

The gate cannot stand for a human (the person/workload classifier samples the first events of
every credential), an agent (its inventory's IAM roles and users name credentials by patterns of
ARNs), a seed still unknown after the first round (the closest ids of a seed that matches
nothing need every id), or a needle JSON would escape (``"``, ``\\``, control characters):
those scopes take the whole path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from keytrail.scope import closure as clo

if TYPE_CHECKING:
    from keytrail.scope.vault_gate import Needle
    from keytrail.store.case import CaseStore

PREFIXES = """
SELECT DISTINCT unnest(list_distinct(list_concat(
         [attributes->>'username_prefix', attributes->>'federation_name_prefix'],
         coalesce(CAST(attributes->'username_prefix_candidates' AS VARCHAR[]), []))))
FROM _kt_issue
WHERE src_source = 'vault' AND (credential_id IN (SELECT credential_id FROM _kt_scope_clo)
      OR parent_credential_id IN (SELECT credential_id FROM _kt_scope_clo))
"""
SHARED = """
SELECT DISTINCT e.shared_event_id FROM events e JOIN credential_issues ci USING (event_uid)
WHERE e.source = 'cloudtrail' AND e.shared_event_id IS NOT NULL
"""
_KINDS = """
SELECT id, arg_min(kind, list_position(['credential', 'principal', 'agent', 'human'], kind))
FROM _kt_scope_ids WHERE list_contains($s, id) GROUP BY id
"""
# The AppRole rule (``_kt_vault_sid``): a closure login's secret id joins the secret-id response
# that logs the same HMAC (a path ending in ``secret-id``).
SECRET_IDS = """
SELECT DISTINCT attributes->>'secret_id' FROM _kt_issue
WHERE src_source = 'vault' AND attributes->>'login_path' IS NOT NULL
  AND attributes->>'secret_id' IS NOT NULL
  AND credential_id IN (SELECT credential_id FROM _kt_scope_clo)
"""
# The Vault AWS-engine name match upward (``_kt_vault_aws``): the CloudTrail names of closure
# credentials that can be a Vault-made name (the rule's stems start with ``vault-``).
CT_NAMES = """
WITH clo AS (SELECT credential_id FROM _kt_scope_clo),
ct AS (
  SELECT principal_name AS name, principal_uid AS uid FROM _kt_issue
  WHERE src_source = 'cloudtrail' AND credential_id IN (SELECT credential_id FROM clo)
  UNION ALL SELECT actor_name, actor_uid FROM events
  WHERE source = 'cloudtrail' AND credential_id IN (SELECT credential_id FROM clo)
)
SELECT DISTINCT n
FROM (SELECT name AS n FROM ct UNION ALL SELECT regexp_extract(uid, '[^/]+$') FROM ct)
WHERE starts_with(n, 'vault-')
"""
_VAULT_NAME = re.compile(r"^vault-(?:(?P<body>.*)-)?(?P<unix>\d+)$")
#: Every AWS-engine response: the path ``<mount>/creds/<role>`` or ``<mount>/sts/<role>``.
AWS_PATHS: frozenset[Needle] = frozenset({("/creds/",), ("/sts/",)})
_IAM_USER = re.compile(r"^arn:aws[a-z-]*:iam::\d+:user/(?:.*/)?([^/]+)$")
_ESCAPED = re.compile(r'["\\\x00-\x1f]')


@dataclass
class Needles:
    """The needles over the loaded rows, or why the gate cannot stand for the seeds."""

    ids: set[str] = field(default_factory=set)
    fallback: str | None = None
    #: The Vault gate's needles beside ``ids`` (:mod:`keytrail.scope.vault_gate`).
    vault: set[Needle] = field(default_factory=set)


def needles(store: CaseStore, seeds: list[str], *, first: bool, vault: bool = False) -> Needles:
    """The needles of ``seeds`` over ``store``'s rows (its issuance facts current).

    ``first``: no CloudTrail file or Vault line searched yet (a seed may be only there).
    ``vault``: the Vault gate's needles too (:func:`vault_needles`)."""
    con = store.con
    con.execute(clo.IDS)
    kinds = {str(i): str(k) for i, k in con.execute(_KINDS, {"s": list(seeds)}).fetchall()}
    for s in seeds:
        kind = kinds.get(s)
        if kind in ("human", "agent"):
            return Needles(fallback=f"seed {s!r} is {'a' if kind == 'human' else 'an'} {kind}")
        if kind is None and not first:
            return Needles(fallback=f"seed {s!r} is in no record holding a needle")
    ids = set(seeds)
    for s in seeds:
        if kinds.get(s) == "principal" and (m := _IAM_USER.match(s)):
            ids.add(m.group(1))
    known = [s for s in seeds if s in kinds]
    if known:
        clo.resolve_seeds(store, known)
        clo.closure(store)
        ids |= {
            str(r[0]) for r in con.execute("SELECT credential_id FROM _kt_scope_clo").fetchall()
        }
        ids |= {str(r[0]) for r in con.execute(PREFIXES).fetchall() if r[0]}
        ids |= {str(r[0]) for r in con.execute(SHARED).fetchall()}
    ids.discard("")
    extra = vault_needles(store) if vault and known else set()
    for n in sorted(ids | {s for x in extra for s in x}):
        if _ESCAPED.search(n):
            return Needles(fallback=f"needle {n!r} would be escaped in JSON")
    return Needles(ids, vault=extra)


def vault_needles(store: CaseStore) -> set[Needle]:
    """What a Vault line must hold to add a fact the closure reads beside the closure's ids
    (``_kt_scope_clo`` current): the AppRole secret id of a closure login, with ``secret-id``
    (the response that made it); for a closure credential's CloudTrail name that Vault's AWS
    engine may have made (``vault-<display>-<role>-<unix>-<random>``), ``/creds/<role>`` and
    ``/sts/<role>`` for every role the name can end with (the path of the response that made
    it), or every AWS-engine path when the role cannot be read off the name (cut at 48
    characters, a ``_`` that may stand for another character, a federation name)."""
    con = store.con
    out: set[Needle] = {(str(r[0]), "secret-id") for r in con.execute(SECRET_IDS).fetchall()}
    for (name,) in con.execute(CT_NAMES).fetchall():
        m = _VAULT_NAME.match(str(name)[: str(name).rfind("-")])
        if m is None:
            continue
        body = m["body"]
        if body is None or len(body) >= 42 or "_" in body:
            out |= AWS_PATHS
            continue
        for i in [0] + [j + 1 for j, c in enumerate(body) if c == "-"]:
            if body[i:]:
                out |= {("/creds/" + body[i:],), ("/sts/" + body[i:],)}
    return out
