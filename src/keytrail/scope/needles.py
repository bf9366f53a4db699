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
_IAM_USER = re.compile(r"^arn:aws[a-z-]*:iam::\d+:user/(?:.*/)?([^/]+)$")
_ESCAPED = re.compile(r'["\\\x00-\x1f]')


@dataclass
class Needles:
    """The needles over the loaded rows, or why the gate cannot stand for the seeds."""

    ids: set[str] = field(default_factory=set)
    fallback: str | None = None


def needles(store: CaseStore, seeds: list[str], *, first: bool) -> Needles:
    """The needles of ``seeds`` over ``store``'s rows (its issuance facts current).

    ``first``: no CloudTrail file searched yet (a seed may be only in CloudTrail records)."""
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
    for n in sorted(ids):
        if _ESCAPED.search(n):
            return Needles(fallback=f"needle {n!r} would be escaped in JSON")
    return Needles(ids)
