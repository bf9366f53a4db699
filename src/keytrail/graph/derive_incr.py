"""Derive only what new CloudTrail, Vault or agent-log events change, as a full rebuild would.

A second ingest into a large case (a new day of CloudTrail, the Vault or agent logs a day after the
CloudTrail) used to rebuild every derived table from the whole case. Here, when the case was
derived before (``case_meta`` ``derived.through_file_id``, same derive code) and the new files are
CloudTrail, Vault audit or agent logs (:func:`keytrail.ingest.finalize.incremental_since`), each
derived row is either rebuilt from the whole case because that is cheap or unavoidable, or
rebuilt only for the keys whose input rows the new events touch, with the same SQL restricted
to those keys. "New events": those of the new files, and old Vault events the cross-file pairing
gave a new file's request time (:data:`PAIRED_SINCE`).

- ``credentials`` rows and the Vault AWS-engine name matches: the new events' keys, keys with a
  new (or call-sharing, ``sharedEventID``) issue row, AppRole login tokens whose secret id a new
  row issued, and, when a new Vault issue carries an AWS-engine username template (it may name
  any old key), every key the rule pairs with a new issue (the rule then matches every key;
  otherwise only the keys above, and the walks read the other keys' Vault pairs back from their
  MINTED links);
- ``MINTED`` (in-edges) and ``AUTHENTICATES_AS``: the same keys less those only new agent events
  name: both read a key's issue rows and CloudTrail and Vault events, never an agent event
  (MINTED also the keys the AWS-engine rule pairs with a new issue; AUTHENTICATES_AS reads no
  such pair);
- ``ACTED_ON``: the (credential, resource) pairs of the new events (an edge is one pair's events),
  the new rows added onto the stored edge when they all follow it
  (:mod:`keytrail.graph.acted_on_incr`);
- the timing ``USES``: the new events' keys; every edge when tool calls changed (new agent
  events, or old ones a new alias renames: :func:`keytrail.graph.agent_identity.merge_agents`);
- the person/workload decisions of credentials (:mod:`keytrail.graph.principal_class`): every
  credential whose row, USES edges, issue or events changed, and all minted from those (a
  decision is inherited down MINTED edges), decided from their facts and their ancestors'; the
  CloudTrail facts (``credential_facts``, kept in the case) are gathered again only for the
  credentials the new CloudTrail events signed, every other credential's are read as stored;
- ``event_links``: the new calls, the old calls signed with a credential whose holders
  (agents with a proven/strong USES, and what it minted) changed, and the old calls inside the
  time window of a new tool call (or of an MCP request among those:
  :mod:`keytrail.graph.causes_incr`); all of them when old agent events were renamed or the new
  tool calls' windows cover most of the case's time;
- rebuilt in full (small inputs, or agent-keyed rows whose agent ids may move): ``principals``,
  ``DELEGATED``, the inventory ``USES``, the logged ``USES`` and ``SAME_AGENT`` (when agent or
  Vault events are new), the principals' decisions, the issue facts.

An inventory file adds agent names (aliases) and declared identities: the agent-keyed rows, the
inventory ``USES``, ``principals`` and their decisions are rebuilt whole then, and the console
sessions' decisions (a declared identity's console session is a person's) decided again.

What does not fit these rules (a policy file; a case derived by other code; new events more
than :data:`MAX_NEW_SHARE` of the case, or new CloudTrail and Vault events signed with
credentials that sign over :data:`MAX_TOUCHED_SHARE` of it) takes the full rebuild of
:func:`keytrail.graph.derive.derive`. ``tests/unit/test_derive_incremental*.py`` compare every
derived row of both paths.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from keytrail import __version__
from keytrail.fingerprint import source_fingerprint
from keytrail.graph import (
    acted_on_incr,
    causes_incr,
    derive_causes,
    derive_links,
    derive_uses,
    principal_class,
)
from keytrail.store.schema import SCHEMA_VERSION

if TYPE_CHECKING:
    import duckdb

#: Above this share of new events in the case a full rebuild is as cheap (measured at 1M: see
#: docs/performance.md, "Second ingest").
MAX_NEW_SHARE = 0.3
#: Above this share of the case's events signed with a credential the new CloudTrail or Vault
#: events use, a full rebuild is as cheap: the per-credential steps restricted to those
#: credentials cost about as much per event as the whole-case ones (at 1M, facts of credentials
#: holding 1.02M of 1.05M events took 7.1 CPU-s against 2.8 for all), so long-lived keys active
#: every day that sign most of the case make the second ingest cost a full rebuild, no more.
#: Keys an agent log names are not counted: for them only ``credentials`` rows and decisions are
#: rebuilt (``ACTED_ON`` per new (key, resource) pair; AUTHENTICATES_AS reads no agent event), and
#: the decisions read their CloudTrail facts as stored (``credential_facts``).
MAX_TOUCHED_SHARE = 0.5

#: ``case_meta``: how many ``event_resources`` rows there were when the derived tables were
#: made (set by :func:`keytrail.ingest.finalize.finalize`). Rows are only ever appended, and a
#: table keeps its rows in insertion order (deletions and the checkpoint's compaction move none
#: ahead of another), so every row added since sits at ``rowid`` >= this count: a filter the scan
#: answers from its row groups, where finding the new events' rows by id probes all 1.4M ids at
#: 1M events. Rows of old events may sit there too (after deleted rows): every use keeps only
#: the new events' rows.
RESOURCE_ROWS_KEY = "derived.resource_rows"
RESOURCE_ROWS = "SELECT count(*) FROM event_resources"

_TEMP = (
    "_kt_inc_new",
    "_kt_inc_acted",
    "_kt_inc_old_acted",
    "_kt_inc_cred",
    "_kt_inc_auth",
    "_kt_inc_minted",
    "_kt_inc_pairs",
    "_kt_inc_old_cred",
    "_kt_inc_old_uses",
    "_kt_inc_holds",
    "_kt_inc_write",
    "_kt_inc_scope",
    "_kt_inc_ct",
    "_kt_inc_effects",
    "_kt_inc_tools",
    "_kt_inc_step",
    "_kt_holds",
)


@lru_cache(maxsize=1)
def derive_fingerprint() -> str:
    """A hash of the code whose rows the derived tables hold: the graph package, the
    end-of-ingest steps, the schema version. Another hash rebuilds in full."""
    graph = Path(__file__).resolve().parent
    files = sorted(graph.glob("*.py")) + [graph.parent / "ingest" / "finalize.py"]
    return source_fingerprint(f"{__version__}:{SCHEMA_VERSION}", ((f.name, f) for f in files))


def derive_since(con: duckdb.DuckDBPyConnection, since: int) -> bool:
    """Bring the derived tables up to date with the events of files after ``since``.

    Returns False (and changes nothing) when a full rebuild is the better way: then the
    caller runs :func:`keytrail.graph.derive.derive`.
    """
    from keytrail.store.case import roomy_memory

    # No file since the derived tables were made (every file of this ingest was in the case
    # already): nothing to derive, and the analysis snapshot, if current, still answers for
    # this case; keytrail ingest keeps it instead of recomputing the whole case.
    newer = con.execute("SELECT count(*) FROM evidence WHERE file_id > ?", [since]).fetchone()
    if newer is not None and int(newer[0]) == 0:
        return True
    row = con.execute(
        """SELECT count(*) FILTER (WHERE file_id > $since),
                  count(*) FILTER (WHERE credential_id IN (
                    SELECT credential_id FROM events
                    WHERE file_id > $since AND source <> 'agent')),
                  count(*)
           FROM events""",
        {"since": since},
    ).fetchone()
    new, touched, total = (int(row[0]), int(row[1]), int(row[2])) if row else (0, 0, 0)
    if total == 0 or new > MAX_NEW_SHARE * total or touched > MAX_TOUCHED_SHARE * total:
        return False
    stored = con.execute(
        "SELECT value FROM case_meta WHERE key = ?", [RESOURCE_ROWS_KEY]
    ).fetchone()
    with roomy_memory(con):
        _derive_since(con, since, int(stored[0]) if stored else None)
    con.execute("DELETE FROM case_meta WHERE starts_with(key, 'snapshot.')")
    return True


def _derive_since(con: duckdb.DuckDBPyConnection, since: int, rows: int | None) -> None:
    from keytrail.graph.agent_identity import merge_agents, same_agent_links
    from keytrail.graph.derive import (
        CREDENTIALS,
        MINT_TABLES,
        mint_facts,
        scoped,
    )

    paired = _new_events(con, since)
    cred = "{c} IN (SELECT credential_id FROM _kt_inc_cred)"
    in_cred = cred.format(c="credential_id")
    # What the old graph said, to find what changed: rows of credentials and USES, and holders.
    con.execute("CREATE OR REPLACE TEMP TABLE _kt_inc_old_cred AS SELECT * FROM credentials")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _kt_inc_old_uses AS SELECT * FROM links WHERE kind = 'USES'"
    )
    _holders(con, "_kt_inc_holds", "SELECT DISTINCT src, dst FROM links WHERE kind = 'MINTED'")

    # Agent ids: new agent events, or old ones a new alias renames, change every agent-keyed row
    # (logged and timing USES, SAME_AGENT, the per-call links' causes): those are rebuilt whole.
    renamed = merge_agents(con)
    kinds = {str(r[0]) for r in con.execute("SELECT DISTINCT source FROM _kt_inc_new").fetchall()}
    # New inventory rows: the agents' names (aliases), declared identities (the inventory USES,
    # rebuilt whole below) and the console sessions of a declared identity (_classify) change.
    inventory = _new_inventory(con, since)
    agents = renamed > 0 or "agent" in kinds or inventory
    logged = agents or "vault" in kinds  # Vault token metadata names agents too
    # A new Vault issue under an AWS-engine username template may name any old key: then the
    # rule matches every key, and the keys it pairs with a new issue are rebuilt too.
    match_all = _new_aws_engine_issue(con)
    mint_facts(con, names=_NAMES, match_all=match_all)
    if match_all:
        con.execute(
            "INSERT INTO _kt_va_names SELECT aws_credential FROM _kt_vault_aws "
            "WHERE vault_event IN (SELECT event_uid FROM _kt_inc_new) "
            "EXCEPT SELECT credential_id FROM _kt_va_names"
        )
    else:
        # The other keys' Vault AWS-engine facts, as the walks over ``_kt_mint`` read them
        # (``src``, ``dst``, ``src_source``): their MINTED links, unchanged, name every such
        # pair with source ``vault``. Only the walks read these rows; MINTED edges are rebuilt
        # for ``names`` only.
        con.execute("""
            INSERT INTO _kt_mint (src, dst, src_source)
            SELECT src, dst, 'vault' FROM links
            WHERE kind = 'MINTED'
              AND list_contains(from_json(attributes->'sources', '["VARCHAR"]'), 'vault')
              AND dst NOT IN (SELECT credential_id FROM _kt_va_names)""")
    # ``_kt_va_names``: every key whose issuance facts or events the new rows touch: their
    # ``credentials`` rows and decisions are rebuilt. ``_kt_inc_auth``: those less the keys only
    # new agent events name (an agent log naming a key): MINTED (in-edges) and AUTHENTICATES_AS
    # read a key's issue rows and CloudTrail and Vault events, never an agent event.
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _kt_inc_auth AS SELECT credential_id FROM _kt_inc_new "
        f"WHERE source <> 'agent' AND credential_id IS NOT NULL UNION {_KEYS}"
    )
    # ``_kt_inc_minted``: the keys whose MINTED in-edges are rebuilt: those, and the keys the
    # AWS-engine rule pairs with a new Vault issue (a new parent). AUTHENTICATES_AS reads no
    # such pair (at 1M: 8,300 keys signing 778k of 964k events, 0.5 CPU-s of its scan).
    minted = "_kt_inc_minted" if match_all else "_kt_inc_auth"
    if match_all:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _kt_inc_minted AS SELECT credential_id FROM _kt_inc_auth "
            "UNION SELECT aws_credential FROM _kt_vault_aws "
            "WHERE vault_event IN (SELECT event_uid FROM _kt_inc_new)"
        )
    auth = "{c} IN (SELECT credential_id FROM _kt_inc_auth)"
    in_minted = f"dst IN (SELECT credential_id FROM {minted})"

    con.execute("DELETE FROM credentials WHERE credential_id IN (SELECT * FROM _kt_va_names)")
    con.execute(scoped(CREDENTIALS, "_kt_va_names"))
    con.execute(f"DELETE FROM links WHERE kind = 'MINTED' AND {in_minted}")
    derive_links.minted(con, in_minted)
    con.execute(f"DELETE FROM links WHERE kind = 'AUTHENTICATES_AS' AND {auth.format(c='src')}")
    derive_links.authenticates_as(con, auth.format(c="credential_id"))
    _uses(con, in_cred, logged=logged, agents=agents)

    _classify(con, since, inventory=inventory)
    con.execute("DELETE FROM links WHERE kind = 'DELEGATED'")
    derive_links.delegated(con)
    if agents:
        con.execute("DELETE FROM links WHERE kind = 'SAME_AGENT'")
        same_agent_links(con, derive_links.INSERT)
    _caused(con, renamed=renamed > 0)
    acted_on_incr.acted_on(con, since, None if paired else rows)
    con.execute("DELETE FROM principals")
    derive_links.principals(con)
    con.execute("DELETE FROM principal_classes WHERE subject_kind = 'principal'")
    principal_class.classify_principals(con)
    for t in (*MINT_TABLES, *_TEMP, "_kt_agent_alias"):
        con.execute(f"DROP TABLE IF EXISTS {t}")


#: Keys whose issuance facts the new rows touch (run once ``_kt_issue`` exists): keys with an
#: issue row of a new event or of a call a new event shares (``sharedEventID``); AppRole login
#: tokens whose secret id a new row issued.
_KEYS = """
SELECT credential_id FROM _kt_issue
WHERE credential_id IS NOT NULL AND (event_uid IN (SELECT event_uid FROM _kt_inc_new)
                                     OR call_id IN (SELECT shared_event_id FROM _kt_inc_new))
UNION SELECT l.credential_id FROM _kt_issue l JOIN _kt_issue s
  ON s.kind = 'vault-secret-id' AND s.src_source = 'vault'
 AND s.credential_id = l.attributes->>'secret_id'
WHERE l.src_source = 'vault' AND l.kind = 'vault-token' AND l.attributes->>'login_path' IS NOT NULL
  AND s.event_uid IN (SELECT event_uid FROM _kt_inc_new)
"""
#: The keys whose rows the new events can change: the new events' keys, and :data:`_KEYS`.
_NAMES = f"SELECT credential_id FROM _kt_inc_cred UNION {_KEYS}"


def _new_events(con: duckdb.DuckDBPyConnection, since: int) -> int:
    """``_kt_inc_new``: the events of files after ``since``, and old Vault response events the
    pairing (:meth:`keytrail.ingest.vault.adapter.VaultAdapter.finalize`) gave a new file's
    request time; ``_kt_inc_cred``: their credentials. Returns how many old events those are."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _kt_inc_new AS SELECT event_uid, credential_id, "
        "shared_event_id, source FROM events WHERE file_id > ?",
        [since],
    )
    row = con.execute(
        "INSERT INTO _kt_inc_new SELECT event_uid, credential_id, shared_event_id, source "
        f"FROM events WHERE file_id <= $since AND {PAIRED_SINCE}",
        {"since": since},
    ).fetchone()
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _kt_inc_cred AS SELECT DISTINCT credential_id "
        "FROM _kt_inc_new WHERE credential_id IS NOT NULL"
    )
    return int(row[0]) if row else 0


#: A Vault event of an old file paired with a request of a file after ``$since`` (its time
#: changed).
PAIRED_SINCE = (
    "source = 'vault' AND details->>'entry' = 'pair' "
    "AND TRY_CAST(details->>'request_file_id' AS BIGINT) > $since"
)


def _new_inventory(con: duckdb.DuckDBPyConnection, since: int) -> bool:
    """Whether a file after ``since`` added ``inventory_agents`` rows (an inventory file whose
    records were all rejected changes no rule)."""
    row = con.execute("SELECT count(*) FROM inventory_agents WHERE file_id > ?", [since]).fetchone()
    return bool(row and row[0])


def _new_aws_engine_issue(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether a new Vault issue row carries an AWS-engine username template."""
    row = con.execute("""
        SELECT count(*) FROM credential_issues
        WHERE event_uid IN (SELECT event_uid FROM _kt_inc_new WHERE source = 'vault')
          AND coalesce(attributes->>'username_prefix', '') LIKE 'vault-%'""").fetchone()
    return bool(row and row[0])


def _uses(con: duckdb.DuckDBPyConnection, in_cred: str, *, logged: bool, agents: bool) -> None:
    """USES: the inventory edges whole (they read ``credentials``); the logged edges whole when
    new agent or Vault events (or renamed agent events) may add some; the timing edges whole
    when tool calls changed, else those of the new events' credentials."""
    from keytrail.graph.derive import TOOL_CALL_SKEW_S, TOOL_CALL_WINDOW_S

    gone = ["starts_with(reason, $inv)"]
    if logged:
        gone.append("list_contains($logged, reason)")
    scope = "" if agents else in_cred
    gone.append(
        "starts_with(reason, $timing)"
        + derive_links.and_scope(scope.replace("credential_id", "dst", 1))
    )
    con.execute(
        f"DELETE FROM links WHERE kind = 'USES' AND ({' OR '.join(gone)})",
        {
            "inv": derive_uses.INVENTORY_REASON,
            "timing": derive_uses.TIMING_REASON,
            **({"logged": list(derive_uses.LOGGED_REASONS)} if logged else {}),
        },
    )
    if logged:
        derive_uses.uses_logged(con)
    derive_uses.uses_inventory(con)
    derive_uses.uses_by_timing(
        con, window_s=TOOL_CALL_WINDOW_S, skew_s=TOOL_CALL_SKEW_S, scope=scope
    )


def _holders(con: duckdb.DuckDBPyConnection, table: str, minted: str) -> None:
    """(agent, credential) pairs an agent holds: a proven/strong USES and what it minted, as
    :func:`keytrail.graph.derive_causes._holds` computes them (``minted``: the MINTED pairs)."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {table} AS
        WITH RECURSIVE h(agent_id, credential_id) AS (
          SELECT src, dst FROM links WHERE kind = 'USES' AND confidence IN ('proven', 'strong')
          UNION
          SELECT h.agent_id, m.dst FROM h JOIN ({minted}) m ON m.src = h.credential_id
        )
        SELECT DISTINCT agent_id, credential_id FROM h""")


def _classify(con: duckdb.DuckDBPyConnection, since: int, *, inventory: bool = False) -> None:
    """Decide again the credentials whose facts changed, and everything minted from them.

    ``inventory``: new inventory rows; besides the USES edges they add (found below as changed
    USES), they decide whether a console session's identity is declared for an agent (rule 0 of
    :mod:`keytrail.graph.principal_class`, read for console sessions only): every credential
    with a console session is decided again."""
    consoles = (
        "UNION SELECT credential_id FROM credential_facts WHERE ev_console IS NOT NULL"
        if inventory
        else ""
    )
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _kt_inc_write AS
        WITH RECURSIVE changed AS (
          SELECT credential_id FROM _kt_inc_cred
          {consoles}
          UNION SELECT credential_id FROM _kt_va_names
          UNION SELECT credential_id FROM (SELECT * FROM credentials EXCEPT
                                           SELECT * FROM _kt_inc_old_cred)
          UNION SELECT dst FROM (SELECT * FROM links WHERE kind = 'USES' EXCEPT
                                 SELECT * FROM _kt_inc_old_uses)
          UNION SELECT dst FROM (SELECT * FROM _kt_inc_old_uses EXCEPT
                                 SELECT * FROM links WHERE kind = 'USES')
        ), down(credential_id) AS (
          SELECT credential_id FROM changed
          UNION SELECT m.dst FROM down JOIN _kt_mint m ON m.src = down.credential_id
        )
        SELECT DISTINCT credential_id FROM down""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _kt_inc_scope AS
        WITH RECURSIVE up(credential_id) AS (
          SELECT credential_id FROM _kt_inc_write
          UNION SELECT m.src FROM up JOIN _kt_mint m ON m.dst = up.credential_id
        )
        SELECT DISTINCT credential_id FROM up""")
    # A credential's CloudTrail facts change only with its own new CloudTrail events: those are
    # gathered again (all of its events), every other credential's are read as stored. (Gathering
    # the facts of the credentials to decide and their ancestors read, at 1M, the old events of
    # the long-lived keys above the new sessions: 0.5 CPU-s for a CloudTrail day, 1.5 when agent
    # logs named keys holding half the case: docs/performance.md, incr4.)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _kt_inc_ct AS SELECT DISTINCT credential_id "
        "FROM _kt_inc_new WHERE source = 'cloudtrail' AND credential_id IS NOT NULL"
    )
    principal_class.refresh_facts(con, "_kt_inc_ct", since)
    principal_class.classify_credentials(con, scope="_kt_inc_scope", write="_kt_inc_write")


def _caused(con: duckdb.DuckDBPyConnection, *, renamed: bool) -> None:
    """``event_links`` of the new calls, of the calls whose credential's holders changed, and
    of the calls a new tool call may have caused (:mod:`keytrail.graph.causes_incr`: its time
    window); all of them when old agent events were renamed (every cause's agent may move) or
    the windows cover most of the case."""
    # The new tool calls' windows alone over most of the case: every call's links, without
    # first finding the calls of moved credentials (at 1M: 0.35 CPU-s for a set not used).
    limit = 0.0 if renamed else causes_incr.limit(con)  # one scan of events.time for both steps
    if renamed or causes_incr.too_wide(con, "_kt_inc_new", limit):
        derive_causes.caused(con)
        return
    _holders(con, "_kt_holds", "SELECT src, dst FROM _kt_mint")
    # Holders set a link's confidence only (candidates and ranks do not read them): the calls
    # signed with a moved credential are found again, MCP requests among them too (their
    # windows are added below, as they are causes as well).
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _kt_inc_effects AS
        WITH moved AS (
          SELECT credential_id FROM (SELECT * FROM _kt_holds EXCEPT SELECT * FROM _kt_inc_holds)
          UNION
          SELECT credential_id FROM (SELECT * FROM _kt_inc_holds EXCEPT SELECT * FROM _kt_holds)
        )
        SELECT event_uid FROM _kt_inc_new
        UNION
        SELECT event_uid FROM events WHERE credential_id IN (SELECT credential_id FROM moved)""")
    if not causes_incr.windows(con, "_kt_inc_effects", limit):
        derive_causes.caused(con)
        return
    derive_causes.caused(con, "_kt_inc_effects")
