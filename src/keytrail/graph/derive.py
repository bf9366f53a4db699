"""Rebuild the derived tables (``credentials``, ``principals``, ``links``) in bulk SQL.

Runs at the end of every ingest (:mod:`keytrail.ingest.finalize`) inside its
transaction. Everything is set-based: no Python loop touches individual events, so
the cost grows with a few hash joins and group-bys over ``events`` (seconds at 1M
events). The edge rules and their confidences are documented in ``docs/graph.md``;
the SQL for each edge kind lives in :mod:`keytrail.graph.derive_links`.

Order matters: issuance facts (``_kt_issue``, ``_kt_mint``) first, then
``credentials``, then ``AUTHENTICATES_AS`` (needed to map inventory roles to
sessions), then ``USES``, ``DELEGATED``, ``SAME_AGENT``, the per-call ``event_links``,
``ACTED_ON``, and last ``principals``. Before all of them, names of one agent are merged onto
its inventory id (:mod:`keytrail.graph.agent_identity`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keytrail.graph import derive_causes, derive_links, derive_uses, principal_class
from keytrail.graph.agent_identity import merge_agents, same_agent_links

if TYPE_CHECKING:
    import duckdb

#: Seconds an API call may follow a tool call on the same target to count as its execution.
TOOL_CALL_WINDOW_S = 120
#: Seconds an API call may precede the tool call's logged time (clock skew between hosts).
TOOL_CALL_SKEW_S = 5
#: Seconds a CloudTrail name match may precede the Vault issue time (clock skew).
VAULT_AWS_SKEW_S = 10

#: Vault auth methods whose display-name prefix is stripped to name the person of a login (whether
#: the login is a person is decided by :mod:`keytrail.graph.principal_class`).
HUMAN_AUTH_METHODS = ("oidc", "jwt", "userpass", "ldap", "okta", "github", "radius", "saml")

# Issuance facts joined to their events. ``call_id`` collapses CloudTrail's
# cross-account copies of one call (same ``sharedEventID``) so they count once.
_ISSUE = """
CREATE OR REPLACE TEMP TABLE _kt_issue AS
SELECT ci.credential_id, ci.kind, ci.parent_credential_id, ci.event_uid,
       coalesce(ci.issued_at, e.time) AS issued_at, ci.expires_at, ci.principal_uid, ci.principal_name,
       ci.attributes, coalesce(ci.confidence, 'strong') AS confidence,
       coalesce(ci.reason, 'issued by ' || coalesce(e.action, 'an event')) AS reason,
       coalesce(e.source, split_part(ci.event_uid, ':', 1)) AS src_source,
       coalesce(e.shared_event_id, ci.event_uid) AS call_id,
       e.target AS ev_target, e.action AS ev_action, sc.copies
FROM credential_issues ci LEFT JOIN events e ON e.event_uid = ci.event_uid
LEFT JOIN (SELECT shared_event_id, list(event_uid ORDER BY event_uid) AS copies FROM events
           WHERE source = 'cloudtrail' AND shared_event_id IS NOT NULL GROUP BY shared_event_id) sc
  ON sc.shared_event_id = e.shared_event_id
"""

# Vault logins: the auth mount (from the request path ``auth/<mount>/login``), its type, the role
# name (AppRole ``role_name``, JWT/OIDC/Kubernetes ``role``), the claims (metadata) and the person
# the login would name. Whether it is a person is the classifier's call (graph.principal_class).
_VAULT_LOGIN = f"""
CREATE OR REPLACE TEMP TABLE _kt_vault_login AS
SELECT credential_id, event_uid, issued_at, principal_name, mount, role, email,
       coalesce(lower(mount_type),
                nullif(regexp_extract(lower(coalesce(principal_name, '')), '^([a-z]+)(-|$)', 1),
                       ''))
         AS mt,
       meta, coalesce(meta_sub, principal_name) AS sub,
       coalesce(nullif(email, ''), nullif(username, ''),
                nullif(regexp_replace(coalesce(principal_name, ''), '^({"|".join(HUMAN_AUTH_METHODS)})-', ''), ''))
         AS human_id
FROM (
  SELECT i.*,
    coalesce(attributes->>'mount', nullif(regexp_extract(coalesce(attributes->>'login_path', ev_target, ''),
             'auth/(.+?)/login', 1), '')) AS mount,
    coalesce(attributes->>'mount_type', attributes->>'auth_method', attributes->>'method') AS mount_type,
    coalesce(attributes->>'role_name', attributes->'metadata'->>'role_name', attributes->>'role',
             attributes->'metadata'->>'role', attributes->'metadata'->>'service_account_name',
             attributes->'metadata'->>'username', attributes->>'username') AS role,
    coalesce(attributes->'metadata'->>'email', attributes->>'email') AS email,
    coalesce(attributes->'metadata'->>'username', attributes->>'username') AS username,
    CAST(attributes->'metadata' AS VARCHAR) AS meta, attributes->'metadata'->>'sub' AS meta_sub
  FROM _kt_issue i
  WHERE src_source = 'vault' AND kind = 'vault-token'
    AND NOT starts_with(coalesce(attributes->>'path', ''), 'auth/token/create')
    AND coalesce(attributes->>'wrapping', 'false') <> 'true'
    AND (attributes->>'login_path' IS NOT NULL OR parent_credential_id IS NULL)
) s
"""

# The Vault AWS secrets engine when the key id is HMAC'd: match the
# ``vault-<display>-<role>-<unix>`` stem against CloudTrail names (IAM user names,
# role session names, federated user names) at or after the Vault issue time.
_VAULT_AWS = f"""
CREATE OR REPLACE TEMP TABLE _kt_vault_aws AS
WITH vi AS (
  -- The Vault side: the lease (or key) row of an AWS secrets engine read whose key id is not
  -- logged in clear. The matched key hangs under the lease, as a clear key would.
  SELECT CASE WHEN kind = 'vault-lease' THEN credential_id ELSE parent_credential_id END AS parent,
         credential_id, event_uid, call_id, issued_at, u.prefix
  FROM (
    SELECT *, list_distinct(list_concat(
             [attributes->>'username_prefix', attributes->>'federation_name_prefix'],
             coalesce(CAST(attributes->'username_prefix_candidates' AS VARCHAR[]), []))) AS prefixes
    FROM _kt_issue
    WHERE src_source = 'vault' AND coalesce(attributes->>'username_prefix', '') LIKE 'vault-%'
      AND NOT regexp_matches(coalesce(attributes->>'access_key', ''), '^(AKIA|ASIA)')
      AND NOT (kind = 'vault-lease' AND EXISTS (
        SELECT 1 FROM _kt_issue k WHERE k.event_uid = _kt_issue.event_uid
          AND k.kind IN ('aws-access-key', 'aws-temporary-key')))
  ) i, unnest(i.prefixes) AS u(prefix) WHERE u.prefix IS NOT NULL
), named AS (
  -- No Vault side (a CloudTrail-only case), no match: the names are not even read (at 1M
  -- CloudTrail events, 0.8M vault-* names grouped into stems for nothing: 0.5 s wall).
  SELECT credential_id, principal_name AS name, principal_uid AS uid, event_uid, issued_at AS t
  FROM _kt_issue WHERE EXISTS (SELECT 1 FROM vi) AND src_source = 'cloudtrail'
    AND (principal_name LIKE 'vault-%' OR principal_uid LIKE '%vault-%')
    /*names*/
  UNION ALL
  SELECT credential_id, actor_name, actor_uid, event_uid, time
  FROM events WHERE EXISTS (SELECT 1 FROM vi) AND source = 'cloudtrail'
    AND credential_id IS NOT NULL
    AND (actor_name LIKE 'vault-%' OR actor_uid LIKE '%vault-%') /*names*/
), stems AS (
  -- A Vault-made name is <stem>-<random>: strip the random tail so the join is an equi-join
  -- (a prefix-LIKE join of every CloudTrail event to every Vault issue was quadratic: it ran
  -- for over 20 minutes on a 1M-event case).
  SELECT credential_id, event_uid, t, regexp_replace(name, '-[^-]*$', '') AS stem
  FROM named WHERE name LIKE 'vault-%'
  UNION
  SELECT credential_id, event_uid, t, regexp_replace(regexp_extract(uid, '[^/]+$'), '-[^-]*$', '')
  FROM named WHERE uid LIKE '%/vault-%'
), ct AS (
  SELECT credential_id, stem, list(event_uid ORDER BY t, event_uid)[1:{derive_links.EVIDENCE_CAP}] AS ct_events,
         min(t) AS first_t, max(t) AS last_t
  FROM stems GROUP BY credential_id, stem
)
SELECT vi.credential_id AS vault_credential, vi.parent, ct.credential_id AS aws_credential,
       vi.event_uid AS vault_event, vi.call_id, vi.issued_at, min(vi.prefix) AS prefix,
       min(ct.ct_events) AS ct_events, min(ct.first_t) AS first_t, max(ct.last_t) AS last_t
FROM vi JOIN ct
  ON ct.stem = vi.prefix
 AND ct.credential_id <> vi.credential_id
 AND ct.last_t >= vi.issued_at - INTERVAL {VAULT_AWS_SKEW_S} SECOND
GROUP BY ALL
"""

# AppRole logins: the SecretID exchanged for the token. The login request logs the HMAC of the
# secret_id it sent, the secret-id response the HMAC of the one it made (same device, same salt):
# the same string on both sides, so the edge is proven. A login token has no parent token.
_VAULT_SECRET_ID = """
CREATE OR REPLACE TEMP TABLE _kt_vault_sid AS
SELECT s.credential_id AS parent, l.credential_id AS child, l.event_uid, l.call_id, l.issued_at
FROM _kt_issue l JOIN _kt_issue s
  ON s.kind = 'vault-secret-id' AND s.src_source = 'vault'
 AND s.credential_id = l.attributes->>'secret_id'
WHERE l.src_source = 'vault' AND l.kind = 'vault-token' AND l.attributes->>'login_path' IS NOT NULL
"""

# Every MINTED fact, one row per (parent, child, issuing call).
_MINT = """
CREATE OR REPLACE TEMP TABLE _kt_mint AS
SELECT parent_credential_id AS src, credential_id AS dst, reason, confidence, src_source,
       list_distinct(list_prepend(event_uid, coalesce(copies, []))) AS evidence, call_id,
       issued_at AS t,
       CASE WHEN src_source = 'vault' THEN 0 WHEN confidence = 'proven' THEN 1 ELSE 2 END AS prio
FROM _kt_issue
WHERE parent_credential_id IS NOT NULL AND parent_credential_id <> credential_id
UNION ALL
SELECT parent, aws_credential,
       'Vault AWS secrets engine issued a key named ' || prefix || '-... (its username template); '
         || 'CloudTrail shows that name on this key', 'strong', 'vault',
       list_prepend(vault_event, ct_events), call_id, issued_at, 0
FROM _kt_vault_aws WHERE parent IS NOT NULL AND parent <> aws_credential
UNION ALL
SELECT parent, child, 'AppRole login exchanged this secret id (the login request carries its HMAC) '
                      || 'for the token', 'proven', 'vault', [event_uid], call_id, issued_at, 0
FROM _kt_vault_sid
"""

# One row per credential: issuance facts (the preferred parent is the Vault token that
# asked for a key over the AWS call Vault made with its own key) joined with usage.
CREDENTIALS = """
INSERT INTO credentials
WITH cand AS (
  SELECT credential_id, kind, parent_credential_id AS parent, issued_at, event_uid, expires_at, principal_uid,
         src_source,
         CASE WHEN parent_credential_id IS NULL THEN 3
              WHEN src_source = 'vault' THEN 0 WHEN confidence = 'proven' THEN 1 ELSE 2 END AS prio
  FROM _kt_issue
  UNION ALL
  SELECT aws_credential, NULL, parent, issued_at, vault_event, NULL, NULL, 'vault', CASE WHEN parent IS NULL THEN 3 ELSE 0 END
  FROM _kt_vault_aws
  UNION ALL
  SELECT child, NULL, parent, issued_at, event_uid, NULL, NULL, 'vault', 1 FROM _kt_vault_sid
), iss AS (
  SELECT credential_id,
         -- ties (one key matched to two issues at the same time) go to the first event id, then parent
         first(kind ORDER BY prio, issued_at, event_uid, parent)
           FILTER (WHERE kind IS NOT NULL) AS kind,
         first(parent ORDER BY prio, issued_at, event_uid, parent) AS parent,
         min(issued_at) AS issued_at,
         first(event_uid ORDER BY prio, issued_at, event_uid, parent) AS issued_by_event,
         max(expires_at) AS expires_at,
         first(principal_uid ORDER BY prio, issued_at, event_uid, parent)
           FILTER (WHERE principal_uid IS NOT NULL) AS principal_uid,
         list(DISTINCT src_source ORDER BY src_source) AS sources
  FROM cand WHERE true /*scope*/ GROUP BY credential_id
), used AS (
  -- mode(x ORDER BY x): a tie goes to the smallest value (plain mode() follows row order,
  -- which parallel scans do not keep)
  SELECT credential_id, mode(credential_kind ORDER BY credential_kind) AS kind,
         min(time) AS first_t, max(time) AS last_t,
         count(*) AS n, list(DISTINCT source ORDER BY source) AS sources,
         mode(actor_uid ORDER BY actor_uid)
           FILTER (WHERE source IN ('cloudtrail', 'vault')) AS principal_uid
  FROM events WHERE credential_id IS NOT NULL /*scope*/ GROUP BY credential_id
)
SELECT coalesce(i.credential_id, u.credential_id),
       coalesce(i.kind, u.kind, CASE WHEN regexp_matches(coalesce(i.credential_id, u.credential_id), '^ASIA')
                                     THEN 'aws-temporary-key'
                                     WHEN regexp_matches(coalesce(i.credential_id, u.credential_id), '^AKIA')
                                     THEN 'aws-access-key' END),
       CASE WHEN i.credential_id IS NOT NULL THEN 'issued' ELSE 'unknown' END,
       i.parent, i.issued_at, i.issued_by_event, i.expires_at,
       coalesce(i.principal_uid, u.principal_uid),
       CASE WHEN i.issued_at IS NULL THEN u.first_t WHEN u.first_t IS NULL THEN i.issued_at
            ELSE least(i.issued_at, u.first_t) END,
       u.last_t, coalesce(u.n, 0),
       list_sort(list_distinct(list_concat(coalesce(i.sources, []), coalesce(u.sources, []))))
FROM iss i FULL OUTER JOIN used u ON i.credential_id = u.credential_id
"""


def derive(con: duckdb.DuckDBPyConnection) -> None:
    """Rebuild credentials, principals and links from the ingested tables.

    Runs under :func:`keytrail.store.case.roomy_memory` (the writer's budget unless
    ``KEYTRAIL_FINALIZE_MEMORY_LIMIT`` says otherwise); the aggregates that hold big groups run in
    bounded partitions (:func:`keytrail.graph.derive_links.acted_on`), so memory stays flat.
    """
    from keytrail.store.case import roomy_memory

    with roomy_memory(con):
        _derive(con)
    # The stored ranking and findings (keytrail.analysis.snapshot) described the graph before.
    con.execute("DELETE FROM case_meta WHERE starts_with(key, 'snapshot.')")


#: The temp tables :func:`mint_facts` leaves behind (dropped at the end of a derive).
MINT_TABLES = (
    "_kt_issue",
    "_kt_vault_login",
    "_kt_vault_aws",
    "_kt_vault_sid",
    "_kt_mint",
    "_kt_va_names",
)


def scoped(sql: str, table: str, marker: str = "/*scope*/") -> str:
    """``sql`` with its ``marker`` comments turned into a filter to the credentials of ``table``."""
    return sql.replace(marker, f"AND credential_id IN (SELECT credential_id FROM {table})")


def mint_facts(con: duckdb.DuckDBPyConnection, names: str = "", *, match_all: bool = False) -> None:
    """The issuance facts as temp tables: ``_kt_issue``, ``_kt_vault_login``, ``_kt_vault_aws``
    and ``_kt_mint`` (one row per MINTED fact, ``src`` -> ``dst``).

    Public because ``keytrail scope`` walks the same MINTED facts over a projection of a trail
    (``events`` and ``credential_issues`` only, no graph): one definition of what minted what.

    ``names``: a query of credential ids (run once ``_kt_issue`` exists); the Vault AWS-engine
    rule then matches only the CloudTrail names of those and leaves out its rows of every other
    key (:mod:`keytrail.graph.derive_incr` knows they did not change: the rows of a key depend
    only on its own names and events and on the Vault side, as the rule groups by key).
    ``match_all``: ``_kt_va_names`` is made, but the rule matches every key (new Vault issues
    may name old keys).
    """
    con.execute(_ISSUE)
    con.execute(_VAULT_LOGIN)
    if names:
        con.execute(f"CREATE OR REPLACE TEMP TABLE _kt_va_names AS {names}")
    narrow = names and not match_all
    con.execute(scoped(_VAULT_AWS, "_kt_va_names", "/*names*/") if narrow else _VAULT_AWS)
    con.execute(_VAULT_SECRET_ID)
    con.execute(_MINT)


def person_sessions(con: duckdb.DuckDBPyConnection) -> None:
    """``credentials`` and the classifier's ``principal_classes`` rows for them, over the issuance
    facts of :func:`mint_facts` and no links: ``keytrail scope`` asks which credentials a human
    seed held (console, SAML, Identity Center, MFA, sourceIdentity, Vault logins) with the same
    rules as the graph, without building it (no USES links: an agent's credential that also
    carries a person's marks counts as that person's)."""
    con.execute("DELETE FROM credentials")
    con.execute("DELETE FROM principal_classes")
    con.execute(CREDENTIALS)
    principal_class.classify_credentials(con, raw=principal_class.refresh_facts(con))


def _derive(con: duckdb.DuckDBPyConnection) -> None:
    for table in ("credentials", "principals", "links", "principal_classes"):
        con.execute(f"DELETE FROM {table}")
    merge_agents(con)  # first: every rule below sees one id per agent
    mint_facts(con)
    con.execute(CREDENTIALS)
    derive_links.minted(con)
    derive_links.authenticates_as(con)
    derive_uses.uses(con, window_s=TOOL_CALL_WINDOW_S, skew_s=TOOL_CALL_SKEW_S)
    principal_class.classify_credentials(con, raw=principal_class.refresh_facts(con))
    derive_links.delegated(con)
    same_agent_links(con, derive_links.INSERT)
    derive_causes.caused(con)
    derive_links.acted_on(con)
    derive_links.principals(con)
    principal_class.classify_principals(con)
    for t in (*MINT_TABLES, "_kt_agent_alias"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
