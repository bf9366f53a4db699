"""How few CloudTrail records a scope's closure needs: the needle gate of issue 16, simulated.

    PYTHONPATH=src python benchmarks/scope_gate_sim.py WORK/full.duckdb --trail /work/bench/d1m \\
        --inventory /work/bench/d1m/inventory.toml --seed ID [--seed ID ...]

Builds (once) the projection a scope makes with the unchanged adapters
(``keytrail.scope.project.project(..., narrow=False)``: every record's text in ``events.raw``),
resolves the seeds and computes the closure and the selected events over all of it, then again
with the CloudTrail rows cut to those whose text contains a *needle*, grown to a fixpoint:

- the seeds; every closure credential (a credential's own records and both sides of every
  issuance naming it carry its id as written: ``userIdentity.accessKeyId``,
  ``responseElements.credentials.accessKeyId``, ``accessKey.accessKeyId``);
- the Vault AWS-engine name prefixes of the closure's Vault issues (the name-match rule of
  :func:`keytrail.graph.derive.mint_facts` joins CloudTrail names whose stem equals one);
- the ``sharedEventID`` of every loaded issuing record (``_kt_issue``'s copies).

Vault and agent rows stay whole (their adapters run before it). The gate is built
(:mod:`keytrail.scope.gate`, the needles' SQL shared with :mod:`keytrail.scope.needles`); this
stays as the check on stored texts, record by record (the gate opens whole files). Prints, per
round, the CloudTrail records and files loaded and the closure, and whether the gated closure
and selection equal the full ones. It simulates on stored texts (substring tests in DuckDB), it
does not time anything. It covers credential seeds and principals as their events name them; a
human seed needs the person/workload classifier's sample of every credential, which no needle
gives, and an agent seed whose inventory names an IAM role or a principal named as
``arn:aws:iam::ACCT:user/NAME`` would need needles derived from the name (docs/scale.md).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from keytrail.graph.agent_identity import merge_agents
from keytrail.graph.derive import mint_facts
from keytrail.scope import closure as clo
from keytrail.scope.engine_duckdb import WINDOW
from keytrail.scope.needles import PREFIXES, SHARED
from keytrail.scope.project import project
from keytrail.store.case import CaseStore


def _cut(store: CaseStore, seeds: list[str]) -> tuple[set[str], set[str]]:
    """The closure's credentials and the selected event ids over the store's current rows."""
    con = store.con
    mint_facts(con)
    clo.resolve_seeds(store, seeds)
    clo.closure(store)
    members = {str(r[0]) for r in con.execute("SELECT credential_id FROM _kt_scope_clo").fetchall()}
    sel = con.execute(clo.selection_sql(WINDOW), {"since": None, "until": None}).fetchall()
    return members, {str(r[0]) for r in sel}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("case", type=Path, help="the full projection (built here when missing)")
    ap.add_argument("--trail", action="append", default=[], help="the trail, to build it")
    ap.add_argument("--inventory", action="append", default=[])
    ap.add_argument("--seed", action="append", required=True)
    args = ap.parse_args(argv)
    if not args.case.exists():
        project(args.case, args.trail, inventory=args.inventory, narrow=False).store.close()
    store = CaseStore.open(args.case, read_only=False)
    con = store.con
    name = str(con.execute("SELECT current_database()").fetchone()[0])  # type: ignore[index]
    db = '"' + name.replace('"', '""') + '"'  # the file's own tables, under the TEMP views
    merge_agents(con)
    full_members, full_sel = _cut(store, args.seed)
    total, escaped = con.execute(
        f"""SELECT count(*), count(*) FILTER (WHERE contains(raw, '\\u') OR contains(raw, '\\/'))
            FROM {db}.main.events WHERE source = 'cloudtrail'"""
    ).fetchone()  # type: ignore[misc]
    print(f"full: closure {len(full_members)}, selected {len(full_sel)}; CloudTrail records")
    print(f"  {total}, with a \\u or \\/ escape (a gate must load them whole): {escaped}")
    con.execute("CREATE TEMP TABLE _kt_gate (uid VARCHAR)")
    con.execute(
        f"""CREATE TEMP VIEW events AS SELECT * FROM {db}.main.events
            WHERE source <> 'cloudtrail' OR event_uid IN (SELECT uid FROM _kt_gate)"""
    )
    con.execute(
        f"""CREATE TEMP VIEW credential_issues AS SELECT * FROM {db}.main.credential_issues
            WHERE split_part(event_uid, ':', 1) <> 'cloudtrail'
               OR event_uid IN (SELECT uid FROM _kt_gate)"""
    )
    needles: set[str] = set()
    grown = set(args.seed)
    rounds = 0
    while not grown <= needles:
        rounds += 1
        needles |= grown
        con.execute(
            f"""INSERT INTO _kt_gate SELECT event_uid FROM {db}.main.events
                WHERE source = 'cloudtrail' AND event_uid NOT IN (SELECT uid FROM _kt_gate)
                  AND regexp_matches(raw, ?)""",
            ["|".join(re.escape(n) for n in sorted(needles))],
        )
        members, sel = _cut(store, args.seed)
        prefixes = {str(r[0]) for r in con.execute(PREFIXES).fetchall() if r[0]}
        shared = {str(r[0]) for r in con.execute(SHARED).fetchall()}
        grown = set(args.seed) | members | prefixes | shared
        loaded, files = con.execute(
            f"""SELECT count(*), count(DISTINCT file_id) FROM {db}.main.events
                WHERE event_uid IN (SELECT uid FROM _kt_gate)"""
        ).fetchone()  # type: ignore[misc]
        print(
            f"round {rounds}: {len(needles)} needles, CloudTrail records loaded {loaded} "
            f"in {files} files, closure {len(members)}"
        )
    same = members == full_members and sel == full_sel
    print(f"gated closure and selection equal the full ones: {same}")
    store.close()
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
