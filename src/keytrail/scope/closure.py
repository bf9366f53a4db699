"""Seeds to credentials, the MINTED closure around them, and the events that closure keeps.

Everything here runs in DuckDB over a *projection* of the trail: the ``events`` and
``credential_issues`` rows the ingest adapters write (same code, loaded into a scratch case
without the graph) plus the issuance facts of :func:`keytrail.graph.derive.mint_facts`
(``_kt_mint``: what minted what, the Vault AWS engine's name match included). The walk is
:func:`keytrail.analysis.lineage.closure_sql` over those facts, down (descendants) and up
(ancestors), so ``scope`` and ``blast``/``trace`` agree on what minted what by construction.

Seeds that are not credentials resolve by the graph's own edge rules (``docs/graph.md``):
a principal by ``AUTHENTICATES_AS`` (events signed as it, credentials issued for it), a human
by ``DELEGATED`` (events naming the human, their Vault logins, the credentials the graph's
person/workload classifier (:func:`keytrail.graph.derive.person_sessions`) says the human held:
console, SAML, IAM Identity Center, MFA and ``sourceIdentity`` sessions; the agents acting for
them),
an agent by ``USES`` (its own log, Vault token metadata, the inventory's declared identities).
Only the time-and-target correlation (inferred ``USES``) is not used: it needs every tool call
and API call on a target, i.e. the whole graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keytrail.analysis.lineage import closure_sql
from keytrail.analysis.lookup import _suggest
from keytrail.errors import NotFoundError
from keytrail.graph.derive import person_sessions

if TYPE_CHECKING:
    from keytrail.store.case import CaseStore

#: Every id a seed may name, with what it is (first match wins in this order).
IDS = """
CREATE OR REPLACE TABLE _kt_scope_ids AS
SELECT DISTINCT id, kind FROM (
  SELECT credential_id AS id, 'credential' AS kind FROM events WHERE credential_id IS NOT NULL
  UNION ALL SELECT credential_id, 'credential' FROM credential_issues
  UNION ALL SELECT parent_credential_id, 'credential' FROM credential_issues
  UNION ALL SELECT dst, 'credential' FROM _kt_mint
  UNION ALL SELECT actor_uid, 'principal' FROM events
    WHERE actor_uid IS NOT NULL AND source IN ('cloudtrail', 'vault')
  UNION ALL SELECT principal_uid, 'principal' FROM credential_issues
  UNION ALL SELECT human_id, 'human' FROM events
  UNION ALL SELECT human_id, 'human' FROM _kt_vault_login WHERE human_id IS NOT NULL
  UNION ALL SELECT person, 'human' FROM principal_classes
    WHERE subject_kind = 'credential' AND class = 'person'
  UNION ALL SELECT agent_id, 'agent' FROM events
  UNION ALL SELECT agent_id, 'agent' FROM inventory_agents
  UNION ALL SELECT name, 'agent' FROM inventory_agents
) WHERE id IS NOT NULL AND id <> ''
"""

# Agents a seed names: the agent itself, the inventory entry by id or name, and (for a human)
# the agents whose logs name the human (DELEGATED human -> agent, proven).
_AGENTS = """
CREATE OR REPLACE TABLE _kt_scope_agents AS
SELECT DISTINCT s.seed, a.agent_id, a.why FROM _kt_scope_seed s, LATERAL (
  SELECT s.seed AS agent_id, 'the seed is this agent' AS why WHERE s.kind = 'agent'
  UNION ALL SELECT agent_id, 'inventory agent named ' || name FROM inventory_agents
    WHERE s.kind = 'agent' AND name = s.seed
  UNION ALL SELECT DISTINCT agent_id, 'the agent''s log names the user it acted for (DELEGATED)'
    FROM events
    WHERE s.kind = 'human' AND source = 'agent' AND human_id = s.seed AND agent_id IS NOT NULL
) a
"""

# USES agent -> credential by the inventory: each declared identity's credentials (the graph's
# rules: a credential id as is, a Vault role's logins, an IAM user's keys, an IAM role's sessions).
_INVENTORY = """
CREATE OR REPLACE TABLE _kt_scope_inv AS
SELECT i.agent_id, i.ident, c.cred
FROM (SELECT agent_id, unnest(identities) AS ident FROM inventory_agents) i,
LATERAL (
  SELECT i.ident AS cred WHERE i.ident IN (SELECT id FROM _kt_scope_ids WHERE kind = 'credential')
  UNION ALL SELECT credential_id FROM _kt_vault_login
    WHERE i.ident = 'vault:' || mount || '/' || role
  UNION ALL SELECT credential_id FROM events WHERE actor_uid = i.ident AND credential_id IS NOT NULL
    AND regexp_matches(i.ident, '^arn:aws[a-z-]*:iam::\\d+:user/')
  UNION ALL SELECT credential_id FROM events WHERE credential_id IS NOT NULL
    AND regexp_matches(i.ident, '^arn:aws[a-z-]*:iam::\\d+:role/')
    AND regexp_matches(actor_uid, '^arn:aws[a-z-]*:sts::\\d+:assumed-role/')
    AND split_part(actor_uid, ':', 5) || '/' || split_part(split_part(actor_uid, ':', 6), '/', 2)
        = split_part(i.ident, ':', 5) || '/' || regexp_extract(i.ident, '/([^/]+)$', 1)
) c
"""

# Agents that use a closure credential (USES, proven or strong): their own logs go into the
# scope, so the case still knows who the agent acted for (DELEGATED) and what its tools did.
_USERS = """
CREATE OR REPLACE TABLE _kt_scope_users AS
SELECT DISTINCT agent_id FROM (
  SELECT agent_id FROM events
  WHERE agent_id IS NOT NULL AND credential_id IN (SELECT credential_id FROM _kt_scope_clo)
  UNION ALL SELECT agent_id FROM _kt_scope_inv
    WHERE cred IN (SELECT credential_id FROM _kt_scope_clo)
  UNION ALL SELECT agent_id FROM _kt_scope_agents
)
"""

# Credentials each seed stands for, with the edge rule that says so.
_SEED_CREDS = """
CREATE OR REPLACE TABLE _kt_scope_root AS
SELECT seed, credential_id, min(why) AS why FROM (
  SELECT seed, seed AS credential_id, 'seed credential' AS why
    FROM _kt_scope_seed WHERE kind = 'credential'
  -- AUTHENTICATES_AS: signed as the principal, or issued for it
  UNION ALL
  SELECT s.seed, e.credential_id, 'AUTHENTICATES_AS the seed principal (events signed as it)'
    FROM _kt_scope_seed s JOIN events e ON e.actor_uid = s.seed
    WHERE s.kind = 'principal' AND e.credential_id IS NOT NULL
      AND e.source IN ('cloudtrail', 'vault')
  UNION ALL SELECT s.seed, i.credential_id, 'AUTHENTICATES_AS the seed principal (issued for it)'
    FROM _kt_scope_seed s JOIN credential_issues i ON i.principal_uid = s.seed
    WHERE s.kind = 'principal'
  -- DELEGATED human -> credential: events naming the human, the human's Vault logins, SSO sessions
  UNION ALL SELECT s.seed, e.credential_id, 'DELEGATED: events signed with it name the seed human'
    FROM _kt_scope_seed s JOIN events e ON e.human_id = s.seed
    WHERE s.kind = 'human' AND e.credential_id IS NOT NULL AND e.source IN ('cloudtrail', 'vault')
  UNION ALL SELECT s.seed, l.credential_id, 'DELEGATED: the seed human logged in to Vault for it'
    FROM _kt_scope_seed s JOIN _kt_vault_login l ON l.human_id = s.seed
    WHERE s.kind = 'human'
  UNION ALL
  SELECT s.seed, c.subject, 'DELEGATED: the classifier names the seed human as the person of '
    || 'this ' || c.detail || ' session (' || c.reason || ')'
    FROM _kt_scope_seed s JOIN principal_classes c ON c.person = s.seed
    WHERE s.kind = 'human' AND c.subject_kind = 'credential' AND c.class = 'person'
  -- USES agent -> credential: its own log or token metadata, then the inventory's identities
  UNION ALL SELECT a.seed, e.credential_id, 'USES: ' || a.why || '; events name this credential'
    FROM _kt_scope_agents a JOIN events e ON e.agent_id = a.agent_id
    WHERE e.credential_id IS NOT NULL
  UNION ALL SELECT a.seed, x.cred, 'USES: ' || a.why || '; the inventory declares ' || x.ident
    FROM _kt_scope_agents a JOIN _kt_scope_inv x ON x.agent_id = a.agent_id
) GROUP BY ALL
"""


@dataclass
class Seed:
    """One ``--seed`` as given, what it matched and the credentials it stands for."""

    seed: str
    kind: str
    credentials: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "matched_as": self.kind, "credentials": self.credentials}


def resolve_seeds(store: CaseStore, seeds: list[str]) -> list[Seed]:
    """Each seed's kind and credentials; ``_kt_scope_root(seed, credential_id, why)`` holds them.

    Raises:
        NotFoundError: a seed matches nothing in the trail (``suggestions``: the closest ids).
    """
    con = store.con
    if maybe_human(store, seeds):
        person_sessions(con)  # the graph's person/workload classifier, only when it is needed
        con.execute(IDS)
    out: list[Seed] = []
    for seed in dict.fromkeys(seeds):
        row = con.execute(
            """SELECT kind FROM _kt_scope_ids WHERE id = ?
               ORDER BY list_position(['credential', 'principal', 'agent', 'human'], kind)
               LIMIT 1""",
            [seed],
        ).fetchone()
        if row is None:
            raise NotFoundError(
                f"seed {seed!r} matches no credential, principal, agent or human "
                "in the given trail",
                _suggest(store, "_kt_scope_ids", ("id",), seed),
            )
        out.append(Seed(seed, str(row[0])))
    con.execute("CREATE OR REPLACE TABLE _kt_scope_seed (seed VARCHAR, kind VARCHAR)")
    con.executemany("INSERT INTO _kt_scope_seed VALUES (?, ?)", [[s.seed, s.kind] for s in out])
    con.execute(_INVENTORY)
    con.execute(_AGENTS)
    con.execute(_SEED_CREDS)
    for s in out:
        s.credentials = [
            r[0]
            for r in con.execute(
                "SELECT credential_id FROM _kt_scope_root WHERE seed = ? ORDER BY 1", [s.seed]
            ).fetchall()
        ]
    return out


def maybe_human(store: CaseStore, seeds: list[str]) -> bool:
    """A seed that is no credential, principal or agent: a human, or a name only the classifier
    knows (an Identity Center user, a console session's name, a SAML subject)."""
    store.con.execute(IDS)
    known = {
        str(r[0])
        for r in store.con.execute(
            "SELECT id FROM _kt_scope_ids WHERE kind <> 'human' AND list_contains($s, id)",
            {"s": list(seeds)},
        ).fetchall()
    }
    return any(s not in known for s in seeds)


_MINT_EDGES = "SELECT src, dst FROM _kt_mint"
_MINT_UP = "SELECT dst AS src, src AS dst FROM _kt_mint"


def closure(store: CaseStore) -> list[dict[str, Any]]:
    """``_kt_scope_clo(credential_id, relation, why, evidence)``: the seeds' credentials, every
    credential minted from them (transitively) and every credential they were minted from.

    An ancestor's descendants (siblings of a seed) are not walked: they are another branch of
    the tree (a Vault AWS engine's own key mints keys for everyone).
    """
    roots = "SELECT DISTINCT credential_id AS root FROM _kt_scope_root"
    down = closure_sql(roots, confidence=False, edges=_MINT_EDGES)
    up = closure_sql(roots, confidence=False, edges=_MINT_UP)
    store.con.execute(f"""
        CREATE OR REPLACE TABLE _kt_scope_down AS {down} SELECT DISTINCT credential_id FROM clo""")
    store.con.execute(f"""
        CREATE OR REPLACE TABLE _kt_scope_up AS {up} SELECT DISTINCT credential_id FROM clo""")
    store.con.execute("""
        CREATE OR REPLACE TABLE _kt_scope_clo AS
        SELECT r.credential_id, 'seed' AS relation,
               string_agg(DISTINCT r.seed || ': ' || r.why, '; ') AS why, []::VARCHAR[] AS evidence
        FROM _kt_scope_root r GROUP BY r.credential_id
        UNION ALL
        SELECT d.credential_id, 'minted from a seed',
               'minted from ' || min(m.src) || ' (' || min(m.reason) || ')',
               list_sort(list_distinct(flatten(list(m.evidence))))[1:20]
        FROM _kt_scope_down d JOIN _kt_mint m ON m.dst = d.credential_id
        WHERE d.credential_id NOT IN (SELECT credential_id FROM _kt_scope_root)
          AND m.src IN (SELECT credential_id FROM _kt_scope_down)
        GROUP BY d.credential_id
        UNION ALL
        SELECT u.credential_id, 'ancestor of a seed',
               'minted ' || min(m.dst) || ' (' || min(m.reason) || ')',
               list_sort(list_distinct(flatten(list(m.evidence))))[1:20]
        FROM _kt_scope_up u JOIN _kt_mint m ON m.src = u.credential_id
        WHERE u.credential_id NOT IN (SELECT credential_id FROM _kt_scope_root)
          AND u.credential_id NOT IN (SELECT credential_id FROM _kt_scope_down)
          AND m.dst IN (SELECT credential_id FROM _kt_scope_up)
        GROUP BY u.credential_id""")
    store.con.execute(_USERS)
    return rows(store, "SELECT * FROM _kt_scope_clo ORDER BY relation DESC, credential_id")


def rows(store: CaseStore, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Dict rows on the store's own connection: the issuance facts are its TEMP tables."""
    cur = store.con.execute(sql, params or {})
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def selection_sql(window: str) -> str:
    """The events a scope keeps: signed by a closure credential or logged by an agent that uses
    one (within ``window``, a condition on ``e.time``), and whatever the window, the events that
    issued a closure credential (lineage back to the root)."""
    return f"""
        SELECT e.event_uid FROM events e
        WHERE e.credential_id IN (SELECT credential_id FROM _kt_scope_clo) AND ({window})
        UNION
        SELECT e.event_uid FROM events e
        WHERE e.source = 'agent' AND e.agent_id IN (SELECT agent_id FROM _kt_scope_users)
          AND ({window})
        UNION
        SELECT i.event_uid FROM credential_issues i
        WHERE i.credential_id IN (SELECT credential_id FROM _kt_scope_clo)
        UNION
        SELECT unnest(m.evidence) FROM _kt_mint m
        WHERE m.dst IN (SELECT credential_id FROM _kt_scope_clo)
          AND m.src IN (SELECT credential_id FROM _kt_scope_clo)"""
