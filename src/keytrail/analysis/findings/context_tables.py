"""The chain tables of a findings run (:class:`~keytrail.analysis.findings.context.Context`).

The tables built here (temporary, or in the run's shared database) answer, for every
credential, the questions most rules share, once and in bulk:

- ``_kt_minted(parent, child)``: MINTED pairs (from ``links``, ``credentials`` and
  ``credential_issues``, so the rules also work on a case whose graph is partial);
- ``_kt_creds``: one row per credential with kind, principal, first/last use;
- ``_kt_anc(credential_id, ancestor_id)``: every credential with itself and all the
  credentials that minted it, transitively (cycles terminate: set semantics), stopping
  at long-term access keys, which are identities of their own;
- ``_kt_root(credential_id, root_id)``: the chain's root (no known parent);
- ``_kt_owner(credential_id, agent_id, uids, t0, t1, how, rank)``: agents that use a
  credential directly: USES edges (rank 3 proven, 2 strong, 1 inferred) and agent ids
  logged on its events (rank 3); the sharing rule counts only ranks at or above
  ``[credential_reuse] min_confidence``;
- ``_kt_chain_agent`` / ``_kt_chain_human``: agents and humans the chain reaches
  (owners of the credential or of any ancestor; humans delegating to those agents or to
  a chain credential, logged on the chain's events, principals of kind ``human``, or
  IAM Identity Center sessions, whose session name is the user).
- ``_kt_person(credential_id, subject_kind, detail, reason)``: credentials (and principals,
  ``subject_kind = 'principal'``) the principal classifier decided a person holds;
  ``_kt_person_held(credential_id, actor_uid)`` (a macro of
  :mod:`~keytrail.analysis.findings.macros`): whether an event's caller is such a person.
- ``_kt_agent_event(agent_id, event_uid, time, service, action, src_ip, credential_id,
  human_id)``: events an agent did, with the event columns their readers need.

Two cursors build them (the snapshot's two findings lanes): the tables that do not wait for each
other are made on both at once (at 1M events the chain from ``_kt_creds`` to ``_kt_agent_event``
is 0.7 of the 0.95 CPU-s; the rest runs on the second cursor beside it).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from keytrail.analysis.lineage import closure_sql

if TYPE_CHECKING:
    from collections.abc import Callable

    import duckdb


def build_tables(
    cur: duckdb.DuckDBPyConnection, helper: duckdb.DuckDBPyConnection | None, t: str
) -> None:
    """Every chain table on ``cur`` (``t``: ``TEMP TABLE `` or ``TABLE db.``), with ``helper``
    (another cursor of the same case, seeing the same tables) building the independent ones
    beside it."""
    other = helper if helper is not None else cur
    _together((_lineage, cur), (_owners, other), t)
    _chain_agents(cur, t)
    _together((_agent_events, cur), (_chains, other), t)


def _lineage(cur: duckdb.DuckDBPyConnection, t: str) -> None:
    """``_kt_minted``, ``_kt_creds`` and ``_kt_anc``."""
    x = cur.execute
    x(f"""CREATE OR REPLACE {t}_kt_minted AS
         SELECT DISTINCT parent, child FROM (
           SELECT src AS parent, dst AS child FROM links
             WHERE kind = 'MINTED' AND src_kind = 'credential' AND dst_kind = 'credential'
           UNION ALL SELECT parent_credential_id, credential_id FROM credentials
           UNION ALL SELECT parent_credential_id, credential_id FROM credential_issues)
         WHERE parent IS NOT NULL AND child IS NOT NULL AND parent <> child""")
    x(f"""CREATE OR REPLACE {t}_kt_creds AS
         WITH ev AS (
           SELECT credential_id, max(credential_kind) AS kind,
                  mode(actor_uid ORDER BY actor_uid) AS actor,
                  min(time) AS t0, max(time) AS t1, count(*) AS n,
                  arg_min(event_uid, (time, event_uid)) AS first_uid,
                  arg_max(event_uid, (time, event_uid)) AS last_uid
           FROM events WHERE credential_id IS NOT NULL GROUP BY credential_id),
         iss AS (
           SELECT credential_id, max(kind) AS kind, max(principal_uid) AS principal,
                  min(issued_at) AS issued_at, max(expires_at) AS expires_at,
                  arg_min(event_uid, (issued_at, event_uid)) AS issue_uid
           FROM credential_issues GROUP BY credential_id),
         der AS (SELECT credential_id, max(kind) AS kind, max(principal_uid) AS principal
                 FROM credentials GROUP BY credential_id)
         SELECT coalesce(ev.credential_id, iss.credential_id, der.credential_id) AS credential_id,
                coalesce(iss.kind, der.kind, ev.kind) AS kind,
                coalesce(iss.principal, der.principal, ev.actor) AS principal,
                iss.issued_at, iss.expires_at, iss.issue_uid,
                ev.t0, ev.t1, coalesce(ev.n, 0) AS n, ev.first_uid, ev.last_uid
         FROM ev FULL JOIN iss USING (credential_id) FULL JOIN der USING (credential_id)""")
    # A long-term access key is an identity of its own: whoever created it (CreateAccessKey)
    # is reported by the privilege rules, but its later use is not the creator's session, so
    # chains stop there and the key is its own root.
    anc = closure_sql(
        "SELECT credential_id AS root FROM _kt_creds",
        edges="SELECT child AS src, parent AS dst FROM _kt_minted",
        stop="clo.credential_id IN (SELECT credential_id FROM _kt_creds "
        "WHERE kind = 'aws-access-key' OR credential_id LIKE 'AKIA%')",
    )
    x(f"""CREATE OR REPLACE {t}_kt_anc AS {anc}
         SELECT root AS credential_id, credential_id AS ancestor_id FROM clo""")


def _owners(cur: duckdb.DuckDBPyConnection, t: str) -> None:
    """``_kt_owner``, ``_kt_person`` and ``_kt_not_person``: read only the case's tables."""
    x = cur.execute
    x(f"""CREATE OR REPLACE {t}_kt_owner AS
          SELECT credential_id, agent_id, flatten(list(uids ORDER BY t0, rank, uids)) AS uids,
                 min(t0) AS t0, max(t1) AS t1,
                 list_sort(list_distinct(list(how))) AS how, max(rank) AS rank
          FROM (
            SELECT dst AS credential_id, src AS agent_id, evidence[1:5] AS uids,
                   first_seen AS t0, last_seen AS t1, reason AS how,
                   CASE confidence WHEN 'proven' THEN 3 WHEN 'strong' THEN 2 ELSE 1 END AS rank
            FROM links WHERE kind = 'USES' AND src_kind = 'agent' AND dst_kind = 'credential'
            UNION ALL
            SELECT credential_id, agent_id, arg_min(event_uid, (time, event_uid), 5), min(time),
                   max(time),
                   'agent id logged on its events', 3
            FROM events WHERE credential_id IS NOT NULL AND agent_id IS NOT NULL
            GROUP BY credential_id, agent_id)
          GROUP BY credential_id, agent_id""")
    # Credentials the principal classifier (graph.principal_class) says a person holds, not
    # inferred: NHI rules do not fire on them (a person's console session is not NHI misuse).
    from keytrail.graph.principal_class import table_sql

    x(f"""CREATE OR REPLACE {t}_kt_person AS
          SELECT subject AS credential_id, subject_kind, detail, reason
          FROM {table_sql(cur)}
          WHERE class = 'person' AND confidence <> 'inferred'""")
    # One event's caller is a person: its credential is a person's, or (no credential, or one
    # with no firm decision of its own) its principal is. Rule files declaring
    # `identities = "non-human"` leave such events out (findings.declared).
    x(f"""CREATE OR REPLACE {t}_kt_not_person AS
          SELECT subject AS credential_id FROM {table_sql(cur)}
          WHERE subject_kind = 'credential' AND class NOT IN ('person', 'unknown')
            AND confidence <> 'inferred'""")


def _chain_agents(cur: duckdb.DuckDBPyConnection, t: str) -> None:
    """``_kt_chain_agent``: needs ``_kt_anc`` and ``_kt_owner``."""
    x = cur.execute
    x(f"""CREATE OR REPLACE {t}_kt_chain_agent AS
         SELECT DISTINCT a.credential_id, o.agent_id
         FROM _kt_anc a JOIN _kt_owner o ON o.credential_id = a.ancestor_id""")


def _chains(cur: duckdb.DuckDBPyConnection, t: str) -> None:
    """``_kt_root`` and ``_kt_chain_human``: beside ``_kt_agent_event``."""
    x = cur.execute
    x(f"""CREATE OR REPLACE {t}_kt_root AS
         SELECT c.credential_id, coalesce(r.root_id, c.credential_id) AS root_id
         FROM _kt_creds c LEFT JOIN (
           SELECT credential_id, min(ancestor_id) AS root_id FROM _kt_anc a
           WHERE NOT EXISTS (SELECT 1 FROM _kt_anc b WHERE b.credential_id = a.ancestor_id
                             AND b.ancestor_id <> a.ancestor_id)
           GROUP BY credential_id) r
         USING (credential_id)""")
    x(f"""CREATE OR REPLACE {t}_kt_chain_human AS
         SELECT DISTINCT credential_id, human_id FROM (
           SELECT ca.credential_id, l.src AS human_id FROM _kt_chain_agent ca
             JOIN links l ON l.kind = 'DELEGATED' AND l.src_kind = 'human' AND l.dst = ca.agent_id
           UNION ALL
           SELECT a.credential_id, l.src FROM _kt_anc a
             JOIN links l ON l.kind = 'DELEGATED' AND l.src_kind = 'human'
                         AND l.dst_kind = 'credential' AND l.dst = a.ancestor_id
           UNION ALL
           SELECT a.credential_id, l.dst FROM _kt_anc a
             JOIN links l ON l.kind = 'AUTHENTICATES_AS' AND l.src = a.ancestor_id
             JOIN principals p ON p.principal_id = l.dst AND p.kind = 'human'
           UNION ALL
           -- IAM Identity Center sessions (AWSReservedSSO_* roles) are people; the session
           -- name is the user name.
           SELECT a.credential_id, regexp_extract(c.principal, '/([^/]+)$', 1) FROM _kt_anc a
             JOIN _kt_creds c ON c.credential_id = a.ancestor_id
           WHERE regexp_matches(c.principal, ':assumed-role/AWSReservedSSO_[^/]+/[^/]+$')
           UNION ALL
           SELECT a.credential_id, h.human_id FROM _kt_anc a JOIN (
             SELECT DISTINCT credential_id, human_id FROM events
             WHERE credential_id IS NOT NULL AND human_id IS NOT NULL) h
             ON h.credential_id = a.ancestor_id)""")


def _agent_events(cur: duckdb.DuckDBPyConnection, t: str) -> None:
    """``_kt_agent_event``."""
    x = cur.execute
    # Events an agent did: logged with its id, or (when the event names no agent) signed by a
    # credential it holds or one minted from it. The event's columns the scope-drift baseline
    # and the unattributed rule read ride along: both scans read `events` anyway, and joining
    # ~1M rows back to `events` on their text id cost more than carrying them.
    cols = "event_uid, time, service, action, src_ip, credential_id, human_id"
    x(f"""CREATE OR REPLACE {t}_kt_agent_event AS
         SELECT agent_id, {cols} FROM events WHERE agent_id IS NOT NULL
         UNION ALL
         SELECT ca.agent_id, {", ".join("e." + c for c in cols.split(", "))} FROM events e
           JOIN _kt_chain_agent ca ON ca.credential_id = e.credential_id
         WHERE e.agent_id IS NULL""")


def _together(
    first: tuple[Callable[[duckdb.DuckDBPyConnection, str], None], duckdb.DuckDBPyConnection],
    second: tuple[Callable[[duckdb.DuckDBPyConnection, str], None], duckdb.DuckDBPyConnection],
    t: str,
) -> None:
    """Run ``first`` and ``second`` (a step and its cursor), at once when their cursors differ."""
    if first[1] is second[1]:
        first[0](first[1], t)
        second[0](second[1], t)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kt-context") as pool:
        done = pool.submit(second[0], second[1], t)
        first[0](first[1], t)
        done.result()
